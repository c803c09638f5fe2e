// Checked readers of single TOML values for hostmaintd.conf: each returns
// the value or throws BadValue saying what was expected and what was found;
// the config reader adds the file, line and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "hostmaint/agent/config.hpp"

namespace hostmaint::agent::config_values {

// Thrown by value readers; turned into a ConfigError with the location.
struct BadValue {
  std::string what;
};

constexpr unsigned kMaxParallel = 64;
// 1 PiB: a reservation above any host's memory is a typo.
constexpr std::int64_t kMaxReservedMemoryMib = std::int64_t{1} << 30;

std::string_view typeName(const toml::node& node);
[[noreturn]] void wrongType(const toml::node& node, std::string_view expected);
std::string readString(const toml::node& node);
std::string readNonEmptyString(const toml::node& node);
bool readBool(const toml::node& node);
std::int64_t readInteger(const toml::node& node, std::int64_t min, std::int64_t max);
// A destination: "qemu+tls://b/system", or { uri = "...", migrate_uri = "...",
// max_parallel = N, reserved_memory_mib = M }; `position` names it in errors.
DestinationConfig readDestination(const toml::node& element, std::size_t position);
// A duration: a string like "30m" or "500ms", or an integer number of
// seconds (the same as in the policy table, so integers never mean ms).
std::chrono::milliseconds readDuration(const toml::node& node, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max);
// Notice estimates are shown in whole seconds; a fraction is rounded up.
std::chrono::seconds wholeSeconds(std::chrono::milliseconds value);
std::filesystem::path readAbsolutePath(const toml::node& node);
std::string readWord(const toml::node& node, std::span<const std::string_view> accepted);
// A fleet name or host name in the fleet's keys: no '/', no control bytes.
std::string readKeyWord(const toml::node& node);

}  // namespace hostmaint::agent::config_values
