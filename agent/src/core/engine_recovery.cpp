// Continuing a maintenance after a restart or a reconnection: the journal
// says what was intended, the hypervisor's inventory what happened. Never
// repeats an action whose effect is already visible.
#include <algorithm>

#include "engine_impl.hpp"

namespace hostmaint::agent {

namespace {
// A migration interrupted without effect (lost libvirt connection, daemon
// restart) is tried again this many times; then the domain's fallback
// applies, as a link that keeps dropping will not carry it either.
constexpr unsigned kMaxMigrationRetries = 2;
}

// Loads the journal and reconciles it with the hypervisor's inventory.
void MaintenanceEngine::Impl::recover() {
  Entry entry(*this);
  std::optional<std::string> document = journal.load();
  if (document) {
    try {
      state = decodeEngineState(*document);
    } catch (const std::runtime_error& error) {
      throw JournalError(std::string("cannot continue from the saved maintenance state: ") +
                         error.what());
    }
    rememberSaved(*document);
  }
  recovered = true;
  for (DomainRecord& record : state.domains) record.completion_pending = false;
  comeBackAfterHostShutdown();
  if (connected()) {
    reconcileAll();
  } else {
    reconcile_pending = true;
  }
  pump();
}

void MaintenanceEngine::Impl::markLeft(DomainRecord& record, std::string how) {
  record.finished_at = now();
  transition(record, stage::Left{std::move(how)});
}

// Brings one domain's stage in line with what the hypervisor shows now.
void MaintenanceEngine::Impl::reconcile(DomainRecord& record,
                                        const std::optional<hv::DomainInfo>& info) {
  const bool removal = state.window && state.window->removal;
  switch (record.stage()) {
    case DomainStage::acting:
      if (record.runningKind()) {
        if (!record.completion_pending) reconcileInterrupted(record, info);
        return;
      }
      // Owner action: done when the owner took it away.
      if (!info) {
        markLeft(record, "moved or deleted by its owner");
      } else if (!removal && !hv::occupiesHost(info->state)) {
        markLeft(record, "stopped by its owner");
      }
      return;
    case DomainStage::planned:
    case DomainStage::awaiting_ack:
    case DomainStage::waiting:
    case DomainStage::blocked:
    case DomainStage::failed:
      if (phase() == HostPhase::idle) {
        if (info) record.name = info->name;
        return;
      }
      if (!info) {
        markLeft(record, "gone from the host (not by hostmaint)");
      } else if (!hv::occupiesHost(info->state) && !holds<stage::Failed>(record.state)) {
        if (removal && info->persistent) {
          if (record.action && isMigration(*record.action) &&
              *record.action != MaintenanceAction::cold_migrate && record.policy_error.empty()) {
            planRecord(record, *info);  // a stopped domain can only leave offline
          }
        } else {
          transition(record, stage::Done{"stopped outside hostmaint; nothing to do"});
        }
      }
      return;
    case DomainStage::done:
    case DomainStage::left:
      if (inMaintenance() && info && hv::occupiesHost(info->state)) {
        planRecord(record, *info);
        occupiedAgain(record);
      }
      return;
    case DomainStage::restoring: {
      const auto& restoring = std::get<stage::Restoring>(record.state);
      if (restoring.started && !record.completion_pending) {
        if (info && hv::occupiesHost(info->state)) {
          finishRestore(record, true, "restored (confirmed after restart)");
        } else if (!info) {
          finishRestore(record, false, "no longer defined on this host");
        } else if (!info->job_active) {
          // Interrupted: started again by the restore queue.
          transition(record, stage::Restoring{restoring.outcome});
        }
      }
      return;
    }
    case DomainStage::restored:
    case DomainStage::restore_failed: return;
  }
}

// An action this process did not start, or whose result said the connection
// dropped: its outcome is read from the inventory.
void MaintenanceEngine::Impl::reconcileInterrupted(DomainRecord& record,
                                                   const std::optional<hv::DomainInfo>& info) {
  const auto& acting = std::get<stage::Acting>(record.state);
  const hv::ActionKind kind = *acting.kind;
  const std::string when = holds<running::OutcomeUnknown>(acting.how) ? "after libvirt reconnected"
                                                                      : "after restart";
  if (!info) {
    if (isMigrationKind(kind)) {
      completeDrain(record,
                    "migrated" + (record.destination ? " to " + *record.destination : std::string()) +
                        " (confirmed " + when + ")",
                    false);
    } else {
      markLeft(record, "gone from the host");
    }
    return;
  }
  const bool occupies = hv::occupiesHost(info->state);
  if (info->job_active && isMigrationKind(kind) && connected()) {
    adoptMigration(record);
    return;
  }
  if (info->job_active || info->state == hv::DomainRunState::shutting_down) {
    stage::Acting found = acting;
    found.how = running::FoundRunning{when};
    transition(record, std::move(found));
    return;
  }
  // Still defined here and no migration runs: whatever the migration left
  // on its destination is settled before the domain's next step.
  if (isMigrationKind(kind) && record.destination)
    checkLeftover(record.uuid, record.name, *record.destination);
  switch (kind) {
    case hv::ActionKind::managed_save:
      if (!occupies && info->has_managed_save) {
        completeDrain(record, "suspended (confirmed after restart)", true);
        return;
      }
      break;
    case hv::ActionKind::shutdown:
      if (!occupies) {
        completeDrain(record, "shut down (confirmed after restart)", true);
        return;
      }
      // The guest may still be shutting down from the earlier request: wait
      // out the rest of its timeout rather than granting it a new one.
      if (phase() != HostPhase::restoring) {
        adoptShutdown(record);
        return;
      }
      break;
    case hv::ActionKind::cold_migrate:
      // Shut off here: its cold migration stopped between the shutdown here
      // and the undefine here. Done again from where it is (shut off), after
      // the leftover check: if the domain already runs there, the check
      // removes its definition here and the drain is done for it.
      if (!occupies) {
        redoInterrupted(record, "its cold migration was interrupted with the domain shut off here");
        return;
      }
      break;
    case hv::ActionKind::live_migrate:
    case hv::ActionKind::adopt_migration:
      if (!occupies) {
        completeDrain(record, "not running on this host after restart; nothing left to do", false);
        return;
      }
      break;
    case hv::ActionKind::start: return;
  }
  if (!occupies) {
    completeDrain(record, "not running after restart; nothing to restore", false);
    return;
  }
  // Still running, no job: the action did not take effect. Do it again.
  redoInterrupted(record, std::string(hv::toString(kind)) +
                              " was interrupted and did not take effect (found " + when + ")");
}

void MaintenanceEngine::Impl::redoInterrupted(DomainRecord& record, const std::string& why) {
  const auto kind = record.runningKind();
  const bool migration = kind && isMigrationKind(*kind);
  if (migration && phase() != HostPhase::restoring &&
      ++record.interrupted_migrations > kMaxMigrationRetries) {
    failDrain(record, why + "; interrupted " + std::to_string(record.interrupted_migrations) +
                          " times, not tried again");
    return;
  }
  record.destination.reset();
  if (phase() == HostPhase::restoring) {
    transition(record, stage::Restored{"not touched: maintenance cancelled", ""});
    return;
  }
  transition(record, stage::Waiting{wait::Retry{why + "; will be redone"}});
}

// The domain's action is known to be running (an earlier hostmaintd's):
// marks it adopted and returns the request that waits for it again.
hv::ActionRequest MaintenanceEngine::Impl::adopt(DomainRecord& record, hv::ActionKind kind) {
  stage::Acting adopted = std::get<stage::Acting>(record.state);
  adopted.how = running::Adopted{};
  transition(record, std::move(adopted));
  hv::ActionRequest request;
  request.kind = kind;
  request.uuid = record.uuid;
  request.name = record.name;
  return request;
}

// libvirtd kept running the migration an earlier hostmaintd (or a lost
// connection) left behind: wait for it rather than start a second one.
void MaintenanceEngine::Impl::adoptMigration(DomainRecord& record) {
  hv::ActionRequest request = adopt(record, hv::ActionKind::adopt_migration);
  request.destination_uri = record.destination.value_or("");
  // The ladder and the timeouts continue where the earlier run left them.
  request.tuning = migrationTuningFor(record.policy, record.memory_kib);
  request.tuning.stall_timeout = settings.migration.stall_timeout;
  if (record.started_at && now() > *record.started_at) {
    request.already_running =
        std::chrono::duration_cast<std::chrono::milliseconds>(now() - *record.started_at);
  }
  launch(record, request);
}

// A shutdown an earlier hostmaintd requested (the guest was asked via ACPI
// and may be on its way down): asked again, which is harmless, with only
// the time left of its timeout, then forced as its policy says.
void MaintenanceEngine::Impl::adoptShutdown(DomainRecord& record) {
  hv::ActionRequest request = adopt(record, hv::ActionKind::shutdown);
  request.force_after_timeout = record.policy.force_stop;
  request.shutdown_timeout = record.policy.shutdown_timeout;
  if (record.started_at && now() > *record.started_at) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now() - *record.started_at);
    request.shutdown_timeout = std::max(std::chrono::seconds(0), request.shutdown_timeout - elapsed);
  }
  launch(record, request);
}

void MaintenanceEngine::Impl::reconcileAll() {
  std::vector<hv::DomainInfo> inventory = hypervisor.domains();
  for (DomainRecord& record : state.domains) {
    std::optional<hv::DomainInfo> info;
    for (const hv::DomainInfo& candidate : inventory) {
      if (candidate.uuid == record.uuid) info = candidate;
    }
    reconcile(record, info);
  }
  if (phase() == HostPhase::idle) {
    syncIdleInventory();
    return;
  }
  for (const hv::DomainInfo& info : inventory) {
    if (find(info.uuid) || !inMaintenance()) continue;
    addPlanned(info);
    occupiedAgain(state.domains.back());
  }
}

}  // namespace hostmaint::agent
