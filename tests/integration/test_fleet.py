"""A fleet of three hostmaintd coordinated through a real 3-member etcd cluster on
loopback (docs/fleet.md): rolling maintenance never puts more hosts in maintenance than
allowed, a killed or stopped slot holder frees its slot only after its lease's TTL and
resumes or waits when it comes back, one etcd member down changes nothing, and with etcd
gone no maintenance starts while local status and control keep working.

Each host is a hostmaintd on its own libvirt test-driver node and its own private bus; no
domain migrates (the test driver cannot), so the drains are fallbacks and quick."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

from etcd_cluster import EtcdCluster, SecureEtcd, b64, free_port
from harness import (DATA_DIR, SOURCE_DIR, Daemon, PrivateBus, requires_tools, run_hostmaintd,
                     wait_until)

HOSTS = ["h1", "h2", "h3"]
FLEET = "test"
PREFIX = f"/hostmaint/{FLEET}/"
LEASE_TTL = 4
IN_MAINTENANCE = {"draining", "empty", "in-maintenance"}
RACE_SOURCE = os.environ.get("HOSTMAINT_FLEET_RACE_SOURCE",
                             str(SOURCE_DIR / "build/tests/fleet_race_source"))


class SamplingWatch:
    """Calls `sample` on a thread every `interval` s while a test runs; `sample` appends
    to `violations` what it finds wrong and keeps `max_seen` up to date. `check` stops the
    thread and fails the test on any violation."""
    interval = 0.02
    what = "the fleet's limit was broken"

    def __init__(self, test):
        self.test = test
        self.violations = []
        self.max_seen = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_event.wait(self.interval):
            self.sample()

    def sample(self):
        raise NotImplementedError

    def check(self):
        self.stop_event.set()
        self.thread.join(timeout=5)
        self.test.assertEqual(self.violations[:5], [], self.what)


class InvariantWatch(SamplingWatch):
    """Samples every host's status.json and etcd's slots: records each moment more hosts
    were in maintenance, or more slots held, than allowed."""

    def __init__(self, test, max_concurrent):
        self.max_concurrent = max_concurrent
        super().__init__(test)

    def sample(self):
        phases = {}
        for host, daemon in self.test.daemons.items():
            try:
                phases[host] = daemon.status_file()["phase"]
            except (OSError, ValueError, KeyError):
                continue
        busy = sorted(h for h, p in phases.items() if p in IN_MAINTENANCE)
        self.max_seen = max(self.max_seen, len(busy))
        if len(busy) > self.max_concurrent:
            self.violations.append(f"in maintenance at once: {busy}")
        try:
            slots = self.test.etcd.range_prefix(PREFIX + "slots/all/")
        except RuntimeError:
            return  # etcd down: nothing to read
        holders = list(slots.values())
        if len(slots) > self.max_concurrent or len(set(holders)) != len(holders):
            self.violations.append(f"slots held: {slots}")


class ClaimWatch(SamplingWatch):
    """Samples the claims on one peer's incoming slots (one range: one revision): never
    more than its limit."""
    interval = 0.005
    what = "the peer's incoming limit was broken"

    def __init__(self, test, peer, limit):
        self.peer = peer
        self.limit = limit
        self.samples = 0
        super().__init__(test)

    def sample(self):
        try:
            claims = self.test.etcd.range_prefix(PREFIX + f"incoming/{self.peer}/")
        except RuntimeError:
            return
        self.samples += 1
        self.max_seen = max(self.max_seen, len(claims))
        if len(claims) > self.limit:
            self.violations.append(f"claims on {self.peer}: {sorted(claims)}")


class FleetCase(unittest.TestCase):
    """Three hosts and a 3-member etcd cluster; the helpers the tests share."""
    max_concurrent = 1
    per_domain = 0
    domains = {}  # host -> failure domain
    command = ""  # [fleet] maintenance_command; {dir} is the host's directory

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="hostmaint-fleet-"))
        self.addCleanup(self._remove_workdir)
        self.etcd = EtcdCluster(self.workdir)
        self.addCleanup(self.etcd.stop_all)
        self.daemons = {}
        for host in HOSTS:
            hostdir = self.workdir / host
            hostdir.mkdir()
            bus = PrivateBus(hostdir)
            self.addCleanup(bus.stop)
            daemon = Daemon(hostdir, bus, self.node_xml(host), self.fleet_config(host))
            (hostdir / "boot_id").write_text("boot-1\n")
            daemon.extra_args = ["--boot-id-file", str(hostdir / "boot_id")]
            self.addCleanup(self._stop_daemon, daemon)
            daemon.start()
            self.daemons[host] = daemon

    def node_xml(self, host):
        return DATA_DIR / "node-basic.xml"

    def fleet_config(self, host):
        endpoints = ", ".join(f'"{e}"' for e in self.etcd.endpoints)
        return (f'[fleet]\nendpoints = [{endpoints}]\nname = "{FLEET}"\nhost = "{host}"\n'
                f"max_concurrent = {self.max_concurrent}\nlease_ttl = {LEASE_TTL}\n"
                f'poll_interval = "200ms"\nconnect_timeout = "500ms"\nrequest_timeout = "1s"\n'
                f'failure_domain = "{self.domains.get(host, "")}"\n'
                f"max_concurrent_per_domain = {self.per_domain}\n"
                f"maintenance_command = {json.dumps(self.command.format(dir=self.workdir / host))}\n")

    def _stop_daemon(self, daemon):
        try:
            if daemon.process and daemon.process.poll() is None:
                # A stopped daemon must be able to hear SIGTERM.
                daemon.process.send_signal(signal.SIGCONT)
            daemon.stop()
        finally:
            if self._failed():
                print(f"\n--- {daemon.log_path} ---\n{daemon.log_text()[-5000:]}")

    def _remove_workdir(self):
        if self._failed():
            print(self.etcd.logs())
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return result is not None and any(t is self for t, _ in result.failures + result.errors)

    # ---- helpers -------------------------------------------------------------------

    def status(self, host):
        return self.daemons[host].status_file()

    def fleet(self, host):
        return self.status(host).get("fleet", {})

    def wait_status(self, host, predicate, what, timeout=30):
        """The host's status.json once `predicate` holds for it."""
        def check():
            status = self.status(host)
            return status if predicate(status) else None
        return wait_until(check, timeout, f"{host}: {what}")

    def schedule_now(self, host):
        self.daemons[host].ctl("schedule", "--start", "now", "--end", "+2h", check=0)

    def slots(self):
        return self.etcd.range_prefix(PREFIX + "slots/all/")

    def finish_when_empty(self, host, timeout=30):
        self.wait_status(host, lambda s: s["phase"] == "empty", "empty", timeout)
        self.daemons[host].ctl("finish", check=0)
        self.wait_status(host, lambda s: s["phase"] == "idle", "idle again", timeout)

    def _holder_loses_its_slot(self, lose, regain):
        """h1 holds the slot; `lose` takes its agent away; h2 waits for the slot and gets it
        only once h1's lease expired; `regain` brings h1 back, which then waits."""
        watch = InvariantWatch(self, self.max_concurrent)
        self.schedule_now("h1")
        self.wait_status("h1", lambda s: s["phase"] == "empty" and s["fleet"]["slot"] == 0,
                         "empty with slot 0")
        self.schedule_now("h2")
        status = self.wait_status("h2", lambda s: s["fleet"]["waiting_for_slot"],
                                  "waiting for a slot")
        self.assertEqual(status["phase"], "scheduled")
        self.assertIn("fleet", [b["subject"] for b in status["blockers"]])
        lost_at = time.monotonic()
        lose(self.daemons["h1"])
        wait_until(lambda: self.slots().get(PREFIX + "slots/all/0") == "h2", LEASE_TTL + 10,
                   "h2 holding the slot")
        # The lease was renewed at most one poll before: the slot was held that long.
        self.assertGreaterEqual(time.monotonic() - lost_at, LEASE_TTL - 0.5)
        self.wait_status("h2", lambda s: s["phase"] == "empty", "h2 empty")
        regain(self.daemons["h1"])
        # Back, h1 is still in maintenance (its journal says so) but holds no slot: it waits.
        status = self.wait_status("h1", lambda s: s.get("fleet", {}).get("waiting_for_slot"),
                                  "h1 waiting for a slot again")
        self.assertIsNone(status["fleet"]["slot"])
        self.assertEqual(list(self.slots().values()), ["h2"])
        self.finish_when_empty("h2")
        self.wait_status("h1", lambda s: s["fleet"]["slot"] == 0, "h1 holding the slot again")
        self.finish_when_empty("h1")
        wait_until(lambda: not self.slots(), 10, "every slot given back")
        watch.violations = [v for v in watch.violations if not v.startswith("in maintenance")]
        # h1 stays `empty` (its host has no domain) while h2 drains: the phases overlap
        # by design once a lease expired (docs/fleet.md); the slots never do.
        watch.check()



