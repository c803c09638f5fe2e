#include "hostmaint/agent/service/fleet_link.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {
namespace {

namespace fl = agent::fleet;
constexpr std::string_view kSessionPrefix = "fleet-";

bool inMaintenance(agent::HostPhase phase) {
  return phase == agent::HostPhase::draining || phase == agent::HostPhase::empty ||
         phase == agent::HostPhase::in_maintenance;
}

}  // namespace

std::string fleetSessionId(const std::string& schedule_id) {
  return std::string(kSessionPrefix) + schedule_id;
}

std::optional<std::string> scheduleIdOfSession(const std::string& session_id) {
  if (!session_id.starts_with(kSessionPrefix) || session_id.size() == kSessionPrefix.size())
    return std::nullopt;
  return session_id.substr(kSessionPrefix.size());
}

std::string fleetHostName(const agent::Config& config, const std::string& host_name) {
  if (!config.fleet.host.empty()) return config.fleet.host;
  if (!config.controller.host_id.empty()) return config.controller.host_id;
  return host_name;
}

FleetLink::FleetLink(boost::asio::io_context& io, const agent::FleetConfig& config,
                     std::string host, const agent::WallClock& clock, FleetHooks hooks,
                     FleetLocal local)
    : io_(io),
      config_(config),
      host_(std::move(host)),
      clock_(clock),
      hooks_(std::move(hooks)),
      keys_(config.prefix, config.name),
      etcd_(fl::etcdSettingsFrom(config)),
      local_(std::move(local)),
      holds_(host_),
      runner_(io) {
  // A maintenance command recorded before a restart (or the reboot it did).
  if (std::ifstream in(local_.command_file); in) {
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json document = nlohmann::json::parse(text.str(), nullptr, false);
    if (document.is_object()) {
      command_ = CommandRecord{document.value("session_id", ""), document.value("boot_id", ""),
                               document.value("state", ""), document.value("detail", "")};
    } else {
      spdlog::warn("fleet: ignoring {}: not a JSON object", local_.command_file.string());
    }
  }
  shown_.name = config_.name;
  shown_.host = host_;
  shown_.max_concurrent = config_.max_concurrent;
  spdlog::info("fleet: host '{}' in fleet '{}' through etcd at {}", host_, config_.name,
               etcd_.endpoint());
  worker_ = std::thread([this] { run(); });
}

FleetLink::~FleetLink() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void FleetLink::setDesired(const std::function<void(Desired&)>& change) {
  {
    std::lock_guard lock(mutex_);
    Desired before = desired_;
    change(desired_);
    if (desired_.need == before.need && desired_.session_id == before.session_id &&
        desired_.record == before.record && desired_.done_schedule == before.done_schedule &&
        desired_.holds == before.holds)
      return;
    poke_ = true;
  }
  wake_.notify_all();
}

agent::fleet::SlotLimits FleetLink::limitsFor(const std::string& session_id) const {
  fl::SlotLimits limits{config_.max_concurrent, config_.max_concurrent_per_domain};
  // A rolling schedule's own limit holds for its maintenances.
  if (auto id = scheduleIdOfSession(session_id); id && view_ && view_->schedule &&
                                                 view_->schedule->id == *id) {
    limits.max_concurrent = view_->schedule->max_concurrent;
  }
  return limits;
}

bool FleetLink::slotValid() const {
  return hold_ && confirmed_until_ && clock_.now() < *confirmed_until_;
}

bool FleetLink::mayDrain(const std::string& session_id) {
  const bool open = slotValid();
  if (!open) {
    const fl::SlotLimits limits = limitsFor(session_id);
    setDesired([&](Desired& desired) {
      desired.need = Need::claim;
      desired.session_id = session_id;
      desired.limits = limits;
    });
  }
  return open;
}

std::optional<std::string> FleetLink::mayImpactGroupMember(const agent::GroupMemberAction& member) {
  const FleetHolds::Answer answer = holds_.mayImpact(member, slotValid());
  if (answer.asked_anew) pushWants();
  return answer.why_not;
}

