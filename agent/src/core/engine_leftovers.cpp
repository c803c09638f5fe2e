// Definitions a failed or interrupted migration left on its destination
// (docs/engine.md, "Leftover definitions"). libvirt can leave the domain
// defined and shut off there (a cold migration defines it there before it
// undefines it here; a live migration's destination whose libvirtd died
// keeps the definition it was given). Each such migration is followed by a
// check that settles where the domain is defined; a check that cannot be
// made is tried again with a growing delay and is a blocker meanwhile.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine_impl.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent {

namespace {

constexpr std::chrono::seconds kFirstRetry{5};
constexpr std::chrono::seconds kLongestRetry{60};

std::string key(const std::string& uuid, const std::string& destination) {
  return uuid + " " + destination;
}

std::chrono::seconds retryDelay(unsigned attempts) {
  std::chrono::seconds delay = kFirstRetry;
  for (unsigned i = 1; i < attempts && delay < kLongestRetry; ++i) delay *= 2;
  return std::min(delay, kLongestRetry);
}

bool migrating(const DomainRecord& record) {
  const auto kind = record.runningKind();
  return kind && isMigrationKind(*kind);
}

}  // namespace

// Called when a migration of the domain to `destination` failed or was found
// interrupted. A check already owed for the same pair is made again at once.
void MaintenanceEngine::Impl::checkLeftover(const std::string& uuid, const std::string& name,
                                            const std::string& destination) {
  if (destination.empty()) return;
  for (LeftoverCheck& check : state.leftovers) {
    if (check.uuid == uuid && check.destination == destination) {
      check.next_attempt.reset();
      return;
    }
  }
  LeftoverCheck check;
  check.uuid = uuid;
  check.name = name;
  check.destination = destination;
  check.since = now();
  state.leftovers.push_back(std::move(check));
}

// Whether the domain waits for the first answer about what its failed
// migration left: its next action (a retry, the fallback) starts after it,
// so a retry never meets its own leftover half-removed. Once a check could
// not be made, the domain goes on and the check is retried on the side.
bool MaintenanceEngine::Impl::leftoverUnchecked(const std::string& uuid) const {
  return std::any_of(state.leftovers.begin(), state.leftovers.end(),
                     [&](const LeftoverCheck& check) {
                       return check.uuid == uuid && check.attempts == 0;
                     });
}

void MaintenanceEngine::Impl::settleLeftovers() {
  if (!connected() || state.leftovers.empty()) return;
  const TimePoint t = now();
  for (const LeftoverCheck& check : state.leftovers) {
    const std::string k = key(check.uuid, check.destination);
    if (leftovers_in_flight.contains(k)) continue;
    if (check.next_attempt && *check.next_attempt > t) continue;
    // An incoming migration is "running there": never judged mid-flight.
    const DomainRecord* record = find(check.uuid);
    if (record && migrating(*record)) continue;
    leftovers_in_flight.insert(k);
    std::weak_ptr<int> weak = alive;
    hypervisor.settleDefinition(
        check.uuid, check.destination,
        [this, weak, uuid = check.uuid, destination = check.destination](
            const hv::DefinitionSettled& result) {
          if (weak.expired()) return;
          Entry entry(*this);
          leftovers_in_flight.erase(key(uuid, destination));
          onLeftoverSettled(uuid, destination, result);
          pump();
        });
  }
}

void MaintenanceEngine::Impl::onLeftoverSettled(const std::string& uuid,
                                                const std::string& destination,
                                                const hv::DefinitionSettled& result) {
  auto it = std::find_if(state.leftovers.begin(), state.leftovers.end(),
                         [&](const LeftoverCheck& c) {
                           return c.uuid == uuid && c.destination == destination;
                         });
  if (it == state.leftovers.end()) return;
  LeftoverCheck& check = *it;
  switch (result.outcome) {
    case hv::DefinitionOutcome::runs_on_both:
    case hv::DefinitionOutcome::failed: {
      const bool news = result.message != check.error;
      ++check.attempts;
      check.error = result.message;
      check.next_attempt = now() + retryDelay(check.attempts);
      if (news)
        spdlog::warn("domain {}: what its failed migration left on {} is not settled: {}; next "
                     "check at {}",
                     check.name, destination, result.message, formatTime(*check.next_attempt));
      return;
    }
    case hv::DefinitionOutcome::not_there: break;
    case hv::DefinitionOutcome::removed_there:
    case hv::DefinitionOutcome::only_there:
      spdlog::info("domain {}: {}", check.name, result.message);
      break;
    case hv::DefinitionOutcome::runs_there: {
      spdlog::info("domain {}: {}", check.name, result.message);
      // The migration took effect after all (its end was lost): the drain
      // is done for it, whatever it was about to try next.
      DomainRecord* record = find(uuid);
      if (record && inMaintenance() && !record->runningKind() &&
          (holds<stage::Waiting>(record->state) || holds<stage::Failed>(record->state))) {
        record->destination = destination;
        completeDrain(*record, "migrated to " + destination + " (found running there: " +
                                   result.message + ")",
                      false);
      }
      break;
    }
  }
  state.leftovers.erase(it);
}

}  // namespace hostmaint::agent
