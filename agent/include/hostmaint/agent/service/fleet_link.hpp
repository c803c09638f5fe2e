// FleetLink makes hostmaintd one host of a fleet coordinated through etcd
// (docs/fleet.md). A worker thread does every etcd call (blocking libcurl):
// it keeps this host's leases alive, publishes its record, reads the fleet
// view, takes a maintenance slot when the maintenance needs one and gives it
// back when it ends. What it learns is posted to the io_context, which owns
// everything the engine asks:
//   - mayDrain(): the engine's gate (EngineListener::mayDrain), answered
//     from the slot last confirmed, at once;
//   - mayImpactGroupMember(): groups across hosts, answered from the group
//     impacts the worker took (on the slot's lease) for this host's members;
//   - peerDestinations(): the other hosts whose records make them
//     destinations now, for a drain with none of its own;
//   - mayMigrateToPeer(): answered from the claims the worker took (on the
//     slot's lease) on the peers' incoming slots, one per migration;
//   - decorate(): the fleet's part of the status (status.json `fleet`, and
//     a `fleet` blocker while the maintenance waits for a slot);
//   - a rolling schedule that names this host is given to the engine as a
//     maintenance (hooks.schedule) when the host is idle.
// The engine never waits on etcd: local status and control keep working
// while it is unreachable, and say so.
#pragma once

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <filesystem>
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
#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/fleet/etcd_client.hpp"
#include "hostmaint/agent/fleet/fleet.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/service/command_runner.hpp"
#include "hostmaint/agent/service/fleet_holds.hpp"

namespace hostmaint::service {

struct FleetHooks {
  // The fleet's status changed, or the gate may have opened: publish again
  // and tick the engine. On the io_context.
  std::function<void()> on_change;
  // Schedules the maintenance of a rolling schedule; throws
  // agent::CommandError when the engine refuses. On the io_context.
  std::function<void(const agent::ScheduleRequest&)> schedule;
  // begin and finish, for the maintenance command; throw agent::CommandError.
  std::function<void()> begin;
  std::function<void()> finish;
};

// What the maintenance command needs of this host: where it records that it
// ran (to tell a reboot it did from a restart of hostmaintd), and this boot.
struct FleetLocal {
  std::filesystem::path command_file;  // {state_dir}/fleet-command.json
  std::string boot_id;
  // This host's free memory as a destination: MemAvailable of `meminfo`
  // less the reserve it keeps for itself ([migration] reserved_memory_mib).
  std::filesystem::path meminfo = "/proc/meminfo";
  std::uint64_t reserved_bytes = 0;
};

// The session id of a rolling schedule's maintenance on every host, and back.
std::string fleetSessionId(const std::string& schedule_id);
std::optional<std::string> scheduleIdOfSession(const std::string& session_id);

// The host name this host uses in the fleet: fleet.host, else
// controller.host_id, else `host_name`.
std::string fleetHostName(const agent::Config& config, const std::string& host_name);


class FleetLink {
 public:
  // Builds the etcd client (reads the password file: throws
  // agent::fleet::EtcdError(setup) naming it) and starts the worker.
  FleetLink(boost::asio::io_context& io, const agent::FleetConfig& config, std::string host,
            const agent::WallClock& clock, FleetHooks hooks, FleetLocal local);
  // Wakes and joins the worker (a request in flight ends within its
  // timeout). The leases are left to expire: a restarted daemon adopts its
  // slot while its lease lives.
  ~FleetLink();
  FleetLink(const FleetLink&) = delete;
  FleetLink& operator=(const FleetLink&) = delete;

  // io_context only, all of these.
  bool mayDrain(const std::string& session_id);
  std::optional<std::string> mayImpactGroupMember(const agent::GroupMemberAction& member);
  std::vector<agent::DestinationConfig> peerDestinations() const;
  std::optional<std::string> mayMigrateToPeer(const agent::PeerMigration& migration);
  void offerStatus(const agent::HostStatus& status);
  void decorate(agent::HostStatus& status) const;

