// FakeHypervisor: an in-memory hv::Hypervisor for engine tests.
//
// Domains, capabilities and connection state are set by the test. Every
// startAction is recorded; the test completes pending actions explicitly
// (completeNext, complete) or lets them complete at once (setAutoComplete).
// A completed action changes the domain as libvirt would (managed-save →
// shut off with an image, shutdown → shut off, start → running, migration →
// gone from this host) and emits the matching event before the completion.
// Emptiness evidence is derived from the domains, plus injectable failures.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::fake {

// A running, persistent domain with a stable UUID derived from its name.
hv::DomainInfo makeDomain(const std::string& name,
                          hv::DomainRunState state = hv::DomainRunState::running);

// A <hostmaint:policy> element with the given key/value children.
std::string policyXml(const std::vector<std::pair<std::string, std::string>>& keys);

class FakeHypervisor final : public hv::Hypervisor {
 public:
  FakeHypervisor();

  // --- hv::Hypervisor
  void setObserver(hv::HypervisorObserver* observer) override { observer_ = observer; }
  hv::ConnectionState connectionState() const override { return connection_; }
  std::string description() const override { return "fake:///test"; }
  hv::Capabilities capabilities() const override { return capabilities_; }
  std::vector<hv::DomainInfo> domains() const override;
  std::optional<hv::DomainInfo> domain(const std::string& uuid) const override;
  const hv::DomainInfo* findDomain(const std::string& uuid) const override;
  void startAction(const hv::ActionRequest& request, hv::ActionDone done,
                   hv::ActionProgressFn progress = {}) override;
  hv::EmptinessReport probeEmptiness(const hv::EmptinessQuery& query) override;
  // Answers at once with the scripted report; an unscripted URI is
  // reachable with 64 GiB free.
  void probeDestination(const std::string& uri, hv::DestinationProbeDone done) override;

  // Answers with the next scripted answer for the domain (scriptSettle);
  // unscripted: not_there. A runs_there answer removes the domain here, as
  // the libvirt implementation does with a definition left here.
  void settleDefinition(const std::string& uuid, const std::string& destination_uri,
                        hv::DefinitionSettledFn done) override;

  // --- inventory, set up by the test (no events unless said)
  void addDomain(hv::DomainInfo info);
  void removeDomain(const std::string& uuid);
  hv::DomainInfo& mutableDomain(const std::string& uuid);
  std::string uuidOf(const std::string& name) const;
  // Changes a domain's run state and tells the observer, as a lifecycle event would.
  void setStateWithEvent(const std::string& uuid, hv::DomainRunState state,
                         hv::DomainEventKind kind);
  // Defines and starts a new domain and tells the observer.
  void addDomainWithEvent(hv::DomainInfo info);
  // Undefines a domain and tells the observer.
  void removeDomainWithEvent(const std::string& uuid);

  void setCapabilities(hv::Capabilities capabilities) { capabilities_ = std::move(capabilities); }
  // Tells the observer, like a lost/restored libvirt connection would.
  void setConnectionState(hv::ConnectionState state, const std::string& detail = {});
  void refreshInventory();

  // --- evidence
  // A failing check reported in addition to (or instead of, by name) the
  // derived ones.
  void setExtraCheck(const std::string& name, bool ok, const std::string& detail);
  void clearExtraChecks() { extra_checks_.clear(); }
  int probes() const { return probes_; }

  // --- destinations
  void setDestination(const std::string& uri, hv::DestinationReport report);
  void setDestinationFreeMib(const std::string& uri, std::uint64_t free_mib);
  void setDestinationUnreachable(const std::string& uri, const std::string& error);
  int destinationProbes(const std::string& uri) const;
  // Probes wait for answerProbes() instead of answering at once, as a
  // destination reached over the network does.
  void setProbesDeferred(bool deferred) { probes_deferred_ = deferred; }
  // Answers every waiting probe with its (current) scripted report.
  void answerProbes();
  std::size_t probesWaiting() const { return waiting_probes_.size(); }