std::vector<agent::DestinationConfig> FleetLink::peerDestinations() const {
  std::vector<agent::DestinationConfig> destinations;
  // A view etcd no longer confirms offers nothing new.
  if (!view_ || !shown_.reachable) return destinations;
  for (const fl::PeerDestination& peer : fl::peerDestinations(*view_, host_)) {
    // A full peer is offered with nothing left, so that a migration waits
    // for it rather than falling back while its incoming slots are taken.
    if (!peer.usable && !peer.full) continue;
    agent::DestinationConfig destination;
    destination.uri = peer.uri;
    destination.migrate_uri = peer.migrate_uri;
    destination.max_parallel = peer.usable ? peer.max_incoming - peer.incoming : 0;
    destinations.push_back(std::move(destination));
  }
  return destinations;
}

std::optional<std::string> FleetLink::peerOfUri(const std::string& uri) const {
  if (!view_) return std::nullopt;
  for (const auto& [peer, record] : view_->hosts) {
    if (peer != host_ && !record.migration_uri.empty() && record.migration_uri == uri) return peer;
  }
  return std::nullopt;
}

std::optional<std::string> FleetLink::mayMigrateToPeer(const agent::PeerMigration& migration) {
  const std::optional<std::string> peer = peerOfUri(migration.destination_uri);
  if (!peer) return "no peer of the fleet publishes " + migration.destination_uri + " any more";
  const FleetHolds::Answer answer = holds_.mayMigrate(migration, *peer, slotValid());
  if (answer.asked_anew) pushWants();
  return answer.why_not;
}

void FleetLink::pushWants() {
  FleetHolds::Wants wants =
      holds_.wants(last_status_ ? &*last_status_ : nullptr,
                   [this](const std::string& uri) { return peerOfUri(uri); });
  setDesired([&](Desired& desired) { desired.holds = std::move(wants); });
}

// A scheduled maintenance whose window has begun: it drains once it has a slot.
bool FleetLink::windowStarted(const agent::HostStatus& status) const {
  return status.phase == agent::HostPhase::scheduled && status.window &&
         clock_.now() >= status.window->start;
}

void FleetLink::offerStatus(const agent::HostStatus& status) {
  last_status_ = status;
  // A maintenance of a rolling schedule (also one journaled before a
  // restart) is that schedule tried here: once it ends, the fleet's view may
  // not list this host as done yet, and the schedule must not start again.
  if (status.session_id) {
    if (auto schedule_id = scheduleIdOfSession(*status.session_id))
      schedules_tried_.insert(*schedule_id);
  }
  const bool started = windowStarted(status);
  const std::string session = status.session_id.value_or("");
  const fl::SlotLimits limits = limitsFor(session);
  fl::HostRecord record = fl::hostRecordFrom(status, host_, config_.failure_domain);
  record.migration_uri = config_.migration_uri;
  record.migrate_uri = config_.migrate_uri;
  record.max_incoming = config_.max_incoming_migrations;
  holds_.forgetRequestsNotWaiting(status);
  pushWants();
  setDesired([&](Desired& desired) {
    desired.record = record;
    if (inMaintenance(status.phase) || started) {
      // In maintenance, a host must be counted: a lost slot is taken again.
      desired.need = Need::claim;
      desired.session_id = session;
      desired.limits = limits;
    } else if (status.phase == agent::HostPhase::restoring) {
      // Ending: keep what is held, take nothing new.
      if (desired.need == Need::release) desired.need = Need::keep;
    } else {
      desired.need = Need::release;
    }
    // A rolling schedule's maintenance that ends (finish or cancel) is done
    // for this host: marked before the slot goes, so a restart never runs
    // it twice.
    if (auto id = scheduleIdOfSession(session);
        id && (status.phase == agent::HostPhase::restoring)) {
      desired.done_schedule = *id;
    }
  });
  // Not from inside the engine's listener: the engine is not re-entrant.
  boost::asio::post(io_, [this] {
    followSchedule();
    followCommand();
  });
}

