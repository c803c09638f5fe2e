// The status document: one JSON rendering of HostStatus, used for
// {runtime_dir}/status.json, the D-Bus StatusJSON property, hostmaintctl
// --json and (later) the controller's status report. Schema: docs/status-json.md.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/notice.hpp"

namespace hostmaint::agent {

inline constexpr int kStatusSchemaVersion = 1;

nlohmann::json statusToJson(const HostStatus& status);
// status.json's `fleet` object, also the D-Bus FleetStatus property.
nlohmann::json fleetToJson(const FleetStatus& fleet);

// Renders statusToJson(status).dump(2), byte for byte, rendering again only
// the domains whose status changed since the last render(): with many
// domains an event changes a few, and each publication must not render
// them all (docs/architecture.md, "Runtime model").
class StatusRenderer {
 public:
  std::string render(const HostStatus& status);
  // The notices' texts it renders with, to share with the notice ledger and
  // D-Bus (NoticeTexts).
  const std::shared_ptr<NoticeTexts>& noticeTexts() const { return notices_; }

 private:
  struct Domain {
    DomainStatus status;
    std::string text;  // as it reads in the document: indented, no separator
  };
  std::unordered_map<std::string, Domain> domains_;  // by UUID
  std::shared_ptr<NoticeTexts> notices_ = std::make_shared<NoticeTexts>();
};

// RFC 3339 UTC with seconds, e.g. "2026-11-25T04:00:00Z".
std::string formatTime(TimePoint time);
// The same with milliseconds ("2026-12-01T13:05:01.123Z"), for timelines.
std::string formatTimeMs(TimePoint time);
// Accepts RFC 3339 / ISO 8601 ("2026-11-25T04:00:00Z", "+02:00" offsets,
// "2026-11-25T04:00" as UTC) with a year from kMinTimeYear to kMaxTimeYear.
std::optional<TimePoint> parseTime(std::string_view text);

// The years parseTime accepts. TimePoint counts nanoseconds and ends in
// 2262; within these years a time, the differences between two of them and
// a time plus any duration a policy allows (at most ten years) all fit.
inline constexpr int kMinTimeYear = 1970;
inline constexpr int kMaxTimeYear = 2199;

}  // namespace hostmaint::agent
