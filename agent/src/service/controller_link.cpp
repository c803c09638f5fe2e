#include "hostmaint/agent/service/controller_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <utility>

#include "hostmaint/agent/controller/poll_schedule.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {
namespace {

namespace ctl = agent::controller;
using SteadyClock = std::chrono::steady_clock;

ctl::ControllerClient makeClient(const agent::ControllerConfig& config, std::string host_id) {
  ctl::HttpClientOptions options;
  options.ca_file = config.ca_file;
  options.client_cert = config.client_cert;
  options.client_key = config.client_key;
  if (config.token_file) options.bearer_token = ctl::readBearerToken(*config.token_file);
  options.connect_timeout = config.connect_timeout;
  options.request_timeout = config.request_timeout;
  options.max_response_bytes = config.max_response_bytes;
  return ctl::ControllerClient(config.base_url, std::move(host_id),
                               ctl::HttpClient(std::move(options)));
}

std::string windowKey(const agent::MaintenanceWindow& window) {
  auto seconds = [](agent::TimePoint t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
  };
  return seconds(window.start) + '-' + seconds(window.end) + (window.removal ? "-removal-" : "-") +
         window.reason;
}

bool isDraining(agent::HostPhase phase) {
  return phase == agent::HostPhase::draining || phase == agent::HostPhase::empty ||
         phase == agent::HostPhase::in_maintenance;
}

}  // namespace

ControllerClients::ControllerClients(const agent::ControllerConfig& config,
                                     const std::string& host_id)
    : reports(makeClient(config, host_id)), polls(makeClient(config, host_id)) {}

ControllerLink::ControllerLink(boost::asio::io_context& io, const agent::ControllerConfig& config,
                               ControllerClients clients, const agent::WallClock& clock,
                               agent::MaintenanceEngine& engine, const agent::HostStatus& initial,
                               std::function<void(const agent::ControllerHealth&)> on_health)
    : io_(io),
      config_(config),
      clock_(clock),
      client_(std::move(clients.reports)),
      poll_client_(std::move(clients.polls)),
      reporter_(client_, ctl::initialReportSeq(clock.now())),
      engine_(engine),
      on_health_(std::move(on_health)) {
  // Offered first: the first poll must know whether the host is draining.
  offerStatus(initial);
  spdlog::info("controller link: polling {} every {} ms", client_.maintenanceUrl(),
               config_.poll_interval.count());
  // Started last: every member they use exists.
  worker_ = std::thread([this] { run(); });
  poller_ = std::thread([this] { runPolls(); });
}

void ControllerLink::checkSettings(const agent::ControllerConfig& config, std::string host_id) {
  // The very function the constructor builds its clients with.
  makeClient(config, std::move(host_id));
}

ControllerLink::~ControllerLink() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (poller_.joinable()) poller_.join();
}

void ControllerLink::offerStatus(const agent::HostStatus& status) {
  draining_ = isDraining(status.phase);
  reporter_.offer(agent::statusToJson(status));
  {
    std::lock_guard lock(mutex_);
    status_offered_ = true;
  }
  wake_.notify_all();
  // Not from inside the engine's listener callback: the engine is not
  // re-entrant, so commands wait for the next turn of the loop.
  boost::asio::post(io_, [this] { reconcile(); });
}

void ControllerLink::runPolls() {
  ctl::PollSchedule polls({config_.poll_interval, 0.10, config_.max_backoff});
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    const auto started = SteadyClock::now();
    const PollOutcome outcome = poll();
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    // A held request already waited: it counts toward the interval. After a
    // new document the next poll goes out at once: a long-polling controller
    // holds it, so the change after this one arrives without delay too.
    auto next = SteadyClock::now();
    if (outcome == PollOutcome::failed) {
      next += polls.afterFailure();
    } else if (outcome == PollOutcome::unchanged || !config_.long_poll) {
      next += polls.afterSuccess(elapsed);
    }
    lock.lock();
    wake_.wait_until(lock, next, [this] { return stop_; });
  }
}

