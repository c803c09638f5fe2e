// The fleet's shared state in etcd (docs/fleet.md): the key layout, each
// host's published record, the rolling schedule, the slot holds, and the
// transactions that take and give back a maintenance slot.
//
// Keys, under {prefix}/{name}/:
//   slots/all/{i}                 host name, with the holder's slot lease: i < max_concurrent
//   slots/domain/{label}/{j}      host name, same lease: j < max_concurrent_per_domain
//   holders/{host}                SlotHold as JSON, same lease
//   hosts/{host}                  HostRecord as JSON, with the host's record lease
//   schedule                      RollingSchedule as JSON, no lease
//   done/{schedule id}/{host}     time the host finished that schedule, no lease
//   groups/{group}/impact/{k}     ImpactHold as JSON, with the holder's slot lease:
//                                 k < the member's max_impacted_members
//   incoming/{dest}/{source}/{uuid}  the domain's name, with the source's slot
//                                 lease: a migration from source to dest peer,
//                                 claimed before it starts
//   incoming_guard/{dest}         the number of claims on dest when the last one
//                                 was made, no lease: every claim rewrites it,
//                                 so two concurrent claims cannot both pass
//
// Pure parsing and layout here; claimSlot/releaseSlot/readFleetView do the
// I/O through an EtcdClient on the caller's (worker) thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/fleet/etcd_client.hpp"
#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent::fleet {

class FleetKeys {
 public:
  FleetKeys(const std::string& prefix, const std::string& name);
  const std::string& base() const { return base_; }  // "{prefix}/{name}/"
  std::string slot(unsigned index) const;
  std::string domainSlot(const std::string& label, unsigned index) const;
  std::string holder(const std::string& host) const;
  std::string hostRecord(const std::string& host) const;
  std::string schedule() const;
  std::string done(const std::string& schedule_id, const std::string& host) const;
  std::string groupImpact(const std::string& group, unsigned index) const;
  std::string incoming(const std::string& destination, const std::string& source,
                       const std::string& uuid) const;
  std::string incomingPrefix(const std::string& destination) const;
  std::string incomingGuard(const std::string& destination) const;
  std::string incomingQueue(const std::string& destination, const std::string& source,
                            const std::string& uuid) const;
  std::string incomingQueuePrefix(const std::string& destination) const;

 private:
  std::string base_;
};

// A group's members on one host, by name, and which of them are impacted
// now (acted on, down, or within their recovery time).
struct GroupMembers {
  std::vector<std::string> members;
  std::vector<std::string> impacted;
  unsigned max_impacted = 0;  // the smallest of its members' max_impacted_members; 0: unknown
  bool operator==(const GroupMembers&) const = default;
};

// What a host tells the others about itself.
struct HostRecord {
  std::string host;
  std::string phase = "idle";  // as in status.json
  bool ready = false;
  std::optional<std::string> session_id;
  std::optional<unsigned> slot;
  bool waiting_for_slot = false;
  bool cordoned = false;
  std::string failure_domain;
  unsigned domains = 0;          // in this maintenance's plan
  unsigned domains_settled = 0;  // done, left or restored: the progress
  std::vector<std::string> blockers;  // "subject: reason", at most a few
  std::optional<std::string> schedule_id;
  TimePoint updated_at{};
  // Groups across hosts: this host's members of each group.
  std::map<std::string, GroupMembers> groups;
  // Peers as destinations: where the others migrate to this host (empty: it
  // is not offered), its free memory after its reserve (unset: unknown),
  // and the migrations into it now and at most.
  std::string migration_uri;
  std::string migrate_uri;
  std::optional<std::uint64_t> free_memory_bytes;
  unsigned incoming = 0;
  unsigned max_incoming = 0;
  bool operator==(const HostRecord&) const = default;
};
std::string encodeHostRecord(const HostRecord& record);
HostRecord decodeHostRecord(const std::string& text);  // throws EtcdFormatError
// The record of `status` (the host's published status); the destination
// fields are the caller's.
HostRecord hostRecordFrom(const HostStatus& status, const std::string& host,
                          const std::string& failure_domain);

// `hostmaintctl fleet schedule`: roll maintenance over these hosts.
struct RollingSchedule {
  std::string id;
  bool all = false;                // every host that publishes a record
  std::vector<std::string> hosts;  // when not all
  unsigned max_concurrent = 1;
  std::optional<TimePoint> window_start;  // unset: now
  std::optional<TimePoint> window_end;    // unset: start + 24h
  std::string reason;
  std::string created_by;
  TimePoint created_at{};
  bool includes(const std::string& host) const;
  bool operator==(const RollingSchedule&) const = default;
};
std::string encodeSchedule(const RollingSchedule& schedule);
RollingSchedule decodeSchedule(const std::string& text);  // throws EtcdFormatError

