// The maintenance engine: plans a host's maintenance, drives the drain within
// its limits, proves the host empty and restores what it took down. This
// file holds the commands, the entry points and the pump; engine_impl.hpp
// says where the rest lives. The state machine is described in
// docs/engine.md.
#include "hostmaint/agent/engine.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "engine_impl.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "status_projection.hpp"

namespace hostmaint::agent {

EngineSettings engineSettingsFrom(const Config& config, std::string host_name) {
  EngineSettings settings;
  settings.default_policy = config.policy;
  settings.limits = config.limits;
  settings.migration = config.migration;
  settings.host_name = std::move(host_name);
  settings.notices = noticeSettingsFrom(config.notices);
  settings.host_shutdown = config.host_shutdown;
  return settings;
}

namespace {

using namespace std::chrono_literals;

// A process needs a moment to exit after its domain stopped: the QEMU check
// is re-probed this often, for this long, before it counts as a blocker.
constexpr auto kQemuReprobeInterval = 100ms;
constexpr auto kQemuGrace = 5s;
// A journal that could not be written (full or read-only disk) is tried
// again this often, so a drain continues by itself once space is back.
constexpr auto kJournalRetryInterval = 2s;
// While domains are still to be handled the host cannot be empty: its
// evidence (a probe reads every process's command line) is then read again
// at most this often instead of at every entry point.
constexpr auto kBusyProbeInterval = 1s;

std::string generateSessionId() {
  std::random_device device;
  std::uniform_int_distribution<unsigned> nibble(0, 15);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) id += '-';
    unsigned value = nibble(device);
    if (i == 12) value = 4;                // version 4
    if (i == 16) value = 8 | (value & 3);  // RFC 4122 variant
    id += kHex[value];
  }
  return id;
}

bool isSettled(const DomainRecord& record) {
  return holds<stage::Done>(record.state) || holds<stage::Left>(record.state);
}

// Refuses a window that cannot be honoured, saying why, for `verb`.
void checkWindow(std::string_view verb, const MaintenanceWindow& window, TimePoint now) {
  if (window.end <= window.start) {
    throw CommandError("cannot " + std::string(verb) + ": the window ends (" +
                       formatTime(window.end) + ") before or when it starts (" +
                       formatTime(window.start) + ")");
  }
  if (window.end <= now) {
    throw CommandError("cannot " + std::string(verb) + ": the window end " +
                       formatTime(window.end) + " is in the past (now " + formatTime(now) + ")");
  }
}

}  // namespace

// ---- Impl: shared helpers ----------------------------------------------------

MaintenanceEngine::Impl::Impl(hv::Hypervisor& hypervisor_in, const WallClock& clock_in,
                              Journal& journal_in, EngineSettings settings_in,
                              EngineListener& listener_in)
    : hypervisor(hypervisor_in),
      clock(clock_in),
      journal(journal_in),
      settings(std::move(settings_in)),
      listener(listener_in),
      connection(hypervisor_in.connectionState()) {
  pacer.reset(pacerSettings());
}

MaintenanceEngine::Impl::Entry::Entry(Impl& impl)
    : impl_(impl), exceptions_(std::uncaught_exceptions()) {
  ++impl_.depth;
}

MaintenanceEngine::Impl::Entry::~Entry() {
  --impl_.depth;
  if (impl_.depth == 0 && std::uncaught_exceptions() == exceptions_) impl_.settle();
}

bool MaintenanceEngine::Impl::inMaintenance() const {
  return phase() == HostPhase::scheduled || phase() == HostPhase::draining ||
         phase() == HostPhase::empty || phase() == HostPhase::in_maintenance;
}

PlanContext MaintenanceEngine::Impl::planContext() const {
  PlanContext context;
  context.removal = state.window && state.window->removal;
  context.window_start = state.window ? state.window->start : now();
  context.noticed_at = state.scheduled_at.value_or(now());
  context.ability = abilityFrom(hypervisor.capabilities(), !destinationUris().empty());
  return context;
}

// Called for each domain in every pass of the pump: by index, not by a scan
// of all domains (which made a drain quadratic in the domains).
DomainRecord* MaintenanceEngine::Impl::find(const std::string& uuid) {
  auto valid = [&](auto at) {
    return at != domain_index.end() && at->second < state.domains.size() &&
           state.domains[at->second].uuid == uuid;
  };
  auto at = domain_index.find(uuid);
  if (!valid(at)) {
    domain_index.clear();
    for (std::size_t i = 0; i < state.domains.size(); ++i)
      domain_index.emplace(state.domains[i].uuid, i);
    at = domain_index.find(uuid);
    if (!valid(at)) return nullptr;
  }
  return &state.domains[at->second];
}

