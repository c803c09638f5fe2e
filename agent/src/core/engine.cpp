// The maintenance engine: plans a host's maintenance, drives the drain within
// its limits, proves the host empty and restores what it took down.
// The state machine is described in docs/engine.md.
#include "hostmaint/agent/engine.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <random>
#include <tuple>
#include <unordered_map>
#include <variant>

#include "destination_choice.hpp"
#include "drain_plan.hpp"
#include "engine_state.hpp"

namespace hostmaint::agent {

EngineSettings engineSettingsFrom(const Config& config, std::string host_name) {
  EngineSettings settings;
  settings.default_policy = config.policy;
  settings.limits = config.limits;
  settings.migration = config.migration;
  settings.host_name = std::move(host_name);
  settings.notices = noticeSettingsFrom(config.notices);
  return settings;
}

namespace {

using namespace std::chrono_literals;

// A process needs a moment to exit after its domain stopped: the QEMU check
// is re-probed this often, for this long, before it counts as a blocker.
constexpr auto kQemuReprobeInterval = 100ms;
constexpr auto kQemuGrace = 5s;
constexpr std::string_view kQemuCheck = "no-qemu-processes";

// A migration interrupted without effect (lost libvirt connection, daemon
// restart) is tried again this many times; then the domain's fallback
// applies, as a link that keeps dropping will not carry it either.
constexpr unsigned kMaxMigrationRetries = 2;

std::string formatTime(TimePoint time) {
  const std::time_t seconds = Clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string inQuotes(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string actionName(const std::optional<MaintenanceAction>& action) {
  return action ? std::string(toString(*action)) : std::string("none");
}

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

bool isSettled(DomainStage stage) {
  return stage == DomainStage::done || stage == DomainStage::left;
}

bool isMigrationKind(hv::ActionKind kind) {
  return kind == hv::ActionKind::live_migrate || kind == hv::ActionKind::cold_migrate;
}

// Equality of the published snapshot, ignoring generation and updated_at:
// a new generation only when something a reader can see changed.
bool sameWindow(const std::optional<MaintenanceWindow>& a,
                const std::optional<MaintenanceWindow>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return std::tie(a->start, a->end, a->removal, a->reason) ==
         std::tie(b->start, b->end, b->removal, b->reason);
}

bool sameProgress(const std::optional<MigrationProgress>& a,
                  const std::optional<MigrationProgress>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return std::tie(a->data_total_bytes, a->data_processed_bytes, a->data_remaining_bytes,
                  a->memory_dirty_rate_bps, a->throughput_bps, a->percent, a->downtime_limit_ms,
                  a->iteration, a->post_copy, a->escalation, a->started_at) ==
         std::tie(b->data_total_bytes, b->data_processed_bytes, b->data_remaining_bytes,
                  b->memory_dirty_rate_bps, b->throughput_bps, b->percent, b->downtime_limit_ms,
                  b->iteration, b->post_copy, b->escalation, b->started_at);
}

bool sameDomain(const DomainStatus& a, const DomainStatus& b) {
  return std::tie(a.uuid, a.name, a.run_state, a.memory_kib, a.owner, a.project, a.stage, a.action,
                  a.fallback_used, a.result, a.detail, a.group, a.priority, a.ack_required, a.ack,
                  a.ack_deadline, a.earliest_start, a.destination, a.policy_error,
                  a.action_started_at, a.action_finished_at) ==
             std::tie(b.uuid, b.name, b.run_state, b.memory_kib, b.owner, b.project, b.stage,
                      b.action, b.fallback_used, b.result, b.detail, b.group, b.priority,
                      b.ack_required, b.ack, b.ack_deadline, b.earliest_start, b.destination,
                      b.policy_error, b.action_started_at, b.action_finished_at) &&
         sameProgress(a.progress, b.progress) && a.notice == b.notice;
}

bool sameStatus(const HostStatus& a, const HostStatus& b) {
  auto sameBlockers = std::equal(a.blockers.begin(), a.blockers.end(), b.blockers.begin(),
                                 b.blockers.end(), [](const Blocker& x, const Blocker& y) {
                                   return x.subject == y.subject && x.reason == y.reason;
                                 });
  auto sameEvidence =
      std::equal(a.evidence.begin(), a.evidence.end(), b.evidence.begin(), b.evidence.end(),
                 [](const hv::EvidenceCheck& x, const hv::EvidenceCheck& y) {
                   return x.name == y.name && x.ok == y.ok && x.detail == y.detail;
                 });
  auto sameDomains = std::equal(a.domains.begin(), a.domains.end(), b.domains.begin(),
                                b.domains.end(), sameDomain);
  return std::tie(a.host, a.phase, a.ready, a.session_id, a.hypervisor_connection, a.hypervisor,
                  a.hypervisor_detail, a.migration_throughput_bps) ==
             std::tie(b.host, b.phase, b.ready, b.session_id, b.hypervisor_connection, b.hypervisor,
                      b.hypervisor_detail, b.migration_throughput_bps) &&
         sameWindow(a.window, b.window) && sameBlockers && sameEvidence && sameDomains;
}

}  // namespace

struct MaintenanceEngine::Impl {
  Impl(hv::Hypervisor& hypervisor_in, const WallClock& clock_in, Journal& journal_in,
       EngineSettings settings_in, EngineListener& listener_in)
      : hypervisor(hypervisor_in),
        clock(clock_in),
        journal(journal_in),
        settings(std::move(settings_in)),
        listener(listener_in),
        connection(hypervisor_in.connectionState()) {}

  hv::Hypervisor& hypervisor;
  const WallClock& clock;
  Journal& journal;
  EngineSettings settings;
  EngineListener& listener;

  EngineState state;
  HostStatus status;

  // Completions and progress reports hold a weak reference: the hypervisor
  // may outlive the engine (and does, in the crash tests).
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  std::uint64_t next_token = 0;

  int depth = 0;  // nesting of entry points; the outermost one publishes
  bool pumping = false;
  bool pump_again = false;

  hv::ConnectionState connection;
  std::string connection_detail;
  bool reconcile_pending = false;  // recovered while not connected
  // Until recover() has read the journal, nothing may be saved: hypervisor
  // events that arrive first would otherwise overwrite the saved maintenance
  // with an idle state.
  bool recovered = false;

  std::optional<std::vector<hv::EvidenceCheck>> evidence;
  std::optional<TimePoint> qemu_grace_until;
  std::optional<TimePoint> reprobe_at;

  std::optional<std::string> journal_error;
  std::string last_saved;
  std::optional<TimePoint> notified_wakeup;  // the listener's last onWakeupChanged
  // Not journaled: what each candidate destination reported when last
  // probed (a restarted daemon probes again).
  struct DestinationProbe {
    std::optional<hv::DestinationReport> report;
    TimePoint probed_at{};
    bool in_flight = false;
  };
  std::map<std::string, DestinationProbe> destination_probes;
  // Domains whose migration, started before a restart or a lost connection,
  // is being waited for (adopt_migration).
  std::map<std::string, bool> adopting;
  // Inventory refreshes so far: each follows a (re)connection to libvirt.
  std::uint64_t inventory_refreshes = 0;
  std::map<std::string, bool> group_stalled;         // uuid → held by a group that cannot recover

  // ---- entry points -------------------------------------------------------

  // Every public entry point holds one: when the outermost ends normally, the
  // journal and the published snapshot are brought up to date (once).
  class Entry {
   public:
    explicit Entry(Impl& impl) : impl_(impl), exceptions_(std::uncaught_exceptions()) {
      ++impl_.depth;
    }
    ~Entry() noexcept(false) {
      --impl_.depth;
      if (impl_.depth == 0 && std::uncaught_exceptions() == exceptions_) impl_.settle();
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

   private:
    Impl& impl_;
    int exceptions_;
  };

  TimePoint now() const { return clock.now(); }
  bool connected() const { return connection == hv::ConnectionState::connected; }
  HostPhase phase() const { return state.phase; }

  DomainRecord* find(const std::string& uuid) {
    for (DomainRecord& record : state.domains) {
      if (record.view.uuid == uuid) return &record;
    }
    return nullptr;
  }

  DomainRecord* findByNameOrUuid(const std::string& key) {
    for (DomainRecord& record : state.domains) {
      if (record.view.uuid == key || record.view.name == key) return &record;
    }
    return nullptr;
  }

  bool inMaintenance() const {
    return phase() == HostPhase::scheduled || phase() == HostPhase::draining ||
           phase() == HostPhase::empty || phase() == HostPhase::in_maintenance;
  }

  PlanContext planContext() const {
    PlanContext context;
    context.removal = state.window && state.window->removal;
    context.window_start = state.window ? state.window->start : now();
    context.noticed_at = state.scheduled_at.value_or(now());
    context.ability = abilityFrom(hypervisor.capabilities(), !state.destinations.empty());
    return context;
  }

  // ---- journal and publication ----------------------------------------------

  bool persist() {
    if (!recovered) return true;
    std::string document = encodeEngineState(state);
    if (document == last_saved) return true;
    try {
      journal.save(document);
      last_saved = std::move(document);
      journal_error.reset();
      return true;
    } catch (const JournalError& error) {
      journal_error = error.what();
      return false;
    }
  }

  void settle() {
    persist();
    HostStatus next = buildStatus();
    next.generation = status.generation;
    next.updated_at = status.updated_at;
    if (!sameStatus(next, status)) {
      next.generation = status.generation + 1;
      next.updated_at = now();
      status = std::move(next);
      listener.onStatusChanged(status);
    }
    // The owner arms its one timer from this: no caller re-arms after a command.
    if (const std::optional<TimePoint> wakeup = nextWakeup(); wakeup != notified_wakeup) {
      notified_wakeup = wakeup;
      listener.onWakeupChanged(wakeup);
    }
  }

  HostStatus buildStatus() const {
    HostStatus out;
    out.host = settings.host_name;
    out.phase = phase();
    out.session_id = state.session_id;
    out.window = state.window;
    out.hypervisor_connection = connection;
    out.hypervisor = hypervisor.description();
    out.hypervisor_detail = connection_detail;
    out.migration_throughput_bps = state.migration_throughput_bps;
    if (evidence) out.evidence = *evidence;
    const bool evidenced_empty =
        evidence && std::all_of(evidence->begin(), evidence->end(),
                                [](const hv::EvidenceCheck& c) { return c.ok; });
    out.ready = (phase() == HostPhase::empty || phase() == HostPhase::in_maintenance) &&
                evidenced_empty && connected();

    std::unordered_map<std::string, hv::DomainInfo> inventory;
    for (hv::DomainInfo& info : hypervisor.domains()) inventory.emplace(info.uuid, info);

    if (!connected()) {
      out.blockers.push_back(
          {"libvirt", std::string(hv::toString(connection)) +
                          (connection_detail.empty() ? "" : ": " + connection_detail)});
    }
    if (journal_error) {
      out.blockers.push_back({"journal", "cannot save the engine state: " + *journal_error});
    }
    for (const DomainRecord& record : state.domains) {
      DomainStatus view = record.view;
      view.action_started_at = record.started_at;
      view.action_finished_at = record.finished_at;
      auto info = inventory.find(view.uuid);
      if (info != inventory.end()) {
        view.run_state = info->second.state;
        view.memory_kib = info->second.memory_kib;
        view.owner = info->second.owner;
        view.project = info->second.project;
      } else {
        view.run_state = hv::DomainRunState::unknown;
        view.memory_kib = 0;
      }
      view.notice = noticeFor(record, view);
      out.domains.push_back(view);

      const std::string subject = "domain " + view.name;
      switch (view.stage) {
        case DomainStage::blocked:
        case DomainStage::failed: out.blockers.push_back({subject, view.detail}); break;
        case DomainStage::awaiting_ack: out.blockers.push_back({subject, view.detail}); break;
        case DomainStage::waiting: {
          auto stalled = group_stalled.find(view.uuid);
          if (stalled != group_stalled.end() && stalled->second) {
            out.blockers.push_back({subject, view.detail});
          }
          break;
        }
        case DomainStage::restore_failed:
          out.blockers.push_back({subject, "restore failed: " + view.detail});
          break;
        default: break;
      }
    }
    if (evidence) {
      for (const hv::EvidenceCheck& check : *evidence) {
        if (check.ok) continue;
        if (check.name == kQemuCheck && qemu_grace_until && now() < *qemu_grace_until) continue;
        out.blockers.push_back({"check " + check.name, check.detail});
      }
    }
    return out;
  }

  // Throughput measured on this host's earlier migrations; 0 until one has
  // been measured (the notices then use the configured assumption).
  std::uint64_t measuredThroughput() const { return state.migration_throughput_bps; }

  // The owner's notice for one domain while a maintenance is on
  // (docs/notices.md); the service numbers and delivers it.
  std::optional<DomainNotice> noticeFor(const DomainRecord& record,
                                        const DomainStatus& view) const {
    if (!inMaintenance() || !state.window) return std::nullopt;
    // A malformed policy is acted on with the host's defaults once acked,
    // so that is what keep and the deadline mean for it.
    const DomainPolicy& policy =
        view.policy_error.empty() ? record.policy : settings.default_policy;
    const NoticeInput input{view, policy, *state.window, state.session_id.value_or(""),
                            state.scheduled_at.value_or(now()), measuredThroughput()};
    return computeNotice(input, settings.notices);
  }

  // ---- planning ------------------------------------------------------------

  // (Re)plans one domain from its inventory entry, keeping its ack.
  void planRecord(DomainRecord& record, const hv::DomainInfo& info) {
    DomainStatus& view = record.view;
    view.uuid = info.uuid;
    view.name = info.name;
    view.result.clear();
    view.detail.clear();
    view.destination.reset();
    view.progress.reset();
    view.fallback_used = false;
    record.acting_kind.reset();
    record.completion_pending = false;
    record.needs_restore = false;
    record.note.clear();
    record.fallback.reset();
    record.started_at.reset();
    record.finished_at.reset();
    record.memory_kib = 0;
    record.interrupted_migrations = 0;
    record.held_for_reconnect = false;

    PolicyResult resolved = policyFor(info, settings.default_policy);
    const PolicyError* error = std::get_if<PolicyError>(&resolved);
    if (error && !view.ack) {
      // Never replaced by a default silently: the domain is a named blocker
      // until its metadata is fixed or someone acknowledges it explicitly.
      view.policy_error = error->message;
      view.action.reset();
      view.stage = DomainStage::blocked;
      view.detail = "malformed hostmaint policy: " + error->message;
      view.group.clear();
      view.priority = 0;
      view.ack_required = false;
      view.ack_deadline.reset();
      view.earliest_start.reset();
      return;
    }
    if (error) {
      // An explicit ack is a human decision: in clouds where owners cannot edit
      // the domain XML it is the only way past a broken policy. The host's
      // defaults then apply to that choice, and the error stays visible.
      record.policy = settings.default_policy;
      view.policy_error = error->message;
    } else {
      record.policy = std::get<DomainPolicy>(resolved);
      view.policy_error.clear();
    }
    view.group = record.policy.group;
    view.priority = record.policy.priority;
    view.ack_required = record.policy.ack_required;

    DomainPlan plan = planDomain(info, record.policy, planContext(), view.ack, record.ack_time);
    view.action = plan.action;
    view.fallback_used = plan.fallback_used;
    record.fallback = plan.fallback;
    record.note = plan.note;
    if (error) {
      std::string override_note = "hostmaint policy malformed; acting on the explicit ack '" +
                                  std::string(toString(*view.ack)) +
                                  "' with the host's default policy";
      record.note = record.note.empty() ? override_note : override_note + "; " + record.note;
    }
    view.earliest_start = plan.earliest_start;
    view.ack_deadline = view.ack ? std::nullopt : plan.ack_deadline;
    switch (plan.kind) {
      case DomainPlan::Kind::nothing_to_do:
        view.stage = DomainStage::done;
        view.action.reset();
        view.result = plan.reason;
        view.earliest_start.reset();
        view.ack_deadline.reset();
        return;
      case DomainPlan::Kind::blocked:
        view.stage = DomainStage::blocked;
        view.detail = plan.reason;
        return;
      case DomainPlan::Kind::act:
        view.result = plan.note;
        view.stage = DomainStage::planned;
        admit(record);
        return;
    }
  }

  // Puts a planned domain in the stage its ack and the phase allow.
  void admit(DomainRecord& record) {
    DomainStatus& view = record.view;
    if (view.ack_required && !view.ack && view.ack_deadline) {
      if (now() < *view.ack_deadline) {
        view.stage = DomainStage::awaiting_ack;
        view.detail = "awaiting the owner's acknowledgement (move or keep) until " +
                      formatTime(*view.ack_deadline);
        return;
      }
      if (record.policy.ack_timeout_action == AckTimeoutAction::block) {
        view.stage = DomainStage::blocked;
        view.detail = "no acknowledgement by " + formatTime(*view.ack_deadline) +
                      "; left alone (ack_timeout_action block) until the owner acknowledges";
        return;
      }
    }
    if (phase() == HostPhase::scheduled) {
      view.stage = DomainStage::planned;
      view.detail = actionName(view.action) + " not before " +
                    formatTime(view.earliest_start.value_or(now()));
      if (!record.note.empty()) view.detail += "; " + record.note;
      return;
    }
    view.stage = DomainStage::waiting;
    view.detail = "waiting to start";
  }

  // A domain that is not in the plan yet (inventory at schedule time, or a
  // domain that appeared during the maintenance).
  void addPlanned(const hv::DomainInfo& info) {
    DomainRecord record;
    planRecord(record, info);
    state.domains.push_back(std::move(record));
  }

  // Outside a maintenance the status lists the host's domains as they are.
  void syncIdleInventory() {
    if (phase() != HostPhase::idle) return;
    std::vector<hv::DomainInfo> inventory = hypervisor.domains();
    std::erase_if(state.domains, [&](const DomainRecord& record) {
      const bool present = std::any_of(inventory.begin(), inventory.end(),
                                       [&](const auto& d) { return d.uuid == record.view.uuid; });
      // Idle entries follow the inventory; a finished session's results stay
      // visible until the next schedule.
      return !present && record.view.stage == DomainStage::planned;
    });
    for (const hv::DomainInfo& info : inventory) {
      if (find(info.uuid)) continue;
      DomainRecord record;
      record.view.uuid = info.uuid;
      record.view.name = info.name;
      record.view.stage = DomainStage::planned;
      record.view.detail = "no maintenance scheduled";
      PolicyResult resolved = policyFor(info, settings.default_policy);
      if (const PolicyError* error = std::get_if<PolicyError>(&resolved)) {
        record.view.policy_error = error->message;
      } else {
        record.policy = std::get<DomainPolicy>(resolved);
        record.view.group = record.policy.group;
        record.view.priority = record.policy.priority;
        record.view.ack_required = record.policy.ack_required;
      }
      state.domains.push_back(std::move(record));
    }
  }

  // ---- reconciliation with the inventory ---------------------------------------

  void markLeft(DomainRecord& record, std::string result) {
    record.view.stage = DomainStage::left;
    record.view.result = std::move(result);
    record.view.detail.clear();
    record.acting_kind.reset();
    record.completion_pending = false;
    record.view.progress.reset();
    record.finished_at = now();
  }

  void replan(DomainRecord& record, const hv::DomainInfo& info) {
    planRecord(record, info);
    if (record.view.stage != DomainStage::done &&
        (phase() == HostPhase::empty || phase() == HostPhase::in_maintenance)) {
      // Something occupies the host again: it is not empty any more.
      state.phase = HostPhase::draining;
      admit(record);
    }
  }

  // Brings one domain's stage in line with what the hypervisor shows now.
  // Never repeats an action whose effect is already visible.
  void reconcile(DomainRecord& record, const std::optional<hv::DomainInfo>& info) {
    DomainStatus& view = record.view;
    const bool removal = state.window && state.window->removal;
    switch (view.stage) {
      case DomainStage::acting:
        if (record.acting_kind) {
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
          if (info) view.name = info->name;
          return;
        }
        if (!info) {
          markLeft(record, "gone from the host (not by hostmaint)");
        } else if (!hv::occupiesHost(info->state) && view.stage != DomainStage::failed) {
          if (removal && info->persistent) {
            if (view.action && isMigration(*view.action) &&
                *view.action != MaintenanceAction::cold_migrate && view.policy_error.empty()) {
              planRecord(record, *info);  // a stopped domain can only leave offline
            }
          } else {
            view.stage = DomainStage::done;
            view.result = "stopped outside hostmaint; nothing to do";
            view.detail.clear();
          }
        }
        return;
      case DomainStage::done:
      case DomainStage::left:
        if (inMaintenance() && info && hv::occupiesHost(info->state)) {
          replan(record, *info);
        }
        return;
      case DomainStage::restoring:
        if (record.acting_kind == hv::ActionKind::start && !record.completion_pending) {
          if (info && hv::occupiesHost(info->state)) {
            finishRestore(record, true, "restored (confirmed after restart)");
          } else if (!info) {
            finishRestore(record, false, "no longer defined on this host");
          } else if (!info->job_active) {
            record.acting_kind.reset();  // interrupted: started again by the restore queue
            view.detail = "waiting to be restored";
          }
        }
        return;
      case DomainStage::restored:
      case DomainStage::restore_failed: return;
    }
  }

  // An action this process did not start (it was running when the previous
  // process stopped): its outcome is read from the inventory.
  void reconcileInterrupted(DomainRecord& record, const std::optional<hv::DomainInfo>& info) {
    const hv::ActionKind kind = *record.acting_kind;
    if (kind == hv::ActionKind::start) return;
    const std::string when =
        record.held_for_reconnect ? "after libvirt reconnected" : "after restart";
    record.held_for_reconnect = false;
    if (!info) {
      if (isMigrationKind(kind)) {
        completeDrain(
            record,
            "migrated" +
                (record.view.destination ? " to " + *record.view.destination : std::string()) +
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
      record.view.detail = std::string(hv::toString(kind)) + " in progress (found " + when +
                           "); waiting for it to finish";
      return;
    }
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
        break;
      case hv::ActionKind::live_migrate:
      case hv::ActionKind::cold_migrate:
      case hv::ActionKind::adopt_migration:
        if (!occupies) {
          completeDrain(record, "not running on this host after restart; nothing left to do",
                        false);
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

  void redoInterrupted(DomainRecord& record, const std::string& why) {
    const bool migration = record.acting_kind && isMigrationKind(*record.acting_kind);
    if (migration && phase() != HostPhase::restoring &&
        ++record.interrupted_migrations > kMaxMigrationRetries) {
      failDrain(record, why + "; interrupted " + std::to_string(record.interrupted_migrations) +
                            " times, not tried again");
      return;
    }
    record.acting_kind.reset();
    record.view.destination.reset();
    if (phase() == HostPhase::restoring) {
      record.view.stage = DomainStage::restored;
      record.view.result = "not touched: maintenance cancelled";
      record.view.detail.clear();
      return;
    }
    record.view.stage = DomainStage::waiting;
    record.view.detail = why + "; will be redone";
  }

  // libvirtd kept running the migration an earlier hostmaintd (or a lost
  // connection) left behind: wait for it rather than start a second one.
  void adoptMigration(DomainRecord& record) {
    adopting[record.view.uuid] = true;
    record.view.detail = std::string(hv::toString(*record.acting_kind)) +
                         " found in progress; waiting for it to finish";
    hv::ActionRequest request;
    request.kind = hv::ActionKind::adopt_migration;
    request.uuid = record.view.uuid;
    request.name = record.view.name;
    request.destination_uri = record.view.destination.value_or("");
    launch(record, request);
  }

  void reconcileAll() {
    std::vector<hv::DomainInfo> inventory = hypervisor.domains();
    for (DomainRecord& record : state.domains) {
      std::optional<hv::DomainInfo> info;
      for (const hv::DomainInfo& candidate : inventory) {
        if (candidate.uuid == record.view.uuid) info = candidate;
      }
      reconcile(record, info);
    }
    if (phase() == HostPhase::idle) {
      syncIdleInventory();
      return;
    }
    for (const hv::DomainInfo& info : inventory) {
      if (find(info.uuid)) continue;
      if (inMaintenance()) {
        addPlanned(info);
        DomainRecord& added = state.domains.back();
        if (added.view.stage != DomainStage::done &&
            (phase() == HostPhase::empty || phase() == HostPhase::in_maintenance)) {
          state.phase = HostPhase::draining;
          admit(added);
        }
      }
    }
  }

  // ---- actions -------------------------------------------------------------

  unsigned actionsInFlight() const {
    return static_cast<unsigned>(
        std::count_if(state.domains.begin(), state.domains.end(), [](const DomainRecord& r) {
          return r.acting_kind &&
                 (r.view.stage == DomainStage::acting || r.view.stage == DomainStage::restoring);
        }));
  }

  unsigned migrationsInFlight() const {
    return static_cast<unsigned>(
        std::count_if(state.domains.begin(), state.domains.end(), [](const DomainRecord& r) {
          return r.acting_kind && r.view.stage == DomainStage::acting &&
                 isMigrationKind(*r.acting_kind);
        }));
  }

  // Members of `group` impacted now (Fenix's max_impacted_members): being
  // acted on, down for the rest of the maintenance (suspended or shut
  // down), or within recovery_time of having been moved.
  struct GroupImpact {
    unsigned impacted = 0;
    bool will_recover = false;  // some impact ends during the drain
  };
  GroupImpact groupImpact(const std::string& group, const std::string& except_uuid) const {
    GroupImpact impact;
    for (const DomainRecord& r : state.domains) {
      if (r.view.group != group || r.view.uuid == except_uuid) continue;
      if (r.view.stage == DomainStage::acting) {
        ++impact.impacted;
        impact.will_recover = true;
      } else if (r.view.stage == DomainStage::done && r.needs_restore) {
        ++impact.impacted;
      } else if (r.view.stage == DomainStage::done && r.finished_at &&
                 now() < *r.finished_at + r.policy.recovery_time) {
        ++impact.impacted;
        impact.will_recover = true;
      }
    }
    return impact;
  }

  // Probes every candidate whose report is missing or older than the
  // configured interval; reports arrive on the loop and pump the drain.
  void refreshDestinationProbes() {
    for (const std::string& uri : state.destinations) {
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

  // What the domain holds here, or held when its action started once it
  // has left (it then occupies its destination).
  std::uint64_t memoryBytesOf(const DomainRecord& record) const {
    std::optional<hv::DomainInfo> info = hypervisor.domain(record.view.uuid);
    return (info ? info->memory_kib : record.memory_kib) * 1024;
  }

  DestinationChoice chooseDestination(const DomainRecord& record) {
    refreshDestinationProbes();
    std::vector<DestinationCandidate> candidates;
    for (const std::string& uri : state.destinations) {
      DestinationCandidate candidate;
      candidate.config = settings.migration.destination(uri);
      candidate.reserved_bytes = settings.migration.reservedMemoryMibAt(candidate.config) << 20;
      candidate.max_parallel = settings.migration.maxParallelAt(candidate.config);
      const DestinationProbe& probe = destination_probes[uri];
      candidate.report = probe.report;
      for (const DomainRecord& other : state.domains) {
        if (other.view.destination != uri || &other == &record) continue;
        const bool on_the_way = other.view.stage == DomainStage::acting && other.acting_kind &&
                                isMigrationKind(*other.acting_kind);
        const bool arrived = other.view.stage == DomainStage::done && other.finished_at;
        if (on_the_way) ++candidate.migrations_in_flight;
        // Arrived after the probe, or still arriving: the probe did not see it.
        if (on_the_way || (arrived && *other.finished_at >= probe.probed_at)) {
          candidate.committed_bytes += memoryBytesOf(other);
        }
        if (!record.view.group.empty() && other.view.group == record.view.group &&
            (on_the_way || arrived)) {
          ++candidate.group_members;
        }
      }
      candidates.push_back(std::move(candidate));
    }
    return agent::chooseDestination(memoryBytesOf(record), candidates);
  }

  std::vector<std::string> byPriority(DomainStage stage) const {
    std::vector<const DomainRecord*> chosen;
    for (const DomainRecord& r : state.domains) {
      if (r.view.stage == stage) chosen.push_back(&r);
    }
    // Within a priority, the biggest first: the longest migrations start
    // early and the short ones fill in around them, so the whole drain ends
    // sooner (longest-processing-time-first scheduling).
    std::map<const DomainRecord*, std::uint64_t> memory;
    for (const DomainRecord* r : chosen) memory[r] = memoryBytesOf(*r);
    std::sort(chosen.begin(), chosen.end(), [&](const DomainRecord* a, const DomainRecord* b) {
      return std::tie(b->view.priority, memory[b], a->view.name) <
             std::tie(a->view.priority, memory[a], b->view.name);
    });
    std::vector<std::string> uuids;
    for (const DomainRecord* r : chosen) uuids.push_back(r->view.uuid);
    return uuids;
  }

  void startDrainActions() {
    group_stalled.clear();
    for (const std::string& uuid : byPriority(DomainStage::waiting)) {
      DomainRecord* record = find(uuid);
      if (!record || record->view.stage != DomainStage::waiting) continue;
      DomainStatus& view = record->view;
      if (!connected()) {
        view.detail = "waiting: libvirt is " + std::string(hv::toString(connection));
        continue;
      }
      if (journal_error && !persist()) {
        view.detail = "waiting: the journal cannot be written";
        continue;
      }
      if (view.action == MaintenanceAction::owner) {
        const TimePoint deadline = ownerDeadline(record->policy, planContext());
        // With ack_required the owner's deadline is the ack deadline, which
        // may be what let it start: no wakeup would come for it again.
        if (now() >= deadline) {
          blockOwnerMissedDeadline(*record, deadline);
          continue;
        }
        view.stage = DomainStage::acting;
        view.detail = "waiting for the owner to move or delete it before " + formatTime(deadline);
        if (!record->note.empty()) view.detail = record->note + "; " + view.detail;
        record->started_at = now();
        continue;
      }
      if (view.earliest_start && now() < *view.earliest_start) {
        view.detail =
            "waiting: not before " + formatTime(*view.earliest_start) +
            (state.window && *view.earliest_start > state.window->start ? " (lead time)"
                                                                        : " (window start)");
        continue;
      }
      const unsigned in_flight = actionsInFlight();
      if (in_flight >= settings.limits.max_parallel_actions) {
        view.detail = "waiting: " + std::to_string(in_flight) + " of max " +
                      std::to_string(settings.limits.max_parallel_actions) + " actions running";
        continue;
      }
      const bool migration = view.action && isMigration(*view.action);
      if (migration) {
        const unsigned migrating = migrationsInFlight();
        if (migrating >= settings.limits.max_parallel_migrations) {
          view.detail = "waiting: " + std::to_string(migrating) + " of max " +
                        std::to_string(settings.limits.max_parallel_migrations) +
                        " migrations running";
          continue;
        }
      }
      std::optional<DestinationConfig> destination;
      if (view.action == MaintenanceAction::live_migrate ||
          view.action == MaintenanceAction::cold_migrate) {
        DestinationChoice choice = chooseDestination(*record);
        if (choice.outcome == DestinationChoice::Outcome::wait) {
          view.detail = "waiting for a destination: " + choice.reason;
          continue;
        }
        if (choice.outcome == DestinationChoice::Outcome::none_fits) {
          failDrain(*record, "no destination can take it: " + choice.reason);
          pump_again = true;
          continue;
        }
        destination = std::move(choice.destination);
      }
      if (!view.group.empty()) {
        GroupImpact impact = groupImpact(view.group, view.uuid);
        if (impact.impacted >= record->policy.max_impacted_members) {
          view.detail = "waiting: group " + inQuotes(view.group) + " has " +
                        std::to_string(impact.impacted) + " of max " +
                        std::to_string(record->policy.max_impacted_members) + " members impacted";
          if (!impact.will_recover) {
            view.detail += " (they stay down until the maintenance ends)";
            group_stalled[view.uuid] = true;
          }
          continue;
        }
      }
      startDrainAction(*record, destination);
    }
  }

  void startDrainAction(DomainRecord& record, const std::optional<DestinationConfig>& destination) {
    DomainStatus& view = record.view;
    const hv::ActionKind kind = *actionKindFor(*view.action);
    hv::ActionRequest request;
    request.kind = kind;
    request.uuid = view.uuid;
    request.name = view.name;
    request.shutdown_timeout = record.policy.shutdown_timeout;
    request.force_after_timeout = record.policy.force_stop;
    switch (kind) {
      case hv::ActionKind::live_migrate:
      case hv::ActionKind::cold_migrate:
        request.destination_uri = destination ? destination->uri : std::string();
        request.migrate_uri = destination ? destination->migrate_uri : std::string();
        request.tuning = migrationTuningFor(record.policy, memoryBytesOf(record) / 1024);
        view.destination = request.destination_uri;
        view.detail = "migrating to " + request.destination_uri;
        break;
      case hv::ActionKind::managed_save: view.detail = "suspending to disk (managed-save)"; break;
      case hv::ActionKind::shutdown:
        view.detail = "shutting down (up to " + formatDuration(record.policy.shutdown_timeout) +
                      (record.policy.force_stop ? ", then forced)" : ")");
        break;
      case hv::ActionKind::start:
      case hv::ActionKind::adopt_migration: break;
    }
    view.stage = DomainStage::acting;
    record.acting_kind = kind;
    record.memory_kib = memoryBytesOf(record) / 1024;
    record.started_at = now();
    record.finished_at.reset();
    // Write-ahead: a restarted daemon must know this action may have run.
    if (!persist()) {
      view.stage = DomainStage::waiting;
      view.detail = "waiting: the journal cannot be written";
      view.destination.reset();
      record.acting_kind.reset();
      return;
    }
    launch(record, request);
  }

  void launch(DomainRecord& record, const hv::ActionRequest& request) {
    const std::uint64_t token = ++next_token;
    record.action_token = token;
    record.completion_pending = true;
    record.launched_at_refresh = inventory_refreshes;
    std::weak_ptr<int> weak = alive;
    const std::string uuid = record.view.uuid;
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

  void onActionProgress(const std::string& uuid, std::uint64_t token,
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
    if (progress.data_total_bytes > 0) {
      shown.percent = 100.0 * static_cast<double>(progress.data_processed_bytes) /
                      static_cast<double>(progress.data_total_bytes);
    }
    record->view.progress = shown;
  }

  void onActionDone(const std::string& uuid, std::uint64_t token, const hv::ActionResult& result) {
    Entry entry(*this);
    DomainRecord* record = find(uuid);
    if (!record || record->action_token != token || !record->completion_pending) return;
    record->completion_pending = false;
    record->view.progress.reset();
    const bool adopted = adopting.erase(uuid) > 0;
    const hv::ActionKind kind = *record->acting_kind;
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
          outcome = "migrated to " + record->view.destination.value_or("?") +
                    escalationsNote(result.escalations);
          break;
      }
      completeDrain(*record, outcome, needs_restore);
    } else if (result.failure == hv::FailureKind::connection_lost && isMigrationKind(kind)) {
      // Not a failure of the migration: whether it moved is unknown until
      // libvirt is back. The inventory then shows it gone (done), migrating
      // (adopted) or still here (tried again). It stays `acting` meanwhile,
      // so it is counted in every limit and never started twice.
      record->view.detail = "libvirt connection lost during the " + std::string(hv::toString(kind)) +
                            " (" + result.message + "); its outcome is read when libvirt is back";
      record->held_for_reconnect = true;
      // Already reconnected (the refresh came before this result): no
      // further refresh would come to settle it.
      if (connected() && inventory_refreshes > record->launched_at_refresh) {
        reconcileInterrupted(*record, hypervisor.domain(uuid));
      }
    } else if (adopted) {
      redoInterrupted(*record, "the " + std::string(hv::toString(kind)) +
                                   " found after a restart ended with the domain still here (" +
                                   result.message + ")");
    } else {
      failDrain(*record, result.message + escalationsNote(result.escalations));
    }
    pump();
  }

  static std::string escalationsNote(const std::vector<std::string>& escalations) {
    if (escalations.empty()) return {};
    std::string note = " (escalated: ";
    for (std::size_t i = 0; i < escalations.size(); ++i) {
      if (i > 0) note += ", ";
      note += escalations[i];
    }
    return note + ")";
  }

  // A moving average, so one slow or fast migration does not swing the
  // estimates owners are given.
  void learnThroughput(const hv::ActionResult& result) {
    if (!result.final_progress || result.final_progress->memory_bps == 0) return;
    const std::uint64_t measured = result.final_progress->memory_bps;
    std::uint64_t& learned = state.migration_throughput_bps;
    learned = learned == 0 ? measured : (learned + measured) / 2;
  }

  void completeDrain(DomainRecord& record, std::string outcome, bool needs_restore) {
    DomainStatus& view = record.view;
    record.acting_kind.reset();
    record.completion_pending = false;
    record.needs_restore = needs_restore;
    record.finished_at = now();
    view.progress.reset();
    view.result = std::move(outcome);
    // Keep the fallback's reason (or the policy override) next to the outcome:
    // visible, not buried.
    view.detail =
        (view.fallback_used || !view.policy_error.empty()) ? record.note : std::string();
    if (phase() == HostPhase::restoring && needs_restore) {
      view.stage = DomainStage::restoring;
      view.detail = "waiting to be restored";
      return;
    }
    view.stage = DomainStage::done;
  }

  void failDrain(DomainRecord& record, const std::string& message) {
    DomainStatus& view = record.view;
    const std::string failed = actionName(view.action) + " failed: " + message;
    record.acting_kind.reset();
    record.finished_at = now();
    view.destination.reset();
    if (phase() != HostPhase::restoring && record.fallback) {
      if (auto why = whyImpossible(*record.fallback, planContext().ability)) {
        view.stage = DomainStage::failed;
        view.result = actionName(view.action) + " failed";
        view.detail =
            failed + "; fallback " + actionName(record.fallback) + " not possible: " + *why;
        return;
      }
      record.note = failed + "; fell back to " + actionName(record.fallback);
      view.action = record.fallback;
      record.fallback.reset();
      view.fallback_used = true;
      view.result = record.note;
      view.stage = DomainStage::waiting;
      view.detail = record.note;
      return;
    }
    if (phase() == HostPhase::restoring) {
      view.stage = DomainStage::restored;
      view.result = "not touched: maintenance cancelled while its action failed";
      view.detail = failed;
      return;
    }
    view.stage = DomainStage::failed;
    view.result = actionName(view.action) + " failed";
    view.detail = failed;
  }

  // ---- restore -------------------------------------------------------------

  void startRestoreActions() {
    for (const std::string& uuid : byPriority(DomainStage::restoring)) {
      DomainRecord* record = find(uuid);
      if (!record || record->view.stage != DomainStage::restoring || record->acting_kind) continue;
      if (!connected()) {
        record->view.detail =
            "waiting to be restored: libvirt is " + std::string(hv::toString(connection));
        continue;
      }
      std::optional<hv::DomainInfo> info = hypervisor.domain(uuid);
      if (!info) {
        finishRestore(*record, false, "no longer defined on this host");
        continue;
      }
      if (hv::occupiesHost(info->state)) {
        finishRestore(*record, true, "already running");
        continue;
      }
      if (actionsInFlight() >= settings.limits.max_parallel_actions) {
        record->view.detail = "waiting to be restored: " + std::to_string(actionsInFlight()) +
                              " of max " + std::to_string(settings.limits.max_parallel_actions) +
                              " actions running";
        continue;
      }
      record->acting_kind = hv::ActionKind::start;
      record->started_at = now();
      record->view.detail =
          info->has_managed_save ? "restoring from its managed-save image" : "starting";
      if (!persist()) {
        record->acting_kind.reset();
        record->view.detail = "waiting to be restored: the journal cannot be written";
        continue;
      }
      hv::ActionRequest request;
      request.kind = hv::ActionKind::start;
      request.uuid = uuid;
      request.name = record->view.name;
      launch(*record, request);
    }
  }

  void finishRestore(DomainRecord& record, bool ok, const std::string& message) {
    DomainStatus& view = record.view;
    const bool was_suspended = view.action == MaintenanceAction::suspend;
    record.acting_kind.reset();
    record.completion_pending = false;
    record.finished_at = now();
    if (ok) {
      record.needs_restore = false;
      view.stage = DomainStage::restored;
      view.result =
          message.empty() ? (was_suspended ? "restored from managed-save" : "started") : message;
      view.detail.clear();
    } else {
      view.stage = DomainStage::restore_failed;
      view.result = "restore failed";
      view.detail = message;
    }
  }

  void endRestoringWhenSettled() {
    if (phase() != HostPhase::restoring) return;
    const bool busy =
        std::any_of(state.domains.begin(), state.domains.end(), [](const DomainRecord& r) {
          return r.view.stage == DomainStage::restoring ||
                 (r.view.stage == DomainStage::acting && r.acting_kind);
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

  // ---- time and emptiness ----------------------------------------------------

  void applyDeadlines() {
    const TimePoint t = now();
    for (DomainRecord& record : state.domains) {
      DomainStatus& view = record.view;
      if (view.stage == DomainStage::awaiting_ack && view.ack_deadline && t >= *view.ack_deadline) {
        admit(record);
      } else if (view.stage == DomainStage::acting && !record.acting_kind &&
                 view.action == MaintenanceAction::owner && inMaintenance()) {
        const TimePoint deadline = ownerDeadline(record.policy, planContext());
        if (t >= deadline) blockOwnerMissedDeadline(record, deadline);
      }
    }
    if (phase() == HostPhase::scheduled && state.window && t >= state.window->start) {
      state.phase = HostPhase::draining;
      for (DomainRecord& record : state.domains) {
        if (record.view.stage == DomainStage::planned) admit(record);
      }
    }
  }

  void blockOwnerMissedDeadline(DomainRecord& record, TimePoint deadline) {
    record.view.stage = DomainStage::blocked;
    record.view.detail = "the owner did not move or delete it by " + formatTime(deadline);
  }

  void evaluateEmptiness() {
    const HostPhase p = phase();
    if (p != HostPhase::draining && p != HostPhase::empty && p != HostPhase::in_maintenance) {
      evidence.reset();
      qemu_grace_until.reset();
      reprobe_at.reset();
      return;
    }
    if (!connected()) return;  // keep the last evidence; the libvirt blocker says why
    hv::EmptinessQuery query;
    query.removal = state.window && state.window->removal;
    for (const DomainRecord& record : state.domains) {
      // A domain that migrated away (or left by other hands) runs elsewhere:
      // on a kernel shared with its destination (the lab) its QEMU process
      // is the destination's.
      const bool migrated_away = record.view.stage == DomainStage::done && record.view.action &&
                                 isMigration(*record.view.action);
      if (!migrated_away && record.view.stage != DomainStage::left) {
        query.known_uuids.push_back(record.view.uuid);
      }
    }
    hv::EmptinessReport report = hypervisor.probeEmptiness(query);
    evidence = report.checks;
    const bool all_settled =
        std::all_of(state.domains.begin(), state.domains.end(),
                    [](const DomainRecord& r) { return isSettled(r.view.stage); });
    reprobe_at.reset();
    if (all_settled && report.empty()) {
      qemu_grace_until.reset();
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

  void pump() {
    if (pumping) {
      pump_again = true;
      return;
    }
    pumping = true;
    do {
      pump_again = false;
      applyDeadlines();
      if (phase() == HostPhase::draining) startDrainActions();
      if (phase() == HostPhase::restoring) {
        startRestoreActions();
        endRestoringWhenSettled();
      }
      evaluateEmptiness();
    } while (pump_again);
    pumping = false;
  }

  std::optional<TimePoint> nextWakeup() const {
    const TimePoint t = now();
    std::optional<TimePoint> best;
    auto consider = [&](std::optional<TimePoint> when) {
      if (when && *when > t && (!best || *when < *best)) best = when;
    };
    if (phase() == HostPhase::scheduled && state.window) consider(state.window->start);
    for (const DomainRecord& record : state.domains) {
      const DomainStatus& view = record.view;
      switch (view.stage) {
        case DomainStage::awaiting_ack: consider(view.ack_deadline); break;
        case DomainStage::planned:
          if (phase() == HostPhase::scheduled) consider(view.ack_deadline);
          break;
        case DomainStage::waiting: consider(view.earliest_start); break;
        case DomainStage::acting:
          if (!record.acting_kind && view.action == MaintenanceAction::owner && inMaintenance()) {
            consider(ownerDeadline(record.policy, planContext()));
          }
          break;
        case DomainStage::done:
          if (phase() == HostPhase::draining && !view.group.empty() && record.finished_at &&
              !record.needs_restore) {
            consider(*record.finished_at + record.policy.recovery_time);
          }
          break;
        default: break;
      }
    }
    consider(reprobe_at);
    return best;
  }
};

MaintenanceEngine::MaintenanceEngine(hv::Hypervisor& hypervisor, const WallClock& clock,
                                     Journal& journal, EngineSettings settings,
                                     EngineListener& listener)
    : impl_(std::make_unique<Impl>(hypervisor, clock, journal, std::move(settings), listener)) {
  impl_->status = impl_->buildStatus();
}

MaintenanceEngine::~MaintenanceEngine() = default;

void MaintenanceEngine::recover() {
  Impl& e = *impl_;
  Impl::Entry entry(e);
  std::optional<std::string> document = e.journal.load();
  if (document) {
    try {
      e.state = decodeEngineState(*document);
    } catch (const std::runtime_error& error) {
      throw JournalError(std::string("cannot continue from the saved maintenance state: ") +
                         error.what());
    }
    e.last_saved = *document;
  }
  e.recovered = true;
  for (DomainRecord& record : e.state.domains) record.completion_pending = false;
  if (e.connected()) {
    e.reconcileAll();
  } else {
    e.reconcile_pending = true;
  }
  e.pump();
}

namespace {

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
  const std::uint64_t learned_throughput = e.state.migration_throughput_bps;
  e.state = EngineState{};
  e.state.migration_throughput_bps = learned_throughput;
  e.state.phase = HostPhase::scheduled;
  e.state.session_id = request.session_id && !request.session_id->empty() ? *request.session_id
                                                                          : generateSessionId();
  e.state.window = window;
  if (request.destinations.empty()) {
    e.state.destinations.clear();
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
  e.persist();
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
  if (e.phase() == HostPhase::draining &&
      (window.start != current.start || window.removal != current.removal)) {
    throw CommandError(
        "cannot move the start or change removal of a maintenance that is draining; only its "
        "end and reason can change (cancel and schedule again instead)");
  }
  Impl::Entry entry(e);
  e.state.window = window;
  if (e.phase() == HostPhase::scheduled) {
    for (DomainRecord& record : e.state.domains) {
      if (auto info = e.hypervisor.domain(record.view.uuid)) e.planRecord(record, *info);
    }
  }
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
  e.state.phase = HostPhase::restoring;
  for (DomainRecord& record : e.state.domains) {
    DomainStatus& view = record.view;
    switch (view.stage) {
      case DomainStage::acting:
        if (record.acting_kind) {
          view.detail += "; maintenance cancelled: restored when this action ends";
          break;
        }
        [[fallthrough]];  // owner action: nothing was done by hostmaint
      case DomainStage::planned:
      case DomainStage::awaiting_ack:
      case DomainStage::waiting:
      case DomainStage::blocked:
        view.stage = DomainStage::restored;
        view.result = "not touched: maintenance cancelled";
        view.detail.clear();
        break;
      case DomainStage::done:
        if (record.needs_restore) {
          view.stage = DomainStage::restoring;
          view.detail = "waiting to be restored";
        }
        break;
      default: break;
    }
  }
  e.persist();
  e.pump();
}

void MaintenanceEngine::acknowledge(const std::string& domain, AckChoice choice) {
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
  const std::string name = record->view.name;
  switch (record->view.stage) {
    case DomainStage::acting:
    case DomainStage::done:
    case DomainStage::left:
    case DomainStage::failed:
      throw CommandError("cannot acknowledge " + inQuotes(name) + ": it is already " +
                         std::string(toString(record->view.stage)));
    default: break;
  }
  if (choice == AckChoice::keep) {
    // A domain with a malformed policy is judged by the host's defaults, as
    // planRecord will act on them after this ack.
    const DomainPolicy& policy =
        record->view.policy_error.empty() ? record->policy : e.settings.default_policy;
    KeepDecision keep = keepDecision(name, policy, e.state.window && e.state.window->removal);
    if (!keep.action) throw CommandError(keep.refusal);
  }
  std::optional<hv::DomainInfo> info = e.hypervisor.domain(record->view.uuid);
  Impl::Entry entry(e);
  record->view.ack = choice;
  record->ack_time = e.now();
  if (info) {
    e.planRecord(*record, *info);
  } else {
    e.markLeft(*record, "gone from the host (not by hostmaint)");
  }
  e.persist();
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
  e.state.phase = HostPhase::in_maintenance;
  e.persist();
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
  e.state.phase = HostPhase::restoring;
  for (DomainRecord& record : e.state.domains) {
    if (record.view.stage == DomainStage::done && record.needs_restore) {
      record.view.stage = DomainStage::restoring;
      record.view.detail = "waiting to be restored";
    }
  }
  e.persist();
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
    DomainRecord& added = e.state.domains.back();
    if (added.view.stage != DomainStage::done &&
        (e.phase() == HostPhase::empty || e.phase() == HostPhase::in_maintenance)) {
      e.state.phase = HostPhase::draining;
      e.admit(added);
    }
  }
  e.pump();
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
