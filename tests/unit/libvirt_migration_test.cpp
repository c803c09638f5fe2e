// The pure parts of live migration and destination probing: the downtime
// ladder, failure classification, the host identity in capabilities.
#include <gtest/gtest.h>

#include "libvirt/destination_probe.hpp"
#include "libvirt/live_migration.hpp"

namespace hostmaint::hv::libvirt {
namespace {

using namespace std::chrono_literals;

TEST(DowntimeLadder, ClimbsEvenlyFromQemusDefaultToTheMaximum) {
  EXPECT_EQ(downtimeAtStep(1100ms, 1, 5), 300ms) << "starts where an unmanaged migration does";
  EXPECT_EQ(downtimeAtStep(1100ms, 2, 5), 500ms);
  EXPECT_EQ(downtimeAtStep(1100ms, 5, 5), 1100ms);
  EXPECT_EQ(downtimeAtStep(1100ms, 9, 5), 1100ms) << "never above the maximum";
}

TEST(DowntimeLadder, AMaximumBelowQemusDefaultIsKept) {
  EXPECT_EQ(downtimeAtStep(200ms, 1, 4), 200ms);
  EXPECT_EQ(downtimeAtStep(200ms, 4, 4), 200ms);
}

TEST(DowntimeLadder, NoStepsMeansTheMaximumAtOnce) {
  EXPECT_EQ(downtimeAtStep(500ms, 1, 0), 500ms);
}

TEST(MigrationFailure, ALostSourceConnectionIsUnknownOutcome) {
  EXPECT_EQ(classifyMigrationFailure(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, false),
            FailureKind::connection_lost);
}

TEST(MigrationFailure, UnreachableDestinationIsTheDestinations) {
  EXPECT_EQ(classifyMigrationFailure(VIR_ERR_SYSTEM_ERROR, VIR_FROM_RPC, true),
            FailureKind::destination);
  EXPECT_EQ(classifyMigrationFailure(VIR_ERR_AUTH_FAILED, VIR_FROM_REMOTE, true),
            FailureKind::destination);
}

TEST(MigrationFailure, AnythingElseIsOther) {
  EXPECT_EQ(classifyMigrationFailure(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, true),
            FailureKind::other);
}

TEST(HostIdentity, UuidOfTheHostElementOnly) {
  const std::string caps =
      "<capabilities><host><uuid>417d1a7c-5365-430d-86f5-3b38185808eb</uuid><cpu/></host>"
      "<guest><uuid>not-this</uuid></guest></capabilities>";
  EXPECT_EQ(hostUuidFromCapabilities(caps), "417d1a7c-5365-430d-86f5-3b38185808eb");
  EXPECT_EQ(hostUuidFromCapabilities("<capabilities><host><cpu/></host>"
                                     "<guest><uuid>x</uuid></guest></capabilities>"),
            "");
  EXPECT_EQ(hostUuidFromCapabilities("garbage"), "");
}

// Reading a host UUID can take seconds (a cold capability cache), so it is
// read only when the host names do not tell the hosts apart.
TEST(HostIdentity, DifferentHostNamesSettleItWithoutReadingTheUuids) {
  int uuid_reads = 0;
  const auto uuid = [&](std::string value) {
    return [&uuid_reads, value] {
      ++uuid_reads;
      return value;
    };
  };
  EXPECT_FALSE(sameHost("hm-lab-a", uuid("u1"), "hm-lab-b", uuid("u1")));
  EXPECT_EQ(uuid_reads, 0);
  EXPECT_TRUE(sameHost("node", uuid("u1"), "node", uuid("u1")));
  EXPECT_FALSE(sameHost("node", uuid("u1"), "node", uuid("u2")))
      << "two hosts that share a name are told apart by their UUIDs";
  EXPECT_TRUE(sameHost("node", uuid(""), "node", uuid("u2"))) << "no UUID: the name decides";
  EXPECT_TRUE(sameHost("", uuid("u1"), "node", uuid("u1"))) << "no name: the UUID decides";
  EXPECT_FALSE(sameHost("", uuid(""), "", uuid(""))) << "nothing known: not the same";
}

TEST(DestinationProbe, AnUnreachableDestinationSaysSo) {
  const DestinationReport report = probeDestination("test+tcp://127.0.0.1:1/default", nullptr);
  EXPECT_FALSE(report.reachable);
  EXPECT_NE(report.error.find("cannot connect"), std::string::npos) << report.error;
}

TEST(DestinationProbe, TheTestDriverReportsItsMemory) {
  const DestinationReport report = probeDestination("test:///default", nullptr);
  ASSERT_TRUE(report.reachable) << report.error;
  EXPECT_GT(report.free_memory_bytes, 0u);
  EXPECT_GE(report.total_memory_bytes, report.free_memory_bytes);
}

TEST(DestinationProbe, ADestinationThatIsThisHostIsRefused) {
  Connection source(virConnectOpen("test:///default"));
  ASSERT_TRUE(source);
  const DestinationReport report = probeDestination("test:///default", source.get());
  EXPECT_FALSE(report.reachable);
  EXPECT_NE(report.error.find("cannot be drained onto itself"), std::string::npos) << report.error;
}

}  // namespace
}  // namespace hostmaint::hv::libvirt