@requires_tools("etcd", "dbus-daemon")
class FleetTest(FleetCase):

    def test_every_host_publishes_its_record_and_fleet_status_shows_them(self):
        for host in HOSTS:
            self.wait_status(host, lambda s: s.get("fleet", {}).get("hosts") == 3,
                             "three hosts seen")
            fleet = self.fleet(host)
            self.assertEqual(fleet["state"], "ok")
            self.assertEqual(fleet["host"], host)
            self.assertIsNone(fleet["slot"])
            self.assertFalse(fleet["waiting_for_slot"])
        ctl = self.daemons["h1"]
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        for host in HOSTS:
            self.assertRegex(table, rf"(?m)^{host}\s+idle\s+-\s+no")
        self.assertIn("no rolling schedule", table)
        view = json.loads(ctl.ctl("fleet", "--config", str(ctl.config_path), "status", "--json",
                                  check=0).stdout)
        self.assertEqual(sorted(h["host"] for h in view["hosts"]), HOSTS)
        self.assertEqual(view["hosts_in_maintenance"], 0)

    def test_rolling_schedule_over_all_hosts_keeps_one_at_a_time(self):
        watch = InvariantWatch(self, self.max_concurrent)
        ctl = self.daemons["h1"]
        out = ctl.ctl("fleet", "--config", str(ctl.config_path), "schedule", "--all",
                      "--max-concurrent", "1", "--window", "now/+2h", "--reason", "kernel",
                      check=0).stdout
        self.assertIn("rolling schedule", out)
        schedule = json.loads(self.etcd.range_prefix(PREFIX + "schedule")[PREFIX + "schedule"])
        finished = []
        deadline = time.monotonic() + 120
        while len(finished) < len(HOSTS):
            self.assertLess(time.monotonic(), deadline, f"rolling maintenance stuck; done: {finished}")
            for host in HOSTS:
                if host in finished:
                    continue
                status = self.status(host)
                if status["phase"] == "empty":
                    self.assertEqual(status["fleet"]["slot"], 0)
                    self.assertEqual(status["session_id"], f"fleet-{schedule['id']}")
                    self.daemons[host].ctl("finish", check=0)
                    finished.append(host)
            time.sleep(0.05)
        for host in HOSTS:
            self.wait_status(host, lambda s: s["phase"] == "idle" and s["fleet"]["slot"] is None,
                             "idle without a slot")
        wait_until(lambda: len(self.etcd.range_prefix(PREFIX + f"done/{schedule['id']}/")) == 3,
                   10, "every host marked done")
        wait_until(lambda: not self.slots(), 10, "every slot given back")
        watch.check()
        # Each host went through maintenance once, alone: the watch saw one at a time.
        self.assertEqual(watch.max_seen, 1)
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        self.assertIn("3/3 done", table)
        # Done hosts are not scheduled again by the same schedule.
        time.sleep(1)
        for host in HOSTS:
            self.assertEqual(self.status(host)["phase"], "idle")

    def test_killed_holder_frees_its_slot_after_the_ttl_and_waits_when_back(self):
        self._holder_loses_its_slot(lambda d: d.stop(sig=signal.SIGKILL), lambda d: d.start())

    def test_stopped_holder_cannot_keep_or_take_a_second_slot(self):
        self._holder_loses_its_slot(lambda d: d.process.send_signal(signal.SIGSTOP),
                                    lambda d: d.process.send_signal(signal.SIGCONT))

    def test_killed_holder_back_within_the_ttl_resumes_with_its_slot(self):
        self.schedule_now("h1")
        self.wait_status("h1", lambda s: s["phase"] == "empty" and s["fleet"]["slot"] == 0,
                         "empty with slot 0")
        self.daemons["h1"].stop(sig=signal.SIGKILL)
        self.daemons["h1"].start()
        self.wait_status("h1", lambda s: s.get("fleet", {}).get("slot") == 0,
                         "slot 0 adopted", timeout=LEASE_TTL - 1)
        # Recovered from its journal: back to empty once the evidence is in again.
        self.wait_status("h1", lambda s: s["phase"] == "empty", "empty again")
        self.assertIn("slot 0 held before a restart is ours again", self.daemons["h1"].log_text())
        self.assertEqual(self.slots(), {PREFIX + "slots/all/0": "h1"})
        self.finish_when_empty("h1")
        wait_until(lambda: not self.slots(), 10, "the slot given back")

    def test_one_etcd_member_down_changes_nothing(self):
        self.etcd.stop(0)  # the first endpoint every host tries
        self.schedule_now("h1")
        self.wait_status("h1", lambda s: s["phase"] == "empty" and s["fleet"]["slot"] == 0,
                         "empty with slot 0")
        self.assertEqual(self.fleet("h1")["state"], "ok")
        self.finish_when_empty("h1")
        wait_until(lambda: not self.slots(), 10, "the slot given back")
        ctl = self.daemons["h2"]
        ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0)

    def test_without_etcd_no_maintenance_starts_and_local_control_works(self):
        self.etcd.stop_all()
        self.wait_status("h1", lambda s: s["fleet"]["state"] == "unreachable", "fleet unreachable")
        self.schedule_now("h1")
        status = self.wait_status("h1", lambda s: s["fleet"]["waiting_for_slot"], "waiting")
        time.sleep(1)
        status = self.status("h1")
        self.assertEqual(status["phase"], "scheduled")
        reasons = [b["reason"] for b in status["blockers"] if b["subject"] == "fleet"]
        self.assertTrue(reasons and "unreachable" in reasons[0], status["blockers"])
        ctl = self.daemons["h1"]
        self.assertRegex(ctl.ctl("status", check=0).stdout,
                         r"(?m)^fleet +test as h1: UNREACHABLE since .*; waiting for a slot")
        result = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=3)
        self.assertIn("unreachable", result.stderr)
        ctl.ctl("cancel", check=0)
        self.wait_status("h1", lambda s: s["phase"] == "idle", "idle after cancel")
        # etcd back: a new maintenance gets its slot.
        for i in range(3):
            self.etcd.start(i, wait=False)
        self.etcd.wait_healthy()
        self.wait_status("h1", lambda s: s["fleet"]["state"] == "ok", "fleet reachable", 20)
        self.schedule_now("h1")
        self.finish_when_empty("h1")



