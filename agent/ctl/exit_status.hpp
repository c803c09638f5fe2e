// hostmaintctl's exit codes and the one error type that carries them from
// wherever a failure is understood up to main().
#pragma once

#include <stdexcept>
#include <string>

namespace hostmaint::ctl {

// Documented in docs/hostmaintctl.md and in `hostmaintctl --help`; scripts
// (scripts/demo, the integration tests, operators' runbooks) rely on them.
enum class ExitStatus : int {
  success = 0,
  refused = 1,           // the daemon refused the request (its message is printed)
  usage = 2,             // bad command line, unparsable WHEN, ...
  unreachable = 3,       // bus unreachable, daemon not running or gone away
  wait_timed_out = 4,    // `wait` did not see the condition in time
  access_denied = 5,     // the bus or the daemon denied the call (need root)
};

inline constexpr int toInt(ExitStatus status) { return static_cast<int>(status); }

class CtlError : public std::runtime_error {
 public:
  CtlError(ExitStatus status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  ExitStatus status() const { return status_; }

 private:
  ExitStatus status_;
};

}  // namespace hostmaint::ctl
