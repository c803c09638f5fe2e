#include "hostmaint/agent/service/agent_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "hostmaint/agent/journal.hpp"

namespace hostmaint::service {

// The engine is the hypervisor's observer; this forwards to it. Before the
// engine is attached (the daemon waits for the first inventory before
// building it) events are only noted: an engine entry point before recover()
// would journal a fresh state over the saved one.
class AgentService::ForwardingObserver final : public hv::HypervisorObserver {
 public:
  explicit ForwardingObserver(AgentService& service) : service_(service) {}

  void onDomainEvent(const hv::DomainEvent& event) override {
    if (!service_.engine_) return;
    service_.engine_->onDomainEvent(event);
  }
  void onInventoryRefreshed() override {
    service_.inventory_received_ = true;
    if (!service_.engine_) return;
    service_.engine_->onInventoryRefreshed();
  }
  void onConnectionStateChanged(hv::ConnectionState state, const std::string& detail) override {
    if (state == hv::ConnectionState::connected)
      spdlog::info("hypervisor connected{}", detail.empty() ? "" : ": " + detail);
    else
      spdlog::warn("hypervisor {}{}", hv::toString(state), detail.empty() ? "" : ": " + detail);
    if (!service_.engine_) return;
    service_.engine_->onConnectionStateChanged(state, detail);
  }

 private:
  AgentService& service_;
};

AgentService::AgentService(boost::asio::io_context& io, const agent::WallClock& clock,
                           AgentServiceOptions options)
    : io_(io),
      clock_(clock),
      options_(std::move(options)),
      status_file_(options_.runtime_dir),
      observer_(std::make_unique<ForwardingObserver>(*this)),
      wakeup_(io) {}

AgentService::~AgentService() = default;

void AgentService::attach(agent::MaintenanceEngine& engine) { engine_ = &engine; }

hv::HypervisorObserver& AgentService::hypervisorObserver() { return *observer_; }

void AgentService::serve(BusPtr bus, bool claim_name) {
  bus_ = std::move(bus);
  object_ = std::make_unique<AgentObject>(bus_.get(), *engine_, options_.caller_policy);
  // After the object exists: notices issued now (a restart that changed a
  // plan) go out as signals.
  const agent::HostStatus initial = shownStatus();
  writeStatusFile(initial);
  object_->publish(initial);
  dispatcher_ = std::make_unique<BusDispatcher>(io_, bus_.get(), [this] {
    if (options_.on_bus_lost) options_.on_bus_lost("lost the connection to the D-Bus system bus");
  });
  // The object is registered before the name is claimed: whoever sees the
  // name sees the whole object.
  if (claim_name) requestBusName(bus_.get(), kBusName);
  serving_ = true;
  last_status_line_ = statusLine(engine_->status());
  armWakeup();
}

void AgentService::setCallerPolicy(CallerPolicy policy) {
  options_.caller_policy = policy;
  if (object_) object_->setCallerPolicy(std::move(policy));
}

void AgentService::onWakeupChanged(std::optional<agent::TimePoint> when) {
  wakeup_at_ = when;
  // Before serve() the loop does not tick the engine; serve() arms.
  if (serving_) armWakeup();
}

void AgentService::armWakeup() {
  const std::optional<agent::TimePoint> next = wakeup_at_;
  if (!next) {
    wakeup_.cancel();
    return;
  }
  // The engine speaks wall-clock time, the timer steady time. Waking at least
  // once a minute lets a wall-clock jump be noticed without a clock watch.
  constexpr auto kLongestSleep = std::chrono::minutes(1);
  const auto until = std::clamp<agent::Clock::duration>(
      *next - clock_.now(), agent::Clock::duration::zero(), kLongestSleep);
  wakeup_.expires_after(until);
  wakeup_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    engine_->tick();
    // Again at the time last told: a tick that changed it has re-armed
    // already, one that did not (woken early, or the one-minute cap) waits on.
    armWakeup();
  });
}

void AgentService::setStatusForwarder(std::function<void(const agent::HostStatus&)> forward) {
  status_forwarder_ = std::move(forward);
}

void AgentService::setControllerHealth(agent::ControllerHealth health) {
  controller_health_ = std::move(health);
  if (!serving_ || !engine_) return;
  writeStatusFile(shownStatus());
}

void AgentService::setNoticeBoard(NoticeBoard* board) {
  notice_board_ = board;
  if (!board) return;
  board->onIssued([this](const agent::NoticeLedger::Issued& issued) {
    if (!object_) return;
    object_->emitNotice(issued.uuid, issued.name, issued.notice);
    if (dispatcher_) dispatcher_->kick();
  });
}

void AgentService::setNoticeWebhookHealth(agent::NoticeWebhookHealth health) {
  if (!notice_board_) return;
  notice_board_->setWebhookHealth(std::move(health));
  // Delivery health is status like any other: every reader sees it.
  if (serving_ && engine_) onStatusChanged(engine_->status());
}

agent::HostStatus AgentService::shownStatus() {
  agent::HostStatus status = engine_->status();
  status.controller = controller_health_;
  if (notice_board_) notice_board_->apply(status);
  return status;
}

void AgentService::onStatusChanged(const agent::HostStatus& engine_status) {
  // Before serve() (recovering, waiting for the hypervisor) nothing is
  // published: clients must not see a half-reconciled state.
  if (!serving_) return;
  agent::HostStatus status = engine_status;
  status.controller = controller_health_;
  if (notice_board_) notice_board_->apply(status);
  change_log_.record(status);
  writeStatusFile(status);
  if (http_server_) http_server_->update(status);
  if (status_forwarder_) status_forwarder_(status);
  if (object_) {
    object_->publish(status);
    dispatcher_->kick();
  }
  std::string line = statusLine(status);
  if (line != last_status_line_) {
    notifier_.status(line);
    last_status_line_ = std::move(line);
  }
}

void AgentService::writeStatusFile(const agent::HostStatus& status) {
  try {
    status_file_.write(status);
    if (!last_write_error_.empty())
      spdlog::info("{} is written again", status_file_.path().string());
    last_write_error_.clear();
  } catch (const agent::JournalError& error) {
    // Reported once per distinct failure, not on every change; D-Bus still serves.
    if (error.what() != last_write_error_)
      spdlog::error("cannot write the status file: {}", error.what());
    last_write_error_ = error.what();
  }
}

}  // namespace hostmaint::service
