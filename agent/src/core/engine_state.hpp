// The engine's durable state and its journal encoding (versioned JSON).
// Everything needed to continue a maintenance after a restart lives here;
// what the hypervisor knows (run state, memory, owner) is re-read instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/policy.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

inline constexpr int kEngineStateVersion = 1;

struct DomainRecord {
  // Published as-is, except the inventory fields (run_state, memory, owner,
  // project) which are refreshed from the hypervisor.
  DomainStatus view;
  DomainPolicy policy;  // effective policy (valid only when view.policy_error is empty)
  std::optional<MaintenanceAction> fallback;  // still available if the action fails
  std::string note;                           // why the fallback was taken
  std::optional<TimePoint> ack_time;
  // The hypervisor action running (or, after a restart, that was running)
  // for this domain; set before the action starts (write-ahead).
  std::optional<hv::ActionKind> acting_kind;
  // The engine suspended or shut it down: finish/cancel starts it again.
  bool needs_restore = false;
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> finished_at;

  // Not journaled: which completion belongs to the current action, and
  // whether this process is waiting for one (false after a restart: the
  // outcome is then read from the inventory and events).
  std::uint64_t action_token = 0;
  bool completion_pending = false;
};

struct EngineState {
  HostPhase phase = HostPhase::idle;
  std::optional<std::string> session_id;
  std::optional<MaintenanceWindow> window;
  std::vector<std::string> destinations;
  std::optional<TimePoint> scheduled_at;
  std::vector<DomainRecord> domains;
};

std::string encodeEngineState(const EngineState& state);
// Throws std::runtime_error naming what is wrong with the document.
EngineState decodeEngineState(std::string_view document);

}  // namespace hostmaint::agent
