// Guarding the host around the drain: the cordon that keeps new domains off
// a host in maintenance, and the host-shutdown path that suspends or shuts
// down what still runs when the host goes down outside a completed drain,
// and restores it when hostmaintd starts again (docs/engine.md, "Cordon"
// and "Host shutdown").
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine_impl.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "status_projection.hpp"

namespace hostmaint::agent {

namespace {

bool cordonPhase(HostPhase phase) {
  return phase == HostPhase::draining || phase == HostPhase::empty ||
         phase == HostPhase::in_maintenance || phase == HostPhase::restoring;
}

bool matches(const CordonOverride& allowed, const std::string& key) {
  return allowed.domain == key || (!allowed.uuid.empty() && allowed.uuid == key) ||
         (!allowed.name.empty() && allowed.name == key);
}

std::string shutdownOutcome(HostShutdownAction action, TimePoint at, bool forced) {
  return std::string(action == HostShutdownAction::suspend ? "suspended" : "shut down") +
         (forced ? " (forced)" : "") + " when the host shut down at " + formatTime(at);
}

}  // namespace

bool MaintenanceEngine::Impl::hostGoingDown() const {
  return state.host_shutdown && (state.host_shutdown->phase == HostShutdownPhase::in_progress ||
                                 state.host_shutdown->phase == HostShutdownPhase::done);
}

// ---- cordon -------------------------------------------------------------------

CordonStatus MaintenanceEngine::Impl::cordonOf() const {
  CordonStatus cordon;
  cordon.active = cordonPhase(phase());
  cordon.since = state.cordoned_since;
  cordon.phase = phase();
  cordon.session_id = state.session_id;
  cordon.window = state.window;
  cordon.allowed = state.cordon_allowed;
  for (const DomainRecord& record : state.domains) {
    if (holds<stage::Restoring>(record.state)) cordon.restoring.emplace_back(record.name, record.uuid);
  }
  if (state.host_shutdown) {
    for (const HostShutdownDomain& domain : state.host_shutdown->domains) {
      if (domain.result == HostShutdownResult::restoring)
        cordon.restoring.emplace_back(domain.name, domain.uuid);
    }
  }
  return cordon;
}

void MaintenanceEngine::Impl::followCordon() {
  if (cordonPhase(phase())) {
    if (!state.cordoned_since) state.cordoned_since = now();
  } else {
    state.cordoned_since.reset();
  }
  if (phase() == HostPhase::idle) state.cordon_allowed.clear();
}

void MaintenanceEngine::Impl::tellCordon() {
  CordonStatus cordon = cordonOf();
  if (told_cordon && *told_cordon == cordon) return;
  told_cordon = cordon;
  try {
    listener.onCordonChanged(cordon);
  } catch (const std::exception& error) {
    // Nothing here may stop a restore; the listener shows its own failures
    // in the status, and an unexpected one is logged.
    spdlog::error("cannot pass on the cordon: {}", error.what());
  }
}

// ---- host shutdown ------------------------------------------------------------

// The policy a domain is shut down with: its drain record's when it has a
// valid one, else its metadata's, else the host's defaults.
DomainPolicy MaintenanceEngine::Impl::shutdownPolicyOf(const hv::DomainInfo& info) {
  if (const DomainRecord* drain = find(info.uuid); drain && drain->policy_error.empty())
    return drain->policy;
  PolicyResult resolved = policyFor(info, settings.default_policy);
  if (const auto* policy = std::get_if<DomainPolicy>(&resolved)) return *policy;
  return settings.default_policy;
}

HostShutdownDomain* MaintenanceEngine::Impl::shutdownEntry(const std::string& uuid) {
  if (!state.host_shutdown) return nullptr;
  for (HostShutdownDomain& domain : state.host_shutdown->domains) {
    if (domain.uuid == uuid) return &domain;
  }
  return nullptr;
}

// Every domain that still occupies the host and is not being moved by the
// drain gets its host_shutdown_action; a migration in flight is left to end
// (and its domain swept up here if it is still on the host afterwards).
void MaintenanceEngine::Impl::sweepHostShutdown() {
  HostShutdownRecord& record = *state.host_shutdown;
  for (const hv::DomainInfo& info : hypervisor.domains()) {
    if (!hv::occupiesHost(info.state) || shutdownEntry(info.uuid)) continue;
    const DomainRecord* drain = find(info.uuid);
    if (drain && drain->runningKind()) continue;
    HostShutdownDomain entry;
    entry.uuid = info.uuid;
    entry.name = info.name;
    const DomainPolicy policy = shutdownPolicyOf(info);
    entry.action = policy.host_shutdown_action;
    if (entry.action == HostShutdownAction::suspend && !info.persistent) {
      // libvirt keeps no managed save of a transient domain: it is lost with
      // the host either way, and a clean shutdown is better than a kill.
      spdlog::info("host shutdown: '{}' is transient and cannot be suspended: it is shut down "
                   "instead, and will not come back",
                   info.name);
      entry.action = HostShutdownAction::shutdown;
    }
    entry.priority = policy.priority;
    record.domains.push_back(std::move(entry));
  }
}

void MaintenanceEngine::Impl::startHostShutdownActions() {
  if (!state.host_shutdown || state.host_shutdown->phase != HostShutdownPhase::in_progress) return;
  sweepHostShutdown();
  HostShutdownRecord& record = *state.host_shutdown;
  const unsigned limit = settings.host_shutdown.max_parallel;
  auto acting = static_cast<unsigned>(
      std::count_if(record.domains.begin(), record.domains.end(), [](const HostShutdownDomain& d) {
        return d.result == HostShutdownResult::acting;
      }));
  std::vector<hv::ActionRequest> requests;
  for (HostShutdownDomain& entry : record.domains) {
    if (!connected()) break;
    if (entry.result != HostShutdownResult::pending) continue;
    if (limit != 0 && acting >= limit) break;
    std::optional<hv::DomainInfo> info = hypervisor.domain(entry.uuid);
    if (!info || !hv::occupiesHost(info->state)) {
      entry.result = HostShutdownResult::gone;
      entry.message = "no longer running here when its turn came";
      entry.acted_at = now();
      continue;
    }
    const DomainPolicy policy = shutdownPolicyOf(*info);
    hv::ActionRequest request;
    request.kind = entry.action == HostShutdownAction::suspend ? hv::ActionKind::managed_save
                                                                : hv::ActionKind::shutdown;
    request.uuid = entry.uuid;
    request.name = entry.name;
    request.shutdown_timeout = policy.shutdown_timeout;
    request.force_after_timeout = policy.force_stop;
    entry.result = HostShutdownResult::acting;
    ++acting;
    requests.push_back(std::move(request));
  }
  // Write-ahead once for all of them, as for the drain; but a journal that
  // cannot be written does not stop them: the host goes down either way,
  // and a suspended domain is better than a killed one.
  if (!requests.empty()) persist();
  for (const hv::ActionRequest& request : requests) {
    const std::uint64_t token = ++next_token;
    shutdown_tokens[request.uuid] = token;
    std::weak_ptr<int> weak = alive;
    hypervisor.startAction(request,
                           [this, weak, uuid = request.uuid, token](const hv::ActionResult& result) {
                             if (weak.expired()) return;
                             onHostShutdownDone(uuid, token, result);
                           });
  }
  const bool busy =
      std::any_of(record.domains.begin(), record.domains.end(), [](const HostShutdownDomain& d) {
        return d.result == HostShutdownResult::pending || d.result == HostShutdownResult::acting;
      }) ||
      std::any_of(state.domains.begin(), state.domains.end(),
                  [](const DomainRecord& r) { return r.runningKind().has_value(); });
  if (!busy) {
    record.phase = HostShutdownPhase::done;
    record.finished_at = now();
  }
}

void MaintenanceEngine::Impl::onHostShutdownDone(const std::string& uuid, std::uint64_t token,
                                                 const hv::ActionResult& result) {
  Entry entry(*this);
  auto pending = shutdown_tokens.find(uuid);
  if (pending == shutdown_tokens.end() || pending->second != token) return;
  shutdown_tokens.erase(pending);
  HostShutdownDomain* domain = shutdownEntry(uuid);
  if (!domain) return;
  domain->acted_at = now();
  if (!result.ok) {
    domain->result = HostShutdownResult::failed;
    domain->message = result.message;
    pump();
    return;
  }
  domain->result = domain->action == HostShutdownAction::suspend ? HostShutdownResult::suspended
                                                                  : HostShutdownResult::shut_down;
  domain->message = result.forced ? "forced off after its shutdown timeout" : "";
  DomainRecord* drain = find(uuid);
  const bool maintenance_restores = phase() == HostPhase::draining ||
                                    phase() == HostPhase::empty ||
                                    phase() == HostPhase::in_maintenance ||
                                    phase() == HostPhase::restoring;
  if (drain && maintenance_restores) {
    // A maintenance is under way: its finish (or cancel) brings the domain
    // back with the others, and its owner's notice says what happened.
    domain->result = HostShutdownResult::handed_over;
    drain->action = domain->action == HostShutdownAction::suspend ? MaintenanceAction::suspend
                                                                  : MaintenanceAction::shutdown;
    drain->fallback.reset();
    drain->fallback_used = true;
    drain->note = "the host shut down during the maintenance";
    drain->started_at = state.host_shutdown->started_at;
    completeDrain(*drain, shutdownOutcome(domain->action, state.host_shutdown->started_at,
                                          result.forced),
                  true);
  }
  pump();
}

// At start: a host shutdown that was in progress or done means the host
// (or at least hostmaintd) went down after it; what it took down comes back.
void MaintenanceEngine::Impl::comeBackAfterHostShutdown() {
  if (!hostGoingDown()) return;
  HostShutdownRecord& record = *state.host_shutdown;
  record.came_back_at = now();
  record.rebooted = !settings.boot_id.empty() && settings.boot_id != record.boot_id;
  if (!record.finished_at) record.finished_at = now();
  for (HostShutdownDomain& domain : record.domains) {
    if (domain.result == HostShutdownResult::pending || domain.result == HostShutdownResult::acting) {
      // Its action's end was not heard: the inventory says what it left.
      domain.result = HostShutdownResult::restoring;
      domain.message = "its " + std::string(toString(domain.action)) +
                       " was still running when hostmaintd stopped";
    } else if (domain.result == HostShutdownResult::suspended ||
               domain.result == HostShutdownResult::shut_down) {
      domain.result = HostShutdownResult::restoring;
    }
  }
  record.phase = HostShutdownPhase::restoring;
}

void MaintenanceEngine::Impl::startHostShutdownRestores() {
  if (!state.host_shutdown || state.host_shutdown->phase != HostShutdownPhase::restoring) return;
  if (!connected()) return;
  HostShutdownRecord& record = *state.host_shutdown;
  std::vector<HostShutdownDomain*> order;
  for (HostShutdownDomain& domain : record.domains) {
    if (domain.result == HostShutdownResult::restoring && !shutdown_tokens.contains(domain.uuid))
      order.push_back(&domain);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const HostShutdownDomain* a, const HostShutdownDomain* b) {
                     return a->priority > b->priority;
                   });
  // Every domain being restored is in the cordon's list already: told once,
  // before libvirt asks the hook about any of them.
  if (!order.empty()) tellCordon();
  const unsigned limit = settings.host_shutdown.max_parallel;
  for (HostShutdownDomain* domain : order) {
    if (limit != 0 && shutdown_tokens.size() >= limit) break;
    std::optional<hv::DomainInfo> info = hypervisor.domain(domain->uuid);
    if (!info) {
      domain->result = HostShutdownResult::gone;
      domain->message = "no longer defined on this host";
      domain->restored_at = now();
      continue;
    }
    if (hv::occupiesHost(info->state)) {
      domain->result = HostShutdownResult::restored;
      domain->message = "already running";
      domain->restored_at = now();
      continue;
    }
    const std::uint64_t token = ++next_token;
    shutdown_tokens[domain->uuid] = token;
    hv::ActionRequest request;
    request.kind = hv::ActionKind::start;
    request.uuid = domain->uuid;
    request.name = domain->name;
    std::weak_ptr<int> weak = alive;
    const std::string uuid = domain->uuid;
    const bool from_managed_save = info->has_managed_save;
    hypervisor.startAction(request, [this, weak, uuid, token,
                                     from_managed_save](const hv::ActionResult& result) {
      if (weak.expired()) return;
      Entry entry(*this);
      auto pending = shutdown_tokens.find(uuid);
      if (pending == shutdown_tokens.end() || pending->second != token) return;
      shutdown_tokens.erase(pending);
      if (HostShutdownDomain* done = shutdownEntry(uuid)) {
        done->restored_at = now();
        done->result = result.ok ? HostShutdownResult::restored : HostShutdownResult::restore_failed;
        done->message = result.ok ? (from_managed_save ? "restored from managed-save" : "started")
                                  : result.message;
      }
      pump();
    });
  }
  const bool busy =
      std::any_of(record.domains.begin(), record.domains.end(),
                  [](const HostShutdownDomain& d) { return d.result == HostShutdownResult::restoring; });
  if (!busy) {
    record.phase = HostShutdownPhase::restored;
    record.restored_at = now();
  }
}

