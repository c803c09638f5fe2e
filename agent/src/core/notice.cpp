// Owner notices: their content from a domain's plan, their JSON form, and
// the ledger that tells a new notice from one already sent.
#include "hostmaint/agent/notice.hpp"

#include <algorithm>
#include <tuple>

#include "drain_plan.hpp"
#include "json_text.hpp"
#include "json_integer.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kLedgerVersion = 1;

std::string verbFor(MaintenanceAction action) {
  switch (action) {
    case MaintenanceAction::live_migrate: return "live-migrated to another host";
    case MaintenanceAction::cold_migrate: return "shut down and started on another host";
    case MaintenanceAction::suspend: return "suspended to disk on this host and restored after";
    case MaintenanceAction::shutdown: return "shut down and started again after";
    case MaintenanceAction::owner: return "moved or deleted by its owner";
  }
  return "handled";
}

std::string humanDuration(std::chrono::seconds duration) { return formatDuration(duration); }

// Seconds to copy `bytes` at `bps`, rounded up.
std::chrono::seconds transferTime(std::uint64_t bytes, std::uint64_t bps) {
  if (bps == 0) return 0s;
  return std::chrono::seconds((bytes + bps - 1) / bps);
}

struct Downtime {
  std::optional<std::chrono::seconds> expected;
  std::string basis;
};

Downtime estimateDowntime(const NoticeInput& input, MaintenanceAction action,
                          const NoticeSettings& settings) {
  switch (action) {
    case MaintenanceAction::live_migrate: {
      const bool measured = input.measured_throughput_bps > 0;
      const std::uint64_t bps =
          measured ? input.measured_throughput_bps : settings.assumed_throughput_bps;
      const std::uint64_t bytes = input.domain.memory_kib * 1024;
      return {std::max(settings.min_expected_downtime, transferTime(bytes, bps)),
              measured ? "measured-throughput" : "assumed-throughput"};
    }
    case MaintenanceAction::cold_migrate:
      return {std::max(settings.min_expected_downtime,
                       input.policy.shutdown_timeout + settings.boot_estimate),
              "shutdown-and-start"};
    case MaintenanceAction::suspend:
    case MaintenanceAction::shutdown:
      return {std::chrono::duration_cast<std::chrono::seconds>(input.window.end -
                                                               input.window.start),
              "window"};
    case MaintenanceAction::owner: return {std::nullopt, "owner"};
  }
  return {std::nullopt, "owner"};
}

std::string describe(const DomainNotice& n, const std::string& name, const std::string& blocked) {
  if (n.cancelled) {
    return "The maintenance of this host was cancelled: nothing more will be done to " + name +
           "; what was already done is undone (a suspended or shut down domain is restored).";
  }
  std::string text;
  if (!n.action) {
    text = name + ": no action can be planned" + (blocked.empty() ? "" : " (" + blocked + ")") + ".";
  } else if (*n.action == MaintenanceAction::owner) {
    text = name + " must be moved or deleted by its owner" +
           (n.owner_deadline ? " by " + formatTime(*n.owner_deadline) : std::string()) + ".";
  } else {
    text = name + " will be " + verbFor(*n.action) +
           (n.earliest_start ? ", not before " + formatTime(*n.earliest_start) : std::string()) +
           ".";
    if (n.fallback_used) text += " (This is its policy's fallback action.)";
  }
  if (n.expected_downtime) {
    if (n.action == MaintenanceAction::live_migrate) {
      text += " The migration is expected to take about " + humanDuration(*n.expected_downtime) +
              "; the domain keeps running and pauses only briefly at the end.";
    } else {
      text += " Expected downtime: about " + humanDuration(*n.expected_downtime) + ".";
    }
  }
  if (n.removal) text += " The host is being removed for good: nothing may stay on it.";
  if (n.ack_deadline) {
    text += " Please acknowledge with 'move'" + std::string(n.keep_allowed ? " or 'keep'" : "") +
            " by " + formatTime(*n.ack_deadline) + "; without an ack ";
    text += n.ack_timeout_action == AckTimeoutAction::block
                ? "the domain is left alone and blocks the maintenance until acknowledged."
                : "the planned action proceeds.";
  } else if (n.ack) {
    text += " Acknowledged: " + std::string(toString(*n.ack)) +
            (n.ack_reason.empty() ? "" : " (" + n.ack_reason + ")") + ".";
  }
  if (!n.keep_allowed && !n.ack) {
    text += n.removal ? "" : " Keeping it on this host is not possible.";
  } else if (n.keep_allowed && n.keep_action && n.ack != AckChoice::keep) {
    text += " 'keep' would " + std::string(*n.keep_action == MaintenanceAction::suspend
                                               ? "suspend it on this host"
                                               : "shut it down on this host") +
            " for the maintenance.";
  }
  if (n.overrun) {
    text += " The maintenance window ended at " + formatTime(n.window_end) +
            " before this was done; nothing is forced at its end: the maintenance continues "
            "past it, so this may still happen after the window.";
  }
  return text;
}

