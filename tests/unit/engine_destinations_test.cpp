// Migration destinations as the engine uses them (probes, accounting of what
// was sent, destinations of the request), the outcome of interrupted
// migrations, and what is published and journaled about migrations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DestinationConfig;
using hostmaint::agent::DomainStage;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;
using hostmaint::hv::FailureKind;
using testing::HasSubstr;
using testing::Not;

namespace hostmaint::fake {
namespace {

constexpr const char* kB = "qemu+tls://host-b/system";
constexpr const char* kC = "qemu+tls://host-c/system";
constexpr const char* kD = "qemu+tls://host-d/system";
constexpr std::uint64_t kGibKib = 1024 * 1024;

class EngineDestinations : public EngineTest {
 protected:
  EngineDestinations() {
    settings.migration.destinations = {DestinationConfig{kB, "tcp://10.0.0.2", {}, {}},
                                       DestinationConfig{kC, "", {}, {}}};
    settings.migration.reserved_memory_mib = 512;
    settings.migration.destination_probe_interval = 30s;
  }

  std::string addWithMemory(const std::string& name, std::uint64_t memory_kib,
                            const std::vector<std::pair<std::string, std::string>>& policy = {}) {
    const std::string uuid = add(name, policy);
    hypervisor.mutableDomain(uuid).memory_kib = memory_kib;
    return uuid;
  }

  std::vector<hv::ActionRequest> requestsOf(ActionKind kind) const {
    std::vector<hv::ActionRequest> out;
    for (const auto& request : hypervisor.requests()) {
      if (request.kind == kind) out.push_back(request);
    }
    return out;
  }

  // Libvirt goes away and comes back, re-reading the inventory.
  void reconnect() {
    hypervisor.setConnectionState(hv::ConnectionState::disconnected, "libvirtd restarted");
    hypervisor.setConnectionState(hv::ConnectionState::connected);
    hypervisor.refreshInventory();
  }
};

TEST_F(EngineDestinations, TheChoiceWaitsForTheFirstProbesAndSaysSo) {
  hypervisor.setProbesDeferred(true);
  addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::live_migrate).empty());
  EXPECT_EQ(stage("db"), DomainStage::waiting);
  EXPECT_THAT(domain("db").detail, HasSubstr("waiting for a destination"));
  EXPECT_THAT(domain("db").detail, HasSubstr(std::string(kB) + ": being probed"));
  EXPECT_EQ(hypervisor.probesWaiting(), 2u) << "each candidate probed once, not per domain";

  hypervisor.answerProbes();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  EXPECT_EQ(stage("db"), DomainStage::acting);
}

TEST_F(EngineDestinations, AProbeOlderThanTheIntervalIsRepeated) {
  settings.limits.max_parallel_migrations = 1;
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  EXPECT_EQ(hypervisor.destinationProbes(kB), 1);
  hypervisor.completeNext();  // within the interval: the report is reused
  EXPECT_EQ(hypervisor.destinationProbes(kB), 1);
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);

  addWithMemory("c", kGibKib);
  clock.advance(31s);
  hypervisor.refreshInventory();  // c appears; its choice needs fresh reports
  hypervisor.completeNext();
  EXPECT_EQ(hypervisor.destinationProbes(kB), 2);
  EXPECT_EQ(hypervisor.destinationProbes(kC), 2);
}

TEST_F(EngineDestinations, AMigrationThatArrivedAfterTheProbeStillCountsAgainstTheRoom) {
  settings.limits.max_parallel_migrations = 1;
  hypervisor.setDestinationFreeMib(kB, 2000);  // 1488 MiB after the reserve: one 1 GiB domain
  hypervisor.setDestinationFreeMib(kC, 1600);  // 1088 MiB: also one, but less room
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  ASSERT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  EXPECT_EQ(domain("a").destination, kB);
  hypervisor.completeNext();  // a is on B now, gone from here; B's report predates it
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 2u);
  EXPECT_EQ(migrations[1].name, "b");
  EXPECT_EQ(migrations[1].destination_uri, kC);
}

TEST_F(EngineDestinations, TheRequestsDestinationsReplaceTheConfiguredOnesKeepingTheirSettings) {
  settings.migration.max_parallel_per_destination = 1;  // so both are used
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  agent::ScheduleRequest request = window();
  request.destinations = {kB, kD};
  hypervisor.setDestinationFreeMib(kB, 64 * 1024);
  hypervisor.setDestinationFreeMib(kD, 32 * 1024);
  engine->schedule(request);
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 2u);
  // B keeps its configured data URI; D, named only by the request, has none.
  EXPECT_EQ(migrations[0].destination_uri, kB);
  EXPECT_EQ(migrations[0].migrate_uri, "tcp://10.0.0.2");
  EXPECT_EQ(migrations[1].destination_uri, kD);
  EXPECT_EQ(migrations[1].migrate_uri, "");
  EXPECT_EQ(hypervisor.destinationProbes(kC), 0);
}