void ControllerLink::run() {
  ctl::PollSchedule reports({config_.poll_interval, 0.10, config_.max_backoff});
  auto next_report = SteadyClock::now();
  auto next_heartbeat = SteadyClock::now() + config_.heartbeat_interval;

  std::unique_lock lock(mutex_);
  while (!stop_) {
    status_offered_ = false;
    lock.unlock();
    auto now = SteadyClock::now();
    if (now >= next_heartbeat) {
      reporter_.heartbeat();
      next_heartbeat = now + config_.heartbeat_interval;
    }
    if (reporter_.hasPending() && now >= next_report) {
      const ctl::StatusReporter::Delivery delivery = reporter_.deliver();
      if (delivery.outcome == ctl::StatusReporter::Outcome::failed) {
        {
          std::lock_guard guard(tracker_mutex_);
          tracker_.recordFailure("status report " + std::to_string(delivery.report_seq) +
                                     " not delivered: " + delivery.error,
                                 clock_.now());
          publishHealth();
        }
        next_report = SteadyClock::now() + reports.afterFailure();
      } else {
        reports.afterSuccess();
        next_report = SteadyClock::now();
      }
    }
    lock.lock();
    if (stop_ || status_offered_) continue;
    auto until = next_heartbeat;
    if (reporter_.hasPending()) until = std::min(until, next_report);
    wake_.wait_until(lock, until, [this] { return stop_ || status_offered_; });
  }
}

ControllerLink::PollOutcome ControllerLink::poll() {
  std::optional<std::string> etag;
  {
    std::lock_guard guard(tracker_mutex_);
    etag = tracker_.etag();
  }
  std::optional<std::chrono::seconds> wait;
  if (config_.long_poll) {
    wait = std::max(std::chrono::seconds(1),
                    std::chrono::duration_cast<std::chrono::seconds>(config_.poll_interval));
  }
  std::optional<ctl::DesiredStateFetch> fetch;
  std::string error;
  try {
    fetch = poll_client_.fetchDesiredState(etag, wait);
  } catch (const std::exception& failure) {
    // HTTP, TLS, timeout, size and parse errors alike: the last good state stays.
    error = failure.what();
  }
  std::lock_guard guard(tracker_mutex_);
  bool changed = false;
  if (fetch) {
    changed = tracker_.accept(*fetch, draining_, clock_.now()) ==
              ctl::DesiredStateTracker::Update::changed;
  } else {
    tracker_.recordFailure(
        std::string("desired state from ") + poll_client_.maintenanceUrl() + ": " + error,
        clock_.now());
  }
  if (changed) {
    const ctl::DesiredState& desired = *tracker_.lastGood();
    spdlog::info("controller: desired state '{}' for session '{}'", ctl::toString(desired.state),
                 desired.session_id.value_or(""));
    boost::asio::post(io_, [this, desired] {
      desired_ = desired;
      reconcile();
    });
  }
  publishHealth();
  if (tracker_.health().consecutive_failures > 0) return PollOutcome::failed;
  return changed ? PollOutcome::changed : PollOutcome::unchanged;
}

// Logs a change of health once (not on every failed poll), then hands it to
// the io_context for status.json. Both threads call it, with tracker_mutex_
// held: the health they post reaches the loop in the order the tracker saw.
void ControllerLink::publishHealth() {
  agent::ControllerHealth health = tracker_.health();
  const bool failing = health.consecutive_failures > 0;
  if (failing && health.last_error != last_logged_error_) {
    spdlog::error("controller: {}; keeping the last good desired state", *health.last_error);
    last_logged_error_ = health.last_error;
  } else if (!failing && last_logged_error_) {
    spdlog::info("controller: reachable again at {}", client_.maintenanceUrl());
    last_logged_error_.reset();
  }
  boost::asio::post(io_, [this, health = std::move(health)] {
    shown_health_ = health;
    if (on_health_) on_health_(shown_health_);
  });
}

