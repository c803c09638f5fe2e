"""Runs the real hostmaintd and hostmaintctl for integration tests.

Each test gets its own private system-like D-Bus (dbus-daemon with the project's bus
policy), a state and runtime directory, and hostmaintd on libvirt's test driver. Readiness
of the daemon is taken from its own sd_notify READY=1 (we play the service manager's
NOTIFY_SOCKET), not from a sleep.
"""

import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("HOSTMAINT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
HOSTMAINTD = os.environ.get("HOSTMAINTD", str(SOURCE_DIR / "build/agent/hostmaintd"))
HOSTMAINTCTL = os.environ.get("HOSTMAINTCTL", str(SOURCE_DIR / "build/agent/hostmaintctl"))
DATA_DIR = Path(__file__).resolve().parent / "data"
BUS_CONF_TEMPLATE = Path(__file__).resolve().parent / "dbus" / "system-bus.conf.in"
BUS_POLICY = SOURCE_DIR / "systemd" / "org.hostmaint.Agent1.conf"

BUS_NAME = "org.hostmaint.Agent1"
OBJECT_PATH = "/org/hostmaint/Agent1"
INTERFACE = "org.hostmaint.Agent1"

# CI sets this (scripts/test with CI=true): a tool scripts/deps installs is then
# never missing for a reason worth skipping over.
REQUIRE_TOOLS = os.environ.get("HOSTMAINT_REQUIRE_TOOLS") == "1"


def requires_tools(*tools):
    """Class decorator: skip the tests when a tool is missing, or fail them when
    HOSTMAINT_REQUIRE_TOOLS=1. A tool is a name looked up on PATH or an absolute path
    (a program or a file such as a shell library)."""
    def present(tool):
        if os.path.isabs(tool):
            return os.path.exists(tool)
        return shutil.which(tool) is not None

    missing = [tool for tool in tools if not present(tool)]
    if not missing:
        return lambda cls: cls
    reason = f"needs {', '.join(missing)}, which scripts/deps installs"
    if not REQUIRE_TOOLS:
        return unittest.skip(reason)

    def fail_instead(cls):
        def set_up_class(klass):
            raise AssertionError(f"{reason}; missing with HOSTMAINT_REQUIRE_TOOLS=1")
        cls.setUpClass = classmethod(set_up_class)
        return cls
    return fail_instead


# Sanitizer builds (scripts/test-sanitizers, docs/testing.md) make every report fatal,
# but a report in a daemon stopped by a signal, or in a process whose exit status a test
# does not check, would still go unseen: every output of ours is searched for the
# reports' own markers, and one found fails the test.
SANITIZER_REPORT = re.compile(
    r"WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer"
    r"|:\d+:\d+: runtime error: ")


def assert_no_sanitizer_report(text, what):
    """Fails naming `what` when `text` holds a sanitizer report."""
    found = SANITIZER_REPORT.search(text)
    if found:
        start = max(0, found.start() - 200)
        raise AssertionError(f"sanitizer report from {what}:\n{text[start:start + 8000]}")


def run_hostmaintd(*args, **kwargs):
    """Runs hostmaintd to completion (capturing its output), checked for sanitizer reports."""
    result = subprocess.run([HOSTMAINTD, *args], capture_output=True, text=True, **kwargs)
    assert_no_sanitizer_report(result.stdout + result.stderr, "hostmaintd " + " ".join(args))
    return result


def wait_until(predicate, timeout, what):
    """Re-checks `predicate` until it holds; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class BusMonitor:
    """`busctl monitor --json=short` on a daemon's private bus with the given match
    rules; each message is handed to `received` (the test thread, in collected())."""

    def __init__(self, daemon, *matches):
        argv = ["busctl", f"--address={daemon.bus.address}", "monitor", "--json=short"]
        for match in matches:
            argv += ["--match", match]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def received(self, message):
        raise NotImplementedError

    def drain(self):
        """Hands every message read so far to `received`."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            self.received(json.loads(line))

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.process.stdout.close()


class PrivateBus:
    """A dbus-daemon configured like the system bus, with hostmaint's bus policy."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "bus"
        self.dir.mkdir()
        # Non-root test clients must reach the socket.
        os.chmod(workdir, 0o755)
        os.chmod(self.dir, 0o755)
        socket_path = self.dir / "system_bus_socket"
        policy_dir = self.dir / "system.d"
        policy_dir.mkdir()
        shutil.copy(BUS_POLICY, policy_dir / BUS_POLICY.name)
        conf = BUS_CONF_TEMPLATE.read_text()
        conf = conf.replace("@SOCKET_PATH@", str(socket_path)).replace("@POLICY_DIR@", str(policy_dir))
        self.conf_path = self.dir / "bus.conf"
        self.conf_path.write_text(conf)
        # The socket alone, without the daemon's guid: clients (hostmaintd
        # above all) reach whichever dbus-daemon listens there, so the bus can
        # be restarted under them (restart()).
        self.address = f"unix:path={socket_path}"
        self.process = None
        self.start()

    def start(self):
        """Starts dbus-daemon on the socket and waits until it listens."""
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.conf_path}", "--nofork",
             f"--print-address={write_fd}"],
            pass_fds=(write_fd,))
        os.close(write_fd)
        with os.fdopen(read_fd) as reader:
            printed = reader.readline().strip()
        if not printed:
            raise RuntimeError("dbus-daemon did not print its address")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self):
        """Stops dbus-daemon (every client loses its connection) and starts a new one
        on the same socket and configuration: the same address."""
        self.stop()
        self.start()


class NotifySocket:
    """Plays systemd's NOTIFY_SOCKET so tests wait for READY=1 instead of sleeping."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages = []

    def wait_for(self, key_value, timeout):
        deadline = time.monotonic() + timeout
        while not any(key_value in m for m in self.messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"hostmaintd did not send {key_value} within {timeout}s "
                                     f"(got {self.messages})")
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def close(self):
        self.sock.close()


class Daemon:
    """hostmaintd with a generated config on a libvirt test-driver node."""

    def __init__(self, workdir: Path, bus: PrivateBus, node_xml: Path, extra_config: str = ""):
        self.workdir = workdir
        self.bus = bus
        self.state_dir = workdir / "state"
        self.runtime_dir = workdir / "run"
        self.config_path = workdir / "hostmaintd.conf"
        self.config_path.write_text(
            f'[libvirt]\nuri = "test://{node_xml}"\n\n'
            f'[paths]\nstate_dir = "{self.state_dir}"\nruntime_dir = "{self.runtime_dir}"\n\n'
            f'[evidence]\nqemu_process_scope = "known-domains"\n\n'
            + extra_config)
        self.log_path = workdir / "hostmaintd.log"
        self.process = None
        self.notify = None
        self.extra_args = []  # more hostmaintd options for the next start

    @property
    def env(self):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        return env

    def start(self, timeout=20):
        notify_path = self.workdir / f"notify-{time.monotonic_ns()}"
        self.notify = NotifySocket(notify_path)
        env = self.env
        env["NOTIFY_SOCKET"] = str(notify_path)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [HOSTMAINTD, "--config", str(self.config_path), "--log-level", "debug",
             *self.extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.notify.wait_for("READY=1", timeout)
        except AssertionError:
            self.process.kill()
            raise AssertionError(f"hostmaintd did not become ready; log:\n{self.log_text()}")

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stacks = subprocess.run(
                    ["gdb", "-p", str(self.process.pid), "-batch", "-ex", "thread apply all bt"],
                    capture_output=True, text=True).stdout
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"hostmaintd did not stop within {timeout}s of signal "
                                     f"{sig}; its threads were:\n{stacks}")
        if self.notify:
            self.notify.close()
            self.notify = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        if self.process:
            assert_no_sanitizer_report(self.log_text(), f"hostmaintd ({self.log_path})")
        return self.process.returncode if self.process else None

    def ctl(self, *args, user=None, timeout=60, check=None):
        """Runs hostmaintctl; returns CompletedProcess. `check` asserts the exit code."""
        command = [HOSTMAINTCTL, *args]
        if user:
            command = ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
                       "--clear-groups", *command]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        assert_no_sanitizer_report(result.stderr, f"hostmaintctl {' '.join(args)}")
        if check is not None and result.returncode != check:
            raise AssertionError(
                f"hostmaintctl {' '.join(args)} exited {result.returncode}, expected {check}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"daemon log tail:\n{self.log_text()[-4000:]}")
        return result

    def busctl(self, *args, user=None):
        command = ["busctl", f"--address={self.bus.address}", *args]
        if user:
            command = ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
                       "--clear-groups", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    def get_property(self, name, user=None):
        result = self.busctl("--json=short", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE,
                             name, user=user)
        if result.returncode != 0:
            raise AssertionError(f"busctl get-property {name} failed: {result.stderr}")
        return json.loads(result.stdout)["data"]

    def status_file(self):
        return json.loads((self.runtime_dir / "status.json").read_text())

    def domain(self, name):
        for entry in self.status_file()["domains"]:
            if entry["name"] == name:
                return entry
        raise AssertionError(f"domain {name} not in status.json")


class DaemonTestCase(unittest.TestCase):
    """Base: a private bus and a daemon per test, torn down even on failure."""

    node_xml = DATA_DIR / "node-basic.xml"
    extra_config = ""

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="hostmaint-it-"))
        # Cleanups run last-in first-out: the directory goes after bus and daemon.
        self.addCleanup(self._remove_workdir)
        self.bus = PrivateBus(self.workdir)
        self.addCleanup(self.bus.stop)
        self.daemon = Daemon(self.workdir, self.bus, self.node_xml, self.extra_config)
        self.addCleanup(self._stop_daemon)

    def _stop_daemon(self):
        try:
            self.daemon.stop()
        finally:
            if self._outcome_failed():
                print(f"\n--- hostmaintd log ({self.daemon.log_path}) ---\n"
                      f"{self.daemon.log_text()[-6000:]}")

    def _remove_workdir(self):
        if not self._outcome_failed():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(test is self for test, _ in result.failures + result.errors)
