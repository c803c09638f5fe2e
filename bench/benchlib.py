"""What the lab benchmarks (bench/drain, bench/host-shutdown) share.

The lab session and its guests, a real hostmaintd for host a on a private
dbus-daemon, a watcher for event streams (virsh event, busctl monitor), and
the reporting: rounds summarised as median and spread, the machine's load,
a JSON record. See docs/performance.md.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import labctl  # noqa: E402
from harness import PrivateBus, wait_until  # noqa: E402,F401
from lab_harness import LabDaemon  # noqa: E402


# --- the lab and its guests -------------------------------------------------------

@contextlib.contextmanager
def lab(hosts=("a", "b")):
    """Holds the lab session, brings the hosts up with no guest on them, and
    removes every guest (and managed-save image) at the end, however it ends.
    The lab stays up, as after bench/drain: `tests/lab/lab down` stops it."""
    with labctl.session():
        labctl.up(hosts)
        labctl.destroy_all()
        try:
            yield
        finally:
            labctl.destroy_all()


def guest_names(count, prefix="bench"):
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


def boot_guests(names, memory_mib, dirty_mib, host="a", timeout=300, redirty_mib_s=0,
                hot_set_mib=0):
    """Defines and starts the guests on `host`, then waits until each one has
    dirtied its memory and said so on its console. With redirty_mib_s each
    keeps rewriting that many MiB/s, within its first hot_set_mib (0: all)."""
    for name in names:
        labctl.create_guest(name, host=host, memory_mib=memory_mib, dirty_mib=dirty_mib,
                            redirty_mib_s=redirty_mib_s, hot_set_mib=hot_set_mib)
    for name in names:
        labctl.wait_ready(name, timeout=timeout)


# --- hostmaintd ---------------------------------------------------------------------

class Hostmaintd:
    """A real hostmaintd for lab host a on a private dbus-daemon, in a
    workdir of its own; stop() and start() again keep its state directory,
    as a restart of the service does."""

    def __init__(self, destinations=("b",), extra_config=""):
        self.workdir = Path(tempfile.mkdtemp(prefix="hostmaint-bench-"))
        self.bus = PrivateBus(self.workdir)
        # HOSTMAINT_BENCH_LOG_LEVEL=debug: hostmaintd.log says what it did when
        # (kept with HOSTMAINT_BENCH_KEEP).
        level = os.environ.get("HOSTMAINT_BENCH_LOG_LEVEL")
        if level:
            extra_config = f'[log]\nlevel = "{level}"\n\n' + extra_config
        self.daemon = LabDaemon(self.workdir, self.bus, destinations, extra_config)

    def set_config(self, edit):
        """Rewrites the generated config through `edit(text) -> text`."""
        self.daemon.config_path.write_text(edit(self.daemon.config_path.read_text()))

    def close(self):
        try:
            self.daemon.stop()
        finally:
            self.bus.stop()


@contextlib.contextmanager
def hostmaintd(destinations=("b",), extra_config=""):
    """Yields a Hostmaintd (not started); stops it and its bus at the end.
    Its workdir (config, log, state) is removed after a clean run and kept,
    with its path printed, after a failure or with HOSTMAINT_BENCH_KEEP set."""
    handle = Hostmaintd(destinations, extra_config)
    try:
        yield handle
    except BaseException:
        handle.close()
        print(f"hostmaintd's workdir kept: {handle.workdir} (hostmaintd.log)", flush=True)
        raise
    handle.close()
    if os.environ.get("HOSTMAINT_BENCH_KEEP"):
        print(f"hostmaintd's workdir kept (HOSTMAINT_BENCH_KEEP): {handle.workdir}", flush=True)
    else:
        shutil.rmtree(handle.workdir, ignore_errors=True)


# --- event streams ------------------------------------------------------------------

class LineWatcher:
    """Runs a command and keeps its output lines with the time they arrived."""

    def __init__(self, argv):
        self.lines = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)
        return self.lines


def virsh_events(host):
    """Every libvirt event of a lab host, with libvirt's own timestamps."""
    return LineWatcher(["virsh", "-c", labctl.uri(host), "event", "--all", "--loop",
                        "--timestamp"])


def parse_virsh_time(line):
    # "2026-11-25 08:07:40.979+0000: event 'lifecycle' for domain 'web2': Stopped Migrated"
    stamp = line.split(": event", 1)[0]
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def lifecycle_times(event_lines, guests, *events):
    """{guest: time of its last lifecycle event that starts with one of
    `events` ("Stopped Migrated"; "Started", "Resumed")} for the guests that
    had one."""
    seen = {}
    for line in event_lines:
        if "event 'lifecycle' for domain '" not in line:
            continue
        domain, detail = line.split("event 'lifecycle' for domain '", 1)[1].split("': ", 1)
        if domain in guests and detail.startswith(events):
            seen[domain] = parse_virsh_time(line)
    return seen


# --- measuring and reporting --------------------------------------------------------

def timed(action):
    """Seconds `action()` took (monotonic clock)."""
    start = time.monotonic()
    action()
    return time.monotonic() - start


def load_average():
    """The 1-minute load average: TCG guests share the machine's cores with
    everything else, and the numbers move with it."""
    return round(os.getloadavg()[0], 2)


def summary(values):
    """Median and spread (min, max) of one measure over the rounds."""
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def show(stat, digits=2):
    """'12.90' for one round, '12.90 (12.41–13.37)' for several."""
    if len(stat["values"]) == 1:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}–{stat['max']:.{digits}f})"


def print_table(header, rows):
    """A Markdown table, as docs/performance.md records it."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def write_json(path, record):
    Path(path).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {path}")


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
