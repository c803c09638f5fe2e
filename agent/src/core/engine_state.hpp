// The engine's state: each domain's stage as a typed value, changed only
// through transition(), and the durable record of a maintenance. What
// interfaces show is projected from it in status_projection.cpp; the journal
// encoding lives in engine_state_codec.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/policy.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

inline constexpr int kEngineStateVersion = 1;

// Why a domain that is ready to act has not started yet. Values, not text:
// the status projection words them.
namespace wait {
struct ToStart {  // nothing evaluated yet
  bool operator==(const ToStart&) const = default;
};
struct LibvirtDown {
  hv::ConnectionState connection = hv::ConnectionState::disconnected;
  bool operator==(const LibvirtDown&) const = default;
};
struct JournalUnwritable {
  bool operator==(const JournalUnwritable&) const = default;
};
struct NotBefore {
  TimePoint time{};
  bool lead_time = false;  // later than the window start because of its lead time
  bool operator==(const NotBefore&) const = default;
};
struct ActionSlots {
  unsigned running = 0;
  unsigned max = 0;
  bool operator==(const ActionSlots&) const = default;
};
struct MigrationSlots {
  unsigned running = 0;
  unsigned max = 0;
  bool operator==(const MigrationSlots&) const = default;
};
struct Destination {
  std::string reason;  // each candidate and why not yet
  bool operator==(const Destination&) const = default;
};
struct GroupLimit {
  std::string group;
  unsigned impacted = 0;
  unsigned max = 0;
  bool stalled = false;  // nothing will recover during the drain: a blocker
  // Set when the fleet's count across hosts holds it (docs/fleet.md): why,
  // naming who holds the group's impacts; `impacted` is then this host's.
  std::string across_fleet;
  bool operator==(const GroupLimit&) const = default;
};
// Its earlier attempt was interrupted without effect, or failed and its
// fallback is next: `why` says so until the next evaluation.
struct Retry {
  std::string why;
  bool operator==(const Retry&) const = default;
};
// The adaptive scheduler does not start another live migration now
// (MigrationPacer::admit says why).
struct Pacing {
  std::string why;
  bool operator==(const Pacing&) const = default;
};
}  // namespace wait

using WaitReason = std::variant<wait::ToStart, wait::LibvirtDown, wait::JournalUnwritable,
                                wait::NotBefore, wait::ActionSlots, wait::MigrationSlots,
                                wait::Destination, wait::GroupLimit, wait::Retry, wait::Pacing>;

// How an action in progress is known to be running.
namespace running {
struct Launched {  // this process started it and waits for its completion
  bool operator==(const Launched&) const = default;
};
struct OwnerActs {   // action `owner`: nothing runs here, the owner moves it
  TimePoint deadline{};
  bool operator==(const OwnerActs&) const = default;
};
struct FoundRunning {  // found running after a restart or reconnection
  std::string when;    // "after restart", "after libvirt reconnected"
  bool operator==(const FoundRunning&) const = default;
};
struct Adopted {  // a migration an earlier run started, waited for again
  bool operator==(const Adopted&) const = default;
};
struct OutcomeUnknown {  // the libvirt connection dropped during a migration
  std::string message;
  bool operator==(const OutcomeUnknown&) const = default;
};
}  // namespace running

using RunningAs = std::variant<running::Launched, running::OwnerActs, running::FoundRunning,
                               running::Adopted, running::OutcomeUnknown>;

// Where one domain is in the maintenance (docs/engine.md, "Domain stages").
namespace stage {
struct Planned {  // in the plan, before the window; not_before unset while idle
  std::optional<TimePoint> not_before;
  bool operator==(const Planned&) const = default;
};
struct AwaitingAck {
  TimePoint deadline{};
  bool operator==(const AwaitingAck&) const = default;
};
struct Waiting {
  WaitReason reason;
  bool operator==(const Waiting&) const = default;
};
struct Acting {
  std::optional<hv::ActionKind> kind;  // nullopt: the owner acts (running::OwnerActs)
  RunningAs how;
  bool cancelled = false;  // the maintenance was cancelled meanwhile
  bool operator==(const Acting&) const = default;
};
struct Done {
  std::string outcome;  // "migrated to qemu+tcp://b/system", "suspended", ...
  bool operator==(const Done&) const = default;
};
struct Failed {
  std::string message;
  bool operator==(const Failed&) const = default;
};
struct Blocked {
  std::string reason;
  bool operator==(const Blocked&) const = default;
};
struct Left {
  std::string how;  // "moved or deleted by its owner", ...
  bool operator==(const Left&) const = default;
};
struct Restoring {
  std::string outcome;   // what the drain did ("suspended"), shown until restored
  bool started = false;  // hostmaint's start (or restore from managed-save) runs
  bool from_managed_save = false;
  WaitReason waiting = wait::ToStart{};  // while not started
  bool operator==(const Restoring&) const = default;
};
struct Restored {
  std::string outcome;
  std::string detail;  // why it was left as it was, when it was
  bool operator==(const Restored&) const = default;
};
struct RestoreFailed {
  std::string message;
  bool operator==(const RestoreFailed&) const = default;
};
}  // namespace stage