  // --- the scheduler's steering and dirty rates
  void steerMigration(const std::string& uuid, const hv::MigrationSteer& steer) override {
    steers_[uuid] = steer;
    ++steer_calls_;
  }
  // The last steer sent for `uuid` (default: never steered).
  hv::MigrationSteer steerOf(const std::string& uuid) const {
    auto it = steers_.find(uuid);
    return it == steers_.end() ? hv::MigrationSteer{} : it->second;
  }
  int steerCalls() const { return steer_calls_; }
  // Answers at once: the scripted rate, else "cannot measure".
  void probeDirtyRate(const std::string& uuid, hv::DirtyRateDone done) override {
    ++dirty_probes_[uuid];
    auto rate = dirty_rates_.find(uuid);
    if (rate == dirty_rates_.end()) {
      done(hv::DirtyRateReport{std::nullopt, "fake: no dirty rate scripted for " + uuid});
    } else {
      done(hv::DirtyRateReport{rate->second, ""});
    }
  }
  void setDirtyRate(const std::string& uuid, std::uint64_t bytes_per_second) {
    dirty_rates_[uuid] = bytes_per_second;
  }
  int dirtyProbes(const std::string& uuid) const {
    auto it = dirty_probes_.find(uuid);
    return it == dirty_probes_.end() ? 0 : it->second;
  }

  // --- leftover definitions
  void scriptSettle(const std::string& uuid, hv::DefinitionOutcome outcome,
                    std::string message = {});
  // Checks wait for answerSettles() instead of answering at once.
  void setSettlesDeferred(bool deferred) { settles_deferred_ = deferred; }
  void answerSettles();
  // (uuid, destination) of every settleDefinition call, in order.
  const std::vector<std::pair<std::string, std::string>>& settleRequests() const {
    return settle_requests_;
  }

  // --- actions
  struct Pending {
    hv::ActionRequest request;
    hv::ActionDone done;
    hv::ActionProgressFn progress;
  };
  void setAutoComplete(bool automatic) { auto_complete_ = automatic; }
  // The next action of `kind` on `uuid` fails with `message` when completed.
  void failNext(const std::string& uuid, hv::ActionKind kind, std::string message,
                hv::FailureKind failure = hv::FailureKind::other,
                std::vector<std::string> escalations = {});
  // The next successful migration reports this final throughput.
  void setMigrationThroughput(std::uint64_t bytes_per_second) { throughput_bps_ = bytes_per_second; }

  const std::vector<hv::ActionRequest>& requests() const { return requests_; }
  int requestCount(const std::string& uuid) const;
  int requestCount(const std::string& uuid, hv::ActionKind kind) const;
  const std::deque<Pending>& pending() const { return pending_; }
  bool isPending(const std::string& uuid) const;

  // Completes the oldest pending action; false when none is pending.
  bool completeNext();
  // Completes the pending action on `uuid`; false when none.
  bool complete(const std::string& uuid);
  void completeAll();
  void reportProgress(const std::string& uuid, const hv::ActionProgress& progress);

  // Crash simulation: the action takes effect (state and event) but its
  // completion is never delivered, as when the daemon died while waiting.
  void takeEffectWithoutReply(const std::string& uuid);
  // Crash simulation: the action never took effect and nobody is told.
  void abandon(const std::string& uuid);

 private:
  void answerSettle(const std::string& uuid, const std::string& destination_uri,
                    const hv::DefinitionSettledFn& done);
  void finish(Pending pending);
  void applyEffect(const hv::ActionRequest& request);
  void emit(hv::DomainEventKind kind, const std::string& uuid, const std::string& name);

  hv::HypervisorObserver* observer_ = nullptr;
  hv::ConnectionState connection_ = hv::ConnectionState::connected;
  hv::Capabilities capabilities_;
  std::vector<hv::DomainInfo> domains_;
  std::vector<hv::ActionRequest> requests_;
  std::deque<Pending> pending_;
  struct ScriptedFailure {
    std::string message;
    hv::FailureKind failure = hv::FailureKind::other;
    std::vector<std::string> escalations;
  };
  std::map<std::pair<std::string, hv::ActionKind>, ScriptedFailure> scripted_failures_;
  std::map<std::string, hv::DestinationReport> destinations_;
  std::map<std::string, int> destination_probes_;
  bool probes_deferred_ = false;
  std::vector<std::pair<std::string, hv::DestinationProbeDone>> waiting_probes_;
  std::uint64_t throughput_bps_ = 0;
  std::vector<hv::EvidenceCheck> extra_checks_;
  bool auto_complete_ = false;
  int probes_ = 0;
  std::map<std::string, std::deque<hv::DefinitionSettled>> scripted_settles_;
  std::vector<std::pair<std::string, std::string>> settle_requests_;
  bool settles_deferred_ = false;
  struct WaitingSettle {
    std::string uuid;
    std::string destination;
    hv::DefinitionSettledFn done;
  };
  std::vector<WaitingSettle> waiting_settles_;
  std::map<std::string, hv::MigrationSteer> steers_;
  int steer_calls_ = 0;
  std::map<std::string, std::uint64_t> dirty_rates_;
  std::map<std::string, int> dirty_probes_;
};

}  // namespace hostmaint::fake