// A slot held by a host: the value of holders/{host}.
struct SlotHold {
  unsigned slot = 0;
  std::optional<unsigned> domain_slot;
  std::string failure_domain;
  std::string session_id;
  std::int64_t lease = 0;  // from the key's lease, not its value
  bool operator==(const SlotHold&) const = default;
};
std::string encodeHold(const SlotHold& hold);
SlotHold decodeHold(const std::string& text, std::int64_t lease);  // throws EtcdFormatError

// One impact of a group taken by a host for one of its members: the value
// of groups/{group}/impact/{index}.
struct ImpactHold {
  std::string group;  // from the key
  unsigned index = 0;  // from the key
  std::string host;
  std::string uuid;
  std::string name;
  std::int64_t lease = 0;  // from the key's lease
  bool operator==(const ImpactHold&) const = default;
};
std::string encodeImpact(const ImpactHold& impact);
ImpactHold decodeImpact(const std::string& text, std::int64_t lease);  // throws EtcdFormatError

// A migration from a source to a peer: incoming/{destination}/{source}/{uuid}.
struct IncomingMigration {
  std::string destination;
  std::string source;
  std::string uuid;
  std::string name;  // the value
  std::int64_t lease = 0;  // from the key's lease
  bool operator==(const IncomingMigration&) const = default;
};

// A migration waiting for one of a peer's incoming slots, in line:
// incoming_queue/{destination}/{source}/{uuid}, put when its claim was
// refused. Its create revision is its place: a free slot goes to those
// waiting longest first.
struct QueuedMigration {
  std::string destination;
  std::string source;
  std::string uuid;
  std::string name;  // the value
  std::int64_t lease = 0;
  std::int64_t create_revision = 0;
  bool operator==(const QueuedMigration&) const = default;
};

// Everything under the fleet's prefix, as read at one revision.
struct FleetView {
  std::map<std::string, HostRecord> hosts;
  std::map<unsigned, std::string> slots;  // slots/all: index -> host
  std::map<std::string, std::map<unsigned, std::string>> domain_slots;  // label -> index -> host
  std::map<std::string, SlotHold> holders;
  std::optional<RollingSchedule> schedule;
  std::map<std::string, std::set<std::string>> done;  // schedule id -> hosts
  std::map<std::string, std::map<unsigned, ImpactHold>> impacts;  // group -> index -> hold
  std::vector<IncomingMigration> incoming;
  std::vector<QueuedMigration> queued;
  std::vector<std::string> malformed;  // keys whose value could not be read
  bool operator==(const FleetView&) const = default;
};
// Reads the key-values of one prefix range; a malformed value is listed,
// not fatal (one bad record must not blind a host to the others).
FleetView parseFleetView(const std::vector<KeyValue>& kvs, const FleetKeys& keys);
FleetView readFleetView(EtcdClient& etcd, const FleetKeys& keys);

struct SlotLimits {
  unsigned max_concurrent = 1;
  unsigned max_per_domain = 0;  // 0: no per-domain limit
};

struct ClaimOutcome {
  std::optional<SlotHold> hold;
  std::string why_not;  // when no hold: "all 1 slots are held (by b)"
};
// Takes a free slot for `host` in one transaction with `lease` (the slot's
// own lease): the holder key and every slot key are created only if none
// exists, so a slot is never granted twice and a host never holds two.
// Reads the view first to pick free indexes; retries a few times when
// another host won the race. A holder key left by this host's previous
// process (its lease still alive) is returned as it is: the caller adopts
// that lease instead.
ClaimOutcome claimSlot(EtcdClient& etcd, const FleetKeys& keys, const std::string& host,
                       const std::string& failure_domain, const std::string& session_id,
                       const SlotLimits& limits, std::int64_t lease);

// The index of groups/{group}/impact/ a host takes for one more impacted
// member of `group`: the first below `limit` nobody holds; nullopt when all
// are held.
std::optional<unsigned> freeImpactIndex(const FleetView& view, const std::string& group,
                                        unsigned limit);
// Why a member of `group` cannot be impacted now, naming who holds the
// impacts: "at most 1 member of group 'db' impacted across the fleet, held
// by h2 (vm-db2)".
std::string impactsHeldText(const FleetView& view, const std::string& group, unsigned limit);
// Takes impact `impact.index` of its group in one transaction with `lease`
// (the holder's slot lease): created only if absent, so an index is never
// granted twice. False when another host took it first.
bool takeImpact(EtcdClient& etcd, const FleetKeys& keys, const ImpactHold& impact,
                std::int64_t lease);
// Gives an impact back: deleted only while it is still this one.
void releaseImpact(EtcdClient& etcd, const FleetKeys& keys, const ImpactHold& impact);

