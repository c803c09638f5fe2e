// Telling the service manager how the daemon is doing: READY=1, STATUS=,
// STOPPING=1 and the watchdog keep-alive. Without a NOTIFY_SOCKET (not run
// by systemd) every call does nothing, as sd_notify does.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

// One line for `systemctl status`: "idle, not ready, 3 domains (3 planned)".
std::string statusLine(const agent::HostStatus& status);

// READY=1 goes through sd_notify, which waits if the manager's queue is
// full: it must arrive. Everything after that is sent without waiting and
// dropped when the manager is not reading (a full queue of a few datagrams):
// the event loop must never block on the service manager.
class ServiceNotifier {
 public:
  ServiceNotifier();
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  void ready(const std::string& status) const;
  void status(const std::string& status) const;
  void stopping() const;
  void watchdog() const;

 private:
  void sendWithoutWaiting(const std::string& message) const;

  int fd_ = -1;  // connected to $NOTIFY_SOCKET; -1 when there is none
};

// Sends WATCHDOG=1 at half the interval systemd expects, from the event loop:
// a loop that stops turning stops the keep-alives and gets the daemon killed.
class WatchdogKeepalive {
 public:
  WatchdogKeepalive(boost::asio::io_context& io, const ServiceNotifier& notifier);
  // The interval systemd asked for, when the watchdog is enabled.
  std::optional<std::chrono::microseconds> interval() const { return interval_; }
  void stop();

 private:
  void arm();

  const ServiceNotifier& notifier_;
  boost::asio::steady_timer timer_;
  std::optional<std::chrono::microseconds> interval_;
};

}  // namespace hostmaint::service
