// hostmaintd: parse flags, load the configuration, run (agent/src/service/daemon.cpp).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <iostream>
#include <string>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/service/daemon.hpp"
#include "hostmaint/agent/service/journald_log.hpp"
#include "hostmaint/agent/service/start_checks.hpp"

int main(int argc, char** argv) {
  using namespace hostmaint;

  CLI::App app{"hostmaintd: makes planned maintenance of a KVM/libvirt host safe"};
  std::string config_path = agent::kDefaultConfigPath;
  bool check_config = false;
  std::string log_level;
  bool version = false;
  auto* config_option =
      app.add_option("--config", config_path, "configuration file (drop-ins in <file>.d/)");
  app.add_flag("--check-config", check_config, "check the configuration and exit");
  app.add_option("--log-level", log_level, "log level, overrides the configuration")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--version", version, "print the version and exit");
  std::string boot_id_file;
  app.add_option("--boot-id-file", boot_id_file,
                 "read this boot's id from FILE instead of /proc/sys/kernel/random/boot_id "
                 "(for tests of the host-shutdown path)");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "hostmaintd " << HOSTMAINT_VERSION << "\n";
    return 0;
  }

  service::DaemonOptions options;
  options.config_path = config_path;
  // The default file may be absent (all defaults); a file named on the command line must exist.
  options.config_must_exist = config_option->count() > 0;
  if (!log_level.empty()) options.log_level = service::parseLogLevel(log_level);
  if (!boot_id_file.empty()) options.boot_id_file = boot_id_file;

  agent::Config config;
  try {
    config = agent::loadConfig(options.config_path, options.config_must_exist);
  } catch (const agent::ConfigError& error) {
    std::cerr << "hostmaintd: " << error.what() << "\n";
    return 1;
  }

  if (check_config) {
    // What a start would refuse beyond the syntax: token files, directories, ...
    std::array<char, 256> name{};
    const std::string host = gethostname(name.data(), name.size() - 1) == 0 ? name.data() : "localhost";
    const auto problems = service::startCheckProblems(config, host);
    for (const auto& problem : problems) std::cerr << "hostmaintd: " << problem << "\n";
    if (!problems.empty()) return 1;
    std::cout << "configuration OK: " << service::describeSources(config) << "\n";
    return 0;
  }

  service::setUpLogging(service::runningUnderJournal(), spdlog::level::info);
  return service::runDaemon(std::move(config), options);
}
