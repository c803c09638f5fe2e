// Draining: plan, window start, limits, groups, priorities, fallbacks,
// malformed policy, evidence and readiness.
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

class EngineDrain : public EngineTest {};

TEST_F(EngineDrain, PlanIsPublishedAtScheduleAndNothingIsTouchedBeforeTheWindow) {
  add("web1");
  add("db1", {{"maintenance_action", "suspend"}});
  add("batch", {{"maintenance_action", "shutdown"}});
  add("off", {}, hv::DomainRunState::shutoff);
  start();
  const int changes_before = listener.changes;
  engine->schedule(window(1h));

  EXPECT_EQ(status().phase, HostPhase::scheduled);
  EXPECT_EQ(listener.changes, changes_before + 1) << "one publication per command";
  EXPECT_EQ(domain("web1").action, MaintenanceAction::live_migrate);
  EXPECT_EQ(domain("db1").action, MaintenanceAction::suspend);
  EXPECT_EQ(domain("batch").action, MaintenanceAction::shutdown);
  EXPECT_EQ(stage("web1"), DomainStage::planned);
  EXPECT_EQ(domain("web1").earliest_start, clock.now() + 1h);
  EXPECT_EQ(stage("off"), DomainStage::done);
  EXPECT_EQ(domain("off").result, "not running; nothing to do");
  EXPECT_TRUE(hypervisor.requests().empty());
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 1h);

  clock.advance(59min);
  engine->tick();
  EXPECT_TRUE(hypervisor.requests().empty());
  EXPECT_EQ(status().phase, HostPhase::scheduled);

  clock.advance(1min);
  engine->tick();
  EXPECT_EQ(status().phase, HostPhase::draining);
  EXPECT_EQ(hypervisor.requests().size(), 3u);
}