template <typename T, typename Render>
json orNull(const std::optional<T>& value, Render render) {
  return value ? json(render(*value)) : json(nullptr);
}

std::optional<TimePoint> timeOrNull(const json& value, const char* field) {
  if (value.is_null()) return std::nullopt;
  auto parsed = parseTime(value.get<std::string>());
  if (!parsed) throw std::runtime_error(std::string("notice field '") + field + "' is not a time");
  return parsed;
}

TimePoint requiredTime(const json& value, const char* field) {
  if (value.is_null()) throw std::runtime_error(std::string("notice field '") + field + "' is null");
  return *timeOrNull(value, field);
}

template <typename E, typename Parse>
std::optional<E> enumOrNull(const json& value, const char* field, Parse parse) {
  if (value.is_null()) return std::nullopt;
  auto parsed = parse(value.get<std::string>());
  if (!parsed) {
    throw std::runtime_error(std::string("notice field '") + field + "' has an unknown value '" +
                             value.get<std::string>() + "'");
  }
  return parsed;
}

bool isActivePhase(HostPhase phase) {
  return phase == HostPhase::scheduled || phase == HostPhase::draining ||
         phase == HostPhase::empty || phase == HostPhase::in_maintenance;
}

}  // namespace

NoticeSettings noticeSettingsFrom(const NoticesConfig& config) {
  NoticeSettings settings;
  settings.assumed_throughput_bps = config.assumed_migration_throughput_mib_s * 1024 * 1024;
  settings.min_expected_downtime = config.min_expected_downtime;
  settings.boot_estimate = config.boot_estimate;
  return settings;
}

std::optional<DomainNotice> computeNotice(const NoticeInput& input,
                                          const NoticeSettings& settings) {
  const DomainStatus& domain = input.domain;
  // Nothing to do (not running, need not leave): no notice.
  if (!domain.action && domain.policy_error.empty() && domain.stage == DomainStage::done) {
    return std::nullopt;
  }
  DomainNotice notice;
  notice.session_id = input.session_id;
  notice.action = domain.action;
  notice.fallback_used = domain.fallback_used;
  notice.window_start = input.window.start;
  notice.window_end = input.window.end;
  notice.removal = input.window.removal;
  notice.earliest_start = domain.action ? domain.earliest_start : std::nullopt;
  notice.ack_required = domain.ack_required;
  notice.ack = domain.ack;
  if (domain.ack) notice.ack_reason = domain.ack_reason;
  if (domain.ack_required && !domain.ack) {
    notice.ack_deadline = domain.ack_deadline;
    notice.ack_timeout_action = input.policy.ack_timeout_action;
  }
  const KeepDecision keep =
      keepDecision(domain.name, input.policy, input.window.removal, domain.persistent);
  notice.keep_allowed = keep.action.has_value();
  notice.keep_action = keep.action;
  notice.overrun = input.overrun;
  if (domain.action) {
    Downtime downtime = estimateDowntime(input, *domain.action, settings);
    notice.expected_downtime = downtime.expected;
    notice.downtime_basis = std::move(downtime.basis);
    if (*domain.action == MaintenanceAction::owner) {
      PlanContext context;
      context.removal = input.window.removal;
      context.window_start = input.window.start;
      context.noticed_at = input.noticed_at;
      notice.owner_deadline = ownerDeadline(input.policy, context);
    }
  }
  // Without an action, the reason is the plan's (stable) explanation; a
  // malformed policy is the owner's to resolve with an ack.
  std::string blocked;
  if (!domain.action) {
    blocked = domain.policy_error.empty()
                  ? domain.detail
                  : "its hostmaint policy is malformed: " + domain.policy_error +
                        "; an ack 'move' or 'keep' lets the host's default policy apply";
  }
  notice.message = describe(notice, domain.name, blocked);
  return notice;
}

