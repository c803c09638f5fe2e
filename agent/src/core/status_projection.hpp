// The status every interface shows (D-Bus, status.json, the controller's
// report, owners' notices), projected from the engine's typed state in one
// place: wait reasons and outcomes become words here and nowhere else.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine_state.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

// The evidence check a QEMU process that is still exiting fails for a
// moment after its domain stopped (the engine gives it a grace period).
inline constexpr std::string_view kQemuCheck = "no-qemu-processes";

struct DomainText {
  std::string result;  // what happened, or the plan's note
  std::string detail;  // why it waits, blocks or failed, or what runs
};

// An action's name for messages ("live-migrate"), "none" when there is none.
std::string actionName(const std::optional<MaintenanceAction>& action);
// `text` in single quotes, as every message names a domain or group.
std::string inQuotes(std::string_view text);

// The words for one domain's stage, from its record alone.
DomainText describeDomain(const DomainRecord& record);

// What a waiting domain waits for ("waiting: 2 of max 2 actions running").
std::string describeWait(const WaitReason& reason);
// The same for a domain waiting to be restored.
std::string describeRestoreWait(const WaitReason& reason);

// What projectStatus() worded for each domain and the owner's notice it
// computed, kept with what they were computed from and reused while that is
// unchanged: an event changes a few domains, and a projection of many
// domains at every event must not word them all again.
struct ProjectionCache {
  struct Text {
    DomainRecord record;
    DomainText text;
  };
  struct Notice {
    DomainStatus view;
    DomainPolicy policy;
    MaintenanceWindow window;
    std::string session_id;
    TimePoint noticed_at{};
    std::uint64_t measured_throughput_bps = 0;
    bool overrun = false;
    NoticeSettings settings;
    std::optional<DomainNotice> notice;
  };
  std::unordered_map<std::string, Text> texts;
  std::unordered_map<std::string, Notice> notices;
  // Each domain's whole entry (and the blocker its stage makes, if any),
  // kept with its record and what the inventory said of it, valid while
  // `context` (what every entry depends on) is the same: an unchanged
  // domain costs a comparison of its record, not a projection.
  struct Context {
    HostPhase phase = HostPhase::idle;
    std::optional<MaintenanceWindow> window;
    std::optional<std::string> session_id;
    std::optional<TimePoint> scheduled_at;
    std::uint64_t migration_throughput_bps = 0;
    bool window_ended = false;
    std::optional<HostShutdownRecord> host_shutdown;
    std::string host_name;
    DomainPolicy default_policy;
    NoticeSettings notice_settings;
    bool operator==(const Context&) const = default;
  };
  struct View {
    DomainRecord record;
    bool in_inventory = false;
    hv::DomainRunState run_state = hv::DomainRunState::unknown;
    std::uint64_t memory_kib = 0;
    std::optional<std::string> owner;
    std::optional<std::string> project;
    DomainStatus status;
    std::optional<std::string> blocking;
  };
  std::optional<Context> context;
  std::unordered_map<std::string, View> views;
  // views' entries by the index of their domain at the last projection
  // (nodes of the map stay put): found again without a lookup while the
  // order of domains is the same.
  std::vector<View*> views_by_index;
};

// What the live-migration scheduler shows (engine_pacing.cpp): projected
// with the rest, so that an unchanged view is not a change.
struct DomainPacing {
  MigrationTimeline timeline;
  std::optional<double> predicted_duration_s;
  std::optional<std::uint64_t> dirty_rate_bps;
};
struct PacingInputs {
  std::optional<SchedulerStatus> scheduler;
  std::unordered_map<std::string, DomainPacing> domains;  // by UUID
};

struct StatusInputs {
  const EngineState& state;
  std::string host_name;
  hv::ConnectionState connection = hv::ConnectionState::connecting;
  std::string connection_detail;
  std::string hypervisor_description;
  std::vector<hv::DomainInfo> inventory;
  const std::optional<std::vector<hv::EvidenceCheck>>& evidence;
  bool qemu_exit_grace = false;  // a failing QEMU check is not a blocker yet
  const std::optional<std::string>& journal_error;
  // For the owners' notices: the policy a domain with a malformed one is
  // acted on with, and how downtime is estimated.
  const DomainPolicy& default_policy;
  const NoticeSettings& notice_settings;
  CordonStatus cordon;  // the engine's half (MaintenanceEngine::Impl::cordonOf)
  TimePoint now{};
  // [limits] save_timeout and restore_timeout: a managed-save or a restore
  // running longer is a blocker (overdueAction).
  std::chrono::seconds save_timeout{0};
  std::chrono::seconds restore_timeout{0};
  ProjectionCache* cache = nullptr;  // nullptr: everything is computed
  // When set, each domain's inventory entry is read from it (without a
  // copy of the inventory) and `inventory` is not used.
  const hv::Hypervisor* hypervisor = nullptr;
  const PacingInputs* pacing = nullptr;
};

// When the action running for `record` passes its deadline, if it has one
// that is not enforced by the action itself: a managed-save and a restore
// ([limits] save_timeout, restore_timeout). Unset otherwise.
std::optional<TimePoint> actionDeadline(const DomainRecord& record,
                                        std::chrono::seconds save_timeout,
                                        std::chrono::seconds restore_timeout);

// The whole snapshot except generation and updated_at, which the engine
// stamps when the projection differs from what it published before.
HostStatus projectStatus(const StatusInputs& inputs);
// The same projected into `current` (the last projection, generation and
// updated_at kept): true when anything in it changed. With a cache, every
// projection that uses it must be into the same `current`: an entry the
// cache holds unchanged is taken to be in `current` already.
bool projectStatusInto(const StatusInputs& inputs, HostStatus& current);

}  // namespace hostmaint::agent
