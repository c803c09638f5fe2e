// AgentService is the agent as the outside world sees it: the engine and
// everything its status goes to, on one io_context.
//
// Building it builds the engine, recovers it from the journal, registers the
// D-Bus object, claims the bus name and writes status.json, in that order:
// whoever sees the name sees the reconciled state (docs/architecture.md).
// From then on every status change is written to status.json, handed to
// `on_published` (the HTTP endpoint, the controller link), emitted on D-Bus as
// PropertiesChanged and sent to the service manager as STATUS=, bursts
// coalesced (AgentServiceOptions::publish_interval); the one wakeup
// timer is armed whenever the engine says its next wakeup changed. The bus
// connection is kept by a BusLink, which reconnects when it is lost; the
// status shows its health (`dbus` in status.json).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/service/agent_object.hpp"
#include "hostmaint/agent/service/asio_sd_bus.hpp"
#include "hostmaint/agent/service/bus_link.hpp"
#include "hostmaint/agent/service/cordon_keeper.hpp"
#include "hostmaint/agent/service/fleet_link.hpp"
#include "hostmaint/agent/service/notice_board.hpp"
#include "hostmaint/agent/service/service_notifier.hpp"
#include "hostmaint/agent/service/status_change_log.hpp"
#include "hostmaint/agent/service/status_file.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {

struct AgentServiceOptions {
  std::filesystem::path runtime_dir;
  CallerPolicy caller_policy;
  // Opens the bus again after the connection was lost (tests: a private bus).
  std::function<BusPtr()> reopen_bus = openSystemBus;
  BusReconnectSettings bus_reconnect;
  // Every published status, after status.json and before D-Bus.
  std::function<void(const agent::HostStatus&)> on_published;
  // A burst of changes (a drain of many instant actions) is published at
  // most once per interval, the last state; a change of the phase or of
  // readiness, the first change after a quiet interval, and the status before
  // a D-Bus method's reply go out at once.
  std::chrono::milliseconds publish_interval{200};
};

// What the service borrows from its owner; each part outlives the service.
struct AgentServiceParts {
  const agent::WallClock& clock;
  hv::Hypervisor& hypervisor;
  agent::Journal& journal;
  const ServiceNotifier& notifier;
  // Owner notices: every published status goes through the board (which
  // numbers, persists and delivers them) and its new notices are emitted as
  // the Notice signal. nullptr: no notices (tests).
  NoticeBoard* notice_board = nullptr;
  // The cordon file and commands; nullptr: no cordon is carried out (tests).
  CordonKeeper* cordon_keeper = nullptr;
  // The fleet's gate and status (docs/fleet.md); nullptr: no [fleet].
  FleetLink* fleet = nullptr;
};

// Logs a change of the hypervisor connection (for every observer the daemon
// gives the hypervisor).
void logHypervisorConnection(hv::ConnectionState state, const std::string& detail);

class AgentService final : private agent::EngineListener, private hv::HypervisorObserver {
 public:
  // Builds and recovers the engine (throws agent::JournalError when the
  // journal cannot be read: starting afresh would forget a maintenance),
  // then registers the object on `bus`, claims the bus name and drives the
  // bus from the loop (throws BusSetupError with the reason). The hypervisor's
  // events go to the engine from now until the service is destroyed; a bus
  // lost afterwards is reopened with options.reopen_bus (BusLink).
  AgentService(boost::asio::io_context& io, AgentServiceParts parts,
               agent::EngineSettings settings, BusPtr bus, AgentServiceOptions options);
  ~AgentService() override;
  AgentService(const AgentService&) = delete;
  AgentService& operator=(const AgentService&) = delete;

  agent::MaintenanceEngine& engine() { return engine_; }

  // A reloaded configuration (SIGHUP).
  void reload(agent::EngineSettings settings, CallerPolicy policy);
  // The controller link's health changed: shown in status.json.
  void showControllerHealth(agent::ControllerHealth health);
  // Something the status shows besides the engine's state changed (the notice
  // webhook's health): publish again everywhere.
  void republish();