TEST_F(EngineDrain, NeverMoreThanMaxParallelActions) {
  settings.limits.max_parallel_actions = 2;
  for (int i = 0; i < 6; ++i) add("vm" + std::to_string(i), {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  std::size_t max_pending = 0;
  while (!hypervisor.pending().empty()) {
    max_pending = std::max(max_pending, hypervisor.pending().size());
    EXPECT_LE(acting(), 2);
    hypervisor.completeNext();
  }
  EXPECT_EQ(max_pending, 2u);
  EXPECT_EQ(hypervisor.requests().size(), 6u);
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDrain, MigrationsHaveTheirOwnLimitAndSayWhyTheyWait) {
  settings.limits.max_parallel_actions = 10;
  settings.limits.max_parallel_migrations = 1;
  add("a");
  add("b");
  add("c", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  // One migration and the suspend run; the second migration waits.
  EXPECT_EQ(hypervisor.pending().size(), 2u);
  EXPECT_EQ(stage("b"), DomainStage::waiting);
  EXPECT_EQ(domain("b").detail, "waiting: 1 of max 1 migrations running");
  hypervisor.complete(hypervisor.uuidOf("a"));
  EXPECT_EQ(stage("a"), DomainStage::done);
  EXPECT_EQ(domain("a").result, "migrated to qemu+tls://host-b/system");
  EXPECT_TRUE(hypervisor.isPending(hypervisor.uuidOf("b")));
}

TEST_F(EngineDrain, GroupMembersWaitForRecoveryTimeAfterAMigration) {
  add("db1", {{"group", "db"}, {"recovery_time", "60s"}});
  add("db2", {{"group", "db"}, {"recovery_time", "60s"}});
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  const std::string first = hypervisor.pending().front().request.name;
  const std::string second = first == "db1" ? "db2" : "db1";
  EXPECT_EQ(domain(second).detail, "waiting: group 'db' has 1 of max 1 members impacted");

  hypervisor.completeNext();
  EXPECT_EQ(stage(second), DomainStage::waiting) << "recovery time not over";
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 60s);
  clock.advance(59s);
  engine->tick();
  EXPECT_EQ(stage(second), DomainStage::waiting);
  clock.advance(1s);
  engine->tick();
  EXPECT_EQ(stage(second), DomainStage::acting);
}

TEST_F(EngineDrain, SuspendedGroupMembersStayImpactedAndTheWaitIsAVisibleBlocker) {
  add("db1", {{"group", "db"}, {"maintenance_action", "suspend"}});
  add("db2", {{"group", "db"}, {"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeAll();
  clock.advance(1h);
  engine->tick();
  EXPECT_EQ(hypervisor.requests().size(), 1u);
  const std::string waiting = hypervisor.requests().front().name == "db1" ? "db2" : "db1";
  EXPECT_EQ(stage(waiting), DomainStage::waiting);
  EXPECT_TRUE(hasBlocker("domain " + waiting, "group 'db' has 1 of max 1 members impacted"));
  EXPECT_FALSE(status().ready);
}

TEST_F(EngineDrain, HigherPriorityDrainsFirstThenByName) {
  settings.limits.max_parallel_actions = 1;
  add("b-low", {{"maintenance_action", "suspend"}, {"priority", "1"}});
  add("a-low", {{"maintenance_action", "suspend"}, {"priority", "1"}});
  add("z-high", {{"maintenance_action", "suspend"}, {"priority", "10"}});
  start();
  scheduleNow();
  hypervisor.completeAll();
  ASSERT_EQ(hypervisor.requests().size(), 3u);
  EXPECT_EQ(hypervisor.requests()[0].name, "z-high");
  EXPECT_EQ(hypervisor.requests()[1].name, "a-low");
  EXPECT_EQ(hypervisor.requests()[2].name, "b-low");
}

TEST_F(EngineDrain, MigrationImpossibleFallsBackVisibly) {
  hypervisor.setCapabilities({false, false, true, "the libvirt 'test' driver cannot migrate"});
  add("web1");
  start();
  scheduleNow();
  EXPECT_EQ(domain("web1").action, MaintenanceAction::suspend);
  EXPECT_TRUE(domain("web1").fallback_used);
  ASSERT_EQ(hypervisor.requests().size(), 1u);
  EXPECT_EQ(hypervisor.requests()[0].kind, ActionKind::managed_save);
  hypervisor.completeAll();
  EXPECT_EQ(domain("web1").result, "suspended");
  EXPECT_EQ(domain("web1").detail,
            "live-migrate not possible: the libvirt 'test' driver cannot migrate; "
            "falling back to suspend");
}

TEST_F(EngineDrain, NoDestinationMeansNoMigration) {
  settings.migration.destinations.clear();
  add("web1");
  start();
  scheduleNow();
  EXPECT_TRUE(domain("web1").fallback_used);
  EXPECT_NE(domain("web1").result.find("no migration destination"), std::string::npos);
}

TEST_F(EngineDrain, FailedActionTriesFallbackThenFailsAsBlocker) {
  const std::string uuid = add("web1");
  start();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "cannot migrate 'web1': no route");
  hypervisor.failNext(uuid, ActionKind::managed_save, "cannot save 'web1': disk full");
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(domain("web1").action, MaintenanceAction::suspend);
  EXPECT_TRUE(domain("web1").fallback_used);
  EXPECT_EQ(domain("web1").result,
            "live-migrate failed: cannot migrate 'web1': no route; fell back to suspend");
  ASSERT_TRUE(hypervisor.isPending(uuid));
  hypervisor.completeNext();
  EXPECT_EQ(stage("web1"), DomainStage::failed);
  EXPECT_TRUE(hasBlocker("domain web1", "cannot save 'web1': disk full"));
  EXPECT_EQ(hypervisor.requestCount(uuid), 2);
  EXPECT_FALSE(status().ready);
}


// A transient domain whose migration failed is not suspended (libvirt keeps
// no managed save of it): it stays running here, failed, with the reason.
TEST_F(EngineDrain, AFailedMigrationOfATransientDomainDoesNotFallBackToSuspend) {
  const std::string uuid = add("scratch");
  hypervisor.mutableDomain(uuid).persistent = false;
  start();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "cannot migrate 'scratch': no route");
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(stage("scratch"), DomainStage::failed);
  EXPECT_TRUE(hasBlocker("domain scratch", "fallback suspend not possible: the domain is transient"));
  EXPECT_EQ(hypervisor.requestCount(uuid), 1) << "nothing but the migration was tried";
  EXPECT_EQ(hypervisor.domain(uuid)->state, hv::DomainRunState::running);
}

TEST_F(EngineDrain, MalformedPolicyBlocksOnlyThatDomain) {
  add("broken", {{"maintenance_action", "teleport"}});
  add("good", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeAll();
  EXPECT_EQ(stage("broken"), DomainStage::blocked);
  EXPECT_FALSE(domain("broken").action.has_value());
  EXPECT_NE(domain("broken").policy_error.find("teleport"), std::string::npos);
  EXPECT_EQ(domain("broken").detail.rfind("malformed hostmaint policy: ", 0), 0u);
  EXPECT_TRUE(hasBlocker("domain broken", "teleport"));
  EXPECT_EQ(stage("good"), DomainStage::done);
  EXPECT_EQ(hypervisor.requestCount(hypervisor.uuidOf("broken")), 0);
}

TEST_F(EngineDrain, ExplicitAckActsOnMalformedPolicyWithHostDefaultsVisibly) {
  add("broken", {{"maintenance_action", "teleport"}});
  start();
  scheduleNow();
  ASSERT_EQ(stage("broken"), DomainStage::blocked);
  // Default policy: live-migrate, fallback suspend; `keep` picks the suspend.
  engine->acknowledge("broken", agent::AckChoice::keep);
  hypervisor.completeAll();
  EXPECT_EQ(stage("broken"), DomainStage::done);
  EXPECT_EQ(domain("broken").action, MaintenanceAction::suspend);
  EXPECT_NE(domain("broken").policy_error.find("teleport"), std::string::npos);
  EXPECT_EQ(domain("broken").result, "suspended");
  EXPECT_NE(domain("broken").detail.find("malformed"), std::string::npos)
      << domain("broken").detail;
  EXPECT_FALSE(hasBlocker("domain broken", "teleport"));
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDrain, LeadTimeHoldsTheDomainFromScheduleTime) {
  add("web1", {{"maintenance_action", "suspend"}, {"lead_time", "30m"}});
  start();
  scheduleNow();
  EXPECT_EQ(stage("web1"), DomainStage::waiting);
  EXPECT_NE(domain("web1").detail.find("lead time"), std::string::npos);
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 30min);
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(stage("web1"), DomainStage::acting);
}

TEST_F(EngineDrain, OwnerActionIsDoneWhenTheDomainLeaves) {
  const std::string uuid = add("db", {{"maintenance_action", "owner"}, {"ack_timeout", "1h"}});
  start();
  scheduleNow();
  EXPECT_EQ(stage("db"), DomainStage::acting);
  EXPECT_NE(domain("db").detail.find("waiting for the owner to move or delete it before"),
            std::string::npos);
  EXPECT_TRUE(hypervisor.requests().empty());
  hypervisor.removeDomainWithEvent(uuid);
  EXPECT_EQ(stage("db"), DomainStage::left);
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDrain, OwnerMissingTheDeadlineBlocks) {
  add("db", {{"maintenance_action", "owner"}, {"ack_timeout", "1h"}});
  start();
  scheduleNow();
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(stage("db"), DomainStage::blocked);
  EXPECT_TRUE(hasBlocker("domain db", "did not move or delete it"));
}

TEST_F(EngineDrain, ReadyTurnsTrueInTheCallThatDeliversTheLastEvent) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  EXPECT_FALSE(status().ready);
  EXPECT_TRUE(hasBlocker("check no-active-domains"));
  hypervisor.completeNext();
  EXPECT_TRUE(status().ready);
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().blockers.empty());
}

TEST_F(EngineDrain, ReadyWaitsForEvidenceNotJustDomainStages) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  hypervisor.setExtraCheck("hugepages-free", false, "512 of 1024 huge pages in use");
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(stage("web1"), DomainStage::done);
  EXPECT_FALSE(status().ready);
  EXPECT_EQ(status().phase, HostPhase::draining);
  EXPECT_TRUE(hasBlocker("check hugepages-free", "512 of 1024"));
  hypervisor.clearExtraChecks();
  engine->tick();
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDrain, LingeringQemuProcessIsReprobedBeforeItBlocks) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.setExtraCheck("no-qemu-processes", false, "qemu pid 4242 of web1");
  hypervisor.completeNext();
  EXPECT_FALSE(status().ready);
  EXPECT_FALSE(hasBlocker("check no-qemu-processes")) << "a process takes a moment to exit";
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 100ms);
  advanceToWakeup();
  hypervisor.clearExtraChecks();
  advanceToWakeup();
  EXPECT_TRUE(status().ready);

  // A process that stays past the grace period is reported.
  hypervisor.setExtraCheck("no-qemu-processes", false, "qemu pid 4242 of web1");
  engine->tick();
  while (advanceToWakeup()) {
  }
  EXPECT_TRUE(hasBlocker("check no-qemu-processes", "4242"));
  EXPECT_FALSE(status().ready);
}