@requires_tools("etcd", "dbus-daemon")
class FleetDomainTest(FleetCase):
    """Two hosts at once in the fleet, one per failure domain: h1 and h2 share rack1."""
    max_concurrent = 2
    per_domain = 1
    domains = {"h1": "rack1", "h2": "rack1", "h3": "rack2"}

    def test_one_host_per_failure_domain_two_in_the_fleet(self):
        watch = InvariantWatch(self, self.max_concurrent)
        for host in HOSTS:
            self.schedule_now(host)
        self.wait_status("h3", lambda s: s["fleet"]["slot"] is not None, "h3 holding a slot")
        first = wait_until(lambda: next((h for h in ("h1", "h2")
                                         if self.fleet(h)["slot"] is not None), None),
                           20, "one of rack1's hosts holding a slot")
        second = "h2" if first == "h1" else "h1"
        status = self.wait_status(second, lambda s: s["fleet"]["waiting_for_slot"], "waiting")
        reason = [b["reason"] for b in status["blockers"] if b["subject"] == "fleet"][0]
        self.assertIn("failure domain 'rack1'", reason)
        self.assertEqual(len(self.slots()), 2)
        domain_slots = self.etcd.range_prefix(PREFIX + "slots/domain/")
        self.assertEqual(sorted(domain_slots.values()), sorted([first, "h3"]))
        self.finish_when_empty(first)
        self.wait_status(second, lambda s: s["fleet"]["slot"] is not None, "the other rack1 host")
        self.finish_when_empty(second)
        self.finish_when_empty("h3")
        wait_until(lambda: not self.slots(), 10, "every slot given back")
        watch.check()


