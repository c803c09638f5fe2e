// The engine with the adaptive live-migration scheduler: how many start,
// dirty rates measured while waiting (never while running), holds sent to
// the hypervisor and shown in the status, releases, and the fixed limits
// when adaptive scheduling is off.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DomainStage;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

class EnginePacing : public EngineTest {
 protected:
  EnginePacing() {
    settings.limits.max_parallel_actions = 8;
    settings.limits.max_parallel_migrations = 8;
    settings.migration.max_parallel_per_destination = 8;
    settings.migration.adaptive = true;
    settings.migration.adaptive_initial_parallel = 2;
  }

  std::string addGuest(const std::string& name, std::uint64_t memory_mib) {
    const std::string uuid = add(name);
    hypervisor.mutableDomain(uuid).memory_kib = memory_mib * 1024;
    memory_[uuid] = memory_mib * kMiB;
    return uuid;
  }

  std::size_t migrationsPending() const {
    std::size_t count = 0;
    for (const auto& pending : hypervisor.pending()) {
      if (pending.request.kind == ActionKind::live_migrate) ++count;
    }
    return count;
  }

  // Every pending migration reports every 0.5 s what a link shared equally
  // by the unheld ones lets it move (a held one moves 1 MiB/s).
  void runLink(std::chrono::milliseconds span, const std::function<double(unsigned)>& per_migration) {
    for (auto t = 0ms; t < span; t += 500ms) {
      clock.advance(500ms);
      std::vector<std::string> running;
      for (const auto& pending : hypervisor.pending()) {
        if (pending.request.kind == ActionKind::live_migrate) running.push_back(pending.request.uuid);
      }
      unsigned unheld = 0;
      for (const auto& uuid : running) unheld += hypervisor.steerOf(uuid).hold ? 0 : 1;
      for (const auto& uuid : running) {
        const bool held = hypervisor.steerOf(uuid).hold;
        double& processed = processed_[uuid];
        processed += (held ? static_cast<double>(kMiB) : per_migration(unheld)) * 0.5;
        hv::ActionProgress progress;
        progress.data_total_bytes = memory_[uuid];
        progress.data_processed_bytes = static_cast<std::uint64_t>(processed);
        progress.data_remaining_bytes =
            memory_[uuid] - std::min<std::uint64_t>(memory_[uuid], static_cast<std::uint64_t>(processed));
        progress.iteration = 1;
        progress.held = held;
        hypervisor.reportProgress(uuid, progress);
      }
    }
  }

  std::map<std::string, std::uint64_t> memory_;
  std::map<std::string, double> processed_;
};

TEST_F(EnginePacing, StartsTheInitialNumberAndMeasuresTheOthersWhileTheyWait) {
  const std::string a = addGuest("a", 2048);
  const std::string b = addGuest("b", 1536);
  const std::string c = addGuest("c", 1024);
  const std::string d = addGuest("d", 512);
  for (const auto& uuid : {a, b, c, d}) hypervisor.setDirtyRate(uuid, 2 * kMiB);
  start();
  scheduleNow();
  // The biggest first, two at once before anything is measured.
  EXPECT_EQ(migrationsPending(), 2u);
  EXPECT_TRUE(hypervisor.isPending(a));
  EXPECT_TRUE(hypervisor.isPending(b));
  EXPECT_EQ(stage("c"), DomainStage::waiting);
  EXPECT_NE(domain("c").detail.find("adaptive"), std::string::npos) << domain("c").detail;
  // Measured while waiting; never while running (libvirt would block on the
  // migration's job).
  EXPECT_EQ(hypervisor.dirtyProbes(c), 1);
  EXPECT_EQ(hypervisor.dirtyProbes(d), 1);
  EXPECT_EQ(hypervisor.dirtyProbes(a), 0);
  EXPECT_EQ(hypervisor.dirtyProbes(b), 0);
  ASSERT_TRUE(domain("c").timeline);
  EXPECT_TRUE(domain("c").timeline->queued_at);
  EXPECT_TRUE(domain("c").timeline->probed_at);
  EXPECT_FALSE(domain("c").timeline->started_at);
  EXPECT_EQ(domain("c").dirty_rate_bps, 2 * kMiB);
  ASSERT_TRUE(domain("a").timeline);
  EXPECT_TRUE(domain("a").timeline->started_at);
  ASSERT_TRUE(status().scheduler);
  EXPECT_TRUE(status().scheduler->adaptive);
  EXPECT_EQ(status().scheduler->limit, 2u);
  EXPECT_EQ(status().scheduler->running, 2u);
}

