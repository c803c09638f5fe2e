// Acknowledgements, lead time and recovery time on the fake clock: exact
// deadlines (not a second early), acks before the window, lead time from
// the ack, recovery time between group members, the owner action.
// (Basic ack/keep cases are in engine_commands_test.cpp.)
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::CommandError;
using hostmaint::agent::DomainStage;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

class EngineAcks : public EngineTest {};

TEST_F(EngineAcks, NothingIsTouchedUntilTheAckDeadlineToTheSecond) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"},
                                        {"ack_required", "true"},
                                        {"ack_timeout", "1h"}});
  start();
  scheduleNow();
  const auto deadline = clock.now() + 1h;
  clock.set(deadline - 1s);
  engine->tick();
  EXPECT_EQ(stage("web1"), DomainStage::awaiting_ack);
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  EXPECT_EQ(engine->nextWakeup(), deadline);
  clock.set(deadline);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 1);
}

TEST_F(EngineAcks, DeadlineBeforeTheWindowStillWaitsForTheWindow) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"},
                                        {"ack_required", "true"},
                                        {"ack_timeout", "1h"},
                                        {"ack_timeout_action", "proceed"}});
  start();
  engine->schedule(window(2h));
  const auto window_start = clock.now() + 2h;
  EXPECT_TRUE(advanceToWakeup());  // the ack deadline
  EXPECT_EQ(stage("web1"), DomainStage::planned);
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  EXPECT_EQ(engine->nextWakeup(), window_start);
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineAcks, AckBeforeTheWindowDoesNotStartEarly) {
  const std::string uuid =
      add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  engine->schedule(window(1h));
  clock.advance(10min);
  engine->acknowledge("web1", AckChoice::keep);
  EXPECT_EQ(stage("web1"), DomainStage::planned);
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  clock.advance(50min - 1s);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  clock.advance(1s);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 1);
}

TEST_F(EngineAcks, LeadTimeCountsFromTheAck) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"},
                                        {"ack_required", "true"},
                                        {"lead_time", "30m"}});
  start();
  scheduleNow();
  clock.advance(10min);
  engine->acknowledge("web1", AckChoice::keep);
  const auto earliest = clock.now() + 30min;
  EXPECT_EQ(domain("web1").earliest_start, earliest);
  EXPECT_EQ(stage("web1"), DomainStage::waiting);
  EXPECT_EQ(engine->nextWakeup(), earliest);
  clock.set(earliest - 1s);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  clock.set(earliest);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineAcks, AwaitingAckDomainIsNotTouchedWhileOthersDrain) {
  const std::string waiting = add("asks", {{"ack_required", "true"}, {"ack_timeout", "1h"}});
  const std::string free = add("free");
  start();
  scheduleNow();
  hypervisor.completeAll();
  EXPECT_EQ(stage("free"), DomainStage::done);
  EXPECT_EQ(stage("asks"), DomainStage::awaiting_ack);
  EXPECT_EQ(hypervisor.requestCount(waiting), 0);
  EXPECT_FALSE(status().ready);
  EXPECT_TRUE(hasBlocker("domain asks", "acknowledgement"));
  (void)free;
}

TEST_F(EngineAcks, KeepIsRefusedWhenTheMalformedPolicysHostDefaultsCannotStay) {
  settings.default_policy.fallback_action = MaintenanceAction::owner;
  add("broken", {{"maintenance_action", "teleport"}});
  start();
  scheduleNow();
  try {
    engine->acknowledge("broken", AckChoice::keep);
    FAIL() << "keep accepted";
  } catch (const CommandError& error) {
    EXPECT_NE(std::string(error.what()).find("cannot keep 'broken' on this host"),
              std::string::npos)
        << error.what();
  }
  EXPECT_FALSE(domain("broken").ack.has_value());
}

