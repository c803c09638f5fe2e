#include "hostmaint/agent/service/fleet_holds.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace hostmaint::service {
namespace {

namespace fl = agent::fleet;

bool waiting(const agent::HostStatus& status, const std::string& uuid) {
  return std::any_of(status.domains.begin(), status.domains.end(),
                     [&](const agent::DomainStatus& domain) {
                       return domain.uuid == uuid && domain.stage == agent::DomainStage::waiting;
                     });
}

}  // namespace

// ---- the loop -----------------------------------------------------------

FleetHolds::Answer FleetHolds::mayImpact(const agent::GroupMemberAction& member,
                                         bool slot_valid) {
  if (slot_valid) {
    if (auto held = shown_.impacts.find(member.uuid);
        held != shown_.impacts.end() && held->second.group == member.group)
      return {};
  }
  Answer answer;
  answer.asked_anew = !impact_requests_.contains(member.uuid);
  impact_requests_[member.uuid] = member;
  const std::string group = "group '" + member.group + "'";
  if (!slot_valid) {
    answer.why_not = "the fleet slot, before a member of " + group + " is impacted";
  } else if (auto why = shown_.impact_why_not.find(member.group);
             why != shown_.impact_why_not.end()) {
    answer.why_not = why->second;
  } else {
    answer.why_not = "an impact of " + group + " across the fleet (being taken)";
  }
  return answer;
}

FleetHolds::Answer FleetHolds::mayMigrate(const agent::PeerMigration& migration,
                                          const std::string& peer, bool slot_valid) {
  if (slot_valid) {
    if (auto held = shown_.incoming.find(migration.uuid);
        held != shown_.incoming.end() && held->second.destination == peer)
      return {};
  }
  const IncomingWant want{peer, migration.name, false};
  auto [request, added] = incoming_requests_.try_emplace(migration.uuid, want);
  Answer answer;
  answer.asked_anew = added || request->second != want;
  request->second = want;
  const std::string name = "peer " + peer;
  if (!slot_valid) {
    answer.why_not = "the fleet slot, before a migration to " + name + " is claimed";
  } else if (auto why = shown_.incoming_why_not.find(migration.uuid);
             why != shown_.incoming_why_not.end() && !answer.asked_anew) {
    answer.why_not = why->second;  // a refusal of this very claim
  } else {
    answer.why_not = "an incoming migration slot on " + name + " (being claimed)";
  }
  return answer;
}

void FleetHolds::forgetRequestsNotWaiting(const agent::HostStatus& status) {
  std::erase_if(impact_requests_,
                [&](const auto& request) { return !waiting(status, request.first); });
  std::erase_if(incoming_requests_,
                [&](const auto& request) { return !waiting(status, request.first); });
}

// One impact for each member impacted now (kept, or taken again after the
// slot was lost) and for each member whose action waits for it; one claim
// for each migration to a peer that runs and for each whose start waits.
FleetHolds::Wants FleetHolds::wants(const agent::HostStatus* status, const PeerOf& peer_of) const {
  Wants wants;
  for (const auto& [uuid, member] : impact_requests_)
    wants.impacts[uuid] = ImpactWant{member.group, member.name, member.max_impacted_members};
  wants.incoming = incoming_requests_;
  if (!status) return wants;
  for (const agent::DomainStatus& domain : status->domains) {
    if (domain.group_impacted && !wants.impacts.contains(domain.uuid)) {
      wants.impacts[domain.uuid] =
          ImpactWant{domain.group, domain.name, std::max(domain.group_max_impacted, 1u)};
    }
    if (domain.stage == agent::DomainStage::acting && domain.destination) {
      if (auto peer = peer_of(*domain.destination))
        wants.incoming[domain.uuid] = IncomingWant{*peer, domain.name, true};
    }
  }
  return wants;
}

bool FleetHolds::take(Held held) {
  if (held == shown_) return false;
  shown_ = std::move(held);
  return true;
}

std::vector<agent::FleetImpact> FleetHolds::impactsShown() const {
  std::vector<agent::FleetImpact> impacts;
  for (const auto& [uuid, impact] : shown_.impacts)
    impacts.push_back(agent::FleetImpact{impact.group, impact.index, impact.name});
  return impacts;
}

void FleetHolds::decorate(agent::HostStatus& status, bool slot_valid) const {
  // A group whose members wait for an impact across the fleet, or are
  // impacted without one (its lease expired while hostmaintd was away): one
  // blocker per group, naming who holds its impacts.
  std::set<std::string> short_groups;
  for (const agent::DomainStatus& domain : status.domains) {
    if (domain.group.empty() || shown_.impacts.contains(domain.uuid)) continue;
    const bool waits = domain.stage == agent::DomainStage::waiting &&
                       impact_requests_.contains(domain.uuid);
    if (waits || domain.group_impacted) short_groups.insert(domain.group);
  }
  for (const std::string& group : short_groups) {
    const auto why = shown_.impact_why_not.find(group);
    status.blockers.push_back(agent::Blocker{
        "group " + group,
        why != shown_.impact_why_not.end() ? why->second
        : !slot_valid ? "waiting for the fleet slot before a member is impacted"
                      : "taking an impact across the fleet"});
  }
  // A peer that refused a claim a migration waits for: one blocker per peer.
  std::map<std::string, std::string> refused_peers;
  for (const auto& [uuid, request] : incoming_requests_) {
    const auto why = shown_.incoming_why_not.find(uuid);
    if (why != shown_.incoming_why_not.end() && !shown_.incoming.contains(uuid))
      refused_peers.emplace(request.destination, why->second);
  }
  for (const auto& [peer, why] : refused_peers)
    status.blockers.push_back(agent::Blocker{"peer " + peer, why});
}

