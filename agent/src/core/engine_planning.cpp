// Planning one domain from its policy and the window, and admitting it to
// the stage its ack and the host's phase allow.
#include <algorithm>

#include "engine_impl.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent {

// (Re)plans one domain from its inventory entry, keeping its ack.
void MaintenanceEngine::Impl::planRecord(DomainRecord& record, const hv::DomainInfo& info) {
  record.uuid = info.uuid;
  record.name = info.name;
  record.destination.reset();
  record.needs_restore = false;
  record.started_at.reset();
  record.finished_at.reset();
  record.memory_kib = 0;
  record.interrupted_migrations = 0;

  PolicyResult resolved = policyFor(info, settings.default_policy);
  const PolicyError* error = std::get_if<PolicyError>(&resolved);
  if (error && !record.ack) {
    // Never replaced by a default silently: the domain is a named blocker
    // until its metadata is fixed or someone acknowledges it explicitly.
    record.policy = DomainPolicy{};
    record.policy_error = error->message;
    record.action.reset();
    record.fallback.reset();
    record.fallback_used = false;
    record.note.clear();
    record.ack_deadline.reset();
    record.earliest_start.reset();
    transition(record, stage::Blocked{"malformed hostmaint policy: " + error->message});
    return;
  }
  if (error) {
    // An explicit ack is a human decision: in clouds where owners cannot edit
    // the domain XML it is the only way past a broken policy. The host's
    // defaults then apply to that choice, and the error stays visible.
    record.policy = settings.default_policy;
    record.policy_error = error->message;
  } else {
    record.policy = std::get<DomainPolicy>(resolved);
    record.policy_error.clear();
  }

  DomainPlan plan = planDomain(info, record.policy, planContext(), record.ack, record.ack_time);
  record.action = plan.action;
  record.fallback_used = plan.fallback_used;
  record.fallback = plan.fallback;
  record.note = plan.note;
  if (error) {
    std::string override_note = "hostmaint policy malformed; acting on the explicit ack '" +
                                std::string(toString(*record.ack)) +
                                "' with the host's default policy";
    record.note = record.note.empty() ? override_note : override_note + "; " + record.note;
  }
  record.earliest_start = plan.earliest_start;
  record.ack_deadline = record.ack ? std::nullopt : plan.ack_deadline;
  switch (plan.kind) {
    case DomainPlan::Kind::nothing_to_do:
      record.action.reset();
      record.earliest_start.reset();
      record.ack_deadline.reset();
      record.note.clear();
      transition(record, stage::Done{plan.reason});
      return;
    case DomainPlan::Kind::blocked: transition(record, stage::Blocked{plan.reason}); return;
    case DomainPlan::Kind::act: admit(record); return;
  }
}

// Puts a planned domain in the stage its ack and the phase allow.
void MaintenanceEngine::Impl::admit(DomainRecord& record) {
  if (record.policy.ack_required && !record.ack && record.ack_deadline) {
    if (now() < *record.ack_deadline) {
      transition(record, stage::AwaitingAck{*record.ack_deadline});
      return;
    }
    if (record.policy.ack_timeout_action == AckTimeoutAction::block) {
      transition(record, stage::Blocked{"no acknowledgement by " + formatTime(*record.ack_deadline) +
                                        "; left alone (ack_timeout_action block) until the "
                                        "owner acknowledges"});
      return;
    }
  }
  if (phase() == HostPhase::scheduled) {
    transition(record, stage::Planned{record.earliest_start.value_or(now())});
    return;
  }
  transition(record, stage::Waiting{wait::ToStart{}});
}

// A domain that is not in the plan yet (inventory at schedule time, or a
// domain that appeared during the maintenance).
void MaintenanceEngine::Impl::addPlanned(const hv::DomainInfo& info) {
  DomainRecord record;
  planRecord(record, info);
  state.domains.push_back(std::move(record));
}

// Something occupies the host again after it was evidenced empty: it is not
// empty any more, and the domain joins the drain.
void MaintenanceEngine::Impl::occupiedAgain(DomainRecord& record) {
  if (holds<stage::Done>(record.state)) return;
  if (phase() != HostPhase::empty && phase() != HostPhase::in_maintenance) return;
  state.phase = HostPhase::draining;
  admit(record);
}

// Outside a maintenance the status lists the host's domains as they are.
void MaintenanceEngine::Impl::syncIdleInventory() {
  if (phase() != HostPhase::idle) return;
  std::vector<hv::DomainInfo> inventory = hypervisor.domains();
  std::erase_if(state.domains, [&](const DomainRecord& record) {
    const bool present = std::any_of(inventory.begin(), inventory.end(),
                                     [&](const auto& d) { return d.uuid == record.uuid; });
    // Idle entries follow the inventory; a finished session's results stay
    // visible until the next schedule.
    return !present && holds<stage::Planned>(record.state);
  });
  for (const hv::DomainInfo& info : inventory) {
    if (find(info.uuid)) continue;
    DomainRecord record;
    record.uuid = info.uuid;
    record.name = info.name;
    record.state = stage::Planned{};
    PolicyResult resolved = policyFor(info, settings.default_policy);
    if (const PolicyError* error = std::get_if<PolicyError>(&resolved)) {
      record.policy_error = error->message;
    } else {
      record.policy = std::get<DomainPolicy>(resolved);
    }
    state.domains.push_back(std::move(record));
  }
}

}  // namespace hostmaint::agent
