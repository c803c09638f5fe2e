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

// Logs each line through spdlog at its level.
void logLines(const std::vector<StatusLogLine>& lines);

// Lines describing what changed from `before` (nullopt: first snapshot) to
// `after`. Pure, so it is tested without a logger.
std::vector<StatusLogLine> describeStatusChanges(const std::optional<agent::HostStatus>& before,
                                                 const agent::HostStatus& after);

// Keeps the previous snapshot; record() returns the lines describing what
// changed since it, for the caller to log (logLines()) when it is free to.
class StatusChangeLog {
 public:
  std::vector<StatusLogLine> record(const agent::HostStatus& status);

 private:
  std::optional<agent::HostStatus> previous_;
};

}  // namespace hostmaint::service