TEST_F(EngineDestinations, GlobalLimitHoldsMigrationsEvenWithFreeDestinationSlots) {
  settings.limits.max_parallel_migrations = 1;
  settings.migration.max_parallel_per_destination = 4;
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  EXPECT_EQ(domain("b").stage, DomainStage::waiting);
  EXPECT_THAT(domain("b").detail, HasSubstr("1 of max 1 migrations running"));
}

TEST_F(EngineDestinations, ADestinationRefusingTheDomainFallsBackNamingIt) {
  settings.migration.destination_retries = 0;
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  hypervisor.failNext(uuid, ActionKind::live_migrate,
                      "live migration of domain 'db' failed: qemu+tls://host-b/system refused",
                      FailureKind::destination);
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(domain("db").action, MaintenanceAction::suspend);
  EXPECT_TRUE(domain("db").fallback_used);
  EXPECT_THAT(domain("db").result, HasSubstr("host-b/system refused"));
  EXPECT_THAT(domain("db").result, HasSubstr("fell back to suspend"));
  EXPECT_FALSE(domain("db").destination) << "it did not go anywhere";
}

TEST_F(EngineDestinations, AnotherDestinationIsTriedAtOnceWhenOneFails) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  ASSERT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  const std::string first = requestsOf(ActionKind::live_migrate)[0].destination_uri;
  const auto notice_before = domain("db").notice;
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  ASSERT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u) << "retried at once";
  const std::string second = requestsOf(ActionKind::live_migrate)[1].destination_uri;
  EXPECT_NE(second, first);
  EXPECT_EQ(domain("db").notice, notice_before) << "the owner's outcome did not change";
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(domain("db").action, MaintenanceAction::live_migrate);
  EXPECT_THAT(domain("db").result, HasSubstr(second));
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());
}

TEST_F(EngineDestinations, TheOnlyDestinationIsTriedAgainAfterADoublingDelayThenTheFallback) {
  settings.migration.destinations = {DestinationConfig{kB, "", {}, {}}};
  settings.migration.destination_retries = 2;
  settings.migration.destination_retry_delay = 30s;
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  for (auto delay : {30s, 60s}) {
    hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                        FailureKind::destination);
    hypervisor.completeNext();
    EXPECT_EQ(stage("db"), DomainStage::waiting);
    EXPECT_THAT(domain("db").detail, HasSubstr("failed because of its destination"));
    EXPECT_THAT(domain("db").detail, HasSubstr("client socket is closed"));
    EXPECT_EQ(engine->nextWakeup(), clock.now() + delay);
    const std::size_t before = requestsOf(ActionKind::live_migrate).size();
    clock.advance(delay - 1s);
    engine->tick();
    EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), before) << "not before the delay";
    ASSERT_TRUE(advanceToWakeup());
    EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), before + 1);
    EXPECT_EQ(requestsOf(ActionKind::live_migrate).back().destination_uri, kB);
  }
  EXPECT_THAT(domain("db").detail, Not(HasSubstr("attempt")));
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  EXPECT_EQ(domain("db").action, MaintenanceAction::suspend) << "3 attempts, then the fallback";
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
}

TEST_F(EngineDestinations, NoRetryThatCouldNotStartBeforeTheWindowEnds) {
  settings.migration.destinations = {DestinationConfig{kB, "", {}, {}}};
  settings.migration.destination_retry_delay = 30s;
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  engine->schedule(window(0s, 20s));
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  EXPECT_EQ(domain("db").action, MaintenanceAction::suspend);
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
}

TEST_F(EngineDestinations, AWaitingRetrySurvivesARestart) {
  settings.migration.destinations = {DestinationConfig{kB, "", {}, {}}};
  settings.migration.destination_retry_delay = 30s;
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "client socket is closed",
                      FailureKind::destination);
  hypervisor.completeNext();
  crash();
  clock.advance(10s);
  start();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u) << "still waiting for its retry";
  EXPECT_THAT(domain("db").detail, HasSubstr("attempt 2 of 3"));
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 20s);
  ASSERT_TRUE(advanceToWakeup());
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
}

TEST_F(EngineDestinations, ALostConnectionIsRetriedAtMostTwiceThenTheFallbackApplies) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_EQ(requestsOf(ActionKind::live_migrate).size(), static_cast<std::size_t>(attempt));
    hypervisor.failNext(uuid, ActionKind::live_migrate, "end of file while reading data",
                        FailureKind::connection_lost);
    hypervisor.completeNext();
    EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty()) << "not a fallback while held";
    EXPECT_THAT(domain("db").detail, HasSubstr("outcome is read when libvirt is back"));
    reconnect();
  }
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 3u);
  ASSERT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
  EXPECT_EQ(domain("db").action, MaintenanceAction::suspend);
  EXPECT_THAT(domain("db").result, HasSubstr("interrupted 3 times"));
  EXPECT_THAT(domain("db").result, HasSubstr("fell back to suspend"));
}