std::optional<DomainNotice> hostShutdownNotice(const HostShutdownRecord& record,
                                               const HostShutdownDomain& domain,
                                               const std::string& host) {
  if (domain.result == HostShutdownResult::handed_over) return std::nullopt;  // the maintenance's
  DomainNotice notice;
  notice.session_id = std::string(kHostShutdownNoticeBasis) + " " + formatTime(record.started_at);
  notice.action = domain.action == HostShutdownAction::suspend ? MaintenanceAction::suspend
                                                                : MaintenanceAction::shutdown;
  notice.window_start = record.started_at;
  notice.window_end = domain.restored_at.value_or(record.came_back_at.value_or(record.started_at));
  notice.downtime_basis = std::string(kHostShutdownNoticeBasis);
  const bool suspend = domain.action == HostShutdownAction::suspend;
  const std::string verb = suspend ? "suspended" : "shut down";
  const std::string done = suspend ? "suspended to disk (its memory kept)" : "shut down";
  std::string text = "Host " + host + " went down outside a planned maintenance at " +
                     formatTime(record.started_at) + ". ";
  switch (domain.result) {
    case HostShutdownResult::pending:
    case HostShutdownResult::acting:
      text += domain.name + " is being " + done + "; it is brought back when the host is up again.";
      break;
    case HostShutdownResult::suspended:
    case HostShutdownResult::shut_down:
      text += domain.name + " was " + done + "; it is brought back when the host is up again.";
      break;
    case HostShutdownResult::failed:
      text += domain.name + " could not be " + verb + " (" + domain.message +
              "); it went down with the host and is not started again by hostmaint.";
      break;
    case HostShutdownResult::restoring:
      text += domain.name + " was " + done + " and is being brought back now.";
      break;
    case HostShutdownResult::restored:
      text += domain.name + " was " + done + " and is running again since " +
              (domain.restored_at ? formatTime(*domain.restored_at) : std::string("now")) + ".";
      break;
    case HostShutdownResult::restore_failed:
      text += domain.name + " was " + done + " but could not be started again: " + domain.message +
              ".";
      break;
    case HostShutdownResult::gone:
      text += domain.name + " was " + done + " and is no longer defined on this host.";
      break;
    case HostShutdownResult::handed_over: break;
  }
  notice.message = std::move(text);
  return notice;
}

bool materiallyDifferent(const DomainNotice& a, const DomainNotice& b) {
  // Notices show whole seconds, and a persisted notice comes back with
  // whole seconds: a fraction must not make a restarted daemon re-notify.
  auto seconds = [](std::optional<TimePoint> t) {
    return t ? std::optional(std::chrono::floor<std::chrono::seconds>(*t)) : std::nullopt;
  };
  auto material = [&](const DomainNotice& n) {
    return std::make_tuple(n.session_id, n.cancelled, n.action, n.fallback_used,
                           seconds(n.window_start), seconds(n.window_end), n.removal,
                           seconds(n.earliest_start), n.ack_required, n.ack, n.ack_reason,
                           seconds(n.ack_deadline), n.ack_timeout_action, n.keep_allowed,
                           n.keep_action, seconds(n.owner_deadline), n.overrun);
  };
  // An action that could not be planned is explained only in the message,
  // and so is each step of a host shutdown (suspended, then restored).
  const bool told_in_message = !a.action || a.downtime_basis == kHostShutdownNoticeBasis;
  return material(a) != material(b) || (told_in_message && a.message != b.message);
}

