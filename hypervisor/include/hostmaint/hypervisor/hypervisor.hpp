// The seam between the maintenance engine and whatever runs the domains.
//
// The engine (agent/) sees only this header: no libvirt type crosses it, so
// the engine is unit-tested against a fake and runs against libvirt in
// production. Implementations deliver every callback on the thread that owns
// the engine (the daemon's event loop); callers never lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hostmaint::hv {

// Coarse run state of a domain, as the engine needs it. Mirrors libvirt's
// virDomainState, folding states the engine treats alike.
enum class DomainRunState {
  running,
  paused,       // in memory but not running: still occupies the host
  shutoff,
  crashed,
  pmsuspended,  // guest-initiated S3: still occupies the host
  shutting_down,
  unknown,
};

std::string_view toString(DomainRunState state);

// True when a domain in this state holds memory/CPU on this host.
bool occupiesHost(DomainRunState state);

struct DomainInfo {
  std::string uuid;
  std::string name;
  DomainRunState state = DomainRunState::unknown;
  std::uint64_t memory_kib = 0;  // current balloon target
  std::uint64_t max_memory_kib = 0;
  unsigned vcpus = 0;
  bool persistent = false;
  bool autostart = false;
  bool has_managed_save = false;
  bool job_active = false;  // a libvirt job (migration, save, dump) is running

  // Owner and project from Nova's metadata (nova:owner), when present.
  std::optional<std::string> owner;
  std::optional<std::string> project;

  // The raw <hostmaint:policy> element from the domain's <metadata>, in
  // namespace kPolicyNamespace, when the domain has one. Parsing and
  // validation are the agent's job (agent/policy), so that a malformed
  // element is reported with the domain's name rather than dropped here.
  std::optional<std::string> policy_xml;
};

// XML namespace of the per-domain policy element.
inline constexpr std::string_view kPolicyNamespace = "https://hostmaint.org/xmlns/policy/1";
inline constexpr std::string_view kPolicyPrefix = "hostmaint";

enum class ConnectionState { connecting, connected, disconnected };
std::string_view toString(ConnectionState state);

// What happened to a domain, as reported by the hypervisor's event stream.
enum class DomainEventKind {
  defined,
  undefined,
  started,
  stopped,
  suspended,  // paused
  resumed,
  migrated_away,  // stopped because it was migrated to another host
  saved,          // stopped by managed-save / save
  changed,        // anything else that may change DomainInfo
};
std::string_view toString(DomainEventKind kind);

struct DomainEvent {
  DomainEventKind kind = DomainEventKind::changed;
  std::string uuid;
  std::string name;
};

// Live migration tuning and escalation. Values absent mean "leave the
// hypervisor default". Escalation while the migration does not converge, in
// this order: raise the allowed downtime in `downtime_steps` steps every
// `downtime_step_delay` up to `max_downtime`; (auto-converge throttling, when
// allowed, is enabled from the start: QEMU cannot turn it on mid-flight);
// switch to post-copy when allowed; abort at `completion_timeout` or when the
// remaining data has not shrunk for `progress_timeout`.
struct MigrationTuning {
  std::optional<std::chrono::milliseconds> max_downtime;  // top of the ladder
  unsigned downtime_steps = 0;                            // 0: max_downtime at once
  std::chrono::seconds downtime_step_delay{10};
  std::optional<std::uint64_t> bandwidth_mib_s;
  bool auto_converge = false;
  bool post_copy_allowed = false;
  std::optional<unsigned> parallel_connections;
  std::chrono::seconds completion_timeout{0};  // 0: no timeout (already scaled by memory)
  std::chrono::seconds progress_timeout{0};    // 0: no timeout
  // No data moved at all for this long: the link is cut or the destination
  // stopped reading; aborted as a destination failure. 0: no timeout.
  std::chrono::seconds stall_timeout{0};
};

enum class ActionKind {
  managed_save,  // suspend to disk; restored by start
  shutdown,      // graceful ACPI shutdown, optionally forced after a timeout
  start,         // boots, or restores from a managed-save image when present
  live_migrate,
  cold_migrate,
  // Watches a migration that an earlier hostmaintd process started (and
  // libvirtd kept running) to its end, its escalation ladder and timeouts
  // continuing (tuning, already_running). ok: the domain left this host;
  // not_converged: aborted at a timeout; other: it ended and the domain is
  // still here.
  adopt_migration,
};
std::string_view toString(ActionKind kind);

