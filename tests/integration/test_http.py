"""The local HTTP endpoint, checked with curl: /readyz follows readiness, /metrics
reports it, and a port in use stops the start with a clear message."""

import re
import socket
import subprocess
import sys
import unittest

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's python3-prometheus-client (scripts/deps), when the interpreter running
    # the tests is not Debian's own; the module is pure Python.
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

from harness import DaemonTestCase, run_hostmaintd


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_config(port):
    return f'[http]\nenabled = true\nlisten_address = "127.0.0.1"\nport = {port}\n'


class HttpEndpoint(DaemonTestCase):
    def setUp(self):
        self.port = free_port()
        self.extra_config = http_config(self.port)
        super().setUp()

    def curl(self, path, *args):
        result = subprocess.run(
            ["curl", "-s", "--max-time", "10", *args, f"http://127.0.0.1:{self.port}{path}"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, f"curl {path}: {result.stderr}")
        return result.stdout

    def code(self, path, *args):
        return self.curl(path, "-o", "/dev/null", "-w", "%{http_code}", *args)

    def metrics(self):
        """The samples of /metrics as {'name{label="value",...}': value}, read by the
        Prometheus client library's own parser (which rejects what is not the text
        format); each family must also declare its type."""
        text = self.curl("/metrics")
        values = {}
        families = list(text_string_to_metric_families(text))
        self.assertTrue(families, "no metric families in /metrics")
        for family in families:
            self.assertIn(family.type, ("gauge", "counter"), family.name)
            self.assertTrue(family.documentation, f"{family.name} has no HELP")
            for sample in family.samples:
                labels = ",".join(f'{key}="{value}"' for key, value in sample.labels.items())
                values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
        return values

    def test_readyz_follows_readiness_and_metrics_report_it(self):
        self.daemon.start()
        self.assertEqual(self.code("/readyz"), "503")
        self.assertEqual(self.metrics()["hostmaint_ready"], 0)
        self.assertEqual(self.metrics()['hostmaint_phase{phase="idle"}'], 1)

        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", check=0)
        self.daemon.ctl("wait", "--ready", "--timeout", "30", check=0)
        self.assertEqual(self.code("/readyz"), "200")
        self.assertEqual(self.curl("/readyz"), "ready\n")
        metrics = self.metrics()
        self.assertEqual(metrics["hostmaint_ready"], 1)
        self.assertEqual(metrics['hostmaint_phase{phase="empty"}'], 1)
        self.assertEqual(metrics["hostmaint_blockers"], 0)
        self.assertEqual(metrics["hostmaint_migrations_in_flight"], 0)
        self.assertGreaterEqual(metrics['hostmaint_domains{stage="done"}'], 1)
        # Every domain that was acted on has its action's duration.
        durations = {name: value for name, value in metrics.items()
                     if name.startswith("hostmaint_action_duration_seconds{")}
        self.assertTrue(durations, "no action durations after a drain")
        self.assertTrue(all(value >= 0 for value in durations.values()), durations)

    def test_status_is_the_status_file_document_and_writes_are_refused(self):
        self.daemon.start()
        self.assertIn('"phase":"idle"', self.curl("/v1/status"))
        self.assertEqual(self.code("/v1/status", "-X", "POST"), "405")
        self.assertEqual(self.code("/nothing-here"), "404")


class HttpPortInUse(DaemonTestCase):
    def setUp(self):
        self.holder = socket.socket()
        self.addCleanup(self.holder.close)
        self.holder.bind(("127.0.0.1", 0))
        self.holder.listen()
        self.port = self.holder.getsockname()[1]
        self.extra_config = http_config(self.port)
        super().setUp()

    def test_start_fails_naming_address_and_port(self):
        result = run_hostmaintd("--config", str(self.daemon.config_path), env=self.daemon.env,
                                timeout=60)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertRegex(result.stdout + result.stderr,
                         re.escape(f"127.0.0.1:{self.port}"))


if __name__ == "__main__":
    unittest.main()
