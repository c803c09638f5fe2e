// Driving the drain and the restore: starting each domain's action when
// admission allows it, and taking in the hypervisor's results.
#include <algorithm>

#include "engine_impl.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "status_projection.hpp"

namespace hostmaint::agent {

namespace {

std::string escalationsNote(const std::vector<std::string>& escalations) {
  if (escalations.empty()) return {};
  std::string note = " (escalated: ";
  for (std::size_t i = 0; i < escalations.size(); ++i) {
    if (i > 0) note += ", ";
    note += escalations[i];
  }
  return note + ")";
}

}  // namespace

// Probes every candidate whose report is missing or older than the
// configured interval; reports arrive on the loop and pump the drain.
void MaintenanceEngine::Impl::refreshDestinationProbes() {
  for (const std::string& uri : destinationUris()) {
    DestinationProbe& probe = destination_probes[uri];
    if (probe.in_flight) continue;
    if (probe.report && now() - probe.probed_at < settings.migration.destination_probe_interval) {
      continue;
    }
    probe.in_flight = true;
    std::weak_ptr<int> weak = alive;
    hypervisor.probeDestination(uri, [this, weak, uri](const hv::DestinationReport& report) {
      if (weak.expired()) return;
      Entry entry(*this);
      DestinationProbe& done = destination_probes[uri];
      done.in_flight = false;
      done.report = report;
      done.probed_at = now();
      pump();
    });
  }
}

void MaintenanceEngine::Impl::startDrainActions() {
  steerMigrations();
  InFlight in_flight = inFlight(state);  // counted again after each start
  std::set<std::string> queued_peers;     // full peers a domain asked for in this pass
  for (const std::string& uuid : drainOrder(state, DomainStage::waiting, memoryOf())) {
    DomainRecord* record = find(uuid);
    if (!record || !holds<stage::Waiting>(record->state)) continue;
    auto waitFor = [&](WaitReason reason) { transition(*record, stage::Waiting{std::move(reason)}); };
    if (!connected()) {
      waitFor(wait::LibvirtDown{connection});
      continue;
    }
    if (journal_error && !persist()) {
      waitFor(wait::JournalUnwritable{});
      continue;
    }
    if (record->action == MaintenanceAction::owner) {
      const TimePoint deadline = ownerDeadline(record->policy, planContext());
      // With ack_required the owner's deadline is the ack deadline, which
      // may be what let it start: no wakeup would come for it again.
      if (now() >= deadline) {
        blockOwnerMissedDeadline(*record, deadline);
        continue;
      }
      transition(*record, stage::Acting{std::nullopt, running::OwnerActs{deadline}});
      record->started_at = now();
      continue;
    }
    if (record->earliest_start && now() < *record->earliest_start) {
      const bool lead_time = state.window && *record->earliest_start > state.window->start;
      waitFor(wait::NotBefore{*record->earliest_start, lead_time});
      continue;
    }
    if (record->retry_at && now() < *record->retry_at) {
      waitFor(wait::Retry{record->retry_reason});
      continue;
    }
    if (leftoverUnchecked(uuid)) {
      waitFor(wait::Retry{"first checking what its failed migration left on its destination"});
      continue;
    }
    if (auto slots = slotsWait(in_flight, *record, settings.limits)) {
      if (record->action == MaintenanceAction::live_migrate) pacingWait(*record);
      waitFor(*slots);
      continue;
    }
    if (record->action == MaintenanceAction::live_migrate) {
      if (auto why = pacingWait(*record)) {
        waitFor(wait::Pacing{*why});
        continue;
      }
    }
    std::optional<DestinationConfig> destination;
    // A peer full with other hosts' migrations: the domain asks for a claim
    // all the same, which puts it in the peer's queue (one domain per peer
    // and pass: the host's place in line), or claims a slot freed since.
    std::optional<DestinationConfig> queue_for;
    if (record->action == MaintenanceAction::live_migrate ||
        record->action == MaintenanceAction::cold_migrate) {
      refreshDestinationProbes();
      DestinationChoice choice = agent::chooseDestination(
          memoryBytesOf(*record),
          destinationCandidates(state, *record, destinationUris(), migrationWithPeers(),
                                destination_probes, memoryOf()));
      if (choice.outcome == DestinationChoice::Outcome::wait) {
        if (!choice.queue_for || !usesPeers() ||
            !queued_peers.insert(choice.queue_for->uri).second) {
          waitFor(wait::Destination{choice.reason});
          continue;
        }
        queue_for = std::move(choice.queue_for);
      }
      if (choice.outcome == DestinationChoice::Outcome::none_fits) {
        failDrain(*record, "no destination can take it: " + choice.reason);
        pump_again = true;
        continue;
      }
      if (!queue_for) destination = std::move(choice.destination);
    }
    if (auto group = groupWait(state, *record, now())) {
      waitFor(*group);
      continue;
    }
    if (auto fleet = fleetGroupWait(*record)) {
      waitFor(*fleet);
      continue;
    }
    // Last: a claim on a peer's incoming slot is held only by a domain
    // nothing else holds back.
    if (destination || queue_for) {
      if (auto peer = fleetPeerWait(*record, destination ? *destination : *queue_for)) {
        waitFor(*peer);
        continue;
      }
      // Claimed: the slot freed since the peer was last seen full.
      if (!destination) destination = std::move(queue_for);
    }
    startDrainAction(*record, destination);
    in_flight = inFlight(state);
  }
}

void MaintenanceEngine::Impl::startDrainAction(DomainRecord& record,
                                               const std::optional<DestinationConfig>& destination) {
  const hv::ActionKind kind = *actionKindFor(*record.action);
  hv::ActionRequest request;
  request.kind = kind;
  request.uuid = record.uuid;
  request.name = record.name;
  request.shutdown_timeout = record.policy.shutdown_timeout;
  request.force_after_timeout = record.policy.force_stop;
  if (kind == hv::ActionKind::live_migrate || kind == hv::ActionKind::cold_migrate) {
    request.destination_uri = destination ? destination->uri : std::string();
    request.migrate_uri = destination ? destination->migrate_uri : std::string();
    request.tuning = migrationTuningFor(record.policy, memoryBytesOf(record) / 1024);
    request.tuning.stall_timeout = settings.migration.stall_timeout;
    record.destination = request.destination_uri;
  }
  record.memory_kib = memoryBytesOf(record) / 1024;
  record.started_at = now();
  record.finished_at.reset();
  transition(record, stage::Acting{kind, running::Launched{}});
  // Write-ahead: a restarted daemon must know this action may have run.
  if (!persist()) {
    record.destination.reset();
    transition(record, stage::Waiting{wait::JournalUnwritable{}});
    return;
  }
  launch(record, request);
}

void MaintenanceEngine::Impl::launch(DomainRecord& record, const hv::ActionRequest& request) {
  pacingStarted(record, request.kind);
  const std::uint64_t token = ++next_token;
  record.action_token = token;
  record.completion_pending = true;
  record.launched_at_refresh = inventory_refreshes;
  std::weak_ptr<int> weak = alive;
  const std::string uuid = record.uuid;
  hypervisor.startAction(
      request,
      [this, weak, uuid, token](const hv::ActionResult& result) {
        if (weak.expired()) return;  // engine gone; its successor recovers
        onActionDone(uuid, token, result);
      },
      [this, weak, uuid, token](const hv::ActionProgress& progress) {
        if (weak.expired()) return;
        onActionProgress(uuid, token, progress);
      });
}

void MaintenanceEngine::Impl::onActionProgress(const std::string& uuid, std::uint64_t token,
                                               const hv::ActionProgress& progress) {
  Entry entry(*this);
  DomainRecord* record = find(uuid);
  if (!record || record->action_token != token || !record->completion_pending) return;
  MigrationProgress shown;
  shown.data_total_bytes = progress.data_total_bytes;
  shown.data_processed_bytes = progress.data_processed_bytes;
  shown.data_remaining_bytes = progress.data_remaining_bytes;
  shown.memory_dirty_rate_bps = progress.memory_dirty_rate_bps;
  shown.throughput_bps = progress.memory_bps;
  shown.downtime_limit_ms = static_cast<std::uint64_t>(progress.downtime_limit.count());
  shown.iteration = progress.iteration;
  shown.post_copy = progress.post_copy;
  shown.escalation = progress.escalation;
  shown.started_at = record->started_at;
  shown.held = progress.held;
  if (auto steer = applied_steers.find(uuid); steer != applied_steers.end())
    shown.hurried = steer->second.hurry;
  if (progress.data_total_bytes > 0) {
    shown.percent = 100.0 * static_cast<double>(progress.data_processed_bytes) /
                    static_cast<double>(progress.data_total_bytes);
  }
  record->progress = shown;
  pacingSampled(*record, progress);
}

void MaintenanceEngine::Impl::onActionDone(const std::string& uuid, std::uint64_t token,
                                           const hv::ActionResult& result) {
  Entry entry(*this);
  DomainRecord* record = find(uuid);
  if (!record || record->action_token != token || !record->completion_pending) return;
  record->completion_pending = false;
  record->progress.reset();
  const hv::ActionKind kind = *record->runningKind();
  pacingFinished(*record, kind);
  const auto* acting = std::get_if<stage::Acting>(&record->state);
  const bool adopted = acting && holds<running::Adopted>(acting->how);
  if (!result.ok && isMigrationKind(kind) && result.failure != hv::FailureKind::connection_lost &&
      record->destination) {
    // Whatever follows (a retry, the fallback) waits for the first check.
    checkLeftover(record->uuid, record->name, *record->destination);
  }
  if (kind == hv::ActionKind::start) {
    finishRestore(*record, result.ok, result.ok ? "" : result.message);
  } else if (result.ok) {
    learnThroughput(result);
    std::string outcome;
    bool needs_restore = false;
    switch (kind) {
      case hv::ActionKind::managed_save:
        outcome = "suspended";
        needs_restore = true;
        break;
      case hv::ActionKind::shutdown:
        outcome = result.forced ? "shut down (forced after " +
                                      formatDuration(record->policy.shutdown_timeout) + ")"
                                : "shut down";
        needs_restore = true;
        break;
      default:
        outcome = "migrated to " + record->destination.value_or("?") +
                  escalationsNote(result.escalations);
        break;
    }
    completeDrain(*record, outcome, needs_restore);
  } else if (result.failure == hv::FailureKind::connection_lost && isMigrationKind(kind)) {
    // Not a failure of the migration: whether it moved is unknown until
    // libvirt is back. The inventory then shows it gone (done), migrating
    // (adopted) or still here (tried again). It stays `acting` meanwhile,
    // so it is counted in every limit and never started twice.
    stage::Acting unknown = *acting;
    unknown.how = running::OutcomeUnknown{result.message};
    transition(*record, std::move(unknown));
    // Already reconnected (the refresh came before this result): no
    // further refresh would come to settle it.
    if (connected() && inventory_refreshes > record->launched_at_refresh) {
      reconcileInterrupted(*record, hypervisor.domain(uuid));
    }
  } else if (result.failure == hv::FailureKind::destination && isMigrationKind(kind) &&
             retryElsewhereOrLater(*record, result.message)) {
    // Waits for its next attempt; the owner's outcome is unchanged.
  } else if (adopted && isMigrationKind(kind) && result.failure != hv::FailureKind::not_converged) {
    redoInterrupted(*record, "the " + std::string(hv::toString(kind)) +
                                 " found after a restart ended with the domain still here (" +
                                 result.message + ")");
  } else {
    failDrain(*record, result.message + escalationsNote(result.escalations));
  }
  pump();
}

// A moving average, so one slow or fast migration does not swing the
// estimates owners are given.
void MaintenanceEngine::Impl::learnThroughput(const hv::ActionResult& result) {
  if (!result.final_progress || result.final_progress->memory_bps == 0) return;
  const std::uint64_t measured = result.final_progress->memory_bps;
  std::uint64_t& learned = state.migration_throughput_bps;
  learned = learned == 0 ? measured : (learned + measured) / 2;
}

void MaintenanceEngine::Impl::completeDrain(DomainRecord& record, std::string outcome,
                                            bool needs_restore) {
  record.needs_restore = needs_restore;
  record.finished_at = now();
  if (phase() == HostPhase::restoring && needs_restore) {
    transition(record, stage::Restoring{std::move(outcome)});
    return;
  }
  transition(record, stage::Done{std::move(outcome)});
}

// A migration its destination failed (unreachable, its libvirtd gone, the
// link cut) is tried again before the fallback: at once on another
// destination when one is left, else on the same one after a doubling
// delay; a bounded number of times, and only while the window lasts.
// False when no attempt is left: the caller falls back.
bool MaintenanceEngine::Impl::retryElsewhereOrLater(DomainRecord& record,
                                                   const std::string& message) {
  const MigrationConfig& migration = settings.migration;
  if (phase() == HostPhase::restoring || record.destination_failures >= migration.destination_retries)
    return false;
  const std::string failed_on = record.destination.value_or("");
  if (!failed_on.empty() &&
      std::find(record.failed_destinations.begin(), record.failed_destinations.end(), failed_on) ==
          record.failed_destinations.end())
    record.failed_destinations.push_back(failed_on);
  const std::vector<std::string> uris = destinationUris();
  const bool another = std::any_of(uris.begin(), uris.end(),
                                   [&](const std::string& uri) {
                                     return std::find(record.failed_destinations.begin(),
                                                      record.failed_destinations.end(),
                                                      uri) == record.failed_destinations.end();
                                   });
  auto delay = another ? std::chrono::seconds(0) : migration.destination_retry_delay;
  for (unsigned i = 0; i < record.destination_failures && !another; ++i) delay *= 2;
  const TimePoint at = now() + delay;
  if (state.window && at >= state.window->end) return false;
  ++record.destination_failures;
  const std::string attempt = "attempt " + std::to_string(record.destination_failures + 1) +
                              " of " + std::to_string(migration.destination_retries + 1);
  record.retry_at = at;
  record.retry_reason = actionName(record.action) + " failed because of its destination (" +
                        message + "); " + attempt +
                        (another ? " on another destination" : " at " + formatTime(at));
  record.destination.reset();
  record.finished_at = now();
  transition(record, stage::Waiting{wait::Retry{record.retry_reason}});
  return true;
}

void MaintenanceEngine::Impl::failDrain(DomainRecord& record, const std::string& message) {
  const std::string failed = actionName(record.action) + " failed: " + message;
  record.finished_at = now();
  record.destination.reset();
  if (phase() != HostPhase::restoring && record.fallback) {
    const std::optional<hv::DomainInfo> info = hypervisor.domain(record.uuid);
    if (auto why = whyImpossible(*record.fallback, planContext().ability,
                                 !info || info->persistent)) {
      transition(record, stage::Failed{failed + "; fallback " + actionName(record.fallback) +
                                       " not possible: " + *why});
      return;
    }
    record.note = failed + "; fell back to " + actionName(record.fallback);
    record.action = record.fallback;
    record.fallback.reset();
    record.fallback_used = true;
    transition(record, stage::Waiting{wait::Retry{record.note}});
    return;
  }
  if (phase() == HostPhase::restoring) {
    transition(record,
               stage::Restored{"not touched: maintenance cancelled while its action failed", failed});
    return;
  }
  transition(record, stage::Failed{failed});
}

void MaintenanceEngine::Impl::blockOwnerMissedDeadline(DomainRecord& record, TimePoint deadline) {
  transition(record,
             stage::Blocked{"the owner did not move or delete it by " + formatTime(deadline)});
}

// ---- restore -----------------------------------------------------------------

void MaintenanceEngine::Impl::startRestoreActions() {
  unsigned running = actionsInFlight(state);
  std::vector<std::string> to_start;
  for (const std::string& uuid : drainOrder(state, DomainStage::restoring, memoryOf())) {
    DomainRecord* record = find(uuid);
    auto* restoring = record ? std::get_if<stage::Restoring>(&record->state) : nullptr;
    if (!restoring || restoring->started) continue;
    auto waitToRestore = [&](WaitReason reason) {
      stage::Restoring waiting = *restoring;
      waiting.waiting = std::move(reason);
      transition(*record, std::move(waiting));
    };
    if (!connected()) {
      waitToRestore(wait::LibvirtDown{connection});
      continue;
    }
    const hv::DomainInfo* info = hypervisor.findDomain(uuid);
    if (!info) {
      finishRestore(*record, false, "no longer defined on this host");
      continue;
    }
    if (hv::occupiesHost(info->state)) {
      finishRestore(*record, true, "already running");
      continue;
    }
    if (running >= settings.limits.max_parallel_actions) {
      waitToRestore(wait::ActionSlots{running, settings.limits.max_parallel_actions});
      continue;
    }
    stage::Restoring started = *restoring;
    started.started = true;
    started.from_managed_save = info->has_managed_save;
    transition(*record, std::move(started));
    record->started_at = now();
    to_start.push_back(uuid);
    ++running;
  }
  if (to_start.empty()) return;
  // One journal write and one cordon write for every start of this pass,
  // before any is launched: a restarted daemon must know they may have run,
  // and the hook must know they are ours before libvirt asks it.
  if (!persist()) {
    for (const std::string& uuid : to_start) {
      DomainRecord* record = find(uuid);
      if (!record) continue;
      stage::Restoring waiting = std::get<stage::Restoring>(record->state);
      waiting.started = false;
      waiting.waiting = wait::JournalUnwritable{};
      transition(*record, std::move(waiting));
    }
    return;
  }
  tellCordon();
  for (const std::string& uuid : to_start) {
    DomainRecord* record = find(uuid);
    if (!record) continue;
    hv::ActionRequest request;
    request.kind = hv::ActionKind::start;
    request.uuid = uuid;
    request.name = record->name;
    launch(*record, request);
  }
}

void MaintenanceEngine::Impl::finishRestore(DomainRecord& record, bool ok,
                                            const std::string& message) {
  const bool was_suspended = record.action == MaintenanceAction::suspend;
  record.finished_at = now();
  if (ok) {
    record.needs_restore = false;
    transition(record, stage::Restored{message.empty() ? (was_suspended
                                                              ? "restored from managed-save"
                                                              : "started")
                                                       : message,
                                       ""});
  } else {
    transition(record, stage::RestoreFailed{message});
  }
}

void MaintenanceEngine::Impl::endRestoringWhenSettled() {
  if (phase() != HostPhase::restoring) return;
  const bool busy =
      std::any_of(state.domains.begin(), state.domains.end(), [](const DomainRecord& r) {
        return holds<stage::Restoring>(r.state) || r.runningKind().has_value();
      });
  if (busy) return;
  state.phase = HostPhase::idle;
  state.session_id.reset();
  state.window.reset();
  state.scheduled_at.reset();
  state.destinations.clear();
  evidence.reset();
  qemu_grace_until.reset();
  reprobe_at.reset();
  syncIdleInventory();
}

}  // namespace hostmaint::agent
