// hostmaintctl fleet: the fleet's view and rolling schedules, read from and
// written to etcd directly with the [fleet] settings of hostmaintd's
// configuration (docs/fleet.md, docs/hostmaintctl.md). Direct, not through
// the local hostmaintd: the fleet's view is etcd's, and it must be readable
// when this host's daemon is down. What it prints: fleet_render.hpp.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet_render.hpp"
#include "hostmaint/agent/fleet/fleet.hpp"
#include "when.hpp"

namespace hostmaint::ctl {

struct FleetScheduleArguments {
  std::string hosts;  // "h1,h2" (--hosts)
  bool all = false;   // --all
  unsigned max_concurrent = 1;
  std::string window;  // "START/END", each a WHEN; empty: now, for 24h
  std::string reason;
};

// Parses --hosts and --window into a schedule (id and creation left to the
// caller). Throws CtlError(usage).
agent::fleet::RollingSchedule scheduleFrom(const FleetScheduleArguments& arguments, TimePoint now);

int runFleetStatus(const std::filesystem::path& config, bool json);
int runFleetSchedule(const std::filesystem::path& config, const FleetScheduleArguments& arguments);

}  // namespace hostmaint::ctl
