#include "hostmaint/agent/service/agent_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <utility>

#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {

void logHypervisorConnection(hv::ConnectionState state, const std::string& detail) {
  if (state == hv::ConnectionState::connected)
    spdlog::info("hypervisor connected{}", detail.empty() ? "" : ": " + detail);
  else
    spdlog::warn("hypervisor {}{}", hv::toString(state), detail.empty() ? "" : ": " + detail);
}

AgentService::AgentService(boost::asio::io_context& io, AgentServiceParts parts,
                           agent::EngineSettings settings, BusPtr bus,
                           AgentServiceOptions options)
    : io_(io),
      clock_(parts.clock),
      hypervisor_(parts.hypervisor),
      notifier_(parts.notifier),
      notice_board_(parts.notice_board),
      cordon_keeper_(parts.cordon_keeper),
      fleet_(parts.fleet),
      options_(std::move(options)),
      status_file_(options_.runtime_dir),
      wakeup_(io),
      publish_timer_(io),
      notice_timer_(io),
      engine_(parts.hypervisor, parts.clock, parts.journal, std::move(settings), *this) {
  // The engine takes the hypervisor's events from here on; the loop does not
  // run before recover() below, so none reaches it first.
  hypervisor_.setObserver(this);
  try {
    engine_.recover();
    // Each notice is rendered once, for status.json, notices.json and D-Bus.
    if (notice_board_) notice_board_->shareNoticeTexts(status_renderer_.noticeTexts());
    bus_link_.emplace(io_, clock_, engine_, options_.caller_policy,
                      BusLinkHooks{options_.reopen_bus, [this] { return shownStatus(); },
                                   [this] { republish(); }, [this] { flushStatus(); },
                                   status_renderer_.noticeTexts()},
                      options_.bus_reconnect);
    // Registers the object, publishes the status on it (notices issued now,
    // by a restart that changed a plan, go out as signals) and claims the name.
    bus_link_->attach(std::move(bus));
    writeStatusFile(shownStatus());
  } catch (...) {
    // The destructor does not run for a half-built service: nothing may
    // keep pointing at it.
    hypervisor_.setObserver(nullptr);
    throw;
  }
  serving_ = true;
  last_status_line_ = statusLine(engine_.status());
  published_phase_ = engine_.status().phase;
  published_ready_ = engine_.status().ready;
  armWakeup();
}

AgentService::~AgentService() {
  hypervisor_.setObserver(nullptr);
  // Every notice and change published is logged, even when the loop stopped
  // before its next turn (the signals go with the bus).
  logLines(std::exchange(unlogged_, {}));
}

void AgentService::reload(agent::EngineSettings settings, CallerPolicy policy) {
  engine_.updateSettings(std::move(settings));
  options_.caller_policy = policy;
  bus_link_->setCallerPolicy(std::move(policy));
}

void AgentService::onDomainEvent(const hv::DomainEvent& event) { engine_.onDomainEvent(event); }

void AgentService::onInventoryRefreshed() { engine_.onInventoryRefreshed(); }

void AgentService::onMigrationSwitchover(const std::string& uuid) {
  engine_.onMigrationSwitchover(uuid);
}

void AgentService::onConnectionStateChanged(hv::ConnectionState state,
                                            const std::string& detail) {
  logHypervisorConnection(state, detail);
  engine_.onConnectionStateChanged(state, detail);
}

void AgentService::onWakeupChanged(std::optional<agent::TimePoint> when) {
  wakeup_at_ = when;
  // While recovering the loop does not tick the engine; the constructor arms.
  if (serving_) armWakeup();
}

// Each write replaces the whole file (every domain being restored) and syncs
// it: at a finish that restores many domains, the ones whose restore ended
// leave the list with the status publication, in one write. Anything else
// (the cordon begins or ends, an override, a start about to be launched,
// which libvirt's hook must let through) is written at once.
void AgentService::onCordonChanged(const agent::CordonStatus& cordon) {
  if (!cordon_keeper_) return;
  auto onlyFewerRestores = [&] {
    if (!serving_ || !cordon_written_) return false;
    agent::CordonStatus same = *cordon_written_;
    same.restoring = cordon.restoring;
    if (!(same == cordon) || cordon.restoring.size() >= cordon_written_->restoring.size())
      return false;
    // Both lists follow the engine's order of domains: the new one must be
    // the old one with entries left out.
    const auto& before = cordon_written_->restoring;
    auto next = before.begin();
    for (const auto& entry : cordon.restoring) {
      next = std::find(next, before.end(), entry);
      if (next == before.end()) return false;
      ++next;
    }
    return true;
  };
  if (onlyFewerRestores()) {
    cordon_pending_ = cordon;
    publishLater();
    return;
  }
  cordon_pending_.reset();
  cordon_written_ = cordon;
  cordon_keeper_->update(cordon);
}

bool AgentService::mayDrain(const std::string& session_id) {
  return fleet_ == nullptr || fleet_->mayDrain(session_id);
}

