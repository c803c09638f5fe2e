// Migrations in the drain: destination choice by free memory, group spread,
// per-destination limits, order, tuning, failure kinds and adoption of a
// migration found running after a restart.
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DestinationConfig;
using hostmaint::agent::DomainStage;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;
using hostmaint::hv::FailureKind;

namespace hostmaint::fake {
namespace {

constexpr const char* kB = "qemu+tls://host-b/system";
constexpr const char* kC = "qemu+tls://host-c/system";
constexpr std::uint64_t kGibKib = 1024 * 1024;

class EngineMigration : public EngineTest {
 protected:
  EngineMigration() {
    settings.migration.destinations = {DestinationConfig{kB, "tcp://10.0.0.2", {}, {}},
                                       DestinationConfig{kC, "", {}, {}}};
    settings.migration.reserved_memory_mib = 512;
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
};

TEST_F(EngineMigration, GoesWhereItFitsAfterTheReserve) {
  hypervisor.setDestinationFreeMib(kB, 1400);  // 888 MiB after the reserve: too small
  hypervisor.setDestinationFreeMib(kC, 3000);
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, kC);
  EXPECT_EQ(migrations[0].migrate_uri, "");
  EXPECT_EQ(domain("db").destination, kC);
  hypervisor.completeAll();
  EXPECT_EQ(domain("db").result, std::string("migrated to ") + kC);
}

TEST_F(EngineMigration, TheDataUriOfTheChosenDestinationIsPassed) {
  hypervisor.setDestinationUnreachable(kC, "connection refused");
  addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].destination_uri, kB);
  EXPECT_EQ(migrations[0].migrate_uri, "tcp://10.0.0.2");
}

TEST_F(EngineMigration, NoDestinationFitsFallsBackNamingEachOne) {
  hypervisor.setDestinationUnreachable(kB, "cannot connect: connection refused");
  hypervisor.setDestinationFreeMib(kC, 600);
  addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  EXPECT_TRUE(requestsOf(ActionKind::live_migrate).empty());
  EXPECT_EQ(domain("db").action, MaintenanceAction::suspend);
  EXPECT_TRUE(domain("db").fallback_used);
  const std::string& result = domain("db").result;
  EXPECT_NE(result.find(std::string(kB) + ": unreachable: cannot connect: connection refused"),
            std::string::npos)
      << result;
  EXPECT_NE(result.find(std::string(kC) + ": 88 MiB free after the 512 MiB reserve, needs 1024 MiB"),
            std::string::npos)
      << result;
  EXPECT_NE(result.find("fell back to suspend"), std::string::npos) << result;
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
}

TEST_F(EngineMigration, MigrationsUnderWayCountAgainstTheRoom) {
  settings.limits.max_parallel_migrations = 3;
  settings.migration.max_parallel_per_destination = 3;
  hypervisor.setDestinationFreeMib(kB, 2800);  // room for two 1 GiB domains after the reserve
  hypervisor.setDestinationUnreachable(kC, "down");
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  addWithMemory("c", kGibKib);
  settings.limits.max_parallel_actions = 4;
  start();
  scheduleNow();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
  // The third does not fit next to the two on their way: it falls back.
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u);
}

TEST_F(EngineMigration, GroupMembersAreSpreadAcrossDestinations) {
  hypervisor.setDestinationFreeMib(kB, 16000);
  hypervisor.setDestinationFreeMib(kC, 8000);  // less room, but no member of the group yet
  addWithMemory("web1", kGibKib, {{"group", "web"}, {"max_impacted_members", "2"}});
  addWithMemory("web2", kGibKib, {{"group", "web"}, {"max_impacted_members", "2"}});
  start();
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 2u);
  EXPECT_NE(migrations[0].destination_uri, migrations[1].destination_uri);
}

TEST_F(EngineMigration, PerDestinationLimitHoldsTheRestVisibly) {
  settings.migration.destinations = {DestinationConfig{kB, "", 1u, {}}};
  settings.limits.max_parallel_migrations = 2;
  addWithMemory("a", kGibKib);
  addWithMemory("b", kGibKib);
  start();
  scheduleNow();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  const auto waiting = domain("a").stage == DomainStage::waiting ? domain("a") : domain("b");
  EXPECT_EQ(waiting.stage, DomainStage::waiting);
  EXPECT_NE(waiting.detail.find("1 of max 1 migrations to it running"), std::string::npos)
      << waiting.detail;
  hypervisor.completeNext();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
}

TEST_F(EngineMigration, BiggestFirstWithinAPriority) {
  settings.limits.max_parallel_migrations = 1;
  addWithMemory("a-small", kGibKib);
  addWithMemory("z-big", 8 * kGibKib);
  addWithMemory("m-urgent", kGibKib, {{"priority", "10"}});
  start();
  scheduleNow();
  hypervisor.completeNext();
  hypervisor.completeNext();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 3u);
  EXPECT_EQ(migrations[0].name, "m-urgent");
  EXPECT_EQ(migrations[1].name, "z-big");
  EXPECT_EQ(migrations[2].name, "a-small");
}

