"""The long poll: a controller that holds the desired-state request (Prefer: wait).

nginx cannot hold a request, so the controller here is a small threaded http.server that
implements the documented behaviour: with `Prefer: wait=N` and a matching If-None-Match it
answers when the desired state changes (200) or after N seconds (304). The poll interval is
long (30 s), so a change that reaches the agent within a few seconds came by the held request.
"""

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import DATA_DIR, DaemonTestCase, wait_until

HOST_ID = "host-a"


class HoldingController:
    def __init__(self):
        self.condition = threading.Condition()
        self.body = None
        self.etag = '"0"'
        self.prefer_headers = []
        self.reports = 0
        self.held = 0  # requests being held right now
        controller = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                prefer = self.headers.get("Prefer", "")
                with controller.condition:
                    controller.prefer_headers.append(prefer)
                    if prefer.startswith("wait=") and self.headers.get("If-None-Match") == controller.etag:
                        seen = controller.etag
                        controller.held += 1
                        controller.condition.notify_all()
                        controller.condition.wait_for(lambda: controller.etag != seen,
                                                      timeout=int(prefer[5:]))
                        controller.held -= 1
                    body, etag = controller.body, controller.etag
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with controller.condition:
                    controller.reports += 1
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_desired(self, body):
        with self.condition:
            self.body = body
            self.etag = f'"{int(self.etag.strip(chr(34))) + 1}"'
            self.condition.notify_all()

    def stop(self):
        with self.condition:
            self.etag = '"stopping"'
            self.condition.notify_all()
        self.server.shutdown()
        self.server.server_close()


def desired(state, session="lp-1"):
    now = datetime.now(timezone.utc)
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return {"session_id": session, "state": state,
            "window": {"start": stamp(now + timedelta(hours=1)),
                       "end": stamp(now + timedelta(hours=2))},
            "reason": "firmware", "destinations": [], "acks": {}}


class LongPoll(DaemonTestCase):

    node_xml = DATA_DIR / "node-controller.xml"

    def setUp(self):
        super().setUp()
        self.controller = HoldingController()
        self.addCleanup(self.controller.stop)
        self.controller.set_desired(desired("none"))
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text()
            + f'[controller]\nbase_url = "{self.controller.base_url}"\nhost_id = "{HOST_ID}"\n'
              f'poll_interval = "30s"\nheartbeat_interval = "1s"\n')

    def test_a_held_poll_brings_a_change_at_once_and_reports_keep_flowing(self):
        self.daemon.start()
        # The first poll gets the document; the next one goes out at once and is held.
        wait_until(lambda: self.controller.prefer_headers.count("wait=30") >= 2, 10,
                   "a second poll asking the controller to hold it (Prefer: wait=30)")
        wait_until(lambda: self.controller.held >= 1, 10, "the controller holding a poll")
        reports_before = self.controller.reports
        changed_at = time.monotonic()
        self.controller.set_desired(desired("scheduled"))
        wait_until(lambda: self.daemon.status_file()["phase"] == "scheduled", 10,
                   "the scheduled state delivered by the held poll")
        self.assertLess(time.monotonic() - changed_at, 5.0,
                        "the change came by the held request, not by the 30 s interval")
        # Status reports (heartbeat every second) were not stuck behind the held poll.
        wait_until(lambda: self.controller.reports >= reports_before + 2, 10,
                   "status reports while a poll is held")

    def test_long_poll_can_be_turned_off(self):
        self.daemon.config_path.write_text(self.daemon.config_path.read_text()
                                           + "long_poll = false\n")
        self.daemon.start()
        wait_until(lambda: self.controller.prefer_headers, 10, "a first poll")
        self.assertEqual(self.controller.prefer_headers[0], "")


if __name__ == "__main__":
    import unittest
    unittest.main()