std::optional<std::string> AgentService::mayImpactGroupMember(
    const agent::GroupMemberAction& member) {
  if (fleet_ == nullptr) return std::nullopt;
  return fleet_->mayImpactGroupMember(member);
}

std::vector<agent::DestinationConfig> AgentService::peerDestinations() {
  if (fleet_ == nullptr) return {};
  return fleet_->peerDestinations();
}

std::optional<std::string> AgentService::mayMigrateToPeer(const agent::PeerMigration& migration) {
  if (fleet_ == nullptr) return std::nullopt;
  return fleet_->mayMigrateToPeer(migration);
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
    engine_.tick();
    // Again at the time last told: a tick that changed it has re-armed
    // already, one that did not (woken early, or the one-minute cap) waits on.
    armWakeup();
  });
}

void AgentService::showControllerHealth(agent::ControllerHealth health) {
  controller_health_ = std::move(health);
  writeStatusFile(shownStatus());
}

// Not part of a burst (the bus lost or back, a webhook's health): at once.
void AgentService::republish() {
  if (serving_) publishNow();
}

void AgentService::decorate(agent::HostStatus& status) {
  status.controller = controller_health_;
  if (bus_link_) status.dbus = bus_link_->health();
  if (fleet_) fleet_->decorate(status);
  if (cordon_keeper_) {
    cordon_keeper_->decorate(status.cordon);
    if (auto blocker = cordon_keeper_->blocker(status.cordon)) status.blockers.push_back(*blocker);
  }
  if (!notice_board_) return;
  std::vector<agent::NoticeLedger::Issued> issued = notice_board_->apply(status);
  if (issued.empty()) return;
  // The Notices property already holds them (this publication), and
  // notices.json: their log lines and signals follow once the loop is free,
  // after a command's reply.
  for (const agent::NoticeLedger::Issued& notice : issued)
    unlogged_.push_back(noticeLogLine(notice));
  std::move(issued.begin(), issued.end(), std::back_inserter(unsent_notices_));
  armAfterReply();
}

void AgentService::armAfterReply() {
  if (after_reply_armed_) return;
  after_reply_armed_ = true;
  notice_timer_.expires_after(std::chrono::steady_clock::duration::zero());
  notice_timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) afterReply();
  });
}

void AgentService::afterReply() {
  after_reply_armed_ = false;
  logLines(std::exchange(unlogged_, {}));
  std::vector<agent::NoticeLedger::Issued> notices = std::exchange(unsent_notices_, {});
  if (!bus_link_) return;
  for (const agent::NoticeLedger::Issued& issued : notices)
    bus_link_->emitNotice(issued.uuid, issued.name, issued.notice);
}

agent::HostStatus AgentService::shownStatus() {
  agent::HostStatus status = engine_.status();
  decorate(status);
  return status;
}

void AgentService::onStatusChanged(const agent::HostStatus& engine_status) {
  // While recovering nothing is published: clients must not see a
  // half-reconciled state.
  if (!serving_) return;
  // Each publication renders and writes the whole status (every domain): in
  // a burst of changes only the last state within the interval goes out.
  // What a client waits for (the phase, readiness) never waits.
  const auto now = std::chrono::steady_clock::now();
  const bool urgent =
      engine_status.phase != published_phase_ || engine_status.ready != published_ready_;
  if (urgent || now - published_at_ >= options_.publish_interval) {
    publishNow();
    return;
  }
  publishLater();
}

void AgentService::publishLater() {
  if (publish_pending_) return;
  publish_pending_ = true;
  publish_timer_.expires_at(published_at_ + options_.publish_interval);
  publish_timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) flushStatus();
  });
}

void AgentService::flushStatus() {
  if (publish_pending_) publishNow();
}

void AgentService::publishNow() {
  publish_pending_ = false;
  publish_timer_.cancel();
  if (cordon_pending_ && cordon_keeper_) {
    cordon_written_ = std::move(cordon_pending_);
    cordon_pending_.reset();
    cordon_keeper_->update(*cordon_written_);
  }
  agent::HostStatus status = engine_.status();
  decorate(status);
  // Logged after a command's reply, with the notices (a schedule: a line
  // per domain): the status itself is what goes out now.
  std::vector<StatusLogLine> lines = change_log_.record(status);
  if (!lines.empty()) {
    std::move(lines.begin(), lines.end(), std::back_inserter(unlogged_));
    armAfterReply();
  }
  // Rendered once, for the file and the StatusJSON property.
  std::string rendered = status_renderer_.render(status);
  writeStatusFile(rendered);
  if (options_.on_published) options_.on_published(status);
  bus_link_->publish(status, std::move(rendered));
  std::string line = statusLine(status);
  if (line != last_status_line_) {
    notifier_.status(line);
    last_status_line_ = std::move(line);
  }
  published_at_ = std::chrono::steady_clock::now();
  published_phase_ = status.phase;
  published_ready_ = status.ready;
}

void AgentService::writeStatusFile(const agent::HostStatus& status) {
  writeStatusFile(status_renderer_.render(status));
}

void AgentService::writeStatusFile(const std::string& rendered) {
  try {
    status_file_.write(rendered);
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
