// hostmaintctl's WHEN arguments and the daemon timestamps it reads: a bad
// one is a usage error (CtlError), never a crash or a wrapped-around time.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exit_status.hpp"
#include "when.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::ctl;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // A fixed "now" keeps runs reproducible: 2026-11-25T10:00:00Z.
  const TimePoint now{std::chrono::seconds(1795600800)};
  try {
    const TimePoint when = parseWhen(text, now);
    (void)formatRelative(when, now);
    (void)formatInstant(when, false);
  } catch (const CtlError&) {
  }
  TimePoint stamp;
  if (parseTimestamp(text, stamp)) (void)formatRelative(stamp, now);
  return 0;
}
