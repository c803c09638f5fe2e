// MigrationPacer on made-up links: every migration reports every 0.5 s what
// a link of a given capacity, shared equally, would let it move.
#include "../../agent/src/core/migration_pacer.hpp"

#include <gtest/gtest.h>

#include <functional>

#include <map>
#include <string>
#include <vector>

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;

constexpr double kMB = 1e6;

// A simulated link: each unheld migration moves `per_migration(n)` bytes a
// second (n = unheld ones), a held one 1 MiB/s. Dirty rates are the probed
// ones the test gives the pacer.
class Link {
 public:
  Link(MigrationPacer& pacer, TimePoint start) : pacer_(pacer), now_(start) {}

  void start(const std::string& uuid, double memory_bytes) {
    pacer_.started(uuid, now_);
    flights_[uuid] = {memory_bytes, 0};
  }

  // Runs the link for `span`, sampling every 0.5 s and evaluating after
  // each round of samples, with `waiting_bytes` still to start.
  void run(std::chrono::milliseconds span, const std::function<double(unsigned)>& per_migration,
           std::uint64_t waiting_bytes = 0) {
    const TimePoint end = now_ + span;
    while (now_ < end) {
      now_ += 500ms;
      const auto steering = pacer_.steering();
      unsigned unheld = 0;
      for (const auto& [uuid, flight] : flights_) {
        if (!steering.at(uuid).hold) ++unheld;
      }
      for (auto& [uuid, flight] : flights_) {
        const bool held = steering.at(uuid).hold;
        const double rate = held ? 1024.0 * 1024.0 : per_migration(unheld);
        flight.processed += rate * 0.5;
        PacerSample sample;
        sample.at = now_;
        sample.processed_bytes = static_cast<std::uint64_t>(flight.processed);
        sample.remaining_bytes = static_cast<std::uint64_t>(flight.memory - std::min(flight.memory, flight.processed));
        sample.iteration = 1;
        sample.held = held;
        pacer_.sampled(uuid, sample);
      }
      changed_ = pacer_.evaluate(now_, waiting_bytes) || changed_;
    }
  }

  void finish(const std::string& uuid) {
    pacer_.finished(uuid);
    flights_.erase(uuid);
  }

  bool held(const std::string& uuid) const { return pacer_.steering().at(uuid).hold; }
  unsigned heldCount() const {
    unsigned count = 0;
    for (const auto& [uuid, steer] : pacer_.steering()) count += steer.hold ? 1 : 0;
    return count;
  }
  TimePoint now() const { return now_; }

 private:
  struct Flight {
    double memory;
    double processed;
  };
  MigrationPacer& pacer_;
  TimePoint now_;
  std::map<std::string, Flight> flights_;
  bool changed_ = false;
};

const TimePoint kStart = TimePoint{} + 1000000s;

PacerSettings settings(unsigned initial, unsigned cap) {
  PacerSettings s;
  s.initial = initial;
  s.cap = cap;
  return s;
}

TEST(MigrationPacer, FixedLimitsWhenNotAdaptive) {
  PacerSettings off = settings(2, 8);
  off.adaptive = false;
  MigrationPacer pacer(off);
  for (int i = 0; i < 6; ++i) pacer.started("m" + std::to_string(i), kStart);
  EXPECT_FALSE(pacer.admit("next"));
  EXPECT_FALSE(pacer.evaluate(kStart + 10s, 1000));
  EXPECT_FALSE(pacer.status().adaptive);
  EXPECT_EQ(pacer.status().limit, 8u);
}

TEST(MigrationPacer, StartsTheInitialNumberBeforeMeasuring) {
  MigrationPacer pacer(settings(2, 8));
  EXPECT_FALSE(pacer.admit("a"));
  pacer.started("a", kStart);
  EXPECT_FALSE(pacer.admit("b"));
  pacer.started("b", kStart);
  const auto why = pacer.admit("c");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("2 of 2"), std::string::npos) << *why;
}

