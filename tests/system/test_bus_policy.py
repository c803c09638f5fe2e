"""The shipped bus policy on the real system bus (dbus-daemon started by systemd)."""

import unittest
import xml.etree.ElementTree as ET

from sysvm import (ADMIN, ADMIN_GROUP, BUS_NAME, INTERFACE, OBJECT, UNIT, USER,
                   SystemTestCase, ctl, get_property, install_admin_bus_policy, run,
                   write_site_config)

# A dummy value per D-Bus type, for dbus-send's typed arguments.
DUMMY = {"t": "uint64:0", "b": "boolean:false", "s": "string:x", "u": "uint32:0",
         "i": "int32:0", "x": "int64:0", "d": "double:0"}


def mutating_methods():
    """Every method of the agent's interface, read from the live object as root:
    all of them change maintenance (docs/dbus-api.md), and a method added
    later is covered without editing this test."""
    xml = run("busctl", "--system", "--xml-interface", "introspect", BUS_NAME, OBJECT).stdout
    interface = ET.fromstring(xml).find(f"interface[@name='{INTERFACE}']")
    methods = {}
    for method in interface.findall("method"):
        methods[method.get("name")] = [DUMMY[arg.get("type")] for arg in method.findall("arg")
                                       if arg.get("direction", "in") == "in"]
    return methods


def send(method, args, user, interface=INTERFACE):
    return run("dbus-send", "--system", "--print-reply", f"--dest={BUS_NAME}", OBJECT,
               f"{interface}.{method}", *args, user=user, check=False)


class BusPolicy(SystemTestCase):
    def test_root_can_schedule_and_cancel(self):
        ctl("schedule", "--start", "+1h", "--end", "+2h", "--reason", "root")
        self.assertEqual(get_property("Phase"), "scheduled")
        ctl("cancel")
        ctl("wait", "--phase", "idle", "--timeout", "60")

    def test_unprivileged_user_reads_but_every_mutating_call_is_denied(self):
        self.assertEqual(get_property("Phase", user=USER), "idle")
        run("busctl", "--system", "introspect", BUS_NAME, OBJECT, user=USER)
        run("dbus-send", "--system", "--print-reply", f"--dest={BUS_NAME}", OBJECT,
            "org.freedesktop.DBus.Properties.GetAll", f"string:{INTERFACE}", user=USER)
        run("dbus-send", "--system", "--print-reply", f"--dest={BUS_NAME}", OBJECT,
            "org.freedesktop.DBus.Peer.Ping", user=USER)

        methods = mutating_methods()
        self.assertLessEqual({"Schedule", "Cancel", "Acknowledge", "Begin", "Finish"}, set(methods))
        calls = [(name, args, INTERFACE) for name, args in methods.items()]
        calls.append(("Set", [f"string:{INTERFACE}", "string:Reason", "variant:string:x"],
                      "org.freedesktop.DBus.Properties"))
        for name, args, interface in calls:
            with self.subTest(method=name):
                result = send(name, args, USER, interface)
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertIn("org.freedesktop.DBus.Error.AccessDenied", result.stderr)
                # Refused by the bus's policy, before the daemon's own check
                # ("only root may call ...") could answer.
                self.assertIn("Rejected send message", result.stderr)
        for verb in (["schedule", "--start", "now", "--end", "+1h"],
                     ["reschedule", "--start", "+1h", "--end", "+2h"], ["cancel"],
                     ["ack", "app1", "move"], ["begin"], ["finish"]):
            with self.subTest(verb=verb[0]):
                ctl(*verb, user=USER, check=5)
        self.assertEqual(get_property("Phase"), "idle")

    def test_admin_group_members_may_mutate_when_configured(self):
        # Without configuration an admin is just another user.
        ctl("schedule", "--start", "+1h", "--end", "+2h", user=ADMIN, check=5)

        write_site_config(f'[dbus]\nadmin_group = "{ADMIN_GROUP}"\n')
        install_admin_bus_policy()
        run("systemctl", "restart", UNIT)

        result = ctl("schedule", "--start", "+1h", "--end", "+2h", "--reason", "admin", user=ADMIN)
        self.assertIn("scheduled", result.stdout)
        self.assertEqual(get_property("Phase"), "scheduled")
        # Anyone else is still refused, by the bus.
        ctl("cancel", user=USER, check=5)
        ctl("cancel", user=ADMIN)
        ctl("wait", "--phase", "idle", "--timeout", "60", user=ADMIN)


if __name__ == "__main__":
    unittest.main()
