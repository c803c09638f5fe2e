// DrainPlan: what the engine will do to one domain, decided from its policy,
// the window, the owner's ack and what this hypervisor can do. Pure
// functions, so the planning rules are tested without an engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/policy.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

// What the hypervisor and the configured destinations allow.
struct ActionAbility {
  bool live_migration = false;
  bool cold_migration = false;
  bool managed_save = true;
  std::string why_no_migration;  // set when a migration kind is not possible
};

// Migration needs both the hypervisor's capability and somewhere to go.
ActionAbility abilityFrom(const hv::Capabilities& capabilities, bool have_destinations);

// Why `action` cannot be done here to a domain that is `persistent` (or
// transient), or nullopt when it can.
std::optional<std::string> whyImpossible(MaintenanceAction action, const ActionAbility& ability,
                                         bool persistent);

// The domain's effective policy: defaults overridden by its metadata.
PolicyResult policyFor(const hv::DomainInfo& domain, const DomainPolicy& defaults);

struct PlanContext {
  bool removal = false;
  TimePoint window_start{};
  TimePoint noticed_at{};  // when the maintenance was scheduled: the owner's notice
  ActionAbility ability;
};

struct DomainPlan {
  enum class Kind {
    act,            // `action` is to be done (maybe after an ack)
    nothing_to_do,  // does not occupy the host and need not leave it
    blocked,        // cannot be handled; `reason` says why
  };
  Kind kind = Kind::act;
  std::optional<MaintenanceAction> action;
  // Still available if `action` fails; nullopt when none (or already used).
  std::optional<MaintenanceAction> fallback;
  bool fallback_used = false;
  // Why the fallback was chosen ("live-migrate not possible: ...; falling
  // back to suspend"), or what the owner is asked to do.
  std::string note;
  std::string reason;  // for blocked and nothing_to_do
  std::optional<TimePoint> earliest_start;
  std::optional<TimePoint> ack_deadline;  // when ack_required
};

DomainPlan planDomain(const hv::DomainInfo& domain, const DomainPolicy& policy,
                      const PlanContext& context, std::optional<AckChoice> ack,
                      std::optional<TimePoint> ack_time);

// The keep-in-place action an ack `keep` selects, or the refusal.
struct KeepDecision {
  std::optional<MaintenanceAction> action;
  std::string refusal;
};
KeepDecision keepDecision(const std::string& domain_name, const DomainPolicy& policy, bool removal,
                          bool persistent);

// The deadline by which an `owner` domain must have left: the ack deadline
// when an ack is required, else window start + ack_timeout.
TimePoint ownerDeadline(const DomainPolicy& policy, const PlanContext& context);

// Live-migration tuning from the domain's policy. The completion timeout
// scales with memory (per started GiB, at least two), as Nova and KubeVirt do.
hv::MigrationTuning migrationTuningFor(const DomainPolicy& policy, std::uint64_t memory_kib);

// Hypervisor action for a drain action; nullopt for `owner` (no action).
std::optional<hv::ActionKind> actionKindFor(MaintenanceAction action);

}  // namespace hostmaint::agent
