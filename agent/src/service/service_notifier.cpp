#include "hostmaint/agent/service/service_notifier.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>

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
  if (status.dbus && !status.dbus->connected) line += ", D-Bus disconnected";
  return line;
}

ServiceNotifier::ServiceNotifier() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  // Only filesystem and abstract unix sockets; anything else (vsock) keeps
  // to sd_notify for READY=1 and gets no later updates.
  if (!path || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(path);
  if (length >= sizeof address.sun_path) return;
  std::memcpy(address.sun_path, path, length);
  if (path[0] == '@') address.sun_path[0] = '\0';
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return;
  const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), size) != 0) {
    spdlog::warn("cannot connect to the service manager's NOTIFY_SOCKET {}: {}", path,
                 std::strerror(errno));
    close(fd_);
    fd_ = -1;
  }
}

ServiceNotifier::~ServiceNotifier() {
  if (fd_ >= 0) close(fd_);
}

void ServiceNotifier::sendWithoutWaiting(const std::string& message) const {
  if (fd_ < 0) return;
  if (send(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
    spdlog::debug("cannot notify the service manager ({}): {}", message, std::strerror(errno));
}

void ServiceNotifier::ready(const std::string& status) const {
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void ServiceNotifier::status(const std::string& status) const {
  sendWithoutWaiting("STATUS=" + status);
}

void ServiceNotifier::stopping() const { sendWithoutWaiting("STOPPING=1\nSTATUS=stopping"); }

void ServiceNotifier::watchdog() const { sendWithoutWaiting("WATCHDOG=1"); }

WatchdogKeepalive::WatchdogKeepalive(boost::asio::io_context& io, const ServiceNotifier& notifier)
    : notifier_(notifier), timer_(io) {
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
    notifier_.watchdog();
    arm();
  });
}

void WatchdogKeepalive::stop() { timer_.cancel(); }

}  // namespace hostmaint::service
