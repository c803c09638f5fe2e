#include "hostmaint/agent/service/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <map>

#include <spdlog/spdlog.h>

namespace hostmaint::service {

std::string statusLine(const agent::HostStatus& status) {
  std::string line(agent::toString(status.phase));
  line += status.ready ? ", ready" : ", not ready";
  std::map<std::string_view, int> per_stage;
  for (const agent::DomainStatus& domain : status.domains) ++per_stage[toString(domain.stage)];
  line += ", " + std::to_string(status.domains.size()) + " domains";
  if (!per_stage.empty()) {
    line += " (";
    bool first = true;
    for (const auto& [stage, count] : per_stage) {
      if (!first) line += ", ";
      first = false;
      line += std::to_string(count) + " " + std::string(stage);
    }
    line += ")";
  }
  if (status.hypervisor_connection != hv::ConnectionState::connected)
    line += ", hypervisor " + std::string(hv::toString(status.hypervisor_connection));
  return line;
}

void ServiceNotifier::ready(const std::string& status) const {
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void ServiceNotifier::status(const std::string& status) const {
  sd_notify(0, ("STATUS=" + status).c_str());
}

void ServiceNotifier::stopping() const { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

WatchdogKeepalive::WatchdogKeepalive(boost::asio::io_context& io) : timer_(io) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = std::chrono::microseconds(usec);
    spdlog::debug("watchdog enabled: keep-alive every {} ms", usec / 2000);
    arm();
  }
}

void WatchdogKeepalive::arm() {
  timer_.expires_after(*interval_ / 2);
  timer_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    sd_notify(0, "WATCHDOG=1");
    arm();
  });
}

void WatchdogKeepalive::stop() { timer_.cancel(); }

}  // namespace hostmaint::service
