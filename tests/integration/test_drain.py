"""End to end on the libvirt test driver: schedule, drain, ready, finish, restore."""

import unittest

from harness import DaemonTestCase


class DrainAndRestore(DaemonTestCase):

    def test_idle_daemon_publishes_inventory_on_dbus_and_in_status_file(self):
        self.daemon.start()
        self.assertEqual(self.daemon.get_property("Phase"), "idle")
        self.assertFalse(self.daemon.get_property("Ready"))
        self.assertEqual(self.daemon.get_property("HypervisorConnection"), "connected")
        status = self.daemon.status_file()
        self.assertEqual(status["phase"], "idle")
        self.assertFalse(status["ready"])
        names = {d["name"] for d in status["domains"]}
        self.assertTrue({"vm-suspend", "vm-shutdown", "vm-migrate", "vm-default"} <= names, names)

    def test_schedule_drains_to_ready_then_finish_restores(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", "--reason", "kernel update",
                        check=0)
        self.assertTrue(self.daemon.get_property("SessionId"))
        self.assertEqual(self.daemon.get_property("Reason"), "kernel update")

        self.daemon.ctl("wait", "--ready", "--timeout", "30", check=0)
        self.assertTrue(self.daemon.get_property("Ready"))
        self.assertEqual(self.daemon.get_property("Phase"), "empty")
        self.assertEqual(self.daemon.get_property("Blockers"), [])
        evidence = self.daemon.get_property("Evidence")
        self.assertTrue(evidence, "evidence checks are published")
        self.assertTrue(all(ok for _, ok, _ in evidence), evidence)

        status = self.daemon.status_file()
        self.assertTrue(status["ready"])
        self.assertEqual(status["phase"], "empty")
        self.assertEqual(self.daemon.domain("vm-suspend")["action"], "suspend")
        self.assertEqual(self.daemon.domain("vm-suspend")["state"], "done")
        self.assertEqual(self.daemon.domain("vm-shutdown")["action"], "shutdown")
        # The test driver cannot migrate: the fallback is taken, visibly.
        migrate = self.daemon.domain("vm-migrate")
        self.assertEqual(migrate["action"], "suspend")
        self.assertTrue(migrate["fallback_used"])
        self.assertIn("live-migrate", migrate["result"] + migrate["detail"])
        for entry in status["domains"]:
            if entry["name"] != "vm-off":
                self.assertNotIn(entry["run_state"], ("running", "paused"), entry)

        self.daemon.ctl("finish", check=0)
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "30", check=0)
        self.assertFalse(self.daemon.get_property("Ready"))
        for name in ("vm-suspend", "vm-shutdown", "vm-migrate", "vm-default"):
            entry = self.daemon.domain(name)
            self.assertEqual(entry["state"], "restored", entry)
            self.assertEqual(entry["run_state"], "running", entry)
        self.assertEqual(self.daemon.domain("vm-off")["run_state"], "shutoff")

    def test_cancel_before_window_returns_to_idle_touching_nothing(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        self.assertEqual(self.daemon.get_property("Phase"), "scheduled")
        plan = {d["name"]: d for d in self.daemon.status_file()["domains"]}
        self.assertEqual(plan["vm-suspend"]["state"], "planned")
        self.assertEqual(plan["vm-suspend"]["action"], "suspend")
        self.daemon.ctl("cancel", check=0)
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "10", check=0)
        for entry in self.daemon.status_file()["domains"]:
            if entry["name"] != "vm-off":
                self.assertEqual(entry["run_state"], "running", entry)

    def test_refusals_are_explained(self):
        self.daemon.start()
        result = self.daemon.ctl("finish", check=1)
        self.assertIn("idle", result.stderr + result.stdout)
        result = self.daemon.ctl("schedule", "--start", "+2h", "--end", "+1h", check=1)
        self.assertIn("end", (result.stderr + result.stdout).lower())
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+2h", check=0)
        result = self.daemon.ctl("schedule", "--start", "+1h", "--end", "+2h", check=1)
        self.assertIn("already", result.stderr + result.stdout)
        result = self.daemon.ctl("ack", "no-such-domain", "move", check=1)
        self.assertIn("no-such-domain", result.stderr + result.stdout)

    def test_schedule_survives_a_daemon_restart(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--reason", "bios", check=0)
        session = self.daemon.get_property("SessionId")
        window = (self.daemon.get_property("WindowStart"), self.daemon.get_property("WindowEnd"))
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.start()
        self.assertEqual(self.daemon.get_property("Phase"), "scheduled")
        self.assertEqual(self.daemon.get_property("SessionId"), session)
        self.assertEqual((self.daemon.get_property("WindowStart"),
                          self.daemon.get_property("WindowEnd")), window)
        self.assertEqual(self.daemon.get_property("Reason"), "bios")


if __name__ == "__main__":
    unittest.main()