DomainRecord* MaintenanceEngine::Impl::findByNameOrUuid(const std::string& key) {
  for (DomainRecord& record : state.domains) {
    if (record.uuid == key || record.name == key) return &record;
  }
  return nullptr;
}

std::uint64_t MaintenanceEngine::Impl::memoryBytesOf(const DomainRecord& record) const {
  const hv::DomainInfo* info = hypervisor.findDomain(record.uuid);
  return (info ? info->memory_kib : record.memory_kib) * 1024;
}

MemoryOf MaintenanceEngine::Impl::memoryOf() const {
  return [this](const DomainRecord& record) { return memoryBytesOf(record); };
}

// ---- journal and publication ---------------------------------------------------

bool MaintenanceEngine::Impl::persist() {
  if (!recovered) return true;
  JournalUpdate update;
  if (std::string header = encodeEngineHeader(state); save_everything || header != saved_header)
    update.header = std::move(header);
  // A record equal to the one last saved (every member compared, which is
  // far cheaper than encoding it) is not encoded again; one that differs
  // only in what is not journaled encodes the same and is not written.
  // While the order of domains is the saved one, each record's saved copy
  // is at its own index.
  std::vector<std::pair<std::size_t, std::string>> encoded;  // by index into state.domains
  bool order_changed = save_everything || state.domains.size() != saved_records.size();
  for (std::size_t i = 0; i < state.domains.size(); ++i) {
    const DomainRecord& record = state.domains[i];
    const SavedRecord* saved = nullptr;
    if (!order_changed && saved_records[i].record.uuid == record.uuid) {
      saved = &saved_records[i];
    } else {
      order_changed = true;
      if (const auto found = saved_index.find(record.uuid); found != saved_index.end())
        saved = &saved_records[found->second];
    }
    if (!save_everything && saved && saved->record == record) continue;
    std::string text = encodeDomainRecord(record);
    if (save_everything || !saved || text != saved->encoded)
      update.records.emplace_back(record.uuid, text);
    encoded.emplace_back(i, std::move(text));
  }
  if (order_changed) {
    std::vector<std::string> order;
    order.reserve(state.domains.size());
    for (const DomainRecord& record : state.domains) order.push_back(record.uuid);
    update.order = std::move(order);
  }
  if (!update.empty()) {
    try {
      journal.save(update);
    } catch (const JournalError& error) {
      journal_error = error.what();
      return false;
    }
  }
  if (update.header) saved_header = std::move(*update.header);
  if (order_changed) {
    // Laid out again in the state's order; the records of domains gone go.
    std::vector<SavedRecord> reordered;
    reordered.reserve(state.domains.size());
    std::size_t next = 0;
    for (std::size_t i = 0; i < state.domains.size(); ++i) {
      if (next < encoded.size() && encoded[next].first == i) {
        reordered.push_back({state.domains[i], std::move(encoded[next++].second)});
      } else {
        reordered.push_back(std::move(saved_records[saved_index.at(state.domains[i].uuid)]));
      }
    }
    saved_records = std::move(reordered);
    saved_index.clear();
    for (std::size_t i = 0; i < saved_records.size(); ++i)
      saved_index.emplace(saved_records[i].record.uuid, i);
  } else {
    for (auto& [i, text] : encoded) saved_records[i] = {state.domains[i], std::move(text)};
  }
  save_everything = false;
  journal_error.reset();
  return true;
}

void MaintenanceEngine::Impl::rememberSaved(const std::string& document) {
  saved_header = encodeEngineHeader(state);
  saved_records.clear();
  saved_index.clear();
  std::vector<std::string_view> records;
  for (const DomainRecord& record : state.domains) {
    saved_index.emplace(record.uuid, saved_records.size());
    saved_records.push_back({record, encodeDomainRecord(record)});
  }
  for (const SavedRecord& saved : saved_records) records.push_back(saved.encoded);
  // Written by an older version (or edited): the next save writes it all
  // again, as this version encodes it.
  save_everything = renderJournalDocument(saved_header, records) != document;
}

