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

from harness import DATA_DIR, HOSTMAINTD, DaemonTestCase, requires_tools, run_hostmaintd, wait_until
from openapi_check import load_spec, schema_errors

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
        self.mtls_port = ports["@MTLS_PORT@"]
        self.ports = list(ports.values())

        def fill(text):
            for key, value in ports.items():
                text = text.replace(key, str(value))
            return (text.replace("@PREFIX@", str(prefix)).replace("@TOKEN@", TOKEN)
                    .replace("@USER@", "user root;" if os.geteuid() == 0 else ""))

        (prefix / "locations.conf").write_text(fill((TEMPLATES / "locations.conf.in").read_text()))
        (prefix / "nginx.conf").write_text(fill((TEMPLATES / "nginx.conf.in").read_text()))
        self.out = open(prefix / "nginx.out", "ab")
        self.process = None
        self.start()

    def start(self):
        """Starts nginx (again, after stop(): same ports, same files)."""
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e",
             str(self.prefix / "error.log")], stdout=self.out, stderr=subprocess.STDOUT)
        wait_until(lambda: self.process.poll() is not None or all(accepts(p) for p in self.ports),
                   10, "nginx to listen")
        if self.process.poll() is not None:
            raise AssertionError("nginx exited: " + (self.prefix / "nginx.out").read_text())

    @property
    def base_url(self):
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def mtls_base_url(self):
        return f"https://127.0.0.1:{self.mtls_port}"

    @property
    def ca_file(self):
        return self.prefix / "pki" / "ca.crt"

    def pki(self, name):
        return self.prefix / "pki" / name

    def trouble(self, kind, on=True):
        """Turns a kind of trouble of the desired-state endpoint on or off: '503' or 'slow'
        (locations.conf.in)."""
        marker = self.prefix / "www" / "trouble" / kind
        marker.parent.mkdir(parents=True, exist_ok=True)
        if on:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def remove_desired(self):
        self.host_file("maintenance").unlink(missing_ok=True)

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
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self):
        self.stop()
        self.out.close()


@requires_tools(NGINX, "openssl")
class ControllerProtocol(DaemonTestCase):

    node_xml = DATA_DIR / "node-controller.xml"

    def setUp(self):
        super().setUp()
        self.nginx = Nginx(self.workdir / "nginx")
        self.addCleanup(self.nginx.close)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "{self.nginx.base_url}"\nhost_id = "{HOST_ID}"\n'
              f'ca_file = "{self.nginx.ca_file}"\npoll_interval = "1s"\nmax_backoff = "2s"\n'
              f'heartbeat_interval = "5s"\nrequest_timeout = "2s"\nconnect_timeout = "1s"\n')

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
        # What the agent really sends is what docs/openapi.yaml promises.
        self.assertEqual(schema_errors(load_spec(), "StatusReport", reported), [])

        self.nginx.set_desired(self.desired("complete"))
        self.daemon.ctl("wait", "--phase", "idle", "--timeout", "30", check=0)
        for name in ("vm-acked", "vm-suspend"):
            self.assertEqual(self.daemon.domain(name)["run_state"], "running")
        self.wait_reported(lambda s: s["phase"] == "idle" and s["ready"] is False,
                           "an idle status PUT after complete")

    def test_each_hostile_response_is_shown_and_the_last_good_state_kept(self):
        # Draining: vm-suspend is suspended, vm-acked waits for its owner, so the host
        # stays in the drain (the session is pinned) through every bad answer below.
        good = self.desired("scheduled")
        self.nginx.set_desired(good)
        self.daemon.start()
        self.wait_status(lambda s: s["phase"] == "draining"
                         and self.daemon.domain("vm-acked")["state"] == "awaiting-ack"
                         and self.daemon.domain("vm-suspend")["state"] == "done",
                         "session mw-1 draining, vm-acked awaiting its ack")
        self.wait_status(lambda s: (s.get("controller") or {}).get("state") == "ok",
                         "controller ok")
        suspended = self.daemon.domain("vm-suspend")

        now = datetime.now(timezone.utc)
        huge = json.dumps({"state": "none", "padding": "x" * (1536 * 1024)})
        cases = [
            # (what, how to break the controller, words the error must contain)
            ("HTTP 404", self.nginx.remove_desired, "HTTP status 404"),
            ("HTTP 503", lambda: self.nginx.trouble("503"), "HTTP status 503"),
            ("total timeout", lambda: self.nginx.trouble("slow"), "timed out"),
            ("garbage", lambda: self.nginx.set_desired("{this is not json"), "not valid JSON"),
            ("huge JSON", lambda: self.nginx.set_desired(huge), "exceeds the 1048576 byte limit"),
            ("wrong type", lambda: self.nginx.set_desired(dict(good, removal="yes")),
             "field 'removal' must be a boolean, got string"),
            ("unknown state", lambda: self.nginx.set_desired(dict(good, state="paused")),
             "field 'state' has unknown value 'paused'"),
            ("window end before start", lambda: self.nginx.set_desired(
                self.desired("scheduled", start=now, end=now - timedelta(minutes=5))),
             "is not after field 'window.start'"),
            ("session id changed mid-drain", lambda: self.nginx.set_desired(
                self.desired("scheduled", session="mw-2")),
             "changed the session id from 'mw-1' to 'mw-2' while the host is draining"),
        ]
        for what, break_it, words in cases:
            with self.subTest(what):
                break_it()
                try:
                    failing = self.wait_status(
                        lambda s: s["controller"]["state"] == "failing"
                        and words in (s["controller"]["last_error"] or "") and s, f"{what}: shown")
                    # The agent keeps its last good state and what it did under it.
                    self.assertEqual(failing["session_id"], "mw-1", what)
                    self.assertEqual(failing["phase"], "draining", what)
                    after = self.daemon.domain("vm-suspend")
                    self.assertEqual((after["state"], after["run_state"], after["result"]),
                                     (suspended["state"], suspended["run_state"],
                                      suspended["result"]), what)
                    self.assertIn(words, self.daemon.log_text(), f"{what}: logged")
                finally:
                    # Mended: the same good document brings the link back.
                    self.nginx.trouble("503", on=False)
                    self.nginx.trouble("slow", on=False)
                    self.nginx.set_desired(good)
                self.wait_status(lambda s: s["controller"]["state"] == "ok", f"{what}: ok again")
                self.assertEqual(self.daemon.status_file()["session_id"], "mw-1", what)

    def test_local_control_works_while_the_controller_is_unreachable(self):
        self.nginx.set_desired(self.desired("scheduled"))
        self.daemon.start()
        self.wait_status(lambda s: self.daemon.domain("vm-acked")["state"] == "awaiting-ack",
                         "vm-acked awaiting its ack")
        self.nginx.stop()
        unreachable = self.wait_status(
            lambda s: (s.get("controller") or {}).get("state") == "failing" and s["controller"],
            "controller failing while nginx is down")
        # A failed poll or a failed status report, both name the controller.
        self.assertIn(f"127.0.0.1:{self.nginx.tls_port}", unreachable["last_error"])

        # The admin acks locally; the drain completes without the controller.
        self.daemon.ctl("ack", "vm-acked", "move", check=0)
        self.daemon.ctl("wait", "--ready", "--timeout", "30", check=0)
        self.assertEqual(self.daemon.status_file()["controller"]["state"], "failing")

        # Back: the controller gets the newest status, nothing was lost.
        self.nginx.start()
        reported = self.wait_reported(lambda s: s["ready"] is True, "the ready status PUT")
        self.assertEqual(reported["session_id"], "mw-1")
        self.assertEqual(reported["phase"], "empty")
        self.wait_status(lambda s: s["controller"]["state"] == "ok", "controller ok again")


