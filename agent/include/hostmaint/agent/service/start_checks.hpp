// The checks hostmaintd makes at start that depend only on its configuration
// and the files it names, so that `hostmaintd --check-config` refuses what a
// start would refuse: token files (mode, owner, content), controller and
// webhook client settings, and the state and runtime directories.
#pragma once

#include <string>
#include <vector>

#include "hostmaint/agent/config.hpp"

namespace hostmaint::service {

// Every problem found, each naming the key or file; empty when a start would
// get past them. `host` is the host name (the controller's default host id).
// Creates nothing and connects to nothing.
std::vector<std::string> startCheckProblems(const agent::Config& config, const std::string& host);

}  // namespace hostmaint::service