TEST(MigrationPacer, AddsMigrationsWhileTheAggregateGrows) {
  MigrationPacer pacer(settings(2, 8));
  Link link(pacer, kStart);
  link.start("a", 20e9);
  link.start("b", 20e9);
  // CPU-bound: each migration moves 100 MB/s whatever the number at once.
  auto cpu_bound = [](unsigned) { return 100 * kMB; };
  link.run(2500ms, cpu_bound, 40'000'000'000);
  EXPECT_EQ(pacer.status().limit, 3u) << pacer.status().reason;
  ASSERT_FALSE(pacer.admit("c"));
  link.start("c", 20e9);
  link.run(3s, cpu_bound, 40'000'000'000);
  EXPECT_EQ(pacer.status().limit, 4u) << pacer.status().reason;
  // The cap is the admin's: never beyond it.
  for (int i = 0; i < 10; ++i) {
    if (!pacer.admit("x" + std::to_string(i))) link.start("x" + std::to_string(i), 20e9);
    link.run(3s, cpu_bound, 40'000'000'000);
  }
  EXPECT_EQ(pacer.status().limit, 8u) << pacer.status().reason;
  // What is left takes minutes: fewer at once are tried once the number
  // has been steady, and given up since one carries half as much.
  link.run(15s, cpu_bound, 40'000'000'000);
  EXPECT_EQ(link.heldCount(), 0u) << pacer.status().reason;
  EXPECT_NE(pacer.status().reason.find("parallelism helps"), std::string::npos)
      << pacer.status().reason;
}

TEST(MigrationPacer, StopsAddingWhenTheLinkIsFull) {
  MigrationPacer pacer(settings(2, 8));
  Link link(pacer, kStart);
  // 200 MB/s shared; each migration is short enough that trying fewer is
  // not worth it (what is left takes under 10 s).
  auto shared = [](unsigned n) { return 200 * kMB / n; };
  link.start("a", 600e6);
  link.start("b", 600e6);
  link.run(2s, [](unsigned) { return 100 * kMB; }, 300'000'000);
  ASSERT_EQ(pacer.status().limit, 3u);
  link.start("c", 600e6);
  link.run(2500ms, shared, 300'000'000);
  EXPECT_EQ(pacer.status().limit, 3u);
  EXPECT_NE(pacer.status().reason.find("more would only share the link"), std::string::npos)
      << pacer.status().reason;
}

TEST(MigrationPacer, OnALinkBoundDrainTriesFewerAndKeepsThem) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  // 25 MB/s shared by everyone: 4 x 400 MB take a minute whatever the order.
  auto link_25 = [](unsigned n) { return 25 * kMB / n; };
  for (const char* name : {"a", "b", "c", "d"}) link.start(name, 400e6);
  // Nothing is tried before the number at once has been steady for 5 s.
  link.run(4500ms, link_25);
  EXPECT_EQ(link.heldCount(), 0u) << pacer.status().reason;
  link.run(1s, link_25);
  EXPECT_EQ(link.heldCount(), 2u) << "a trial of half as many: " << pacer.status().reason;
  link.run(4s, link_25);
  EXPECT_NE(pacer.status().reason.find("the link is the limit"), std::string::npos)
      << pacer.status().reason;
  EXPECT_EQ(pacer.status().limit, 2u);
  link.run(6s, link_25);
  EXPECT_EQ(link.heldCount(), 3u) << "halved again: one at a time; " << pacer.status().reason;
  EXPECT_EQ(pacer.status().limit, 1u);
  const auto why = pacer.admit("e");
  ASSERT_TRUE(why) << "a new one waits while started ones are held";
  EXPECT_NE(why->find("held go first"), std::string::npos) << *why;
}

TEST(MigrationPacer, ReleasesTheNextHeldOneWhenTheLinkWouldIdle) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  auto link_25 = [](unsigned n) { return 25 * kMB / n; };
  for (const char* name : {"a", "b", "c", "d"}) link.start(name, 400e6);
  link.run(16s, link_25);
  ASSERT_EQ(link.heldCount(), 3u) << pacer.status().reason;
  std::string running;
  for (const auto& [uuid, steer] : pacer.steering()) {
    if (!steer.hold) running = uuid;
  }
  // Nothing goes beside it on a link that is the limit ...
  link.run(5s, link_25);
  EXPECT_EQ(link.heldCount(), 3u) << pacer.status().reason;
  // ... until it switches over: the next one takes the link at once.
  pacer.switchingOver(running);
  link.run(500ms, link_25);
  EXPECT_EQ(link.heldCount(), 2u) << pacer.status().reason;
  EXPECT_NE(pacer.status().reason.find("switching over"), std::string::npos) << pacer.status().reason;
  link.finish(running);
  link.run(1s, link_25);
  EXPECT_EQ(link.heldCount(), 2u) << "one at a time after the first finished";
}

TEST(MigrationPacer, ReleasesTheTrialWhenParallelismHelps) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  // CPU-bound, and long: 4 x 8 GB at 100 MB/s each.
  auto cpu_bound = [](unsigned) { return 100 * kMB; };
  for (const char* name : {"a", "b", "c", "d"}) link.start(name, 8e9);
  link.run(5500ms, cpu_bound);
  ASSERT_EQ(link.heldCount(), 2u) << pacer.status().reason;
  link.run(4s, cpu_bound);
  EXPECT_EQ(link.heldCount(), 0u) << pacer.status().reason;
  EXPECT_NE(pacer.status().reason.find("parallelism helps"), std::string::npos)
      << pacer.status().reason;
  link.run(10s, cpu_bound);
  EXPECT_EQ(link.heldCount(), 0u) << "no second trial soon after parallelism was shown to help";
  // Tried again 20 s after the verdict (a burst may have misled the first),
  // then 40 s after the second.
  link.run(12s, cpu_bound);
  EXPECT_EQ(link.heldCount(), 2u) << pacer.status().reason;
  link.run(5s, cpu_bound);
  EXPECT_EQ(link.heldCount(), 0u) << pacer.status().reason;
  link.run(30s, cpu_bound);
  EXPECT_EQ(link.heldCount(), 0u) << "the next trial waits twice as long";
}

TEST(MigrationPacer, ShortDrainsAreNotWorthATrial) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  for (const char* name : {"a", "b", "c", "d"}) link.start(name, 300e6);
  link.run(2s, [](unsigned n) { return 800 * kMB / n; });
  EXPECT_EQ(link.heldCount(), 0u) << pacer.status().reason;
}