@requires_tools(NGINX, "openssl")
class ControllerMutualTls(DaemonTestCase):
    """The controller requires a client certificate (nginx ssl_verify_client on)."""

    node_xml = DATA_DIR / "node-controller.xml"

    def setUp(self):
        super().setUp()
        self.nginx = Nginx(self.workdir / "nginx")
        self.addCleanup(self.nginx.close)
        self.nginx.set_desired({"state": "none"})

    def configure(self, extra):
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "{self.nginx.mtls_base_url}"\nhost_id = "{HOST_ID}"\n'
              f'ca_file = "{self.nginx.ca_file}"\npoll_interval = "1s"\nmax_backoff = "2s"\n'
            + extra)

    def test_with_the_client_certificate_the_agent_polls_and_reports(self):
        self.configure(f'client_cert = "{self.nginx.pki("client.crt")}"\n'
                       f'client_key = "{self.nginx.pki("client.key")}"\n')
        self.daemon.start()
        wait_until(lambda: self.daemon.status_file().get("controller", {}).get("state") == "ok",
                   30, "controller ok over mTLS")
        wait_until(lambda: self.nginx.reported_status(), 30, "a status PUT over mTLS")

    def test_without_a_client_certificate_the_controller_refuses_and_it_shows(self):
        self.configure("")
        self.daemon.start()
        failing = wait_until(
            lambda: (self.daemon.status_file().get("controller") or {}).get("state") == "failing"
            and self.daemon.status_file()["controller"], 30, "controller failing without mTLS")
        self.assertIn("HTTP status 400", failing["last_error"])
        self.assertIsNone(self.nginx.reported_status())


class ControllerTokenFile(DaemonTestCase):

    def test_token_file_readable_by_others_refuses_start_naming_the_file(self):
        token = self.workdir / "controller.token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o644)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "https://127.0.0.1:9"\ntoken_file = "{token}"\n')
        result = run_hostmaintd("--config", str(self.daemon.config_path), env=self.daemon.env,
                                timeout=30)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(str(token), output)
        self.assertIn("controller", output)


if __name__ == "__main__":
    unittest.main()