TEST_F(EngineDestinations, ALostConnectionAfterWhichItIsGoneIsDoneNamingTheDestination) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "end of file while reading data",
                      FailureKind::connection_lost);
  hypervisor.removeDomain(uuid);  // it did move; the answer was lost
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::acting);
  reconnect();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(domain("db").result,
            std::string("migrated to ") + kB + " (confirmed after libvirt reconnected)");
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDestinations, ALostConnectionReportedAfterTheReconnectIsSettledAtOnce) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  reconnect();  // the inventory is re-read while the migration's answer is still out
  hypervisor.failNext(uuid, ActionKind::live_migrate, "end of file while reading data",
                      FailureKind::connection_lost);
  hypervisor.completeNext();
  // No further refresh is coming: still here without a job, so tried again now.
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
  EXPECT_EQ(stage("db"), DomainStage::acting);
}

TEST_F(EngineDestinations, ALostConnectionWithTheMigrationStillRunningIsAdopted) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "end of file while reading data",
                      FailureKind::connection_lost);
  hypervisor.completeNext();
  hypervisor.mutableDomain(uuid).job_active = true;  // libvirtd kept migrating it
  reconnect();
  ASSERT_EQ(requestsOf(ActionKind::adopt_migration).size(), 1u);
  EXPECT_EQ(requestsOf(ActionKind::adopt_migration)[0].destination_uri, kB);
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(domain("db").result, std::string("migrated to ") + kB);
}

TEST_F(EngineDestinations, AnAdoptedMigrationIsNotCountedTwiceAgainstTheLimits) {
  settings.limits.max_parallel_migrations = 1;
  const std::string uuid = addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).job_active = true;
  start();
  ASSERT_EQ(requestsOf(ActionKind::adopt_migration).size(), 1u);
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u) << "b waits for the adopted one";
  EXPECT_THAT(domain("b").detail, HasSubstr("1 of max 1 migrations running"));
  hypervisor.completeNext();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
}

TEST_F(EngineDestinations, ProgressAndActionTimesArePublished) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  const agent::TimePoint started = clock.now();
  scheduleNow();
  clock.advance(5s);
  hv::ActionProgress progress;
  progress.data_total_bytes = 1000;
  progress.data_processed_bytes = 250;
  progress.data_remaining_bytes = 750;
  progress.memory_bps = 100;
  progress.downtime_limit = 300ms;
  progress.post_copy = true;
  progress.escalation = "post-copy";
  progress.iteration = 3;
  hypervisor.reportProgress(uuid, progress);
  ASSERT_TRUE(domain("db").progress);
  const agent::MigrationProgress& shown = *domain("db").progress;
  EXPECT_DOUBLE_EQ(shown.percent, 25.0);
  EXPECT_EQ(shown.throughput_bps, 100u);
  EXPECT_EQ(shown.downtime_limit_ms, 300u);
  EXPECT_TRUE(shown.post_copy);
  EXPECT_EQ(shown.escalation, "post-copy");
  EXPECT_EQ(shown.iteration, 3u);
  EXPECT_EQ(shown.started_at, started);
  EXPECT_EQ(domain("db").action_started_at, started);
  EXPECT_FALSE(domain("db").action_finished_at);

  clock.advance(5s);
  hypervisor.completeNext();
  EXPECT_FALSE(domain("db").progress);
  EXPECT_EQ(domain("db").action_finished_at, started + 10s);
}

TEST_F(EngineDestinations, LearnedThroughputIsAMovingAverageKeptAcrossRestartsAndSessions) {
  settings.limits.max_parallel_migrations = 1;
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  hypervisor.setMigrationThroughput(100'000'000);
  hypervisor.completeNext();
  EXPECT_EQ(status().migration_throughput_bps, 100'000'000u);
  hypervisor.setMigrationThroughput(200'000'000);
  hypervisor.completeNext();
  EXPECT_EQ(status().migration_throughput_bps, 150'000'000u);

  crash();
  start();
  EXPECT_EQ(status().migration_throughput_bps, 150'000'000u) << "journaled";
  engine->finish();
  ASSERT_EQ(status().phase, agent::HostPhase::idle);
  scheduleNow();
  EXPECT_EQ(status().migration_throughput_bps, 150'000'000u) << "kept for the next maintenance";
}

TEST_F(EngineDestinations, AFailedMigrationTakesNoRoomOnItsDestination) {
  settings.limits.max_parallel_migrations = 1;
  hypervisor.setDestinationFreeMib(kB, 2000);  // one 1 GiB domain
  hypervisor.setDestinationUnreachable(kC, "down");
  const std::string a = addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  hypervisor.failNext(a, ActionKind::live_migrate, "aborted", FailureKind::not_converged);
  scheduleNow();
  hypervisor.completeNext();  // a fails and falls back; B is as free as before
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 2u);
  EXPECT_EQ(migrations[1].name, "b");
  EXPECT_EQ(migrations[1].destination_uri, kB);
}

}  // namespace
}  // namespace hostmaint::fake
