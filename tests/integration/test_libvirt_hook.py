"""The libvirt hook as libvirtd runs it: the built binary, a cordon file, the domain XML on
stdin, a cleared environment; exit status and the line on stderr (docs/operations.md,
"Cordon: the libvirt hook")."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import SOURCE_DIR, assert_no_sanitizer_report

HOOK = os.environ.get("HOSTMAINT_LIBVIRT_HOOK", str(SOURCE_DIR / "build/agent/hook/libvirt-hook"))

WEB2_UUID = "6f2d3c8e-0000-4000-8000-000000000002"
WEB3_UUID = "6f2d3c8e-0000-4000-8000-000000000003"

CORDONED = {
    "format": 1, "host": "hm-lab-a", "cordoned": True, "session_id": "abc", "phase": "draining",
    "since": "2026-12-01T10:00:00Z", "window_start": "2026-12-01T10:00:00Z",
    "window_end": "2026-12-01T12:00:00Z", "reason": "kernel update",
    "allowed": [{"domain": "web1", "reason": "debugging", "by": "uid 0", "at": "2026-12-01T10:05:00Z"}],
    "restoring": [{"name": "web2", "uuid": WEB2_UUID}],
    "written_at": "2026-12-01T10:05:00Z",
}


def domain_xml(name, uuid):
    return (f"<domain type='kvm'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n"
            f"  <memory unit='KiB'>524288</memory>\n</domain>\n")


class LibvirtHook(unittest.TestCase):

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hostmaint-hook-"))
        self.cordon = self.dir / "cordon.json"

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_cordon(self, document):
        # As hostmaintd does: a new file renamed over the old one.
        temporary = self.dir / "cordon.json.new"
        temporary.write_text(json.dumps(document) if isinstance(document, dict) else document)
        temporary.replace(self.cordon)

    def run_hook(self, *args, xml="", program=None, timeout=10):
        # libvirt runs hooks with an environment of its own, not the caller's.
        argv = [program] if program else [HOOK, "--cordon-file", str(self.cordon)]
        result = subprocess.run(argv + list(args), input=xml.encode(), capture_output=True,
                                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, timeout=timeout)
        stderr = result.stderr.decode()
        assert_no_sanitizer_report(stderr, "libvirt-hook")
        # libvirt takes the stdout of `migrate begin` as a replacement domain XML.
        self.assertEqual(result.stdout, b"", "the hook must never write to stdout")
        return result.returncode, stderr

    def test_no_cordon_file_allows(self):
        code, stderr = self.run_hook("web3", "prepare", "begin", "-", xml=domain_xml("web3", WEB3_UUID))
        self.assertEqual((code, stderr), (0, ""))

    def test_not_cordoned_allows(self):
        self.write_cordon({"format": 1, "cordoned": False})
        code, stderr = self.run_hook("web3", "migrate", "begin", "-", xml=domain_xml("web3", WEB3_UUID))
        self.assertEqual((code, stderr), (0, ""))

    def test_cordoned_refuses_a_start_with_one_line(self):
        self.write_cordon(CORDONED)
        code, stderr = self.run_hook("web3", "prepare", "begin", "-", xml=domain_xml("web3", WEB3_UUID))
        self.assertEqual(code, 1)
        self.assertEqual(
            stderr,
            "hostmaint: host hm-lab-a is cordoned for maintenance (session abc, phase draining, "
            "window 2026-12-01T10:00:00Z \u2013 12:00:00Z: kernel update); starting domain 'web3' "
            "here is refused. To allow this domain anyway: hostmaintctl allow web3 --reason TEXT "
            "(as root)\n")

    def test_cordoned_refuses_an_incoming_migration(self):
        self.write_cordon(CORDONED)
        code, stderr = self.run_hook("web3", "migrate", "begin", "-", xml=domain_xml("web3", WEB3_UUID))
        self.assertEqual(code, 1)
        self.assertIn("migrating domain 'web3' into this host is refused", stderr)

    def test_allowed_and_restoring_domains_pass(self):
        self.write_cordon(CORDONED)
        self.assertEqual(self.run_hook("web1", "prepare", "begin", "-", xml=domain_xml("web1", WEB3_UUID)),
                         (0, ""))
        # Restoring, matched by the UUID read from the XML on stdin (the name differs).
        self.assertEqual(self.run_hook("web2-renamed", "prepare", "begin", "-",
                                       xml=domain_xml("web2-renamed", WEB2_UUID)), (0, ""))
        self.assertEqual(self.run_hook("web2-renamed", "prepare", "begin", "-",
                                       xml=domain_xml("web2-renamed", WEB3_UUID))[0], 1)

    def test_other_operations_pass_even_with_a_broken_file(self):
        self.write_cordon("{ not json")
        for operation in (("release", "end"), ("started", "begin"), ("stopped", "end"),
                          ("reconnect", "begin"), ("restore", "begin")):
            self.assertEqual(self.run_hook("web3", *operation, "-", xml=domain_xml("web3", WEB3_UUID)),
                             (0, ""), operation)

    def test_broken_file_refuses_naming_path_and_fix(self):
        self.write_cordon("{ not json")
        code, stderr = self.run_hook("web3", "prepare", "begin", "-")
        self.assertEqual(code, 1)
        self.assertIn(f"cannot use the cordon file {self.cordon} (invalid JSON: parse error", stderr)
        self.assertIn("Check with hostmaintctl status; if hostmaint is no longer used on this host, "
                      f"remove {self.cordon}", stderr)

    def test_newer_format_refuses(self):
        self.write_cordon({"format": 2, "cordoned": False})
        code, stderr = self.run_hook("web3", "prepare", "begin", "-")
        self.assertEqual(code, 1)
        self.assertIn("format 2 is newer than this hook understands", stderr)

    def test_fifo_in_place_of_the_file_refuses_at_once(self):
        os.mkfifo(self.cordon)
        started = time.monotonic()
        code, stderr = self.run_hook("web3", "prepare", "begin", "-", timeout=4)
        self.assertLess(time.monotonic() - started, 3, "a FIFO must not block the hook")
        self.assertEqual(code, 1)
        self.assertIn("(not a regular file)", stderr)

    def test_large_domain_xml_is_read_and_its_uuid_found(self):
        self.write_cordon(CORDONED)
        padding = "  <description>" + "x" * (4 * 1024 * 1024) + "</description>\n"
        xml = domain_xml("web2-renamed", WEB2_UUID).replace("</domain>", padding + "</domain>")
        self.assertEqual(self.run_hook("web2-renamed", "prepare", "begin", "-", xml=xml), (0, ""))

    def test_wrapper_in_a_hooks_directory(self):
        # What the lab and the tests install in /etc/libvirt/hooks/qemu.d: a wrapper
        # that names the cordon file, run by libvirt with four arguments.
        wrapper = self.dir / "50-hostmaint"
        wrapper.write_text(f'#!/bin/sh\nexec "{HOOK}" --cordon-file "{self.cordon}" -- "$@"\n')
        wrapper.chmod(0o755)
        self.write_cordon(CORDONED)
        code, stderr = self.run_hook("web3", "prepare", "begin", "-", program=str(wrapper))
        self.assertEqual(code, 1)
        self.assertIn("starting domain 'web3' here is refused", stderr)

    def test_usage_errors_exit_2(self):
        code, stderr = self.run_hook()
        self.assertEqual(code, 2)
        self.assertIn("usage: libvirt-hook [--cordon-file PATH] DOMAIN OPERATION SUBOP [EXTRA]", stderr)
        code, stderr = self.run_hook("web3", "prepare", "begin", "-", "unexpected")
        self.assertEqual(code, 2)

    def test_stdin_never_closed_ends_by_the_alarm(self):
        # libvirt closes stdin after the XML; should it not, the hook must still end
        # (killed by SIGALRM: a non-zero status, so the operation is refused).
        process = subprocess.Popen([HOOK, "--cordon-file", str(self.cordon), "web3", "prepare",
                                    "begin", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env={})
        try:
            process.stdin.write(domain_xml("web3", WEB3_UUID).encode())
            process.stdin.flush()
            code = process.wait(timeout=15)
        finally:
            process.kill()
            process.communicate()
        self.assertEqual(code, -signal.SIGALRM)


if __name__ == "__main__":
    unittest.main()
