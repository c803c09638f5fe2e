"""hostmaintd under a real systemd: Type=notify readiness, STATUS= and the watchdog."""

import os
import signal
import unittest
from pathlib import Path

from sysvm import (CONF_D, DOMAINS, NODE_XML, UNIT, Journal, SystemTestCase, ctl, get_property, main_pid,
                   run, status, unit_property, wait_until)


class Readiness(SystemTestCase):
    def test_start_returns_active_only_after_ready(self):
        run("systemctl", "stop", UNIT)
        # libvirt that never answers: hostmaintd waits for a first inventory
        # (10 s) before it claims its bus name and sends READY=1.
        (CONF_D / "60-unreachable.conf").write_text(
            '[libvirt]\nuri = "qemu+unix:///system?socket=/run/sysvm-no-libvirt.sock"\n')
        self.addCleanup(lambda: ((CONF_D / "60-unreachable.conf").unlink(),
                                 run("systemctl", "restart", UNIT)))
        journal = Journal()
        run("systemctl", "start", "--no-block", UNIT)
        wait_until(lambda: unit_property("MainPID") not in ("", "0"), "hostmaintd to be started")
        # The process runs, but has not said READY=1: the unit is still starting
        # and nobody owns the bus name yet.
        self.assertEqual(unit_property("ActiveState"), "activating")
        self.assertEqual(unit_property("SubState"), "start")
        owner = run("busctl", "--system", "status", "org.hostmaint.Agent1", check=False)
        self.assertNotEqual(owner.returncode, 0, owner.stdout)

        # `systemctl start` blocks until READY=1 (or fails).
        run("systemctl", "start", UNIT, timeout=120)
        self.assertEqual(unit_property("ActiveState"), "active")
        priority, message = journal.wait_for_daemon_message("no inventory from")
        self.assertEqual(priority, 4, message)  # a warning
        journal.wait_for_daemon_message("serving org.hostmaint.Agent1 on the system bus")
        # READY=1 carried the first STATUS=, and came after the name was claimed.
        self.assertIn("hypervisor", unit_property("StatusText"))
        self.assertEqual(get_property("Phase"), "idle")

    def test_a_daemon_that_never_gets_ready_never_becomes_active(self):
        # Another hostmaintd holds the bus name: the unit's daemon exits 1
        # without READY=1, and systemd must never have called the unit active.
        run("systemctl", "stop", UNIT)
        rival_conf = Path("/run/sysvm-rival.conf")
        rival_conf.write_text(f'[libvirt]\nuri = "test://{NODE_XML}"\n'
                              '[paths]\nstate_dir = "/run/sysvm-rival"\nruntime_dir = "/run/sysvm-rival"\n')
        rival = run("systemd-run", "--unit=sysvm-rival", "--property=Type=notify",
                    "/usr/sbin/hostmaintd", "--config", rival_conf, timeout=120)
        self.addCleanup(lambda: (run("systemctl", "stop", "sysvm-rival", check=False),
                                 run("systemctl", "reset-failed", UNIT, check=False),
                                 run("systemctl", "restart", UNIT)))
        self.assertEqual(rival.returncode, 0)
        run("systemctl", "reset-failed", UNIT, check=False)
        journal = Journal()
        started = run("systemctl", "start", UNIT, check=False, timeout=120)
        self.assertNotEqual(started.returncode, 0, "the unit started although its name is taken")
        # Restart=on-failure tries again in 5 s; it never was active meanwhile.
        self.assertNotEqual(unit_property("ActiveState"), "active")
        messages = journal.manager_messages()
        self.assertFalse([m for m in messages if m.startswith("Started ")], messages)
        self.assertTrue([m for _, m in journal.daemon_messages() if "org.hostmaint.Agent1" in m],
                        journal.daemon_messages())

    def test_status_text_follows_the_phase(self):
        self.assertEqual(unit_property("ActiveState"), "active")
        self.assertRegex(unit_property("StatusText"), r"^idle, not ready, 3 domains")
        ctl("schedule", "--start", "+2h", "--end", "+4h", "--reason", "status text")
        self.addCleanup(ctl, "cancel", check=None)
        wait_until(lambda: unit_property("StatusText").startswith("scheduled"),
                   "STATUS= to say scheduled")
        shown = run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
        self.assertIn(f'Status: "{unit_property("StatusText")}"', shown)