void MaintenanceEngine::Impl::commit(const std::string& verb, EngineState before) {
  if (persist()) return;
  // A command is taken only once it is durable: a maintenance the caller was
  // told about must survive a restart. Nothing changed; the caller hears why.
  state = std::move(before);
  throw CommandError("cannot " + verb + ": the maintenance state cannot be saved (" +
                     journal_error.value_or("unknown error") + "); nothing was changed");
}

bool MaintenanceEngine::Impl::projectStatus() {
  const bool qemu_exit_grace = qemu_grace_until && now() < *qemu_grace_until;
  const PacingInputs pacing = pacingView();
  return projectStatusInto(StatusInputs{state, settings.host_name, connection, connection_detail,
                                        hypervisor.description(), {}, evidence,
                                        qemu_exit_grace, journal_error, settings.default_policy,
                                        settings.notices, cordonOf(), now(),
                                        settings.limits.save_timeout,
                                        settings.limits.restore_timeout, &projection_cache,
                                        &hypervisor, &pacing},
                           status);
}

void MaintenanceEngine::Impl::settle() noexcept {
  try {
    persist();
    tellCordon();
    if (projectStatus()) {
      ++status.generation;
      status.updated_at = now();
      listener.onStatusChanged(status);
    }
    // The owner arms its one timer from this: no caller re-arms after a command.
    if (const std::optional<TimePoint> wakeup = nextWakeup(); wakeup != notified_wakeup) {
      notified_wakeup = wakeup;
      listener.onWakeupChanged(wakeup);
    }
  } catch (const std::exception& error) {
    // The engine's state is already changed and journaled; a listener that
    // could not publish says so, and the next change publishes again.
    spdlog::error("cannot publish the maintenance status: {}", error.what());
  }
}

// ---- the pump -------------------------------------------------------------------

bool MaintenanceEngine::Impl::mayDrain() const {
  return listener.mayDrain(state.session_id.value_or(""));
}

void MaintenanceEngine::Impl::pump() {
  if (pumping) {
    pump_again = true;
    return;
  }
  pumping = true;
  do {
    pump_again = false;
    applyDeadlines();
    // While the host goes down nothing new starts: no migration that the
    // shutdown would cut, no restore that it would take down again.
    if (hostGoingDown()) {
      startHostShutdownActions();
    } else {
      startHostShutdownRestores();
      if (phase() == HostPhase::draining && mayDrain()) startDrainActions();
      if (phase() == HostPhase::restoring) {
        startRestoreActions();
        endRestoringWhenSettled();
      }
    }
    settleLeftovers();
    followCordon();
    evaluateEmptiness();
  } while (pump_again);
  pumping = false;
}

void MaintenanceEngine::Impl::applyDeadlines() {
  const TimePoint t = now();
  for (DomainRecord& record : state.domains) {
    if (const auto* awaiting = std::get_if<stage::AwaitingAck>(&record.state)) {
      if (t >= awaiting->deadline) admit(record);
    } else if (const auto* acting = std::get_if<stage::Acting>(&record.state)) {
      const auto* owner = std::get_if<running::OwnerActs>(&acting->how);
      if (owner && inMaintenance() && t >= owner->deadline) {
        blockOwnerMissedDeadline(record, owner->deadline);
      }
    }
  }
  if (phase() == HostPhase::scheduled && state.window && t >= state.window->start && mayDrain()) {
    state.phase = HostPhase::draining;
    beginPacing();
    for (DomainRecord& record : state.domains) {
      if (holds<stage::Planned>(record.state)) admit(record);
    }
  }
}

