"""`systemctl reload` keeps the old config on a bad drop-in; journald priorities."""

import unittest

from sysvm import (ADMIN, ADMIN_GROUP, CONF_D, UNIT, Journal, SystemTestCase, ctl,
                   install_admin_bus_policy, main_pid, run, unit_property, write_site_config)

ERR, WARNING, INFO = 3, 4, 6


class Reload(SystemTestCase):
    def test_bad_drop_in_keeps_the_old_config_and_says_why(self):
        # What the reload is meant to change, observable from outside: whether
        # the daemon lets the admin group mutate (a reload applies admin_group).
        install_admin_bus_policy()
        denied = ctl("schedule", "--start", "+1h", "--end", "+2h", user=ADMIN, check=5)
        # The bus lets the group through now; the daemon itself refuses.
        self.assertIn("only root", denied.stderr)

        pid = main_pid()
        bad = CONF_D / "90-bad.conf"
        bad.write_text(f'[dbus]\nadmin_group = "{ADMIN_GROUP}"\n[limits]\nmax_parallel_actions = 0\n')
        self.addCleanup(lambda: bad.unlink(missing_ok=True))
        journal = Journal()
        run("systemctl", "reload", UNIT)
        priority, message = journal.wait_for_daemon_message("configuration reload failed")
        self.assertEqual(priority, ERR)
        self.assertIn(f"{bad}:4: key 'limits.max_parallel_actions'", message)
        self.assertIn("keeping the running configuration", message)
        # Same process, still active, and still on the old configuration.
        self.assertEqual(main_pid(), pid)
        self.assertEqual(unit_property("ActiveState"), "active")
        ctl("schedule", "--start", "+1h", "--end", "+2h", user=ADMIN, check=5)

        # Fixed: the reload applies it.
        bad.write_text(f'[dbus]\nadmin_group = "{ADMIN_GROUP}"\n')
        journal = Journal()
        run("systemctl", "reload", UNIT)
        priority, message = journal.wait_for_daemon_message("configuration reloaded")
        self.assertEqual(priority, INFO)
        self.assertIn(str(bad), message)
        ctl("schedule", "--start", "+1h", "--end", "+2h", user=ADMIN)
        ctl("cancel", user=ADMIN)
        ctl("wait", "--phase", "idle", "--timeout", "60")
        self.assertEqual(main_pid(), pid)

    def test_journald_keeps_each_line_at_its_priority(self):
        journal = Journal()
        # warning: a reload that changes a key read only at start.
        write_site_config('[log]\nlevel = "info"\n')
        (CONF_D / "60-other-uri.conf").write_text('[libvirt]\nuri = "test:///default"\n')
        self.addCleanup(lambda: (CONF_D / "60-other-uri.conf").unlink(missing_ok=True))
        run("systemctl", "reload", UNIT)
        journal.wait_for_daemon_message("libvirt.uri changed")
        # error: a bad drop-in.
        (CONF_D / "60-other-uri.conf").write_text('[libvirt]\nuri = 5\n')
        run("systemctl", "reload", UNIT)
        journal.wait_for_daemon_message("configuration reload failed")

        seen = journal.daemon_messages()
        expected = [(WARNING, "libvirt.uri changed"), (INFO, "configuration reloaded"),
                    (ERR, "configuration reload failed")]
        for priority, text in expected:
            with self.subTest(text=text):
                self.assertIn(priority, [p for p, m in seen if text in m], seen)
        # What `journalctl -p` shows an admin: errors alone at -p err.
        errors = "\n".join(journal.messages("-u", UNIT, "-p", "err"))
        self.assertIn("configuration reload failed", errors)
        self.assertNotIn("libvirt.uri changed", errors)
        self.assertNotIn("configuration reloaded", errors)
        warnings = "\n".join(journal.messages("-u", UNIT, "-p", "warning"))
        self.assertIn("libvirt.uri changed", warnings)
        self.assertNotIn("configuration reloaded", warnings)

if __name__ == "__main__":
    unittest.main()