  // The status as published: the engine's, with the controller health and
  // the notices as issued.
  agent::HostStatus shownStatus();

  const StatusFile& statusFile() const { return status_file_; }

 private:
  // agent::EngineListener
  void onStatusChanged(const agent::HostStatus& status) override;
  void onWakeupChanged(std::optional<agent::TimePoint> when) override;
  void onCordonChanged(const agent::CordonStatus& cordon) override;
  bool mayDrain(const std::string& session_id) override;
  std::optional<std::string> mayImpactGroupMember(const agent::GroupMemberAction& member) override;
  std::vector<agent::DestinationConfig> peerDestinations() override;
  std::optional<std::string> mayMigrateToPeer(const agent::PeerMigration& migration) override;
  // hv::HypervisorObserver: forwarded to the engine.
  void onDomainEvent(const hv::DomainEvent& event) override;
  void onInventoryRefreshed() override;
  void onConnectionStateChanged(hv::ConnectionState state, const std::string& detail) override;
  void onMigrationSwitchover(const std::string& uuid) override;

  // Arms the wakeup timer at wakeup_at_ (at most a minute ahead), replacing
  // any earlier wakeup.
  void armWakeup();
  // Publishes the engine's status now everywhere (publish_interval).
  void publishNow();
  // Arms the timer that publishes what is held back, unless armed.
  void publishLater();
  // Publishes a change held back by the interval, if any: before a reply.
  void flushStatus();
  // Puts the controller health and the issued notices into `status`; the
  // log line and the Notice signal of each new notice follow in the loop's
  // next turn.
  void decorate(agent::HostStatus& status);
  // Arms the loop's next turn for afterReply().
  void armAfterReply();
  // Logs the lines held back, then emits the Notice signals decorate() issued.
  void afterReply();
  void writeStatusFile(const agent::HostStatus& status);
  void writeStatusFile(const std::string& rendered);

  // Borrowed, see AgentServiceParts.
  boost::asio::io_context& io_;
  const agent::WallClock& clock_;
  hv::Hypervisor& hypervisor_;
  const ServiceNotifier& notifier_;
  NoticeBoard* notice_board_;
  CordonKeeper* cordon_keeper_;
  FleetLink* fleet_;
  AgentServiceOptions options_;

  // Owned, in the order they are built (destroyed in reverse).
  StatusFile status_file_;
  // Renders status.json and StatusJSON, each domain again only once it changed.
  agent::StatusRenderer status_renderer_;
  StatusChangeLog change_log_;
  std::string last_write_error_;
  std::string last_status_line_;
  std::optional<agent::ControllerHealth> controller_health_;
  boost::asio::steady_timer wakeup_;
  // Publication: when it last happened, what it said of the phase and of
  // readiness, and the timer of a change held back.
  boost::asio::steady_timer publish_timer_;
  bool publish_pending_ = false;
  std::chrono::steady_clock::time_point published_at_{};
  agent::HostPhase published_phase_ = agent::HostPhase::idle;
  bool published_ready_ = false;
  // The cordon as last written, and one held back with the status: a
  // restore that ended leaves the list of restores, which may wait; a start
  // that begins never does.
  std::optional<agent::CordonStatus> cordon_written_;
  std::optional<agent::CordonStatus> cordon_pending_;
  // Work that follows the reply of the command that caused it, in the loop's
  // next turn (a schedule issues a notice and changes the stage of every
  // domain, which the caller need not wait behind): the log lines of the
  // status changes and notices published (in their order), then the notices'
  // signals. Both are already durable and published: notices.json, the
  // journal, status.json, the Notices property.
  std::vector<StatusLogLine> unlogged_;
  std::vector<agent::NoticeLedger::Issued> unsent_notices_;
  boost::asio::steady_timer notice_timer_;
  bool after_reply_armed_ = false;
  std::optional<agent::TimePoint> wakeup_at_;  // as the engine last told
  bool serving_ = false;  // false while recovering: nothing is published yet
  agent::MaintenanceEngine engine_;
  // Its object calls into the engine: built after it, destroyed before it.
  std::optional<BusLink> bus_link_;
};

}  // namespace hostmaint::service