TEST(MigrationPacer, HoldsThoseThatCannotConvergeAtTheirShare) {
  MigrationPacer pacer(settings(3, 8));
  Link link(pacer, kStart);
  // Each dirties 7 MB/s; three share 24 MB/s: 8 MB/s each, not enough.
  for (const char* name : {"a", "b", "c"}) pacer.probed(name, static_cast<std::uint64_t>(7 * kMB));
  link.start("a", 100e6);
  link.start("b", 120e6);
  link.start("c", 140e6);
  link.run(2s, [](unsigned n) { return 24 * kMB / n; });
  // Budget: half of 24 MB/s, so one 7 MB/s dirtier at a time; the one
  // closest to done keeps the link.
  EXPECT_FALSE(link.held("a"));
  EXPECT_TRUE(link.held("b"));
  EXPECT_TRUE(link.held("c"));
  EXPECT_NE(pacer.status().reason.find("did not converge"), std::string::npos)
      << pacer.status().reason;
  EXPECT_FALSE(pacer.steering().at("a").hurry) << "it converges once it has the link";
  link.run(3s, [](unsigned n) { return 24 * kMB / n; });
  EXPECT_FALSE(pacer.steering().at("a").hurry);
}

TEST(MigrationPacer, HoldsHalfWhenHotSetsStopConverging) {
  MigrationPacer pacer(settings(4, 8));
  // Guests rewriting a 60 MB hot set: after the first pass each one's
  // remaining data stays at that floor, while QEMU's dirty rate (averaged
  // over a long pass) looks harmless.
  const std::vector<std::string> guests{"a", "b", "c", "d"};
  for (const auto& uuid : guests) pacer.started(uuid, kStart);
  TimePoint now = kStart;
  for (int step = 1; step <= 11; ++step) {
    now += 500ms;
    for (std::size_t i = 0; i < guests.size(); ++i) {
      if (pacer.steering().at(guests[i]).hold) continue;
      PacerSample sample;
      sample.at = now;
      sample.processed_bytes = static_cast<std::uint64_t>(step * 3 * kMB);
      sample.remaining_bytes = static_cast<std::uint64_t>((60 + i) * kMB);
      sample.dirty_rate_bps = static_cast<std::uint64_t>(1 * kMB);
      sample.iteration = 2;
      pacer.sampled(guests[i], sample);
    }
    pacer.evaluate(now, 0);
  }
  unsigned held = 0;
  for (const auto& [uuid, steer] : pacer.steering()) held += steer.hold ? 1 : 0;
  EXPECT_EQ(held, 2u) << pacer.status().reason;
  EXPECT_FALSE(pacer.steering().at("a").hold) << "the closest to done keeps the link";
  EXPECT_NE(pacer.status().reason.find("did not converge"), std::string::npos)
      << pacer.status().reason;
}

