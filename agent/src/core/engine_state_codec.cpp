#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine_state.hpp"
#include "hostmaint/agent/status_json.hpp"

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

// Times are kept within what the clock's nanoseconds hold (until 2262):
// microseconds * 1000 must not wrap around into another century.
constexpr std::int64_t kMaxTimeUsec = 7'258'118'400'000'000;  // 2200-01-01T00:00:00Z

std::optional<TimePoint> decodeTime(const json& value, const std::string& field = "time") {
  if (value.is_null()) return std::nullopt;
  const auto usec = value.get<std::int64_t>();
  if (usec <= -kMaxTimeUsec || usec >= kMaxTimeUsec)
    inconsistent(field, std::to_string(usec) + " microseconds is out of range (before 2200 expected)");
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(usec)));
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
  policy.ack_timeout = std::chrono::seconds(in.at("ack_timeout_s").get<std::int64_t>());
  policy.ack_timeout_action = decodeEnum<AckTimeoutAction>(
      in.at("ack_timeout_action"), parseAckTimeoutAction, "ack_timeout_action");
  policy.lead_time = std::chrono::seconds(in.at("lead_time_s").get<std::int64_t>());
  policy.group = in.at("group").get<std::string>();
  policy.max_impacted_members = in.at("max_impacted_members").get<unsigned>();
  policy.recovery_time = std::chrono::seconds(in.at("recovery_time_s").get<std::int64_t>());
  policy.priority = in.at("priority").get<int>();
  policy.shutdown_timeout = std::chrono::seconds(in.at("shutdown_timeout_s").get<std::int64_t>());
  policy.force_stop = in.at("force_stop").get<bool>();
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
      {"ack_reason", v.ack_reason},
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
  v.priority = in.at("priority").get<int>();
  v.ack_required = in.at("ack_required").get<bool>();
  if (!in.at("ack").is_null()) {
    v.ack = decodeEnum<AckChoice>(in.at("ack"), parseAckChoice, "ack");
  }
  // Added after version 1 was first written: absent in older journals.
  v.ack_reason = in.value("ack_reason", std::string());
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
  record.memory_kib = in.value("memory_kib", std::uint64_t{0});
  record.interrupted_migrations = in.value("interrupted_migrations", 0u);
  return record;
}

// A domain the engine could not have written: no identity, twice in the
// list, or acting without an action.
void checkDomain(const DomainRecord& record, const std::string& where,
                 const std::vector<DomainRecord>& before) {
  if (record.view.uuid.empty()) inconsistent(where + ".uuid", "is empty");
  for (const DomainRecord& other : before)
    if (other.view.uuid == record.view.uuid)
      inconsistent(where + ".uuid", "'" + record.view.uuid + "' is listed twice");
  if (record.view.stage == DomainStage::acting && !record.view.action)
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
    const int version = in.at("version").get<int>();
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
    const json& domains = in.at("domains");
    for (std::size_t i = 0; i < domains.size(); ++i) {
      const std::string where = "domains[" + std::to_string(i) + "]";
      DomainRecord record;
      try {
        record = decodeDomain(domains.at(i));
      } catch (const std::runtime_error& error) {
        throw std::runtime_error(where + ": " + error.what());
      }
      checkDomain(record, where, state.domains);
      state.domains.push_back(std::move(record));
    }
    state.migration_throughput_bps = in.value("migration_throughput_bps", std::uint64_t{0});
    checkPhase(state);
    return state;
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("engine state is malformed: ") + error.what());
  }
}

}  // namespace hostmaint::agent