TEST_F(EngineMigration, TuningComesFromThePolicyAndTheTimeoutScalesWithMemory) {
  addWithMemory("db", 3 * kGibKib + 512 * 1024,
                {{"migration_max_downtime", "300ms"},
                 {"migration_downtime_steps", "3"},
                 {"migration_downtime_step_delay", "5s"},
                 {"migration_bandwidth_mib_s", "200"},
                 {"migration_post_copy", "true"},
                 {"migration_completion_timeout_per_gib", "100s"},
                 {"migration_progress_timeout", "30s"},
                 {"migration_parallel_connections", "4"}});
  start();
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  const hv::MigrationTuning& tuning = migrations[0].tuning;
  EXPECT_EQ(tuning.max_downtime, 300ms);
  EXPECT_EQ(tuning.downtime_steps, 3u);
  EXPECT_EQ(tuning.downtime_step_delay, 5s);
  EXPECT_EQ(tuning.bandwidth_mib_s, 200u);
  EXPECT_TRUE(tuning.post_copy_allowed);
  EXPECT_FALSE(tuning.auto_converge);
  EXPECT_EQ(tuning.completion_timeout, 400s) << "3.5 GiB count as 4 started GiB";
  EXPECT_EQ(tuning.progress_timeout, 30s);
  EXPECT_EQ(tuning.parallel_connections, 4u);
}

TEST_F(EngineMigration, SmallGuestsCountAsTwoGibForTheCompletionTimeout) {
  addWithMemory("tiny", 256 * 1024, {{"migration_completion_timeout_per_gib", "100s"}});
  start();
  scheduleNow();
  const auto migrations = requestsOf(ActionKind::live_migrate);
  ASSERT_EQ(migrations.size(), 1u);
  EXPECT_EQ(migrations[0].tuning.completion_timeout, 200s);
}

TEST_F(EngineMigration, NotConvergingFallsBackWithItsEscalationsInTheResult) {
  const std::string uuid = addWithMemory("busy", kGibKib);
  start();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "aborted after 150s",
                      FailureKind::not_converged, {"downtime 250ms", "downtime 500ms", "post-copy"});
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(domain("busy").action, MaintenanceAction::suspend);
  EXPECT_EQ(domain("busy").result,
            "live-migrate failed: aborted after 150s (escalated: downtime 250ms, downtime 500ms, "
            "post-copy); fell back to suspend");
  hypervisor.completeNext();
  EXPECT_EQ(stage("busy"), DomainStage::done);
}

TEST_F(EngineMigration, LostConnectionIsReCheckedNotFallenBack) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  hypervisor.failNext(uuid, ActionKind::live_migrate, "end of file while reading data",
                      FailureKind::connection_lost);
  scheduleNow();
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::acting);
  EXPECT_NE(domain("db").detail.find("outcome is read when libvirt is back"), std::string::npos);
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());

  hypervisor.setConnectionState(hv::ConnectionState::disconnected, "libvirtd restarted");
  hypervisor.setConnectionState(hv::ConnectionState::connected);
  hypervisor.refreshInventory();
  // Still here, no job: the migration did not happen, so it is tried again.
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u);
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_FALSE(domain("db").fallback_used);
}

TEST_F(EngineMigration, MigrationRunningAfterARestartIsAdoptedNotStartedTwice) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  ASSERT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).job_active = true;  // libvirtd still migrates it
  start();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u);
  ASSERT_EQ(requestsOf(ActionKind::adopt_migration).size(), 1u);
  EXPECT_EQ(stage("db"), DomainStage::acting);
  hypervisor.completeNext();
  EXPECT_EQ(stage("db"), DomainStage::done);
  EXPECT_EQ(domain("db").result, std::string("migrated to ") + kB);
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineMigration, AdoptedMigrationThatEndsWithTheDomainHereIsRedone) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).job_active = true;
  hypervisor.failNext(uuid, ActionKind::adopt_migration, "the migration ended, still here",
                      FailureKind::other);
  start();
  hypervisor.completeNext();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 2u) << "tried again, not fallen back";
  EXPECT_TRUE(requestsOf(ActionKind::managed_save).empty());
}

TEST_F(EngineMigration, AdoptedMigrationKeepsItsLadderAndTimeoutsAndFallsBackWhenItTimesOut) {
  const std::string uuid = addWithMemory("db", kGibKib);
  start();
  scheduleNow();
  clock.set(clock.now() + std::chrono::seconds(40));
  crash();
  hypervisor.abandon(uuid);
  hypervisor.mutableDomain(uuid).job_active = true;
  hypervisor.failNext(uuid, ActionKind::adopt_migration,
                      "did not converge: did not complete within 300s; aborted",
                      FailureKind::not_converged);
  start();
  const auto adopted = requestsOf(ActionKind::adopt_migration);
  ASSERT_EQ(adopted.size(), 1u);
  // The restarted daemon watches it with the same tuning, its completion
  // timeout counted from the migration's real start.
  const hv::MigrationTuning& first = requestsOf(ActionKind::live_migrate)[0].tuning;
  EXPECT_EQ(adopted[0].tuning.max_downtime, first.max_downtime);
  EXPECT_EQ(adopted[0].tuning.downtime_steps, first.downtime_steps);
  EXPECT_EQ(adopted[0].tuning.completion_timeout, first.completion_timeout);
  EXPECT_GT(adopted[0].tuning.completion_timeout.count(), 0);
  EXPECT_GE(adopted[0].already_running, std::chrono::seconds(40));
  hypervisor.completeNext();
  EXPECT_EQ(requestsOf(ActionKind::live_migrate).size(), 1u) << "a timed-out one is not redone";
  EXPECT_EQ(requestsOf(ActionKind::managed_save).size(), 1u) << "its fallback applies";
}

TEST_F(EngineMigration, ThroughputOfFinishedMigrationsIsLearned) {
  hypervisor.setMigrationThroughput(100'000'000);
  addWithMemory("a", kGibKib);
  start();
  EXPECT_EQ(status().migration_throughput_bps, 0u);
  scheduleNow();
  hypervisor.completeAll();
  EXPECT_EQ(status().migration_throughput_bps, 100'000'000u);
}

}  // namespace
}  // namespace hostmaint::fake