// ---- the worker ---------------------------------------------------------

void FleetHolds::exchange(fl::EtcdClient& etcd, const fl::FleetKeys& keys,
                          const std::optional<fl::SlotHold>& hold, const Wants& wants,
                          bool status_known, fl::FleetView& view, Held& report) {
  // Until the first status is offered the domains' needs are unknown: what
  // is adopted after a restart must not be given back for want of them.
  if (!status_known) return;
  exchangeImpacts(etcd, keys, hold, wants, view, report);
  exchangeIncoming(etcd, keys, hold, wants, view, report);
}

// Groups across hosts: each impacted (or about to be) member of a group
// holds one index of groups/{group}/impact/ on the slot's lease, taken in a
// transaction that creates it only if absent; given back once the member is
// neither impacted nor waiting for it. Without a slot nothing is taken.
void FleetHolds::exchangeImpacts(fl::EtcdClient& etcd, const fl::FleetKeys& keys,
                                 const std::optional<fl::SlotHold>& hold, const Wants& wants,
                                 fl::FleetView& view, Held& report) {
  // Ours in etcd: adopted after a restart while the slot's lease lived, or
  // given back when no member needs it any more.
  std::vector<fl::ImpactHold> stale;
  for (const auto& [group, held] : view.impacts) {
    for (const auto& [index, impact] : held) {
      if (impact.host != host_ || !hold || impact.lease != hold->lease) continue;
      if (!wants.impacts.contains(impact.uuid)) {
        stale.push_back(impact);
      } else if (!worker_impacts_.contains(impact.uuid)) {
        worker_impacts_[impact.uuid] = impact;
      }
    }
  }
  for (auto it = worker_impacts_.begin(); it != worker_impacts_.end();) {
    if (wants.impacts.contains(it->first)) {
      ++it;
      continue;
    }
    stale.push_back(it->second);
    it = worker_impacts_.erase(it);
  }
  for (const fl::ImpactHold& impact : stale) {
    fl::releaseImpact(etcd, keys, impact);
    view.impacts[impact.group].erase(impact.index);
    spdlog::info("fleet: impact {} of group '{}' given back ({} recovered)", impact.index,
                 impact.group, impact.name);
  }
  if (!hold) return;
  for (const auto& [uuid, want] : wants.impacts) {
    if (worker_impacts_.contains(uuid)) continue;
    const std::optional<unsigned> index = fl::freeImpactIndex(view, want.group, want.limit);
    if (!index) {
      report.impact_why_not[want.group] = fl::impactsHeldText(view, want.group, want.limit);
      continue;
    }
    const fl::ImpactHold impact{want.group, *index, host_, uuid, want.name, hold->lease};
    if (fl::takeImpact(etcd, keys, impact, hold->lease)) {
      spdlog::info("fleet: impact {} of group '{}' taken for {}", *index, want.group, want.name);
      worker_impacts_[uuid] = impact;
      view.impacts[want.group][*index] = impact;
    } else {
      report.impact_why_not[want.group] = "another host took the free impact of group '" +
                                          want.group + "' first";
    }
  }
}

