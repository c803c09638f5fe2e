"""Python handle on the two-host libvirt lab (tests/lab/lab), for lab tests and
the drain benchmark. Standard library only; it drives the `lab` script and
virsh, so the lab has one definition of hosts and guests.

    import labctl
    labctl.up()
    labctl.create_guest("g1", host="a", memory_mib=512, dirty_mib=200)
    labctl.wait_ready("g1")
    seconds = labctl.migrate("g1", "a", "b")
    labctl.assert_single_placement(["g1"])
    labctl.down()

LAB_DIR in the environment moves the lab (default /var/tmp/hostmaint-lab).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

LAB = Path(__file__).resolve().parent / "lab"
PORTS = {"a": 16511, "b": 16512, "c": 16513}
MIGRATE_URI = "tcp://127.0.0.1"


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its output."""


def lab_dir() -> Path:
    return Path(os.environ.get("LAB_DIR", "/var/tmp/hostmaint-lab"))


def uri(host: str) -> str:
    if host not in PORTS:
        raise ValueError(f"unknown lab host {host!r} (hosts are {', '.join(PORTS)})")
    return f"qemu+tcp://127.0.0.1:{PORTS[host]}/system"


@contextlib.contextmanager
def session(wait: float | None = None):
    """Holds the lab session (see `lab exclusive`): one test run, bench or demo
    drives the lab at a time. A process started under `lab exclusive` already
    holds it and passes through."""
    directory = lab_dir()
    if os.environ.get("HOSTMAINT_LAB_SESSION") == str(directory):
        yield
        return
    wait = float(os.environ.get("LAB_SESSION_WAIT", "3600")) if wait is None else wait
    # Beside the lab directory, not in it: `down` removes the directory, and
    # a waiter must still hold the one lock file every later user opens.
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.with_name(directory.name + ".session")
    owner = directory.with_name(directory.name + ".session.owner")
    with open(lock_path, "a") as lock:
        deadline = time.monotonic() + wait
        announced = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = owner.read_text().strip() if owner.exists() else "unknown"
                if time.monotonic() > deadline:
                    raise LabError(f"the lab session is still held after {wait:.0f} s by: {holder}")
                if not announced:
                    print(f"labctl: waiting for the lab session held by: {holder}", flush=True)
                    announced = True
                time.sleep(0.5)
        owner.write_text(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: "
                         f"{' '.join(os.sys.argv)}\n")
        previous = os.environ.get("HOSTMAINT_LAB_SESSION")
        os.environ["HOSTMAINT_LAB_SESSION"] = str(directory)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("HOSTMAINT_LAB_SESSION", None)
            else:
                os.environ["HOSTMAINT_LAB_SESSION"] = previous


def hosts() -> list[str]:
    """Hosts that were brought up (have state under LAB_DIR)."""
    return [h for h in PORTS if (lab_dir() / "hosts" / h).is_dir()]


def _run(argv: Sequence[str], timeout: float) -> str:
    try:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)}: no result after {timeout} s") from e
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def lab(*args: str, timeout: float = 300) -> str:
    return _run([str(LAB), *args], timeout)


def virsh(host: str, *args: str, timeout: float = 60) -> str:
    return _run(["virsh", "-q", "-c", uri(host), *args], timeout)


def up(host_names: Iterable[str] = ("a", "b")) -> None:
    lab("up", "--hosts", ",".join(host_names))


def down(keep_files: bool = False) -> None:
    lab("down", *(["--keep"] if keep_files else []))


def restart_libvirtd(host: str) -> None:
    lab("restart-libvirtd", host)


def kill_libvirtd(host: str) -> None:
    """SIGKILL of the host's libvirtd (a crash); its guests keep running."""
    lab("kill-libvirtd", host)


def cut_link(host: str) -> None:
    """Drops all migration data to and from the host's incoming ports."""
    lab("cut-link", host)


def restore_link() -> None:
    lab("restore-link")


def shape_link(mbit: int, host: str = "b") -> None:
    """Limits the migration data into the host's incoming ports to mbit Mbit/s."""
    lab("shape-link", str(mbit), host)


def unshape_link() -> None:
    lab("unshape-link")


def link_bytes(host: str = "b") -> int:
    """Bytes the shaped link into the host has carried since shape_link."""
    return int(lab("link-bytes", host).strip())


def create_guest(name: str, host: str = "a", memory_mib: int = 512, dirty_mib: int = 200,
                 redirty_mib_s: int = 0, vcpus: int = 1, policy_xml: str | None = None,
                 hot_set_mib: int = 0) -> None:
    """Defines (persistent) and starts a guest. It rewrites redirty_mib_s MiB/s
    of its dirty_mib MiB, within the first hot_set_mib of them (0: all).
    policy_xml is the text of a <hostmaint:policy> element, put in the domain's
    <metadata>."""
    args = ["guest", "create", name, "--host", host, "--memory-mib", str(memory_mib),
            "--dirty-mib", str(dirty_mib), "--redirty-mib-s", str(redirty_mib_s),
            "--hot-set-mib", str(hot_set_mib), "--vcpus", str(vcpus)]
    if policy_xml is None:
        lab(*args)
        return
    policy_dir = lab_dir() / "guests"
    policy_dir.mkdir(parents=True, exist_ok=True)
    policy_file = policy_dir / f"{name}.policy.xml"
    policy_file.write_text(policy_xml)
    lab(*args, "--policy-xml", str(policy_file))