void MaintenanceEngine::Impl::evaluateEmptiness() {
  const HostPhase p = phase();
  if (p != HostPhase::draining && p != HostPhase::empty && p != HostPhase::in_maintenance) {
    evidence.reset();
    qemu_grace_until.reset();
    reprobe_at.reset();
    return;
  }
  if (!connected()) return;  // keep the last evidence; the libvirt blocker says why
  const bool all_settled = std::all_of(state.domains.begin(), state.domains.end(), isSettled);
  // Once the last domain is handled it is probed at every entry point, so
  // readiness follows the event that emptied the host at once.
  if (!all_settled && p == HostPhase::draining && evidence && probed_at &&
      now() >= *probed_at && now() - *probed_at < kBusyProbeInterval) {
    qemu_grace_until.reset();
    reprobe_at.reset();
    return;
  }
  hv::EmptinessQuery query;
  query.removal = state.window && state.window->removal;
  for (const DomainRecord& record : state.domains) {
    // A domain that migrated away (or left by other hands) runs elsewhere:
    // on a kernel shared with its destination (the lab) its QEMU process
    // is the destination's.
    const bool migrated_away = holds<stage::Done>(record.state) && record.action &&
                               isMigration(*record.action);
    if (!migrated_away && !holds<stage::Left>(record.state)) {
      query.known_uuids.push_back(record.uuid);
    }
  }
  hv::EmptinessReport report = hypervisor.probeEmptiness(query);
  evidence = report.checks;
  probed_at = now();
  reprobe_at.reset();
  if (all_settled && report.empty()) {
    qemu_grace_until.reset();
    // A definition a failed migration may have left on a destination is not
    // settled yet: the drain has not ended (no domain defined on two hosts).
    if (!state.leftovers.empty()) {
      if (p == HostPhase::empty) state.phase = HostPhase::draining;
      return;
    }
    if (p == HostPhase::draining) state.phase = HostPhase::empty;
    return;
  }
  const bool only_qemu = all_settled && std::all_of(report.checks.begin(), report.checks.end(),
                                                    [](const hv::EvidenceCheck& c) {
                                                      return c.ok || c.name == kQemuCheck;
                                                    });
  if (only_qemu) {
    if (!qemu_grace_until) qemu_grace_until = now() + kQemuGrace;
    if (now() < *qemu_grace_until) reprobe_at = now() + kQemuReprobeInterval;
  } else {
    qemu_grace_until.reset();
  }
  if (p == HostPhase::empty) state.phase = HostPhase::draining;
}

std::optional<TimePoint> MaintenanceEngine::Impl::nextWakeup() const {
  const TimePoint t = now();
  std::optional<TimePoint> best;
  auto consider = [&](std::optional<TimePoint> when) {
    if (when && *when > t && (!best || *when < *best)) best = when;
  };
  if (phase() == HostPhase::scheduled && state.window) consider(state.window->start);
  // The overrun begins at the window's end, with no other event to wake for.
  if ((phase() == HostPhase::scheduled || phase() == HostPhase::draining) && state.window) {
    consider(state.window->end);
  }
  for (const DomainRecord& record : state.domains) {
    if (const auto* awaiting = std::get_if<stage::AwaitingAck>(&record.state)) {
      consider(awaiting->deadline);
    } else if (holds<stage::Planned>(record.state)) {
      if (phase() == HostPhase::scheduled) consider(record.ack_deadline);
    } else if (holds<stage::Waiting>(record.state)) {
      consider(record.earliest_start);
      consider(record.retry_at);
    } else if (const auto* acting = std::get_if<stage::Acting>(&record.state)) {
      const auto* owner = std::get_if<running::OwnerActs>(&acting->how);
      if (owner && inMaintenance()) consider(owner->deadline);
    } else if (holds<stage::Done>(record.state)) {
      if (phase() == HostPhase::draining && !record.policy.group.empty() && record.finished_at &&
          !record.needs_restore) {
        consider(*record.finished_at + record.policy.recovery_time);
      }
    }
  }
  for (const LeftoverCheck& check : state.leftovers) consider(check.next_attempt);
  for (const DomainRecord& record : state.domains)
    consider(actionDeadline(record, settings.limits.save_timeout, settings.limits.restore_timeout));
  consider(reprobe_at);
  if (journal_error && phase() != HostPhase::idle) consider(t + kJournalRetryInterval);
  return best;
}

// ---- MaintenanceEngine ------------------------------------------------------------

MaintenanceEngine::MaintenanceEngine(hv::Hypervisor& hypervisor, const WallClock& clock,
                                     Journal& journal, EngineSettings settings,
                                     EngineListener& listener)
    : impl_(std::make_unique<Impl>(hypervisor, clock, journal, std::move(settings), listener)) {
  impl_->projectStatus();
}

MaintenanceEngine::~MaintenanceEngine() = default;

void MaintenanceEngine::recover() { impl_->recover(); }

