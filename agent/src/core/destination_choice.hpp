// Picks the migration destination for one domain from what the candidates
// reported when probed. Pure logic, internal to hostmaint_core.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

// One candidate as the engine sees it at the moment of choosing.
struct DestinationCandidate {
  DestinationConfig config;
  std::optional<hv::DestinationReport> report;  // unset: the first probe is under way
  std::uint64_t reserved_bytes = 0;
  unsigned max_parallel = 1;
  // Memory of this drain's migrations to it that its last probe could not
  // see yet (running, or finished after the probe).
  std::uint64_t committed_bytes = 0;
  unsigned migrations_in_flight = 0;
  unsigned group_members = 0;  // of the domain's group, there or on the way
};

struct DestinationChoice {
  enum class Outcome {
    chosen,     // `destination` is the one
    wait,       // some candidate may take it soon (probe under way, all slots busy)
    none_fits,  // no candidate can take it: the domain's fallback applies
  };
  Outcome outcome = Outcome::none_fits;
  DestinationConfig destination;
  // For wait and none_fits: each candidate and why not, "; "-separated.
  std::string reason;
  // For wait: the fitting candidate that takes no more incoming migrations
  // now (a peer full with other hosts' migrations, max_parallel 0) it
  // would be, best first. The domain queues for it (docs/fleet.md), so a
  // peer that frees goes to who waited longest.
  std::optional<DestinationConfig> queue_for;
};

// Fits: reachable, and `needed_bytes` within free − reserved − committed.
// Among the fitting ones with a free slot: fewest members of the domain's
// group first (spread a group so one destination failing hits fewer of
// them), then the most room left.
DestinationChoice chooseDestination(std::uint64_t needed_bytes,
                                    const std::vector<DestinationCandidate>& candidates);

}  // namespace hostmaint::agent