json noticeToJson(const DomainNotice& n) {
  auto time = [](TimePoint t) { return formatTime(t); };
  auto action = [](MaintenanceAction a) { return toString(a); };
  return {
      {"revision", n.revision},
      {"issued_at", orNull(n.issued_at, time)},
      {"session_id", n.session_id},
      {"status", n.cancelled ? "cancelled" : "active"},
      {"action", orNull(n.action, action)},
      {"fallback_used", n.fallback_used},
      {"window_start", formatTime(n.window_start)},
      {"window_end", formatTime(n.window_end)},
      {"removal", n.removal},
      {"earliest_start", orNull(n.earliest_start, time)},
      {"expected_downtime_s",
       orNull(n.expected_downtime, [](std::chrono::seconds s) { return s.count(); })},
      {"downtime_basis", n.downtime_basis.empty() ? json(nullptr) : json(n.downtime_basis)},
      {"ack_required", n.ack_required},
      {"ack", orNull(n.ack, [](AckChoice c) { return toString(c); })},
      {"ack_reason", n.ack_reason.empty() ? json(nullptr) : json(n.ack_reason)},
      {"ack_deadline", orNull(n.ack_deadline, time)},
      {"ack_timeout_action",
       orNull(n.ack_timeout_action, [](AckTimeoutAction a) { return toString(a); })},
      {"keep_allowed", n.keep_allowed},
      {"keep_action", orNull(n.keep_action, action)},
      {"owner_deadline", orNull(n.owner_deadline, time)},
      {"overrun", n.overrun},
      {"message", n.message},
  };
}

namespace json_text {

std::string noticeText(const DomainNotice& n, Layout layout) {
  auto time = [](TimePoint t) { return quote(formatTime(t)); };
  auto action = [](MaintenanceAction a) { return quote(toString(a)); };
  auto textOrNull = [](const std::string& text) { return text.empty() ? null() : quote(text); };
  return Object(layout)
      .add("revision", number(n.revision))
      .add("issued_at", orNull(n.issued_at, time))
      .add("session_id", quote(n.session_id))
      .add("status", quote(n.cancelled ? "cancelled" : "active"))
      .add("action", orNull(n.action, action))
      .add("fallback_used", boolean(n.fallback_used))
      .add("window_start", time(n.window_start))
      .add("window_end", time(n.window_end))
      .add("removal", boolean(n.removal))
      .add("earliest_start", orNull(n.earliest_start, time))
      .add("expected_downtime_s",
           orNull(n.expected_downtime,
                  [](std::chrono::seconds s) { return number(std::int64_t{s.count()}); }))
      .add("downtime_basis", textOrNull(n.downtime_basis))
      .add("ack_required", boolean(n.ack_required))
      .add("ack", orNull(n.ack, [](AckChoice c) { return quote(toString(c)); }))
      .add("ack_reason", textOrNull(n.ack_reason))
      .add("ack_deadline", orNull(n.ack_deadline, time))
      .add("ack_timeout_action",
           orNull(n.ack_timeout_action, [](AckTimeoutAction a) { return quote(toString(a)); }))
      .add("keep_allowed", boolean(n.keep_allowed))
      .add("keep_action", orNull(n.keep_action, action))
      .add("owner_deadline", orNull(n.owner_deadline, time))
      .add("overrun", boolean(n.overrun))
      .add("message", quote(n.message))
      .text();
}

}  // namespace json_text

std::string noticeToText(const DomainNotice& notice) {
  return json_text::noticeText(notice, json_text::Layout{});
}

NoticeTexts::Texts& NoticeTexts::of(const std::string& uuid, const DomainNotice& notice) {
  // Texts of domains long gone go now and then.
  constexpr std::size_t kMostKept = 10000;
  if (texts_.size() > kMostKept && !texts_.contains(uuid)) texts_.clear();
  Texts& texts = texts_[uuid];
  if (texts.indented.empty() || !(texts.notice == notice)) {
    texts.notice = notice;
    texts.indented = json_text::noticeText(notice, json_text::Layout{2, 3});
    texts.compact.clear();
  }
  return texts;
}

const std::string& NoticeTexts::indented(const std::string& uuid, const DomainNotice& notice) {
  return of(uuid, notice).indented;
}

const std::string& NoticeTexts::compact(const std::string& uuid, const DomainNotice& notice) {
  Texts& texts = of(uuid, notice);
  if (texts.compact.empty()) texts.compact = json_text::compacted(texts.indented);
  return texts.compact;
}

