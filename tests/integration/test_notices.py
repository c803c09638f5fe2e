"""Owner notices end to end: the real hostmaintd on the libvirt test driver publishes a
notice per domain on D-Bus (signal and property), in status.json, and POSTs it to a real
HTTP server (Python's http.server on localhost); acks and a cancel issue new revisions;
a failing webhook is visible and never blocks the daemon."""

import http.server
import json
import threading
import unittest

from harness import (BUS_NAME, DATA_DIR, INTERFACE, OBJECT_PATH, BusMonitor, DaemonTestCase,
                     run_hostmaintd, wait_until)


class WebhookServer:
    """Records every POST body; answers with the next status of `statuses` (then 200)."""

    def __init__(self, statuses=()):
        self.bodies = []
        self.headers = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner.lock:
                    status = owner.statuses.pop(0) if owner.statuses else 200
                    if status == 200:
                        owner.bodies.append(json.loads(body))
                        owner.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/notices"

    def received(self):
        with self.lock:
            return list(self.bodies)

    def wait_for(self, predicate, what, timeout=20):
        """Waits until `predicate` holds for the bodies received; returns them."""
        wait_until(lambda: predicate(self.received()), timeout, what)
        return self.received()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SignalMonitor(BusMonitor):
    """busctl monitor for the Notice signal, parsed into (uuid, name, revision, notice)."""

    def __init__(self, daemon):
        self.signals = []
        super().__init__(daemon, f"type='signal',interface='{INTERFACE}',member='Notice'")

    def received(self, message):
        if message.get("member") == "Notice":
            uuid, name, revision, notice = message["payload"]["data"]
            self.signals.append((uuid, name, revision, json.loads(notice)))

    def collected(self):
        self.drain()
        return list(self.signals)


def by_name(bodies):
    """The newest webhook notice per domain name."""
    newest = {}
    for body in bodies:
        name = body["domain"]["name"]
        if name not in newest or body["notice"]["revision"] > newest[name]["notice"]["revision"]:
            newest[name] = body
    return newest


