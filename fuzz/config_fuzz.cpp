// hostmaintd.conf as an admin (or a broken deployment tool) might write it:
// any text must either load or fail with a ConfigError naming where.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hostmaint/agent/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const hostmaint::agent::Config config = hostmaint::agent::parseConfig(text, "fuzz.conf");
    // A loaded config's policy passed the same checks a domain's would.
    if (hostmaint::agent::validatePolicy(config.policy)) __builtin_trap();
  } catch (const hostmaint::agent::ConfigError&) {
    // Refused with a message: what should happen to bad input.
  }
  return 0;
}
