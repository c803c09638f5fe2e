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
  // Memory it held when its action started: what it takes on its migration
  // destination after it left (the inventory no longer knows it).
  std::uint64_t memory_kib = 0;
  // Migrations of it that were interrupted (lost connection, restart) and
  // did not take effect; past kMaxMigrationRetries its fallback applies.
  unsigned interrupted_migrations = 0;

  // Not journaled: which completion belongs to the current action, and
  // whether this process is waiting for one (false after a restart: the
  // outcome is then read from the inventory and events).
  std::uint64_t action_token = 0;
  bool completion_pending = false;
  // Inventory refreshes (reconnections) seen when the action was launched:
  // a lost-connection result after a later refresh is checked at once.
  std::uint64_t launched_at_refresh = 0;
  // Its migration's result was a lost connection: settled when libvirt is back.
  bool held_for_reconnect = false;
};

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
};

std::string encodeEngineState(const EngineState& state);
// Throws std::runtime_error naming what is wrong with the document.
EngineState decodeEngineState(std::string_view document);

}  // namespace hostmaint::agent
