// Peers as destinations (docs/fleet.md#peers-as-destinations): which peers
// a host may migrate to, and the claims on a peer's incoming slots with the
// queue that hands a freed slot to the migration waiting longest.
#include "hostmaint/agent/fleet/fleet.hpp"

#include <algorithm>
#include <limits>

namespace hostmaint::agent::fleet {

namespace {

// Why a peer's record makes it no destination now, its incoming limit aside.
std::optional<std::string> peerWhyNot(const HostRecord& record) {
  if (record.migration_uri.empty()) return "publishes no migration URI";
  if (record.cordoned) return "cordoned";
  if (record.phase != "idle") return "in maintenance (" + record.phase + ")";
  if (!record.free_memory_bytes) return "its free memory is not known";
  if (*record.free_memory_bytes == 0) return "no free memory after its reserve";
  return std::nullopt;
}

std::string incomingCountText(unsigned incoming, unsigned max) {
  return std::to_string(incoming) + " of max " + std::to_string(max) + " incoming migrations";
}

// A claim of `source` for `uuid` on that peer: the same one, held already.
bool sameClaim(const IncomingMigration& held, const IncomingClaim& claim) {
  return held.source == claim.source && held.uuid == claim.uuid;
}

}  // namespace

std::vector<PeerDestination> peerDestinations(const FleetView& view, const std::string& self) {
  std::map<std::string, unsigned> incoming;  // destination -> from other sources
  for (const IncomingMigration& migration : view.incoming) {
    if (migration.source != self) ++incoming[migration.destination];
  }
  std::map<std::string, unsigned> queued;  // destination -> from every source
  for (const QueuedMigration& migration : view.queued) ++queued[migration.destination];
  std::vector<PeerDestination> peers;
  for (const auto& [host, record] : view.hosts) {
    if (host == self) continue;
    PeerDestination peer;
    peer.host = host;
    peer.uri = record.migration_uri;
    peer.migrate_uri = record.migrate_uri;
    peer.free_memory_bytes = record.free_memory_bytes;
    peer.incoming = incoming[host];
    peer.max_incoming = record.max_incoming;
    peer.queued = queued[host];
    peer.cordoned = record.cordoned;
    peer.phase = record.phase;
    if (auto why = peerWhyNot(record)) {
      peer.why_not = *why;
    } else if (peer.incoming >= peer.max_incoming) {
      peer.why_not = incomingCountText(peer.incoming, peer.max_incoming);
      peer.full = peer.max_incoming > 0;
    } else {
      peer.usable = true;
    }
    peers.push_back(std::move(peer));
  }
  return peers;
}

namespace {

bool sameQueued(const QueuedMigration& queued, const IncomingClaim& claim) {
  return queued.source == claim.source && queued.uuid == claim.uuid;
}

// The migrations of the peer's queue ahead of `claim` (all of them when it
// is not in line), longest waiting first; one that holds a claim already
// waits no more.
std::vector<QueuedMigration> queuedAhead(const PeerClaims& peer, const IncomingClaim& claim) {
  std::int64_t place = std::numeric_limits<std::int64_t>::max();
  for (const QueuedMigration& queued : peer.queue) {
    if (sameQueued(queued, claim)) place = queued.create_revision;
  }
  std::vector<QueuedMigration> ahead;
  for (const QueuedMigration& queued : peer.queue) {
    const bool claimed = std::any_of(
        peer.claims.begin(), peer.claims.end(), [&](const IncomingMigration& held) {
          return held.source == queued.source && held.uuid == queued.uuid;
        });
    if (!claimed && !sameQueued(queued, claim) && queued.create_revision < place)
      ahead.push_back(queued);
  }
  std::sort(ahead.begin(), ahead.end(), [](const QueuedMigration& a, const QueuedMigration& b) {
    return a.create_revision < b.create_revision;
  });
  return ahead;
}

std::string queuedText(const std::vector<QueuedMigration>& ahead) {
  constexpr std::size_t kNamed = 3;
  std::string names;
  for (std::size_t i = 0; i < ahead.size() && i < kNamed; ++i) {
    if (i > 0) names += ", ";
    names += ahead[i].source + ": " + (ahead[i].name.empty() ? ahead[i].uuid : ahead[i].name);
  }
  if (ahead.size() > kNamed) names += ", ...";
  return std::to_string(ahead.size()) + " waiting longer " + (ahead.size() == 1 ? "goes" : "go") +
         " first (" + names + ")";
}

}  // namespace

FleetPeer shownPeer(const PeerDestination& peer) {
  return FleetPeer{.host = peer.host,
                   .uri = peer.uri,
                   .free_memory_bytes = peer.free_memory_bytes,
                   .incoming = peer.incoming,
                   .max_incoming = peer.max_incoming,
                   .usable = peer.usable,
                   .why_not = peer.why_not,
                   .cordoned = peer.cordoned,
                   .phase = peer.phase,
                   .queued = peer.queued};
}

std::optional<std::string> incomingRefusal(const PeerClaims& peer, const IncomingClaim& claim) {
  if (claim.running) return std::nullopt;
  const std::string name = "peer " + claim.destination;
  if (!peer.record) return name + " is no longer in the fleet";
  if (auto why = peerWhyNot(*peer.record)) return name + " takes no migration now: " + *why;
  unsigned count = 0;
  std::string holders;
  for (const IncomingMigration& held : peer.claims) {
    if (sameClaim(held, claim)) continue;
    ++count;
    if (!holders.empty()) holders += ", ";
    holders += held.source + ": " + (held.name.empty() ? held.uuid : held.name);
  }
  const unsigned max = peer.record->max_incoming;
  if (count >= max) {
    return name + " has " + incomingCountText(count, max) +
           (holders.empty() ? std::string() : " (" + holders + ")");
  }
  // The free slots go to the migrations waiting longest, from any source.
  const std::vector<QueuedMigration> ahead = queuedAhead(peer, claim);
  if (ahead.size() < max - count) return std::nullopt;
  return name + " has " + incomingCountText(count, max) + "; " + queuedText(ahead);
}

IncomingClaimTxn incomingClaimTxn(const FleetKeys& keys, const PeerClaims& peer,
                                  const IncomingClaim& claim, std::int64_t lease) {
  const std::string key = keys.incoming(claim.destination, claim.source, claim.uuid);
  const std::string guard = keys.incomingGuard(claim.destination);
  const auto others = std::count_if(peer.claims.begin(), peer.claims.end(),
                                    [&](const IncomingMigration& held) {
                                      return !sameClaim(held, claim);
                                    });
  IncomingClaimTxn txn;
  txn.compares = {Compare::modRevisionIs(guard, peer.guard_revision), Compare::absent(key)};
  txn.success = {Put{guard, std::to_string(others + 1), 0}, Put{key, claim.name, lease},
                 Delete{keys.incomingQueue(claim.destination, claim.source, claim.uuid)}};
  return txn;
}

namespace {

// The peer's record, its claims, the guard and its queue, at one revision.
// A record that cannot be read is left unset, and said in `malformed`.
PeerClaims readPeerClaims(EtcdClient& etcd, const FleetKeys& keys, const std::string& peer_host,
                          std::string& malformed) {
  const TxnResult read = etcd.txn({},
                                  {Range{keys.hostRecord(peer_host), false},
                                   Range{keys.incomingPrefix(peer_host), true},
                                   Range{keys.incomingGuard(peer_host), false},
                                   Range{keys.incomingQueuePrefix(peer_host), true}},
                                  {});
  if (read.ranges.size() != 4) throw EtcdFormatError("a read of four ranges answered otherwise");
  PeerClaims peer;
  if (!read.ranges[0].empty()) {
    try {
      peer.record = decodeHostRecord(read.ranges[0].front().value);
      peer.record->host = peer_host;
    } catch (const EtcdFormatError& error) {
      malformed = error.what();
    }
  }
  FleetView listed = parseFleetView(read.ranges[1], keys);
  peer.claims = std::move(listed.incoming);
  if (!read.ranges[2].empty()) peer.guard_revision = read.ranges[2].front().mod_revision;
  listed = parseFleetView(read.ranges[3], keys);
  peer.queue = std::move(listed.queued);
  return peer;
}

}  // namespace

IncomingClaimOutcome claimIncoming(EtcdClient& etcd, const FleetKeys& keys,
                                   const IncomingClaim& claim, std::int64_t lease) {
  constexpr int kAttempts = 3;
  IncomingClaimOutcome outcome;
  PeerClaims peer;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string malformed;
    peer = readPeerClaims(etcd, keys, claim.destination, malformed);
    if (!malformed.empty()) {
      outcome.why_not = "peer " + claim.destination + "'s record is malformed: " + malformed;
      return outcome;
    }
    outcome.claims = peer.claims;
    if (std::any_of(peer.claims.begin(), peer.claims.end(),
                    [&](const IncomingMigration& held) { return sameClaim(held, claim); })) {
      outcome.claimed = true;
      return outcome;
    }
    if (auto why = incomingRefusal(peer, claim)) {
      outcome.why_not = *why;
      break;
    }
    const IncomingClaimTxn txn = incomingClaimTxn(keys, peer, claim, lease);
    if (etcd.txn(txn.compares, txn.success, {}).succeeded) {
      outcome.claimed = true;
      outcome.claims.push_back(
          IncomingMigration{claim.destination, claim.source, claim.uuid, claim.name, lease});
      return outcome;
    }
    outcome.why_not = "another host claimed an incoming migration of peer " + claim.destination +
                      " first";
  }
  // Refused by a peer that is still a destination: in line for its next
  // free slot, keeping the place it has.
  if (claim.running || !peer.record || peerWhyNot(*peer.record)) return outcome;
  outcome.queued = std::any_of(peer.queue.begin(), peer.queue.end(),
                               [&](const QueuedMigration& q) { return sameQueued(q, claim); });
  if (!outcome.queued) {
    const std::string key = keys.incomingQueue(claim.destination, claim.source, claim.uuid);
    etcd.txn({Compare::absent(key)}, {Put{key, claim.name, lease}}, {});
    outcome.queued = true;  // put now, or by an earlier round whose answer was lost
  }
  return outcome;
}

void releaseIncoming(EtcdClient& etcd, const FleetKeys& keys, const IncomingMigration& claim) {
  etcd.remove(keys.incoming(claim.destination, claim.source, claim.uuid));
}

void leaveIncomingQueue(EtcdClient& etcd, const FleetKeys& keys, const QueuedMigration& queued) {
  etcd.remove(keys.incomingQueue(queued.destination, queued.source, queued.uuid));
}

}  // namespace hostmaint::agent::fleet
