"""hostmaintd keeps the maintenance going when the D-Bus system bus goes away, and is
back on the bus, with current properties, when the bus returns (docs/dbus-api.md,
"Reconnection")."""

import json
import socket
import time
import unittest
import urllib.request

from harness import DaemonTestCase, wait_until


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BusReconnect(DaemonTestCase):
    def setUp(self):
        self.port = free_port()
        self.extra_config = (f'[http]\nenabled = true\nlisten_address = "127.0.0.1"\n'
                             f'port = {self.port}\n')
        super().setUp()

    def metric(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def ctl_works(self):
        return self.daemon.ctl("status", timeout=20).returncode == 0

    def test_the_drain_goes_on_while_the_bus_is_down_and_the_bus_is_served_again(self):
        self.daemon.start()
        self.assertTrue(self.daemon.status_file()["dbus"]["connected"])
        self.assertEqual(self.metric("hostmaint_dbus_connected"), 1)
        # The window starts a few seconds from now: after the bus has gone.
        self.daemon.ctl("schedule", "--start", "+4s", "--end", "+2h", check=0)
        self.assertEqual(self.daemon.get_property("Phase"), "scheduled")

        self.bus.stop()
        wait_until(lambda: not self.daemon.status_file()["dbus"]["connected"], 10,
                   "status.json to show the bus lost")
        self.assertFalse(self.ctl_works(), "hostmaintctl works without a bus")
        # The window starts and the drain runs to its end with the bus down.
        status = wait_until(lambda: (s := self.daemon.status_file())["phase"] == "empty" and s, 30,
                            "the drain to finish while the bus is down")
        self.assertTrue(status["ready"])
        self.assertFalse(status["dbus"]["connected"])
        self.assertIsNotNone(status["dbus"]["last_error"])
        self.assertEqual(self.daemon.domain("vm-suspend")["state"], "done")
        self.assertEqual(self.daemon.domain("vm-shutdown")["state"], "done")
        self.assertIsNone(self.daemon.process.poll(), "hostmaintd exited when the bus went away")
        self.assertEqual(self.metric("hostmaint_dbus_connected"), 0)
        self.daemon.notify.wait_for("D-Bus disconnected", 5)

        self.bus.start()
        started = time.monotonic()
        # The backoff's next attempt is at most a few seconds away here (the bus was
        # down for less than ten).
        wait_until(self.ctl_works, 20, "hostmaintctl status to work again")
        print(f"back on the bus {time.monotonic() - started:.1f} s after it returned")
        self.assertEqual(self.daemon.get_property("Phase"), "empty")
        self.assertTrue(self.daemon.get_property("Ready"))
        shown = json.loads(self.daemon.get_property("StatusJSON"))
        self.assertTrue(shown["dbus"]["connected"])
        self.assertEqual(shown["phase"], "empty")
        self.assertTrue(self.daemon.status_file()["dbus"]["connected"])
        self.assertEqual(self.metric("hostmaint_dbus_connected"), 1)
        log = self.daemon.log_text()
        self.assertEqual(log.count("lost the connection to the D-Bus system bus; the maintenance"),
                         1, "the loss is reported once")
        self.assertIn("reconnected to the D-Bus system bus after", log)

        self.daemon.ctl("finish", check=0)
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "30", check=0)
        self.assertEqual(self.daemon.domain("vm-suspend")["state"], "restored")
        self.assertEqual(self.daemon.stop(), 0)


if __name__ == "__main__":
    unittest.main()