@requires_tools("etcd", "dbus-daemon")
class FleetCommandTest(FleetCase):
    """[fleet] maintenance_command: run on the empty host of a rolling schedule, holding the
    slot with a long lease; success or the host back from its reboot finishes."""
    # A file says what to do: `ok`, `fail`, or `reboot` (the command kills hostmaintd, as a
    # reboot would stop it).
    command = ("echo started >> {dir}/ran; read what < {dir}/what; case $what in "
               "ok) sleep 1 ;; fail) echo disk full; exit 3 ;; reboot) kill -KILL $PPID; sleep 5 ;; "
               "esac")

    def roll(self, host, what):
        (self.workdir / host / "what").write_text(what + "\n")
        ctl = self.daemons[host]
        ctl.ctl("fleet", "--config", str(ctl.config_path), "schedule", "--hosts", host,
                "--max-concurrent", "1", check=0)

    def slot_lease_ttl(self):
        answer = self.etcd.post("/v3/kv/range", {"key": b64(PREFIX + "slots/all/0")})
        lease = answer["kvs"][0]["lease"]
        return int(self.etcd.post("/v3/lease/timetolive", {"ID": lease})["TTL"])

    def test_command_success_finishes_and_hands_the_slot_on(self):
        self.roll("h1", "ok")
        self.wait_status("h1", lambda s: s["phase"] == "in-maintenance", "in maintenance")
        # While the command runs the slot is on the command's lease (1h), not the 4 s one.
        wait_until(lambda: self.slot_lease_ttl() > 60, 10, "the slot on the long lease")
        self.wait_status("h1", lambda s: s["phase"] == "idle", "idle after the command")
        self.assertEqual((self.workdir / "h1" / "ran").read_text(), "started\n")
        wait_until(lambda: not self.slots(), 10, "the slot given back")
        self.assertIn("the maintenance command succeeded", self.daemons["h1"].log_text())

    def test_command_failure_stays_in_maintenance_with_a_blocker(self):
        self.roll("h1", "fail")
        status = self.wait_status(
            "h1", lambda s: any(b["subject"] == "fleet maintenance command" for b in s["blockers"]),
            "the command's blocker")
        self.assertEqual(status["phase"], "in-maintenance")
        reason = [b["reason"] for b in status["blockers"]
                  if b["subject"] == "fleet maintenance command"][0]
        self.assertIn("exited with status 3: disk full", reason)
        self.assertEqual(list(self.slots().values()), ["h1"])
        self.daemons["h1"].ctl("finish", check=0)
        self.wait_status("h1", lambda s: s["phase"] == "idle", "idle after finish")
        wait_until(lambda: not self.slots(), 10, "the slot given back")

    def test_reboot_by_the_command_keeps_the_slot_and_finishes_at_the_next_boot(self):
        self.roll("h1", "reboot")
        daemon = self.daemons["h1"]
        daemon.process.wait(timeout=30)  # the "reboot" took hostmaintd down
        daemon.stop()
        time.sleep(LEASE_TTL + 1)
        # Down longer than the short lease: the slot is still h1's.
        self.assertEqual(self.slots(), {PREFIX + "slots/all/0": "h1"})
        (self.workdir / "h1" / "boot_id").write_text("boot-2\n")
        daemon.start()
        self.wait_status("h1", lambda s: s["phase"] == "idle", "idle after the reboot", 60)
        self.assertIn("back from the reboot of the maintenance command", daemon.log_text())
        wait_until(lambda: not self.slots(), 10, "the slot given back")
        self.assertEqual((self.workdir / "h1" / "ran").read_text(), "started\n")