// ---- commands -------------------------------------------------------------------

void MaintenanceEngine::hostShutdown(const std::string& requested_by) {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  EngineState before = e.state;
  if (e.hostGoingDown()) {
    // Asked again (a retry, or domains started after the first): the same
    // shutdown goes on and takes in whatever runs now.
    e.state.host_shutdown->phase = HostShutdownPhase::in_progress;
    e.state.host_shutdown->finished_at.reset();
  } else {
    HostShutdownRecord record;
    record.requested_by = requested_by;
    record.started_at = e.now();
    record.boot_id = e.settings.boot_id;
    e.state.host_shutdown = std::move(record);
  }
  // The pump takes in the domains (startHostShutdownActions sweeps them and
  // journals them before anything starts).
  e.commit("handle the host shutdown", std::move(before));
  e.pump();
}

void MaintenanceEngine::allowDomain(const std::string& domain, std::string reason,
                                    const std::string& by) {
  Impl& e = *impl_;
  if (e.phase() == HostPhase::idle) {
    throw CommandError("cannot allow " + inQuotes(domain) +
                       ": no maintenance is scheduled, so nothing is refused on this host");
  }
  if (domain.empty()) throw CommandError("cannot allow a domain without a name or UUID");
  Impl::Entry entry(e);
  EngineState before = e.state;
  CordonOverride allowed;
  allowed.domain = domain;
  for (const hv::DomainInfo& info : e.hypervisor.domains()) {
    if (info.name == domain || info.uuid == domain) {
      allowed.name = info.name;
      allowed.uuid = info.uuid;
    }
  }
  allowed.reason = std::move(reason);
  allowed.by = by;
  allowed.at = e.now();
  std::erase_if(e.state.cordon_allowed,
                [&](const CordonOverride& existing) { return matches(existing, domain); });
  e.state.cordon_allowed.push_back(std::move(allowed));
  e.commit("allow " + inQuotes(domain), std::move(before));
  e.pump();
}

void MaintenanceEngine::disallowDomain(const std::string& domain) {
  Impl& e = *impl_;
  const bool known = std::any_of(e.state.cordon_allowed.begin(), e.state.cordon_allowed.end(),
                                 [&](const CordonOverride& existing) { return matches(existing, domain); });
  if (!known) {
    throw CommandError("cannot disallow " + inQuotes(domain) +
                       ": it was not allowed (hostmaintctl status lists the allowed domains)");
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  std::erase_if(e.state.cordon_allowed,
                [&](const CordonOverride& existing) { return matches(existing, domain); });
  e.commit("disallow " + inQuotes(domain), std::move(before));
  e.pump();
}

}  // namespace hostmaint::agent
