// What hostmaintctl shows of a fleet (docs/fleet.md): the `fleet` line of
// `hostmaintctl status` (from the status document), and `hostmaintctl fleet
// status`, as a table and as a document (from the view read from etcd):
// every host's phase, slot, readiness and progress, the groups across hosts
// against their limits, and the peers as migration destinations.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hostmaint/agent/fleet/fleet.hpp"
#include "render.hpp"

namespace hostmaint::ctl {

// The `fleet` line of `status`, from status.json's `fleet`: "prod as hv-17:
// reachable; holds slot 0; 3 hosts, 1 in maintenance".
std::string renderFleetLine(const nlohmann::json& fleet, const RenderOptions& options);

// The view as a document: {fleet, hosts: [...], slots, hosts_in_maintenance,
// schedule, done, groups, peers, malformed}; `groups` and `peers` are shaped
// as in status.json's `fleet`, the peers' `incoming` counting every source.
nlohmann::json fleetViewJson(const agent::fleet::FleetView& view, const std::string& fleet);
// One line per host: HOST PHASE SLOT READY PROGRESS DOMAIN NOTE, the slots
// and the rolling schedule and its progress; then one line per group
// (GROUP IMPACTED MEMBERS IMPACTS WHERE) and per peer offering itself as a
// destination (PEER FREE INCOMING CORDONED PHASE NOTE).
std::vector<std::string> renderFleetTable(const agent::fleet::FleetView& view, TimePoint now);

}  // namespace hostmaint::ctl
