// The loop's half of FleetHolds (agent/src/service/fleet_holds.cpp): what the
// engine is answered about group impacts and peer claims from what the
// worker last reported, what the worker is asked to hold, and the blockers.
// The worker's half talks to etcd: test_fleet.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hostmaint/agent/service/fleet_holds.hpp"

namespace hostmaint::service {
namespace {

namespace fl = agent::fleet;
using testing::ElementsAre;

agent::DomainStatus domain(const std::string& uuid, agent::DomainStage stage) {
  agent::DomainStatus d;
  d.uuid = uuid;
  d.name = "vm-" + uuid;
  d.stage = stage;
  return d;
}

std::optional<std::string> peerOf(const std::string& uri) {
  if (uri == "qemu+tls://h3/system") return "h3";
  return std::nullopt;
}

TEST(FleetHolds, AMigrationToAPeerWaitsForItsClaimAndGoesOnceHeld) {
  FleetHolds holds("h1");
  const agent::PeerMigration migration{"u1", "vm-u1", "qemu+tls://h3/system"};
  FleetHolds::Answer answer = holds.mayMigrate(migration, "h3", false);
  EXPECT_EQ(answer.why_not, "the fleet slot, before a migration to peer h3 is claimed");
  EXPECT_TRUE(answer.asked_anew);
  answer = holds.mayMigrate(migration, "h3", true);
  EXPECT_EQ(answer.why_not, "an incoming migration slot on peer h3 (being claimed)");
  EXPECT_FALSE(answer.asked_anew) << "the same question: the wants are unchanged";
  const FleetHolds::Wants wants = holds.wants(nullptr, peerOf);
  ASSERT_EQ(wants.incoming.size(), 1u);
  EXPECT_EQ(wants.incoming.at("u1"), (FleetHolds::IncomingWant{"h3", "vm-u1", false}));

  // Refused: said as the worker said it, and a `peer` blocker.
  FleetHolds::Held refused;
  refused.incoming_why_not["u1"] = "peer h3 has 1 of max 1 incoming migrations (h2: vm-x)";
  EXPECT_TRUE(holds.take(refused));
  EXPECT_FALSE(holds.take(refused)) << "nothing changed";
  EXPECT_EQ(holds.mayMigrate(migration, "h3", true).why_not,
            "peer h3 has 1 of max 1 incoming migrations (h2: vm-x)");
  agent::HostStatus status;
  status.domains = {domain("u1", agent::DomainStage::waiting)};
  holds.decorate(status, true);
  ASSERT_EQ(status.blockers.size(), 1u);
  EXPECT_EQ(status.blockers[0].subject, "peer h3");
  EXPECT_EQ(status.blockers[0].reason, "peer h3 has 1 of max 1 incoming migrations (h2: vm-x)");
  // The engine chose another peer: the refusal of the first is not its answer.
  const agent::PeerMigration elsewhere{"u1", "vm-u1", "qemu+tls://h4/system"};
  answer = holds.mayMigrate(elsewhere, "h4", true);
  EXPECT_TRUE(answer.asked_anew);
  EXPECT_EQ(answer.why_not, "an incoming migration slot on peer h4 (being claimed)");

  // Claimed on h4: yes, with a valid slot only.
  FleetHolds::Held claimed;
  claimed.incoming["u1"] = fl::IncomingMigration{"h4", "h1", "u1", "vm-u1", 7};
  EXPECT_TRUE(holds.take(claimed));
  EXPECT_EQ(holds.mayMigrate(elsewhere, "h4", true).why_not, std::nullopt);
  EXPECT_NE(holds.mayMigrate(elsewhere, "h4", false).why_not, std::nullopt);
}

TEST(FleetHolds, RunningMigrationsAndImpactedMembersAreHeldWithoutBeingAsked) {
  FleetHolds holds("h1");
  agent::HostStatus status;
  status.domains = {domain("u1", agent::DomainStage::acting),
                    domain("u2", agent::DomainStage::acting),
                    domain("u3", agent::DomainStage::done)};
  status.domains[0].destination = "qemu+tls://h3/system";
  status.domains[1].destination = "qemu+tls://elsewhere/system";  // not a peer's
  status.domains[2].group = "db";
  status.domains[2].group_impacted = true;
  status.domains[2].group_max_impacted = 2;
  const FleetHolds::Wants wants = holds.wants(&status, peerOf);
  ASSERT_EQ(wants.incoming.size(), 1u);
  EXPECT_EQ(wants.incoming.at("u1"), (FleetHolds::IncomingWant{"h3", "vm-u1", true}));
  ASSERT_EQ(wants.impacts.size(), 1u);
  EXPECT_EQ(wants.impacts.at("u3"), (FleetHolds::ImpactWant{"db", "vm-u3", 2}));
  // Impacted without an impact (lost with an expired lease): a `group` blocker.
  holds.decorate(status, true);
  ASSERT_EQ(status.blockers.size(), 1u);
  EXPECT_EQ(status.blockers[0].subject, "group db");
  EXPECT_EQ(status.blockers[0].reason, "taking an impact across the fleet");
}

TEST(FleetHolds, RequestsOfDomainsThatNoLongerWaitAreForgotten) {
  FleetHolds holds("h1");
  holds.mayImpact(agent::GroupMemberAction{"db", "u1", "vm-u1", 1}, true);
  holds.mayMigrate(agent::PeerMigration{"u2", "vm-u2", "qemu+tls://h3/system"}, "h3", true);
  agent::HostStatus status;
  status.domains = {domain("u1", agent::DomainStage::waiting),
                    domain("u2", agent::DomainStage::waiting)};
  holds.forgetRequestsNotWaiting(status);
  EXPECT_EQ(holds.wants(nullptr, peerOf).impacts.size(), 1u);
  EXPECT_EQ(holds.wants(nullptr, peerOf).incoming.size(), 1u);
  status.domains = {domain("u1", agent::DomainStage::done),
                    domain("u2", agent::DomainStage::failed)};
  holds.forgetRequestsNotWaiting(status);
  EXPECT_TRUE(holds.wants(nullptr, peerOf).impacts.empty());
  EXPECT_TRUE(holds.wants(nullptr, peerOf).incoming.empty());
}

TEST(FleetHolds, AnImpactHeldIsShownAndAnswersYes) {
  FleetHolds holds("h1");
  const agent::GroupMemberAction member{"db", "u1", "vm-u1", 1};
  EXPECT_EQ(holds.mayImpact(member, true).why_not,
            "an impact of group 'db' across the fleet (being taken)");
  FleetHolds::Held held;
  held.impacts["u1"] = fl::ImpactHold{"db", 0, "h1", "u1", "vm-u1", 7};
  holds.take(held);
  EXPECT_EQ(holds.mayImpact(member, true).why_not, std::nullopt);
  EXPECT_THAT(holds.impactsShown(), ElementsAre(agent::FleetImpact{"db", 0, "vm-u1"}));
}

}  // namespace
}  // namespace hostmaint::service