@requires_tools("etcd", "etcdctl", "openssl", "dbus-daemon")
class FleetTlsAuthTest(unittest.TestCase):
    """etcd over TLS with authentication: the host verifies etcd's certificate against its
    CA, logs in with the password from a private file, and takes its slot; a password file
    others can read stops the start, a wrong password is shown as the fleet's error."""

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="hostmaint-fleet-tls-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.etcd = SecureEtcd(self.workdir, PREFIX, "s3cret-pw")
        self.addCleanup(self.etcd.stop)
        self.password_file = self.workdir / "etcd.password"
        self.password_file.write_text("s3cret-pw\n")
        self.password_file.chmod(0o600)
        hostdir = self.workdir / "h1"
        hostdir.mkdir()
        self.bus = PrivateBus(hostdir)
        self.addCleanup(self.bus.stop)
        self.daemon = Daemon(hostdir, self.bus, DATA_DIR / "node-basic.xml", self.config())
        self.addCleanup(self.daemon.stop)

    def config(self, password_file=None):
        return (f'[fleet]\nendpoints = ["{self.etcd.endpoint}"]\nname = "{FLEET}"\nhost = "h1"\n'
                f'lease_ttl = {LEASE_TTL}\npoll_interval = "200ms"\n'
                f'ca_file = "{self.etcd.tls["ca"]}"\nuser = "hostmaint"\n'
                f'password_file = "{password_file or self.password_file}"\n')

    def test_verified_and_authenticated_host_takes_its_slot(self):
        self.daemon.start()
        wait_until(lambda: self.daemon.status_file().get("fleet", {}).get("state") == "ok", 20,
                   "the fleet reachable over TLS with the user")
        # Past the token's life (etcd renews it on each use: the daemon pauses 3 s), it
        # logs in again without a failed round.
        self.daemon.process.send_signal(signal.SIGSTOP)
        time.sleep(3)
        self.daemon.process.send_signal(signal.SIGCONT)
        wait_until(lambda: "the auth token was refused" in self.daemon.log_text(), 10,
                   "a new login")
        self.assertEqual(self.daemon.status_file()["fleet"]["state"], "ok")
        self.assertNotIn("fleet: ", "".join(l for l in self.daemon.log_text().splitlines(True)
                                              if "[error]" in l))
        self.daemon.ctl("schedule", "--start", "now", "--end", "+2h", check=0)
        wait_until(lambda: self.daemon.status_file()["fleet"]["slot"] == 0, 20, "slot 0")
        self.assertIn("h1", self.etcd.etcdctl("get", PREFIX + "slots/all/0",
                                              user="hostmaint:s3cret-pw"))
        table = self.daemon.ctl("fleet", "--config", str(self.daemon.config_path), "status",
                                check=0).stdout
        self.assertRegex(table, r"(?m)^h1\s+(draining|empty)\s+0")

    def test_password_file_others_can_read_stops_the_start(self):
        self.password_file.chmod(0o644)
        result = run_hostmaintd("--config", str(self.daemon.config_path),
                                env={**self.daemon.env}, timeout=30)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"etcd password file {self.password_file} has mode 0644",
                      result.stdout + result.stderr)
        # --check-config fails on it the same way.
        check = run_hostmaintd("--config", str(self.daemon.config_path), "--check-config",
                               timeout=30)
        self.assertNotEqual(check.returncode, 0)
        self.assertIn(f"etcd password file {self.password_file} has mode 0644",
                      check.stdout + check.stderr)

    def test_wrong_password_is_the_fleets_error(self):
        wrong = self.workdir / "wrong.password"
        wrong.write_text("not-it\n")
        wrong.chmod(0o600)
        self.daemon.config_path.write_text(
            self.daemon.config_path.read_text().replace(str(self.password_file), str(wrong)))
        self.daemon.start()
        status = wait_until(
            lambda: (s := self.daemon.status_file()).get("fleet", {}).get("last_error") and s,
            20, "the fleet's error")
        self.assertEqual(status["fleet"]["state"], "unreachable")
        self.assertIn("etcd refused user 'hostmaint'", status["fleet"]["last_error"])
        # hostmaintctl uses the same settings, and says what etcd said.
        result = self.daemon.ctl("fleet", "--config", str(self.daemon.config_path), "status",
                                 check=5)
        self.assertIn("etcd refused user", result.stderr)


GROUPED_NODE = """<?xml version="1.0"?>
<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>16777216</memory>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>{name}</name><uuid>0b2c4d6e-0000-4000-8000-00000000010{n}</uuid>
    <memory unit="MiB">512</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <metadata><hostmaint:policy xmlns:hostmaint="https://hostmaint.org/xmlns/policy/1">
      <hostmaint:maintenance_action>suspend</hostmaint:maintenance_action>
      <hostmaint:group>db</hostmaint:group><hostmaint:max_impacted_members>1</hostmaint:max_impacted_members>
    </hostmaint:policy></metadata>
  </domain>
</node>
"""


class GroupWatch(SamplingWatch):
    """Samples etcd (one range: one revision): never more impacts of the group held than
    allowed, and, while `records` is set, never more of its members impacted in the hosts'
    published records."""
    what = "the group's limit was broken"

    def __init__(self, test, group, limit):
        self.group = group
        self.limit = limit
        self.records = True
        super().__init__(test)

    def sample(self):
        try:
            everything = self.test.etcd.range_prefix(PREFIX)
        except RuntimeError:
            return
        impacts = {k: v for k, v in everything.items()
                   if k.startswith(PREFIX + f"groups/{self.group}/impact/")}
        self.max_seen = max(self.max_seen, len(impacts))
        if len(impacts) > self.limit:
            self.violations.append(f"impacts held: {impacts}")
        if not self.records:
            return
        impacted = []
        for key, value in everything.items():
            if key.startswith(PREFIX + "hosts/"):
                record = json.loads(value)
                members = record.get("groups", {}).get(self.group, {})
                impacted += [f"{record['host']}:{m}" for m in members.get("impacted", [])]
        if len(impacted) > self.limit:
            self.violations.append(f"members impacted in the records: {impacted}")

    def check(self):
        super().check()
        self.test.assertEqual(self.max_seen, self.limit, "the group was never impacted")