DomainNotice noticeFromJson(const json& v) {
  try {
    DomainNotice n;
    n.revision = jsonInteger<std::uint64_t>(v.at("revision"), "notice field 'revision'");
    n.issued_at = timeOrNull(v.at("issued_at"), "issued_at");
    n.session_id = v.at("session_id").get<std::string>();
    const std::string status = v.at("status").get<std::string>();
    if (status != "active" && status != "cancelled") {
      throw std::runtime_error("notice field 'status' has an unknown value '" + status + "'");
    }
    n.cancelled = status == "cancelled";
    n.action = enumOrNull<MaintenanceAction>(v.at("action"), "action", parseMaintenanceAction);
    n.fallback_used = v.at("fallback_used").get<bool>();
    n.window_start = requiredTime(v.at("window_start"), "window_start");
    n.window_end = requiredTime(v.at("window_end"), "window_end");
    n.removal = v.at("removal").get<bool>();
    n.earliest_start = timeOrNull(v.at("earliest_start"), "earliest_start");
    if (!v.at("expected_downtime_s").is_null()) {
      n.expected_downtime = std::chrono::seconds(jsonInteger<std::int64_t>(
          v.at("expected_downtime_s"), "notice field 'expected_downtime_s'"));
    }
    if (!v.at("downtime_basis").is_null()) {
      n.downtime_basis = v.at("downtime_basis").get<std::string>();
    }
    n.ack_required = v.at("ack_required").get<bool>();
    n.ack = enumOrNull<AckChoice>(v.at("ack"), "ack", parseAckChoice);
    // Absent in ledgers written before acks carried a reason.
    if (const auto reason = v.find("ack_reason"); reason != v.end() && !reason->is_null())
      n.ack_reason = reason->get<std::string>();
    n.ack_deadline = timeOrNull(v.at("ack_deadline"), "ack_deadline");
    n.ack_timeout_action = enumOrNull<AckTimeoutAction>(v.at("ack_timeout_action"),
                                                        "ack_timeout_action", parseAckTimeoutAction);
    n.keep_allowed = v.at("keep_allowed").get<bool>();
    n.keep_action =
        enumOrNull<MaintenanceAction>(v.at("keep_action"), "keep_action", parseMaintenanceAction);
    n.owner_deadline = timeOrNull(v.at("owner_deadline"), "owner_deadline");
    // Absent in ledgers written before the window's end was watched.
    if (const auto overrun = v.find("overrun"); overrun != v.end() && !overrun->is_null())
      n.overrun = overrun->get<bool>();
    n.message = v.at("message").get<std::string>();
    return n;
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("malformed notice: ") + error.what());
  }
}

NoticeLedger::NoticeLedger(std::uint64_t first_revision_base) : last_revision_(first_revision_base) {}

std::vector<NoticeLedger::Issued> NoticeLedger::observe(HostStatus& status, TimePoint now) {
  std::vector<Issued> issued;
  auto issue = [&](const std::string& uuid, const std::string& name, DomainNotice notice) {
    notice.revision = ++last_revision_;
    notice.issued_at = now;
    issued_[uuid] = Entry{name, notice};
    issued.push_back({uuid, name, std::move(notice)});
  };
  const HostPhase phase = status.phase;
  const bool was_active = last_phase_ == HostPhase::scheduled || last_phase_ == HostPhase::draining;
  // Only scheduled and draining can be cancelled; a cancel may reach idle
  // in the same step when nothing needs restoring.
  const bool cancelled = was_active && !isActivePhase(phase) && session_id_.has_value();
  if (cancelled) {
    for (const DomainStatus& domain : status.domains) {
      auto found = issued_.find(domain.uuid);
      if (found == issued_.end() || found->second.notice.cancelled) continue;
      DomainNotice notice = found->second.notice;
      notice.cancelled = true;
      notice.message = describe(notice, domain.name, {});
      issue(domain.uuid, domain.name, std::move(notice));
    }
  }
  last_phase_ = phase;
  if (phase == HostPhase::idle) {
    // A maintenance's notices end with it; a host shutdown's (which belongs
    // to no maintenance) are issued and kept here.
    std::erase_if(issued_, [](const auto& entry) {
      return entry.second.notice.downtime_basis != kHostShutdownNoticeBasis;
    });
    session_id_.reset();
    for (DomainStatus& domain : status.domains) {
      auto found = issued_.find(domain.uuid);
      if (domain.notice && (found == issued_.end() ||
                            materiallyDifferent(found->second.notice, *domain.notice))) {
        issue(domain.uuid, domain.name, *domain.notice);
        found = issued_.find(domain.uuid);
      }
      if (found != issued_.end()) {
        domain.notice = found->second.notice;
      } else {
        domain.notice.reset();
      }
    }
    return issued;
  }
  if (status.session_id != session_id_) {
    issued_.clear();
    session_id_ = status.session_id;
  }
  for (DomainStatus& domain : status.domains) {
    auto found = issued_.find(domain.uuid);
    if (isActivePhase(phase) && domain.notice) {
      if (found == issued_.end() || materiallyDifferent(found->second.notice, *domain.notice)) {
        issue(domain.uuid, domain.name, *domain.notice);
        found = issued_.find(domain.uuid);
      }
    }
    // What is shown is what was sent (with the estimate it was sent with).
    if (found != issued_.end()) {
      domain.notice = found->second.notice;
    } else {
      domain.notice.reset();
    }
  }
  return issued;
}