void ControllerLink::refused(const std::string& message) {
  if (message == last_refusal_) return;
  spdlog::warn("controller: {}", message);
  last_refusal_ = message;
  shown_health_.last_error = message;
  shown_health_.last_failure = clock_.now();
  if (on_health_) on_health_(shown_health_);
}

// Brings the engine toward the desired state; each command is given once.
// Called after a new desired state and after every status change (a
// `complete` may arrive before the host is empty).
void ControllerLink::reconcile() {
  if (!desired_) return;
  const ctl::DesiredState& desired = *desired_;
  if (!desired.session_id) return;
  const std::string& session = *desired.session_id;
  auto attempt = [this](const std::string& what, auto&& command) {
    try {
      command();
    } catch (const agent::CommandError& error) {
      refused(what + " refused: " + error.what());
    }
  };
  const agent::HostStatus& status = engine_.status();
  const bool ours = status.session_id == desired.session_id;
  switch (desired.state) {
    case ctl::SessionState::none:
      return;
    case ctl::SessionState::scheduled:
    case ctl::SessionState::maintenance: {
      if (!desired.window) return;
      if (!ours && scheduled_sessions_.insert(session).second) {
        agent::ScheduleRequest request;
        request.window = *desired.window;
        request.session_id = session;
        request.destinations = desired.destinations;
        scheduled_destinations_[session] = desired.destinations;
        attempt("schedule of session '" + session + "'", [&] { engine_.schedule(request); });
      }
      if (engine_.status().session_id != desired.session_id) return;
      if (const auto given = scheduled_destinations_.find(session);
          given != scheduled_destinations_.end() && given->second != desired.destinations) {
        // The engine plans against the list it was scheduled with; swapping
        // it under running migrations is not something a session can do.
        refused("new candidate destinations for session '" + session +
                "' not applied: they are fixed when a session is scheduled (cancel it and "
                "schedule a new session to change them)");
      }
      if (const auto& window = engine_.status().window;
          window && (window->start != desired.window->start || window->end != desired.window->end ||
                     window->removal != desired.window->removal ||
                     window->reason != desired.window->reason)) {
        // The controller moved the window (or added removal): replan, re-notify.
        const std::string key = session + '\0' + windowKey(*desired.window);
        if (reschedules_tried_.insert(key).second) {
          attempt("new window for session '" + session + "'",
                  [&] { engine_.reschedule(*desired.window); });
        }
      }
      for (const auto& [domain, choice] : desired.acks) {
        std::string key = session + '\0' + domain + '\0' + std::string(agent::toString(choice));
        if (!acks_given_.insert(std::move(key)).second) continue;
        attempt("ack '" + std::string(agent::toString(choice)) + "' for domain '" + domain + "'",
                [&] { engine_.acknowledge(domain, choice); });
      }
      if (desired.state == ctl::SessionState::maintenance &&
          engine_.status().phase == agent::HostPhase::empty &&
          begun_sessions_.insert(session).second) {
        attempt("begin of session '" + session + "'", [&] { engine_.begin(); });
      }
      return;
    }
    case ctl::SessionState::complete:
    case ctl::SessionState::cancelled: {
      if (!ours) return;
      const agent::HostPhase phase = status.phase;
      if (phase == agent::HostPhase::empty || phase == agent::HostPhase::in_maintenance) {
        attempt("finish of session '" + session + "'", [&] { engine_.finish(); });
      } else if (desired.state == ctl::SessionState::cancelled &&
                 (phase == agent::HostPhase::scheduled || phase == agent::HostPhase::draining)) {
        attempt("cancel of session '" + session + "'", [&] { engine_.cancel(); });
      }
      return;
    }
  }
}

}  // namespace hostmaint::service