@requires_tools("etcd", "dbus-daemon")
class FleetGroupTest(FleetCase):
    """Groups across hosts: h1 has vm-db1, h2 vm-db2, both members of group db with
    max_impacted_members = 1 (and suspended in maintenance); two hosts may be in maintenance
    at once, but never with both members down."""
    max_concurrent = 2

    def node_xml(self, host):
        path = self.workdir / f"node-{host}.xml"
        index = HOSTS.index(host) + 1
        path.write_text(GROUPED_NODE.format(name=f"vm-db{index}", n=index))
        return path

    def impacts(self):
        return {k: json.loads(v)
                for k, v in self.etcd.range_prefix(PREFIX + "groups/db/impact/").items()}

    def group_blocker(self, status):
        return next((b["reason"] for b in status["blockers"] if b["subject"] == "group db"), None)

    def start_both(self):
        """h1 drains and suspends vm-db1 holding the group's impact; h2 drains and waits."""
        self.schedule_now("h1")
        self.wait_status("h1", lambda s: s["phase"] == "empty", "h1 empty, vm-db1 suspended")
        impacts = self.impacts()
        self.assertEqual(list(impacts), [PREFIX + "groups/db/impact/0"])
        self.assertEqual(impacts[PREFIX + "groups/db/impact/0"]["host"], "h1")
        self.assertEqual(impacts[PREFIX + "groups/db/impact/0"]["name"], "vm-db1")
        self.assertEqual(self.fleet("h1")["impacts"],
                         [{"group": "db", "index": 0, "domain": "vm-db1"}])
        self.schedule_now("h2")

        def db2_waits(status):
            db2 = next(d for d in status["domains"] if d["name"] == "vm-db2")
            return "held by h1 (vm-db1)" in db2["detail"] and self.group_blocker(status)

        status = self.wait_status("h2", db2_waits, "vm-db2 waiting for h1's impact")
        self.assertEqual(self.group_blocker(status),
                         "at most 1 member of group 'db' impacted across the fleet, "
                         "held by h1 (vm-db1)")
        self.assertEqual(status["phase"], "draining")
        self.assertIsNotNone(status["fleet"]["slot"], "h2 drains: it holds a slot")
        db2 = self.daemons["h2"].domain("vm-db2")
        self.assertEqual(db2["state"], "waiting")
        self.assertEqual(db2["detail"], "waiting: at most 1 member of group 'db' impacted across "
                         "the fleet, held by h1 (vm-db1)")

    def test_two_hosts_never_impact_two_members_of_the_group_at_once(self):
        watch = GroupWatch(self, "db", 1)
        self.start_both()
        time.sleep(1)  # h2 keeps waiting while h1 holds the impact
        self.assertEqual(self.daemons["h2"].domain("vm-db2")["state"], "waiting")
        self.assertEqual(self.status("h2")["phase"], "draining")
        # The daemon's fleet view over D-Bus: status.json's `fleet`, with the impacts.
        over_bus = json.loads(self.daemons["h1"].get_property("FleetStatus"))
        self.assertEqual(over_bus["impacts"], [{"group": "db", "index": 0, "domain": "vm-db1"}])
        self.assertEqual(over_bus["host"], "h1")
        self.assertNotEqual(self.daemons["h3"].get_property("FleetStatus"), "null")
        # The group across the fleet in `fleet status` and in every host's status.json.
        ctl = self.daemons["h3"]
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        self.assertRegex(table, r"(?m)^GROUP +IMPACTED +MEMBERS +IMPACTS +WHERE$")
        self.assertRegex(table, r"(?m)^db +1/1 +3 +1 +h1: vm-db1$")
        view = json.loads(ctl.ctl("fleet", "--config", str(ctl.config_path), "status", "--json",
                                  check=0).stdout)
        self.assertEqual(view["groups"], [{"group": "db", "members": 3, "max_impacted_members": 1,
                                           "impacted": [{"host": "h1", "domain": "vm-db1"}],
                                           "impacts_held": 1}])
        groups = wait_until(lambda: (g := self.fleet("h3")["groups"]) and g[0]["impacted"] and g,
                            10, "h3's status.json showing the group")
        self.assertEqual(groups[0]["impacted"], [{"host": "h1", "domain": "vm-db1"}])
        # h1 finishes: vm-db1 restored, its impact given back, and only then vm-db2 goes.
        self.finish_when_empty("h1")
        self.wait_status("h2", lambda s: s["phase"] == "empty", "h2 empty, vm-db2 suspended")
        self.assertEqual([v["host"] for v in self.impacts().values()], ["h2"])
        self.assertEqual(self.daemons["h1"].domain("vm-db1")["state"], "restored")
        self.finish_when_empty("h2")
        wait_until(lambda: not self.impacts(), 10, "every impact given back")
        wait_until(lambda: not self.slots(), 10, "every slot given back")
        watch.check()

    def test_killed_holder_frees_its_impact_after_the_ttl(self):
        watch = GroupWatch(self, "db", 1)
        self.start_both()
        # While agents die, the records come and go with their own leases: the impacts
        # (etcd's truth) are what is checked from here.
        watch.records = False
        lost_at = time.monotonic()
        self.daemons["h1"].stop(sig=signal.SIGKILL)
        wait_until(lambda: [v["host"] for v in self.impacts().values()] == ["h2"],
                   LEASE_TTL + 10, "h2 holding the group's impact")
        # h1's impact lived on its slot's lease, renewed at most one poll before the kill.
        self.assertGreaterEqual(time.monotonic() - lost_at, LEASE_TTL - 0.5)
        self.wait_status("h2", lambda s: s["phase"] == "empty", "h2 empty, vm-db2 suspended")
        watch.check()
        # Back, h1 still has vm-db1 suspended: impacted without an impact; it says so and
        # takes one only when h2 gives its back.
        self.daemons["h1"].start()
        status = self.wait_status("h1", lambda s: (self.group_blocker(s) or "").find("held by h2")
                                  >= 0, "h1's group blocker")
        self.assertIn("held by h2 (vm-db2)", self.group_blocker(status))
        self.assertEqual([v["host"] for v in self.impacts().values()], ["h2"])
        self.finish_when_empty("h2")
        self.wait_status("h1", lambda s: s["fleet"]["impacts"] and not self.group_blocker(s),
                         "h1 holding the impact again")
        self.assertEqual([v["host"] for v in self.impacts().values()], ["h1"])
        self.finish_when_empty("h1")
        wait_until(lambda: not self.impacts(), 10, "every impact given back")


