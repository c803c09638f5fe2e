#include "hostmaint/agent/controller/protocol.hpp"

#include <algorithm>
#include <set>

#include "hostmaint/agent/caller_text.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent::controller {

namespace {

using nlohmann::json;

// Limits that keep a hostile document from growing our state or logs.
constexpr int kMaxNesting = 16;
constexpr std::size_t kMaxSessionIdLength = 128;
constexpr std::size_t kMaxReasonLength = 1024;
constexpr std::size_t kMaxNameLength = 255;
constexpr std::size_t kMaxDestinations = 256;
constexpr std::size_t kMaxAcks = 10000;

[[noreturn]] void reject(const std::string& why) { throw ProtocolError("desired state: " + why); }

std::string typeName(const json& value) {
  if (value.is_number()) return "number";
  return value.type_name();
}

// A field's value in quotes, cut short and with control characters masked,
// for error messages that quote what the controller sent.
std::string quotedValue(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out = "'";
  for (char c : text.substr(0, kMax)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (text.size() > kMax) out += "...";
  return out + "'";
}

bool hasControlCharacters(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

const json* field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string stringField(const json& value, const std::string& name, std::size_t max_length) {
  if (!value.is_string()) {
    reject("field '" + name + "' must be a string, got " + typeName(value));
  }
  const auto& text = value.get_ref<const std::string&>();
  if (text.size() > max_length) {
    reject("field '" + name + "' is " + std::to_string(text.size()) +
           " characters long (at most " + std::to_string(max_length) + ")");
  }
  if (hasControlCharacters(text)) {
    reject("field '" + name + "' contains control characters");
  }
  return text;
}

std::string nameField(const json& value, const std::string& name) {
  std::string text = stringField(value, name, kMaxNameLength);
  if (text.empty()) reject("field '" + name + "' must not be empty");
  return text;
}

TimePoint timeField(const json& window, const char* key) {
  const std::string name = std::string("window.") + key;
  const json* value = field(window, key);
  if (value == nullptr) reject("field '" + name + "' is missing");
  const std::string text = stringField(*value, name, 64);
  const auto time = parseTime(text);
  if (!time) reject("field '" + name + "' is not an RFC 3339 time: " + quotedValue(text));
  return *time;
}

struct DepthExceeded {};

json parseJson(std::string_view body, std::size_t max_bytes) {
  if (body.size() > max_bytes) {
    reject("document is " + std::to_string(body.size()) + " bytes, more than the " +
           std::to_string(max_bytes) + " byte limit");
  }
  // Bound the nesting so "[[[[...]]]]" cannot exhaust memory or stack.
  const json::parser_callback_t limit_depth = [](int depth, json::parse_event_t, json&) {
    if (depth > kMaxNesting) throw DepthExceeded{};
    return true;
  };
  try {
    return json::parse(body.begin(), body.end(), limit_depth);
  } catch (const DepthExceeded&) {
    reject("document nests deeper than " + std::to_string(kMaxNesting) + " levels");
  } catch (const json::exception& error) {
    // parse_error, and out_of_range for a number beyond a double ("1e999").
    reject(std::string("not valid JSON: ") + error.what());
  }
}

}  // namespace

std::string_view toString(SessionState state) {
  switch (state) {
    case SessionState::none: return "none";
    case SessionState::scheduled: return "scheduled";
    case SessionState::maintenance: return "maintenance";
    case SessionState::complete: return "complete";
    case SessionState::cancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<SessionState> parseSessionState(std::string_view text) {
  for (auto state : {SessionState::none, SessionState::scheduled, SessionState::maintenance,
                     SessionState::complete, SessionState::cancelled}) {
    if (toString(state) == text) return state;
  }
  return std::nullopt;
}

bool operator==(const DesiredState& a, const DesiredState& b) {
  const auto same_window = [](const MaintenanceWindow& x, const MaintenanceWindow& y) {
    return x.start == y.start && x.end == y.end && x.removal == y.removal && x.reason == y.reason;
  };
  if (a.window.has_value() != b.window.has_value()) return false;
  if (a.window && !same_window(*a.window, *b.window)) return false;
  return a.state == b.state && a.session_id == b.session_id &&
         a.destinations == b.destinations && a.acks == b.acks;
}

DesiredState parseDesiredState(std::string_view body, std::size_t max_bytes) {
  const json document = parseJson(body, max_bytes);
  if (!document.is_object()) reject("document must be a JSON object, got " + typeName(document));

  DesiredState desired;

  const json* state = field(document, "state");
  if (state == nullptr) reject("field 'state' is missing");
  const std::string state_text = stringField(*state, "state", 64);
  const auto parsed_state = parseSessionState(state_text);
  if (!parsed_state) {
    reject("field 'state' has unknown value " + quotedValue(state_text) +
           " (expected none, scheduled, maintenance, complete or cancelled)");
  }
  desired.state = *parsed_state;
  const std::string for_state = " (required when state is '" + state_text + "')";

  if (const json* id = field(document, "session_id")) {
    desired.session_id = stringField(*id, "session_id", kMaxSessionIdLength);
    if (desired.session_id->empty()) reject("field 'session_id' must not be empty");
  } else if (desired.state != SessionState::none) {
    reject("field 'session_id' is missing" + for_state);
  }

  bool removal = false;
  if (const json* value = field(document, "removal")) {
    if (!value->is_boolean()) reject("field 'removal' must be a boolean, got " + typeName(*value));
    removal = value->get<bool>();
  }
  std::string reason;
  if (const json* value = field(document, "reason")) {
    reason = stringField(*value, "reason", kMaxReasonLength);
    // The same rule as for reasons over D-Bus, C1 controls included.
    if (const auto problem = callerTextProblem(reason, kMaxReasonLength))
      reject("field 'reason' " + *problem);
  }

  if (const json* window = field(document, "window")) {
    if (!window->is_object()) reject("field 'window' must be an object, got " + typeName(*window));
    MaintenanceWindow parsed;
    parsed.start = timeField(*window, "start");
    parsed.end = timeField(*window, "end");
    if (parsed.end <= parsed.start) {
      reject("field 'window.end' (" + formatTime(parsed.end) + ") is not after field " +
             "'window.start' (" + formatTime(parsed.start) + ")");
    }
    parsed.removal = removal;
    parsed.reason = std::move(reason);
    desired.window = std::move(parsed);
  } else if (desired.state == SessionState::scheduled ||
             desired.state == SessionState::maintenance) {
    reject("field 'window' is missing" + for_state);
  }

  if (const json* destinations = field(document, "destinations")) {
    if (!destinations->is_array()) {
      reject("field 'destinations' must be an array of strings, got " + typeName(*destinations));
    }
    if (destinations->size() > kMaxDestinations) {
      reject("field 'destinations' has " + std::to_string(destinations->size()) +
             " entries (at most " + std::to_string(kMaxDestinations) + ")");
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < destinations->size(); ++i) {
      std::string name = nameField((*destinations)[i], "destinations[" + std::to_string(i) + "]");
      if (!seen.insert(name).second) {
        reject("field 'destinations' lists " + quotedValue(name) + " twice");
      }
      desired.destinations.push_back(std::move(name));
    }
  }

  if (const json* acks = field(document, "acks")) {
    if (!acks->is_object()) {
      reject("field 'acks' must be an object mapping domain to \"move\" or \"keep\", got " +
             typeName(*acks));
    }
    if (acks->size() > kMaxAcks) {
      reject("field 'acks' has " + std::to_string(acks->size()) + " entries (at most " +
             std::to_string(kMaxAcks) + ")");
    }
    for (const auto& [domain, choice] : acks->items()) {
      if (domain.empty() || domain.size() > kMaxNameLength || hasControlCharacters(domain)) {
        reject("field 'acks' has an invalid domain key " + quotedValue(domain));
      }
      const std::string name = "acks." + domain;
      const std::string text = stringField(choice, name, 16);
      const auto parsed = parseAckChoice(text);
      if (!parsed) {
        reject("field '" + name + "' has unknown value " + quotedValue(text) +
               " (expected move or keep)");
      }
      desired.acks.emplace(domain, *parsed);
    }
  }
  return desired;
}

nlohmann::json desiredStateToJson(const DesiredState& state) {
  json document = {{"state", toString(state.state)}};
  document["session_id"] = state.session_id ? json(*state.session_id) : json(nullptr);
  if (state.window) {
    document["window"] = {{"start", formatTime(state.window->start)},
                          {"end", formatTime(state.window->end)}};
    document["removal"] = state.window->removal;
    document["reason"] = state.window->reason;
  }
  document["destinations"] = state.destinations;
  json acks = json::object();
  for (const auto& [domain, choice] : state.acks) acks[domain] = toString(choice);
  document["acks"] = std::move(acks);
  return document;
}

std::optional<std::string> checkTransition(const DesiredState& previous_good,
                                           const DesiredState& next, bool draining) {
  if (!draining || !previous_good.session_id) return std::nullopt;
  const std::string& pinned = *previous_good.session_id;
  if (!next.session_id) {
    return "controller dropped session '" + pinned + "' (state '" +
           std::string(toString(next.state)) +
           "') while the host is draining; keeping it (end a session with state "
           "'cancelled' or 'complete')";
  }
  if (*next.session_id != pinned) {
    return "controller changed the session id from '" + pinned + "' to " +
           "'" + *next.session_id + "' while the host is draining; keeping session '" + pinned +
           "'";
  }
  return std::nullopt;
}

nlohmann::json makeStatusReport(const HostStatus& status, std::uint64_t report_seq) {
  json report = statusToJson(status);
  report["report_seq"] = report_seq;
  return report;
}

}  // namespace hostmaint::agent::controller