class Watchdog(SystemTestCase):
    def test_stopped_daemon_is_restarted_and_continues_the_maintenance(self):
        self.assertEqual(unit_property("WatchdogUSec"), "30s")
        # The daemon pings: systemd's record of the last WATCHDOG=1 moves on
        # (hostmaintd pings every WatchdogSec/2 from its event loop).
        last_ping = unit_property("WatchdogTimestampMonotonic")
        wait_until(lambda: unit_property("WatchdogTimestampMonotonic") != last_ping,
                   "a WATCHDOG=1 from hostmaintd", 40)
        ctl("schedule", "--start", "now", "--end", "+2h", "--reason", "watchdog")
        ctl("wait", "--phase", "draining", "--timeout", "60")
        session = get_property("SessionId")
        # Every domain waits for its owner's ack: nothing was acted on yet.
        self.assertEqual({d["state"] for d in status()["domains"]}, {"awaiting-ack"})

        journal = Journal()
        stopped = main_pid()
        os.kill(stopped, signal.SIGSTOP)
        # WatchdogSec=30, RestartSec=5s: a new daemon within about 35 s.
        wait_until(lambda: main_pid() not in (0, stopped) and
                   unit_property("ActiveState") == "active", "systemd to restart hostmaintd", 120)
        self.assertTrue([m for m in journal.manager_messages() if "Watchdog timeout" in m],
                        journal.manager_messages())
        self.assertGreaterEqual(int(unit_property("NRestarts")), 1)

        # The new daemon continued the same maintenance from its journal ...
        self.assertEqual(get_property("SessionId"), session)
        self.assertEqual(get_property("Phase"), "draining")
        # ... and finishes it once the owners answer.
        for name in DOMAINS:
            ctl("ack", name, "move")
        ctl("wait", "--ready", "--timeout", "120")
        self.assertEqual(get_property("SessionId"), session)
        self.assertEqual({d["state"] for d in status()["domains"]}, {"done"})
        ctl("finish")
        ctl("wait", "--phase", "idle", "--timeout", "120")


SHUTDOWN_UNIT = "hostmaint-shutdown.service"


class HostShutdownUnit(SystemTestCase):
    """The package's hostmaint-shutdown.service: active, and a stop of it while the
    system runs (an admin, an upgrade) suspends nothing."""

    def test_stopping_the_unit_outside_a_system_shutdown_touches_no_domain(self):
        self.assertEqual(unit_property("UnitFileState", SHUTDOWN_UNIT), "enabled")
        self.assertEqual(unit_property("ActiveState", SHUTDOWN_UNIT), "active")
        running_before = sorted(d["name"] for d in status()["domains"] if d["run_state"] == "running")
        self.assertTrue(running_before, "the test node has running domains")
        journal = Journal()
        run("systemctl", "stop", SHUTDOWN_UNIT)
        self.addCleanup(lambda: run("systemctl", "start", SHUTDOWN_UNIT))
        self.assertEqual(unit_property("ActiveState", SHUTDOWN_UNIT), "inactive")
        wait_until(lambda: any("the system is not shutting down" in m
                               for m in journal.messages("-u", SHUTDOWN_UNIT)),
                   "hostmaintctl to say why it did nothing")
        self.assertIsNone(status()["host_shutdown"])
        running_after = sorted(d["name"] for d in status()["domains"] if d["run_state"] == "running")
        self.assertEqual(running_after, running_before)


if __name__ == "__main__":
    unittest.main()
