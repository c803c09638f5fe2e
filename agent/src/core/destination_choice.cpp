#include "destination_choice.hpp"

#include <tuple>

namespace hostmaint::agent {

namespace {

std::string mib(std::uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

void addReason(std::string& reasons, const std::string& uri, const std::string& why) {
  if (!reasons.empty()) reasons += "; ";
  reasons += uri + ": " + why;
}

}  // namespace

DestinationChoice chooseDestination(std::uint64_t needed_bytes,
                                    const std::vector<DestinationCandidate>& candidates) {
  DestinationChoice choice;
  if (candidates.empty()) {
    choice.reason = "no migration destination is configured or requested";
    return choice;
  }
  std::string reasons;
  bool may_free_up = false;
  const DestinationCandidate* best = nullptr;
  std::uint64_t best_room = 0;
  const DestinationCandidate* best_full_peer = nullptr;
  std::uint64_t best_full_peer_room = 0;
  auto better = [](const DestinationCandidate& candidate, std::uint64_t room,
                   const DestinationCandidate* than, std::uint64_t than_room) {
    return !than || std::make_tuple(candidate.group_members, than_room) <
                        std::make_tuple(than->group_members, room);
  };
  for (const DestinationCandidate& candidate : candidates) {
    const std::string& uri = candidate.config.uri;
    if (!candidate.report) {
      addReason(reasons, uri, "being probed");
      may_free_up = true;
      continue;
    }
    if (!candidate.report->reachable) {
      addReason(reasons, uri, "unreachable: " + candidate.report->error);
      continue;
    }
    const std::uint64_t free = candidate.report->free_memory_bytes;
    const std::uint64_t taken = candidate.reserved_bytes + candidate.committed_bytes;
    const std::uint64_t room = free > taken ? free - taken : 0;
    if (needed_bytes > room) {
      addReason(reasons, uri,
                mib(room) + " free after the " + mib(candidate.reserved_bytes) + " reserve" +
                    (candidate.committed_bytes ? " and " + mib(candidate.committed_bytes) +
                                                     " of migrations under way"
                                               : std::string()) +
                    ", needs " + mib(needed_bytes));
      continue;
    }
    if (candidate.migrations_in_flight >= candidate.max_parallel) {
      // A peer whose incoming limit others' migrations reach is offered
      // with none left (docs/fleet.md): it frees when one of them ends.
      addReason(reasons, uri,
                candidate.max_parallel == 0
                    ? std::string("takes no more incoming migrations now")
                    : std::to_string(candidate.migrations_in_flight) + " of max " +
                          std::to_string(candidate.max_parallel) + " migrations to it running");
      may_free_up = true;
      if (candidate.max_parallel == 0 &&
          better(candidate, room, best_full_peer, best_full_peer_room)) {
        best_full_peer = &candidate;
        best_full_peer_room = room;
      }
      continue;
    }
    if (better(candidate, room, best, best_room)) {
      best = &candidate;
      best_room = room;
    }
  }
  if (best) {
    choice.outcome = DestinationChoice::Outcome::chosen;
    choice.destination = best->config;
    return choice;
  }
  choice.outcome =
      may_free_up ? DestinationChoice::Outcome::wait : DestinationChoice::Outcome::none_fits;
  choice.reason = std::move(reasons);
  if (best_full_peer) choice.queue_for = best_full_peer->config;
  return choice;
}

}  // namespace hostmaint::agent
