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

json encodePolicy(const DomainPolicy& policy) {
  return {
      {"maintenance_action", toString(policy.maintenance_action)},
      {"removal_action", toString(policy.removal_action)},
      {"fallback_action", toString(policy.fallback_action)},
      {"removal_fallback_action", toString(policy.removal_fallback_action)},
      {"host_shutdown_action", toString(policy.host_shutdown_action)},
      {"ack_required", policy.ack_required},
      {"ack_timeout_s", policy.ack_timeout.count()},
      {"ack_timeout_action", toString(policy.ack_timeout_action)},
      {"lead_time_s", policy.lead_time.count()},
      {"group", policy.group},
      {"max_impacted_members", policy.max_impacted_members},
      {"recovery_time_s", policy.recovery_time.count()},
      {"priority", policy.priority},
      {"shutdown_timeout_s", policy.shutdown_timeout.count()},
      {"force_stop", policy.force_stop},
      {"migration_max_downtime_ms", policy.migration_max_downtime.count()},
      {"migration_downtime_steps", policy.migration_downtime_steps},
      {"migration_downtime_step_delay_s", policy.migration_downtime_step_delay.count()},
      {"migration_bandwidth_mib_s", policy.migration_bandwidth_mib_s},
      {"migration_auto_converge", policy.migration_auto_converge},
      {"migration_post_copy", policy.migration_post_copy},
      {"migration_completion_timeout_per_gib_s",
       policy.migration_completion_timeout_per_gib.count()},
      {"migration_progress_timeout_s", policy.migration_progress_timeout.count()},
      {"migration_parallel_connections", policy.migration_parallel_connections},
  };
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

// Version 1 keeps each domain's stage as its name plus the words the status
// shows (result, detail); the typed stage is rebuilt from them and from the
// plan's times. Waits and running actions carry nothing that outlives the
// process: they are evaluated again after a restart.
json encodeDomain(const DomainRecord& record) {
  const DomainText text = describeDomain(record);
  json out = {
      {"uuid", record.uuid},
      {"name", record.name},
      {"stage", toString(record.stage())},
      {"action", record.action ? json(toString(*record.action)) : json(nullptr)},
      {"fallback_used", record.fallback_used},
      {"result", text.result},
      {"detail", text.detail},
      {"group", record.policy.group},
      {"priority", record.policy.priority},
      {"ack_required", record.policy.ack_required},
      {"ack", record.ack ? json(toString(*record.ack)) : json(nullptr)},
      {"ack_reason", record.ack_reason},
      {"ack_deadline", encodeTime(record.ack_deadline)},
      {"earliest_start", encodeTime(record.earliest_start)},
      {"destination", encodeString(record.destination)},
      {"policy_error", record.policy_error},
      {"policy", encodePolicy(record.policy)},
      {"fallback", record.fallback ? json(toString(*record.fallback)) : json(nullptr)},
      {"note", record.note},
      {"ack_time", encodeTime(record.ack_time)},
      {"acting_kind", record.runningKind() ? json(hv::toString(*record.runningKind()))
                                           : json(nullptr)},
      {"needs_restore", record.needs_restore},
      {"started_at", encodeTime(record.started_at)},
      {"finished_at", encodeTime(record.finished_at)},
      {"memory_kib", record.memory_kib},
      {"interrupted_migrations", record.interrupted_migrations},
  };
  // Added after version 1 was first written: only when there is something.
  if (record.destination_failures > 0) {
    out["destination_failures"] = record.destination_failures;
    out["failed_destinations"] = record.failed_destinations;
    out["retry_at"] = encodeTime(record.retry_at);
    out["retry_reason"] = record.retry_reason;
  }
  return out;
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

std::string encodeDomainRecord(const DomainRecord& record) { return encodeDomain(record).dump(); }

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