// A peer as a migration destination for `self`, and whether its record
// allows it now: not this host, a migration URI, not cordoned, not in
// maintenance, room (free memory above 0) and below its incoming limit
// (migrations to it from other sources counted by their keys).
struct PeerDestination {
  std::string host;
  std::string uri;
  std::string migrate_uri;
  std::optional<std::uint64_t> free_memory_bytes;
  unsigned incoming = 0;  // from every source but `self`
  unsigned max_incoming = 0;
  unsigned queued = 0;  // migrations waiting in its queue, from every source
  bool usable = false;
  std::string why_not;  // when not usable
  bool cordoned = false;
  std::string phase;  // as its record says
  // Not usable only because its incoming limit (above 0) is reached: a
  // destination again once a migration to it ends.
  bool full = false;
  bool operator==(const PeerDestination&) const = default;
};
std::vector<PeerDestination> peerDestinations(const FleetView& view, const std::string& self);
// A peer as status.json's fleet.peers shows it.
FleetPeer shownPeer(const PeerDestination& peer);

// Peers as destinations, enforced: before a migration to a peer starts, its
// source claims one of the peer's incoming slots in a transaction. The claim
// is the key incoming/{peer}/{source}/{uuid} on the source's slot lease
// (deleted when the migration ends, or with the lease when the source dies);
// the transaction also rewrites incoming_guard/{peer} and compares its mod
// revision with the one read with the claims, so of two sources claiming the
// peer's last slot at once only one passes: the other reads again and is
// refused. The count of claims thus never exceeds max_incoming_migrations.
// A refused claim waits in line (incoming_queue/{peer}/{source}/{uuid}, on
// the same lease): a slot that frees goes to the migrations waiting longest,
// from whichever source, not to whichever source asks first; otherwise a
// source whose migration just ended, claiming again at once, could keep a
// busy peer to itself.
struct IncomingClaim {
  std::string destination;  // the peer
  std::string source;       // this host
  std::string uuid;
  std::string name;
  // The migration already runs (found after a restart, or its claim lost
  // with the slot): it is claimed whatever the count, so that the others
  // count it, but it never waits for the claim.
  bool running = false;
  bool operator==(const IncomingClaim&) const = default;
};
// What a source reads of a peer before it claims, at one revision.
struct PeerClaims {
  std::optional<HostRecord> record;  // unset: the peer has no record (gone)
  std::vector<IncomingMigration> claims;  // on the peer, from every source
  std::int64_t guard_revision = 0;  // mod revision of incoming_guard/{peer}; 0: never written
  std::vector<QueuedMigration> queue;  // waiting for the peer, from every source
};
// Why `claim` may not be taken on what was read: the peer gone or no longer
// a destination (cordoned, in maintenance, no room), or its incoming limit
// reached by the claims of every source (this one's other domains too),
// naming them: "peer h3 has 1 of max 1 incoming migrations (h2: vm-a)",
// or its free slots promised to migrations waiting longer in its queue:
// "peer h3 has 0 of max 1 incoming migrations; 1 waiting longer goes
// first (h2: vm-b)". nullopt: it may be tried. A running claim is never
// refused.
std::optional<std::string> incomingRefusal(const PeerClaims& peer, const IncomingClaim& claim);
// The transaction that takes `claim` with `lease`, given what was read:
// guarded by the guard's mod revision, it creates the claim key, rewrites
// the guard with the count of claims it makes and takes the claim's place
// in the queue out.
struct IncomingClaimTxn {
  std::vector<Compare> compares;
  std::vector<Operation> success;
};
IncomingClaimTxn incomingClaimTxn(const FleetKeys& keys, const PeerClaims& peer,
                                  const IncomingClaim& claim, std::int64_t lease);
struct IncomingClaimOutcome {
  bool claimed = false;
  std::string why_not;  // when not claimed
  std::vector<IncomingMigration> claims;  // the peer's, as last read (with this one when claimed)
  bool queued = false;  // refused, and in the peer's queue (put now, or earlier)
};
// Reads the peer (one transaction of ranges: one revision), then claims in
// the guarded transaction; when another source claimed in between, reads
// again, a few times. A claim key of this source's that exists already is
// claimed. Refused while the peer is otherwise a destination, the claim is
// put in the peer's queue, unless it is there already (keeping its place).
IncomingClaimOutcome claimIncoming(EtcdClient& etcd, const FleetKeys& keys,
                                   const IncomingClaim& claim, std::int64_t lease);
// Gives a claim back: its migration ended (or never started).
void releaseIncoming(EtcdClient& etcd, const FleetKeys& keys, const IncomingMigration& claim);
// Takes a migration out of a peer's queue: it no longer waits for that peer.
void leaveIncomingQueue(EtcdClient& etcd, const FleetKeys& keys, const QueuedMigration& queued);

// Every group with a member on a host publishing a record: its members,
// limit and impacted members across the fleet, and the impacts held. By
// group name.
std::vector<FleetGroup> groupsAcrossFleet(const FleetView& view);

// MemAvailable of /proc/meminfo, in bytes; nullopt when absent.
std::optional<std::uint64_t> memAvailableBytes(std::string_view meminfo);

// The etcd client settings of a [fleet] section: the daemon's and
// hostmaintctl fleet's, so both reach etcd the same way.
EtcdSettings etcdSettingsFrom(const FleetConfig& config);

}  // namespace hostmaint::agent::fleet
