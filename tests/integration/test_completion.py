"""hostmaintctl's bash completion (agent/ctl/hostmaintctl.bash) against the real daemon.

Each case fills COMP_WORDS the way bash splits the line (at whitespace and at '=' and
':'), calls the completion function and reads COMPREPLY. Domain names come from the
running hostmaintd's status, through hostmaintctl itself.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import HOSTMAINTCTL, SOURCE_DIR, DaemonTestCase, requires_tools

COMPLETION = SOURCE_DIR / "agent" / "ctl" / "hostmaintctl.bash"
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
DOMAINS = ["vm-default", "vm-migrate", "vm-off", "vm-shutdown", "vm-suspend"]
VERBS = ["ack", "allow", "begin", "cancel", "disallow", "finish", "fleet", "host-shutdown",
         "notices", "reschedule", "schedule", "status", "wait"]


def comp_words(line):
    """COMP_WORDS as bash builds them: split at blanks, and at '=' and ':' (COMP_WORDBREAKS)."""
    words = []
    for token in line.split():
        words += re.findall(r"[=:]|[^=:]+", token)
    if line.endswith(" ") or not line:
        words.append("")
    return words


def complete(line, env, with_bash_completion=True, path=None):
    """The sorted completions bash offers for `line` (completing its last word)."""
    words = comp_words(line)
    words[0] = HOSTMAINTCTL if words[0] == "hostmaintctl" else words[0]
    full_line = " ".join([HOSTMAINTCTL] + line.split(" ")[1:])
    script = "\n".join([
        f". {BASH_COMPLETION}" if with_bash_completion else "",
        f". {shlex.quote(str(COMPLETION))}",
        "COMP_WORDS=(" + " ".join(shlex.quote(word) for word in words) + ")",
        f"COMP_CWORD={len(words) - 1}",
        f"COMP_LINE={shlex.quote(full_line)}",
        f"COMP_POINT={len(full_line)}",
        "_hostmaintctl",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    environment = dict(env)
    if path is not None:
        environment["PATH"] = path
    result = subprocess.run([shutil.which("bash"), "--norc", "--noprofile", "-c", script],
                            env=environment, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or result.stderr:
        raise AssertionError(f"completing {line!r} failed: {result.stderr}")
    return sorted(word for word in result.stdout.split("\n") if word)


@requires_tools(BASH_COMPLETION)
class Completion(DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.daemon.start()
        self.env = self.daemon.env

    def test_verbs_and_global_options(self):
        self.assertEqual(complete("hostmaintctl ", self.env), VERBS)
        self.assertEqual(complete("hostmaintctl s", self.env), ["schedule", "status"])
        self.assertEqual(complete("hostmaintctl --", self.env), ["--address", "--help", "--version"])

    def test_options_of_each_verb_once(self):
        self.assertEqual(complete("hostmaintctl schedule --", self.env),
                         ["--end", "--help", "--reason", "--removal", "--start"])
        self.assertEqual(complete("hostmaintctl schedule --start +1h --removal --", self.env),
                         ["--end", "--help", "--reason"])
        self.assertEqual(complete("hostmaintctl reschedule --", self.env),
                         ["--end", "--help", "--reason", "--start"])
        self.assertEqual(complete("hostmaintctl notices --", self.env), ["--help", "--json"])
        self.assertEqual(complete("hostmaintctl status --", self.env), ["--help", "--json"])
        self.assertEqual(complete("hostmaintctl wait --", self.env),
                         ["--help", "--phase", "--ready", "--timeout"])
        self.assertEqual(complete("hostmaintctl cancel --", self.env), ["--help"])
        self.assertEqual(complete("hostmaintctl fleet ", self.env), ["schedule", "status"])
        self.assertEqual(complete("hostmaintctl fleet status --", self.env),
                         ["--config", "--help", "--json"])
        self.assertEqual(complete("hostmaintctl fleet schedule --all --", self.env),
                         ["--config", "--help", "--hosts", "--max-concurrent", "--reason",
                          "--window"])

    def test_option_arguments(self):
        self.assertEqual(complete("hostmaintctl wait --phase ", self.env),
                         ["draining", "empty", "idle", "in-maintenance", "restoring", "scheduled"])
        self.assertIn("now", complete("hostmaintctl schedule --start ", self.env))
        self.assertIn("+30m", complete("hostmaintctl reschedule --start now --end +", self.env))
        self.assertEqual(complete("hostmaintctl ack vm-off move --reason ", self.env), [])

    def test_host_shutdown_options_and_allow_domains(self):
        self.assertEqual(complete("hostmaintctl host-shutdown --", self.env),
                         ["--help", "--no-wait", "--only-when-system-stops", "--timeout"])
        self.assertEqual(complete("hostmaintctl allow ", self.env),
                         complete("hostmaintctl ack ", self.env))
        self.assertTrue(complete("hostmaintctl allow ", self.env))

    def test_ack_completes_domains_from_the_status_then_the_choice(self):
        self.assertEqual(complete("hostmaintctl ack ", self.env), DOMAINS)
        self.assertEqual(complete("hostmaintctl ack vm-s", self.env), ["vm-shutdown", "vm-suspend"])
        self.assertEqual(complete("hostmaintctl ack vm-off ", self.env), ["keep", "move"])
        self.assertEqual(complete("hostmaintctl ack vm-off keep ", self.env), [])
        self.assertEqual(complete("hostmaintctl ack vm-off keep --", self.env), ["--help", "--reason"])

    def test_domains_from_the_bus_named_by_address(self):
        env = {k: v for k, v in self.env.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
        for line in (f"hostmaintctl --address {self.bus.address} ack ",
                     f"hostmaintctl --address={self.bus.address} ack "):
            with self.subTest(line=line):
                self.assertEqual(complete(line, env), DOMAINS)

    def test_without_jq_or_python_the_names_are_still_found(self):
        # Only bash, grep and sed on PATH: the completion's last resort.
        bin_dir = Path(tempfile.mkdtemp(prefix="hostmaint-completion-"))
        self.addCleanup(shutil.rmtree, bin_dir, True)
        for tool in ("bash", "grep", "sed"):
            os.symlink(shutil.which(tool), bin_dir / tool)
        self.assertEqual(complete("hostmaintctl ack ", self.env, path=str(bin_dir)), DOMAINS)

    def test_without_bash_completion_loaded(self):
        self.assertEqual(complete("hostmaintctl ", self.env, with_bash_completion=False), VERBS)
        self.assertEqual(complete("hostmaintctl ack ", self.env, with_bash_completion=False),
                         DOMAINS)
        self.assertEqual(complete("hostmaintctl ack vm-off ", self.env, with_bash_completion=False),
                         ["keep", "move"])

    def test_no_daemon_no_domains_and_no_noise(self):
        self.daemon.stop()
        self.assertEqual(complete("hostmaintctl ack ", self.env), [])


if __name__ == "__main__":
    unittest.main()
