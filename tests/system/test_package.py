"""The .deb under a real systemd: installed and started, reinstalled and upgraded
while a maintenance is scheduled."""

import re
import unittest

from sysvm import (BUMPED_DEB, DEB, DOMAINS, UNIT, Journal, SystemTestCase, ctl, get_property,
                   main_pid, run, status, unit_property)


def installed_version():
    return run("dpkg-query", "-W", "-f", "${Version}", "hostmaint").stdout


def domain_view():
    """What may not change when the package is replaced: each domain's run
    state and stage."""
    return {d["name"]: (d["run_state"], d["state"]) for d in status()["domains"]}


class Package(SystemTestCase):
    def test_installed_enabled_and_running_under_systemd(self):
        self.assertEqual(unit_property("UnitFileState"), "enabled")
        self.assertEqual(unit_property("ActiveState"), "active")
        self.assertEqual(unit_property("Type"), "notify")
        self.assertEqual(get_property("Phase"), "idle")
        # The sandbox leaves the daemon what it needs: nothing was denied.
        log = run("journalctl", "-u", UNIT, "-o", "cat").stdout
        self.assertNotRegex(log, r"(?i)permission denied|operation not permitted|EPERM|EACCES")

    def test_reinstall_and_upgrade_keep_a_scheduled_maintenance_and_touch_no_domain(self):
        result = ctl("schedule", "--start", "+2h", "--end", "+4h", "--reason", "upgrade test")
        session = get_property("SessionId")
        window = (get_property("WindowStart"), get_property("WindowEnd"))
        before = domain_view()
        self.assertEqual(set(before), set(DOMAINS), result.stdout)

        version = installed_version()
        for deb, expected_version in ((DEB, version), (BUMPED_DEB, version + "+sysvm1")):
            with self.subTest(deb=deb.name):
                pid = main_pid()
                journal = Journal()
                run("dpkg", "-i", deb, timeout=300)
                self.assertEqual(installed_version(), expected_version)
                # The package restarted the daemon ...
                self.assertEqual(unit_property("ActiveState"), "active")
                self.assertNotEqual(main_pid(), pid)
                # ... which kept the maintenance from its journal ...
                self.assertEqual(get_property("Phase"), "scheduled")
                self.assertEqual(get_property("SessionId"), session)
                self.assertEqual((get_property("WindowStart"), get_property("WindowEnd")), window)
                # ... and did nothing to any domain, neither the stopping daemon
                # nor the new one.
                self.assertEqual(domain_view(), before)
                acted = [m for _, m in journal.daemon_messages()
                         if re.match(r"domain '.*' .*->", m)]
                self.assertEqual(acted, [])
        ctl("cancel")
        ctl("wait", "--phase", "idle", "--timeout", "60")


if __name__ == "__main__":
    unittest.main()