struct ActionRequest {
  ActionKind kind = ActionKind::managed_save;
  std::string uuid;
  std::string name;  // for messages only

  // shutdown
  std::chrono::seconds shutdown_timeout{120};
  bool force_after_timeout = true;

  // live_migrate / cold_migrate
  std::string destination_uri;
  // URI for the migration data stream (VIR_MIGRATE_PARAM_URI), e.g.
  // "tcp://10.0.0.2"; empty: the destination's own choice.
  std::string migrate_uri;
  MigrationTuning tuning;
  // adopt_migration: how long the migration has run already, so its
  // completion timeout counts from its real start.
  std::chrono::milliseconds already_running{0};
};

// Progress of a long action (migrations), delivered while it runs.
struct ActionProgress {
  std::uint64_t data_total_bytes = 0;
  std::uint64_t data_processed_bytes = 0;
  std::uint64_t data_remaining_bytes = 0;
  std::uint64_t memory_dirty_rate_bps = 0;
  std::uint64_t memory_bps = 0;  // throughput
  std::chrono::milliseconds elapsed{0};
  std::chrono::milliseconds downtime_limit{0};  // currently allowed downtime, 0: default
  unsigned iteration = 0;                       // pre-copy memory passes so far
  bool post_copy = false;                       // switched to post-copy
  bool held = false;  // held at the least bandwidth while others converge
  std::string escalation;  // the last escalation step taken, "" when none
};

// Why an action failed, so the engine can choose between retrying, the
// fallback action, and reporting.
enum class FailureKind {
  none,
  other,
  not_converged,     // aborted by its completion or progress timeout
  destination,       // destination unreachable or refused the domain
  connection_lost,   // libvirt went away mid-action: outcome unknown, re-check after reconnect
};
std::string_view toString(FailureKind kind);

struct ActionResult {
  bool ok = false;
  // Human-readable, with context: "managed-save of 'web1' failed: <libvirt error>".
  std::string message;
  // Set when a shutdown had to be forced after its timeout.
  bool forced = false;
  FailureKind failure = FailureKind::none;
  // Escalation steps a migration took, in order ("downtime 100ms", "post-copy").
  std::vector<std::string> escalations;
  // Final statistics of a migration (throughput for downtime estimates).
  std::optional<ActionProgress> final_progress;
};

// What a candidate migration destination offers, probed before choosing it.
struct DestinationReport {
  std::string uri;
  bool reachable = false;
  std::string error;     // why not reachable, with the URI
  std::string hostname;  // the destination's own host name
  std::uint64_t free_memory_bytes = 0;
  std::uint64_t total_memory_bytes = 0;
};
using DestinationProbeDone = std::function<void(const DestinationReport&)>;

// After a migration that failed or was interrupted, where the domain is
// defined: libvirt may leave a definition on the destination (a cold
// migration defines it there before undefining it here; a live migration
// with PERSIST_DEST can leave it defined and shut off there when the
// destination's libvirtd dies). Settling makes it defined in one place.
enum class DefinitionOutcome {
  not_there,      // the destination has no definition of it: nothing to do
  removed_there,  // shut off there while defined here: its definition there was removed
  runs_there,     // it runs there (the migration took effect); a definition left here was removed
  only_there,     // defined there, shut off, and no longer here: left alone
  runs_on_both,   // running on both hosts: not touched, someone must decide
  failed,         // could not look or could not remove: `message` says why
};
std::string_view toString(DefinitionOutcome outcome);

struct DefinitionSettled {
  DefinitionOutcome outcome = DefinitionOutcome::failed;
  std::string message;  // what was seen or done, or the error, naming the host
};
using DefinitionSettledFn = std::function<void(const DefinitionSettled&)>;

// How the drain scheduler wants one live migration in flight to run
// (docs/policy.md, "Adaptive migration scheduling").
struct MigrationSteer {
  // Throttled to the least bandwidth QEMU takes, so that others converge
  // first. Its escalation ladder and timeouts do not count while held.
  bool hold = false;
  // It cannot converge at the bandwidth it gets: take the escalation steps
  // without waiting `downtime_step_delay` between them.
  bool hurry = false;
  bool operator==(const MigrationSteer&) const = default;
};

// A guest's memory dirty rate measured before (or beside) its migration.
struct DirtyRateReport {
  std::optional<std::uint64_t> bytes_per_second;  // nullopt: not measured
  std::string error;                              // why not, naming the domain
};
using DirtyRateDone = std::function<void(const DirtyRateReport&)>;

