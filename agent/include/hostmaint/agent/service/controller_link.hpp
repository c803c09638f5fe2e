// ControllerLink makes hostmaintd a party to the controller protocol
// (docs/controller-api.md): a worker thread polls the desired state and
// delivers status reports with blocking libcurl calls; what it learns is
// posted to the io_context, where the engine lives, and applied there. The
// engine never waits on the network, so local admin control keeps working
// while the controller is unreachable.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/controller/controller_client.hpp"
#include "hostmaint/agent/controller/desired_state_tracker.hpp"
#include "hostmaint/agent/controller/protocol.hpp"
#include "hostmaint/agent/controller/status_reporter.hpp"
#include "hostmaint/agent/engine.hpp"

namespace hostmaint::service {

// The link's two HTTP clients, one per thread. Building them reads the token
// file (throws controller::TokenFileError naming it) and checks the URL: the
// daemon builds them before it serves anything, so a token others can read
// stops the start instead of being noticed later.
struct ControllerClients {
  ControllerClients(const agent::ControllerConfig& config, const std::string& host_id);
  agent::controller::ControllerClient reports;  // status reports (the reporting thread)
  agent::controller::ControllerClient polls;    // desired state (the polling thread)
};

class ControllerLink {
 public:
  // Offers `initial` (the first poll must know whether the host is draining)
  // and starts both threads. `on_health` runs on the io_context whenever the
  // link's health changes; commands go to `engine` there.
  ControllerLink(boost::asio::io_context& io, const agent::ControllerConfig& config,
                 ControllerClients clients, const agent::WallClock& clock,
                 agent::MaintenanceEngine& engine, const agent::HostStatus& initial,
                 std::function<void(const agent::ControllerHealth&)> on_health);
  // Stops the threads: a sleeping one wakes at once, a request in flight
  // ends within request_timeout.
  ~ControllerLink();
  ControllerLink(const ControllerLink&) = delete;

  // What the constructor checks (token file, client settings), without a
  // link: for --check-config. Throws what the constructor would.
  static void checkSettings(const agent::ControllerConfig& config, std::string host_id);
  ControllerLink& operator=(const ControllerLink&) = delete;

  // From the io_context, on every status change: queued for the worker;
  // only the newest undelivered report is sent.
  void offerStatus(const agent::HostStatus& status);

 private:
  // Two threads, so that a poll the controller holds (long poll) never
  // delays a status report: one polls the desired state, one reports.
  void runPolls();
  void run();
  enum class PollOutcome { changed, unchanged, failed };
  // One desired-state request.
  PollOutcome poll();
  // With tracker_mutex_ held.
  void publishHealth();
  // On the io_context.
  void reconcile();
  void refused(const std::string& message);

  boost::asio::io_context& io_;
  const agent::ControllerConfig config_;
  const agent::WallClock& clock_;
  agent::controller::ControllerClient client_;       // status reports (worker_)
  agent::controller::ControllerClient poll_client_;  // desired state (poller_)
  agent::controller::StatusReporter reporter_;

  // Shared by both threads, guarded by tracker_mutex_.
  std::mutex tracker_mutex_;
  agent::controller::DesiredStateTracker tracker_;
  std::optional<std::string> last_logged_error_;  // the health last logged

  // io_context only.
  agent::MaintenanceEngine& engine_;
  const std::function<void(const agent::ControllerHealth&)> on_health_;
  agent::ControllerHealth shown_health_;
  std::optional<agent::controller::DesiredState> desired_;
  std::optional<std::string> last_refusal_;
  // What was already asked of the engine, so each command is given once
  // (a refusal is reported once, not on every status change).
  std::set<std::string> scheduled_sessions_;
  // The candidate destinations each session was scheduled with.
  std::map<std::string, std::vector<std::string>> scheduled_destinations_;
  std::set<std::string> begun_sessions_;
  std::set<std::string> reschedules_tried_;  // "session\0window": each new window once
  std::set<std::string> acks_given_;  // "session\0domain\0choice"

  std::atomic<bool> draining_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool status_offered_ = false;
  std::thread worker_;
  std::thread poller_;
};

}  // namespace hostmaint::service
