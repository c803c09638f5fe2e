#include "hostmaint/hypervisor/hypervisor.hpp"

#include <algorithm>

namespace hostmaint::hv {

std::string_view toString(DomainRunState state) {
  switch (state) {
    case DomainRunState::running: return "running";
    case DomainRunState::paused: return "paused";
    case DomainRunState::shutoff: return "shutoff";
    case DomainRunState::crashed: return "crashed";
    case DomainRunState::pmsuspended: return "pmsuspended";
    case DomainRunState::shutting_down: return "shutting-down";
    case DomainRunState::unknown: return "unknown";
  }
  return "unknown";
}

bool occupiesHost(DomainRunState state) {
  return state != DomainRunState::shutoff && state != DomainRunState::crashed;
}

std::string_view toString(ConnectionState state) {
  switch (state) {
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::connected: return "connected";
    case ConnectionState::disconnected: return "disconnected";
  }
  return "unknown";
}

std::string_view toString(DomainEventKind kind) {
  switch (kind) {
    case DomainEventKind::defined: return "defined";
    case DomainEventKind::undefined: return "undefined";
    case DomainEventKind::started: return "started";
    case DomainEventKind::stopped: return "stopped";
    case DomainEventKind::suspended: return "suspended";
    case DomainEventKind::resumed: return "resumed";
    case DomainEventKind::migrated_away: return "migrated-away";
    case DomainEventKind::saved: return "saved";
    case DomainEventKind::changed: return "changed";
  }
  return "changed";
}

std::string_view toString(ActionKind kind) {
  switch (kind) {
    case ActionKind::managed_save: return "managed-save";
    case ActionKind::shutdown: return "shutdown";
    case ActionKind::start: return "start";
    case ActionKind::live_migrate: return "live-migrate";
    case ActionKind::cold_migrate: return "cold-migrate";
    case ActionKind::adopt_migration: return "adopt-migration";
  }
  return "unknown";
}

std::string_view toString(FailureKind kind) {
  switch (kind) {
    case FailureKind::none: return "none";
    case FailureKind::other: return "other";
    case FailureKind::not_converged: return "not-converged";
    case FailureKind::destination: return "destination";
    case FailureKind::connection_lost: return "connection-lost";
  }
  return "other";
}

std::string_view toString(DefinitionOutcome outcome) {
  switch (outcome) {
    case DefinitionOutcome::not_there: return "not-there";
    case DefinitionOutcome::removed_there: return "removed-there";
    case DefinitionOutcome::runs_there: return "runs-there";
    case DefinitionOutcome::only_there: return "only-there";
    case DefinitionOutcome::runs_on_both: return "runs-on-both";
    case DefinitionOutcome::failed: return "failed";
  }
  return "failed";
}

bool EmptinessReport::empty() const {
  return std::all_of(checks.begin(), checks.end(), [](const EvidenceCheck& c) { return c.ok; });
}

}  // namespace hostmaint::hv
