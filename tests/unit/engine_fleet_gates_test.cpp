// What a fleet adds to the drain (agent/src/core/engine_fleet_gates.cpp):
// a grouped member acts only once the listener grants it an impact across
// the fleet, and a session with no destinations of its own migrates to the
// peers the listener offers. Without a fleet (the default listener) neither
// changes anything.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DestinationConfig;
using hostmaint::agent::DomainStage;
using hostmaint::hv::ActionKind;
using testing::HasSubstr;

namespace hostmaint::fake {
namespace {

constexpr const char* kPeer = "qemu+tls://peer-2/system";

class FleetListener final : public agent::EngineListener {
 public:
  void onStatusChanged(const agent::HostStatus&) override {}
  void onWakeupChanged(std::optional<agent::TimePoint>) override {}
  std::optional<std::string> mayImpactGroupMember(const agent::GroupMemberAction& member) override {
    asked.push_back(member);
    if (granted.contains(member.uuid)) return std::nullopt;
    return "at most 1 member of group 'db' impacted across the fleet, held by h2 (vm-db2)";
  }
  std::vector<DestinationConfig> peerDestinations() override { return peers; }
  std::optional<std::string> mayMigrateToPeer(const agent::PeerMigration& migration) override {
    migrations_asked.push_back(migration);
    if (!claims || claimed.contains(migration.uuid)) return std::nullopt;
    return "peer h3 has 1 of max 1 incoming migrations (h2: vm-x)";
  }

  bool claims = false;  // answer mayMigrateToPeer from `claimed`
  std::set<std::string> claimed;
  std::vector<agent::PeerMigration> migrations_asked;
  std::set<std::string> granted;
  std::vector<agent::GroupMemberAction> asked;
  std::vector<DestinationConfig> peers;
};

class EngineFleetGates : public ::testing::Test {
 protected:
  EngineFleetGates() {
    settings.host_name = "h1";
    settings.limits.max_parallel_actions = 4;
    settings.limits.max_parallel_migrations = 2;
  }

  void start(agent::EngineListener& listener) {
    engine = std::make_unique<agent::MaintenanceEngine>(hypervisor, clock, journal, settings,
                                                        listener);
    hypervisor.setObserver(engine.get());
    engine->recover();
  }

  std::string add(const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& policy) {
    hv::DomainInfo info = makeDomain(name, hv::DomainRunState::running);
    info.policy_xml = policyXml(policy);
    hypervisor.addDomain(info);
    return info.uuid;
  }

  void scheduleNow() {
    agent::ScheduleRequest request;
    request.window.start = clock.now();
    request.window.end = clock.now() + 2h;
    request.window.reason = "test";
    engine->schedule(request);
  }

  const agent::DomainStatus& domain(const std::string& name) const {
    for (const auto& d : engine->status().domains)
      if (d.name == name) return d;
    throw std::out_of_range("no domain " + name);
  }

  std::vector<hv::ActionRequest> requestsOf(ActionKind kind) const {
    std::vector<hv::ActionRequest> out;
    for (const auto& request : hypervisor.requests())
      if (request.kind == kind) out.push_back(request);
    return out;
  }

  FakeHypervisor hypervisor;
  FakeClock clock;
  MemoryJournal journal;
  agent::EngineSettings settings;
  std::unique_ptr<agent::MaintenanceEngine> engine;
};

TEST_F(EngineFleetGates, AGroupedMemberWaitsForItsImpactAcrossTheFleetAndActsOnceGranted) {
  FleetListener listener;
  const std::string db1 = add(
      "db1", {{"group", "db"}, {"max_impacted_members", "1"}, {"maintenance_action", "suspend"}});
  start(listener);
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());
  EXPECT_EQ(domain("db1").stage, DomainStage::waiting);
  EXPECT_THAT(domain("db1").detail, HasSubstr("held by h2 (vm-db2)"));
  EXPECT_FALSE(domain("db1").group_impacted);
  ASSERT_FALSE(listener.asked.empty());
  EXPECT_EQ(listener.asked.back().group, "db");
  EXPECT_EQ(listener.asked.back().uuid, db1);
  EXPECT_EQ(listener.asked.back().name, "db1");
  EXPECT_EQ(listener.asked.back().max_impacted_members, 1u);

  // Granted: the owner ticks, and the member is acted on, impacted.
  listener.granted.insert(db1);
  engine->tick();
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
  EXPECT_EQ(domain("db1").stage, DomainStage::acting);
  EXPECT_TRUE(domain("db1").group_impacted);
  hypervisor.completeAll();
  // Suspended, it stays impacted until it is restored.
  EXPECT_EQ(domain("db1").stage, DomainStage::done);
  EXPECT_TRUE(domain("db1").group_impacted);
}

TEST_F(EngineFleetGates, TheHostsOwnGroupLimitIsJudgedFirstAndUngroupedDomainsAreNotAsked) {
  FleetListener listener;
  const std::string db1 = add("db1", {{"group", "db"}, {"maintenance_action", "suspend"}});
  add("db2", {{"group", "db"}, {"maintenance_action", "suspend"}});
  add("web", {{"maintenance_action", "suspend"}});
  listener.granted.insert(db1);
  start(listener);
  scheduleNow();
  // web goes without asking; db1 was granted; db2 waits for db1 on this
  // host before the fleet is asked about it.
  EXPECT_EQ(domain("web").stage, DomainStage::acting);
  EXPECT_EQ(domain("db1").stage, DomainStage::acting);
  EXPECT_EQ(domain("db2").stage, DomainStage::waiting);
  EXPECT_THAT(domain("db2").detail, HasSubstr("group 'db' has 1 of max 1 members impacted"));
  for (const auto& member : listener.asked) EXPECT_EQ(member.uuid, db1);
}

TEST_F(EngineFleetGates, WithoutAFleetGroupedMembersActAsBefore) {
  RecordingListener listener;  // the defaults: yes, and no peers
  add("db1", {{"group", "db"}, {"maintenance_action", "suspend"}});
  start(listener);
  scheduleNow();
  EXPECT_EQ(domain("db1").stage, DomainStage::acting);
}

TEST_F(EngineFleetGates, ASessionWithNoDestinationsMigratesToThePeersOffered) {
  FleetListener listener;
  listener.peers = {DestinationConfig{kPeer, "tcp://10.0.0.2", 1u, {}}};
  add("vm1", {{"maintenance_action", "live-migrate"}});
  add("vm2", {{"maintenance_action", "live-migrate"}});
  start(listener);
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  // The peer's incoming limit (what it has left: 1) holds: one at a time.
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, kPeer);
  EXPECT_EQ(migrations[0].migrate_uri, "tcp://10.0.0.2");
  EXPECT_EQ(hypervisor.destinationProbes(kPeer), 1) << "probed like a configured destination";
  EXPECT_TRUE(domain("vm1").stage == DomainStage::waiting ||
              domain("vm2").stage == DomainStage::waiting);
  hypervisor.completeAll();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
}

