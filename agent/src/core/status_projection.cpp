#include "status_projection.hpp"

#include <algorithm>
#include <unordered_map>

#include "admission.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "overloaded.hpp"

namespace hostmaint::agent {

std::string actionName(const std::optional<MaintenanceAction>& action) {
  return action ? std::string(toString(*action)) : std::string("none");
}

std::string inQuotes(std::string_view text) { return "'" + std::string(text) + "'"; }

namespace {

// The condition after "waiting: " or "waiting to be restored: ".
std::optional<std::string> waitCondition(const WaitReason& reason) {
  return std::visit(
      Overloaded{
          [](const wait::ToStart&) -> std::optional<std::string> { return std::nullopt; },
          [](const wait::LibvirtDown& r) -> std::optional<std::string> {
            return "libvirt is " + std::string(hv::toString(r.connection));
          },
          [](const wait::JournalUnwritable&) -> std::optional<std::string> {
            return "the journal cannot be written";
          },
          [](const wait::NotBefore& r) -> std::optional<std::string> {
            return "not before " + formatTime(r.time) +
                   (r.lead_time ? " (lead time)" : " (window start)");
          },
          [](const wait::ActionSlots& r) -> std::optional<std::string> {
            return std::to_string(r.running) + " of max " + std::to_string(r.max) +
                   " actions running";
          },
          [](const wait::MigrationSlots& r) -> std::optional<std::string> {
            return std::to_string(r.running) + " of max " + std::to_string(r.max) +
                   " migrations running";
          },
          [](const wait::Destination& r) -> std::optional<std::string> { return r.reason; },
          [](const wait::GroupLimit& r) -> std::optional<std::string> {
            if (!r.across_fleet.empty()) return r.across_fleet;
            return "group " + inQuotes(r.group) + " has " + std::to_string(r.impacted) +
                   " of max " + std::to_string(r.max) + " members impacted" +
                   (r.stalled ? " (they stay down until the maintenance ends)" : "");
          },
          [](const wait::Retry& r) -> std::optional<std::string> { return r.why; },
          [](const wait::Pacing& r) -> std::optional<std::string> { return r.why; },
      },
      reason);
}

std::string describeActing(const DomainRecord& record, const stage::Acting& acting) {
  const std::string kind = acting.kind ? std::string(hv::toString(*acting.kind)) : "";
  std::string text = std::visit(
      Overloaded{
          [&](const running::Launched&) -> std::string {
            switch (acting.kind.value_or(hv::ActionKind::start)) {
              case hv::ActionKind::live_migrate:
              case hv::ActionKind::cold_migrate:
                return "migrating to " + record.destination.value_or("");
              case hv::ActionKind::managed_save: return "suspending to disk (managed-save)";
              case hv::ActionKind::shutdown:
                return "shutting down (up to " + formatDuration(record.policy.shutdown_timeout) +
                       (record.policy.force_stop ? ", then forced)" : ")");
              case hv::ActionKind::start:
              case hv::ActionKind::adopt_migration: return kind;
            }
            return kind;
          },
          [&](const running::OwnerActs& owner) -> std::string {
            const std::string ask =
                "waiting for the owner to move or delete it before " + formatTime(owner.deadline);
            return record.note.empty() ? ask : record.note + "; " + ask;
          },
          [&](const running::FoundRunning& found) -> std::string {
            return kind + " in progress (found " + found.when + "); waiting for it to finish";
          },
          [&](const running::Adopted&) -> std::string {
            return kind + " found in progress; waiting for it to finish";
          },
          [&](const running::OutcomeUnknown& lost) -> std::string {
            return "libvirt connection lost during the " + kind + " (" + lost.message +
                   "); its outcome is read when libvirt is back";
          },
      },
      acting.how);
  if (acting.cancelled) text += "; maintenance cancelled: restored when this action ends";
  return text;
}

}  // namespace

std::string describeWait(const WaitReason& reason) {
  if (const auto* retry = std::get_if<wait::Retry>(&reason)) return retry->why;
  if (const auto* destination = std::get_if<wait::Destination>(&reason)) {
    return "waiting for a destination: " + destination->reason;
  }
  std::optional<std::string> condition = waitCondition(reason);
  return condition ? "waiting: " + *condition : "waiting to start";
}

std::string describeRestoreWait(const WaitReason& reason) {
  std::optional<std::string> condition = waitCondition(reason);
  return condition ? "waiting to be restored: " + *condition : "waiting to be restored";
}

DomainText describeDomain(const DomainRecord& record) {
  return std::visit(
      Overloaded{
          [&](const stage::Planned& planned) -> DomainText {
            if (!planned.not_before) return {record.note, "no maintenance scheduled"};
            std::string detail =
                actionName(record.action) + " not before " + formatTime(*planned.not_before);
            if (!record.note.empty()) detail += "; " + record.note;
            return {record.note, detail};
          },
          [&](const stage::AwaitingAck& awaiting) -> DomainText {
            return {record.note, "awaiting the owner's acknowledgement (move or keep) until " +
                                     formatTime(awaiting.deadline)};
          },
          [&](const stage::Waiting& waiting) -> DomainText {
            return {record.note, describeWait(waiting.reason)};
          },
          [&](const stage::Acting& acting) -> DomainText {
            return {record.note, describeActing(record, acting)};
          },
          [&](const stage::Done& done) -> DomainText {
            // Keep the fallback's reason (or the policy override) next to
            // the outcome: visible, not buried.
            const bool explain = record.fallback_used || !record.policy_error.empty();
            return {done.outcome, explain ? record.note : std::string()};
          },
          [&](const stage::Failed& failed) -> DomainText {
            return {actionName(record.action) + " failed", failed.message};
          },
          [&](const stage::Blocked& blocked) -> DomainText { return {record.note, blocked.reason}; },
          [&](const stage::Left& left) -> DomainText { return {left.how, ""}; },
          [&](const stage::Restoring& restoring) -> DomainText {
            if (!restoring.started) return {restoring.outcome, describeRestoreWait(restoring.waiting)};
            return {restoring.outcome, restoring.from_managed_save
                                           ? "restoring from its managed-save image"
                                           : "starting"};
          },
          [&](const stage::Restored& restored) -> DomainText {
            return {restored.outcome, restored.detail};
          },
          [&](const stage::RestoreFailed& failed) -> DomainText {
            return {"restore failed", failed.message};
          },
      },
      record.state);
}

namespace {

// The words a blocker carries for this domain, when its stage blocks
// readiness or needs someone.
std::optional<std::string> blockingReason(const DomainRecord& record, const DomainText& text) {
  switch (record.stage()) {
    case DomainStage::blocked:
    case DomainStage::failed:
    case DomainStage::awaiting_ack: return text.detail;
    case DomainStage::waiting: {
      const auto& waiting = std::get<stage::Waiting>(record.state);
      const auto* group = std::get_if<wait::GroupLimit>(&waiting.reason);
      if (group && group->stalled) return text.detail;
      return std::nullopt;
    }
    case DomainStage::restore_failed: return "restore failed: " + text.detail;
    default: return std::nullopt;
  }
}

bool inMaintenance(HostPhase phase) {
  return phase == HostPhase::scheduled || phase == HostPhase::draining ||
         phase == HostPhase::empty || phase == HostPhase::in_maintenance;
}

bool isSettled(const DomainRecord& record) {
  return holds<stage::Done>(record.state) || holds<stage::Left>(record.state);
}

// Whether the window ended before this domain's drain was done: it is still
// to be handled, or was handled only after the end. Stays true once true (a
// late finish does not revise the owner's notice a second time).
bool overrunFor(const DomainRecord& record, TimePoint window_end) {
  if (!isSettled(record)) return true;
  return record.finished_at && *record.finished_at >= window_end;
}

// The blocker of an overrun: when the window ended and what is left.
std::string overrunReason(const EngineState& state) {
  constexpr std::size_t kNamesShown = 10;
  std::vector<std::string> left;
  for (const DomainRecord& record : state.domains) {
    if (!isSettled(record)) left.push_back(record.name);
  }
  std::string text = "the window ended at " + formatTime(state.window->end) + "; ";
  if (left.empty()) return text + "every domain is handled but the host is not yet evidenced empty";
  text += "still draining: " + std::to_string(left.size()) +
          (left.size() == 1 ? " domain (" : " domains (");
  for (std::size_t i = 0; i < left.size() && i < kNamesShown; ++i) {
    text += (i ? ", " : "") + left[i];
  }
  if (left.size() > kNamesShown) text += ", and " + std::to_string(left.size() - kNamesShown) + " more";
  return text + ")";
}

}  // namespace

std::optional<TimePoint> actionDeadline(const DomainRecord& record,
                                        std::chrono::seconds save_timeout,
                                        std::chrono::seconds restore_timeout) {
  const auto kind = record.runningKind();
  if (!kind || !record.started_at) return std::nullopt;
  if (*kind == hv::ActionKind::managed_save && save_timeout.count() > 0)
    return *record.started_at + save_timeout;
  if (*kind == hv::ActionKind::start && restore_timeout.count() > 0)
    return *record.started_at + restore_timeout;
  return std::nullopt;
}

HostStatus projectStatus(const StatusInputs& in) {
  HostStatus out;
  projectStatusInto(in, out);
  return out;
}

// The domains' entries are updated in `current` itself, each one only when
// it differs: with many domains, an event must not copy and compare them
// all. Everything else is projected anew (it is small) and compared.
bool projectStatusInto(const StatusInputs& in, HostStatus& current) {
  const EngineState& state = in.state;
  HostStatus out;
  bool domains_changed = current.domains.size() != state.domains.size();
  current.domains.resize(state.domains.size());
  out.host = in.host_name;
  out.phase = state.phase;
  out.session_id = state.session_id;
  out.window = state.window;
  out.hypervisor_connection = in.connection;
  out.hypervisor = in.hypervisor_description;
  out.hypervisor_detail = in.connection_detail;
  out.migration_throughput_bps = state.migration_throughput_bps;
  out.cordon = in.cordon;
  out.host_shutdown = state.host_shutdown;
  out.leftovers = state.leftovers;
  if (in.pacing) out.scheduler = in.pacing->scheduler;
  const bool connected = in.connection == hv::ConnectionState::connected;
  if (in.evidence) out.evidence = *in.evidence;
  const bool evidenced_empty =
      in.evidence && std::all_of(in.evidence->begin(), in.evidence->end(),
                                 [](const hv::EvidenceCheck& c) { return c.ok; });
  out.ready = (state.phase == HostPhase::empty || state.phase == HostPhase::in_maintenance) &&
              evidenced_empty && connected && state.leftovers.empty();

  std::unordered_map<std::string_view, const hv::DomainInfo*> inventory;
  if (!in.hypervisor) {
    for (const hv::DomainInfo& info : in.inventory) inventory.emplace(info.uuid, &info);
  }
  auto lookup = [&](const std::string& uuid) -> const hv::DomainInfo* {
    if (in.hypervisor) return in.hypervisor->findDomain(uuid);
    const auto found = inventory.find(uuid);
    return found == inventory.end() ? nullptr : found->second;
  };

  if (!connected) {
    out.blockers.push_back(
        {"libvirt", std::string(hv::toString(in.connection)) +
                        (in.connection_detail.empty() ? "" : ": " + in.connection_detail)});
  }
  if (in.journal_error) {
    out.blockers.push_back({"journal", "cannot save the engine state: " + *in.journal_error});
  }
  // Scheduled past the end cannot last (the start comes first and begins
  // the drain), but is an overrun just the same if it were seen.
  const bool window_ended = state.window && in.now >= state.window->end;
  if (window_ended &&
      (state.phase == HostPhase::draining || state.phase == HostPhase::scheduled)) {
    out.overrun = true;
    out.overrun_since = state.window->end;
    out.blockers.push_back({"window", overrunReason(state)});
  }
  // Entries of domains no longer in the state go now and then.
  if (in.cache && in.cache->texts.size() > 2 * state.domains.size() + 16) {
    in.cache->texts.clear();
    in.cache->notices.clear();
    in.cache->views.clear();
    in.cache->views_by_index.clear();
  }
  if (in.cache) {
    ProjectionCache::Context context{state.phase,       state.window,
                                     state.session_id,  state.scheduled_at,
                                     state.migration_throughput_bps, window_ended,
                                     state.host_shutdown, in.host_name,
                                     in.default_policy, in.notice_settings};
    if (in.cache->context != context) {
      in.cache->views.clear();
      in.cache->views_by_index.clear();
      in.cache->context = std::move(context);
    }
  }
  auto describe = [&](const DomainRecord& record) -> DomainText {
    if (!in.cache) return describeDomain(record);
    auto& entry = in.cache->texts[record.uuid];
    if (!(entry.record == record) || entry.record.uuid.empty()) {
      entry.text = describeDomain(record);
      entry.record = record;
    }
    return entry.text;
  };
  auto notify = [&](const NoticeInput& notice) -> std::optional<DomainNotice> {
    if (!in.cache) return computeNotice(notice, in.notice_settings);
    auto& entry = in.cache->notices[notice.domain.uuid];
    const bool same = entry.view == notice.domain && entry.policy == notice.policy &&
                      entry.window == notice.window && entry.session_id == notice.session_id &&
                      entry.noticed_at == notice.noticed_at &&
                      entry.measured_throughput_bps == notice.measured_throughput_bps &&
                      entry.overrun == notice.overrun && entry.settings == in.notice_settings &&
                      !entry.view.uuid.empty();
    if (!same) {
      entry = {notice.domain,         notice.policy,   notice.window,
               notice.session_id,     notice.noticed_at, notice.measured_throughput_bps,
               notice.overrun,        in.notice_settings,
               computeNotice(notice, in.notice_settings)};
    }
    return entry.notice;
  };
  // The entry of one domain and the blocker its stage makes, if any.
  auto project = [&](const DomainRecord& record, const hv::DomainInfo* info,
                     std::optional<std::string>& blocking) -> DomainStatus {
    const DomainText text = describe(record);
    DomainStatus view;
    view.uuid = record.uuid;
    view.name = record.name;
    view.stage = record.stage();
    view.action = record.action;
    view.fallback_used = record.fallback_used;
    view.result = text.result;
    view.detail = text.detail;
    view.group = record.policy.group;
    view.group_impacted = !record.policy.group.empty() && impactsGroup(record, in.now);
    view.group_max_impacted =
        record.policy.group.empty() ? 0 : record.policy.max_impacted_members;
    view.priority = record.policy.priority;
    view.ack_required = record.policy.ack_required;
    view.ack = record.ack;
    view.ack_reason = record.ack_reason;
    view.ack_deadline = record.ack_deadline;
    view.earliest_start = record.earliest_start;
    view.destination = record.destination;
    view.progress = record.progress;
    view.action_started_at = record.started_at;
    view.action_finished_at = record.finished_at;
    view.policy_error = record.policy_error;
    if (info) view.persistent = info->persistent;
    if (info) {
      view.run_state = info->state;
      view.memory_kib = info->memory_kib;
      view.owner = info->owner;
      view.project = info->project;
    }
    if (inMaintenance(state.phase) && state.window) {
      // A malformed policy is acted on with the host's defaults once acked,
      // so that is what keep and the deadline mean for it.
      const DomainPolicy& policy =
          record.policy_error.empty() ? record.policy : in.default_policy;
      const NoticeInput notice{view,
                               policy,
                               *state.window,
                               state.session_id.value_or(""),
                               state.scheduled_at.value_or(in.now),
                               state.migration_throughput_bps,
                               window_ended && overrunFor(record, state.window->end)};
      view.notice = notify(notice);
    } else if (state.phase == HostPhase::idle && state.host_shutdown) {
      for (const HostShutdownDomain& entry : state.host_shutdown->domains) {
        if (entry.uuid == record.uuid)
          view.notice = hostShutdownNotice(*state.host_shutdown, entry, in.host_name);
      }
    }
    blocking = blockingReason(record, text);
    return view;
  };
  // Sets current.domains[i] to `entry` unless it is that already.
  auto place = [&](std::size_t i, const DomainStatus& entry) {
    if (current.domains[i] == entry) return;
    current.domains[i] = entry;
    domains_changed = true;
  };
  // The scheduler's view of a domain, when it has one (live migrations of
  // this maintenance: few), is laid over its entry.
  auto pacingOf = [&](const std::string& uuid) -> const DomainPacing* {
    if (!in.pacing) return nullptr;
    const auto found = in.pacing->domains.find(uuid);
    return found == in.pacing->domains.end() ? nullptr : &found->second;
  };
  auto withPacing = [](DomainStatus entry, const DomainPacing& pacing) {
    entry.timeline = pacing.timeline;
    entry.predicted_duration_s = pacing.predicted_duration_s;
    entry.dirty_rate_bps = pacing.dirty_rate_bps;
    return entry;
  };
  auto hasPacing = [](const DomainStatus& entry) {
    return entry.timeline || entry.predicted_duration_s || entry.dirty_rate_bps;
  };
  for (std::size_t i = 0; i < state.domains.size(); ++i) {
    const DomainRecord& record = state.domains[i];
    const hv::DomainInfo* info = lookup(record.uuid);
    const DomainPacing* pacing = pacingOf(record.uuid);
    std::optional<std::string> blocking;
    if (!in.cache) {
      DomainStatus entry = project(record, info, blocking);
      place(i, pacing ? withPacing(std::move(entry), *pacing) : entry);
    } else {
      std::vector<ProjectionCache::View*>& by_index = in.cache->views_by_index;
      if (by_index.size() != state.domains.size()) by_index.resize(state.domains.size(), nullptr);
      if (!by_index[i] || by_index[i]->record.uuid != record.uuid)
        by_index[i] = &in.cache->views[record.uuid];
      ProjectionCache::View& cached = *by_index[i];
      // A notice dated now (no scheduled_at) changes with the clock.
      const bool timeless = state.scheduled_at || !inMaintenance(state.phase);
      const bool same =
          timeless && !cached.record.uuid.empty() && cached.in_inventory == (info != nullptr) &&
          (!info || (cached.run_state == info->state && cached.memory_kib == info->memory_kib &&
                     cached.owner == info->owner && cached.project == info->project)) &&
          cached.record == record;
      if (!same) {
        cached.status = project(record, info, cached.blocking);
        cached.record = record;
        cached.in_inventory = info != nullptr;
        cached.run_state = info ? info->state : hv::DomainRunState::unknown;
        cached.memory_kib = info ? info->memory_kib : 0;
        cached.owner = info ? info->owner : std::nullopt;
        cached.project = info ? info->project : std::nullopt;
      }
      // An entry unchanged since the last projection into `current` is
      // there already, at this place unless the order of domains changed.
      if (pacing) {
        place(i, withPacing(cached.status, *pacing));
      } else if (!same || current.domains[i].uuid != record.uuid || hasPacing(current.domains[i])) {
        place(i, cached.status);
      }
      blocking = cached.blocking;
    }
    const DomainStatus& view = current.domains[i];
    if (blocking) {
      out.blockers.push_back({"domain " + view.name, *blocking});
    } else if (auto deadline = actionDeadline(record, in.save_timeout, in.restore_timeout);
               deadline && in.now >= *deadline) {
      const bool save = record.runningKind() == hv::ActionKind::managed_save;
      out.blockers.push_back(
          {"domain " + view.name,
           std::string(save ? "managed-save" : "restore") + " running since " +
               formatTime(*record.started_at) + ", past its deadline " + formatTime(*deadline) +
               " ([limits] " + (save ? "save_timeout" : "restore_timeout") +
               "); libvirt is still at it: not aborted"});
    }
  }
  for (const LeftoverCheck& check : state.leftovers) {
    // Named once a check could not settle it; the first check takes a moment.
    if (check.attempts == 0) continue;
    out.blockers.push_back(
        {"leftover " + check.name,
         "its failed migration may have left it defined on " + check.destination + ": " +
             check.error +
             (check.next_attempt ? "; checked again at " + formatTime(*check.next_attempt) : "")});
  }
  if (in.evidence) {
    for (const hv::EvidenceCheck& check : *in.evidence) {
      if (check.ok) continue;
      if (check.name == kQemuCheck && in.qemu_exit_grace) continue;
      out.blockers.push_back({"check " + check.name, check.detail});
    }
  }
  // Everything but the domains (and the stamps, which the caller sets)
  // compared as a whole; then the domains, already in place, are put back.
  out.generation = current.generation;
  out.updated_at = current.updated_at;
  std::vector<DomainStatus> domains = std::move(current.domains);
  current.domains.clear();
  const bool rest_changed = !(out == current);
  current = std::move(out);
  current.domains = std::move(domains);
  return domains_changed || rest_changed;
}

}  // namespace hostmaint::agent
