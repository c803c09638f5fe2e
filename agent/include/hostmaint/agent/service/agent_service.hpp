// AgentService wires the engine to the outside world on one io_context:
// every status change is written to status.json, emitted on D-Bus as
// PropertiesChanged and sent to the service manager as STATUS=; the one
// wakeup timer is armed whenever the engine says its next wakeup changed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/service/agent_object.hpp"
#include "hostmaint/agent/service/asio_sd_bus.hpp"
#include "hostmaint/agent/service/notice_board.hpp"
#include "hostmaint/agent/service/service_notifier.hpp"
#include "hostmaint/agent/service/status_change_log.hpp"
#include "hostmaint/agent/service/status_file.hpp"
#include "hostmaint/agent/service/status_http_server.hpp"

namespace hostmaint::service {

struct AgentServiceOptions {
  std::filesystem::path runtime_dir;
  CallerPolicy caller_policy;
  // The bus connection was lost: the daemon cannot serve and should exit.
  std::function<void(const std::string& why)> on_bus_lost;
};

class AgentService final : public agent::EngineListener {
 public:
  // `clock` is the engine's: its nextWakeup() is in that clock's time.
  AgentService(boost::asio::io_context& io, const agent::WallClock& clock,
               AgentServiceOptions options);
  ~AgentService() override;
  AgentService(const AgentService&) = delete;
  AgentService& operator=(const AgentService&) = delete;

  // The engine is built with this service as its listener, then attached;
  // call recover() right after, before the loop runs again.
  void attach(agent::MaintenanceEngine& engine);
  // The hypervisor's observer: forwards to the engine once attached, then
  // re-arms. Before that it only notes the first inventory.
  hv::HypervisorObserver& hypervisorObserver();
  // True once the hypervisor reported a connection and a full inventory.
  bool inventoryReceived() const { return inventory_received_; }

  // After engine.recover(): writes status.json, registers the object on
  // `bus` and drives it from the loop; claims the bus name when `claim_name`.
  // Throws BusSetupError (registration, name) with the reason.
  void serve(BusPtr bus, bool claim_name = true);

  void setCallerPolicy(CallerPolicy policy);

  // The controller link: told of every published status (with the
  // controller health in it), and its health shown in status.json.
  void setStatusForwarder(std::function<void(const agent::HostStatus&)> forward);
  void setControllerHealth(agent::ControllerHealth health);

  // Owner notices: every published status goes through `board` (which
  // numbers, persists and delivers them) and its notices are emitted as the
  // Notice signal. Set before serve(); nullptr: none (tests).
  void setNoticeBoard(NoticeBoard* board);
  // The webhook's health changed: publish it everywhere the status goes.
  void setNoticeWebhookHealth(agent::NoticeWebhookHealth health);

  // The status as published: the engine's, with the controller health and
  // the notices as issued.
  agent::HostStatus shownStatus();

  // Every published status is also handed to `server` (the HTTP endpoint);
  // nullptr detaches it.
  void serveHttp(StatusHttpServer* server) { http_server_ = server; }

  // agent::EngineListener
  void onStatusChanged(const agent::HostStatus& status) override;
  void onWakeupChanged(std::optional<agent::TimePoint> when) override;

  const StatusFile& statusFile() const { return status_file_; }
  const ServiceNotifier& notifier() const { return notifier_; }

 private:
  class ForwardingObserver;

  // Arms the wakeup timer at wakeup_at_ (at most a minute ahead), replacing
  // any earlier wakeup.
  void armWakeup();
  void writeStatusFile(const agent::HostStatus& status);

  boost::asio::io_context& io_;
  const agent::WallClock& clock_;
  AgentServiceOptions options_;
  StatusFile status_file_;
  ServiceNotifier notifier_;
  agent::MaintenanceEngine* engine_ = nullptr;
  std::unique_ptr<ForwardingObserver> observer_;
  boost::asio::steady_timer wakeup_;
  std::optional<agent::TimePoint> wakeup_at_;  // as the engine last told
  bool inventory_received_ = false;
  bool serving_ = false;
  std::string last_status_line_;
  StatusChangeLog change_log_;
  std::string last_write_error_;
  StatusHttpServer* http_server_ = nullptr;
  std::function<void(const agent::HostStatus&)> status_forwarder_;
  std::optional<agent::ControllerHealth> controller_health_;
  NoticeBoard* notice_board_ = nullptr;

  // Declared last: destroyed first, before the engine they call into.
  BusPtr bus_;
  std::unique_ptr<AgentObject> object_;
  std::unique_ptr<BusDispatcher> dispatcher_;
};

}  // namespace hostmaint::service