TEST_F(EngineDrain, DomainStartedWhileEmptyGoesBackToDraining) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeNext();
  ASSERT_EQ(status().phase, HostPhase::empty);
  hv::DomainInfo newcomer = makeDomain("newcomer");
  newcomer.policy_xml = policyXml({{"maintenance_action", "shutdown"}});
  hypervisor.addDomainWithEvent(newcomer);
  EXPECT_EQ(status().phase, HostPhase::draining);
  EXPECT_FALSE(status().ready);
  EXPECT_EQ(stage("newcomer"), DomainStage::acting);
  EXPECT_EQ(hypervisor.requestCount(newcomer.uuid, ActionKind::shutdown), 1);
  hypervisor.completeNext();
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDrain, SuspendedDomainStartedByHandIsDrainedAgain) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeNext();
  ASSERT_TRUE(status().ready);
  hypervisor.setStateWithEvent(uuid, hv::DomainRunState::running, hv::DomainEventKind::started);
  EXPECT_FALSE(status().ready);
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 2);
}

TEST_F(EngineDrain, GenerationBumpsOncePerEntryPoint) {
  for (int i = 0; i < 3; ++i) add("vm" + std::to_string(i), {{"maintenance_action", "suspend"}});
  start();
  const auto before = status().generation;
  scheduleNow();  // plans, enters draining and starts three actions: one change
  EXPECT_EQ(status().generation, before + 1);
  EXPECT_EQ(listener.last_generation, status().generation);
  engine->tick();  // nothing changed
  EXPECT_EQ(status().generation, before + 1);
}

TEST_F(EngineDrain, AutoCompletingHypervisorDrainsInOneCall) {
  hypervisor.setAutoComplete(true);
  for (int i = 0; i < 5; ++i) add("vm" + std::to_string(i), {{"maintenance_action", "suspend"}});
  settings.limits.max_parallel_actions = 1;
  start();
  scheduleNow();
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
  EXPECT_EQ(hypervisor.requests().size(), 5u);
}

}  // namespace
}  // namespace hostmaint::fake