std::string MaintenanceEngine::schedule(const ScheduleRequest& request) {
  Impl& e = *impl_;
  if (e.phase() != HostPhase::idle) {
    throw CommandError("maintenance already scheduled (session " +
                       e.state.session_id.value_or("?") + ", phase " +
                       std::string(toString(e.phase())) + "); cancel it first");
  }
  const MaintenanceWindow& window = request.window;
  checkWindow("schedule", window, e.now());
  Impl::Entry entry(e);
  EngineState before = e.state;
  const std::uint64_t learned_throughput = e.state.migration_throughput_bps;
  e.state = EngineState{};
  e.state.migration_throughput_bps = learned_throughput;
  e.state.phase = HostPhase::scheduled;
  e.state.session_id = request.session_id && !request.session_id->empty() ? *request.session_id
                                                                          : generateSessionId();
  e.state.window = window;
  if (request.destinations.empty()) {
    for (const DestinationConfig& destination : e.settings.migration.destinations) {
      e.state.destinations.push_back(destination.uri);
    }
  } else {
    e.state.destinations = request.destinations;
  }
  e.destination_probes.clear();
  e.state.scheduled_at = e.now();
  std::vector<hv::DomainInfo> inventory = e.hypervisor.domains();
  std::sort(inventory.begin(), inventory.end(),
            [](const hv::DomainInfo& a, const hv::DomainInfo& b) { return a.name < b.name; });
  for (const hv::DomainInfo& info : inventory) e.addPlanned(info);
  e.commit("schedule", std::move(before));
  e.pump();
  return *e.state.session_id;
}

