// The controller's desired-state document (GET .../maintenance): strict
// parsing, ProtocolError for anything unusable, and a document it accepts
// survives its own serialisation unchanged (the serialisation writes whole
// seconds, so that part is checked for windows in whole seconds).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hostmaint/agent/controller/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::agent::controller;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  DesiredState parsed;
  try {
    parsed = parseDesiredState(body);
  } catch (const ProtocolError&) {
    return 0;
  }
  (void)checkTransition(parsed, DesiredState{}, true);
  (void)checkTransition(DesiredState{}, parsed, true);
  const auto whole = [](hostmaint::agent::TimePoint t) {
    return t == std::chrono::floor<std::chrono::seconds>(t);
  };
  if (parsed.window && !(whole(parsed.window->start) && whole(parsed.window->end))) return 0;
  const DesiredState again = parseDesiredState(desiredStateToJson(parsed).dump());
  if (!(again == parsed)) __builtin_trap();
  return 0;
}