TEST(MigrationPacer, HurriesOneThatCannotConvergeEvenAlone) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  pacer.probed("hot", static_cast<std::uint64_t>(30 * kMB));
  link.start("hot", 400e6);
  link.run(2500ms, [](unsigned) { return 25 * kMB; });
  EXPECT_TRUE(pacer.steering().at("hot").hurry) << pacer.status().reason;
}

TEST(MigrationPacer, AdmitsNoDirtierThanTheLinkLeavesRoomFor) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  pacer.probed("a", static_cast<std::uint64_t>(5 * kMB));
  link.start("a", 100e6);
  link.run(2s, [](unsigned) { return 25 * kMB; });
  pacer.probed("calm", static_cast<std::uint64_t>(1 * kMB));
  pacer.probed("hot", static_cast<std::uint64_t>(10 * kMB));
  EXPECT_FALSE(pacer.admit("calm"));
  const auto why = pacer.admit("hot");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("would not converge"), std::string::npos) << *why;
}

TEST(MigrationPacer, PredictsFromWhatWasLearnedAndTheDirtyRate) {
  MigrationPacer pacer(settings(4, 8));
  EXPECT_FALSE(pacer.predictSeconds("a", 1000, 0)) << "no basis yet";
  const auto learned = pacer.predictSeconds("a", 100'000'000, 50'000'000);
  ASSERT_TRUE(learned);
  EXPECT_DOUBLE_EQ(*learned, 2.0);
  pacer.probed("a", 25'000'000);
  const auto dirty = pacer.predictSeconds("a", 100'000'000, 50'000'000);
  ASSERT_TRUE(dirty);
  EXPECT_DOUBLE_EQ(*dirty, 4.0) << "it re-sends what it dirties";
}

TEST(MigrationPacer, ResetForgetsTheLastMaintenance) {
  MigrationPacer pacer(settings(4, 8));
  Link link(pacer, kStart);
  for (const char* name : {"a", "b", "c", "d"}) link.start(name, 400e6);
  link.run(9s, [](unsigned n) { return 25 * kMB / n; });
  ASSERT_GT(link.heldCount(), 0u);
  pacer.reset(settings(4, 8));
  EXPECT_EQ(pacer.status().limit, 4u);
  EXPECT_EQ(pacer.status().running, 0u);
  EXPECT_EQ(pacer.status().capacity_bps, 0u);
}

}  // namespace
}  // namespace hostmaint::agent
