"""hostmaintd drains real QEMU guests from lab host a to host b."""

import signal
import time

from lab_harness import LabTestCase, labctl, main, wait_until


class DrainToB(LabTestCase):

    def test_four_guests_end_on_b_exactly_once_and_the_host_is_ready(self):
        self.create("lab-g1", memory_mib=384, dirty_mib=200)
        self.create("lab-g2", memory_mib=256, dirty_mib=150)
        self.create("lab-g3", memory_mib=256, dirty_mib=100)
        self.create("lab-g4", memory_mib=320, dirty_mib=150)
        self.wait_all_ready()
        self.daemon.start()
        self.schedule_now()
        self.wait_ready()

        placement = self.assert_invariant()
        self.assertEqual(placement, {g: "b" for g in self.guests})
        self.assertTrue(self.daemon.get_property("Ready"))
        status = self.daemon.status_file()
        self.assertTrue(status["ready"])
        self.assertEqual(status["phase"], "empty")
        self.assertTrue(all(check["ok"] for check in status["evidence"]), status["evidence"])
        for guest in self.guests:
            entry = self.daemon.domain(guest)
            self.assertEqual(entry["state"], "done", entry)
            self.assertEqual(entry["result"], f"migrated to {labctl.uri('b')}", entry)
        self.assertGreater(status["migration_throughput_bps"], 0)


if __name__ == "__main__":
    main()