void FleetLink::decorate(agent::HostStatus& status) const {
  agent::FleetStatus fleet = shown_;
  fleet.slot = hold_ ? std::optional<unsigned>(hold_->slot) : std::nullopt;
  // In maintenance, or about to be, without a slot surely held: waiting.
  const bool waiting = (inMaintenance(status.phase) || windowStarted(status)) && !slotValid();
  fleet.waiting_for_slot = waiting;
  if (status.session_id) {
    fleet.max_concurrent = limitsFor(*status.session_id).max_concurrent;
    fleet.schedule_id = scheduleIdOfSession(*status.session_id);
  }
  fleet.impacts = holds_.impactsShown();
  if (view_) {
    for (const fl::PeerDestination& peer : fl::peerDestinations(*view_, host_)) {
      fleet.peers.push_back(fl::shownPeer(peer));
    }
    fleet.groups = fl::groupsAcrossFleet(*view_);
  }
  status.fleet = fleet;
  holds_.decorate(status, slotValid());
  if (command_ && command_->state == "failed" && command_->session_id == status.session_id) {
    status.blockers.push_back(agent::Blocker{"fleet maintenance command", command_->detail});
  }
  if (!waiting) return;
  std::string reason;
  if (hold_) {
    reason = "the fleet slot " + std::to_string(hold_->slot) +
             " is not confirmed (its lease could not be renewed";
    reason += shown_.last_error ? ": " + *shown_.last_error + ")" : ")";
    reason += "; no new drain action starts until it is";
  } else if (!shown_.reachable) {
    reason = "waiting for a fleet slot: the fleet is unreachable";
    if (shown_.last_error) reason += " (" + *shown_.last_error + ")";
  } else {
    reason = "waiting for a fleet slot";
    if (!why_not_.empty()) reason += ": " + why_not_;
  }
  status.blockers.push_back(agent::Blocker{"fleet", reason});
}

void FleetLink::followSchedule() {
  if (!last_status_ || !view_ || !view_->schedule || last_status_->phase != agent::HostPhase::idle)
    return;
  const fl::RollingSchedule& schedule = *view_->schedule;
  if (!schedule.includes(host_)) return;
  if (auto done = view_->done.find(schedule.id);
      done != view_->done.end() && done->second.contains(host_))
    return;
  const agent::TimePoint now = clock_.now();
  if (schedule.window_end && now >= *schedule.window_end) return;  // over: not followed
  if (!schedules_tried_.insert(schedule.id).second) return;
  agent::ScheduleRequest request;
  request.window.start = std::max(now, schedule.window_start.value_or(now));
  request.window.end = schedule.window_end.value_or(request.window.start + std::chrono::hours(24));
  request.window.reason =
      schedule.reason.empty() ? "rolling maintenance " + schedule.id : schedule.reason;
  request.session_id = fleetSessionId(schedule.id);
  spdlog::info("fleet: rolling schedule '{}' names this host: scheduling maintenance", schedule.id);
  try {
    hooks_.schedule(request);
  } catch (const agent::CommandError& error) {
    spdlog::warn("fleet: rolling schedule '{}' refused here: {}", schedule.id, error.what());
  }
}

void FleetLink::saveCommandRecord() {
  try {
    if (!command_) {
      std::error_code ignored;
      std::filesystem::remove(local_.command_file, ignored);
      return;
    }
    const nlohmann::json document = {{"session_id", command_->session_id},
                                     {"boot_id", command_->boot_id},
                                     {"state", command_->state},
                                     {"detail", command_->detail}};
    agent::writeFileAtomically(local_.command_file, document.dump() + "\n", 0600);
  } catch (const agent::JournalError& error) {
    spdlog::error("fleet: cannot record the maintenance command: {}", error.what());
  }
}

