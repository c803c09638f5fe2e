// Definitions failed or interrupted migrations may leave on their destination
// (docs/engine.md, "Leftover definitions"): each such migration is followed by
// a check, the domain's next step waits for its first answer, a check that
// cannot be made is a blocker retried with a growing delay, and the drain does
// not end (no readiness) while one is owed. Journaled across restarts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;
using hostmaint::hv::DefinitionOutcome;
using hostmaint::hv::FailureKind;
using testing::HasSubstr;

namespace hostmaint::fake {
namespace {

constexpr const char* kB = "qemu+tls://host-b/system";

class EngineLeftovers : public EngineTest {
 protected:
  EngineLeftovers() { settings.migration.destination_retries = 0; }

  std::size_t settles() const { return hypervisor.settleRequests().size(); }
};

TEST_F(EngineLeftovers, AFailedMigrationIsCheckedOnItsDestinationBeforeTheFallbackStarts) {
  const std::string uuid = add("db");
  start();
  hypervisor.setSettlesDeferred(true);
  scheduleNow();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  ASSERT_EQ(settles(), 1u);
  EXPECT_EQ(hypervisor.settleRequests()[0], std::make_pair(uuid, std::string(kB)));
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 0)
      << "the fallback waits for the first answer";
  EXPECT_THAT(domain("db").detail, HasSubstr("failed migration left"));
  EXPECT_EQ(status().leftovers.size(), 1u);

  hypervisor.answerSettles();
  EXPECT_TRUE(status().leftovers.empty()) << "nothing there: settled";
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 1);
  hypervisor.completeNext();
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineLeftovers, AMigrationThatSucceedsNeedsNoCheck) {
  add("db");
  start();
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(settles(), 0u);
}

TEST_F(EngineLeftovers, AnUnreachableDestinationIsABlockerRetriedWithAGrowingDelayAndHoldsReadiness) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  hypervisor.scriptSettle(uuid, DefinitionOutcome::failed, "cannot connect to " + std::string(kB));
  hypervisor.scriptSettle(uuid, DefinitionOutcome::failed, "cannot connect to " + std::string(kB));
  hypervisor.scriptSettle(uuid, DefinitionOutcome::removed_there,
                          "its shut-off definition on " + std::string(kB) + " was removed");
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 1)
      << "a check that could not be made does not hold the domain's next step";
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_TRUE(hasBlocker("leftover db", "cannot connect to"));
  EXPECT_FALSE(status().ready) << "the drain has not ended while it may be defined on two hosts";
  EXPECT_NE(status().phase, HostPhase::empty);
  ASSERT_EQ(status().leftovers.size(), 1u);
  EXPECT_EQ(status().leftovers[0].attempts, 1u);
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 5s);

  ASSERT_TRUE(advanceToWakeup());
  EXPECT_EQ(settles(), 2u);
  EXPECT_EQ(status().leftovers[0].attempts, 2u);
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 10s) << "the delay doubles";

  ASSERT_TRUE(advanceToWakeup());
  EXPECT_EQ(settles(), 3u);
  EXPECT_TRUE(status().leftovers.empty());
  EXPECT_FALSE(hasBlocker("leftover db"));
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineLeftovers, AMigrationReportedFailedThatRunsThereAfterAllIsDone) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  hypervisor.scriptSettle(uuid, DefinitionOutcome::runs_there, "running on " + std::string(kB));
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed");
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_THAT(domain("db").result, HasSubstr("migrated to " + std::string(kB)));
  EXPECT_THAT(domain("db").result, HasSubstr("found running there"));
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 0) << "no fallback";
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineLeftovers, ARunningCopyOnBothHostsIsNeverTouchedAndStaysABlocker) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  for (int i = 0; i < 3; ++i)
    hypervisor.scriptSettle(uuid, DefinitionOutcome::runs_on_both,
                            "running on " + std::string(kB) + " and on this host");
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed");
  hypervisor.completeNext();
  EXPECT_TRUE(hasBlocker("leftover db", "running on " + std::string(kB) + " and on this host"));
  ASSERT_TRUE(advanceToWakeup());
  EXPECT_TRUE(hasBlocker("leftover db"));
}

TEST_F(EngineLeftovers, NoCheckRunsWhileTheDomainMigratesToThatDestinationAgain) {
  settings.migration.destination_retries = 1;
  settings.migration.destination_retry_delay = 1s;
  const std::string uuid = add("db");
  start();
  scheduleNow();
  hypervisor.scriptSettle(uuid, DefinitionOutcome::failed, "cannot connect");
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  ASSERT_EQ(settles(), 1u);
  // The retry (1 s) starts before the check's next attempt (5 s).
  ASSERT_TRUE(advanceToWakeup());
  ASSERT_EQ(hypervisor.requestCount(uuid, ActionKind::live_migrate), 2);
  clock.advance(10s);
  engine->tick();
  EXPECT_EQ(settles(), 1u) << "an incoming migration is never judged a leftover";
  hypervisor.completeNext();  // the retry succeeds
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(settles(), 2u) << "then the check runs: it finds the domain running there";
  EXPECT_TRUE(status().leftovers.empty());
}

TEST_F(EngineLeftovers, AnOwedCheckSurvivesARestart) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  hypervisor.scriptSettle(uuid, DefinitionOutcome::failed, "cannot connect");
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed");
  hypervisor.completeNext();
  hypervisor.completeNext();  // the fallback
  ASSERT_EQ(status().leftovers.size(), 1u);
  crash();
  clock.advance(60s);
  start();
  EXPECT_EQ(settles(), 2u) << "checked again after the restart";
  EXPECT_TRUE(status().leftovers.empty());
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineLeftovers, AMigrationInterruptedByARestartIsCheckedBeforeItIsRedone) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  ASSERT_TRUE(hypervisor.isPending(uuid));
  crash();
  hypervisor.abandon(uuid);  // it never took effect: still running here
  hypervisor.setSettlesDeferred(true);
  start();
  ASSERT_EQ(settles(), 1u);
  EXPECT_EQ(hypervisor.settleRequests()[0].second, kB);
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::live_migrate), 1) << "not redone yet";
  hypervisor.answerSettles();
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::live_migrate), 2);
}

TEST_F(EngineLeftovers, AColdMigrationInterruptedWithTheDomainShutOffHereIsRedone) {
  const std::string uuid = add("db", {{"maintenance_action", "cold-migrate"}});
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.requestCount(uuid, ActionKind::cold_migrate), 1);
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).state = hv::DomainRunState::shutoff;  // stopped before the crash
  start();
  EXPECT_EQ(settles(), 1u);
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::cold_migrate), 2)
      << "shut off here and not there: not left down, moved again";
}

TEST_F(EngineLeftovers, AColdMigrationInterruptedAfterItStartedThereEndsWithItsDefinitionHereRemoved) {
  const std::string uuid = add("db", {{"maintenance_action", "cold-migrate"}});
  start();
  scheduleNow();
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).state = hv::DomainRunState::shutoff;
  hypervisor.scriptSettle(uuid, DefinitionOutcome::runs_there,
                          "running on " + std::string(kB) +
                              "; its shut-off definition here was removed");
  start();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_THAT(domain("db").result, HasSubstr("migrated to " + std::string(kB)));
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::cold_migrate), 1) << "not redone";
  EXPECT_FALSE(hypervisor.domain(uuid)) << "defined in one place: there";
  EXPECT_TRUE(status().ready);
}

}  // namespace
}  // namespace hostmaint::fake
