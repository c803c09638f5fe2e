"""hostmaintd's config handling: errors name file, line and key; reload keeps a good config."""

import os
import signal
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import DaemonTestCase, run_hostmaintd, wait_until


def check_config(path):
    return run_hostmaintd("--config", str(path), "--check-config", timeout=30)


class CheckConfig(unittest.TestCase):

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hostmaint-conf-"))

    def write(self, name, text):
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def assert_rejected(self, path, *fragments):
        result = check_config(path)
        self.assertNotEqual(result.returncode, 0, result.stdout)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)

    def test_good_config_passes(self):
        path = self.write("hostmaintd.conf", '[libvirt]\nuri = "test:///default"\n')
        result = check_config(path)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_shipped_config_passes(self):
        result = check_config(Path(__file__).resolve().parents[2] / "etc" / "hostmaintd.conf")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_unknown_key_names_file_line_and_key(self):
        path = self.write("hostmaintd.conf", '[libvirt]\nuri = "test:///default"\n\n[limits]\nmax_paralel_actions = 3\n')
        self.assert_rejected(path, "hostmaintd.conf:5", "max_paralel_actions")

    def test_wrong_type_names_file_line_and_key(self):
        path = self.write("hostmaintd.conf", '[limits]\nmax_parallel_actions = "four"\n')
        self.assert_rejected(path, "hostmaintd.conf:2", "max_parallel_actions")

    def test_out_of_range_value(self):
        path = self.write("hostmaintd.conf", '[limits]\n\nmax_parallel_actions = 0\n')
        self.assert_rejected(path, "hostmaintd.conf:3", "max_parallel_actions")

    def test_bad_policy_value(self):
        path = self.write("hostmaintd.conf", '[policy]\nremoval_action = "suspend"\n')
        self.assert_rejected(path, "hostmaintd.conf", "removal_action")

    def test_syntax_error(self):
        path = self.write("hostmaintd.conf", '[libvirt\nuri = 1\n')
        self.assert_rejected(path, "hostmaintd.conf:1")

    def test_error_in_drop_in_names_the_drop_in(self):
        path = self.write("hostmaintd.conf", '[limits]\nmax_parallel_actions = 2\n')
        self.write("hostmaintd.conf.d/50-local.conf", '\n[limits]\nmax_parallel_actions = -1\n')
        self.assert_rejected(path, "50-local.conf:3", "max_parallel_actions")

    def test_explicit_missing_file_is_an_error(self):
        self.assert_rejected(self.dir / "absent.conf", "absent.conf")


class Reload(DaemonTestCase):

    def test_bad_reload_keeps_running_with_old_config(self):
        self.daemon.start()
        good = self.daemon.config_path.read_text()
        self.daemon.config_path.write_text(good + "\n[limits]\nmax_parallel_actions = 0\n")
        self.daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "max_parallel_actions" in self.daemon.log_text(), 10,
                   "the reload error in the log")
        self.assertIsNone(self.daemon.process.poll(), "daemon must survive a bad reload")
        self.assertEqual(self.daemon.get_property("Phase"), "idle")

        self.daemon.config_path.write_text(good)
        self.daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in self.daemon.log_text(), 10, "a successful reload")
        self.assertIsNone(self.daemon.process.poll())


class NotRunning(unittest.TestCase):

    def test_ctl_says_daemon_is_not_running(self):
        from harness import HOSTMAINTCTL, PrivateBus
        workdir = Path(tempfile.mkdtemp(prefix="hostmaint-nobus-"))
        bus = PrivateBus(workdir)
        self.addCleanup(bus.stop)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        result = subprocess.run([HOSTMAINTCTL, "status"], env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("not running", result.stderr)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={workdir}/no-such-socket"
        result = subprocess.run([HOSTMAINTCTL, "status"], env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode, 3, result.stderr)


if __name__ == "__main__":
    unittest.main()
