// Per-domain maintenance policy: host defaults from the config, overridden
// per domain by a <hostmaint:policy> element in the domain's <metadata>.
//
// The same key names are used in the config's [policy] table and in the
// metadata element, so an admin learns one vocabulary (docs/policy.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace hostmaint::agent {

// What happens to a domain when its host goes into maintenance.
enum class MaintenanceAction {
  live_migrate,
  cold_migrate,
  suspend,   // managed-save to disk on this host, restored after
  shutdown,  // graceful shutdown, started again after
  owner,     // the owner moves or deletes it before the deadline
};

enum class HostShutdownAction { suspend, shutdown };

// What happens when a required ack has not come by its deadline.
enum class AckTimeoutAction {
  proceed,  // do the planned action
  block,    // do nothing to the domain; it blocks readiness until acked
};

std::string_view toString(MaintenanceAction action);
std::string_view toString(HostShutdownAction action);
std::string_view toString(AckTimeoutAction action);
std::optional<MaintenanceAction> parseMaintenanceAction(std::string_view text);
std::optional<HostShutdownAction> parseHostShutdownAction(std::string_view text);
std::optional<AckTimeoutAction> parseAckTimeoutAction(std::string_view text);

// True when the action keeps the domain defined on this host (so it is not
// allowed when the host is being removed).
bool keepsDomainOnHost(MaintenanceAction action);
bool isMigration(MaintenanceAction action);

struct DomainPolicy {
  MaintenanceAction maintenance_action = MaintenanceAction::live_migrate;
  // Used when the host is removed for good; never suspend or shutdown.
  MaintenanceAction removal_action = MaintenanceAction::live_migrate;
  // Used when the primary action cannot be done (or fails).
  MaintenanceAction fallback_action = MaintenanceAction::suspend;
  // Used when the host is removed and the removal action cannot be done:
  // owner (hand it to the owner) or cold-migrate.
  MaintenanceAction removal_fallback_action = MaintenanceAction::owner;
  HostShutdownAction host_shutdown_action = HostShutdownAction::suspend;

  bool ack_required = false;
  std::chrono::seconds ack_timeout{std::chrono::hours(4)};
  AckTimeoutAction ack_timeout_action = AckTimeoutAction::proceed;

  std::chrono::seconds lead_time{0};
  std::string group;                  // empty: no group
  unsigned max_impacted_members = 1;  // of the group at once
  std::chrono::seconds recovery_time{60};
  int priority = 0;                   // higher drains first, restores first

  std::chrono::seconds shutdown_timeout{120};
  bool force_stop = true;  // destroy after shutdown_timeout

  // Live migration tuning and escalation (docs/policy.md, "Live migration
  // tuning and escalation"). Defaults follow Nova for the downtime ladder
  // and KubeVirt for the timeouts.
  std::chrono::milliseconds migration_max_downtime{500};  // top of the ladder
  unsigned migration_downtime_steps = 10;                 // 0: start at the top
  std::chrono::seconds migration_downtime_step_delay{10};
  std::uint64_t migration_bandwidth_mib_s = 0;  // 0: unlimited
  bool migration_auto_converge = false;         // allowed as an escalation step
  bool migration_post_copy = false;             // allowed as an escalation step
  std::chrono::seconds migration_completion_timeout_per_gib{150};  // 0: none
  std::chrono::seconds migration_progress_timeout{150};            // 0: none
  unsigned migration_parallel_connections = 0;                     // 0: one connection

  bool operator==(const DomainPolicy&) const = default;
};

// A policy error names the key and why it is wrong, e.g.
// "maintenance_action: 'teleport' is not one of live-migrate, cold-migrate, ...".
struct PolicyError {
  std::string message;
};

using PolicyResult = std::variant<DomainPolicy, PolicyError>;

// Applies the overrides in `metadata_xml` (a <hostmaint:policy> element, see
// docs/policy.md) on top of `defaults`. Unknown elements, bad values and
// combinations that cannot be honoured (removal_action suspend) are errors;
// nothing is silently replaced by a default.
PolicyResult applyPolicyMetadata(const DomainPolicy& defaults, std::string_view metadata_xml);

// Checks a complete policy for combinations that cannot be honoured.
// Returns an error message or nullopt.
std::optional<std::string> validatePolicy(const DomainPolicy& policy);

// Parses "90s", "30m", "2h", "1d", "1h30m" or a bare number of seconds.
std::optional<std::chrono::seconds> parseDuration(std::string_view text);
std::string formatDuration(std::chrono::seconds duration);

}  // namespace hostmaint::agent
