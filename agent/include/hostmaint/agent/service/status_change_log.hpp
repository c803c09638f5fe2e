// Turns successive status snapshots into log lines, so the journal tells the
// story of a maintenance (phase changes, each domain's stage, readiness)
// without the engine logging from inside its state machine.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <spdlog/common.h>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

struct StatusLogLine {
  spdlog::level::level_enum level = spdlog::level::info;
  std::string text;
};

// Lines describing what changed from `before` (nullopt: first snapshot) to
// `after`. Pure, so it is tested without a logger.
std::vector<StatusLogLine> describeStatusChanges(const std::optional<agent::HostStatus>& before,
                                                 const agent::HostStatus& after);

// Keeps the previous snapshot and logs the differences through spdlog.
class StatusChangeLog {
 public:
  void record(const agent::HostStatus& status);

 private:
  std::optional<agent::HostStatus> previous_;
};

}  // namespace hostmaint::service
