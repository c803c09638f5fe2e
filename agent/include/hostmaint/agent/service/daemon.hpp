// hostmaintd's run: everything main() does after parsing flags and loading
// the config. Startup order (reconcile before claiming the bus name):
// directories → libvirt event loop on the io_context → hypervisor → journal
// → engine → wait (bounded) for the first inventory → recover → D-Bus object
// and name → READY=1. Then one thread runs the loop until SIGTERM/SIGINT.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "hostmaint/agent/config.hpp"

namespace hostmaint::service {

struct DaemonOptions {
  std::filesystem::path config_path;
  bool config_must_exist = false;  // an explicit --config
  // --log-level; overrides the config's, also across reloads.
  std::optional<spdlog::level::level_enum> log_level;
  // How long to wait for the first inventory before recovering anyway (the
  // engine reconciles when the hypervisor connects later).
  std::chrono::seconds connect_timeout{10};
};

// The files a configuration was read from, ", "-separated, or
// "(defaults, no file)"; for --check-config and the reload log line.
std::string describeSources(const agent::Config& config);

// "trace", "debug", "info", "warn", "error", "critical", "off".
std::optional<spdlog::level::level_enum> parseLogLevel(std::string_view text);

// Runs the daemon; returns the process exit status (0 after a clean stop,
// 1 when it could not start or lost the bus).
int runDaemon(agent::Config config, const DaemonOptions& options);

}  // namespace hostmaint::service