def wait_ready(name: str, timeout: float = 90) -> None:
    lab("guest", "wait-ready", name, "--timeout", str(int(timeout)), timeout=timeout + 30)


def destroy_all() -> None:
    lab("guest", "destroy-all")


def where(name: str) -> dict[str, str]:
    """{host: state} for every lab host that defines or runs the guest,
    state as virsh domstate prints it ("running", "paused", "shut off"...)."""
    placement = {}
    for host in hosts():
        done = subprocess.run(["virsh", "-q", "-c", uri(host), "domstate", name],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        if done.returncode == 0:
            placement[host] = done.stdout.strip()
        elif "ailed to get domain" not in done.stderr and "not found" not in done.stderr:
            raise LabError(f"virsh domstate {name} on host {host}: {done.stderr.strip()}")
    return placement


def placement_errors(names: Iterable[str]) -> list[str]:
    """Why the invariant does not hold: every guest running on exactly one
    host, none lost, none in two places, none paused. Empty when it holds."""
    errors = []
    for name in names:
        states = where(name)
        running = [h for h, s in states.items() if s == "running"]
        paused = [h for h, s in states.items() if s == "paused"]
        if paused:
            errors.append(f"{name}: paused on {', '.join(paused)} ({states})")
        if len(running) != 1:
            errors.append(f"{name}: running on {len(running)} hosts, expected 1 ({states or 'nowhere'})")
    return errors


def assert_single_placement(names: Iterable[str]) -> Mapping[str, str]:
    """Raises AssertionError unless every guest runs on exactly one host and
    none is paused; returns {guest: host} when it holds."""
    names = list(names)
    errors = placement_errors(names)
    if errors:
        raise AssertionError("guest placement broken:\n  " + "\n  ".join(errors))
    return {n: next(h for h, s in where(n).items() if s == "running") for n in names}


def migrate_argv(name: str, src: str, dst: str, extra: Sequence[str] = ()) -> list[str]:
    return ["virsh", "-c", uri(src), "migrate", "--live", "--p2p", "--persistent",
            "--undefinesource", *extra, name, uri(dst), MIGRATE_URI]


def migrate(name: str, src: str, dst: str, extra: Sequence[str] = (),
            timeout: float = 600) -> float:
    """Live-migrates like an admin does (p2p, persistent on the destination,
    undefined on the source); returns the wall-clock seconds virsh took."""
    start = time.monotonic()
    _run(migrate_argv(name, src, dst, extra), timeout)
    return time.monotonic() - start


def all_at_once(commands: Mapping[str, Sequence[str]], what: str = "command",
                timeout: float = 600) -> float:
    """Starts every command at once ({name: argv}) and waits for all of them
    (the naive parallel script); returns the seconds until the last one
    finished. Raises LabError naming each one that failed."""
    start = time.monotonic()
    procs = [(n, subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for n, argv in commands.items()]
    failures = []
    for name, proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{name}: no result after {timeout} s")
            continue
        if proc.returncode != 0:
            failures.append(f"{name}: exited {proc.returncode}: {err.strip()}")
    elapsed = time.monotonic() - start
    if failures:
        raise LabError(f"parallel {what} failed: " + "; ".join(failures))
    return elapsed


def migrate_all_at_once(names: Sequence[str], src: str, dst: str,
                        timeout: float = 600) -> float:
    """Starts every migration at once and waits for all of them (the naive
    parallel script); returns the seconds until the last one finished."""
    return all_at_once({n: migrate_argv(n, src, dst) for n in names}, "migration", timeout)


if __name__ == "__main__":
    # Smoke run, also the measurement recorded in docs/lab.md.
    import argparse

    parser = argparse.ArgumentParser(description="lab smoke run: boot, migrate, check, tear down")
    parser.add_argument("--guests", type=int, default=2)
    parser.add_argument("--memory-mib", type=int, default=512)
    parser.add_argument("--dirty-mib", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    opts = parser.parse_args()
    names = [f"smoke{i}" for i in range(1, opts.guests + 1)]
    up()
    try:
        destroy_all()
        for n in names:
            create_guest(n, "a", opts.memory_mib, opts.dirty_mib)
        for n in names:
            wait_ready(n)
        print(f"one guest a->b:         {migrate(names[0], 'a', 'b'):.2f} s")
        print(f"placement: {assert_single_placement(names)}")
        print(f"one guest b->a:         {migrate(names[0], 'b', 'a'):.2f} s")
        seq_start = time.monotonic()
        for n in names:
            migrate(n, "a", "b")
        print(f"{len(names)} guests one by one: {time.monotonic() - seq_start:.2f} s")
        print(f"placement: {assert_single_placement(names)}")
        print(f"{len(names)} guests at once b->a: {migrate_all_at_once(names, 'b', 'a'):.2f} s")
        print(f"placement: {assert_single_placement(names)}")
    finally:
        if not opts.keep:
            down()