// Peers as destinations: each migration of this host's to a peer holds a
// claim incoming/{peer}/{host}/{uuid} on the slot's lease, taken in the
// peer's guarded transaction before it starts (fl::claimIncoming), so the
// peer's limit holds across its sources; given back when it is no longer
// wanted (the migration ended, or went elsewhere). A refused claim waits in
// the peer's queue (incoming_queue/{peer}/{host}/{uuid}, same lease) until
// it is claimed or no longer wanted. Without a slot nothing is claimed.
void FleetHolds::exchangeIncoming(fl::EtcdClient& etcd, const fl::FleetKeys& keys,
                                  const std::optional<fl::SlotHold>& hold, const Wants& wants,
                                  fl::FleetView& view, Held& report) {
  auto wanted = [&](const fl::IncomingMigration& claim) {
    const auto want = wants.incoming.find(claim.uuid);
    return want != wants.incoming.end() && want->second.destination == claim.destination;
  };
  std::vector<fl::IncomingMigration> stale;
  // Ours in etcd: adopted after a restart while the slot's lease lived, or
  // left by the previous process and given back.
  for (const fl::IncomingMigration& claim : view.incoming) {
    if (claim.source != host_ || worker_incoming_.contains(claim.uuid)) continue;
    if (wanted(claim) && hold && claim.lease == hold->lease) {
      worker_incoming_[claim.uuid] = claim;
    } else {
      stale.push_back(claim);
    }
  }
  for (auto it = worker_incoming_.begin(); it != worker_incoming_.end();) {
    if (wanted(it->second)) {
      ++it;
      continue;
    }
    stale.push_back(it->second);
    it = worker_incoming_.erase(it);
  }
  for (const fl::IncomingMigration& claim : stale) {
    fl::releaseIncoming(etcd, keys, claim);
    std::erase(view.incoming, claim);
  }
  leaveQueuesNotWanted(etcd, keys, hold, wants, view);
  if (!hold) return;
  for (const auto& [uuid, want] : wants.incoming) {
    if (worker_incoming_.contains(uuid)) continue;
    const fl::IncomingClaim claim{want.destination, host_, uuid, want.name, want.running};
    fl::IncomingClaimOutcome outcome = fl::claimIncoming(etcd, keys, claim, hold->lease);
    // What was read of the peer is newer than the view: the next choice
    // sees it full.
    std::erase_if(view.incoming, [&](const fl::IncomingMigration& m) {
      return m.destination == want.destination;
    });
    view.incoming.insert(view.incoming.end(), outcome.claims.begin(), outcome.claims.end());
    if (outcome.claimed) {
      spdlog::info("fleet: incoming migration of peer {} claimed for {}", want.destination,
                   want.name);
      worker_incoming_[uuid] =
          fl::IncomingMigration{want.destination, host_, uuid, want.name, hold->lease};
      worker_queued_.erase(uuid);  // the claim's transaction took it out of the queue
    } else {
      report.incoming_why_not[uuid] = outcome.why_not;
      if (outcome.queued && !worker_queued_.contains(uuid)) {
        spdlog::debug("fleet: {} waits in peer {}'s queue: {}", want.name, want.destination,
                      outcome.why_not);
        worker_queued_[uuid] =
            fl::QueuedMigration{want.destination, host_, uuid, want.name, hold->lease, 0};
      }
    }
  }
}

// Ours in a peer's queue that no longer wait for that peer (the domain went
// elsewhere or another way, or a previous process left them) leave it: a
// place held by nobody would keep the others waiting until the lease ends.
void FleetHolds::leaveQueuesNotWanted(fl::EtcdClient& etcd, const fl::FleetKeys& keys,
                                      const std::optional<fl::SlotHold>& hold,
                                      const Wants& wants, const fl::FleetView& view) {
  auto waits = [&](const fl::QueuedMigration& queued) {
    const auto want = wants.incoming.find(queued.uuid);
    return want != wants.incoming.end() && want->second.destination == queued.destination &&
           !worker_incoming_.contains(queued.uuid);
  };
  std::vector<fl::QueuedMigration> stale;
  for (const fl::QueuedMigration& queued : view.queued) {
    if (queued.source != host_ || worker_queued_.contains(queued.uuid)) continue;
    if (waits(queued) && hold && queued.lease == hold->lease) {
      worker_queued_[queued.uuid] = queued;
    } else {
      stale.push_back(queued);
    }
  }
  for (auto it = worker_queued_.begin(); it != worker_queued_.end();) {
    if (waits(it->second)) {
      ++it;
      continue;
    }
    stale.push_back(it->second);
    it = worker_queued_.erase(it);
  }
  for (const fl::QueuedMigration& queued : stale) fl::leaveIncomingQueue(etcd, keys, queued);
}

void FleetHolds::dropAll() {
  worker_impacts_.clear();
  worker_incoming_.clear();
  worker_queued_.clear();
}

void FleetHolds::addMoveTo(const fl::FleetKeys& keys, std::int64_t lease,
                           std::vector<fl::Compare>& compares,
                           std::vector<fl::Operation>& puts) const {
  // The group impacts of members that stay down move with the slot: the
  // reboot does not free them either; nor the claims of migrations.
  for (const auto& [uuid, impact] : worker_impacts_) {
    const std::string key = keys.groupImpact(impact.group, impact.index);
    compares.push_back(fl::Compare::valueIs(key, fl::encodeImpact(impact)));
    puts.push_back(fl::Put{key, fl::encodeImpact(impact), lease});
  }
  for (const auto& [uuid, claim] : worker_incoming_)
    puts.push_back(fl::Put{keys.incoming(claim.destination, host_, uuid), claim.name, lease});
  // A put keeps an existing key's create revision: a queued migration keeps
  // its place.
  for (const auto& [uuid, queued] : worker_queued_) {
    puts.push_back(
        fl::Put{keys.incomingQueue(queued.destination, host_, uuid), queued.name, lease});
  }
}

void FleetHolds::movedTo(std::int64_t lease) {
  for (auto& [uuid, impact] : worker_impacts_) impact.lease = lease;
  for (auto& [uuid, claim] : worker_incoming_) claim.lease = lease;
  for (auto& [uuid, queued] : worker_queued_) queued.lease = lease;
}

FleetHolds::Held FleetHolds::held() const {
  Held held;
  held.impacts = worker_impacts_;
  held.incoming = worker_incoming_;
  return held;
}

}  // namespace hostmaint::service
