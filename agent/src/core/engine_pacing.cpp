// The engine's side of the adaptive live-migration scheduler
// (migration_pacer.hpp, docs/policy.md "Adaptive migration scheduling"):
// it feeds the pacer what the migrations report, asks it before starting
// another one, sends its holds and hurries to the hypervisor, has dirty
// rates measured, and shows the scheduler in the status.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine_impl.hpp"

namespace hostmaint::agent {

namespace {

// Dirty-rate measurements at once: each keeps a worker thread for about a
// second, and the workers also start the migrations.
constexpr std::size_t kDirtyProbesAtOnce = 2;

bool isLiveMigration(hv::ActionKind kind) {
  return kind == hv::ActionKind::live_migrate || kind == hv::ActionKind::adopt_migration;
}

}  // namespace

PacerSettings MaintenanceEngine::Impl::pacerSettings() const {
  PacerSettings pacing;
  pacing.adaptive = settings.migration.adaptive;
  pacing.cap = std::min(settings.limits.max_parallel_migrations,
                        settings.limits.max_parallel_actions);
  pacing.initial = settings.migration.adaptive_initial_parallel.value_or(pacing.cap);
  return pacing;
}

// A new drain measures its own link: the last one's may have been another
// destination, or another time of day.
void MaintenanceEngine::Impl::beginPacing() {
  pacer.reset(pacerSettings());
  applied_steers.clear();
  timelines.clear();
  predicted_seconds.clear();
  // Migrations adopted or still running keep being watched.
  for (const DomainRecord& record : state.domains) {
    if (auto kind = record.runningKind(); kind && isLiveMigration(*kind) && record.completion_pending)
      pacer.started(record.uuid, record.started_at.value_or(now()));
  }
}

std::uint64_t MaintenanceEngine::Impl::waitingMigrationBytes() const {
  std::uint64_t bytes = 0;
  for (const DomainRecord& record : state.domains) {
    if (record.action == MaintenanceAction::live_migrate && holds<stage::Waiting>(record.state))
      bytes += std::max<std::uint64_t>(memoryBytesOf(record), 1);
  }
  return bytes;
}

std::optional<std::string> MaintenanceEngine::Impl::pacingWait(DomainRecord& record) {
  MigrationTimeline& timeline = timelines[record.uuid];
  if (!timeline.queued_at) timeline.queued_at = now();
  std::optional<std::string> why = pacer.admit(record.uuid);
  // Measured while it waits, so that its turn comes with its dirty rate.
  if (why) probeDirtyRate(record);
  return why;
}

void MaintenanceEngine::Impl::pacingStarted(const DomainRecord& record, hv::ActionKind kind) {
  if (!isLiveMigration(kind)) return;
  pacer.started(record.uuid, now());
  applied_steers.erase(record.uuid);
  MigrationTimeline& timeline = timelines[record.uuid];
  if (!timeline.queued_at) timeline.queued_at = now();
  timeline.started_at = now();
  timeline.converged_at.reset();
  timeline.finished_at.reset();
  auto seconds =
      pacer.predictSeconds(record.uuid, memoryBytesOf(record), state.migration_throughput_bps);
  // Nothing measured yet (a first drain, migrations started together): the
  // basis owners' notices were given, [notices] assumed_migration_throughput.
  if (!seconds) {
    seconds = pacer.predictSeconds(record.uuid, memoryBytesOf(record),
                                   settings.notices.assumed_throughput_bps);
  }
  if (seconds) {
    predicted_seconds[record.uuid] = *seconds;
  } else {
    predicted_seconds.erase(record.uuid);
  }
  // Not measured once it runs: libvirt's dirty-rate call needs the
  // domain's job, which the migration holds (it waits 30 s, then fails).
  // QEMU reports the rate itself after the first pass.
}

void MaintenanceEngine::Impl::pacingSampled(const DomainRecord& record,
                                            const hv::ActionProgress& progress) {
  PacerSample sample;
  sample.at = now();
  sample.processed_bytes = progress.data_processed_bytes;
  sample.remaining_bytes = progress.data_remaining_bytes;
  sample.dirty_rate_bps = progress.memory_dirty_rate_bps;
  sample.elapsed = progress.elapsed;
  sample.iteration = progress.iteration;
  sample.held = progress.held;
  pacer.sampled(record.uuid, sample);
  if (auto converged = pacer.convergedAt(record.uuid)) {
    MigrationTimeline& timeline = timelines[record.uuid];
    if (!timeline.converged_at) timeline.converged_at = converged;
  }
  reevaluatePacing();
}

void MaintenanceEngine::Impl::pacingFinished(const DomainRecord& record, hv::ActionKind kind) {
  if (!isLiveMigration(kind)) return;
  pacer.finished(record.uuid);
  applied_steers.erase(record.uuid);
  timelines[record.uuid].finished_at = now();
  // Whatever it held back may go now: the pump that follows starts it.
  steerMigrations();
}

// Its last data is on the wire: a held migration may take the link now
// rather than after libvirt's confirmation (about two seconds here).
void MaintenanceEngine::Impl::pacingSwitchover(const std::string& uuid) {
  pacer.switchingOver(uuid);
  MigrationTimeline& timeline = timelines[uuid];
  if (!timeline.converged_at) timeline.converged_at = now();
  reevaluatePacing();
}

void MaintenanceEngine::Impl::reevaluatePacing() {
  if (steerMigrations() && phase() == HostPhase::draining) pump();
}

bool MaintenanceEngine::Impl::steerMigrations() {
  const bool changed = pacer.evaluate(now(), waitingMigrationBytes());
  for (const auto& [uuid, steer] : pacer.steering()) {
    auto applied = applied_steers.find(uuid);
    if (applied != applied_steers.end() && applied->second == steer) continue;
    // Nothing to tell a migration that was never held or hurried.
    if (applied == applied_steers.end() && steer == hv::MigrationSteer{}) continue;
    hypervisor.steerMigration(uuid, steer);
    applied_steers[uuid] = steer;
  }
  return changed;
}

void MaintenanceEngine::Impl::probeDirtyRate(const DomainRecord& record) {
  if (!settings.migration.adaptive || pacer.wasProbed(record.uuid) ||
      dirty_probes_in_flight.contains(record.uuid) ||
      dirty_probes_in_flight.size() >= kDirtyProbesAtOnce)
    return;
  dirty_probes_in_flight.insert(record.uuid);
  std::weak_ptr<int> weak = alive;
  const std::string uuid = record.uuid;
  hypervisor.probeDirtyRate(uuid, [this, weak, uuid](const hv::DirtyRateReport& report) {
    if (weak.expired()) return;
    Entry entry(*this);
    dirty_probes_in_flight.erase(uuid);
    pacer.probed(uuid, report.bytes_per_second);
    if (report.bytes_per_second) {
      timelines[uuid].probed_at = now();
    } else {
      spdlog::debug("{}", report.error);
    }
    reevaluatePacing();
    // Others may be waiting for a probe slot.
    if (phase() == HostPhase::draining) pump();
  });
}

PacingInputs MaintenanceEngine::Impl::pacingView() const {
  PacingInputs view;
  const bool draining = phase() == HostPhase::draining || phase() == HostPhase::empty ||
                        phase() == HostPhase::in_maintenance;
  if (draining) view.scheduler = pacer.status();
  for (const auto& [uuid, timeline] : timelines) {
    DomainPacing& domain = view.domains[uuid];
    domain.timeline = timeline;
    if (auto seconds = predicted_seconds.find(uuid); seconds != predicted_seconds.end())
      domain.predicted_duration_s = seconds->second;
    domain.dirty_rate_bps = pacer.dirtyRate(uuid);
  }
  return view;
}

}  // namespace hostmaint::agent