 private:
  // What the loop asks of the worker, under mutex_.
  enum class Need { keep, claim, release };
  struct Desired {
    Need need = Need::keep;  // keep until the first status says otherwise
    std::string session_id;
    agent::fleet::SlotLimits limits;
    // The record to publish; the worker adds its free memory and incoming
    // migrations.
    std::optional<agent::fleet::HostRecord> record;
    FleetHolds::Wants holds;  // the group impacts and peer claims
    std::optional<std::string> done_schedule;  // mark this schedule done for the host
    // Hold the slot with a lease of maintenance_command_timeout from now on
    // (the maintenance command may reboot the host).
    std::optional<std::string> long_hold_session;
  };
  // What the worker learned, posted to the loop.
  struct Report {
    bool reachable = false;
    std::string endpoint;
    std::optional<std::string> error;
    std::optional<agent::fleet::FleetView> view;
    std::optional<agent::fleet::SlotHold> hold;
    std::optional<agent::TimePoint> confirmed_until;
    std::string why_not;  // why no slot could be taken
    std::optional<std::string> long_hold_session;  // the slot is on the long lease for it
    FleetHolds::Held holds;
  };
  // The maintenance command of one session, as recorded in command_file.
  struct CommandRecord {
    std::string session_id;
    std::string boot_id;
    std::string state;  // "starting", "running", "failed", "done"
    std::string detail;
  };

  void run();
  Report exchange(const Desired& desired);
  void apply(Report report);                      // on the loop
  void followSchedule();                          // on the loop
  void followCommand();                           // on the loop
  void saveCommandRecord();
  void commandDone(const CommandResult& result);
  void setDesired(const std::function<void(Desired&)>& change);
  bool slotValid() const;
  bool windowStarted(const agent::HostStatus& status) const;
  agent::fleet::SlotLimits limitsFor(const std::string& session_id) const;
  std::optional<std::uint64_t> freeMemory() const;
  // Loop: what the worker is asked to hold, from the status and the requests.
  void pushWants();
  // The peer whose record publishes `uri` as its migration URI.
  std::optional<std::string> peerOfUri(const std::string& uri) const;

  boost::asio::io_context& io_;
  const agent::FleetConfig config_;
  const std::string host_;
  const agent::WallClock& clock_;
  const FleetHooks hooks_;
  const agent::fleet::FleetKeys keys_;

  // Worker only.
  agent::fleet::EtcdClient etcd_;
  std::int64_t record_lease_ = 0;
  std::optional<agent::fleet::SlotHold> worker_hold_;
  std::optional<agent::TimePoint> worker_confirmed_until_;
  std::string published_record_;
  std::set<std::string> done_written_;
  std::optional<std::string> worker_long_hold_;  // session whose slot is on the long lease
  unsigned worker_incoming_count_ = 0;  // migrations into this host, as last read

  // Loop only.
  // The status last offered, decorated; unset until the agent serves.
  std::optional<agent::HostStatus> last_status_;
  std::optional<agent::fleet::SlotHold> hold_;
  std::optional<agent::TimePoint> confirmed_until_;
  agent::FleetStatus shown_;
  std::optional<agent::fleet::FleetView> view_;
  std::string why_not_;
  std::optional<std::string> logged_error_;
  std::set<std::string> schedules_tried_;
  const FleetLocal local_;
  std::optional<CommandRecord> command_;
  std::optional<std::string> long_hold_session_;
  // The group impacts and peer claims: its loop half on the loop, its
  // worker half on the worker.
  FleetHolds holds_;
  bool command_running_ = false;
  CommandRunner runner_;  // runs the maintenance command; killing it when the link goes

  std::mutex mutex_;
  std::condition_variable wake_;
  Desired desired_;
  bool stop_ = false;
  bool poke_ = false;
  std::thread worker_;
};

}  // namespace hostmaint::service
