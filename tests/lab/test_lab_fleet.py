"""Peers as destinations with real migrations (docs/fleet.md): two hostmaintd, one on
each lab host, share a fleet in a real 3-member etcd cluster on loopback. Host a has no
destinations of its own; it finds b's record in etcd, takes a slot, live-migrates its
guests to b, and b stays the only place each guest runs."""

import shutil
import sys
import tempfile
from pathlib import Path

from lab_harness import LabDaemon, LabTestCase, labctl, main, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from etcd_cluster import EtcdCluster  # noqa: E402
from harness import PrivateBus, requires_tools  # noqa: E402

FLEET = "lab"
PREFIX = f"/hostmaint/{FLEET}/"


def fleet_config(endpoints, host):
    quoted = ", ".join(f'"{e}"' for e in endpoints)
    return (f'[fleet]\nendpoints = [{quoted}]\nname = "{FLEET}"\nhost = "{host}"\n'
            f'max_concurrent = 1\nlease_ttl = 4\npoll_interval = "200ms"\n'
            f'connect_timeout = "500ms"\nrequest_timeout = "1s"\n'
            f'migration_uri = "{labctl.uri(host)}"\nmigrate_uri = "{labctl.MIGRATE_URI}"\n'
            f'max_incoming_migrations = 2\n')


@requires_tools("etcd")
class PeersAsDestinations(LabTestCase):
    destinations = ()  # host a has none: the fleet's peers are its destinations

    def setUp(self):
        super().setUp()
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="hostmaint-lab-etcd-"))
        self.addCleanup(shutil.rmtree, self.etcd_dir, True)
        self.etcd = EtcdCluster(self.etcd_dir)
        self.addCleanup(self.etcd.stop_all)
        # Host a: the daemon LabTestCase made, with the fleet added.
        self.daemon = LabDaemon(self.workdir, self.bus, (), fleet_config(self.etcd.endpoints, "a"))
        # Host b: its own daemon, on its own bus, publishing itself as a peer.
        peer_dir = self.workdir / "peer-b"
        peer_dir.mkdir()
        self.peer_bus = PrivateBus(peer_dir)
        self.addCleanup(self.peer_bus.stop)
        self.peer = LabDaemon(peer_dir, self.peer_bus, (), fleet_config(self.etcd.endpoints, "b"),
                              host="b")
        self.addCleanup(self.peer.stop)

    def peer_entry(self):
        fleet = self.daemon.status_file().get("fleet") or {}
        return next((p for p in fleet.get("peers") or [] if p.get("host") == "b"), None)

    def test_a_host_without_destinations_drains_to_its_idle_peer_through_etcd(self):
        self.create("lab-f1", memory_mib=256, dirty_mib=100)
        self.create("lab-f2", memory_mib=256, dirty_mib=80)
        self.wait_all_ready()
        self.peer.start()
        self.daemon.start()
        wait_until(lambda: (self.peer_entry() or {}).get("usable"), timeout=20,
                   what="host b published as a usable peer in a's status.json")
        self.assertEqual(self.peer_entry()["uri"], labctl.uri("b"))

        self.schedule_now()
        self.wait_ready()

        placement = self.assert_invariant()
        self.assertEqual(placement, {g: "b" for g in self.guests})
        for guest in self.guests:
            entry = self.daemon.domain(guest)
            self.assertEqual(entry["state"], "done", entry)
            self.assertEqual(entry["result"], f"migrated to {labctl.uri('b')}", entry)
        fleet = self.daemon.status_file()["fleet"]
        self.assertIsNotNone(fleet["slot"], fleet)
        self.assertEqual(fleet["state"], "ok", fleet)
        # The incoming keys of finished migrations are gone: b has room again.
        wait_until(lambda: not self.etcd.range_prefix(PREFIX + "incoming/"), timeout=10,
                   what="no incoming/ key left once the migrations are over")
        # b took the guests; it is not in maintenance and never was.
        self.assertEqual(self.peer.status_file()["phase"], "idle")

        self.daemon.ctl("finish", check=0)
        wait_until(lambda: self.daemon.status_file()["phase"] == "idle", timeout=30,
                   what="host a idle after finish")
        wait_until(lambda: not self.etcd.range_prefix(PREFIX + "slots/"), timeout=10,
                   what="the slot released after finish")
        self.assert_invariant()


if __name__ == "__main__":
    main()
