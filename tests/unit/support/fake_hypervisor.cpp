#include "support/fake_hypervisor.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>

namespace hostmaint::fake {

hv::DomainInfo makeDomain(const std::string& name, hv::DomainRunState state) {
  hv::DomainInfo info;
  info.name = name;
  char uuid[40];
  const auto hash = static_cast<unsigned long long>(std::hash<std::string>{}(name));
  std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012llx", hash & 0xffffffffffffULL);
  info.uuid = uuid;
  info.state = state;
  info.memory_kib = 1024 * 1024;
  info.max_memory_kib = info.memory_kib;
  info.vcpus = 2;
  info.persistent = true;
  return info;
}

std::string policyXml(const std::vector<std::pair<std::string, std::string>>& keys) {
  std::string xml = "<hostmaint:policy xmlns:hostmaint=\"https://hostmaint.org/xmlns/policy/1\">";
  for (const auto& [key, value] : keys) {
    xml += "<hostmaint:" + key + ">" + value + "</hostmaint:" + key + ">";
  }
  return xml + "</hostmaint:policy>";
}

FakeHypervisor::FakeHypervisor() {
  capabilities_.live_migration = true;
  capabilities_.cold_migration = true;
  capabilities_.managed_save = true;
}

std::vector<hv::DomainInfo> FakeHypervisor::domains() const { return domains_; }

std::optional<hv::DomainInfo> FakeHypervisor::domain(const std::string& uuid) const {
  for (const hv::DomainInfo& info : domains_) {
    if (info.uuid == uuid) return info;
  }
  return std::nullopt;
}

const hv::DomainInfo* FakeHypervisor::findDomain(const std::string& uuid) const {
  for (const hv::DomainInfo& info : domains_) {
    if (info.uuid == uuid) return &info;
  }
  return nullptr;
}

void FakeHypervisor::startAction(const hv::ActionRequest& request, hv::ActionDone done,
                                 hv::ActionProgressFn progress) {
  requests_.push_back(request);
  Pending pending{request, std::move(done), std::move(progress)};
  if (auto_complete_) {
    finish(std::move(pending));
    return;
  }
  for (hv::DomainInfo& info : domains_) {
    if (info.uuid == request.uuid) info.job_active = true;
  }
  pending_.push_back(std::move(pending));
}

hv::EmptinessReport FakeHypervisor::probeEmptiness(const hv::EmptinessQuery& query) {
  ++probes_;
  std::string active;
  std::string jobs;
  std::string saved;
  std::string autostart;
  for (const hv::DomainInfo& info : domains_) {
    if (hv::occupiesHost(info.state)) active += (active.empty() ? "" : ", ") + info.name;
    if (info.job_active) jobs += (jobs.empty() ? "" : ", ") + info.name;
    if (info.has_managed_save) saved += (saved.empty() ? "" : ", ") + info.name;
    if (info.autostart) autostart += (autostart.empty() ? "" : ", ") + info.name;
  }
  std::vector<hv::EvidenceCheck> checks = {
      {"no-active-domains", active.empty(), active.empty() ? "none active" : "active: " + active},
      {"no-running-jobs", jobs.empty(), jobs.empty() ? "none" : "jobs on: " + jobs},
      {"no-qemu-processes", active.empty(),
       active.empty() ? "no qemu process" : "qemu processes of: " + active},
      {"hugepages-free", true, "all free"},
  };
  if (query.removal) {
    checks.push_back(
        {"no-managed-save-images", saved.empty(), saved.empty() ? "none" : "images of: " + saved});
    checks.push_back({"no-autostart", autostart.empty(),
                      autostart.empty() ? "none" : "autostart: " + autostart});
  }
  for (const hv::EvidenceCheck& extra : extra_checks_) {
    auto same = std::find_if(checks.begin(), checks.end(),
                             [&](const hv::EvidenceCheck& c) { return c.name == extra.name; });
    if (same != checks.end()) {
      *same = extra;
    } else {
      checks.push_back(extra);
    }
  }
  return hv::EmptinessReport{checks};
}

void FakeHypervisor::addDomain(hv::DomainInfo info) {
  removeDomain(info.uuid);
  domains_.push_back(std::move(info));
}

void FakeHypervisor::removeDomain(const std::string& uuid) {
  std::erase_if(domains_, [&](const hv::DomainInfo& info) { return info.uuid == uuid; });
}

hv::DomainInfo& FakeHypervisor::mutableDomain(const std::string& uuid) {
  for (hv::DomainInfo& info : domains_) {
    if (info.uuid == uuid) return info;
  }
  throw std::out_of_range("fake hypervisor: no domain with uuid " + uuid);
}

std::string FakeHypervisor::uuidOf(const std::string& name) const {
  for (const hv::DomainInfo& info : domains_) {
    if (info.name == name) return info.uuid;
  }
  return makeDomain(name).uuid;  // gone domains keep their derived uuid
}

void FakeHypervisor::setStateWithEvent(const std::string& uuid, hv::DomainRunState state,
                                       hv::DomainEventKind kind) {
  hv::DomainInfo& info = mutableDomain(uuid);
  info.state = state;
  emit(kind, uuid, info.name);
}

void FakeHypervisor::addDomainWithEvent(hv::DomainInfo info) {
  const std::string uuid = info.uuid;
  const std::string name = info.name;
  addDomain(std::move(info));
  emit(hv::DomainEventKind::started, uuid, name);
}

void FakeHypervisor::removeDomainWithEvent(const std::string& uuid) {
  const std::string name = mutableDomain(uuid).name;
  removeDomain(uuid);
  emit(hv::DomainEventKind::undefined, uuid, name);
}

void FakeHypervisor::setConnectionState(hv::ConnectionState state, const std::string& detail) {
  connection_ = state;
  if (observer_) observer_->onConnectionStateChanged(state, detail);
}

void FakeHypervisor::refreshInventory() {
  if (observer_) observer_->onInventoryRefreshed();
}

void FakeHypervisor::setExtraCheck(const std::string& name, bool ok, const std::string& detail) {
  std::erase_if(extra_checks_, [&](const hv::EvidenceCheck& c) { return c.name == name; });
  extra_checks_.push_back({name, ok, detail});
}

void FakeHypervisor::failNext(const std::string& uuid, hv::ActionKind kind, std::string message,
                              hv::FailureKind failure, std::vector<std::string> escalations) {
  scripted_failures_[{uuid, kind}] =
      ScriptedFailure{std::move(message), failure, std::move(escalations)};
}

void FakeHypervisor::probeDestination(const std::string& uri, hv::DestinationProbeDone done) {
  ++destination_probes_[uri];
  if (probes_deferred_) {
    waiting_probes_.emplace_back(uri, std::move(done));
    return;
  }
  auto scripted = destinations_.find(uri);
  if (scripted != destinations_.end()) {
    done(scripted->second);
    return;
  }
  hv::DestinationReport report;
  report.uri = uri;
  report.reachable = true;
  report.hostname = uri;
  report.free_memory_bytes = report.total_memory_bytes = std::uint64_t{64} << 30;
  done(report);
}

void FakeHypervisor::settleDefinition(const std::string& uuid, const std::string& destination_uri,
                                      hv::DefinitionSettledFn done) {
  settle_requests_.emplace_back(uuid, destination_uri);
  if (settles_deferred_) {
    waiting_settles_.push_back({uuid, destination_uri, std::move(done)});
    return;
  }
  answerSettle(uuid, destination_uri, done);
}

void FakeHypervisor::answerSettle(const std::string& uuid, const std::string& destination_uri,
                                  const hv::DefinitionSettledFn& done) {
  hv::DefinitionSettled answer{hv::DefinitionOutcome::not_there,
                               "not defined on " + destination_uri};
  auto scripted = scripted_settles_.find(uuid);
  if (scripted != scripted_settles_.end() && !scripted->second.empty()) {
    answer = scripted->second.front();
    scripted->second.pop_front();
  }
  if (answer.outcome == hv::DefinitionOutcome::runs_there && domain(uuid)) removeDomain(uuid);
  done(answer);
}

void FakeHypervisor::scriptSettle(const std::string& uuid, hv::DefinitionOutcome outcome,
                                  std::string message) {
  scripted_settles_[uuid].push_back({outcome, std::move(message)});
}

void FakeHypervisor::answerSettles() {
  auto waiting = std::move(waiting_settles_);
  waiting_settles_.clear();
  for (const WaitingSettle& settle : waiting) answerSettle(settle.uuid, settle.destination, settle.done);
}

void FakeHypervisor::answerProbes() {
  const bool deferred = probes_deferred_;
  probes_deferred_ = false;
  auto waiting = std::move(waiting_probes_);
  waiting_probes_.clear();
  for (auto& [uri, done] : waiting) {
    --destination_probes_[uri];  // counted again below
    probeDestination(uri, std::move(done));
  }
  probes_deferred_ = deferred;
}

void FakeHypervisor::setDestination(const std::string& uri, hv::DestinationReport report) {
  report.uri = uri;
  destinations_[uri] = std::move(report);
}

void FakeHypervisor::setDestinationFreeMib(const std::string& uri, std::uint64_t free_mib) {
  hv::DestinationReport report;
  report.reachable = true;
  report.hostname = uri;
  report.free_memory_bytes = free_mib << 20;
  report.total_memory_bytes = std::uint64_t{64} << 30;
  setDestination(uri, std::move(report));
}

void FakeHypervisor::setDestinationUnreachable(const std::string& uri, const std::string& error) {
  hv::DestinationReport report;
  report.error = error;
  setDestination(uri, std::move(report));
}

int FakeHypervisor::destinationProbes(const std::string& uri) const {
  auto found = destination_probes_.find(uri);
  return found == destination_probes_.end() ? 0 : found->second;
}

int FakeHypervisor::requestCount(const std::string& uuid) const {
  return static_cast<int>(
      std::count_if(requests_.begin(), requests_.end(),
                    [&](const hv::ActionRequest& r) { return r.uuid == uuid; }));
}

int FakeHypervisor::requestCount(const std::string& uuid, hv::ActionKind kind) const {
  return static_cast<int>(
      std::count_if(requests_.begin(), requests_.end(),
                    [&](const hv::ActionRequest& r) { return r.uuid == uuid && r.kind == kind; }));
}

bool FakeHypervisor::isPending(const std::string& uuid) const {
  return std::any_of(pending_.begin(), pending_.end(),
                     [&](const Pending& p) { return p.request.uuid == uuid; });
}

bool FakeHypervisor::completeNext() {
  if (pending_.empty()) return false;
  Pending next = std::move(pending_.front());
  pending_.pop_front();
  finish(std::move(next));
  return true;
}

bool FakeHypervisor::complete(const std::string& uuid) {
  auto found = std::find_if(pending_.begin(), pending_.end(),
                            [&](const Pending& p) { return p.request.uuid == uuid; });
  if (found == pending_.end()) return false;
  Pending next = std::move(*found);
  pending_.erase(found);
  finish(std::move(next));
  return true;
}

void FakeHypervisor::completeAll() {
  while (completeNext()) {
  }
}

void FakeHypervisor::reportProgress(const std::string& uuid, const hv::ActionProgress& progress) {
  for (const Pending& p : pending_) {
    if (p.request.uuid == uuid && p.progress) p.progress(progress);
  }
}

void FakeHypervisor::takeEffectWithoutReply(const std::string& uuid) {
  auto found = std::find_if(pending_.begin(), pending_.end(),
                            [&](const Pending& p) { return p.request.uuid == uuid; });
  if (found == pending_.end()) return;
  hv::ActionRequest request = found->request;
  pending_.erase(found);
  applyEffect(request);
}

void FakeHypervisor::abandon(const std::string& uuid) {
  std::erase_if(pending_, [&](const Pending& p) { return p.request.uuid == uuid; });
  for (hv::DomainInfo& info : domains_) {
    if (info.uuid == uuid) info.job_active = false;
  }
}

void FakeHypervisor::finish(Pending pending) {
  hv::ActionResult result;
  auto scripted = scripted_failures_.find({pending.request.uuid, pending.request.kind});
  if (scripted != scripted_failures_.end()) {
    result.ok = false;
    result.message = scripted->second.message;
    result.failure = scripted->second.failure;
    result.escalations = scripted->second.escalations;
    scripted_failures_.erase(scripted);
    for (hv::DomainInfo& info : domains_) {
      if (info.uuid == pending.request.uuid) info.job_active = false;
    }
  } else if (!domain(pending.request.uuid)) {
    result.ok = false;
    result.message = std::string(hv::toString(pending.request.kind)) + " of '" +
                     pending.request.name + "' failed: domain not found";
  } else {
    result.ok = true;
    if (throughput_bps_ > 0 && (pending.request.kind == hv::ActionKind::live_migrate ||
                                pending.request.kind == hv::ActionKind::cold_migrate)) {
      hv::ActionProgress final_progress;
      final_progress.memory_bps = throughput_bps_;
      result.final_progress = final_progress;
    }
    applyEffect(pending.request);
  }
  pending.done(result);
}

void FakeHypervisor::applyEffect(const hv::ActionRequest& request) {
  auto found = std::find_if(domains_.begin(), domains_.end(),
                            [&](const hv::DomainInfo& d) { return d.uuid == request.uuid; });
  if (found == domains_.end()) return;
  found->job_active = false;
  const std::string name = found->name;
  switch (request.kind) {
    case hv::ActionKind::managed_save:
      found->state = hv::DomainRunState::shutoff;
      found->has_managed_save = true;
      emit(hv::DomainEventKind::saved, request.uuid, name);
      break;
    case hv::ActionKind::shutdown:
      found->state = hv::DomainRunState::shutoff;
      emit(hv::DomainEventKind::stopped, request.uuid, name);
      break;
    case hv::ActionKind::start:
      found->state = hv::DomainRunState::running;
      found->has_managed_save = false;
      emit(hv::DomainEventKind::started, request.uuid, name);
      break;
    case hv::ActionKind::live_migrate:
    case hv::ActionKind::cold_migrate:
    case hv::ActionKind::adopt_migration:
      domains_.erase(found);
      emit(hv::DomainEventKind::migrated_away, request.uuid, name);
      break;
  }
}

void FakeHypervisor::emit(hv::DomainEventKind kind, const std::string& uuid,
                          const std::string& name) {
  if (observer_) observer_->onDomainEvent(hv::DomainEvent{kind, uuid, name});
}

}  // namespace hostmaint::fake
