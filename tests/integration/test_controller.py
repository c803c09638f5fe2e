"""hostmaintd driven by a maintenance controller: Debian's nginx over TLS with a test CA.

nginx serves the desired-state file (ETag, If-None-Match) and stores the status PUT on disk
(DAV), so writing the file drives the agent and reading the stored status shows what it
reported. Templates and the CA script are shared with tests/unit/controller_http_test.cpp.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness import DATA_DIR, HOSTMAINTD, DaemonTestCase, wait_until

TEMPLATES = Path(__file__).resolve().parent / "controller"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HOST_ID = "host-a"
TOKEN = "test-token-0123456789"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rfc3339(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Nginx:
    """nginx in the foreground under `prefix`, with a test PKI made by openssl now."""

    def __init__(self, prefix: Path):
        self.prefix = prefix
        for sub in ("tmp", "www", "pki"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        with open(prefix / "pki.log", "wb") as log:
            subprocess.run(["sh", str(TEMPLATES / "make-test-ca.sh"), str(prefix / "pki")],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
        ports = {"@PLAIN_PORT@": free_port(), "@TLS_PORT@": free_port(),
                 "@MTLS_PORT@": free_port()}
        self.tls_port = ports["@TLS_PORT@"]

        def fill(text):
            for key, value in ports.items():
                text = text.replace(key, str(value))
            return (text.replace("@PREFIX@", str(prefix)).replace("@TOKEN@", TOKEN)
                    .replace("@USER@", "user root;" if os.geteuid() == 0 else ""))

        (prefix / "locations.conf").write_text(fill((TEMPLATES / "locations.conf.in").read_text()))
        (prefix / "nginx.conf").write_text(fill((TEMPLATES / "nginx.conf.in").read_text()))
        self.out = open(prefix / "nginx.out", "wb")
        self.process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
             str(prefix / "error.log")], stdout=self.out, stderr=subprocess.STDOUT)
        wait_until(lambda: self.process.poll() is not None or all(accepts(p) for p in ports.values()),
                   10, "nginx to listen")
        if self.process.poll() is not None:
            raise AssertionError("nginx exited: " + (prefix / "nginx.out").read_text())

    @property
    def base_url(self):
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self):
        return self.prefix / "pki" / "ca.crt"

    def host_file(self, name):
        return self.prefix / "www" / "v1" / "hosts" / HOST_ID / name

    def set_desired(self, body):
        """Replaces the desired state atomically (nginx never serves half a file)."""
        path = self.host_file("maintenance")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(body if isinstance(body, str) else json.dumps(body))
        os.replace(temporary, path)

    def reported_status(self):
        try:
            return json.loads(self.host_file("status").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.out.close()


@unittest.skipUnless(os.path.exists(NGINX) and shutil.which("openssl"), "needs nginx and openssl")
class ControllerProtocol(DaemonTestCase):

    node_xml = DATA_DIR / "node-controller.xml"

    def setUp(self):
        super().setUp()
        self.nginx = Nginx(self.workdir / "nginx")
        self.addCleanup(self.nginx.stop)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "{self.nginx.base_url}"\nhost_id = "{HOST_ID}"\n'
              f'ca_file = "{self.nginx.ca_file}"\npoll_interval = "1s"\nmax_backoff = "2s"\n'
              f'heartbeat_interval = "5s"\n')

    def desired(self, state, session="mw-1", acks=None, start=None, end=None):
        now = datetime.now(timezone.utc)
        return {
            "session_id": session, "state": state,
            "window": {"start": rfc3339(start or now - timedelta(minutes=1)),
                       "end": rfc3339(end or now + timedelta(hours=2))},
            "reason": "kernel update", "destinations": [], "acks": acks or {},
        }

    def wait_status(self, predicate, what, timeout=30):
        return wait_until(lambda: predicate(self.daemon.status_file()), timeout, what)

    def wait_reported(self, predicate, what, timeout=30):
        def matching():
            status = self.nginx.reported_status()
            return status if status is not None and predicate(status) else None
        return wait_until(matching, timeout, what)

    def test_desired_state_file_drives_schedule_ack_drain_ready_complete(self):
        self.nginx.set_desired({"state": "none", "acks": {}})
        self.daemon.start()
        self.wait_status(lambda s: s.get("controller", {}).get("state") == "ok",
                         "controller ok in status.json")
        self.wait_reported(lambda s: s["phase"] == "idle", "an idle status PUT")

        self.nginx.set_desired(self.desired("scheduled"))
        self.wait_status(lambda s: s["session_id"] == "mw-1", "session mw-1 scheduled")
        # vm-acked waits for its owner; the rest drains.
        self.wait_status(lambda s: self.daemon.domain("vm-acked")["state"] == "awaiting-ack",
                         "vm-acked awaiting its ack")
        self.assertFalse(self.daemon.status_file()["ready"])

        self.nginx.set_desired(self.desired("scheduled", acks={"vm-acked": "move"}))
        self.daemon.ctl("wait", "--ready", "--timeout", "30", check=0)
        self.assertEqual(self.daemon.domain("vm-acked")["ack"], "move")
        reported = self.wait_reported(lambda s: s["ready"] is True, "a ready status PUT")
        self.assertEqual(reported["session_id"], "mw-1")
        self.assertEqual(reported["phase"], "empty")
        self.assertIsInstance(reported["report_seq"], int)

        self.nginx.set_desired(self.desired("complete"))
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "30", check=0)
        for name in ("vm-acked", "vm-suspend"):
            self.assertEqual(self.daemon.domain(name)["run_state"], "running")
        self.wait_reported(lambda s: s["phase"] == "idle" and s["ready"] is False,
                           "an idle status PUT after complete")

    def test_bad_responses_are_reported_and_the_last_good_state_is_kept(self):
        future = datetime.now(timezone.utc) + timedelta(hours=1)
        good = self.desired("scheduled", start=future, end=future + timedelta(hours=1))
        self.nginx.set_desired(good)
        self.daemon.start()
        self.wait_status(lambda s: s["phase"] == "scheduled" and s["session_id"] == "mw-1",
                         "session mw-1 scheduled")

        self.nginx.set_desired("{this is not json")
        failing = self.wait_status(
            lambda s: s.get("controller", {}).get("state") == "failing" and s["controller"],
            "controller failing after garbage")
        self.assertIsNotNone(failing["last_error"])
        self.assertIn("maintenance", failing["last_error"])
        self.assertEqual(self.daemon.status_file()["session_id"], "mw-1")
        self.assertEqual(self.daemon.status_file()["phase"], "scheduled")

        self.nginx.set_desired(self.desired("scheduled", session="mw-2", start=future,
                                            end=future - timedelta(minutes=5)))
        backwards = self.wait_status(
            lambda s: s.get("controller", {}).get("state") == "failing"
            and "end" in (s["controller"]["last_error"] or "")
            and "json" not in s["controller"]["last_error"].lower() and s["controller"],
            "controller failing after a window ending before it starts")
        self.assertIn("window", backwards["last_error"])
        self.assertEqual(self.daemon.status_file()["session_id"], "mw-1")
        self.assertIn("controller", self.daemon.log_text())

        self.nginx.set_desired(good)
        self.wait_status(lambda s: s["controller"]["state"] == "ok", "controller ok again")
        self.assertEqual(self.daemon.status_file()["session_id"], "mw-1")


class ControllerTokenFile(DaemonTestCase):

    def test_token_file_readable_by_others_refuses_start_naming_the_file(self):
        token = self.workdir / "controller.token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o644)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "https://127.0.0.1:9"\ntoken_file = "{token}"\n')
        result = subprocess.run([HOSTMAINTD, "--config", str(self.daemon.config_path)],
                                env=self.daemon.env, capture_output=True, text=True, timeout=30)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(str(token), output)
        self.assertIn("controller", output)


if __name__ == "__main__":
    unittest.main()