using ActionDone = std::function<void(const ActionResult&)>;
using ActionProgressFn = std::function<void(const ActionProgress&)>;

// One check of the "host is empty" evidence.
struct EvidenceCheck {
  std::string name;    // stable identifier, e.g. "no-active-domains"
  bool ok = false;
  std::string detail;  // what was seen; names what still blocks when !ok

  bool operator==(const EvidenceCheck&) const = default;
};

struct EmptinessQuery {
  bool removal = false;  // also require nothing that would come back
  // UUIDs of domains this host ran, for attributing QEMU processes.
  std::vector<std::string> known_uuids;
};

struct EmptinessReport {
  std::vector<EvidenceCheck> checks;
  bool empty() const;
};

// What this hypervisor can do. The engine falls back visibly when an action
// the policy asks for cannot be done here.
struct Capabilities {
  bool live_migration = false;
  bool cold_migration = false;
  bool managed_save = true;
  std::string why_no_migration;  // e.g. "the libvirt 'test' driver cannot migrate"
};

class HypervisorObserver {
 public:
  virtual ~HypervisorObserver() = default;
  virtual void onDomainEvent(const DomainEvent& event) = 0;
  // The full inventory was re-read (after connecting or reconnecting).
  virtual void onInventoryRefreshed() = 0;
  virtual void onConnectionStateChanged(ConnectionState state, const std::string& detail) = 0;
  // A live migration started here paused its guest for the switch-over: its
  // last data is on the wire. Told at once, before the domain is re-read
  // (which waits for the migration's end).
  virtual void onMigrationSwitchover(const std::string& uuid) = 0;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  virtual void setObserver(HypervisorObserver* observer) = 0;

  virtual ConnectionState connectionState() const = 0;
  // URI and host name of the hypervisor, for status and messages.
  virtual std::string description() const = 0;
  virtual Capabilities capabilities() const = 0;

  // Cached inventory, kept current by events. Empty while never connected;
  // the last known inventory while disconnected.
  virtual std::vector<DomainInfo> domains() const = 0;
  virtual std::optional<DomainInfo> domain(const std::string& uuid) const = 0;
  // The cached inventory's entry itself, or null: valid until the inventory
  // next changes (an event, a refresh), on the owning thread. For what
  // reads every domain at every event (the status projection) and must not
  // copy the inventory to do so.
  virtual const DomainInfo* findDomain(const std::string& uuid) const = 0;

  // Starts an action; `done` is called exactly once, on the owning thread.
  // `progress` (optional) is called while a migration runs.
  virtual void startAction(const ActionRequest& request, ActionDone done,
                           ActionProgressFn progress = {}) = 0;

  // Collects the evidence that the host is empty. Cheap enough to call on
  // every relevant event.
  virtual EmptinessReport probeEmptiness(const EmptinessQuery& query) = 0;

  // Connects to a candidate destination and reports what it offers; `done`
  // is called exactly once, on the owning thread. A hypervisor that cannot
  // migrate reports every destination unreachable.
  virtual void probeDestination(const std::string& uri, DestinationProbeDone done) {
    DestinationReport report;
    report.uri = uri;
    report.error = "cannot probe " + uri + ": " + capabilities().why_no_migration;
    done(report);
  }

  // Steers a live migration this process started (see MigrationSteer);
  // ignored when none of `uuid` runs. Takes effect within one progress
  // interval.
  virtual void steerMigration(const std::string& uuid, const MigrationSteer& steer) {
    (void)uuid;
    (void)steer;
  }

  // Measures a running domain's memory dirty rate (about a second; QEMU's
  // page sampling, which works during a migration too). `done` is called
  // exactly once, on the owning thread.
  virtual void probeDirtyRate(const std::string& uuid, DirtyRateDone done) {
    (void)uuid;
    done(DirtyRateReport{std::nullopt, "this hypervisor cannot measure dirty rates"});
  }

  // Settles where a domain whose migration to `destination_uri` failed or
  // was interrupted is defined (DefinitionOutcome). Call it only while no
  // migration of the domain runs: an incoming migration is "running there".
  // `done` is called exactly once, on the owning thread. A hypervisor that
  // cannot migrate has nothing on any destination.
  virtual void settleDefinition(const std::string& uuid, const std::string& destination_uri,
                                DefinitionSettledFn done) {
    (void)uuid;
    (void)destination_uri;
    done(DefinitionSettled{DefinitionOutcome::not_there, "this hypervisor cannot migrate"});
  }
};

}  // namespace hostmaint::hv