// Unset, the initial number is the limit: guests that migrate in seconds
// would be gone before anything could be measured. With nothing learned,
// each one's predicted duration is on the basis the owners' notices use.
TEST_F(EnginePacing, UnsetInitialNumberStartsAsManyAsTheLimitAllows) {
  settings.migration.adaptive_initial_parallel.reset();
  settings.limits.max_parallel_migrations = 5;
  settings.notices.assumed_throughput_bps = 64 * kMiB;
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) addGuest(name, 512);
  start();
  scheduleNow();
  EXPECT_EQ(migrationsPending(), 5u);
  ASSERT_TRUE(status().scheduler);
  EXPECT_EQ(status().scheduler->limit, 5u);
  EXPECT_EQ(stage("f"), DomainStage::waiting);
  for (const auto& d : status().domains) {
    if (d.name == "f") continue;
    ASSERT_TRUE(d.predicted_duration_s) << d.name;
    EXPECT_NEAR(*d.predicted_duration_s, 512.0 / 64, 0.01) << d.name;
  }
}

TEST_F(EnginePacing, GrowsWhileParallelismPaysAndRecordsTheTimeline) {
  // Small enough that trying fewer at once is not worth it (what is left
  // takes under 10 s).
  for (const char* name : {"a", "b", "c"}) addGuest(name, 512);
  start();
  scheduleNow();
  ASSERT_EQ(migrationsPending(), 2u);
  // Each migration moves 100 MB/s whatever the number at once.
  runLink(3s, [](unsigned) { return 100e6; });
  EXPECT_EQ(migrationsPending(), 3u) << status().scheduler->reason;
  const std::string first = hypervisor.pending().front().request.uuid;
  hypervisor.complete(first);
  for (const auto& d : status().domains) {
    if (d.uuid != first) continue;
    ASSERT_TRUE(d.timeline);
    EXPECT_TRUE(d.timeline->started_at);
    EXPECT_TRUE(d.timeline->finished_at);
    EXPECT_GE(*d.timeline->finished_at, *d.timeline->started_at);
  }
}

TEST_F(EnginePacing, HoldsOnALinkBoundDrainAndReleasesWhenTheLinkWouldIdle) {
  settings.migration.adaptive_initial_parallel = 4;
  std::vector<std::string> guests;
  for (const char* name : {"a", "b", "c", "d"}) guests.push_back(addGuest(name, 400));
  start();
  scheduleNow();
  ASSERT_EQ(migrationsPending(), 4u);
  auto link = [](unsigned n) { return 25e6 / n; };  // 25 MB/s shared
  runLink(5500ms, link);
  int held = 0;
  for (const auto& uuid : guests) held += hypervisor.steerOf(uuid).hold ? 1 : 0;
  EXPECT_EQ(held, 2) << status().scheduler->reason;
  ASSERT_TRUE(status().scheduler);
  EXPECT_EQ(status().scheduler->held, 2u);
  runLink(10s, link);
  held = 0;
  std::string running;
  for (const auto& uuid : guests) {
    if (hypervisor.steerOf(uuid).hold) {
      ++held;
    } else {
      running = uuid;
    }
  }
  EXPECT_EQ(held, 3) << "one at a time on a full link: " << status().scheduler->reason;
  bool shown_held = false;
  for (const auto& d : status().domains) shown_held = shown_held || (d.progress && d.progress->held);
  EXPECT_TRUE(shown_held) << "status shows which migrations are held";
  hypervisor.complete(running);
  held = 0;
  for (const auto& uuid : guests) {
    if (uuid != running && hypervisor.isPending(uuid)) held += hypervisor.steerOf(uuid).hold ? 1 : 0;
  }
  EXPECT_EQ(held, 2) << "the link is free: the next one goes at once";
}

TEST_F(EnginePacing, WithoutAdaptiveSchedulingTheLimitsAreUsed) {
  settings.migration.adaptive = false;
  for (const char* name : {"a", "b", "c", "d", "e"}) addGuest(name, 512);
  start();
  scheduleNow();
  EXPECT_EQ(migrationsPending(), 5u);
  ASSERT_TRUE(status().scheduler);
  EXPECT_FALSE(status().scheduler->adaptive);
  runLink(10s, [](unsigned n) { return 25e6 / n; });
  EXPECT_EQ(hypervisor.steerCalls(), 0) << "nothing is held or hurried";
}

}  // namespace
}  // namespace hostmaint::fake
