"""The real daemon on the libvirt test driver: the cordon file, overrides and [cordon]
commands, and the host-shutdown call (docs/operations.md, "Cordon" and "Host shutdown")."""

import json
import unittest

from harness import DaemonTestCase, wait_until

RUNNING = ("vm-suspend", "vm-shutdown", "vm-migrate", "vm-default")


class CordonFile(DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.workdir / "commands.log"
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text() +
            f'\n[cordon]\ncordon_command = "echo cordon $((40+2)) >> {self.log}"\n'
            f'uncordon_command = "echo uncordon >> {self.log}; echo done"\n')

    def cordon_file(self):
        return json.loads((self.daemon.state_dir / "cordon.json").read_text())

    def test_follows_the_maintenance_with_overrides_and_commands(self):
        self.daemon.start()
        self.assertEqual(self.cordon_file()["cordoned"], False)
        self.assertEqual(self.cordon_file()["format"], 1)
        self.assertFalse(self.daemon.get_property("Cordoned"))
        refused = self.daemon.ctl("allow", "vm-off", check=1)
        self.assertIn("no maintenance is scheduled", refused.stderr)

        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", "--reason", "kernel",
                        check=0)
        self.daemon.ctl("wait", "--ready", "--timeout", "30", check=0)
        cordon = self.cordon_file()
        self.assertTrue(cordon["cordoned"])
        self.assertEqual(cordon["session_id"], self.daemon.get_property("SessionId"))
        self.assertEqual(cordon["reason"], "kernel")
        self.assertTrue(self.daemon.get_property("Cordoned"))
        wait_until(lambda: self.daemon.status_file()["cordon"]["commands"][0]["state"] == "ok",
                   10, "the cordon command to succeed")
        self.assertEqual(self.log.read_text(), "cordon 42\n")

        # Overrides: root only, recorded with who and why, in the file for the hook.
        denied = self.daemon.ctl("allow", "vm-off", user="nobody", check=5)
        self.assertIn("access denied", denied.stderr)
        self.daemon.ctl("allow", "vm-off", "--reason", "rebuild", check=0)
        [allowed] = self.cordon_file()["allowed"]
        self.assertEqual((allowed["domain"], allowed["name"], allowed["reason"], allowed["by"]),
                         ("vm-off", "vm-off", "rebuild", "uid 0"))
        self.assertEqual(self.daemon.status_file()["cordon"]["allowed"][0]["reason"], "rebuild")
        self.assertIn("allowed: vm-off", self.daemon.ctl("status", check=0).stdout)
        self.daemon.ctl("disallow", "vm-off", check=0)
        self.assertEqual(self.cordon_file()["allowed"], [])
        self.daemon.ctl("disallow", "vm-off", check=1)

        self.daemon.ctl("finish", check=0)
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "30", check=0)
        self.assertFalse(self.cordon_file()["cordoned"])
        self.assertFalse(self.daemon.get_property("Cordoned"))
        wait_until(lambda: self.log.read_text() == "cordon 42\nuncordon\n", 10,
                   "the uncordon command")
        wait_until(lambda: self.daemon.status_file()["cordon"]["commands"][0]["output"] == "done\n",
                   10, "the uncordon command's output in the status")

    def test_a_failing_command_is_a_blocker_with_its_output(self):
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text().replace(
                f'cordon_command = "echo cordon $((40+2)) >> {self.log}"',
                'cordon_command = "echo scheduler unreachable >&2; exit 7"'))
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", check=0)
        wait_until(lambda: any(b["subject"] == "cordon cordon command"
                               for b in self.daemon.status_file()["blockers"]),
                   10, "the failed command as a blocker")
        [run] = self.daemon.status_file()["cordon"]["commands"]
        self.assertEqual((run["state"], run["exit_status"], run["output"]),
                         ("failed", 7, "scheduler unreachable\n"))
        self.assertIn("exited with status 7", self.daemon.log_text())


class HostShutdownCall(DaemonTestCase):

    def test_suspends_every_running_domain_and_only_root_may_ask(self):
        self.daemon.start()
        self.assertEqual(self.daemon.get_property("HostShutdownState"), "")
        denied = self.daemon.ctl("host-shutdown", user="nobody", check=5)
        self.assertIn("access denied", denied.stderr)
        self.assertIsNone(self.daemon.status_file()["host_shutdown"])

        done = self.daemon.ctl("host-shutdown", "--timeout", "60", check=0)
        self.assertIn("4 of 4 domains done", done.stdout)
        self.assertEqual(self.daemon.get_property("HostShutdownState"), "done")
        record = self.daemon.status_file()["host_shutdown"]
        results = {d["name"]: (d["action"], d["result"]) for d in record["domains"]}
        self.assertEqual(results, {"vm-suspend": ("suspend", "suspended"),
                                   "vm-shutdown": ("suspend", "suspended"),
                                   "vm-migrate": ("suspend", "suspended"),
                                   "vm-default": ("suspend", "suspended")})
        for name in RUNNING:
            self.assertEqual(self.daemon.domain(name)["run_state"], "shutoff")
            notice = self.daemon.domain(name)["notice"]
            self.assertEqual(notice["downtime_basis"], "host-shutdown")
        self.assertEqual(self.daemon.domain("vm-off")["run_state"], "shutoff")
        self.assertIn("host shutdown", self.daemon.ctl("status", check=0).stdout)

        # Asked again (a retried unit stop): the same shutdown, nothing new to do.
        self.daemon.ctl("host-shutdown", "--timeout", "60", check=0)
        self.assertEqual(self.daemon.status_file()["host_shutdown"]["started_at"],
                         record["started_at"])

        # Started again: the restores revise every owner's notice while the daemon is
        # still coming up (the test driver's domains come back running from the node
        # XML, so each is "already running").
        self.daemon.stop()
        self.daemon.start()
        wait_until(lambda: self.daemon.status_file()["host_shutdown"]["state"] == "restored",
                   30, "the restore at start")
        self.assertEqual(self.daemon.get_property("HostShutdownState"), "restored")
        for name in RUNNING:
            self.assertIn("running again", self.daemon.domain(name)["notice"]["message"])


if __name__ == "__main__":
    unittest.main()
