#include <chrono>
#include <cstdint>
#include <string>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "drain_plan.hpp"
#include "engine_state.hpp"
#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "json_integer.hpp"
#include "json_text.hpp"
#include "status_projection.hpp"

namespace hostmaint::agent {

namespace {

using json = nlohmann::json;

// Microseconds since the Unix epoch: exact and independent of time zones.
json encodeTime(const std::optional<TimePoint>& time) {
  if (!time) return nullptr;
  return std::chrono::duration_cast<std::chrono::microseconds>(time->time_since_epoch()).count();
}

// A document that decodes but describes no state the engine can be in: the
// error names the field, so whoever looks at the journal knows where.
[[noreturn]] void inconsistent(const std::string& field, const std::string& why) {
  throw std::runtime_error("engine state field '" + field + "': " + why);
}

std::optional<TimePoint> decodeTime(const json& value, const std::string& field = "time") {
  if (value.is_null()) return std::nullopt;
  // The years parseTime accepts, with a year's slack either side for
  // offsets: every time the engine journals came from there or the clock.
  // Far beyond them the conversion to nanoseconds would overflow.
  using namespace std::chrono;
  constexpr std::int64_t kEarliest =
      duration_cast<microseconds>(sys_days(year(kMinTimeYear - 1) / 1 / 1).time_since_epoch())
          .count();
  constexpr std::int64_t kLatest =
      duration_cast<microseconds>(sys_days(year(kMaxTimeYear + 2) / 1 / 1).time_since_epoch())
          .count();
  const auto micros = jsonInteger<std::int64_t>(value, field);
  if (micros < kEarliest || micros >= kLatest) {
    inconsistent(field, std::to_string(micros) + " microseconds is out of range (years " +
                            std::to_string(kMinTimeYear) + "-" + std::to_string(kMaxTimeYear) +
                            " expected)");
  }
  return TimePoint(duration_cast<Clock::duration>(microseconds(micros)));
}

TimePoint requiredTime(const json& object, const char* key, const std::string& field) {
  const auto time = decodeTime(object.at(key), field);
  if (!time) inconsistent(field, "is null; a time is required");
  return *time;
}

json encodeString(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  return *text;
}

std::optional<std::string> decodeString(const json& value) {
  if (value.is_null()) return std::nullopt;
  return value.get<std::string>();
}

template <typename Enum, typename Parse>
Enum decodeEnum(const json& value, Parse parse, std::string_view what) {
  const std::string text = value.get<std::string>();
  auto parsed = parse(text);
  if (!parsed) throw std::runtime_error(std::string(what) + ": unknown value '" + text + "'");
  return *parsed;
}

std::optional<hv::ActionKind> parseActionKind(std::string_view text) {
  for (hv::ActionKind kind :
       {hv::ActionKind::managed_save, hv::ActionKind::shutdown, hv::ActionKind::start,
        hv::ActionKind::live_migrate, hv::ActionKind::cold_migrate}) {
    if (hv::toString(kind) == text) return kind;
  }
  return std::nullopt;
}

// Written directly (json_text), as nlohmann's dump() renders the same
// object: a schedule journals every domain at once.
std::string encodePolicy(const DomainPolicy& policy, json_text::Layout layout) {
  using namespace json_text;
  auto text = [](auto value) { return quote(toString(value)); };
  auto integer = [](std::int64_t value) { return number(value); };
  return Object(layout)
      .add("maintenance_action", text(policy.maintenance_action))
      .add("removal_action", text(policy.removal_action))
      .add("fallback_action", text(policy.fallback_action))
      .add("removal_fallback_action", text(policy.removal_fallback_action))
      .add("host_shutdown_action", text(policy.host_shutdown_action))
      .add("ack_required", boolean(policy.ack_required))
      .add("ack_timeout_s", integer(policy.ack_timeout.count()))
      .add("ack_timeout_action", text(policy.ack_timeout_action))
      .add("lead_time_s", integer(policy.lead_time.count()))
      .add("group", quote(policy.group))
      .add("max_impacted_members", integer(policy.max_impacted_members))
      .add("recovery_time_s", integer(policy.recovery_time.count()))
      .add("priority", integer(policy.priority))
      .add("shutdown_timeout_s", integer(policy.shutdown_timeout.count()))
      .add("force_stop", boolean(policy.force_stop))
      .add("migration_max_downtime_ms", integer(policy.migration_max_downtime.count()))
      .add("migration_downtime_steps", integer(policy.migration_downtime_steps))
      .add("migration_downtime_step_delay_s",
           integer(policy.migration_downtime_step_delay.count()))
      .add("migration_bandwidth_mib_s", integer(policy.migration_bandwidth_mib_s))
      .add("migration_auto_converge", boolean(policy.migration_auto_converge))
      .add("migration_post_copy", boolean(policy.migration_post_copy))
      .add("migration_completion_timeout_per_gib_s",
           integer(policy.migration_completion_timeout_per_gib.count()))
      .add("migration_progress_timeout_s", integer(policy.migration_progress_timeout.count()))
      .add("migration_parallel_connections", integer(policy.migration_parallel_connections))
      .text();
}

DomainPolicy decodePolicy(const json& in) {
  DomainPolicy policy;
  policy.maintenance_action = decodeEnum<MaintenanceAction>(
      in.at("maintenance_action"), parseMaintenanceAction, "maintenance_action");
  policy.removal_action = decodeEnum<MaintenanceAction>(in.at("removal_action"),
                                                        parseMaintenanceAction, "removal_action");
  policy.fallback_action = decodeEnum<MaintenanceAction>(in.at("fallback_action"),
                                                         parseMaintenanceAction, "fallback_action");
  policy.removal_fallback_action = decodeEnum<MaintenanceAction>(
      in.at("removal_fallback_action"), parseMaintenanceAction, "removal_fallback_action");
  policy.host_shutdown_action = decodeEnum<HostShutdownAction>(
      in.at("host_shutdown_action"), parseHostShutdownAction, "host_shutdown_action");
  policy.ack_required = in.at("ack_required").get<bool>();
  policy.ack_timeout = std::chrono::seconds(jsonInteger<std::int64_t>(in.at("ack_timeout_s"), "ack_timeout_s"));
  policy.ack_timeout_action = decodeEnum<AckTimeoutAction>(
      in.at("ack_timeout_action"), parseAckTimeoutAction, "ack_timeout_action");
  policy.lead_time = std::chrono::seconds(jsonInteger<std::int64_t>(in.at("lead_time_s"), "lead_time_s"));
  policy.group = in.at("group").get<std::string>();
  policy.max_impacted_members = jsonInteger<unsigned>(in.at("max_impacted_members"), "max_impacted_members");
  policy.recovery_time = std::chrono::seconds(jsonInteger<std::int64_t>(in.at("recovery_time_s"), "recovery_time_s"));
  policy.priority = jsonInteger<int>(in.at("priority"), "priority");
  policy.shutdown_timeout = std::chrono::seconds(jsonInteger<std::int64_t>(in.at("shutdown_timeout_s"), "shutdown_timeout_s"));
  policy.force_stop = in.at("force_stop").get<bool>();
  // The migration tuning came after version 1 was first written: absent in
  // older journals, where the defaults apply (as they did then).
  const DomainPolicy defaults;
  policy.migration_max_downtime = std::chrono::milliseconds(
      jsonInteger(in, "migration_max_downtime_ms", defaults.migration_max_downtime.count()));
  policy.migration_downtime_steps =
      jsonInteger(in, "migration_downtime_steps", defaults.migration_downtime_steps);
  policy.migration_downtime_step_delay = std::chrono::seconds(
      jsonInteger(in, "migration_downtime_step_delay_s", defaults.migration_downtime_step_delay.count()));
  policy.migration_bandwidth_mib_s =
      jsonInteger(in, "migration_bandwidth_mib_s", defaults.migration_bandwidth_mib_s);
  policy.migration_auto_converge =
      in.value("migration_auto_converge", defaults.migration_auto_converge);
  policy.migration_post_copy = in.value("migration_post_copy", defaults.migration_post_copy);
  policy.migration_completion_timeout_per_gib = std::chrono::seconds(
      jsonInteger(in, "migration_completion_timeout_per_gib_s",
               defaults.migration_completion_timeout_per_gib.count()));
  policy.migration_progress_timeout = std::chrono::seconds(
      jsonInteger(in, "migration_progress_timeout_s", defaults.migration_progress_timeout.count()));
  policy.migration_parallel_connections =
      jsonInteger(in, "migration_parallel_connections", defaults.migration_parallel_connections);
  // Every journaled policy passed these checks; one that fails them now was
  // edited or corrupted, and its durations could overflow the deadlines.
  if (auto problem = validatePolicy(policy)) throw std::runtime_error("policy: " + *problem);
  return policy;
}

// encodePolicy(policy, layout) of the last policy asked for, reused while
// the same is asked for again: the domains of a host mostly share the
// host's default policy, and a schedule journals them all at once.
const std::string& policyText(const DomainPolicy& policy, json_text::Layout layout) {
  struct Last {
    DomainPolicy policy;
    int indent = 0;
    int level = 0;
    std::string text;
  };
  thread_local Last last;
  if (last.text.empty() || last.indent != layout.indent || last.level != layout.level ||
      !(last.policy == policy)) {
    last.text = encodePolicy(policy, layout);
    last.policy = policy;
    last.indent = layout.indent;
    last.level = layout.level;
  }
  return last.text;
}

// Version 1 keeps each domain's stage as its name plus the words the status
// shows (result, detail); the typed stage is rebuilt from them and from the
// plan's times. Waits and running actions carry nothing that outlives the
// process: they are evaluated again after a restart.
std::string encodeDomain(const DomainRecord& record) {
  using namespace json_text;
  const DomainText words = describeDomain(record);
  auto time = [](const std::optional<TimePoint>& value) {
    return orNull(value, [](TimePoint t) {
      return number(std::int64_t{
          std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count()});
    });
  };
  auto text = [](auto value) { return quote(toString(value)); };
  const Layout compact;
  Object out(compact);
  out.add("uuid", quote(record.uuid))
      .add("name", quote(record.name))
      .add("stage", text(record.stage()))
      .add("action", orNull(record.action, text))
      .add("fallback_used", boolean(record.fallback_used))
      .add("result", quote(words.result))
      .add("detail", quote(words.detail))
      .add("group", quote(record.policy.group))
      .add("priority", number(std::int64_t{record.policy.priority}))
      .add("ack_required", boolean(record.policy.ack_required))
      .add("ack", orNull(record.ack, text))
      .add("ack_reason", quote(record.ack_reason))
      .add("ack_deadline", time(record.ack_deadline))
      .add("earliest_start", time(record.earliest_start))
      .add("destination", orNull(record.destination, [](const std::string& d) { return quote(d); }))
      .add("policy_error", quote(record.policy_error))
      .add("policy", policyText(record.policy, out.inner()))
      .add("fallback", orNull(record.fallback, text))
      .add("note", quote(record.note))
      .add("ack_time", time(record.ack_time))
      .add("acting_kind", orNull(record.runningKind(), [](hv::ActionKind kind) {
             return quote(hv::toString(kind));
           }))
      .add("needs_restore", boolean(record.needs_restore))
      .add("started_at", time(record.started_at))
      .add("finished_at", time(record.finished_at))
      .add("memory_kib", number(std::uint64_t{record.memory_kib}))
      .add("interrupted_migrations", number(std::uint64_t{record.interrupted_migrations}));
  // Added after version 1 was first written: only when there is something.
  if (record.destination_failures > 0) {
    std::vector<std::string> failed;
    for (const std::string& uri : record.failed_destinations) failed.push_back(quote(uri));
    out.add("destination_failures", number(std::uint64_t{record.destination_failures}))
        .add("failed_destinations", array(failed, out.inner()))
        .add("retry_at", time(record.retry_at))
        .add("retry_reason", quote(record.retry_reason));
  }
  return out.text();
}

// What the rest of the document says about the maintenance, needed to
// rebuild a stage's values.
struct DecodeContext {
  HostPhase phase = HostPhase::idle;
  std::optional<MaintenanceWindow> window;
  std::optional<TimePoint> scheduled_at;
};

DomainState decodeStage(const json& in, const DomainRecord& record, const DecodeContext& context) {
  const DomainStage stage_name = decodeEnum<DomainStage>(in.at("stage"), parseDomainStage, "stage");
  const std::string result = in.at("result").get<std::string>();
  const std::string detail = in.at("detail").get<std::string>();
  std::optional<hv::ActionKind> kind;
  if (!in.at("acting_kind").is_null()) {
    kind = decodeEnum<hv::ActionKind>(in.at("acting_kind"), parseActionKind, "acting_kind");
  }
  switch (stage_name) {
    case DomainStage::planned:
      if (context.phase == HostPhase::idle) return stage::Planned{};
      return stage::Planned{record.earliest_start};
    case DomainStage::awaiting_ack:
      if (!record.ack_deadline) {
        throw std::runtime_error("domain '" + record.name +
                                 "' is awaiting an ack but has no ack_deadline");
      }
      return stage::AwaitingAck{*record.ack_deadline};
    case DomainStage::waiting: return stage::Waiting{wait::ToStart{}};
    case DomainStage::acting: {
      if (kind == hv::ActionKind::start) {
        throw std::runtime_error("domain '" + record.name + "' is acting with a start");
      }
      if (kind) return stage::Acting{kind, running::FoundRunning{"after restart"}};
      PlanContext plan;
      plan.window_start = context.window ? context.window->start : TimePoint{};
      plan.noticed_at = context.scheduled_at.value_or(plan.window_start);
      return stage::Acting{std::nullopt, running::OwnerActs{ownerDeadline(record.policy, plan)}};
    }
    case DomainStage::done: return stage::Done{result};
    case DomainStage::failed: return stage::Failed{detail};
    case DomainStage::blocked: return stage::Blocked{detail};
    case DomainStage::left: return stage::Left{result};
    case DomainStage::restoring: {
      stage::Restoring restoring;
      restoring.started = kind == hv::ActionKind::start;
      restoring.outcome = result;
      return restoring;
    }
    case DomainStage::restored: return stage::Restored{result, detail};
    case DomainStage::restore_failed: return stage::RestoreFailed{detail};
  }
  throw std::runtime_error("unknown stage");
}

DomainRecord decodeDomain(const json& in, const DecodeContext& context) {
  DomainRecord record;
  record.uuid = in.at("uuid").get<std::string>();
  record.name = in.at("name").get<std::string>();
  if (!in.at("action").is_null()) {
    record.action =
        decodeEnum<MaintenanceAction>(in.at("action"), parseMaintenanceAction, "action");
  }
  record.fallback_used = in.at("fallback_used").get<bool>();
  if (!in.at("ack").is_null()) {
    record.ack = decodeEnum<AckChoice>(in.at("ack"), parseAckChoice, "ack");
  }
  // Added after version 1 was first written: absent in older journals.
  record.ack_reason = in.value("ack_reason", std::string());
  record.ack_deadline = decodeTime(in.at("ack_deadline"), "ack_deadline");
  record.earliest_start = decodeTime(in.at("earliest_start"), "earliest_start");
  record.destination = decodeString(in.at("destination"));
  record.policy_error = in.at("policy_error").get<std::string>();
  record.policy = decodePolicy(in.at("policy"));
  if (!in.at("fallback").is_null()) {
    record.fallback =
        decodeEnum<MaintenanceAction>(in.at("fallback"), parseMaintenanceAction, "fallback");
  }
  record.note = in.at("note").get<std::string>();
  record.ack_time = decodeTime(in.at("ack_time"), "ack_time");
  record.needs_restore = in.at("needs_restore").get<bool>();
  record.started_at = decodeTime(in.at("started_at"), "started_at");
  record.finished_at = decodeTime(in.at("finished_at"), "finished_at");
  // Added after version 1 was first written: absent in older journals.
  record.memory_kib = jsonInteger(in, "memory_kib", std::uint64_t{0});
  record.interrupted_migrations = jsonInteger(in, "interrupted_migrations", 0u);
  record.destination_failures = jsonInteger(in, "destination_failures", 0u);
  if (record.destination_failures > 0) {
    record.failed_destinations = in.at("failed_destinations").get<std::vector<std::string>>();
    record.retry_at = decodeTime(in.at("retry_at"), "retry_at");
    record.retry_reason = in.at("retry_reason").get<std::string>();
  }
  record.state = decodeStage(in, record, context);
  return record;
}

// A domain the engine could not have written: no identity, twice in the
// list, or acting without an action.
void checkDomain(const DomainRecord& record, const std::string& where,
                 const std::vector<DomainRecord>& before) {
  if (record.uuid.empty()) inconsistent(where + ".uuid", "is empty");
  for (const DomainRecord& other : before)
    if (other.uuid == record.uuid)
      inconsistent(where + ".uuid", "'" + record.uuid + "' is listed twice");
  if (record.stage() == DomainStage::acting && !record.action)
    inconsistent(where + ".action", "is null while the domain is acting");
}

// Every phase but idle belongs to a maintenance: it has a session and a
// window. A journal without them would run a maintenance with no window.
void checkPhase(const EngineState& state) {
  if (state.phase == HostPhase::idle) return;
  const std::string phase(toString(state.phase));
  if (!state.window) inconsistent("window", "is null in phase '" + phase + "', which needs one");
  if (!state.session_id || state.session_id->empty())
    inconsistent("session_id", "is empty in phase '" + phase + "', which needs one");
}

json encodeOverride(const CordonOverride& allowed) {
  return {{"domain", allowed.domain}, {"uuid", allowed.uuid},   {"name", allowed.name},
          {"reason", allowed.reason}, {"by", allowed.by},       {"at", encodeTime(allowed.at)}};
}

CordonOverride decodeOverride(const json& in, const std::string& where) {
  CordonOverride allowed;
  allowed.domain = in.at("domain").get<std::string>();
  if (allowed.domain.empty()) inconsistent(where + ".domain", "is empty");
  allowed.uuid = in.at("uuid").get<std::string>();
  allowed.name = in.at("name").get<std::string>();
  allowed.reason = in.at("reason").get<std::string>();
  allowed.by = in.at("by").get<std::string>();
  allowed.at = requiredTime(in, "at", where + ".at");
  return allowed;
}

json encodeHostShutdown(const HostShutdownRecord& record) {
  json domains = json::array();
  for (const HostShutdownDomain& d : record.domains) {
    domains.push_back({{"uuid", d.uuid},
                       {"name", d.name},
                       {"action", toString(d.action)},
                       {"priority", d.priority},
                       {"result", toString(d.result)},
                       {"message", d.message},
                       {"acted_at", encodeTime(d.acted_at)},
                       {"restored_at", encodeTime(d.restored_at)}});
  }
  return {{"phase", toString(record.phase)},
          {"requested_by", record.requested_by},
          {"started_at", encodeTime(record.started_at)},
          {"finished_at", encodeTime(record.finished_at)},
          {"boot_id", record.boot_id},
          {"came_back_at", encodeTime(record.came_back_at)},
          {"rebooted", record.rebooted},
          {"restored_at", encodeTime(record.restored_at)},
          {"domains", domains}};
}

HostShutdownRecord decodeHostShutdown(const json& in) {
  HostShutdownRecord record;
  record.phase = decodeEnum<HostShutdownPhase>(in.at("phase"), parseHostShutdownPhase,
                                               "host_shutdown.phase");
  record.requested_by = in.at("requested_by").get<std::string>();
  record.started_at = requiredTime(in, "started_at", "host_shutdown.started_at");
  record.finished_at = decodeTime(in.at("finished_at"), "host_shutdown.finished_at");
  record.boot_id = in.at("boot_id").get<std::string>();
  record.came_back_at = decodeTime(in.at("came_back_at"), "host_shutdown.came_back_at");
  record.rebooted = in.at("rebooted").get<bool>();
  record.restored_at = decodeTime(in.at("restored_at"), "host_shutdown.restored_at");
  const json& domains = in.at("domains");
  for (std::size_t i = 0; i < domains.size(); ++i) {
    const std::string where = "host_shutdown.domains[" + std::to_string(i) + "]";
    const json& d = domains.at(i);
    HostShutdownDomain domain;
    domain.uuid = d.at("uuid").get<std::string>();
    if (domain.uuid.empty()) inconsistent(where + ".uuid", "is empty");
    domain.name = d.at("name").get<std::string>();
    domain.action = decodeEnum<HostShutdownAction>(d.at("action"), parseHostShutdownAction,
                                                   where + ".action");
    domain.priority = jsonInteger<int>(d.at("priority"), where + ".priority");
    domain.result = decodeEnum<HostShutdownResult>(d.at("result"), parseHostShutdownResult,
                                                   where + ".result");
    domain.message = d.at("message").get<std::string>();
    domain.acted_at = decodeTime(d.at("acted_at"), where + ".acted_at");
    domain.restored_at = decodeTime(d.at("restored_at"), where + ".restored_at");
    for (const HostShutdownDomain& earlier : record.domains) {
      if (earlier.uuid == domain.uuid) inconsistent(where + ".uuid", domain.uuid + " appears twice");
    }
    record.domains.push_back(std::move(domain));
  }
  return record;
}

json encodeLeftover(const LeftoverCheck& check) {
  return {{"uuid", check.uuid},
          {"name", check.name},
          {"destination", check.destination},
          {"since", encodeTime(check.since)},
          {"attempts", check.attempts},
          {"error", check.error},
          {"next_attempt", encodeTime(check.next_attempt)}};
}

LeftoverCheck decodeLeftover(const json& in, const std::string& where) {
  LeftoverCheck check;
  check.uuid = in.at("uuid").get<std::string>();
  if (check.uuid.empty()) inconsistent(where + ".uuid", "is empty");
  check.name = in.at("name").get<std::string>();
  check.destination = in.at("destination").get<std::string>();
  if (check.destination.empty()) inconsistent(where + ".destination", "is empty");
  check.since = requiredTime(in, "since", where + ".since");
  check.attempts = jsonInteger<unsigned>(in.at("attempts"), where + ".attempts");
  check.error = in.at("error").get<std::string>();
  check.next_attempt = decodeTime(in.at("next_attempt"), where + ".next_attempt");
  return check;
}

}  // namespace

std::string encodeEngineHeader(const EngineState& state) {
  json window = nullptr;
  if (state.window) {
    window = {{"start", encodeTime(state.window->start)},
              {"end", encodeTime(state.window->end)},
              {"removal", state.window->removal},
              {"reason", state.window->reason}};
  }
  json out = {
      {"version", kEngineStateVersion},
      {"phase", toString(state.phase)},
      {"session_id", encodeString(state.session_id)},
      {"window", window},
      {"destinations", state.destinations},
      {"scheduled_at", encodeTime(state.scheduled_at)},
      {"migration_throughput_bps", state.migration_throughput_bps},
  };
  // Added in 0.4 without a version bump: absent keys decode as empty, so a
  // journal written before them still loads.
  if (state.cordoned_since) out["cordoned_since"] = encodeTime(state.cordoned_since);
  if (!state.cordon_allowed.empty()) {
    json allowed = json::array();
    for (const CordonOverride& entry : state.cordon_allowed) allowed.push_back(encodeOverride(entry));
    out["cordon_allowed"] = allowed;
  }
  if (state.host_shutdown) out["host_shutdown"] = encodeHostShutdown(*state.host_shutdown);
  if (!state.leftovers.empty()) {
    json leftovers = json::array();
    for (const LeftoverCheck& check : state.leftovers) leftovers.push_back(encodeLeftover(check));
    out["leftovers"] = leftovers;
  }
  return out.dump();
}

std::string encodeDomainRecord(const DomainRecord& record) { return encodeDomain(record); }

std::string encodeEngineState(const EngineState& state) {
  std::vector<std::string> records;
  records.reserve(state.domains.size());
  for (const DomainRecord& record : state.domains) records.push_back(encodeDomainRecord(record));
  return renderJournalDocument(encodeEngineHeader(state),
                               std::vector<std::string_view>(records.begin(), records.end()));
}

EngineState decodeEngineState(std::string_view document) {
  json in;
  try {
    in = json::parse(document);
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("engine state is not valid JSON: ") + error.what());
  }
  try {
    const int version = jsonInteger<int>(in.at("version"), "version");
    if (version != kEngineStateVersion) {
      throw std::runtime_error("engine state has version " + std::to_string(version) +
                               "; this hostmaintd reads version " +
                               std::to_string(kEngineStateVersion));
    }
    EngineState state;
    state.phase = decodeEnum<HostPhase>(in.at("phase"), parseHostPhase, "phase");
    state.session_id = decodeString(in.at("session_id"));
    if (!in.at("window").is_null()) {
      const json& w = in.at("window");
      MaintenanceWindow window;
      window.start = requiredTime(w, "start", "window.start");
      window.end = requiredTime(w, "end", "window.end");
      window.removal = w.at("removal").get<bool>();
      window.reason = w.at("reason").get<std::string>();
      if (window.end <= window.start)
        inconsistent("window.end", formatTime(window.end) + " is not after window.start " +
                                       formatTime(window.start));
      state.window = window;
    }
    state.destinations = in.at("destinations").get<std::vector<std::string>>();
    state.scheduled_at = decodeTime(in.at("scheduled_at"), "scheduled_at");
    const DecodeContext context{state.phase, state.window, state.scheduled_at};
    const json& domains = in.at("domains");
    for (std::size_t i = 0; i < domains.size(); ++i) {
      const std::string where = "domains[" + std::to_string(i) + "]";
      DomainRecord record;
      try {
        record = decodeDomain(domains.at(i), context);
      } catch (const std::runtime_error& error) {
        throw std::runtime_error(where + ": " + error.what());
      }
      checkDomain(record, where, state.domains);
      state.domains.push_back(std::move(record));
    }
    state.migration_throughput_bps =
        jsonInteger(in, "migration_throughput_bps", std::uint64_t{0});
    if (in.contains("cordoned_since"))
      state.cordoned_since = decodeTime(in.at("cordoned_since"), "cordoned_since");
    if (in.contains("cordon_allowed")) {
      const json& allowed = in.at("cordon_allowed");
      for (std::size_t i = 0; i < allowed.size(); ++i) {
        state.cordon_allowed.push_back(
            decodeOverride(allowed.at(i), "cordon_allowed[" + std::to_string(i) + "]"));
      }
    }
    if (in.contains("host_shutdown") && !in.at("host_shutdown").is_null())
      state.host_shutdown = decodeHostShutdown(in.at("host_shutdown"));
    if (in.contains("leftovers")) {
      const json& leftovers = in.at("leftovers");
      for (std::size_t i = 0; i < leftovers.size(); ++i) {
        const std::string where = "leftovers[" + std::to_string(i) + "]";
        LeftoverCheck check = decodeLeftover(leftovers.at(i), where);
        for (const LeftoverCheck& earlier : state.leftovers) {
          if (earlier.uuid == check.uuid && earlier.destination == check.destination)
            inconsistent(where, check.uuid + " on " + check.destination + " appears twice");
        }
        state.leftovers.push_back(std::move(check));
      }
    }
    checkPhase(state);
    return state;
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("engine state is malformed: ") + error.what());
  }
}

}  // namespace hostmaint::agent
