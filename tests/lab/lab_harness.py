"""hostmaintd against the two-host lab: host a is drained, b (and c) receive.

Reuses the integration harness (private dbus-daemon, sd_notify readiness) and
labctl (the lab's hosts and guests). Guests are created per test and destroyed
after it; the lab itself stays up between tests.
"""

import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import labctl  # noqa: E402
from harness import Daemon, DaemonTestCase, wait_until  # noqa: E402,F401

POLICY_NS = "https://hostmaint.org/xmlns/policy/1"


def policy_xml(**keys) -> str:
    """A <hostmaint:policy> element with the given keys."""
    children = "".join(f"<hostmaint:{k}>{v}</hostmaint:{k}>" for k, v in keys.items())
    return f'<hostmaint:policy xmlns:hostmaint="{POLICY_NS}">{children}</hostmaint:policy>'


def destination(host: str, **settings) -> str:
    """A [migration] destinations entry for a lab host, as TOML."""
    fields = [f'uri = "{labctl.uri(host)}"', f'migrate_uri = "{labctl.MIGRATE_URI}"']
    fields += [f"{k} = {v}" for k, v in settings.items()]
    return "{ " + ", ".join(fields) + " }"


class LabDaemon(Daemon):
    """hostmaintd with a lab host (a unless told) as its hypervisor."""

    def __init__(self, workdir: Path, bus, destinations=("b",), extra_config: str = "",
                 host: str = "a"):
        super().__init__(workdir, bus, Path("/dev/null"))
        entries = [d if d.startswith("{") or "://" in d else destination(d) for d in destinations]
        self.config_path.write_text(
            f'[libvirt]\nuri = "{labctl.uri(host)}"\n'
            f'reconnect_min = "200ms"\nreconnect_max = "2s"\n\n'
            f'[paths]\nstate_dir = "{self.state_dir}"\nruntime_dir = "{self.runtime_dir}"\n\n'
            f'[evidence]\nqemu_process_scope = "known-domains"\n\n'
            f'[migration]\ndestinations = [{", ".join(entries)}]\n\n'
            + extra_config)


class LabTestCase(DaemonTestCase):
    """A daemon on host a; guests named in self.guests are checked and removed after."""

    destinations = ("b",)
    lab_hosts = ("a", "b")

    @classmethod
    def setUpClass(cls):
        # One user of the lab at a time, for the whole class: another test run,
        # bench or demo waits (labctl.session, `lab exclusive`).
        cls._lab_session = labctl.session()
        cls._lab_session.__enter__()
        try:
            labctl.up(cls.lab_hosts)
            labctl.destroy_all()
        except BaseException:
            cls._lab_session.__exit__(None, None, None)
            raise
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._lab_session.__exit__(None, None, None)

    def setUp(self):
        super().setUp()
        self.daemon = LabDaemon(self.workdir, self.bus, self.destinations, self.extra_config)
        self.guests = []
        self.addCleanup(labctl.destroy_all)

    def create(self, name, memory_mib=256, dirty_mib=100, redirty_mib_s=0, **policy):
        labctl.create_guest(name, host="a", memory_mib=memory_mib, dirty_mib=dirty_mib,
                            redirty_mib_s=redirty_mib_s,
                            policy_xml=policy_xml(**policy) if policy else None)
        self.guests.append(name)

    def wait_all_ready(self, timeout=180):
        for name in self.guests:
            labctl.wait_ready(name, timeout=timeout)

    def schedule_now(self):
        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", "--reason", "lab", check=0)

    def wait_ready(self, timeout=300):
        result = self.daemon.ctl("wait", "--ready", "--timeout", str(timeout),
                                 timeout=timeout + 30)
        if result.returncode != 0:
            raise AssertionError(f"not ready within {timeout}s (exit {result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}\n"
                                 f"status: {self.daemon.status_file()}")

    def assert_invariant(self):
        """Every guest runs on exactly one host, none lost, none in two places, none paused."""
        return labctl.assert_single_placement(self.guests)


def main():
    unittest.main(verbosity=2)
