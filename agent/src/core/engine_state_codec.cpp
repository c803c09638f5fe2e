#include <chrono>
#include <cstdint>
#include <string>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine_state.hpp"
#include "json_integer.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent {

namespace {

using json = nlohmann::json;

// Microseconds since the Unix epoch: exact and independent of time zones.
json encodeTime(const std::optional<TimePoint>& time) {
  if (!time) return nullptr;
  return std::chrono::duration_cast<std::chrono::microseconds>(time->time_since_epoch()).count();
}

std::optional<TimePoint> decodeTime(const json& value, std::string_view what) {
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
  const auto micros = jsonInteger<std::int64_t>(value, what);
  if (micros < kEarliest || micros >= kLatest) {
    throw std::runtime_error(std::string(what) + ": time " + std::to_string(micros) +
                             " is out of range");
  }
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros)));
}

TimePoint decodeRequiredTime(const json& value, std::string_view what) {
  if (value.is_null()) throw std::runtime_error(std::string(what) + " must not be null");
  return *decodeTime(value, what);
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
  // Every journaled policy passed these checks; one that fails them now was
  // edited or corrupted, and its durations could overflow the deadlines.
  if (auto problem = validatePolicy(policy)) throw std::runtime_error("policy: " + *problem);
  return policy;
}

json encodeDomain(const DomainRecord& record) {
  const DomainStatus& v = record.view;
  json out = {
      {"uuid", v.uuid},
      {"name", v.name},
      {"stage", toString(v.stage)},
      {"action", v.action ? json(toString(*v.action)) : json(nullptr)},
      {"fallback_used", v.fallback_used},
      {"result", v.result},
      {"detail", v.detail},
      {"group", v.group},
      {"priority", v.priority},
      {"ack_required", v.ack_required},
      {"ack", v.ack ? json(toString(*v.ack)) : json(nullptr)},
      {"ack_deadline", encodeTime(v.ack_deadline)},
      {"earliest_start", encodeTime(v.earliest_start)},
      {"destination", encodeString(v.destination)},
      {"policy_error", v.policy_error},
      {"policy", encodePolicy(record.policy)},
      {"fallback", record.fallback ? json(toString(*record.fallback)) : json(nullptr)},
      {"note", record.note},
      {"ack_time", encodeTime(record.ack_time)},
      {"acting_kind", record.acting_kind ? json(hv::toString(*record.acting_kind)) : json(nullptr)},
      {"needs_restore", record.needs_restore},
      {"started_at", encodeTime(record.started_at)},
      {"finished_at", encodeTime(record.finished_at)},
      {"memory_kib", record.memory_kib},
      {"interrupted_migrations", record.interrupted_migrations},
  };
  return out;
}

DomainRecord decodeDomain(const json& in) {
  DomainRecord record;
  DomainStatus& v = record.view;
  v.uuid = in.at("uuid").get<std::string>();
  v.name = in.at("name").get<std::string>();
  v.stage = decodeEnum<DomainStage>(in.at("stage"), parseDomainStage, "stage");
  if (!in.at("action").is_null()) {
    v.action = decodeEnum<MaintenanceAction>(in.at("action"), parseMaintenanceAction, "action");
  }
  v.fallback_used = in.at("fallback_used").get<bool>();
  v.result = in.at("result").get<std::string>();
  v.detail = in.at("detail").get<std::string>();
  v.group = in.at("group").get<std::string>();
  v.priority = jsonInteger<int>(in.at("priority"), "priority");
  v.ack_required = in.at("ack_required").get<bool>();
  if (!in.at("ack").is_null()) {
    v.ack = decodeEnum<AckChoice>(in.at("ack"), parseAckChoice, "ack");
  }
  v.ack_deadline = decodeTime(in.at("ack_deadline"), "ack_deadline");
  v.earliest_start = decodeTime(in.at("earliest_start"), "earliest_start");
  v.destination = decodeString(in.at("destination"));
  v.policy_error = in.at("policy_error").get<std::string>();
  record.policy = decodePolicy(in.at("policy"));
  if (!in.at("fallback").is_null()) {
    record.fallback =
        decodeEnum<MaintenanceAction>(in.at("fallback"), parseMaintenanceAction, "fallback");
  }
  record.note = in.at("note").get<std::string>();
  record.ack_time = decodeTime(in.at("ack_time"), "ack_time");
  if (!in.at("acting_kind").is_null()) {
    record.acting_kind =
        decodeEnum<hv::ActionKind>(in.at("acting_kind"), parseActionKind, "acting_kind");
  }
  record.needs_restore = in.at("needs_restore").get<bool>();
  record.started_at = decodeTime(in.at("started_at"), "started_at");
  record.finished_at = decodeTime(in.at("finished_at"), "finished_at");
  // Added after version 1 was first written: absent in older journals.
  record.memory_kib = jsonInteger(in, "memory_kib", std::uint64_t{0});
  record.interrupted_migrations = jsonInteger(in, "interrupted_migrations", 0u);
  return record;
}

}  // namespace

std::string encodeEngineState(const EngineState& state) {
  json domains = json::array();
  for (const DomainRecord& record : state.domains) domains.push_back(encodeDomain(record));
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
      {"domains", domains},
      {"migration_throughput_bps", state.migration_throughput_bps},
  };
  return out.dump(1);
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
      window.start = decodeRequiredTime(w.at("start"), "window.start");
      window.end = decodeRequiredTime(w.at("end"), "window.end");
      window.removal = w.at("removal").get<bool>();
      window.reason = w.at("reason").get<std::string>();
      state.window = window;
    }
    state.destinations = in.at("destinations").get<std::vector<std::string>>();
    state.scheduled_at = decodeTime(in.at("scheduled_at"), "scheduled_at");
    for (const json& domain : in.at("domains")) state.domains.push_back(decodeDomain(domain));
    state.migration_throughput_bps =
        jsonInteger(in, "migration_throughput_bps", std::uint64_t{0});
    return state;
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("engine state is malformed: ") + error.what());
  }
}

}  // namespace hostmaint::agent
