"""hostmaintctl's admin toolbox against the real hostmaintd on the libvirt test driver:
notices (table and --json), the notice summary in status, reschedule (CLI and the D-Bus
method), ack with a reason, unknown verbs, and text from outside shown escaped."""

import json
import subprocess
import time
import unittest

from harness import (BUS_NAME, DATA_DIR, HOSTMAINTCTL, INTERFACE, OBJECT_PATH, DaemonTestCase,
                     wait_until)


def usec(seconds_from_now):
    return int((time.time() + seconds_from_now) * 1_000_000)


class UnknownVerb(unittest.TestCase):
    """Needs no daemon: the command line is refused before any bus is touched."""

    def run_ctl(self, *args):
        return subprocess.run([HOSTMAINTCTL, *args], capture_output=True, text=True, timeout=30)

    def test_unknown_verb_is_named_with_the_verbs(self):
        result = self.run_ctl("bogus")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("unknown command 'bogus'", result.stderr)
        for verb in ("status", "notices", "schedule", "reschedule", "ack", "finish", "wait"):
            self.assertIn(verb, result.stderr)

    def test_unknown_verb_after_the_address_option(self):
        result = self.run_ctl("--address", "unix:path=/nonexistent", "stauts")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("unknown command 'stauts'", result.stderr)

    def test_verb_with_control_characters_is_shown_escaped(self):
        result = self.run_ctl("bo\x1b[2Jgus")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("unknown command 'bo\\x1b[2Jgus'", result.stderr)
        self.assertNotIn("\x1b", result.stderr)

    def test_no_verb_lists_the_verbs(self):
        result = self.run_ctl()
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("a command is required", result.stderr)
        self.assertIn("reschedule", result.stderr)

    def test_help_still_works(self):
        result = self.run_ctl("--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("reschedule", result.stdout)
        self.assertIn("notices", result.stdout)


class Toolbox(DaemonTestCase):

    node_xml = DATA_DIR / "node-notices.xml"

    def test_notices_table_json_and_status_summary(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--reason", "bios", check=0)
        wait_until(lambda: self.daemon.domain("vm-ack")["notice"], 10, "the notices")

        table = self.daemon.ctl("notices", check=0).stdout
        header = table.splitlines()[0]
        for column in ("DOMAIN", "REVISION", "STATUS", "ACTION", "ACK", "DEADLINE"):
            self.assertIn(column, header)
        row = next(line for line in table.splitlines() if line.startswith("vm-ack "))
        revision = self.daemon.domain("vm-ack")["notice"]["revision"]
        self.assertIn(str(revision), row)
        self.assertIn("awaiting", row)
        self.assertIn("ack by ", row)
        self.assertIn("leave by ", next(l for l in table.splitlines() if l.startswith("vm-owner ")))

        listed = json.loads(self.daemon.ctl("notices", "--json", check=0).stdout)
        by_name = {entry["name"]: entry for entry in listed}
        self.assertEqual(set(by_name), {"vm-ack", "vm-migrate", "vm-owner"})
        self.assertEqual(by_name["vm-ack"]["notice"], self.daemon.domain("vm-ack")["notice"])

        status = self.daemon.ctl("status", check=0).stdout
        summary = next(line for line in status.splitlines() if line.startswith("notices"))
        self.assertIn("3 issued", summary)
        self.assertIn("1 awaiting an ack", summary)

    def test_ack_reason_travels_to_status_notice_and_survives_a_restart(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        before = wait_until(lambda: self.daemon.domain("vm-ack")["notice"], 10, "a notice")
        result = self.daemon.ctl("ack", "vm-ack", "keep", "--reason", "database stays (TICKET-9)",
                                 check=0)
        self.assertIn("database stays (TICKET-9)", result.stdout)
        domain = self.daemon.domain("vm-ack")
        self.assertEqual(domain["ack"], "keep")
        self.assertEqual(domain["ack_reason"], "database stays (TICKET-9)")
        self.assertEqual(domain["notice"]["ack_reason"], "database stays (TICKET-9)")
        self.assertGreater(domain["notice"]["revision"], before["revision"])
        self.assertIn("keep: database stays (TICKET-9)", self.daemon.ctl("notices", check=0).stdout)

        self.daemon.stop()
        self.daemon.start()
        self.assertEqual(self.daemon.domain("vm-ack")["ack_reason"], "database stays (TICKET-9)")

        # The daemon refuses a reason that could drive a terminal.
        bad = self.daemon.ctl("ack", "vm-ack", "move", "--reason", "ok\x1b]0;pwned\x07", check=2)
        self.assertIn("reason contains the control character U+001B", bad.stderr)
        self.assertEqual(self.daemon.domain("vm-ack")["ack"], "keep")

    def test_reschedule_moves_the_window_keeping_session_removal_and_reason(self):
        self.daemon.start()
        scheduled = self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--removal",
                                    "--reason", "decommission", check=0)
        session = self.daemon.status_file()["session_id"]
        first = self.daemon.domain("vm-migrate")["notice"]["revision"]
        self.assertIn(session, scheduled.stdout)

        result = self.daemon.ctl("reschedule", "--start", "2099-01-01T10:00:00Z",
                                 "--end", "2099-01-01T14:00:00Z", check=0)
        self.assertIn("rescheduled", result.stdout)
        status = self.daemon.status_file()
        self.assertEqual(status["session_id"], session)
        self.assertEqual(status["window"]["start"], "2099-01-01T10:00:00Z")
        self.assertEqual(status["window"]["end"], "2099-01-01T14:00:00Z")
        self.assertTrue(status["window"]["removal"])
        self.assertEqual(status["window"]["reason"], "decommission")
        # Owners are told of the new window.
        notice = wait_until(
            lambda: (n := self.daemon.domain("vm-migrate")["notice"])["revision"] > first and n,
            10, "a new notice revision")
        self.assertEqual(notice["window_start"], "2099-01-01T10:00:00Z")

        self.daemon.ctl("reschedule", "--start", "+2h", "--end", "+4h", "--no-removal",
                        "--reason", "not leaving after all", check=0)
        window = self.daemon.status_file()["window"]
        self.assertFalse(window["removal"])
        self.assertEqual(window["reason"], "not leaving after all")

        # The engine's rules: the end must follow the start.
        refused = self.daemon.ctl("reschedule", "--start", "+3h", "--end", "+2h", check=1)
        self.assertIn("cannot reschedule", refused.stderr)

    def test_reschedule_of_nothing_is_refused(self):
        self.daemon.start()
        refused = self.daemon.ctl("reschedule", "--start", "+1h", "--end", "+2h", check=1)
        self.assertIn("cannot reschedule: maintenance is in phase 'idle'", refused.stderr)

    def test_reschedule_is_root_only_like_every_mutating_method(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        denied = self.daemon.ctl("reschedule", "--start", "+2h", "--end", "+4h", user="nobody",
                                 check=5)
        self.assertIn("access denied", denied.stderr)
        result = self.daemon.busctl("call", BUS_NAME, OBJECT_PATH, INTERFACE, "Reschedule", "ttbs",
                                    str(usec(7200)), str(usec(14400)), "false", "",
                                    user="nobody")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("Access denied", result.stderr + result.stdout)

    def test_far_future_timestamps_are_invalid_arguments(self):
        self.daemon.start()
        year_75000 = 2_305_000_000_000_000_000
        result = self.daemon.busctl("call", BUS_NAME, OBJECT_PATH, INTERFACE, "Schedule", "ttbs",
                                    str(year_75000), str(year_75000 + 3_600_000_000), "false", "x")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("start_usec", result.stderr)
        self.assertEqual(self.daemon.get_property("Phase"), "idle")
        # hostmaintctl refuses such a year before asking (it would wrap around too).
        far = self.daemon.ctl("schedule", "--start", "+1h", "--end", "9999-12-31T00:00:00Z")
        self.assertEqual(far.returncode, 2, far.stderr)
        self.assertIn("the year must be before 2200", far.stderr)
        self.assertEqual(self.daemon.get_property("Phase"), "idle")

    def test_text_from_outside_is_printed_escaped(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        # The daemon quotes the unknown domain in its refusal; hostmaintctl must not
        # pass the escape sequence on to the terminal.
        result = self.daemon.ctl("ack", "vm\x1b[2J\x07", "move", check=1)
        self.assertIn("vm\\x1b[2J\\x07", result.stderr)
        self.assertNotIn("\x1b", result.stderr)
        self.assertNotIn("\x07", result.stderr)


if __name__ == "__main__":
    unittest.main()
