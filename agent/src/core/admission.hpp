// Admission: whether a waiting domain may start its action now, and where
// a migration goes. Pure functions over the engine's state, so the limits
// (parallel actions and migrations, groups, destinations) are tested and
// read in one place.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "destination_choice.hpp"
#include "engine_state.hpp"
#include "hostmaint/agent/config.hpp"

namespace hostmaint::agent {

// Memory in bytes a domain holds now (or held when its action started, once
// it has left the host).
using MemoryOf = std::function<std::uint64_t(const DomainRecord&)>;

bool isMigrationKind(hv::ActionKind kind);

// Hypervisor actions running (drain actions and restores).
unsigned actionsInFlight(const EngineState& state);
unsigned migrationsInFlight(const EngineState& state);
// Both, counted once: a pass over every waiting domain takes them from here
// instead of counting all domains again for each one (quadratic).
struct InFlight {
  unsigned actions = 0;
  unsigned migrations = 0;
};
InFlight inFlight(const EngineState& state);

// Members of `group` impacted now (Fenix's max_impacted_members): being
// acted on, down for the rest of the maintenance (suspended or shut down),
// or within recovery_time of having been moved.
struct GroupImpact {
  unsigned impacted = 0;
  bool will_recover = false;  // some impact ends during the drain
};
GroupImpact groupImpact(const EngineState& state, const std::string& group,
                        const std::string& except_uuid, TimePoint now);
// Whether `r` is one of those impacted members now (its group aside), and
// whether its impact ends during the drain.
bool impactsGroup(const DomainRecord& r, TimePoint now, bool* will_recover = nullptr);

// Domains in `stage`, in the order they are taken: priority, then within a
// priority the biggest first, so the longest migrations start early and the
// short ones fill in around them (longest-processing-time-first).
std::vector<std::string> drainOrder(const EngineState& state, DomainStage stage,
                                    const MemoryOf& memory_of);

// The action and migration slots: the wait when they are all taken.
std::optional<WaitReason> slotsWait(const EngineState& state, const DomainRecord& record,
                                    const LimitsConfig& limits);
std::optional<WaitReason> slotsWait(const InFlight& in_flight, const DomainRecord& record,
                                    const LimitsConfig& limits);

// The group limit: the wait when the domain's group has as many members
// impacted as its policy allows.
std::optional<wait::GroupLimit> groupWait(const EngineState& state, const DomainRecord& record,
                                          TimePoint now);

// What a candidate destination reported when last probed (a restarted
// daemon probes again: not journaled).
struct DestinationProbe {
  std::optional<hv::DestinationReport> report;
  TimePoint probed_at{};
  bool in_flight = false;
};
using DestinationProbes = std::map<std::string, DestinationProbe>;

// Each candidate as seen for `record`: its last report, its limits, and this
// drain's migrations to it that the report could not see yet.
std::vector<DestinationCandidate> destinationCandidates(const EngineState& state,
                                                        const DomainRecord& record,
                                                        const MigrationConfig& migration,
                                                        const DestinationProbes& probes,
                                                        const MemoryOf& memory_of);
// The same over `uris` instead of the session's own destinations (the
// fleet's peers, docs/fleet.md).
std::vector<DestinationCandidate> destinationCandidates(const EngineState& state,
                                                        const DomainRecord& record,
                                                        const std::vector<std::string>& uris,
                                                        const MigrationConfig& migration,
                                                        const DestinationProbes& probes,
                                                        const MemoryOf& memory_of);

}  // namespace hostmaint::agent
