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

    def test_device_is_refused_at_once(self):
        # It used to read /dev/zero for ever.
        self.assert_rejected(Path("/dev/zero"), "'/dev/zero': it is a character device")

    def test_fifo_is_refused_at_once(self):
        path = self.dir / "hostmaintd.conf"
        os.mkfifo(path)
        self.assert_rejected(path, str(path), "it is a FIFO, not a regular file")

    def test_drop_in_symlink_loop_and_dangling_link_are_errors_naming_them(self):
        path = self.write("hostmaintd.conf", '[libvirt]\nuri = "test:///default"\n')
        drop_ins = self.dir / "hostmaintd.conf.d"
        drop_ins.mkdir()
        (drop_ins / "50-a.conf").symlink_to(drop_ins / "60-b.conf")
        (drop_ins / "60-b.conf").symlink_to(drop_ins / "50-a.conf")
        self.assert_rejected(path, str(drop_ins / "50-a.conf"), "symbolic link loop")
        (drop_ins / "50-a.conf").unlink()
        (drop_ins / "60-b.conf").unlink()
        (drop_ins / "70-gone.conf").symlink_to(self.dir / "nowhere.conf")
        self.assert_rejected(path, str(drop_ins / "70-gone.conf"), "dangling symbolic link")

    # --check-config runs what a start checks beyond the syntax.
    def test_controller_token_readable_by_others_fails_the_check(self):
        token = self.write("controller.token", "s3cret\n")
        token.chmod(0o644)
        path = self.write("hostmaintd.conf",
                          '[controller]\nbase_url = "https://controller.example:8443"\n'
                          f'token_file = "{token}"\n')
        self.assert_rejected(path, "controller link", str(token), "mode")
        token.chmod(0o600)
        result = check_config(path)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_webhook_token_missing_fails_the_check(self):
        token = self.dir / "absent.token"
        path = self.write("hostmaintd.conf",
                          '[notices]\nwebhook_url = "https://hooks.example/notices"\n'
                          f'webhook_token_file = "{token}"\n')
        self.assert_rejected(path, "notice webhook", str(token))

    def test_state_dir_that_is_a_file_fails_the_check(self):
        blocker = self.write("not-a-dir", "")
        path = self.write("hostmaintd.conf", f'[paths]\nstate_dir = "{blocker}/state"\n')
        self.assert_rejected(path, "paths.state_dir", f"{blocker} is not a directory")


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


class ReloadFromNoFile(DaemonTestCase):

    def test_sighup_with_a_fifo_at_the_config_path_keeps_serving(self):
        self.daemon.start()
        self.daemon.config_path.unlink()
        os.mkfifo(self.daemon.config_path)
        self.daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "it is a FIFO" in self.daemon.log_text(), 10,
                   "the refused reload in the log")
        # The event loop was not blocked on the FIFO: D-Bus still answers.
        result = self.daemon.ctl("status", timeout=10, check=0)
        self.assertIn("idle", result.stdout)
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