class Notices(DaemonTestCase):

    node_xml = DATA_DIR / "node-notices.xml"

    def setUp(self):
        super().setUp()
        self.webhook = WebhookServer()
        self.addCleanup(self.webhook.stop)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[notices]\nwebhook_url = "{self.webhook.url}"\nwebhook_retry_min = "100ms"\n'
            + 'min_expected_downtime = "45s"\n')

    def test_notice_per_domain_everywhere_then_ack_and_cancel_issue_new_revisions(self):
        self.daemon.start()
        monitor = SignalMonitor(self.daemon)
        self.addCleanup(monitor.stop)
        # The monitor is subscribed once busctl has said hello; a round trip proves it.
        wait_until(lambda: self.daemon.busctl("status", BUS_NAME).returncode == 0, 10, "busctl")

        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--reason", "bios", check=0)
        first = self.webhook.wait_for(lambda b: len(b) >= 3, "three notices at the webhook")
        notices = by_name(first)
        self.assertEqual(set(notices), {"vm-ack", "vm-migrate", "vm-owner"})
        for body in first:
            self.assertEqual(body["type"], "hostmaint.notice")
            self.assertEqual(body["notice"]["status"], "active")
            self.assertEqual(body["notice"]["session_id"], self.daemon.get_property("SessionId"))

        ack = notices["vm-ack"]["notice"]
        self.assertEqual(ack["action"], "suspend")
        self.assertEqual(ack["expected_downtime_s"], 7200)
        self.assertEqual(ack["downtime_basis"], "window")
        self.assertTrue(ack["ack_required"])
        self.assertIsNotNone(ack["ack_deadline"])
        self.assertEqual(ack["ack_timeout_action"], "block")
        self.assertTrue(ack["keep_allowed"])
        self.assertIn("blocks the maintenance until acknowledged", ack["message"])

        # The test driver cannot migrate: the fallback is the plan, and the notice says so.
        fallback = notices["vm-migrate"]["notice"]
        self.assertEqual(fallback["action"], "shutdown")
        self.assertTrue(fallback["fallback_used"])

        owner = notices["vm-owner"]["notice"]
        self.assertEqual(owner["action"], "owner")
        self.assertIsNone(owner["expected_downtime_s"])
        self.assertIsNotNone(owner["owner_deadline"])

        # status.json, the Notices property and the signals carry the same notices.
        for name, body in notices.items():
            shown = self.daemon.domain(name)["notice"]
            self.assertEqual(shown, body["notice"], name)
        prop = {entry[1]: (entry[2], json.loads(entry[3]))
                for entry in self.daemon.get_property("Notices")}
        self.assertEqual({n: p[0] for n, p in prop.items()},
                         {n: b["notice"]["revision"] for n, b in notices.items()})
        signals = wait_until(lambda: len(monitor.collected()) >= 3 and monitor.collected(), 10,
                             "three Notice signals")
        self.assertEqual({(s[1], s[2]) for s in signals},
                         {(n, b["notice"]["revision"]) for n, b in notices.items()})
        self.assertEqual(json.loads(self.daemon.get_property("StatusJSON"))["domains"][0]["notice"]
                         ["revision"], self.daemon.status_file()["domains"][0]["notice"]["revision"])

        # An ack is a new revision for that domain only.
        self.daemon.ctl("ack", "vm-ack", "keep", check=0)
        acked = self.webhook.wait_for(lambda b: len(b) >= 4, "the acked notice")[3]
        self.assertEqual(acked["domain"]["name"], "vm-ack")
        self.assertGreater(acked["notice"]["revision"], ack["revision"])
        self.assertEqual(acked["notice"]["ack"], "keep")
        self.assertIsNone(acked["notice"]["ack_deadline"])
        self.assertEqual(self.daemon.domain("vm-ack")["notice"]["revision"],
                         acked["notice"]["revision"])

        # A cancel sends a cancelled notice to every domain.
        self.daemon.ctl("cancel", check=0)
        every = self.webhook.wait_for(lambda b: len(b) >= 7, "three cancelled notices")
        cancelled = by_name(every[4:])
        self.assertEqual(set(cancelled), {"vm-ack", "vm-migrate", "vm-owner"})
        for body in cancelled.values():
            self.assertEqual(body["notice"]["status"], "cancelled")
            self.assertIn("cancelled", body["notice"]["message"])
        webhook = wait_until(
            lambda: (lambda w: w if w["delivered"] >= 7 else None)(
                self.daemon.status_file()["notice_webhook"]), 10, "delivered count")
        self.assertEqual(webhook["state"], "ok")
        self.assertEqual(webhook["url"], self.webhook.url)
        self.assertEqual(webhook["pending"], 0)

    def test_keep_is_refused_when_the_host_is_removed(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", "--removal", check=0)
        bodies = self.webhook.wait_for(lambda b: len(b) >= 3, "three notices")
        for body in bodies:
            self.assertTrue(body["notice"]["removal"])
            self.assertFalse(body["notice"]["keep_allowed"])
        result = self.daemon.ctl("ack", "vm-ack", "keep", check=1)
        self.assertIn("removed for good", result.stdout + result.stderr)
        self.assertIsNone(self.daemon.domain("vm-ack")["ack"])

    def test_notices_are_not_sent_again_after_a_restart(self):
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        before = self.webhook.wait_for(lambda b: len(b) >= 3, "three notices")
        revisions = {b["domain"]["name"]: b["notice"]["revision"] for b in before}
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.start()
        for name, revision in revisions.items():
            self.assertEqual(self.daemon.domain(name)["notice"]["revision"], revision)
        # A later change still numbers on: the ack gets a higher revision than any before.
        self.daemon.ctl("ack", "vm-ack", "move", check=0)
        after = self.webhook.wait_for(lambda b: len(b) >= 4, "the acked notice")
        self.assertEqual(len(after), 4, "nothing was sent again on restart")
        self.assertGreater(after[3]["notice"]["revision"], max(revisions.values()))


class FailingWebhook(DaemonTestCase):

    node_xml = DATA_DIR / "node-notices.xml"

    def test_failures_are_visible_and_do_not_block_the_daemon(self):
        self.webhook = WebhookServer(statuses=[503] * 100)
        self.addCleanup(self.webhook.stop)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[notices]\nwebhook_url = "{self.webhook.url}"\nwebhook_attempts = 2\n'
            + 'webhook_retry_min = "100ms"\n')
        self.daemon.start()
        self.daemon.ctl("schedule", "--start", "+1h", "--end", "+3h", check=0)
        webhook = wait_until(
            lambda: (lambda w: w if w["dropped"] == 3 else None)(
                self.daemon.status_file()["notice_webhook"]), 20, "three dropped notices")
        self.assertEqual(webhook["state"], "failing")
        self.assertEqual(webhook["delivered"], 0)
        self.assertIn("503", webhook["last_error"])
        self.assertIn("gave up on notice revision", self.daemon.log_text())
        # The daemon kept serving throughout: the notices are in the status all the same.
        self.assertEqual(self.daemon.get_property("Phase"), "scheduled")
        self.assertIsNotNone(self.daemon.domain("vm-ack")["notice"])

    def test_webhook_token_readable_by_others_refuses_start_naming_the_file(self):
        token = self.workdir / "notices.token"
        token.write_text("s3cret\n")
        token.chmod(0o644)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[notices]\nwebhook_url = "https://127.0.0.1:9/"\nwebhook_token_file = "{token}"\n')
        result = run_hostmaintd("--config", str(self.daemon.config_path), env=self.daemon.env,
                                timeout=30)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(str(token), output)
        self.assertIn("notice webhook", output)


if __name__ == "__main__":
    unittest.main()