// Each entry's text is kept while the entry is unchanged: a change of one
// notice re-renders that one, not the whole ledger. The document is the
// one nlohmann renders with indent 2 (entries spliced into "notices"), so a
// ledger reads the same as before this cache.
std::string NoticeLedger::encode() const {
  json document = {
      {"version", kLedgerVersion},
      {"last_revision", last_revision_},
      {"session_id", session_id_ ? json(*session_id_) : json(nullptr)},
      {"last_phase", toString(last_phase_)},
      {"notices", json::object()},
  };
  std::string text = document.dump(2);
  constexpr std::string_view kEmptyNotices = "\n  \"notices\": {}";
  const std::size_t at = text.find(kEmptyNotices);
  std::map<std::string, EncodedEntry> kept;
  std::string entries;
  for (const auto& [uuid, entry] : issued_) {
    auto cached = encoded_.find(uuid);
    EncodedEntry encoded;
    if (cached != encoded_.end() && cached->second.entry.name == entry.name &&
        cached->second.entry.notice == entry.notice) {
      encoded = std::move(cached->second);
    } else {
      encoded.entry = entry;
      // A member of "notices", itself a member of the document: its value
      // is laid out two levels deep.
      json_text::Object value(json_text::Layout{2, 2});
      value.add("name", json_text::quote(entry.name))
          .add("notice", texts_->indented(uuid, entry.notice));  // value.inner(): {2, 3}
      encoded.text = "    " + json_text::quote(uuid) + ": " + value.text();
    }
    if (!entries.empty()) entries += ",\n";
    entries += encoded.text;
    kept.emplace(uuid, std::move(encoded));
  }
  encoded_ = std::move(kept);
  if (!entries.empty() && at != std::string::npos) {
    const std::size_t braces = at + kEmptyNotices.size() - 2;  // the "{}"
    text.replace(braces, 2, "{\n" + entries + "\n  }");
  }
  return text + "\n";
}

NoticeLedger NoticeLedger::decode(std::string_view text) {
  try {
    const json document = json::parse(text);
    const int version = jsonInteger<int>(document.at("version"), "version");
    if (version != kLedgerVersion) {
      throw NoticeLedgerError("unsupported notice ledger version " + std::to_string(version) +
                              " (this hostmaintd reads version " +
                              std::to_string(kLedgerVersion) + ")");
    }
    NoticeLedger ledger(jsonInteger<std::uint64_t>(document.at("last_revision"), "last_revision"));
    if (!document.at("session_id").is_null()) {
      ledger.session_id_ = document.at("session_id").get<std::string>();
    }
    const std::string phase = document.at("last_phase").get<std::string>();
    auto parsed_phase = parseHostPhase(phase);
    if (!parsed_phase) throw NoticeLedgerError("unknown last_phase '" + phase + "'");
    ledger.last_phase_ = *parsed_phase;
    for (const auto& [uuid, entry] : document.at("notices").items()) {
      ledger.issued_[uuid] =
          Entry{entry.at("name").get<std::string>(), noticeFromJson(entry.at("notice"))};
    }
    return ledger;
  } catch (const NoticeLedgerError&) {
    throw;
  } catch (const std::exception& error) {
    throw NoticeLedgerError(std::string("malformed notice ledger: ") + error.what());
  }
}

}  // namespace hostmaint::agent