// The maintenance command of a rolling schedule's maintenance: once the host
// is empty and its slot is held on the long lease, begin, run the command,
// and finish when it succeeds, or when the host comes back from the reboot
// it did (a new boot id). Called after every status and every round.
void FleetLink::followCommand() {
  if (config_.maintenance_command.empty() || !last_status_) return;
  const agent::HostStatus& status = *last_status_;
  const std::string session = status.session_id.value_or("");
  const bool fleet_session = scheduleIdOfSession(session).has_value();
  if (command_ && (command_->session_id != session || !fleet_session ||
                   status.phase == agent::HostPhase::idle ||
                   status.phase == agent::HostPhase::restoring)) {
    command_.reset();  // that maintenance is over
    saveCommandRecord();
    setDesired([](Desired& desired) { desired.long_hold_session.reset(); });
  }
  if (!fleet_session) return;
  auto attempt = [&](const char* what, const std::function<void()>& command) {
    try {
      command();
      return true;
    } catch (const agent::CommandError& error) {
      spdlog::warn("fleet: {} for the maintenance command refused: {}", what, error.what());
      return false;
    }
  };
  if (!command_) {
    if (status.phase != agent::HostPhase::empty) return;
    command_ = CommandRecord{session, local_.boot_id, "starting", ""};
    saveCommandRecord();
    spdlog::info("fleet: host empty; holding slot for the maintenance command ({} at most)",
                 agent::formatDuration(config_.maintenance_command_timeout));
    setDesired([&](Desired& desired) { desired.long_hold_session = session; });
    return;
  }
  if (command_->state == "starting") {
    if (long_hold_session_ != session || !slotValid()) return;  // the worker has not moved it yet
    if (status.phase == agent::HostPhase::empty && !attempt("begin", hooks_.begin)) return;
    command_->state = "running";
    saveCommandRecord();
    command_running_ = true;
    spdlog::info("fleet: running the maintenance command: {}", config_.maintenance_command);
    runner_.run(config_.maintenance_command,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    config_.maintenance_command_timeout),
                [this](const CommandResult& result) { commandDone(result); });
    return;
  }
  if (command_->state == "running" && !command_running_) {
    if (command_->boot_id != local_.boot_id) {
      // A new boot proves the host evidenced empty again first (the engine
      // re-checks after a restart): finish once it is.
      if (status.phase != agent::HostPhase::empty &&
          status.phase != agent::HostPhase::in_maintenance)
        return;
      spdlog::info("fleet: back from the reboot of the maintenance command: finishing");
      command_->state = "done";
      saveCommandRecord();
      attempt("finish", hooks_.finish);
    } else {
      command_->state = "failed";
      command_->detail =
          "interrupted: hostmaintd restarted while it ran (not run again); finish it by hand";
      saveCommandRecord();
      if (hooks_.on_change) hooks_.on_change();
    }
  }
}

void FleetLink::commandDone(const CommandResult& result) {
  command_running_ = false;
  if (!command_) return;
  if (result.ok()) {
    spdlog::info("fleet: the maintenance command succeeded: finishing");
    command_->state = "done";
    saveCommandRecord();
    try {
      hooks_.finish();
    } catch (const agent::CommandError& error) {
      spdlog::warn("fleet: finish after the maintenance command refused: {}", error.what());
    }
    return;
  }
  std::string detail = result.error;
  if (detail.empty()) {
    detail = result.timed_out ? "timed out after " +
                                    agent::formatDuration(config_.maintenance_command_timeout)
             : result.exit_status ? "exited with status " + std::to_string(*result.exit_status)
             : result.signal      ? "killed by signal " + std::to_string(*result.signal)
                                  : "failed";
  }
  if (!result.output.empty()) detail += ": " + result.output;
  detail += "; the host stays in maintenance (finish it by hand)";
  spdlog::error("fleet: the maintenance command {}", detail);
  command_->state = "failed";
  command_->detail = detail;
  saveCommandRecord();
  if (hooks_.on_change) hooks_.on_change();
}