@requires_tools("etcd", "dbus-daemon")
class FleetPeerTest(FleetCase):
    """Peers as destinations: no host has [migration] destinations; each publishes its
    migration URI; h2 takes no incoming migration (max_incoming_migrations = 0, full).
    The test driver cannot migrate, so what is checked is the candidates: the peers in
    status.json's `fleet.peers`, and that h1's plan had a destination to consider."""
    max_concurrent = 2

    def fleet_config(self, host):
        limit = 0 if host == "h2" else 2
        config = (super().fleet_config(host) + f'migration_uri = "test:///peer/{host}"\n'
                  f"max_incoming_migrations = {limit}\n")
        if host == "h1":  # h1's /metrics shows the fleet's peers
            self.h1_http_port = free_port()
            config += f"\n[http]\nenabled = true\nport = {self.h1_http_port}\n"
        return config

    def h1_metrics(self):
        """h1's /metrics samples as {'name{labels}': value}."""
        url = f"http://127.0.0.1:{self.h1_http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def peers(self, host):
        return {p["host"]: p for p in self.fleet(host).get("peers", [])}

    def migrate_plan(self):
        """h1's maintenance plan for vm-migrate (live-migrate, fallback suspend)."""
        self.schedule_now("h1")
        domain = wait_until(lambda: (d := self.daemons["h1"].domain("vm-migrate"))["state"]
                            not in ("planned",) and d, 20, "vm-migrate planned")
        self.finish_when_empty("h1")
        return domain

    def test_a_host_without_destinations_takes_idle_peers_with_room(self):
        peers = wait_until(lambda: len(self.peers("h1")) == 2 and self.peers("h1"), 20,
                           "h1 seeing both peers")
        self.assertTrue(peers["h3"]["usable"], peers)
        self.assertEqual(peers["h3"]["uri"], "test:///peer/h3")
        self.assertGreater(peers["h3"]["free_memory_bytes"], 0)
        self.assertEqual(peers["h3"]["max_incoming"], 2)
        self.assertEqual(peers["h3"]["queued"], 0)
        self.assertFalse(peers["h2"]["usable"])
        self.assertEqual(peers["h2"]["why_not"], "0 of max 0 incoming migrations")
        self.assertEqual((peers["h3"]["cordoned"], peers["h3"]["phase"]), (False, "idle"))
        # /metrics has the same view.
        metrics = self.h1_metrics()
        self.assertEqual(metrics['hostmaint_fleet_peer_usable{peer="h3"}'], 1)
        self.assertEqual(metrics['hostmaint_fleet_peer_usable{peer="h2"}'], 0)
        self.assertEqual(metrics['hostmaint_fleet_peer_max_incoming{peer="h3"}'], 2)
        self.assertEqual(metrics['hostmaint_fleet_peer_incoming{peer="h3"}'], 0)
        self.assertEqual(metrics['hostmaint_fleet_peer_queued{peer="h3"}'], 0)
        self.assertGreater(metrics['hostmaint_fleet_peer_free_memory_bytes{peer="h3"}'], 0)
        self.assertEqual(metrics["hostmaint_fleet_hosts"], 3)
        # `fleet status` shows every peer, read from etcd.
        ctl = self.daemons["h2"]
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        self.assertRegex(table, r"(?m)^PEER +FREE +INCOMING +CORDONED +PHASE +NOTE$")
        self.assertRegex(table, r"(?m)^h2 +\S+ \S+ +0/0 +no +idle +0 of max 0 incoming migrations$")
        self.assertRegex(table, r"(?m)^h3 +\S+ \S+ +0/2 +no +idle +takes migrations$")
        view = json.loads(ctl.ctl("fleet", "--config", str(ctl.config_path), "status", "--json",
                                  check=0).stdout)
        self.assertEqual({p["host"]: (p["usable"], p["max_incoming"]) for p in view["peers"]},
                         {"h1": (True, 2), "h2": (False, 0), "h3": (True, 2)})
        # With h3 a candidate the plan had a destination: only the test driver stops it.
        domain = self.migrate_plan()
        text = json.dumps(domain)
        self.assertIn("test driver cannot migrate", text)
        self.assertNotIn("no migration destination", text)
        # h3 in maintenance (cordoned from its drain on): no candidate is left.
        self.schedule_now("h3")
        self.wait_status("h3", lambda s: s["phase"] == "empty", "h3 empty")
        # Its record says so as soon as it is scheduled, and cordoned once it drains.
        peers = wait_until(lambda: self.peers("h1")["h3"]["why_not"] == "cordoned"
                           and self.peers("h1"), 10, "h3 no longer a candidate: cordoned")
        self.assertFalse(peers["h3"]["usable"])
        self.assertTrue(peers["h3"]["cordoned"])
        self.assertNotEqual(peers["h3"]["phase"], "idle")
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        self.assertRegex(table, r"(?m)^h3 +\S+ \S+ +0/2 +yes +(draining|empty) +cordoned$")
        over_bus = json.loads(self.daemons["h1"].get_property("FleetStatus"))
        self.assertEqual({p["host"]: p["usable"] for p in over_bus["peers"]},
                         {"h2": False, "h3": False})
        domain = self.migrate_plan()
        self.assertIn("no migration destination is configured", json.dumps(domain))
        self.finish_when_empty("h3")


