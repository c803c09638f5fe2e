// The journal (state.json) as a restarted hostmaintd reads it: a truncated,
// edited or corrupted file must be refused with std::runtime_error, and a
// document it accepts encodes to one that decodes to the same encoding.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "engine_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::agent;
  const std::string_view document(reinterpret_cast<const char*>(data), size);
  EngineState state;
  try {
    state = decodeEngineState(document);
  } catch (const std::runtime_error&) {
    return 0;
  }
  const std::string encoded = encodeEngineState(state);
  if (encodeEngineState(decodeEngineState(encoded)) != encoded) __builtin_trap();
  return 0;
}
