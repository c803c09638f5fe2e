#include "admission.hpp"

#include <algorithm>
#include <tuple>

namespace hostmaint::agent {

bool isMigrationKind(hv::ActionKind kind) {
  return kind == hv::ActionKind::live_migrate || kind == hv::ActionKind::cold_migrate;
}

unsigned actionsInFlight(const EngineState& state) {
  return static_cast<unsigned>(
      std::count_if(state.domains.begin(), state.domains.end(),
                    [](const DomainRecord& r) { return r.runningKind().has_value(); }));
}

unsigned migrationsInFlight(const EngineState& state) {
  return static_cast<unsigned>(
      std::count_if(state.domains.begin(), state.domains.end(), [](const DomainRecord& r) {
        const auto* acting = std::get_if<stage::Acting>(&r.state);
        return acting && acting->kind && isMigrationKind(*acting->kind);
      }));
}

InFlight inFlight(const EngineState& state) {
  InFlight counted;
  for (const DomainRecord& r : state.domains) {
    const std::optional<hv::ActionKind> kind = r.runningKind();
    if (!kind) continue;
    ++counted.actions;
    if (holds<stage::Acting>(r.state) && isMigrationKind(*kind)) ++counted.migrations;
  }
  return counted;
}

GroupImpact groupImpact(const EngineState& state, const std::string& group,
                        const std::string& except_uuid, TimePoint now) {
  GroupImpact impact;
  for (const DomainRecord& r : state.domains) {
    if (r.policy.group != group || r.uuid == except_uuid) continue;
    bool will_recover = false;
    if (impactsGroup(r, now, &will_recover)) {
      ++impact.impacted;
      impact.will_recover = impact.will_recover || will_recover;
    }
  }
  return impact;
}

bool impactsGroup(const DomainRecord& r, TimePoint now, bool* will_recover) {
  bool recovers = false;
  bool impacted = false;
  if (holds<stage::Acting>(r.state)) {
    impacted = recovers = true;
  } else if (holds<stage::Done>(r.state) && r.needs_restore) {
    impacted = true;
  } else if (holds<stage::Restoring>(r.state)) {
    // Still down until its restore ends (only after the drain, so this
    // host's own limit never meets it; the fleet's count does).
    impacted = true;
  } else if (holds<stage::Done>(r.state) && r.finished_at &&
             now < *r.finished_at + r.policy.recovery_time) {
    impacted = recovers = true;
  }
  if (will_recover) *will_recover = recovers;
  return impacted;
}

std::vector<std::string> drainOrder(const EngineState& state, DomainStage stage,
                                    const MemoryOf& memory_of) {
  struct Entry {
    const DomainRecord* record;
    std::uint64_t memory;
  };
  std::vector<Entry> chosen;
  for (const DomainRecord& r : state.domains) {
    if (r.stage() == stage) chosen.push_back({&r, memory_of(r)});
  }
  std::sort(chosen.begin(), chosen.end(), [](const Entry& a, const Entry& b) {
    return std::tie(b.record->policy.priority, b.memory, a.record->name) <
           std::tie(a.record->policy.priority, a.memory, b.record->name);
  });
  std::vector<std::string> uuids;
  for (const Entry& entry : chosen) uuids.push_back(entry.record->uuid);
  return uuids;
}

std::optional<WaitReason> slotsWait(const EngineState& state, const DomainRecord& record,
                                    const LimitsConfig& limits) {
  return slotsWait(inFlight(state), record, limits);
}

std::optional<WaitReason> slotsWait(const InFlight& in_flight, const DomainRecord& record,
                                    const LimitsConfig& limits) {
  if (in_flight.actions >= limits.max_parallel_actions) {
    return wait::ActionSlots{in_flight.actions, limits.max_parallel_actions};
  }
  if (record.action && isMigration(*record.action) &&
      in_flight.migrations >= limits.max_parallel_migrations) {
    return wait::MigrationSlots{in_flight.migrations, limits.max_parallel_migrations};
  }
  return std::nullopt;
}

std::optional<wait::GroupLimit> groupWait(const EngineState& state, const DomainRecord& record,
                                          TimePoint now) {
  const std::string& group = record.policy.group;
  if (group.empty()) return std::nullopt;
  const GroupImpact impact = groupImpact(state, group, record.uuid, now);
  if (impact.impacted < record.policy.max_impacted_members) return std::nullopt;
  return wait::GroupLimit{group, impact.impacted, record.policy.max_impacted_members,
                          !impact.will_recover, {}};
}

std::vector<DestinationCandidate> destinationCandidates(const EngineState& state,
                                                        const DomainRecord& record,
                                                        const MigrationConfig& migration,
                                                        const DestinationProbes& probes,
                                                        const MemoryOf& memory_of) {
  return destinationCandidates(state, record, state.destinations, migration, probes, memory_of);
}

std::vector<DestinationCandidate> destinationCandidates(const EngineState& state,
                                                        const DomainRecord& record,
                                                        const std::vector<std::string>& uris,
                                                        const MigrationConfig& migration,
                                                        const DestinationProbes& probes,
                                                        const MemoryOf& memory_of) {
  std::vector<DestinationCandidate> candidates;
  // Destinations that failed this domain's migration are avoided while
  // another one is left (docs/engine.md, "Destination retries").
  auto failed = [&](const std::string& uri) {
    return std::find(record.failed_destinations.begin(), record.failed_destinations.end(), uri) !=
           record.failed_destinations.end();
  };
  const bool another_left = std::any_of(uris.begin(), uris.end(),
                                        [&](const std::string& uri) { return !failed(uri); });
  for (const std::string& uri : uris) {
    if (another_left && failed(uri)) continue;
    DestinationCandidate candidate;
    candidate.config = migration.destination(uri);
    candidate.reserved_bytes = migration.reservedMemoryMibAt(candidate.config) << 20;
    candidate.max_parallel = migration.maxParallelAt(candidate.config);
    const auto probe = probes.find(uri);
    const TimePoint probed_at = probe != probes.end() ? probe->second.probed_at : TimePoint{};
    if (probe != probes.end()) candidate.report = probe->second.report;
    for (const DomainRecord& other : state.domains) {
      if (other.destination != uri || &other == &record) continue;
      const auto* acting = std::get_if<stage::Acting>(&other.state);
      const bool on_the_way = acting && acting->kind && isMigrationKind(*acting->kind);
      const bool arrived = holds<stage::Done>(other.state) && other.finished_at;
      if (on_the_way) ++candidate.migrations_in_flight;
      // Arrived after the probe, or still arriving: the probe did not see it.
      if (on_the_way || (arrived && *other.finished_at >= probed_at)) {
        candidate.committed_bytes += memory_of(other);
      }
      if (!record.policy.group.empty() && other.policy.group == record.policy.group &&
          (on_the_way || arrived)) {
        ++candidate.group_members;
      }
    }
    candidates.push_back(std::move(candidate));
  }
  return candidates;
}

}  // namespace hostmaint::agent
