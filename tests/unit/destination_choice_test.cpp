// The choice of one domain's migration destination, without an engine.
#include "../../agent/src/core/destination_choice.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace hostmaint::agent;
using testing::HasSubstr;
namespace hv = hostmaint::hv;

namespace {

constexpr std::uint64_t kMib = 1024 * 1024;
using Outcome = DestinationChoice::Outcome;

DestinationCandidate reachable(const std::string& uri, std::uint64_t free_mib,
                               std::uint64_t reserved_mib = 512) {
  DestinationCandidate candidate;
  candidate.config.uri = uri;
  hv::DestinationReport report;
  report.uri = uri;
  report.reachable = true;
  report.free_memory_bytes = free_mib * kMib;
  candidate.report = report;
  candidate.reserved_bytes = reserved_mib * kMib;
  candidate.max_parallel = 2;
  return candidate;
}

DestinationCandidate unreachable(const std::string& uri, const std::string& error) {
  DestinationCandidate candidate;
  candidate.config.uri = uri;
  hv::DestinationReport report;
  report.uri = uri;
  report.error = error;
  candidate.report = report;
  return candidate;
}

TEST(DestinationChoice, ADestinationWithNoSlotLeftIsWaitedForNotFallenBackFrom) {
  // A fleet peer whose incoming limit other hosts' migrations reach.
  DestinationCandidate full = reachable("qemu+tls://peer/system", 8192);
  full.max_parallel = 0;
  DestinationChoice choice = chooseDestination(1024 * kMib, {full});
  EXPECT_EQ(choice.outcome, Outcome::wait);
  EXPECT_EQ(choice.reason, "qemu+tls://peer/system: takes no more incoming migrations now");
  // The domain queues for it.
  ASSERT_TRUE(choice.queue_for);
  EXPECT_EQ(choice.queue_for->uri, "qemu+tls://peer/system");
  // Another with room is chosen meanwhile.
  choice = chooseDestination(1024 * kMib, {full, reachable("qemu+tls://other/system", 4096)});
  EXPECT_EQ(choice.outcome, Outcome::chosen);
  EXPECT_EQ(choice.destination.uri, "qemu+tls://other/system");
}

TEST(DestinationChoice, QueuesOnlyForAFullPeerItFitsInTheBestOfThem) {
  DestinationCandidate full_small = reachable("qemu+tls://small/system", 2048);
  full_small.max_parallel = 0;
  DestinationCandidate full_big = reachable("qemu+tls://big/system", 8192);
  full_big.max_parallel = 0;
  DestinationCandidate too_small = reachable("qemu+tls://tiny/system", 1024);
  too_small.max_parallel = 0;
  DestinationChoice choice = chooseDestination(1024 * kMib, {full_small, too_small, full_big});
  EXPECT_EQ(choice.outcome, Outcome::wait);
  ASSERT_TRUE(choice.queue_for);
  EXPECT_EQ(choice.queue_for->uri, "qemu+tls://big/system") << "the most room, like a choice";
  // Its own migrations filling a destination: they end, nobody else's wait.
  DestinationCandidate busy = reachable("qemu+tls://busy/system", 8192);
  busy.max_parallel = 1;
  busy.migrations_in_flight = 1;
  choice = chooseDestination(1024 * kMib, {busy});
  EXPECT_EQ(choice.outcome, Outcome::wait);
  EXPECT_FALSE(choice.queue_for);
  // A full peer it does not fit: nothing to queue for.
  choice = chooseDestination(1024 * kMib, {too_small});
  EXPECT_EQ(choice.outcome, Outcome::none_fits);
  EXPECT_FALSE(choice.queue_for);
}

TEST(DestinationChoice, FitsOnlyInFreeMemoryMinusTheReserve) {
  // 1536 − 512 = 1024: exactly enough for 1 GiB.
  DestinationChoice exact = chooseDestination(1024 * kMib, {reachable("b", 1536)});
  EXPECT_EQ(exact.outcome, Outcome::chosen);
  EXPECT_EQ(exact.destination.uri, "b");

  DestinationChoice short_by_one = chooseDestination(1024 * kMib, {reachable("b", 1535)});
  EXPECT_EQ(short_by_one.outcome, Outcome::none_fits);
  EXPECT_EQ(short_by_one.reason, "b: 1023 MiB free after the 512 MiB reserve, needs 1024 MiB");
}

TEST(DestinationChoice, MigrationsAlreadySentThereCountAgainstTheRoom) {
  DestinationCandidate b = reachable("b", 4096);
  b.committed_bytes = 3072 * kMib;  // 4096 − 512 − 3072 = 512 left
  DestinationChoice choice = chooseDestination(1024 * kMib, {b});
  EXPECT_EQ(choice.outcome, Outcome::none_fits);
  EXPECT_EQ(choice.reason,
            "b: 512 MiB free after the 512 MiB reserve and 3072 MiB of migrations under way, "
            "needs 1024 MiB");
}

TEST(DestinationChoice, NoneFitsNamesEachDestinationAndWhy) {
  DestinationChoice choice = chooseDestination(
      512 * kMib, {unreachable("c", "cannot connect to 'c': Connection refused"),
                   reachable("b", 812, 512)});
  EXPECT_EQ(choice.outcome, Outcome::none_fits);
  EXPECT_EQ(choice.reason,
            "c: unreachable: cannot connect to 'c': Connection refused; "
            "b: 300 MiB free after the 512 MiB reserve, needs 512 MiB");
}

TEST(DestinationChoice, NoCandidatesIsNoneFitsWithTheReason) {
  DestinationChoice choice = chooseDestination(kMib, {});
  EXPECT_EQ(choice.outcome, Outcome::none_fits);
  EXPECT_THAT(choice.reason, HasSubstr("no migration destination"));
}

TEST(DestinationChoice, MostRoomWinsAmongTheFittingOnes) {
  DestinationChoice choice =
      chooseDestination(kMib, {reachable("b", 4096), reachable("c", 8192), reachable("d", 2048)});
  ASSERT_EQ(choice.outcome, Outcome::chosen);
  EXPECT_EQ(choice.destination.uri, "c");
}

TEST(DestinationChoice, FewestGroupMembersBeforeMostRoom) {
  DestinationCandidate roomy = reachable("b", 16384);
  roomy.group_members = 1;
  DestinationCandidate small = reachable("c", 2048);
  DestinationChoice choice = chooseDestination(kMib, {roomy, small});
  ASSERT_EQ(choice.outcome, Outcome::chosen);
  EXPECT_EQ(choice.destination.uri, "c");
}

TEST(DestinationChoice, AGroupStillGoesWhereItFitsWhenItCannotSpread) {
  DestinationCandidate roomy = reachable("b", 16384);
  roomy.group_members = 2;
  DestinationChoice choice = chooseDestination(4096 * kMib, {roomy, reachable("c", 2048)});
  ASSERT_EQ(choice.outcome, Outcome::chosen);
  EXPECT_EQ(choice.destination.uri, "b");
}

TEST(DestinationChoice, AFullDestinationIsSkippedAndWaitedForWhenItIsTheOnlyOne) {
  DestinationCandidate busy = reachable("b", 16384);
  busy.migrations_in_flight = 2;
  DestinationChoice other = chooseDestination(kMib, {busy, reachable("c", 2048)});
  ASSERT_EQ(other.outcome, Outcome::chosen);
  EXPECT_EQ(other.destination.uri, "c");

  DestinationChoice wait = chooseDestination(kMib, {busy, unreachable("c", "down")});
  EXPECT_EQ(wait.outcome, Outcome::wait);
  EXPECT_THAT(wait.reason, HasSubstr("b: 2 of max 2 migrations to it running"));
  EXPECT_THAT(wait.reason, HasSubstr("c: unreachable: down"));
}

TEST(DestinationChoice, WaitsForAFirstProbeRatherThanFallingBack) {
  DestinationCandidate probing;
  probing.config.uri = "b";
  DestinationChoice choice = chooseDestination(kMib, {probing, unreachable("c", "down")});
  EXPECT_EQ(choice.outcome, Outcome::wait);
  EXPECT_THAT(choice.reason, HasSubstr("b: being probed"));
}

TEST(DestinationChoice, TheChosenEntryKeepsItsSettings) {
  DestinationCandidate b = reachable("b", 4096);
  b.config.migrate_uri = "tcp://10.0.0.2";
  DestinationChoice choice = chooseDestination(kMib, {b});
  ASSERT_EQ(choice.outcome, Outcome::chosen);
  EXPECT_EQ(choice.destination.migrate_uri, "tcp://10.0.0.2");
}

}  // namespace