void MaintenanceEngine::reschedule(const MaintenanceWindow& window) {
  Impl& e = *impl_;
  if (e.phase() != HostPhase::scheduled && e.phase() != HostPhase::draining) {
    throw CommandError("cannot reschedule: maintenance is in phase '" +
                       std::string(toString(e.phase())) + "'");
  }
  checkWindow("reschedule", window, e.now());
  const MaintenanceWindow& current = *e.state.window;
  MaintenanceWindow next = window;
  if (e.phase() == HostPhase::draining) {
    // Every interface shows the start in whole seconds while a start of
    // "now" has a fraction: the start as shown is the same start.
    using std::chrono::floor;
    using std::chrono::seconds;
    if (floor<seconds>(next.start) == floor<seconds>(current.start)) next.start = current.start;
    if (next.start != current.start || next.removal != current.removal) {
      throw CommandError(
          "cannot move the start or change removal of a maintenance that is draining; only its "
          "end and reason can change (cancel and schedule again instead)");
    }
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  e.state.window = next;
  if (e.phase() == HostPhase::scheduled) {
    for (DomainRecord& record : e.state.domains) {
      if (auto info = e.hypervisor.domain(record.uuid)) e.planRecord(record, *info);
    }
  }
  e.commit("reschedule", std::move(before));
  e.pump();
}

void MaintenanceEngine::cancel() {
  Impl& e = *impl_;
  switch (e.phase()) {
    case HostPhase::idle: throw CommandError("cannot cancel: no maintenance is scheduled");
    case HostPhase::empty:
    case HostPhase::in_maintenance:
      throw CommandError("cannot cancel: maintenance is in phase '" +
                         std::string(toString(e.phase())) + "'; use finish");
    case HostPhase::restoring:
      throw CommandError("cannot cancel: maintenance is already ending (phase 'restoring')");
    case HostPhase::scheduled:
    case HostPhase::draining: break;
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  e.state.phase = HostPhase::restoring;
  for (DomainRecord& record : e.state.domains) {
    if (auto* acting = std::get_if<stage::Acting>(&record.state); acting && acting->kind) {
      stage::Acting cancelled = *acting;
      cancelled.cancelled = true;
      transition(record, std::move(cancelled));
    } else if (holds<stage::Acting>(record.state) || holds<stage::Planned>(record.state) ||
               holds<stage::AwaitingAck>(record.state) || holds<stage::Waiting>(record.state) ||
               holds<stage::Blocked>(record.state)) {
      // Owner actions included: hostmaint did nothing to them.
      transition(record, stage::Restored{"not touched: maintenance cancelled", ""});
    } else if (const auto* done = std::get_if<stage::Done>(&record.state);
               done && record.needs_restore) {
      transition(record, stage::Restoring{done->outcome});
    }
  }
  e.commit("cancel", std::move(before));
  e.pump();
}

void MaintenanceEngine::acknowledge(const std::string& domain, AckChoice choice,
                                    std::string reason) {
  Impl& e = *impl_;
  if (e.phase() != HostPhase::scheduled && e.phase() != HostPhase::draining) {
    throw CommandError("cannot acknowledge " + inQuotes(domain) + ": maintenance is in phase '" +
                       std::string(toString(e.phase())) +
                       "'; acks are taken while it is scheduled or draining");
  }
  DomainRecord* record = e.findByNameOrUuid(domain);
  if (!record) {
    throw CommandError("unknown domain " + inQuotes(domain) +
                       ": it is not in this host's maintenance plan (give a name or UUID)");
  }
  const std::string name = record->name;
  switch (record->stage()) {
    case DomainStage::acting:
    case DomainStage::done:
    case DomainStage::left:
    case DomainStage::failed:
      throw CommandError("cannot acknowledge " + inQuotes(name) + ": it is already " +
                         std::string(toString(record->stage())));
    default: break;
  }
  std::optional<hv::DomainInfo> info = e.hypervisor.domain(record->uuid);
  if (choice == AckChoice::keep) {
    // A domain with a malformed policy is judged by the host's defaults, as
    // planRecord will act on them after this ack.
    const DomainPolicy& policy =
        record->policy_error.empty() ? record->policy : e.settings.default_policy;
    KeepDecision keep = keepDecision(name, policy, e.state.window && e.state.window->removal,
                                     !info || info->persistent);
    if (!keep.action) throw CommandError(keep.refusal);
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  record->ack = choice;
  record->ack_reason = std::move(reason);
  record->ack_time = e.now();
  if (info) {
    e.planRecord(*record, *info);
  } else {
    e.markLeft(*record, "gone from the host (not by hostmaint)");
  }
  e.commit("acknowledge " + inQuotes(domain), std::move(before));
  e.pump();
}

void MaintenanceEngine::begin() {
  Impl& e = *impl_;
  if (e.phase() != HostPhase::empty) {
    throw CommandError("cannot begin: maintenance is in phase '" +
                       std::string(toString(e.phase())) +
                       "'; work may begin only when the host is evidenced empty (phase 'empty')");
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  e.state.phase = HostPhase::in_maintenance;
  e.commit("begin", std::move(before));
  e.pump();
}

void MaintenanceEngine::finish() {
  Impl& e = *impl_;
  if (e.phase() != HostPhase::empty && e.phase() != HostPhase::in_maintenance) {
    throw CommandError("cannot finish: maintenance is in phase '" +
                       std::string(toString(e.phase())) + "'" +
                       (e.phase() == HostPhase::idle ? "; nothing to finish"
                        : e.phase() == HostPhase::restoring
                            ? "; it is already finishing"
                            : "; finish is for an empty host; use cancel to stop a drain"));
  }
  Impl::Entry entry(e);
  EngineState before = e.state;
  e.state.phase = HostPhase::restoring;
  for (DomainRecord& record : e.state.domains) {
    if (const auto* done = std::get_if<stage::Done>(&record.state); done && record.needs_restore) {
      transition(record, stage::Restoring{done->outcome});
    }
  }
  e.commit("finish", std::move(before));
  e.pump();
}

void MaintenanceEngine::updateSettings(EngineSettings settings) {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  e.settings = std::move(settings);
  e.pump();
}

void MaintenanceEngine::tick() {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  if (e.connected() && e.reconcile_pending) {
    e.reconcile_pending = false;
    e.reconcileAll();
  }
  e.pump();
}

std::optional<TimePoint> MaintenanceEngine::nextWakeup() const { return impl_->nextWakeup(); }

const HostStatus& MaintenanceEngine::status() const { return impl_->status; }

void MaintenanceEngine::onDomainEvent(const hv::DomainEvent& event) {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  if (e.reconcile_pending) return;  // the inventory refresh reconciles everything
  std::optional<hv::DomainInfo> info = e.hypervisor.domain(event.uuid);
  if (e.phase() == HostPhase::idle) {
    e.syncIdleInventory();
  } else if (DomainRecord* record = e.find(event.uuid)) {
    e.reconcile(*record, info);
  } else if (info && e.inMaintenance()) {
    e.addPlanned(*info);
    e.occupiedAgain(e.state.domains.back());
  }
  e.pump();
}

void MaintenanceEngine::onMigrationSwitchover(const std::string& uuid) {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  e.pacingSwitchover(uuid);
}

void MaintenanceEngine::onInventoryRefreshed() {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  e.connection = e.hypervisor.connectionState();
  ++e.inventory_refreshes;
  e.reconcile_pending = false;
  e.reconcileAll();
  e.pump();
}

void MaintenanceEngine::onConnectionStateChanged(hv::ConnectionState state,
                                                 const std::string& detail) {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  e.connection = state;
  e.connection_detail = state == hv::ConnectionState::connected ? std::string() : detail;
  e.pump();
}

}  // namespace hostmaint::agent
