// The controller protocol's documents (docs/controller-api.md): the desired
// state the agent polls from GET {base}/v1/hosts/{host}/maintenance, and the
// status report it sends with PUT {base}/v1/hosts/{host}/status.
//
// Parsing is strict: every field is type-checked, enums are closed, and a
// rejected document leaves the caller's last good state untouched. Unknown
// fields are ignored so a controller can add fields without breaking agents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent::controller {

// What the controller wants for this host.
enum class SessionState {
  none,         // no maintenance planned
  scheduled,    // a window is set; owners get notices, the drain starts in time
  maintenance,  // the window is open: drain now
  complete,     // maintenance is done: restore and return to idle
  cancelled,    // called off: undo what was done
};
std::string_view toString(SessionState state);
std::optional<SessionState> parseSessionState(std::string_view text);

struct DesiredState {
  SessionState state = SessionState::none;
  // Required for every state but `none`.
  std::optional<std::string> session_id;
  // Required for `scheduled` and `maintenance`; `removal` and `reason` live
  // in it (the document carries them at top level).
  std::optional<MaintenanceWindow> window;
  std::vector<std::string> destinations;
  // Owner acknowledgements by domain name or UUID.
  std::map<std::string, AckChoice> acks;
};
bool operator==(const DesiredState& a, const DesiredState& b);

// A desired-state document that cannot be used. what() names the field and
// why: "desired state: field 'window.end' (2026-11-25T04:00:00Z) is before
// field 'window.start' (2026-11-25T06:00:00Z)".
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t kDefaultMaxDesiredStateBytes = 1024 * 1024;

// Parses and validates a desired-state document. Throws ProtocolError.
DesiredState parseDesiredState(std::string_view body,
                               std::size_t max_bytes = kDefaultMaxDesiredStateBytes);
// The document form of a desired state (for tests, fakes and docs examples).
nlohmann::json desiredStateToJson(const DesiredState& state);

// Whether `next` may replace `previous_good`. Returns the reason it may not,
// or nothing when it may. While the host is draining, the session is pinned:
// a different session id (or the session vanishing with state `none`) is
// refused so a confused controller cannot swap the maintenance under a
// running drain; a controller ends a session with `cancelled` or `complete`
// and the same id.
std::optional<std::string> checkTransition(const DesiredState& previous_good,
                                           const DesiredState& next, bool draining);

// The status report body: the status document (statusToJson) plus
// "report_seq", a number that grows with every report so the controller can
// drop a report older than one it already has.
nlohmann::json makeStatusReport(const HostStatus& status, std::uint64_t report_seq);

}  // namespace hostmaint::agent::controller
