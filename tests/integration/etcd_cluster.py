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


def make_tls(directory: Path):
    """A CA and a server certificate for 127.0.0.1 (openssl): {ca, cert, key} paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    quiet = {"check": True, "capture_output": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=hostmaint test CA", "-keyout", str(ca_key), "-out", str(ca)],
                   **quiet)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(csr)], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                    "-out", str(cert)], **quiet)
    return {"ca": ca, "cert": cert, "key": key}


class SecureEtcd:
    """One etcd member serving TLS on 127.0.0.1 with authentication enabled: user
    `hostmaint` may read and write under `prefix` only; tokens live 2 s."""

    def __init__(self, workdir: Path, prefix, password):
        self.dir = workdir / "etcd-tls"
        self.tls = make_tls(self.dir / "tls")
        self.client_port, self.peer_port = free_port(), free_port()
        self.endpoint = f"https://127.0.0.1:{self.client_port}"
        self.log = open(self.dir / "etcd.log", "ab")
        self.process = subprocess.Popen(
            [ETCD, "--name", "s0", "--data-dir", str(self.dir / "data"),
             "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-cluster", f"s0=http://127.0.0.1:{self.peer_port}",
             "--cert-file", str(self.tls["cert"]), "--key-file", str(self.tls["key"]),
             # Simple tokens expire after 2 s: a client must log in again by itself.
             "--auth-token-ttl", "2",
             "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for command in (["user", "add", "root:root-pw"], ["user", "grant-role", "root", "root"],
                        ["role", "add", "hostmaint"],
                        ["role", "grant-permission", "hostmaint", "readwrite", "--prefix=true",
                         prefix],
                        ["user", "add", f"hostmaint:{password}"],
                        ["user", "grant-role", "hostmaint", "hostmaint"],
                        ["auth", "enable"]):
            self.etcdctl(*command)

    def etcdctl(self, *args, user=None):
        deadline = time.monotonic() + 30
        command = [shutil.which("etcdctl") or "/usr/bin/etcdctl", "--endpoints", self.endpoint,
                   "--cacert", str(self.tls["ca"]), "--dial-timeout", "2s"]
        if user:
            command += ["--user", user]
        while True:
            result = subprocess.run([*command, *args], capture_output=True, text=True,
                                    env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
            if result.returncode == 0:
                return result.stdout
            if time.monotonic() > deadline:
                raise AssertionError(f"etcdctl {' '.join(args)}: {result.stderr}")
            time.sleep(0.2)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.log.close()
