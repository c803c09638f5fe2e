// The fleet's shared state as read from etcd (agent/src/fleet/fleet.cpp),
// the [fleet] configuration, and what hostmaintctl fleet makes of them
// (agent/ctl/fleet_commands.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "exit_status.hpp"
#include "fleet_commands.hpp"
#include "render.hpp"
#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/fleet/fleet.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "hostmaint/agent/service/fleet_link.hpp"
#include "hostmaint/agent/service/status_http_server.hpp"

namespace hostmaint::agent::fleet {
namespace {

using ::testing::HasSubstr;

const FleetKeys kKeys("/hostmaint", "prod");

TEST(FleetKeys, LayOutEveryKeyUnderTheFleetsPrefix) {
  EXPECT_EQ(kKeys.base(), "/hostmaint/prod/");
  EXPECT_EQ(kKeys.slot(0), "/hostmaint/prod/slots/all/0");
  EXPECT_EQ(kKeys.domainSlot("rack1", 2), "/hostmaint/prod/slots/domain/rack1/2");
  EXPECT_EQ(kKeys.holder("h1"), "/hostmaint/prod/holders/h1");
  EXPECT_EQ(kKeys.hostRecord("h1"), "/hostmaint/prod/hosts/h1");
  EXPECT_EQ(kKeys.schedule(), "/hostmaint/prod/schedule");
  EXPECT_EQ(kKeys.done("r1", "h1"), "/hostmaint/prod/done/r1/h1");
}

TEST(FleetView, ReadsEveryKindOfKeyAndListsWhatIsMalformed) {
  HostRecord record;
  record.host = "h1";
  record.phase = "draining";
  record.slot = 0;
  record.domains = 4;
  record.domains_settled = 1;
  record.updated_at = *parseTime("2026-12-01T09:00:00Z");
  SlotHold hold{0, 1, "rack1", "s1", 0};
  RollingSchedule schedule;
  schedule.id = "r1";
  schedule.hosts = {"h1", "h2"};
  schedule.max_concurrent = 2;
  const std::vector<KeyValue> kvs{
      {kKeys.hostRecord("h1"), encodeHostRecord(record), 1, 1, 7},
      {kKeys.hostRecord("h2"), "{not json", 1, 1, 8},
      {kKeys.slot(0), "h1", 1, 1, 9},
      {kKeys.domainSlot("rack1", 1), "h1", 1, 1, 9},
      {kKeys.holder("h1"), encodeHold(hold), 1, 1, 9},
      {kKeys.schedule(), encodeSchedule(schedule), 1, 1, 0},
      {kKeys.done("r1", "h3"), "2026-12-01T09:00:00Z", 1, 1, 0},
      {"/hostmaint/other/hosts/x", "{}", 1, 1, 0},
  };
  const FleetView view = parseFleetView(kvs, kKeys);
  ASSERT_EQ(view.hosts.size(), 1u);
  EXPECT_EQ(view.hosts.at("h1"), record);
  EXPECT_EQ(view.slots, (std::map<unsigned, std::string>{{0, "h1"}}));
  EXPECT_EQ(view.domain_slots.at("rack1").at(1), "h1");
  SlotHold expected = hold;
  expected.lease = 9;  // the key's lease, not a value in the document
  EXPECT_EQ(view.holders.at("h1"), expected);
  ASSERT_TRUE(view.schedule);
  EXPECT_EQ(*view.schedule, schedule);
  EXPECT_TRUE(view.schedule->includes("h2"));
  EXPECT_FALSE(view.schedule->includes("h3"));
  EXPECT_TRUE(view.done.at("r1").contains("h3"));
  ASSERT_EQ(view.malformed.size(), 1u);
  EXPECT_THAT(view.malformed[0], HasSubstr("/hostmaint/prod/hosts/h2"));
}

TEST(FleetKeys, LayOutGroupImpactsAndIncomingMigrations) {
  EXPECT_EQ(kKeys.groupImpact("db", 1), "/hostmaint/prod/groups/db/impact/1");
  EXPECT_EQ(kKeys.incoming("h2", "h1", "u-1"), "/hostmaint/prod/incoming/h2/h1/u-1");
}

TEST(HostRecord, CarriesGroupsAndWhatAPeerOffersAndReadsOldRecords) {
  HostRecord record;
  record.host = "h1";
  record.groups["db"] = GroupMembers{{"vm-db1", "vm-db3"}, {"vm-db1"}, 1};
  record.migration_uri = "qemu+tls://h1/system";
  record.migrate_uri = "tcp://10.0.0.1";
  record.free_memory_bytes = 64ull << 30;
  record.incoming = 1;
  record.max_incoming = 2;
  EXPECT_EQ(decodeHostRecord(encodeHostRecord(record)), record);
  const nlohmann::json encoded = nlohmann::json::parse(encodeHostRecord(record));
  EXPECT_EQ(encoded["groups"]["db"]["impacted"], nlohmann::json::array({"vm-db1"}));
  EXPECT_EQ(encoded["groups"]["db"]["max_impacted_members"], 1);
  // A group of a host that does not publish its limit: unknown (0).
  EXPECT_EQ(decodeHostRecord(R"({"groups":{"db":{"members":["a"]}}})").groups.at("db").max_impacted,
            0u);
  // A record of a host that does not publish them: none, unknown memory.
  const HostRecord old = decodeHostRecord(R"({"host":"h9","phase":"idle"})");
  EXPECT_TRUE(old.groups.empty());
  EXPECT_FALSE(old.free_memory_bytes);
  EXPECT_EQ(old.migration_uri, "");
  EXPECT_THROW(decodeHostRecord(R"({"groups":{"db":[1]}})"), EtcdFormatError);
  EXPECT_THROW(decodeHostRecord(R"({"free_memory_bytes":-1})"), EtcdFormatError);
}

TEST(HostRecord, ListsEachGroupsMembersAndTheImpactedOnes) {
  HostStatus status;
  status.domains.resize(3);
  status.domains[0].name = "vm-db1";
  status.domains[0].group = "db";
  status.domains[0].group_impacted = true;
  status.domains[0].group_max_impacted = 2;
  status.domains[1].name = "vm-db2";
  status.domains[1].group = "db";
  status.domains[1].group_max_impacted = 1;
  status.domains[2].name = "web";
  const HostRecord record = hostRecordFrom(status, "h1", "");
  ASSERT_EQ(record.groups.size(), 1u);
  EXPECT_EQ(record.groups.at("db").members, (std::vector<std::string>{"vm-db1", "vm-db2"}));
  EXPECT_EQ(record.groups.at("db").impacted, std::vector<std::string>{"vm-db1"});
  EXPECT_EQ(record.groups.at("db").max_impacted, 1u) << "the smallest of its members' limits";
}

TEST(GroupsAcrossFleet, CountTheMembersImpactedOnEveryHostAgainstTheSmallestLimit) {
  FleetView view;
  view.hosts["h1"].groups["db"] = GroupMembers{{"vm-db1", "vm-db3"}, {"vm-db1"}, 2};
  view.hosts["h2"].groups["db"] = GroupMembers{{"vm-db2"}, {"vm-db2"}, 1};
  view.hosts["h2"].groups["web"] = GroupMembers{{"web1"}, {}, 0};
  view.impacts["db"][0] = ImpactHold{"db", 0, "h1", "u-1", "vm-db1", 5};
  const std::vector<FleetGroup> groups = groupsAcrossFleet(view);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group, "db");
  EXPECT_EQ(groups[0].members, 3u);
  EXPECT_EQ(groups[0].max_impacted_members, 1u);
  EXPECT_EQ(groups[0].impacted,
            (std::vector<FleetGroupMember>{{"h1", "vm-db1"}, {"h2", "vm-db2"}}));
  EXPECT_EQ(groups[0].impacts_held, 1u);
  EXPECT_EQ(groups[1].group, "web");
  EXPECT_EQ(groups[1].max_impacted_members, 0u) << "no host publishes it: unknown";
  EXPECT_TRUE(groups[1].impacted.empty());
}

TEST(GroupImpacts, ReadFromTheirKeysAndTheFirstFreeIndexBelowTheLimitIsTaken) {
  const ImpactHold held{"db", 0, "h2", "u-2", "vm-db2", 0};
  const std::vector<KeyValue> kvs{
      {kKeys.groupImpact("db", 0), encodeImpact(held), 1, 1, 42},
      {kKeys.groupImpact("db", 2), encodeImpact(ImpactHold{"db", 2, "h3", "u-3", "vm-db3", 0}), 1,
       1, 43},
      {kKeys.groupImpact("web", 0), "{}", 1, 1, 44},
      {kKeys.incoming("h2", "h1", "u-1"), "vm1", 1, 1, 45},
      {kKeys.base() + "incoming/h2", "vm1", 1, 1, 45},
  };
  const FleetView view = parseFleetView(kvs, kKeys);
  ImpactHold expected = held;
  expected.lease = 42;
  EXPECT_EQ(view.impacts.at("db").at(0), expected);
  EXPECT_EQ(view.impacts.at("db").at(2).host, "h3");
  EXPECT_EQ(view.incoming, (std::vector<IncomingMigration>{{"h2", "h1", "u-1", "vm1", 45}}));
  EXPECT_EQ(view.malformed.size(), 2u)
      << "an impact naming no host, an incoming key without its parts";

  EXPECT_EQ(freeImpactIndex(view, "db", 1), std::nullopt);
  EXPECT_EQ(freeImpactIndex(view, "db", 2), 1u);
  EXPECT_EQ(freeImpactIndex(view, "db", 3), 1u);
  EXPECT_EQ(freeImpactIndex(view, "other", 1), 0u);
  EXPECT_EQ(impactsHeldText(view, "db", 1),
            "at most 1 member of group 'db' impacted across the fleet, held by h2 (vm-db2)");
  EXPECT_EQ(impactsHeldText(view, "db", 3),
            "at most 3 members of group 'db' impacted across the fleet, held by h2 (vm-db2), "
            "h3 (vm-db3)");
}

TEST(PeerDestinations, OnlyIdleUncordonedPeersWithRoomAndBelowTheirIncomingLimit) {
  FleetView view;
  auto peer = [&](const std::string& host, const std::string& phase) -> HostRecord& {
    HostRecord& record = view.hosts[host];
    record.host = host;
    record.phase = phase;
    record.migration_uri = "qemu+tls://" + host + "/system";
    record.free_memory_bytes = 8ull << 30;
    record.max_incoming = 2;
    return record;
  };
  peer("h1", "draining");  // self
  peer("h2", "idle");
  peer("h3", "empty");
  peer("h4", "idle").cordoned = true;
  peer("h5", "idle").free_memory_bytes = 0;
  peer("h6", "idle").migration_uri = "";
  peer("h7", "idle");
  peer("h8", "idle").free_memory_bytes.reset();
  view.incoming = {{"h7", "h9", "u-1", "a"}, {"h7", "h9", "u-2", "b"},  // h7 full from h9
                   {"h2", "h1", "u-3", "c"}};  // self's own: the engine counts those
  view.queued = {{"h7", "h1", "u-4", "d", 0, 30}, {"h7", "h2", "u-5", "e", 0, 31}};
  const std::vector<PeerDestination> peers = peerDestinations(view, "h1");
  ASSERT_EQ(peers.size(), 7u);
  std::map<std::string, PeerDestination> by_host;
  for (const auto& p : peers) by_host[p.host] = p;
  EXPECT_TRUE(by_host["h2"].usable);
  EXPECT_EQ(by_host["h2"].incoming, 0u);
  EXPECT_EQ(by_host["h2"].uri, "qemu+tls://h2/system");
  EXPECT_EQ(by_host["h3"].why_not, "in maintenance (empty)");
  EXPECT_EQ(by_host["h4"].why_not, "cordoned");
  EXPECT_EQ(by_host["h5"].why_not, "no free memory after its reserve");
  EXPECT_EQ(by_host["h6"].why_not, "publishes no migration URI");
  EXPECT_EQ(by_host["h7"].why_not, "2 of max 2 incoming migrations");
  EXPECT_EQ(by_host["h7"].queued, 2u) << "every source's, this host's too";
  EXPECT_EQ(by_host["h2"].queued, 0u);
  EXPECT_EQ(shownPeer(by_host["h7"]).queued, 2u);
  EXPECT_EQ(shownPeer(by_host["h7"]).why_not, "2 of max 2 incoming migrations");
  EXPECT_EQ(by_host["h8"].why_not, "its free memory is not known");
  for (const auto& p : peers) EXPECT_EQ(p.usable, p.host == "h2") << p.host;
  // Only h7 waits for a migration to end; the others are no destination.
  for (const auto& p : peers) EXPECT_EQ(p.full, p.host == "h7") << p.host;
}

TEST(PeerDestinations, APeerThatTakesNoIncomingMigrationIsNotFull) {
  FleetView view;
  HostRecord& record = view.hosts["h2"];
  record.phase = "idle";
  record.migration_uri = "qemu+tls://h2/system";
  record.free_memory_bytes = 8ull << 30;
  record.max_incoming = 0;
  const PeerDestination peer = peerDestinations(view, "h1").at(0);
  EXPECT_FALSE(peer.usable);
  EXPECT_FALSE(peer.full);
  EXPECT_EQ(peer.why_not, "0 of max 0 incoming migrations");
}

// Claims on a peer's incoming slots (docs/fleet.md, "Peers as destinations").
PeerClaims idlePeer(unsigned max_incoming) {
  PeerClaims peer;
  HostRecord record;
  record.host = "h3";
  record.phase = "idle";
  record.migration_uri = "qemu+tls://h3/system";
  record.free_memory_bytes = 8ull << 30;
  record.max_incoming = max_incoming;
  peer.record = record;
  return peer;
}

TEST(IncomingClaims, KeysOfAClaimAndOfThePeersGuard) {
  EXPECT_EQ(kKeys.incoming("h3", "h1", "u-1"), "/hostmaint/prod/incoming/h3/h1/u-1");
  EXPECT_EQ(kKeys.incomingPrefix("h3"), "/hostmaint/prod/incoming/h3/");
  EXPECT_EQ(kKeys.incomingGuard("h3"), "/hostmaint/prod/incoming_guard/h3");
  // The guard is not a claim: the view reads no migration from it.
  const FleetView view = parseFleetView({{kKeys.incomingGuard("h3"), "1", 5, 5, 0}}, kKeys);
  EXPECT_TRUE(view.incoming.empty());
  EXPECT_TRUE(view.malformed.empty());
}

TEST(IncomingClaims, RefusedAtThePeersLimitCountingEverySourceAndNamingThem) {
  PeerClaims peer = idlePeer(2);
  const IncomingClaim claim{"h3", "h1", "u-9", "vm-9", false};
  EXPECT_EQ(incomingRefusal(peer, claim), std::nullopt);
  peer.claims = {{"h3", "h2", "u-1", "vm-a", 7}};
  EXPECT_EQ(incomingRefusal(peer, claim), std::nullopt);
  // This host's other migration to it counts like another source's.
  peer.claims.push_back({"h3", "h1", "u-2", "vm-b", 8});
  EXPECT_EQ(incomingRefusal(peer, claim),
            "peer h3 has 2 of max 2 incoming migrations (h2: vm-a, h1: vm-b)");
  // The claim itself, held already, is not counted against itself.
  const IncomingClaim held{"h3", "h1", "u-2", "vm-b", false};
  EXPECT_EQ(incomingRefusal(peer, held), std::nullopt);
  // A migration that runs is claimed whatever the count.
  EXPECT_EQ(incomingRefusal(peer, IncomingClaim{"h3", "h1", "u-9", "vm-9", true}), std::nullopt);
}

TEST(IncomingClaims, RefusedWhenThePeerIsGoneOrNoLongerADestination) {
  const IncomingClaim claim{"h3", "h1", "u-9", "vm-9", false};
  EXPECT_EQ(incomingRefusal(PeerClaims{}, claim), "peer h3 is no longer in the fleet");
  PeerClaims peer = idlePeer(2);
  peer.record->cordoned = true;
  EXPECT_EQ(incomingRefusal(peer, claim), "peer h3 takes no migration now: cordoned");
  peer = idlePeer(2);
  peer.record->phase = "scheduled";
  EXPECT_EQ(incomingRefusal(peer, claim),
            "peer h3 takes no migration now: in maintenance (scheduled)");
  peer = idlePeer(0);
  EXPECT_EQ(incomingRefusal(peer, claim), "peer h3 has 0 of max 0 incoming migrations");
}

TEST(IncomingClaims, TheTransactionIsGuardedByTheRevisionTheClaimsWereReadAt) {
  PeerClaims peer = idlePeer(2);
  peer.claims = {{"h3", "h2", "u-1", "vm-a", 7}};
  peer.guard_revision = 41;
  const IncomingClaimTxn txn =
      incomingClaimTxn(kKeys, peer, IncomingClaim{"h3", "h1", "u-9", "vm-9", false}, 99);
  ASSERT_EQ(txn.compares.size(), 2u);
  // Any claim on the peer since the read rewrote the guard: this one fails
  // and reads again.
  EXPECT_EQ(txn.compares[0].key, kKeys.incomingGuard("h3"));
  EXPECT_EQ(txn.compares[0].target, Compare::Target::mod_revision);
  EXPECT_EQ(txn.compares[0].result, Compare::Result::equal);
  EXPECT_EQ(txn.compares[0].revision, 41);
  EXPECT_EQ(txn.compares[1].key, kKeys.incoming("h3", "h1", "u-9"));
  EXPECT_EQ(txn.compares[1].target, Compare::Target::create_revision);
  EXPECT_EQ(txn.compares[1].revision, 0);
  ASSERT_EQ(txn.success.size(), 3u);
  const auto& guard = std::get<Put>(txn.success[0]);
  EXPECT_EQ(guard.key, kKeys.incomingGuard("h3"));
  EXPECT_EQ(guard.value, "2");
  EXPECT_EQ(guard.lease, 0);
  const auto& key = std::get<Put>(txn.success[1]);
  EXPECT_EQ(key.key, kKeys.incoming("h3", "h1", "u-9"));
  EXPECT_EQ(key.value, "vm-9");
  EXPECT_EQ(key.lease, 99) << "on the source's slot lease: gone with the source";
  // Claimed, it waits in the peer's queue no more.
  EXPECT_EQ(std::get<Delete>(txn.success[2]).key, kKeys.incomingQueue("h3", "h1", "u-9"));
  // A guard never written is compared as absent (mod revision 0).
  EXPECT_EQ(incomingClaimTxn(kKeys, idlePeer(1), IncomingClaim{"h3", "h1", "u", "v", false}, 1)
                .compares[0]
                .revision,
            0);
}

TEST(IncomingClaims, ReadFromTheirKeysWithTheSourcesLease) {
  const FleetView view = parseFleetView({{kKeys.incoming("h3", "h1", "u-1"), "vm-a", 3, 3, 77}},
                                        kKeys);
  ASSERT_EQ(view.incoming.size(), 1u);
  EXPECT_EQ(view.incoming[0], (IncomingMigration{"h3", "h1", "u-1", "vm-a", 77}));
}

TEST(IncomingQueue, KeysReadWithTheirPlaceInLine) {
  EXPECT_EQ(kKeys.incomingQueue("h3", "h1", "u-1"), "/hostmaint/prod/incoming_queue/h3/h1/u-1");
  EXPECT_EQ(kKeys.incomingQueuePrefix("h3"), "/hostmaint/prod/incoming_queue/h3/");
  const FleetView view =
      parseFleetView({{kKeys.incomingQueue("h3", "h1", "u-1"), "vm-a", 12, 14, 77},
                      {kKeys.incomingQueuePrefix("h3") + "h1-bad", "vm-b", 13, 13, 77}},
                     kKeys);
  EXPECT_TRUE(view.incoming.empty()) << "a place in line is not a claim";
  ASSERT_EQ(view.queued.size(), 1u);
  EXPECT_EQ(view.queued[0], (QueuedMigration{"h3", "h1", "u-1", "vm-a", 77, 12}));
  ASSERT_EQ(view.malformed.size(), 1u);
  EXPECT_THAT(view.malformed[0], HasSubstr("incoming_queue/h3/h1-bad"));
}

TEST(IncomingQueue, AFreeSlotGoesToWhoWaitedLongestFromAnySource) {
  PeerClaims peer = idlePeer(1);
  const IncomingClaim mine{"h3", "h1", "u-9", "vm-9", false};
  // Nobody waits: the free slot may be tried.
  EXPECT_EQ(incomingRefusal(peer, mine), std::nullopt);
  // h2 has waited since revision 20, this one not at all: h2 goes first.
  peer.queue = {{"h3", "h2", "u-1", "vm-a", 7, 20}};
  EXPECT_EQ(incomingRefusal(peer, mine),
            "peer h3 has 0 of max 1 incoming migrations; 1 waiting longer goes first (h2: vm-a)");
  EXPECT_EQ(incomingRefusal(peer, IncomingClaim{"h3", "h2", "u-1", "vm-a", false}), std::nullopt)
      << "the one waiting longest takes it";
  // In line behind h2 (revision 25), still behind; ahead of it, first.
  peer.queue.push_back({"h3", "h1", "u-9", "vm-9", 8, 25});
  EXPECT_NE(incomingRefusal(peer, mine), std::nullopt);
  peer.queue[1].create_revision = 15;
  EXPECT_EQ(incomingRefusal(peer, mine), std::nullopt);
  // Two free slots: one waiting longer leaves one for this claim.
  peer = idlePeer(2);
  peer.queue = {{"h3", "h2", "u-1", "vm-a", 7, 20}};
  EXPECT_EQ(incomingRefusal(peer, mine), std::nullopt);
  // One of them claimed since: it waits no more and holds nothing back.
  peer = idlePeer(2);
  peer.claims = {{"h3", "h2", "u-1", "vm-a", 7}};
  peer.queue = {{"h3", "h2", "u-1", "vm-a", 7, 20}};
  EXPECT_EQ(incomingRefusal(peer, mine), std::nullopt);
  // A migration that runs never waits in line.
  peer = idlePeer(1);
  peer.queue = {{"h3", "h2", "u-1", "vm-a", 7, 20}};
  EXPECT_EQ(incomingRefusal(peer, IncomingClaim{"h3", "h1", "u-9", "vm-9", true}), std::nullopt);
}

TEST(IncomingQueue, ALongLineIsNamedByItsFirstThreeInOrder) {
  PeerClaims peer = idlePeer(1);
  for (int i = 0; i < 5; ++i)
    peer.queue.push_back({"h3", "h2", "u-" + std::to_string(i), "vm-" + std::to_string(i), 7,
                          50 - i});
  EXPECT_EQ(incomingRefusal(peer, IncomingClaim{"h3", "h1", "u-9", "vm-9", false}),
            "peer h3 has 0 of max 1 incoming migrations; 5 waiting longer go first "
            "(h2: vm-4, h2: vm-3, h2: vm-2, ...)");
}

TEST(MemAvailable, ReadFromMeminfo) {
  EXPECT_EQ(memAvailableBytes("MemTotal:       16318480 kB\nMemFree:          812344 kB\n"
                              "MemAvailable:    9876543 kB\nBuffers: 1 kB\n"),
            9876543ull * 1024);
  EXPECT_EQ(memAvailableBytes("MemTotal: 1 kB\n"), std::nullopt);
  EXPECT_EQ(memAvailableBytes("MemAvailable: lots\n"), std::nullopt);
}

TEST(FleetView, ScheduleWithoutIdOrLimitIsRefused) {
  EXPECT_THROW(decodeSchedule(R"({"all":true})"), EtcdFormatError);
  EXPECT_THROW(decodeSchedule(R"({"id":"r","all":true,"max_concurrent":0})"), EtcdFormatError);
  EXPECT_TRUE(decodeSchedule(R"({"id":"r","all":true})").includes("anyone"));
}

TEST(HostRecord, ComesFromTheStatusShown) {
  HostStatus status;
  status.phase = HostPhase::draining;
  status.session_id = "fleet-r1";
  status.cordon.active = true;
  status.domains.resize(3);
  status.domains[0].stage = DomainStage::done;
  status.domains[1].stage = DomainStage::acting;
  status.domains[2].stage = DomainStage::left;
  status.blockers.push_back(Blocker{"vm1", "migrating"});
  status.fleet = FleetStatus{};
  status.fleet->slot = 1;
  status.fleet->schedule_id = "r1";
  const HostRecord record = hostRecordFrom(status, "h1", "rack1");
  EXPECT_EQ(record.phase, "draining");
  EXPECT_EQ(record.slot, 1u);
  EXPECT_TRUE(record.cordoned);
  EXPECT_EQ(record.domains, 3u);
  EXPECT_EQ(record.domains_settled, 2u);
  EXPECT_EQ(record.blockers, std::vector<std::string>{"vm1: migrating"});
  EXPECT_EQ(record.failure_domain, "rack1");
  EXPECT_EQ(decodeHostRecord(encodeHostRecord(record)), record);
}

TEST(FleetConfig, OffByDefaultAndReadWhenGiven) {
  const Config defaults = parseConfig("", "t.conf");
  EXPECT_FALSE(defaults.fleet.enabled());
  const Config config = parseConfig(
      "[fleet]\nendpoints = [\"http://127.0.0.1:2379\", \"http://127.0.0.2:2379\"]\n"
      "name = \"prod\"\nhost = \"h1\"\nfailure_domain = \"rack1\"\nmax_concurrent = 3\n"
      "max_concurrent_per_domain = 1\nlease_ttl = \"30s\"\npoll_interval = \"500ms\"\n"
      "migration_uri = \"qemu+tls://h1/system\"\nmigrate_uri = \"tcp://10.0.0.1\"\n"
      "max_incoming_migrations = 0\n",
      "t.conf");
  EXPECT_TRUE(config.fleet.enabled());
  EXPECT_EQ(config.fleet.migration_uri, "qemu+tls://h1/system");
  EXPECT_EQ(config.fleet.migrate_uri, "tcp://10.0.0.1");
  EXPECT_EQ(config.fleet.max_incoming_migrations, 0u);
  EXPECT_EQ(defaults.fleet.migration_uri, "");
  EXPECT_EQ(defaults.fleet.max_incoming_migrations, 2u);
  EXPECT_EQ(config.fleet.endpoints.size(), 2u);
  EXPECT_EQ(config.fleet.max_concurrent, 3u);
  EXPECT_EQ(config.fleet.lease_ttl, std::chrono::seconds(30));
  EXPECT_EQ(config.fleet.poll_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(service::fleetHostName(config, "hostname"), "h1");
  EXPECT_EQ(service::fleetHostName(defaults, "hostname"), "hostname");
}

TEST(FleetConfig, RefusesWhatCannotWork) {
  auto refusal = [](const std::string& text) {
    try {
      parseConfig("[fleet]\n" + text, "t.conf");
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  EXPECT_THAT(refusal("endpoints = [\"127.0.0.1:2379\"]\n"), HasSubstr("http:// or https://"));
  EXPECT_THAT(refusal("name = \"a/b\"\n"), HasSubstr("must not contain '/'"));
  EXPECT_THAT(refusal("prefix = \"hostmaint\"\n"), HasSubstr("must start with '/'"));
  EXPECT_THAT(refusal("endpoints = [\"http://e:2379\"]\nuser = \"u\"\npassword_file = \"/p\"\n"),
              HasSubstr("must be https:// when fleet.user is set"));
  EXPECT_THAT(refusal("user = \"u\"\n"), HasSubstr("needs fleet.password_file"));
  EXPECT_THAT(refusal("client_key = \"/k\"\n"), HasSubstr("needs fleet.client_cert"));
  EXPECT_THAT(refusal("max_concurrent_per_domain = 1\n"), HasSubstr("needs fleet.failure_domain"));
  EXPECT_THAT(refusal("max_concurrent = 0\n"), HasSubstr("between 1 and 1000"));
  EXPECT_THAT(refusal("lease_ttl = \"1s\"\n"), HasSubstr("between 2s"));
}

TEST(FleetSession, NamesItsRollingSchedule) {
  EXPECT_EQ(service::fleetSessionId("r1"), "fleet-r1");
  EXPECT_EQ(service::scheduleIdOfSession("fleet-r1"), "r1");
  EXPECT_EQ(service::scheduleIdOfSession("fleet-"), std::nullopt);
  EXPECT_EQ(service::scheduleIdOfSession("3f2a-..."), std::nullopt);
}

TEST(FleetCtl, ScheduleArgumentsAreChecked) {
  const ctl::TimePoint now = *parseTime("2026-12-01T09:00:00Z");
  ctl::FleetScheduleArguments arguments;
  arguments.hosts = "h1,h2,,h3";
  arguments.max_concurrent = 2;
  arguments.window = "now/+8h";
  const RollingSchedule schedule = ctl::scheduleFrom(arguments, now);
  EXPECT_EQ(schedule.hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
  EXPECT_FALSE(schedule.all);
  EXPECT_EQ(schedule.max_concurrent, 2u);
  EXPECT_EQ(schedule.window_start, now);
  EXPECT_EQ(schedule.window_end, now + std::chrono::hours(8));
  EXPECT_EQ(schedule.id, "20261201T090000Z");

  auto usage = [&](ctl::FleetScheduleArguments bad) {
    try {
      ctl::scheduleFrom(bad, now);
    } catch (const ctl::CtlError& error) {
      EXPECT_EQ(error.status(), ctl::ExitStatus::usage);
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  ctl::FleetScheduleArguments no_window = arguments;
  no_window.window.clear();
  const RollingSchedule by_default = ctl::scheduleFrom(no_window, now);
  EXPECT_EQ(by_default.window_start, now);
  EXPECT_EQ(by_default.window_end, now + std::chrono::hours(24));

  ctl::FleetScheduleArguments neither;
  EXPECT_THAT(usage(neither), HasSubstr("either --hosts"));
  ctl::FleetScheduleArguments both = arguments;
  both.all = true;
  EXPECT_THAT(usage(both), HasSubstr("either --hosts"));
  ctl::FleetScheduleArguments no_end = arguments;
  no_end.window = "now";
  EXPECT_THAT(usage(no_end), HasSubstr("START/END"));
  ctl::FleetScheduleArguments backwards = arguments;
  backwards.window = "+2h/+1h";
  EXPECT_THAT(usage(backwards), HasSubstr("ends before it starts"));
}

TEST(FleetCtl, TableShowsEveryHostTheSlotsAndTheSchedule) {
  const ctl::TimePoint now = *parseTime("2026-12-01T09:00:10Z");
  FleetView view;
  HostRecord h1;
  h1.host = "h1";
  h1.phase = "draining";
  h1.domains = 4;
  h1.domains_settled = 1;
  h1.failure_domain = "rack1";
  h1.updated_at = *parseTime("2026-12-01T09:00:00Z");
  HostRecord h2;
  h2.host = "h2";
  h2.phase = "scheduled";
  h2.waiting_for_slot = true;
  view.hosts = {{"h1", h1}, {"h2", h2}};
  view.holders["h1"] = SlotHold{0, std::nullopt, "", "s", 5};
  view.holders["h9"] = SlotHold{1, std::nullopt, "", "s", 6};
  RollingSchedule schedule;
  schedule.id = "r1";
  schedule.all = true;
  schedule.max_concurrent = 2;
  view.schedule = schedule;
  view.done["r1"] = {"h3"};
  // h1 offers itself as a destination; h2 does not (no peer line).
  view.hosts["h1"].migration_uri = "qemu+tls://h1/system";
  view.hosts["h1"].max_incoming = 2;
  view.hosts["h1"].free_memory_bytes = 3ull << 30;
  view.hosts["h1"].cordoned = true;
  view.incoming = {{"h1", "h7", "u-7", "vm-7", 9}};
  view.hosts["h1"].groups["db"] = GroupMembers{{"vm-db1"}, {"vm-db1"}, 1};
  view.hosts["h2"].groups["db"] = GroupMembers{{"vm-db2", "vm-db4"}, {}, 1};
  view.impacts["db"][0] = ImpactHold{"db", 0, "h1", "u-1", "vm-db1", 5};
  const std::vector<std::string> lines = ctl::renderFleetTable(view, now);
  ASSERT_GE(lines.size(), 6u);
  EXPECT_THAT(lines[0], HasSubstr("HOST"));
  EXPECT_THAT(lines[1], ::testing::MatchesRegex("h1 +draining +0 +no +1/4 +rack1 +updated 10s ago"));
  EXPECT_THAT(lines[2], ::testing::MatchesRegex("h2 +scheduled +- +no +0/0 +- +waiting for a slot"));
  EXPECT_THAT(lines[3], HasSubstr("slot 1 held by h9, which publishes no record"));
  EXPECT_EQ(lines[4], "in maintenance: 2 host(s)");
  EXPECT_EQ(lines[5], "rolling schedule r1: all hosts, at most 2 at once, 1/2 done");
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_THAT(lines[6], ::testing::MatchesRegex("GROUP +IMPACTED +MEMBERS +IMPACTS +WHERE"));
  EXPECT_THAT(lines[7], ::testing::MatchesRegex("db +1/1 +3 +1 +h1: vm-db1"));
  EXPECT_THAT(lines[8], ::testing::MatchesRegex("PEER +FREE +INCOMING +CORDONED +PHASE +NOTE"));
  EXPECT_THAT(lines[9],
              ::testing::MatchesRegex("h1 +3.0 GiB +1/2 +yes +draining +cordoned"));
  // Without groups or peers, one line says so.
  const std::vector<std::string> bare = ctl::renderFleetTable(FleetView{}, now);
  EXPECT_THAT(bare, ::testing::Contains("no group has members in the fleet"));
  EXPECT_THAT(bare, ::testing::Contains("no host offers itself as a migration destination"));

  const nlohmann::json document = ctl::fleetViewJson(view, "prod");
  EXPECT_EQ(document["fleet"], "prod");
  EXPECT_EQ(document["hosts"].size(), 2u);
  EXPECT_EQ(document["hosts"][0]["holds_slot"], true);
  EXPECT_EQ(document["hosts_in_maintenance"], 2);
  EXPECT_EQ(document["schedule"]["id"], "r1");
  // Groups and peers shaped as in status.json's `fleet`; a peer's incoming
  // counts every source.
  EXPECT_EQ(document["groups"],
            nlohmann::json::parse(R"([{"group":"db","members":3,"max_impacted_members":1,
              "impacted":[{"host":"h1","domain":"vm-db1"}],"impacts_held":1}])"));
  ASSERT_EQ(document["peers"].size(), 2u);
  EXPECT_EQ(document["peers"][0]["host"], "h1");
  EXPECT_EQ(document["peers"][0]["incoming"], 1);
  EXPECT_EQ(document["peers"][0]["max_incoming"], 2);
  EXPECT_EQ(document["peers"][0]["cordoned"], true);
  EXPECT_EQ(document["peers"][0]["phase"], "draining");
  EXPECT_EQ(document["peers"][0]["usable"], false);
  EXPECT_EQ(document["peers"][1]["why_not"], "publishes no migration URI");
}

}  // namespace
}  // namespace hostmaint::agent::fleet

namespace hostmaint::ctl {
namespace {

// hostmaintctl status says the fleet is unreachable even while nothing waits
// for a slot, and which slot the host holds.
TEST(FleetCtl, StatusSaysWhetherTheFleetAnswers) {
  const RenderOptions utc{*agent::parseTime("2026-12-01T09:00:10Z"), false};
  nlohmann::json status = {{"host", "h1"}, {"phase", "idle"}, {"ready", false},
                           {"domains", nlohmann::json::array()},
                           {"blockers", nlohmann::json::array()},
                           {"fleet",
                            {{"name", "prod"}, {"host", "h1"}, {"state", "unreachable"},
                             {"since", "2026-12-01T09:00:00Z"},
                             {"last_error", "no etcd endpoint answered"}, {"slot", nullptr},
                             {"waiting_for_slot", false}, {"hosts", 3},
                             {"hosts_in_maintenance", 1}}}};
  std::string text = renderStatus(status, utc);
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "prod as h1: UNREACHABLE since 2026-12-01 09:00:00 UTC (10s ago) (no etcd "
                        "endpoint answered); 3 hosts, 1 in maintenance"));
  status["fleet"]["state"] = "ok";
  status["fleet"]["slot"] = 0;
  text = renderStatus(status, utc);
  EXPECT_THAT(text, ::testing::HasSubstr("prod as h1: reachable; holds slot 0; 3 hosts"));
}

}  // namespace
}  // namespace hostmaint::ctl

namespace hostmaint::service {
namespace {

TEST(FleetMetrics, GaugesOnlyWithAFleet) {
  agent::HostStatus status;
  EXPECT_EQ(renderMetrics(status).find("hostmaint_fleet_"), std::string::npos);
  status.fleet = agent::FleetStatus{};
  status.fleet->reachable = true;
  status.fleet->slot = 1;
  status.fleet->hosts = 3;
  status.fleet->hosts_in_maintenance = 2;
  status.fleet->max_concurrent = 2;
  const std::string text = renderMetrics(status);
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_up 1\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_slot_held 1\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_waiting_for_slot 0\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_hosts 3\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_hosts_in_maintenance 2\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nhostmaint_fleet_max_concurrent 2\n"));
  EXPECT_EQ(text.find("hostmaint_fleet_group_"), std::string::npos) << "no group, no family";
  EXPECT_EQ(text.find("hostmaint_fleet_peer_"), std::string::npos) << "no peer, no family";
}

TEST(FleetMetrics, OneSamplePerGroupAndPerPeer) {
  agent::HostStatus status;
  status.fleet = agent::FleetStatus{};
  status.fleet->groups = {agent::FleetGroup{"db", 3, 1, {{"h1", "vm-db1"}}, 1},
                          agent::FleetGroup{"web", 2, 0, {}, 0}};
  status.fleet->peers = {
      agent::FleetPeer{"h2", "qemu+tls://h2/system", 8ull << 30, 1, 2, true, "", false, "idle"},
      agent::FleetPeer{"h3", "qemu+tls://h3/system", std::nullopt, 0, 2, false, "cordoned",
                       true, "draining"}};
  const std::string text = renderMetrics(status);
  for (const char* line : {
           "# TYPE hostmaint_fleet_group_impacted gauge\n",
           "\nhostmaint_fleet_group_impacted{group=\"db\"} 1\n",
           "\nhostmaint_fleet_group_impacted{group=\"web\"} 0\n",
           "\nhostmaint_fleet_group_max_impacted{group=\"db\"} 1\n",
           "\nhostmaint_fleet_group_members{group=\"db\"} 3\n",
           "\nhostmaint_fleet_peer_incoming{peer=\"h2\"} 1\n",
           "\nhostmaint_fleet_peer_max_incoming{peer=\"h2\"} 2\n",
           "\nhostmaint_fleet_peer_free_memory_bytes{peer=\"h2\"} 8589934592\n",
           "\nhostmaint_fleet_peer_usable{peer=\"h2\"} 1\n",
           "\nhostmaint_fleet_peer_usable{peer=\"h3\"} 0\n",
           "\nhostmaint_fleet_peer_cordoned{peer=\"h3\"} 1\n",
           "\nhostmaint_fleet_peer_in_maintenance{peer=\"h2\"} 0\n",
           "\nhostmaint_fleet_peer_in_maintenance{peer=\"h3\"} 1\n",
       })
    EXPECT_THAT(text, ::testing::HasSubstr(line));
  // Unknown values are left out, not shown as 0.
  EXPECT_EQ(text.find("hostmaint_fleet_group_max_impacted{group=\"web\"}"), std::string::npos);
  EXPECT_EQ(text.find("hostmaint_fleet_peer_free_memory_bytes{peer=\"h3\"}"), std::string::npos);
}

}  // namespace
}  // namespace hostmaint::service

namespace hostmaint::agent {
namespace {

TEST(FleetStatusJson, ShownOnlyWithAFleetWithEveryField) {
  HostStatus status;
  EXPECT_FALSE(statusToJson(status).contains("fleet"));
  status.fleet = FleetStatus{};
  status.fleet->name = "prod";
  status.fleet->host = "h1";
  status.fleet->endpoint = "http://e:2379";
  status.fleet->since = *parseTime("2026-12-01T09:00:00Z");
  status.fleet->last_error = "no etcd endpoint answered";
  status.fleet->waiting_for_slot = true;
  status.fleet->max_concurrent = 2;
  status.fleet->hosts = 3;
  status.fleet->schedule_id = "r1";
  const nlohmann::json fleet = statusToJson(status)["fleet"];
  EXPECT_EQ(fleet, (nlohmann::json{{"name", "prod"},
                                   {"host", "h1"},
                                   {"state", "unreachable"},
                                   {"endpoint", "http://e:2379"},
                                   {"since", "2026-12-01T09:00:00Z"},
                                   {"last_error", "no etcd endpoint answered"},
                                   {"slot", nullptr},
                                   {"waiting_for_slot", true},
                                   {"max_concurrent", 2},
                                   {"hosts", 3},
                                   {"hosts_in_maintenance", 0},
                                   {"schedule_id", "r1"},
                                   {"impacts", nlohmann::json::array()},
                                   {"peers", nlohmann::json::array()},
                                   {"groups", nlohmann::json::array()}}));
  // The impacts held and the peers as destinations.
  status.fleet->impacts = {FleetImpact{"db", 0, "vm-db1"}};
  status.fleet->peers = {FleetPeer{"h2", "qemu+tls://h2/system", 8ull << 30, 1, 2, true, "",
                                   false, "idle", 3},
                         FleetPeer{"h3", "", std::nullopt, 0, 2, false,
                                   "publishes no migration URI", true, "empty"}};
  status.fleet->groups = {FleetGroup{"db", 3, 1, {{"h2", "vm-db2"}}, 1},
                          FleetGroup{"web", 1, 0, {}, 0}};
  const nlohmann::json more = fleetToJson(*status.fleet);
  EXPECT_EQ(more["impacts"],
            (nlohmann::json::array({{{"group", "db"}, {"index", 0}, {"domain", "vm-db1"}}})));
  EXPECT_EQ(more["peers"][0], (nlohmann::json{{"host", "h2"},
                                              {"uri", "qemu+tls://h2/system"},
                                              {"free_memory_bytes", 8ull << 30},
                                              {"incoming", 1},
                                              {"max_incoming", 2},
                                              {"queued", 3},
                                              {"usable", true},
                                              {"why_not", nullptr},
                                              {"cordoned", false},
                                              {"phase", "idle"}}));
  EXPECT_EQ(more["peers"][1]["free_memory_bytes"], nullptr);
  EXPECT_EQ(more["peers"][1]["why_not"], "publishes no migration URI");
  EXPECT_EQ(more["peers"][1]["cordoned"], true);
  EXPECT_EQ(more["peers"][1]["phase"], "empty");
  EXPECT_EQ(more["groups"], nlohmann::json::parse(R"([
      {"group":"db","members":3,"max_impacted_members":1,
       "impacted":[{"host":"h2","domain":"vm-db2"}],"impacts_held":1},
      {"group":"web","members":1,"max_impacted_members":null,"impacted":[],"impacts_held":0}])"));
}

}  // namespace
}  // namespace hostmaint::agent
