"""A real etcd cluster on loopback for the fleet tests: members on ephemeral ports with
their data in a temporary directory, started and stopped one by one, and a small client of
etcd's v3 JSON gateway for the tests' own checks (what the slots hold)."""

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def prefix_end(prefix):
    data = bytearray(prefix.encode())
    while data and data[-1] == 0xFF:
        data.pop()
    data[-1] += 1
    return base64.b64encode(bytes(data)).decode()


class EtcdCluster:
    """`size` etcd members on 127.0.0.1; `endpoints` are their client URLs."""

    def __init__(self, workdir: Path, size=3):
        self.dir = workdir / "etcd"
        self.dir.mkdir()
        self.members = []
        for i in range(size):
            self.members.append({"name": f"m{i}", "client": free_port(), "peer": free_port(),
                                 "process": None, "log": None})
        self.initial = ",".join(f"{m['name']}=http://127.0.0.1:{m['peer']}" for m in self.members)
        self.endpoints = [f"http://127.0.0.1:{m['client']}" for m in self.members]
        for i in range(size):
            self.start(i, wait=False)
        self.wait_healthy()

    def start(self, i, wait=True):
        m = self.members[i]
        log = open(self.dir / f"{m['name']}.log", "ab")
        m["log"] = log
        m["process"] = subprocess.Popen(
            [ETCD, "--name", m["name"], "--data-dir", str(self.dir / m["name"]),
             "--listen-client-urls", f"http://127.0.0.1:{m['client']}",
             "--advertise-client-urls", f"http://127.0.0.1:{m['client']}",
             "--listen-peer-urls", f"http://127.0.0.1:{m['peer']}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{m['peer']}",
             "--initial-cluster", self.initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", f"hostmaint-test-{self.dir}",
             "--heartbeat-interval", "50", "--election-timeout", "500",
             "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()

    def stop(self, i):
        m = self.members[i]
        if m["process"] and m["process"].poll() is None:
            m["process"].terminate()
            m["process"].wait(timeout=20)
        if m["log"]:
            m["log"].close()
            m["log"] = None

    def stop_all(self):
        for i in range(len(self.members)):
            self.stop(i)

    def running(self):
        return [i for i, m in enumerate(self.members)
                if m["process"] and m["process"].poll() is None]

    def post(self, path, body, timeout=5):
        errors = []
        for i in self.running():
            url = self.endpoints[i] + path
            request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as answer:
                    return json.loads(answer.read().decode().splitlines()[0])
            except (urllib.error.URLError, OSError) as error:
                errors.append(f"{url}: {error}")
        raise RuntimeError("no etcd member answered: " + "; ".join(errors))

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                # A write needs a leader and a quorum.
                self.post("/v3/kv/put", {"key": b64("/health-check"), "value": b64("ok")},
                          timeout=2)
                return
            except RuntimeError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"etcd did not become healthy: {error}")
                time.sleep(0.1)

    def range_prefix(self, prefix):
        """{key: value} of every key under `prefix`."""
        answer = self.post("/v3/kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in answer.get("kvs", [])}

    def logs(self):
        return "\n".join(f"--- {m['name']} ---\n" +
                         (self.dir / f"{m['name']}.log").read_text(errors="replace")[-2000:]
                         for m in self.members)
