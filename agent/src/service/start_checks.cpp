#include "hostmaint/agent/service/start_checks.hpp"

#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "hostmaint/agent/fleet/etcd_client.hpp"
#include "hostmaint/agent/service/controller_link.hpp"
#include "hostmaint/agent/service/fleet_link.hpp"
#include "hostmaint/agent/service/notice_board.hpp"

namespace hostmaint::service {
namespace {

// The daemon creates a missing directory (with its parents) at start: that
// fails when the path, or the nearest part of it that exists, is not a
// directory.
void checkDirectory(const std::filesystem::path& dir, const char* key,
                    std::vector<std::string>& problems) {
  std::error_code error;
  std::filesystem::path existing = dir;
  while (!std::filesystem::exists(std::filesystem::symlink_status(existing, error)) &&
         existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  if (std::filesystem::is_directory(existing, error)) return;
  if (existing == dir) {
    problems.push_back(std::string(key) + " " + dir.string() + " is not a directory");
  } else {
    problems.push_back(std::string(key) + " " + dir.string() + " cannot be created: " +
                       existing.string() + " is not a directory");
  }
}

}  // namespace

std::vector<std::string> startCheckProblems(const agent::Config& config, const std::string& host) {
  std::vector<std::string> problems;
  checkDirectory(config.paths.state_dir, "paths.state_dir", problems);
  checkDirectory(config.paths.runtime_dir, "paths.runtime_dir", problems);
  // The same words the start would log before refusing.
  if (!config.controller.base_url.empty()) {
    try {
      ControllerLink::checkSettings(config.controller,
                                    config.controller.host_id.empty() ? host
                                                                      : config.controller.host_id);
    } catch (const std::exception& error) {
      problems.push_back("cannot set up the controller link to " + config.controller.base_url +
                         ": " + error.what());
    }
  }
  if (!config.notices.webhook_url.empty()) {
    try {
      NoticeWebhook::checkSettings(config.notices);
    } catch (const std::exception& error) {
      problems.push_back("cannot set up the notice webhook " + config.notices.webhook_url + ": " +
                         error.what());
    }
  }
  if (config.fleet.enabled()) {
    try {
      // Reads the password file as the start does; contacts nobody.
      agent::fleet::EtcdClient client(agent::fleet::etcdSettingsFrom(config.fleet));
    } catch (const std::exception& error) {
      problems.push_back("cannot set up the fleet link to etcd: " + std::string(error.what()));
    }
  }
  return problems;
}

}  // namespace hostmaint::service
