"""Blockers are named with their reason; one bad domain never stops the others."""

import unittest

from harness import DaemonTestCase, DATA_DIR, wait_until


class Blockers(DaemonTestCase):
    node_xml = DATA_DIR / "node-blockers.xml"

    def test_malformed_policy_and_missing_ack_block_readiness_by_name(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "now", "--end", "+1h", check=0)
        result = self.daemon.ctl("wait", "--ready", "--timeout", "3", check=4)
        self.assertIn("vm-broken", result.stdout + result.stderr)

        broken = self.daemon.domain("vm-broken")
        self.assertEqual(broken["state"], "blocked")
        self.assertIsNone(broken["action"])
        self.assertIn("teleport", broken["policy_error"])
        self.assertEqual(self.daemon.domain("vm-acked")["state"], "awaiting-ack")
        # The others were drained regardless.
        self.assertEqual(self.daemon.domain("vm-suspend")["state"], "done")
        self.assertEqual(self.daemon.domain("vm-shutdown")["state"], "done")

        blockers = self.daemon.get_property("Blockers")
        subjects = " ".join(subject for subject, _ in blockers)
        self.assertIn("vm-broken", subjects)
        self.assertIn("vm-acked", subjects)
        reasons = " ".join(reason for _, reason in blockers)
        self.assertIn("teleport", reasons)
        self.assertFalse(self.daemon.get_property("Ready"))

        # The owner acknowledges: the domain is handled.
        self.daemon.ctl("ack", "vm-acked", "keep", check=0)
        self.assertEqual(self.daemon.domain("vm-acked")["ack"], "keep")
        self.assertNotIn("vm-acked", " ".join(s for s, _ in self.daemon.get_property("Blockers")))

    def test_window_ending_undrained_is_an_overrun_that_forces_nothing(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "now", "--end", "+3s", check=0)
        self.assertFalse(self.daemon.status_file()["overrun"])
        # Nothing else happens at the end: the daemon's own timer must wake it.
        status = wait_until(lambda: (lambda s: s if s["overrun"] else None)(
            self.daemon.status_file()), 20, "the overrun at the window's end")
        self.assertEqual(status["phase"], "draining")
        self.assertEqual(status["overrun_since"], status["window"]["end"])
        reasons = [b["reason"] for b in status["blockers"] if b["subject"] == "window"]
        self.assertEqual(len(reasons), 1, status["blockers"])
        self.assertIn("still draining: 2 domains (vm-acked, vm-broken)", reasons[0])
        # Nothing forced: the blocked domain and the unacknowledged one are as they were.
        self.assertEqual(self.daemon.domain("vm-broken")["state"], "blocked")
        self.assertEqual(self.daemon.domain("vm-acked")["state"], "awaiting-ack")
        notice = self.daemon.domain("vm-acked")["notice"]
        self.assertTrue(notice["overrun"], notice)
        self.assertIn("The maintenance window ended at", notice["message"])
        self.assertFalse(self.daemon.domain("vm-suspend")["notice"]["overrun"],
                         "done before the end: not revised")
        self.assertEqual(self.daemon.log_text().count("maintenance window overrun:"), 1)
        shown = self.daemon.ctl("status", check=0).stdout
        self.assertIn("overrun", shown)

        # A later end ends it; the start as status.json shows it (whole
        # seconds, while "now" had a fraction) is the same start.
        self.daemon.ctl("reschedule", "--start", status["window"]["start"], "--end", "+1h",
                        check=0)
        status = self.daemon.status_file()
        self.assertFalse(status["overrun"])
        self.assertIsNone(status["overrun_since"])
        self.assertNotIn("window", [b["subject"] for b in status["blockers"]])
        self.assertFalse(self.daemon.domain("vm-acked")["notice"]["overrun"])
        self.assertIn("maintenance window overrun ended", self.daemon.log_text())

    def test_non_root_may_read_but_not_mutate(self):
        self.daemon.start()
        self.assertEqual(self.daemon.get_property("Phase", user="nobody"), "idle")
        denied = self.daemon.busctl("call", "org.hostmaint.Agent1", "/org/hostmaint/Agent1",
                                    "org.hostmaint.Agent1", "Schedule", "ttbs",
                                    "0", "1", "false", "x", user="nobody")
        self.assertNotEqual(denied.returncode, 0)
        # busctl prints the bus's org.freedesktop.DBus.Error.AccessDenied as text.
        self.assertIn("access denied", (denied.stderr + denied.stdout).lower())
        result = self.daemon.ctl("cancel", user="nobody", check=5)
        self.assertIn("denied", (result.stderr + result.stdout).lower())
        self.assertEqual(self.daemon.get_property("Phase"), "idle")


if __name__ == "__main__":
    unittest.main()