TEST_F(EngineAcks, RecoveryTimeIsCountedFromTheEndOfEachMembersMove) {
  // Two of three members may be impacted at once; the third waits until the
  // first that finished has had its recovery time.
  settings.limits.max_parallel_migrations = 4;
  for (const char* name : {"db1", "db2", "db3"}) {
    add(name, {{"group", "db"}, {"max_impacted_members", "2"}, {"recovery_time", "2m"}});
  }
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.pending().size(), 2u);
  EXPECT_EQ(stage("db3"), DomainStage::waiting);
  hypervisor.completeNext();  // db1 done at t0
  const auto t0 = clock.now();
  clock.advance(30s);
  hypervisor.completeNext();  // db2 done at t0 + 30s
  EXPECT_EQ(stage("db3"), DomainStage::waiting);
  EXPECT_EQ(engine->nextWakeup(), t0 + 2min);
  clock.set(t0 + 2min - 1s);
  engine->tick();
  EXPECT_EQ(stage("db3"), DomainStage::waiting);
  clock.set(t0 + 2min);
  engine->tick();
  EXPECT_EQ(stage("db3"), DomainStage::acting);
}

TEST_F(EngineAcks, ZeroRecoveryTimeLetsTheNextMemberGoAtOnce) {
  add("db1", {{"group", "db"}, {"recovery_time", "0s"}});
  add("db2", {{"group", "db"}, {"recovery_time", "0s"}});
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  hypervisor.completeNext();
  EXPECT_EQ(acting(), 1);
}

TEST_F(EngineAcks, LeadTimeAndGroupAreBothHonoured) {
  add("db1", {{"group", "db"}, {"recovery_time", "10m"}, {"maintenance_action", "live-migrate"}});
  add("db2", {{"group", "db"}, {"recovery_time", "10m"}, {"lead_time", "5m"}});
  start();
  scheduleNow();
  const auto t0 = clock.now();
  EXPECT_EQ(stage("db1"), DomainStage::acting);
  hypervisor.completeNext();
  // db2's lead time ends at t0+5m, but db1 recovers until t0+10m.
  clock.set(t0 + 5min);
  engine->tick();
  EXPECT_EQ(stage("db2"), DomainStage::waiting);
  EXPECT_NE(domain("db2").detail.find("group 'db'"), std::string::npos) << domain("db2").detail;
  clock.set(t0 + 10min);
  engine->tick();
  EXPECT_EQ(stage("db2"), DomainStage::acting);
}

TEST_F(EngineAcks, OwnerStoppingTheDomainCountsAsLeaving) {
  const std::string uuid = add("db", {{"maintenance_action", "owner"}});
  start();
  scheduleNow();
  EXPECT_EQ(stage("db"), DomainStage::acting);
  hypervisor.setStateWithEvent(uuid, hv::DomainRunState::shutoff, hv::DomainEventKind::stopped);
  EXPECT_EQ(stage("db"), DomainStage::left);
  EXPECT_EQ(domain("db").result, "stopped by its owner");
  EXPECT_TRUE(hypervisor.requests().empty());
}

TEST_F(EngineAcks, OwnerWithAckRequiredMustLeaveByTheAckDeadline) {
  const std::string moves = add("moves", {{"maintenance_action", "owner"},
                                          {"ack_required", "true"},
                                          {"ack_timeout", "3h"}});
  add("stays", {{"maintenance_action", "owner"}, {"ack_required", "true"}, {"ack_timeout", "3h"}});
  start();
  scheduleNow();
  const auto deadline = clock.now() + 3h;
  clock.advance(1h);
  hypervisor.removeDomainWithEvent(moves);
  EXPECT_EQ(stage("moves"), DomainStage::left);
  EXPECT_EQ(stage("stays"), DomainStage::awaiting_ack);
  clock.set(deadline - 1s);
  engine->tick();
  EXPECT_EQ(stage("stays"), DomainStage::awaiting_ack);
  clock.set(deadline);
  engine->tick();
  EXPECT_EQ(stage("stays"), DomainStage::blocked);
  EXPECT_TRUE(hasBlocker("domain stays", "did not move or delete it"));
  EXPECT_TRUE(hypervisor.requests().empty()) << "hostmaint never acts for the owner";
}

}  // namespace
}  // namespace hostmaint::fake