@requires_tools("etcd", "dbus-daemon")
class FleetIncomingTest(FleetCase):
    """A peer's incoming limit enforced across sources: h3 takes one incoming migration at
    a time (max_incoming_migrations = 1). The sources are two fleet_race_source processes,
    each the daemon's own FleetLink driven as the engine drives it (libvirt's test driver
    cannot migrate): a migration starts only once mayMigrateToPeer grants it a claim."""
    max_concurrent = 3

    def fleet_config(self, host):
        config = super().fleet_config(host)
        if host == "h3":
            config += 'migration_uri = "test:///peer/h3"\nmax_incoming_migrations = 1\n'
        return config

    def source(self, host, seconds, hold_ms):
        return subprocess.Popen(
            [RACE_SOURCE, "--endpoints", ",".join(self.etcd.endpoints), "--fleet", FLEET,
             "--host", host, "--peer-uri", "test:///peer/h3", "--seconds", str(seconds),
             "--hold-ms", str(hold_ms), "--lease-ttl", str(LEASE_TTL)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def events(output):
        return [json.loads(line) for line in output.splitlines() if line.startswith('{')]

    def wait_for_peer(self):
        wait_until(lambda: (r := self.etcd.range_prefix(PREFIX + "hosts/h3").get(
            PREFIX + "hosts/h3")) and json.loads(r)["max_incoming"] == 1
                   and json.loads(r)["free_memory_bytes"], 20, "h3's record as a destination")

    def test_two_sources_racing_for_one_peer_never_exceed_its_incoming_limit(self):
        self.wait_for_peer()
        watch = ClaimWatch(self, "h3", 1)
        sources = [self.source(host, 8, 150) for host in ("src-a", "src-b")]
        outputs = [p.communicate(timeout=60) for p in sources]
        for process, (out, err) in zip(sources, outputs):
            self.assertEqual(process.returncode, 0, err[-3000:])
        events = [self.events(out) for out, _ in outputs]
        summaries = [e[-1] for e in events]
        # Both got the peer, in turns, and each was refused while the other had it:
        # a source whose migration ended, asking again at once, is behind the other
        # one's place in the peer's queue, however its timing favours it.
        for summary in summaries:
            self.assertEqual(summary["event"], "summary")
            self.assertGreaterEqual(summary["claimed"], 3, summaries)
            self.assertGreaterEqual(summary["refused"], 1, summaries)
        self.assertLessEqual(abs(summaries[0]["claimed"] - summaries[1]["claimed"]), 2, summaries)
        # Refused while the other held the peer, or while the other waited longer.
        refusals = [e["why"] for per_source in events for e in per_source
                    if e["event"] == "refused" and "incoming migrations" in e["why"]]
        full = r"^peer h3 has 1 of max 1 incoming migrations \(src-[ab]: vm-src-[ab]-\d+\)$"
        behind = (r"^peer h3 has 0 of max 1 incoming migrations; 1 waiting longer goes first "
                  r"\(src-[ab]: vm-src-[ab]-\d+\)$")
        for why in refusals:
            self.assertRegex(why, f"{full}|{behind}")
        self.assertTrue(any(re.match(behind, why) for why in refusals),
                        "no claim was refused for one waiting longer")
        wait_until(lambda: not self.etcd.range_prefix(PREFIX + "incoming/h3/"), 10,
                   "every claim given back")
        watch.check()
        self.assertEqual(watch.max_seen, 1, "no claim was ever seen")
        self.assertGreater(watch.samples, 200)
        # The peer counted them in its record as they came and went.
        self.assertIn('"incoming"', self.etcd.range_prefix(PREFIX + "hosts/h3")[PREFIX + "hosts/h3"])

    def test_a_dead_sources_claim_frees_with_its_lease(self):
        self.wait_for_peer()
        watch = ClaimWatch(self, "h3", 1)
        holder = self.source("src-a", 60, 60000)  # claims once and holds it
        wait_until(lambda: self.etcd.range_prefix(PREFIX + "incoming/h3/src-a/"), 20,
                   "src-a's claim")
        waiter = self.source("src-b", 3 * LEASE_TTL, 100)
        # Refused, src-b waits in the peer's queue, its place on its own slot lease.
        wait_until(lambda: self.etcd.range_prefix(PREFIX + "incoming_queue/h3/src-b/"), 20,
                   "src-b in h3's queue")
        self.assertFalse(self.etcd.range_prefix(PREFIX + "incoming/h3/src-b/"),
                         "src-b claimed past the limit")
        # Every host shows the line: h1's status.json counts it for peer h3.
        wait_until(lambda: {p["host"]: p for p in self.fleet("h1")["peers"]}["h3"]["queued"] == 1,
                   10, "h1 showing one migration in h3's queue")
        ctl = self.daemons["h2"]
        table = ctl.ctl("fleet", "--config", str(ctl.config_path), "status", check=0).stdout
        self.assertRegex(table, r"(?m)^h3 +\S+ \S+ +1/1 +no +idle +1 of max 1 incoming "
                                r"migrations, 1 waiting in its queue$")
        lost_at = time.monotonic()
        holder.kill()
        holder.communicate()
        wait_until(lambda: self.etcd.range_prefix(PREFIX + "incoming/h3/src-b/"),
                   LEASE_TTL + 10, "src-b's claim once src-a's lease expired")
        # src-a's claim lived on its slot lease, renewed at most one poll before the kill.
        self.assertGreaterEqual(time.monotonic() - lost_at, LEASE_TTL - 0.5)
        out, err = waiter.communicate(timeout=60)
        self.assertEqual(waiter.returncode, 0, err[-3000:])
        refusals = [e["why"] for e in self.events(out) if e["event"] == "refused"]
        self.assertIn("peer h3 has 1 of max 1 incoming migrations (src-a: vm-src-a-1)", refusals)
        watch.check()


if __name__ == "__main__":
    unittest.main()