using DomainState = std::variant<stage::Planned, stage::AwaitingAck, stage::Waiting,
                                 stage::Acting, stage::Done, stage::Failed, stage::Blocked,
                                 stage::Left, stage::Restoring, stage::Restored,
                                 stage::RestoreFailed>;

DomainStage stageOf(const DomainState& state);

template <typename Alternative, typename... Alternatives>
bool holds(const std::variant<Alternatives...>& value) {
  return std::holds_alternative<Alternative>(value);
}

struct DomainRecord {
  std::string uuid;
  std::string name;
  DomainState state = stage::Planned{};

  // The plan: effective policy (the host's defaults when the metadata is
  // malformed), the action after ack and fallback decisions, and its times.
  DomainPolicy policy;
  std::string policy_error;  // the domain's metadata is malformed
  std::optional<MaintenanceAction> action;
  bool fallback_used = false;
  std::optional<MaintenanceAction> fallback;  // still available if the action fails
  std::string note;                           // why the fallback was taken, the plan's note
  std::optional<AckChoice> ack;
  std::string ack_reason;  // given with the ack, "" when none
  std::optional<TimePoint> ack_time;
  std::optional<TimePoint> ack_deadline;
  std::optional<TimePoint> earliest_start;
  std::optional<std::string> destination;  // of its migration, once chosen

  // The engine suspended or shut it down: finish/cancel starts it again.
  bool needs_restore = false;
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> finished_at;
  // Memory it held when its action started: what it takes on its migration
  // destination after it left (the inventory no longer knows it).
  std::uint64_t memory_kib = 0;
  // Migrations of it that were interrupted (lost connection, restart) and
  // did not take effect; past the engine's limit its fallback applies.
  unsigned interrupted_migrations = 0;
  // Migrations of it that failed because of their destination, the
  // destinations that failed it (avoided while another one is left), when
  // the next attempt may start and why it waits (docs/engine.md,
  // "Destination retries").
  unsigned destination_failures = 0;
  std::vector<std::string> failed_destinations;
  std::optional<TimePoint> retry_at;
  std::string retry_reason;

  // Not journaled: which completion belongs to the current action, whether
  // this process waits for one (false after a restart: the outcome is then
  // read from the inventory), and its latest progress.
  std::uint64_t action_token = 0;
  bool completion_pending = false;
  // Inventory refreshes (reconnections) seen when the action was launched:
  // a lost-connection result after a later refresh is checked at once.
  std::uint64_t launched_at_refresh = 0;
  std::optional<MigrationProgress> progress;

  // The hypervisor action running for it, if any (drain action or restore).
  std::optional<hv::ActionKind> runningKind() const;
  DomainStage stage() const { return stageOf(state); }
  // Every member, journaled or not: the engine re-encodes a record for the
  // journal only when it differs from the one last saved.
  bool operator==(const DomainRecord&) const = default;
};

// The one way a domain's stage changes. What belongs to a running action
// goes with it: leaving `acting` or a started restore drops its progress
// and its pending completion (a late one is then ignored by its token).
void transition(DomainRecord& record, DomainState next);

struct EngineState {
  HostPhase phase = HostPhase::idle;
  std::optional<std::string> session_id;
  std::optional<MaintenanceWindow> window;
  std::vector<std::string> destinations;
  std::optional<TimePoint> scheduled_at;
  std::vector<DomainRecord> domains;
  // Live-migration throughput this host achieved (moving average over its
  // finished migrations, kept across maintenances); 0 until one finished.
  std::uint64_t migration_throughput_bps = 0;
  // When the cordon began (the drain started); unset while not cordoned.
  std::optional<TimePoint> cordoned_since;
  std::vector<CordonOverride> cordon_allowed;  // cleared when the maintenance ends
  // The last host shutdown, kept across maintenances until the next one.
  std::optional<HostShutdownRecord> host_shutdown;
  std::vector<LeftoverCheck> leftovers;
};

// The journal's document (renderJournalDocument): its header (everything but
// the domains) and one record per domain, each compact JSON.
std::string encodeEngineState(const EngineState& state);
std::string encodeEngineHeader(const EngineState& state);
std::string encodeDomainRecord(const DomainRecord& record);
// Throws std::runtime_error naming what is wrong with the document.
EngineState decodeEngineState(std::string_view document);

}  // namespace hostmaint::agent
