"""What a watcher of PropertiesChanged sees, on the real dbus-daemon: the small properties
(Phase, SessionId, ...) arrive with their values, the ones that grow with the number of
domains (StatusJSON, Notices, Domains, Blockers, Evidence) only as invalidated, and a Get
then returns the new value (docs/dbus-api.md, "Properties"); introspection says which is
which; hostmaintctl wait follows such signals. What a schedule published is logged once
its reply is out."""

import json
import subprocess
import unittest
import xml.etree.ElementTree as ElementTree

from harness import (BUS_NAME, DATA_DIR, INTERFACE, OBJECT_PATH, HOSTMAINTCTL, BusMonitor,
                     DaemonTestCase, wait_until)

BY_VALUE = {"Phase", "Ready", "SessionId", "WindowStart", "WindowEnd", "Removal", "Reason",
            "HypervisorConnection", "Migrations", "Cordoned", "HostShutdownState", "FleetStatus"}
INVALIDATED = {"Blockers", "Evidence", "Domains", "StatusJSON", "Notices"}
EMITS = "org.freedesktop.DBus.Property.EmitsChangedSignal"


class ChangeMonitor(BusMonitor):
    """busctl monitor for the agent's PropertiesChanged, parsed into (changed values,
    invalidated names); also sees the bus's GetId calls, which prove it is listening."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.changes = []
        self.pings = 0
        super().__init__(
            daemon,
            f"type='signal',path='{OBJECT_PATH}',"
            "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
            "type='method_call',interface='org.freedesktop.DBus',member='GetId'")

    def received(self, message):
        if message.get("member") == "GetId":
            self.pings += 1
        elif message.get("member") == "PropertiesChanged":
            interface, changed, invalidated = message["payload"]["data"]
            if interface == INTERFACE:
                self.changes.append(({name: value["data"] for name, value in changed.items()},
                                     set(invalidated)))

    def collected(self):
        self.drain()
        return list(self.changes)

    def wait_listening(self):
        """busctl becomes a monitor some time after it starts: ping until it sees one."""
        def seen():
            self.daemon.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetId")
            self.collected()
            return self.pings > 0
        wait_until(seen, 10, "busctl monitor listening")



class PropertySignals(DaemonTestCase):

    node_xml = DATA_DIR / "node-notices.xml"

    def test_schedule_sends_phase_by_value_and_invalidates_the_status(self):
        self.daemon.start()
        before = json.loads(self.daemon.get_property("StatusJSON"))
        self.assertEqual(before["phase"], "idle")
        monitor = ChangeMonitor(self.daemon)
        self.addCleanup(monitor.stop)
        monitor.wait_listening()

        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--reason", "bios", check=0)
        changes = wait_until(
            lambda: [c for c in monitor.collected() if c[0].get("Phase") == "scheduled"], 10,
            "PropertiesChanged with Phase=scheduled")
        changed, invalidated = changes[0]

        # The small ones with their values.
        session_id = changed.get("SessionId")
        self.assertTrue(session_id, changed)
        self.assertEqual(changed.get("Reason"), "bios")
        self.assertIn("WindowStart", changed)
        # The large ones named only, never with a value.
        self.assertIn("StatusJSON", invalidated)
        self.assertIn("Domains", invalidated)
        self.assertIn("Notices", invalidated)
        for _, names in monitor.collected():
            self.assertFalse(names & BY_VALUE, names)
        for values, _ in monitor.collected():
            self.assertFalse(set(values) & INVALIDATED, sorted(values))

        # A watcher's Get returns the new status: this schedule, a newer generation.
        after = json.loads(self.daemon.get_property("StatusJSON"))
        self.assertEqual(after["phase"], "scheduled")
        self.assertEqual(after["session_id"], session_id)
        self.assertGreater(after["generation"], before["generation"])
        self.assertEqual(after, self.daemon.status_file())
        notices = self.daemon.get_property("Notices")
        self.assertTrue(notices)
        self.assertEqual({json.loads(n[3])["session_id"] for n in notices}, {session_id})
        self.assertEqual({row[1]: row[3] for row in self.daemon.get_property("Domains")},
                         {d["name"]: d["state"] for d in after["domains"]})

    def test_notices_and_stage_changes_are_logged_after_the_reply(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        notices = self.daemon.get_property("Notices")
        self.assertTrue(notices)
        lines = wait_until(
            lambda: (lambda log: all(f"notice revision {n[2]} for domain {n[1]}:" in log
                                     for n in notices) and log.splitlines())(
                self.daemon.log_text()), 10, "a log line per notice")
        done = next(i for i, line in enumerate(lines) if "Schedule by uid" in line)
        # What the schedule published goes to the log once the reply is out,
        # every notice and every domain's new stage.
        for notice in notices:
            at = next(i for i, line in enumerate(lines)
                      if f"notice revision {notice[2]} for domain {notice[1]}:" in line)
            self.assertGreater(at, done, lines[at])
        staged = [i for i, line in enumerate(lines) if "[info] domain '" in line]
        self.assertTrue(staged, "no domain's stage logged")
        self.assertGreater(min(staged), done, lines[min(staged)])

    def test_introspection_says_which_properties_only_invalidate(self):
        self.daemon.start()
        result = self.daemon.busctl("introspect", "--xml-interface", BUS_NAME, OBJECT_PATH)
        self.assertEqual(result.returncode, 0, result.stderr)
        interface = [node for node in ElementTree.fromstring(result.stdout).iter("interface")
                     if node.get("name") == INTERFACE][0]
        emits = {}
        for prop in interface.iter("property"):
            annotation = [a.get("value") for a in prop.iter("annotation") if a.get("name") == EMITS]
            emits[prop.get("name")] = annotation[0] if annotation else "true"
        self.assertEqual({name for name, value in emits.items() if value == "invalidates"},
                         INVALIDATED)
        self.assertEqual({name for name, value in emits.items() if value == "true"}, BY_VALUE)
        self.assertEqual(emits["Version"], "const")

    def test_wait_follows_a_change_it_is_only_told_of(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        waiter = subprocess.Popen([HOSTMAINTCTL, "wait", "--phase", "idle", "--timeout", "30"],
                                  env=self.daemon.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: waiter.poll() is None and waiter.kill())
        # Its first line (the state it read) comes after it subscribed: the cancel's
        # signal cannot be missed, and the phase it waits for is not reached yet.
        first = waiter.stdout.readline()
        self.assertIn("scheduled", first)
        self.daemon.ctl("cancel", check=0)
        out, err = waiter.communicate(timeout=30)
        self.assertEqual(waiter.returncode, 0, first + out + err)
        self.assertIn("host is in phase idle", out)


if __name__ == "__main__":
    unittest.main()
