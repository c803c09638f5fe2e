// The agent's view of the controller between polls: the last good desired
// state and its ETag, and the controller's health (last error, failures in a
// row) for the status shown to the admin. A refused or failed poll never
// replaces the last good state. Pure: the caller does the I/O and passes in
// the results and the time.
#pragma once

#include <optional>
#include <string>

#include "hostmaint/agent/controller/controller_client.hpp"
#include "hostmaint/agent/controller/protocol.hpp"
#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent::controller {

// Shared with the status document (model.hpp), which shows it.
using ControllerHealth = agent::ControllerHealth;

class DesiredStateTracker {
 public:
  enum class Update {
    unchanged,  // 304, or a document equal to the last good one
    changed,    // a new desired state for the engine
    refused,    // valid document, but not acceptable now (checkTransition)
  };

  // Applies a successful fetch. `draining`: whether the host is draining now
  // (pins the session, see checkTransition).
  Update accept(const DesiredStateFetch& fetch, bool draining, TimePoint now);
  // Records a failed poll (transport, HTTP status, invalid document).
  void recordFailure(std::string error, TimePoint now);

  const std::optional<DesiredState>& lastGood() const { return last_good_; }
  // Send as If-None-Match: the ETag of the last good document, so a refused
  // document is fetched again (and its fix noticed) on the next poll.
  const std::optional<std::string>& etag() const { return etag_; }
  const ControllerHealth& health() const { return health_; }

 private:
  std::optional<DesiredState> last_good_;
  std::optional<std::string> etag_;
  ControllerHealth health_;
};

}  // namespace hostmaint::agent::controller
