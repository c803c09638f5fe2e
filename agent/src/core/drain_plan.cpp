#include "drain_plan.hpp"

#include <algorithm>

namespace hostmaint::agent {

namespace {

std::string name(MaintenanceAction action) { return std::string(toString(action)); }

}  // namespace

ActionAbility abilityFrom(const hv::Capabilities& capabilities, bool have_destinations) {
  ActionAbility ability;
  ability.managed_save = capabilities.managed_save;
  if (!have_destinations) {
    ability.why_no_migration = "no migration destination is configured";
    return ability;
  }
  ability.live_migration = capabilities.live_migration;
  ability.cold_migration = capabilities.cold_migration;
  if (!ability.live_migration || !ability.cold_migration) {
    ability.why_no_migration = capabilities.why_no_migration.empty()
                                   ? "the hypervisor cannot migrate"
                                   : capabilities.why_no_migration;
  }
  return ability;
}

std::optional<std::string> whyImpossible(MaintenanceAction action, const ActionAbility& ability,
                                         bool persistent) {
  // A transient domain exists only while it runs: libvirt keeps no managed
  // save of it, and once it is shut down there is nothing left to start
  // again, here or (should the start there fail) on a destination.
  constexpr std::string_view kTransient =
      "the domain is transient (not defined on this host): shut down or stopped, it would be "
      "gone; define it (virsh define) or let it be live-migrated";
  switch (action) {
    case MaintenanceAction::live_migrate:
      if (!ability.live_migration) return ability.why_no_migration;
      return std::nullopt;
    case MaintenanceAction::cold_migrate:
      if (!persistent) return std::string(kTransient);
      if (!ability.cold_migration) return ability.why_no_migration;
      return std::nullopt;
    case MaintenanceAction::suspend:
      if (!persistent) return std::string(kTransient);
      if (!ability.managed_save) return std::string("the hypervisor cannot managed-save");
      return std::nullopt;
    case MaintenanceAction::shutdown:
      if (!persistent) return std::string(kTransient);
      return std::nullopt;
    case MaintenanceAction::owner: return std::nullopt;
  }
  return std::nullopt;
}

PolicyResult policyFor(const hv::DomainInfo& domain, const DomainPolicy& defaults) {
  if (!domain.policy_xml) return defaults;
  return applyPolicyMetadata(defaults, *domain.policy_xml);
}

KeepDecision keepDecision(const std::string& domain_name, const DomainPolicy& policy,
                          bool removal, bool persistent) {
  if (removal) {
    return {std::nullopt, "cannot keep '" + domain_name +
                              "' on this host: the host is being removed for good; ack 'move' "
                              "or let the owner move it"};
  }
  if (!persistent) {
    return {std::nullopt, "cannot keep '" + domain_name +
                              "' on this host: it is transient (not defined here), so suspended "
                              "or shut down it would be gone; ack 'move' instead"};
  }
  if (keepsDomainOnHost(policy.maintenance_action)) return {policy.maintenance_action, {}};
  if (keepsDomainOnHost(policy.fallback_action)) return {policy.fallback_action, {}};
  return {std::nullopt, "cannot keep '" + domain_name + "' on this host: neither its " +
                            "maintenance_action (" + name(policy.maintenance_action) +
                            ") nor its fallback_action (" + name(policy.fallback_action) +
                            ") keeps it here (suspend or shutdown would); ack 'move' instead"};
}

TimePoint ownerDeadline(const DomainPolicy& policy, const PlanContext& context) {
  if (policy.ack_required) return context.noticed_at + policy.ack_timeout;
  return context.window_start + policy.ack_timeout;
}

std::optional<hv::ActionKind> actionKindFor(MaintenanceAction action) {
  switch (action) {
    case MaintenanceAction::live_migrate: return hv::ActionKind::live_migrate;
    case MaintenanceAction::cold_migrate: return hv::ActionKind::cold_migrate;
    case MaintenanceAction::suspend: return hv::ActionKind::managed_save;
    case MaintenanceAction::shutdown: return hv::ActionKind::shutdown;
    case MaintenanceAction::owner: return std::nullopt;
  }
  return std::nullopt;
}

DomainPlan planDomain(const hv::DomainInfo& domain, const DomainPolicy& policy,
                      const PlanContext& context, std::optional<AckChoice> ack,
                      std::optional<TimePoint> ack_time) {
  DomainPlan plan;
  if (policy.ack_required) plan.ack_deadline = context.noticed_at + policy.ack_timeout;
  plan.earliest_start =
      std::max(context.window_start, ack_time.value_or(context.noticed_at) + policy.lead_time);

  const bool running = hv::occupiesHost(domain.state);
  if (!running) {
    if (!context.removal || !domain.persistent) {
      plan.kind = DomainPlan::Kind::nothing_to_do;
      plan.reason = "not running; nothing to do";
      return plan;
    }
    // A stopped domain still defined here would come back on a removed
    // host: it must be moved offline or undefined by its owner.
    const std::string must_go = "defined here and the host is being removed: move or undefine it";
    if (policy.removal_action == MaintenanceAction::owner) {
      plan.action = MaintenanceAction::owner;
      plan.note = must_go;
      return plan;
    }
    if (!whyImpossible(MaintenanceAction::cold_migrate, context.ability, domain.persistent)) {
      plan.action = MaintenanceAction::cold_migrate;
      return plan;
    }
    if (policy.removal_fallback_action == MaintenanceAction::owner) {
      plan.action = MaintenanceAction::owner;
      plan.fallback_used = true;
      plan.note =
          must_go + " (cold-migrate not possible: " + context.ability.why_no_migration + ")";
      return plan;
    }
    plan.kind = DomainPlan::Kind::blocked;
    plan.reason =
        must_go + " (cold-migrate not possible: " + context.ability.why_no_migration + ")";
    return plan;
  }

  MaintenanceAction action = context.removal ? policy.removal_action : policy.maintenance_action;
  std::optional<MaintenanceAction> fallback =
      context.removal ? policy.removal_fallback_action : policy.fallback_action;
  if (ack == AckChoice::keep) {
    // Refused at ack time when not allowed; a journal from an older policy
    // may still carry it, so stay safe and ignore it then.
    KeepDecision keep = keepDecision(domain.name, policy, context.removal, domain.persistent);
    if (keep.action) {
      action = *keep.action;
      fallback = std::nullopt;
      if (keepsDomainOnHost(policy.fallback_action) && policy.fallback_action != action) {
        fallback = policy.fallback_action;
      }
    }
  } else if (ack == AckChoice::move && !isMigration(action)) {
    action = MaintenanceAction::live_migrate;
  }
  if (fallback == action) fallback = std::nullopt;

  if (auto why = whyImpossible(action, context.ability, domain.persistent)) {
    const std::string first = name(action) + " not possible: " + *why;
    if (!fallback) {
      plan.kind = DomainPlan::Kind::blocked;
      plan.reason = first + "; no fallback action";
      return plan;
    }
    if (auto why_fallback = whyImpossible(*fallback, context.ability, domain.persistent)) {
      plan.kind = DomainPlan::Kind::blocked;
      plan.reason =
          first + "; fallback " + name(*fallback) + " not possible either: " + *why_fallback;
      return plan;
    }
    plan.note = first + "; falling back to " + name(*fallback);
    plan.action = fallback;
    plan.fallback = std::nullopt;
    plan.fallback_used = true;
    return plan;
  }
  plan.action = action;
  plan.fallback = fallback;
  return plan;
}

hv::MigrationTuning migrationTuningFor(const DomainPolicy& policy, std::uint64_t memory_kib) {
  hv::MigrationTuning tuning;
  tuning.max_downtime = policy.migration_max_downtime;
  tuning.downtime_steps = policy.migration_downtime_steps;
  tuning.downtime_step_delay = policy.migration_downtime_step_delay;
  if (policy.migration_bandwidth_mib_s > 0) tuning.bandwidth_mib_s = policy.migration_bandwidth_mib_s;
  tuning.auto_converge = policy.migration_auto_converge;
  tuning.post_copy_allowed = policy.migration_post_copy;
  if (policy.migration_parallel_connections > 0) {
    tuning.parallel_connections = policy.migration_parallel_connections;
  }
  constexpr std::uint64_t kKibPerGib = 1024 * 1024;
  // At least 2 GiB counted, as Nova does: small guests still get minutes.
  const std::uint64_t gib = std::max<std::uint64_t>(2, (memory_kib + kKibPerGib - 1) / kKibPerGib);
  tuning.completion_timeout =
      policy.migration_completion_timeout_per_gib * static_cast<std::int64_t>(gib);
  tuning.progress_timeout = policy.migration_progress_timeout;
  return tuning;
}

}  // namespace hostmaint::agent
