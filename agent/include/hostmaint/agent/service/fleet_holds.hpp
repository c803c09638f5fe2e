// FleetHolds: what a host of a fleet holds in etcd for its domains, besides
// its slot (docs/fleet.md), both on the slot's lease:
//   - one impact of a group across hosts per member impacted, or about to
//     be (groups/{group}/impact/{k});
//   - one claim on a peer's incoming slots per migration to that peer,
//     running or about to start (incoming/{peer}/{host}/{uuid}), and a
//     place in the peer's queue for one whose claim was refused
//     (incoming_queue/{peer}/{host}/{uuid}).
// Part of FleetLink, in its two halves, each used by one thread only:
//   - the loop answers the engine from what was last taken (mayImpact,
//     mayMigrate), says what the status needs (wants), takes in what the
//     worker reports (take) and words what waits (decorate);
//   - the worker, in each round, gives back what is no longer wanted and
//     takes what is (exchange), drops everything with a lost slot, and moves
//     it with the slot to another lease.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/fleet/etcd_client.hpp"
#include "hostmaint/agent/fleet/fleet.hpp"
#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

class FleetHolds {
 public:
  // A member of a group that needs an impact across the fleet: it is
  // impacted now, or waits for one to start its action.
  struct ImpactWant {
    std::string group;
    std::string name;
    unsigned limit = 1;
    bool operator==(const ImpactWant&) const = default;
  };
  // A migration of this host's to a peer: a claim on one of the peer's
  // incoming slots, taken before it starts (the engine asked) and kept
  // while it runs.
  struct IncomingWant {
    std::string destination;  // the peer's host name
    std::string name;
    bool running = false;  // claimed whatever the peer's count: it runs
    bool operator==(const IncomingWant&) const = default;
  };
  // What the loop asks the worker to hold, by the domain's uuid.
  struct Wants {
    std::map<std::string, ImpactWant> impacts;
    std::map<std::string, IncomingWant> incoming;
    bool operator==(const Wants&) const = default;
  };
  // What the worker holds after a round, and why it could not take more.
  struct Held {
    std::map<std::string, agent::fleet::ImpactHold> impacts;  // by the member's uuid
    std::map<std::string, std::string> impact_why_not;        // by group
    std::map<std::string, agent::fleet::IncomingMigration> incoming;  // by uuid
    std::map<std::string, std::string> incoming_why_not;  // refused claims, by uuid
    bool operator==(const Held&) const = default;
  };
  // An answer to the engine, and whether the question was new (the wants
  // changed: the caller pushes them to the worker).
  struct Answer {
    std::optional<std::string> why_not;  // nullopt: yes
    bool asked_anew = false;
  };
  using PeerOf = std::function<std::optional<std::string>(const std::string& uri)>;

  explicit FleetHolds(std::string host) : host_(std::move(host)) {}

  // Loop only.
  Answer mayImpact(const agent::GroupMemberAction& member, bool slot_valid);
  // `peer`: the host publishing the migration's destination URI.
  Answer mayMigrate(const agent::PeerMigration& migration, const std::string& peer,
                    bool slot_valid);
  // A request is for a domain that waits to start its action; acting, it
  // is held as such (impacted, or migrating), or it went another way.
  void forgetRequestsNotWaiting(const agent::HostStatus& status);
  Wants wants(const agent::HostStatus* status, const PeerOf& peer_of) const;
  // The worker's report; true when anything shown or answered changed.
  bool take(Held held);
  std::vector<agent::FleetImpact> impactsShown() const;
  // A `group {name}` blocker per group whose members wait for an impact (or
  // are impacted without one), a `peer {host}` one per peer that refused a
  // claim a migration waits for.
  void decorate(agent::HostStatus& status, bool slot_valid) const;

  // Worker only. `status_known`: a status was offered (until then the
  // domains' needs are unknown, and what an earlier process left is kept).
  void exchange(agent::fleet::EtcdClient& etcd, const agent::fleet::FleetKeys& keys,
                const std::optional<agent::fleet::SlotHold>& hold, const Wants& wants,
                bool status_known, agent::fleet::FleetView& view, Held& report);
  // The slot's lease is gone (expired or revoked): so is everything on it.
  void dropAll();
  // Moving the slot to `lease`: the compares and puts that move everything
  // held with it in the same transaction, and, once it passed, the move.
  void addMoveTo(const agent::fleet::FleetKeys& keys, std::int64_t lease,
                 std::vector<agent::fleet::Compare>& compares,
                 std::vector<agent::fleet::Operation>& puts) const;
  void movedTo(std::int64_t lease);
  Held held() const;

 private:
  void exchangeImpacts(agent::fleet::EtcdClient& etcd, const agent::fleet::FleetKeys& keys,
                       const std::optional<agent::fleet::SlotHold>& hold, const Wants& wants,
                       agent::fleet::FleetView& view, Held& report);
  void exchangeIncoming(agent::fleet::EtcdClient& etcd, const agent::fleet::FleetKeys& keys,
                        const std::optional<agent::fleet::SlotHold>& hold, const Wants& wants,
                        agent::fleet::FleetView& view, Held& report);
  void leaveQueuesNotWanted(agent::fleet::EtcdClient& etcd, const agent::fleet::FleetKeys& keys,
                            const std::optional<agent::fleet::SlotHold>& hold,
                            const Wants& wants, const agent::fleet::FleetView& view);

  const std::string host_;

  // Loop only: the domains whose start waits (the engine asked), and what
  // the worker last reported.
  std::map<std::string, agent::GroupMemberAction> impact_requests_;  // by uuid
  std::map<std::string, IncomingWant> incoming_requests_;            // by uuid
  Held shown_;

  // Worker only: what is held in etcd now.
  std::map<std::string, agent::fleet::ImpactHold> worker_impacts_;  // by the member's uuid
  std::map<std::string, agent::fleet::IncomingMigration> worker_incoming_;  // by uuid
  std::map<std::string, agent::fleet::QueuedMigration> worker_queued_;      // by uuid
};

}  // namespace hostmaint::service
