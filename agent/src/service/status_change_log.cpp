#include "hostmaint/agent/service/status_change_log.hpp"

#include <map>

#include <spdlog/spdlog.h>

#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {
namespace {

spdlog::level::level_enum levelFor(agent::DomainStage stage) {
  switch (stage) {
    case agent::DomainStage::failed:
    case agent::DomainStage::restore_failed: return spdlog::level::err;
    case agent::DomainStage::blocked: return spdlog::level::warn;
    default: return spdlog::level::info;
  }
}

std::string domainLine(const agent::DomainStatus& domain, std::string_view from) {
  std::string line = "domain '" + domain.name + "': ";
  if (!from.empty()) line += std::string(from) + " -> ";
  line += std::string(agent::toString(domain.stage));
  if (domain.action) line += " [" + std::string(agent::toString(*domain.action)) + "]";
  const bool finished = domain.stage == agent::DomainStage::done ||
                        domain.stage == agent::DomainStage::restored ||
                        domain.stage == agent::DomainStage::left;
  const std::string& why = finished && !domain.result.empty() ? domain.result : domain.detail;
  if (!why.empty()) line += ": " + why;
  return line;
}

}  // namespace

std::vector<StatusLogLine> describeStatusChanges(const std::optional<agent::HostStatus>& before,
                                                 const agent::HostStatus& after) {
  std::vector<StatusLogLine> lines;
  const bool phase_changed = !before || before->phase != after.phase;
  if (phase_changed) {
    std::string text = "phase " + std::string(agent::toString(after.phase));
    if (before) text = "phase " + std::string(agent::toString(before->phase)) + " -> " +
                       std::string(agent::toString(after.phase));
    if (after.session_id) text += " (session " + *after.session_id + ")";
    lines.push_back({spdlog::level::info, text});
  }

  std::map<std::string, const agent::DomainStatus*> previous;
  if (before) {
    for (const agent::DomainStatus& domain : before->domains) previous[domain.uuid] = &domain;
  }
  // While idle the inventory is listed but nothing happens to it: only the
  // maintenance's own story is worth the journal.
  const bool quiet = after.phase == agent::HostPhase::idle && (!before ||
                     before->phase == agent::HostPhase::idle);
  if (!quiet) {
    for (const agent::DomainStatus& domain : after.domains) {
      auto it = previous.find(domain.uuid);
      const agent::DomainStatus* old = it == previous.end() ? nullptr : it->second;
      if (old && old->stage == domain.stage) continue;
      lines.push_back({levelFor(domain.stage),
                       domainLine(domain, old ? agent::toString(old->stage) : "")});
    }
  }

  if (before && before->ready != after.ready) {
    if (after.ready) {
      lines.push_back({spdlog::level::info,
                       "host is ready: " + std::to_string(after.evidence.size()) +
                           " evidence checks pass"});
    } else {
      std::string text = "host is no longer ready";
      if (!after.blockers.empty()) {
        text += ": " + after.blockers.front().subject + ": " + after.blockers.front().reason;
      }
      // Expected when maintenance ends; news when something came back.
      const bool ending = after.phase == agent::HostPhase::restoring ||
                          after.phase == agent::HostPhase::idle;
      lines.push_back({ending ? spdlog::level::info : spdlog::level::warn, text});
    }
  }
  // Once when it begins (or is found at start-up), once when it ends.
  const bool was_overrun = before && before->overrun;
  if (after.overrun && !was_overrun) {
    std::string text = "maintenance window overrun: ";
    for (const agent::Blocker& blocker : after.blockers) {
      if (blocker.subject == "window") text += blocker.reason;
    }
    lines.push_back({spdlog::level::warn,
                     text + "; nothing is forced, the drain continues within its limits"});
  } else if (was_overrun && !after.overrun) {
    std::string text = "maintenance window overrun ended: phase " +
                       std::string(agent::toString(after.phase));
    if (after.window && after.phase == before->phase) {
      text += ", the window now ends at " + agent::formatTime(after.window->end);
    }
    lines.push_back({spdlog::level::info, text});
  }
  if (before && before->hypervisor_connection != after.hypervisor_connection) {
    std::string text = "libvirt " + std::string(hv::toString(after.hypervisor_connection));
    if (!after.hypervisor_detail.empty()) text += ": " + after.hypervisor_detail;
    lines.push_back({after.hypervisor_connection == hv::ConnectionState::connected
                         ? spdlog::level::info
                         : spdlog::level::warn,
                     text});
  }
  return lines;
}

std::vector<StatusLogLine> StatusChangeLog::record(const agent::HostStatus& status) {
  std::vector<StatusLogLine> lines = describeStatusChanges(previous_, status);
  previous_ = status;
  return lines;
}

void logLines(const std::vector<StatusLogLine>& lines) {
  for (const StatusLogLine& line : lines) spdlog::log(line.level, "{}", line.text);
}

}  // namespace hostmaint::service