void FleetLink::apply(Report report) {
  const bool was_valid = slotValid();
  agent::HostStatus before = last_status_.value_or(agent::HostStatus{});
  decorate(before);
  if (report.reachable != shown_.reachable || !shown_.since) shown_.since = clock_.now();
  shown_.reachable = report.reachable;
  shown_.endpoint = report.endpoint;
  if (report.reachable) {
    shown_.last_error.reset();
    if (logged_error_) spdlog::info("fleet: etcd reachable again at {}", report.endpoint);
    logged_error_.reset();
  } else {
    shown_.last_error = report.error;
    if (report.error != logged_error_) {
      spdlog::error("fleet: {}; no new maintenance starts until etcd answers",
                    report.error.value_or("etcd unreachable"));
      logged_error_ = report.error;
    }
  }
  if (hold_ && !report.hold) spdlog::info("fleet: slot {} given back or lost", hold_->slot);
  if (!hold_ && report.hold) spdlog::info("fleet: slot {} taken", report.hold->slot);
  hold_ = report.hold;
  confirmed_until_ = report.confirmed_until;
  why_not_ = report.why_not;
  long_hold_session_ = report.long_hold_session;
  const bool holds_changed = holds_.take(std::move(report.holds));
  if (report.view) {
    view_ = std::move(report.view);
    shown_.hosts = static_cast<unsigned>(view_->hosts.size());
    shown_.hosts_in_maintenance = static_cast<unsigned>(view_->holders.size());
  }
  followSchedule();
  followCommand();
  agent::HostStatus after = last_status_.value_or(agent::HostStatus{});
  decorate(after);
  // Publish again only when something shown changed, and tick the engine
  // when the gate may have opened (it asks again on the tick).
  if (hooks_.on_change && (after.fleet != before.fleet || after.blockers != before.blockers ||
                           was_valid != slotValid() || holds_changed)) {
    hooks_.on_change();
  }
}

void FleetLink::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    poke_ = false;
    const Desired desired = desired_;
    lock.unlock();
    Report report = exchange(desired);
    boost::asio::post(io_, [this, report = std::move(report)]() mutable { apply(std::move(report)); });
    lock.lock();
    wake_.wait_for(lock, config_.poll_interval, [this] { return stop_ || poke_; });
  }
}

