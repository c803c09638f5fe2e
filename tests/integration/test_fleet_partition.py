"""A slot holder whose traffic to etcd is dropped (docs/fleet.md, "Failures"): the
network partition the issue names beside a stopped agent. Host h1 reaches the 3-member
etcd cluster only through relays that can black-hole its traffic: connections are taken
and bytes swallowed, nothing answers, as when a firewall drops packets. Its slot frees
only after the lease's TTL, h1 says the fleet is unreachable and takes no second slot,
and when its traffic flows again it waits for a slot like a host that was stopped."""

import socket
import threading

from harness import requires_tools
from test_fleet import LEASE_TTL, FleetCase


class DroppingRelay:
    """A TCP relay to one etcd member; `drop()` black-holes every byte both ways (and new
    connections) until `flow()`, which also closes the connections it swallowed."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.dropping = threading.Event()
        self.lock = threading.Lock()
        self.sockets = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def drop(self):
        self.dropping.set()

    def flow(self):
        self.dropping.clear()
        self._close_all()

    def close(self):
        self.closed = True
        self.listener.close()
        self._close_all()

    def _close_all(self):
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = None
            if not self.dropping.is_set():
                try:
                    upstream = socket.create_connection(self.target, timeout=2)
                except OSError:
                    client.close()
                    continue
            with self.lock:
                self.sockets += [s for s in (client, upstream) if s]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            if upstream:
                threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, sink):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                try:
                    sink and sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if self.dropping.is_set() or sink is None:
                continue  # swallowed: no answer, no reset
            try:
                sink.sendall(data)
            except OSError:
                return


@requires_tools("etcd", "dbus-daemon")
class FleetPartitionTest(FleetCase):

    def fleet_config(self, host):
        config = super().fleet_config(host)
        if host != "h1":
            return config
        self.relays = [DroppingRelay(m["client"]) for m in self.etcd.members]
        for relay in self.relays:
            self.addCleanup(relay.close)
        direct = ", ".join(f'"{e}"' for e in self.etcd.endpoints)
        relayed = ", ".join(f'"{r.endpoint}"' for r in self.relays)
        return config.replace(f"endpoints = [{direct}]", f"endpoints = [{relayed}]")

    def test_partitioned_holder_loses_its_slot_after_the_ttl_and_cannot_take_another(self):
        def cut(daemon):
            for relay in self.relays:
                relay.drop()
            # h1 still runs and knows it cannot reach etcd; its slot is not given away
            # before the TTL (checked by the caller).
            self.wait_status("h1", lambda s: s["fleet"]["state"] == "unreachable",
                             "the fleet unreachable", timeout=LEASE_TTL + 5)

        def heal(daemon):
            for relay in self.relays:
                relay.flow()

        self._holder_loses_its_slot(cut, heal)


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
