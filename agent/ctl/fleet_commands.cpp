#include "fleet_commands.hpp"

#include <unistd.h>

#include <iostream>
#include <sstream>

#include "exit_status.hpp"
#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/fleet/etcd_client.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "render.hpp"

namespace hostmaint::ctl {
namespace {

namespace fl = agent::fleet;

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

struct FleetAccess {
  agent::FleetConfig config;
  fl::FleetKeys keys;
  fl::EtcdClient etcd;
};

FleetAccess openFleet(const std::filesystem::path& path) {
  agent::Config config;
  try {
    config = agent::loadConfig(path, false);
  } catch (const agent::ConfigError& error) {
    throw CtlError(ExitStatus::usage, error.what());
  }
  if (!config.fleet.enabled()) {
    throw CtlError(ExitStatus::refused, "no [fleet] endpoints in " +
                                            (config.sources.empty() ? path.string()
                                                                    : config.sources.front().string()) +
                                            ": this host is not part of a fleet (docs/fleet.md)");
  }
  try {
    return FleetAccess{config.fleet, fl::FleetKeys(config.fleet.prefix, config.fleet.name),
                       fl::EtcdClient(fl::etcdSettingsFrom(config.fleet))};
  } catch (const fl::EtcdError& error) {
    throw CtlError(ExitStatus::usage, error.what());
  }
}

[[noreturn]] void fleetFailed(const fl::EtcdError& error) {
  const ExitStatus status = error.failure() == fl::EtcdFailure::unreachable
                                ? ExitStatus::unreachable
                            : error.failure() == fl::EtcdFailure::auth ? ExitStatus::access_denied
                                                                       : ExitStatus::refused;
  throw CtlError(status, std::string("the fleet is unreachable or refused: ") + error.what());
}

std::string nowId(TimePoint now) {
  // "20261201T091500Z": sortable, one schedule per second is plenty.
  std::string stamp = agent::formatTime(now);  // 2026-12-01T09:15:00Z
  std::string id;
  for (char c : stamp) {
    if (c != '-' && c != ':') id += c;
  }
  return id;
}

}  // namespace

fl::RollingSchedule scheduleFrom(const FleetScheduleArguments& arguments, TimePoint now) {
  fl::RollingSchedule schedule;
  schedule.all = arguments.all;
  schedule.hosts = splitList(arguments.hosts);
  if (schedule.all == !schedule.hosts.empty()) {
    throw CtlError(ExitStatus::usage, "give either --hosts h1,h2,... or --all");
  }
  for (const std::string& host : schedule.hosts) {
    if (host.find('/') != std::string::npos) {
      throw CtlError(ExitStatus::usage, "host name '" + printable(host) + "' contains '/'");
    }
  }
  if (arguments.max_concurrent == 0) {
    throw CtlError(ExitStatus::usage, "--max-concurrent must be at least 1");
  }
  schedule.max_concurrent = arguments.max_concurrent;
  // Always a window: a schedule whose end has passed is not followed any
  // more, so a host added to the fleet later does not run an old one.
  schedule.window_start = now;
  schedule.window_end = now + std::chrono::hours(24);
  if (!arguments.window.empty()) {
    const std::size_t slash = arguments.window.find('/');
    if (slash == std::string::npos) {
      throw CtlError(ExitStatus::usage, "--window '" + printable(arguments.window) +
                                            "' must be START/END, each a WHEN (now/+8h)");
    }
    const TimePoint start = parseWhen(arguments.window.substr(0, slash), now);
    const TimePoint end = parseWhen(arguments.window.substr(slash + 1), now);
    if (end <= start) throw CtlError(ExitStatus::usage, "--window ends before it starts");
    schedule.window_start = start;
    schedule.window_end = end;
  }
  schedule.reason = arguments.reason;
  schedule.created_at = now;
  schedule.id = nowId(now);
  return schedule;
}

int runFleetStatus(const std::filesystem::path& config, bool as_json) {
  FleetAccess fleet = openFleet(config);
  fl::FleetView view;
  try {
    view = fl::readFleetView(fleet.etcd, fleet.keys);
  } catch (const fl::EtcdError& error) {
    fleetFailed(error);
  }
  if (as_json) {
    std::cout << fleetViewJson(view, fleet.config.name).dump(2) << "\n";
  } else {
    std::cout << "fleet " << printable(fleet.config.name) << " (etcd " << fleet.etcd.endpoint()
              << ")\n";
    for (const std::string& line : renderFleetTable(view, Clock::now())) std::cout << line << "\n";
  }
  return toInt(ExitStatus::success);
}

int runFleetSchedule(const std::filesystem::path& config, const FleetScheduleArguments& arguments) {
  fl::RollingSchedule schedule = scheduleFrom(arguments, Clock::now());
  schedule.created_by = "uid " + std::to_string(::getuid());
  FleetAccess fleet = openFleet(config);
  try {
    fleet.etcd.put(fleet.keys.schedule(), fl::encodeSchedule(schedule));
  } catch (const fl::EtcdError& error) {
    fleetFailed(error);
  }
  std::cout << "rolling schedule " << schedule.id << " written for "
            << (schedule.all ? std::string("all hosts") : printable(arguments.hosts))
            << ", at most " << schedule.max_concurrent << " at once\n";
  return toInt(ExitStatus::success);
}

}  // namespace hostmaint::ctl