// One round with etcd: leases, record, view, slot. Each step that fails
// ends the round with the error; what was held is kept until its lease
// cannot be confirmed.
FleetLink::Report FleetLink::exchange(const Desired& desired) {
  Report report;
  const auto ttl = config_.lease_ttl;
  try {
    // This host's record and its lease.
    if (record_lease_ != 0 && !etcd_.keepAlive(record_lease_)) {
      record_lease_ = 0;
      published_record_.clear();
    }
    if (record_lease_ == 0) record_lease_ = etcd_.grantLease(ttl);
    if (desired.record) {
      fl::HostRecord record = *desired.record;
      record.free_memory_bytes = freeMemory();
      record.incoming = worker_incoming_count_;
      const std::string text = fl::encodeHostRecord(record);
      if (text != published_record_) {
        etcd_.put(keys_.hostRecord(host_), text, record_lease_);
        published_record_ = text;
      }
    }
    // The slot's own lease: renewed, or found again after a restart.
    if (worker_hold_) {
      const agent::TimePoint asked = clock_.now();
      if (etcd_.keepAlive(worker_hold_->lease)) {
        worker_confirmed_until_ = asked + ttl;
      } else {
        spdlog::warn("fleet: the lease of slot {} expired; its keys are gone", worker_hold_->slot);
        worker_hold_.reset();
        worker_confirmed_until_.reset();
        holds_.dropAll();
      }
    }
    fl::FleetView view = fl::readFleetView(etcd_, keys_);
    if (!worker_hold_) {
      if (auto mine = view.holders.find(host_); mine != view.holders.end()) {
        const agent::TimePoint asked = clock_.now();
        if (etcd_.keepAlive(mine->second.lease)) {
          spdlog::info("fleet: slot {} held before a restart is ours again", mine->second.slot);
          worker_hold_ = mine->second;
          worker_confirmed_until_ = asked + ttl;
        }
      }
    }
    if (desired.done_schedule && !done_written_.contains(*desired.done_schedule)) {
      etcd_.put(keys_.done(*desired.done_schedule, host_), agent::formatTime(clock_.now()));
      done_written_.insert(*desired.done_schedule);
      view.done[*desired.done_schedule].insert(host_);
    }
    if (!desired.long_hold_session) worker_long_hold_.reset();
    if (desired.long_hold_session && worker_hold_ && worker_long_hold_ != desired.long_hold_session) {
      // Moved to a lease of the command's timeout in one transaction (only
      // while the keys are still ours), then the short lease goes.
      const std::int64_t lease = etcd_.grantLease(config_.maintenance_command_timeout);
      const fl::SlotHold& hold = *worker_hold_;
      std::vector<fl::Compare> compares{fl::Compare::valueIs(keys_.slot(hold.slot), host_)};
      fl::SlotHold moved = hold;
      moved.lease = lease;
      std::vector<fl::Operation> puts{fl::Put{keys_.holder(host_), fl::encodeHold(moved), lease},
                                      fl::Put{keys_.slot(hold.slot), host_, lease}};
      if (hold.domain_slot) {
        const std::string key = keys_.domainSlot(hold.failure_domain, *hold.domain_slot);
        compares.push_back(fl::Compare::valueIs(key, host_));
        puts.push_back(fl::Put{key, host_, lease});
      }
      holds_.addMoveTo(keys_, lease, compares, puts);
      if (etcd_.txn(compares, puts, {}).succeeded) {
        etcd_.revokeLease(hold.lease);
        worker_hold_ = moved;
        holds_.movedTo(lease);
        worker_long_hold_ = desired.long_hold_session;
      } else {
        etcd_.revokeLease(lease);
      }
    }
    if (desired.need == Need::release && worker_hold_) {
      // Revoking the slot's lease deletes the slot, domain slot and holder
      // keys at once.
      etcd_.revokeLease(worker_hold_->lease);
      worker_hold_.reset();
      worker_confirmed_until_.reset();
      holds_.dropAll();
      view = fl::readFleetView(etcd_, keys_);
    } else if (desired.need == Need::claim && !worker_hold_) {
      const agent::TimePoint asked = clock_.now();
      const std::int64_t lease = etcd_.grantLease(ttl);
      fl::ClaimOutcome outcome = fl::claimSlot(etcd_, keys_, host_, config_.failure_domain,
                                               desired.session_id, desired.limits, lease);
      if (outcome.hold && outcome.hold->lease == lease) {
        worker_hold_ = outcome.hold;
        worker_confirmed_until_ = asked + ttl;
      } else {
        // Not taken (or a hold of ours whose lease did not answer above):
        // the spare lease goes, nothing is attached to it.
        etcd_.revokeLease(lease);
        report.why_not = outcome.why_not;
      }
      view = fl::readFleetView(etcd_, keys_);
    }
    holds_.exchange(etcd_, keys_, worker_hold_, desired.holds, desired.record.has_value(), view,
                    report.holds);
    worker_incoming_count_ = static_cast<unsigned>(
        std::count_if(view.incoming.begin(), view.incoming.end(),
                      [&](const fl::IncomingMigration& m) { return m.destination == host_; }));
    report.view = std::move(view);
    report.reachable = true;
  } catch (const fl::EtcdError& error) {
    report.error = error.what();
  }
  report.endpoint = etcd_.endpoint();
  report.hold = worker_hold_;
  report.confirmed_until = worker_confirmed_until_;
  report.long_hold_session = worker_long_hold_;
  FleetHolds::Held held = holds_.held();
  held.impact_why_not = std::move(report.holds.impact_why_not);
  held.incoming_why_not = std::move(report.holds.incoming_why_not);
  report.holds = std::move(held);
  return report;
}

// MemAvailable less this host's own reserve, in steps of 64 MiB so that the
// record is not published again for every page the kernel frees.
std::optional<std::uint64_t> FleetLink::freeMemory() const {
  std::ifstream in(local_.meminfo);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  const std::optional<std::uint64_t> available = fl::memAvailableBytes(text.str());
  if (!available) return std::nullopt;
  constexpr std::uint64_t kStep = 64ULL << 20;
  const std::uint64_t free =
      *available > local_.reserved_bytes ? *available - local_.reserved_bytes : 0;
  return free / kStep * kStep;
}

}  // namespace hostmaint::service