TEST_F(EngineFleetGates, AMigrationToAPeerStartsOnlyOnceItsIncomingSlotIsClaimed) {
  FleetListener listener;
  listener.claims = true;
  listener.peers = {DestinationConfig{kPeer, "", 2u, {}}};
  const std::string vm1 =
      add("vm1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  start(listener);
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::live_migrate).empty());
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty()) << "a refused claim is waited for";
  EXPECT_EQ(domain("vm1").stage, DomainStage::waiting);
  EXPECT_EQ(domain("vm1").detail, "waiting for a destination: peer h3 has 1 of max 1 incoming "
                                  "migrations (h2: vm-x)");
  ASSERT_FALSE(listener.migrations_asked.empty());
  EXPECT_EQ(listener.migrations_asked.back().uuid, vm1);
  EXPECT_EQ(listener.migrations_asked.back().name, "vm1");
  EXPECT_EQ(listener.migrations_asked.back().destination_uri, kPeer);
  // Claimed: the owner ticks, and it starts.
  listener.claimed.insert(vm1);
  engine->tick();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, kPeer);
}

TEST_F(EngineFleetGates, APeerOfferedFullIsWaitedForAndAnotherTaken) {
  FleetListener listener;
  listener.claims = true;
  constexpr const char* kOther = "qemu+tls://peer-3/system";
  listener.peers = {DestinationConfig{kPeer, "", 0u, {}}};
  const std::string vm1 =
      add("vm1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  start(listener);
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::live_migrate).empty());
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty()) << "no fallback while it is full";
  // It asked for a claim all the same: its place in the peer's queue.
  ASSERT_FALSE(listener.migrations_asked.empty());
  EXPECT_EQ(listener.migrations_asked.back().destination_uri, kPeer);
  EXPECT_EQ(domain("vm1").detail, "waiting for a destination: peer h3 has 1 of max 1 incoming "
                                  "migrations (h2: vm-x)");
  listener.peers.push_back(DestinationConfig{kOther, "", 2u, {}});
  listener.claimed.insert(vm1);
  engine->tick();  // probes the new one
  engine->tick();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, kOther);
}

TEST_F(EngineFleetGates, OneDomainAPassQueuesForAFullPeerAndStartsOnceItsClaimPasses) {
  FleetListener listener;
  listener.claims = true;
  listener.peers = {DestinationConfig{kPeer, "", 0u, {}}};
  const std::string vm1 =
      add("vm1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  const std::string vm2 =
      add("vm2", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  start(listener);
  scheduleNow();
  std::set<std::string> asked;
  for (const auto& migration : listener.migrations_asked) asked.insert(migration.uuid);
  EXPECT_EQ(asked.size(), 1u) << "this host's one place in the peer's line";
  const std::string first = *asked.begin();
  const std::string second = first == vm1 ? vm2 : vm1;
  EXPECT_THAT(domain(first == vm1 ? "vm2" : "vm1").detail,
              HasSubstr("takes no more incoming migrations now"));
  // The slot freed and its claim passed, before the view says so: it starts.
  listener.claimed.insert(first);
  engine->tick();
  auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].uuid, first);
  EXPECT_EQ(migrations[0].destination_uri, kPeer);
  // The other is next in line.
  engine->tick();
  EXPECT_EQ(listener.migrations_asked.back().uuid, second);
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());
}

TEST_F(EngineFleetGates, ConfiguredDestinationsArePreferredToPeers) {
  FleetListener listener;
  listener.peers = {DestinationConfig{kPeer, "", {}, {}}};
  settings.migration.destinations = {DestinationConfig{"qemu+tls://host-b/system", "", {}, {}}};
  add("vm1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  start(listener);
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, "qemu+tls://host-b/system");
  EXPECT_EQ(hypervisor.destinationProbes(kPeer), 0);
  EXPECT_TRUE(listener.migrations_asked.empty()) << "no claim for a destination of its own";
}

TEST_F(EngineFleetGates, NoPeerOfferedAndNoneConfiguredFallsBack) {
  FleetListener listener;
  add("vm1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "suspend"}});
  start(listener);
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::live_migrate).empty());
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
  EXPECT_THAT(domain("vm1").result, HasSubstr("no migration destination is configured"));
}

}  // namespace
}  // namespace hostmaint::fake
