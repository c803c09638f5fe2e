// hostmaintd composed in one object: Daemon owns every part of the running
// daemon as a member, declared in the order the parts are built (each from the
// ones above it) and so destroyed in reverse. Start-up order (reconcile before
// claiming the bus name, docs/architecture.md):
//   constructor: directories -> libvirt event loop on the io_context ->
//     hypervisor -> controller clients and notice webhook (their token files
//     checked) -> notice board -> journal -> signal handling;
//   run(): wait (bounded) for the first inventory -> agent (engine built and
//     recovered, D-Bus object, bus name, status.json) -> controller link ->
//     HTTP endpoint -> watchdog -> READY=1; then one thread runs the loop until
//     SIGTERM/SIGINT (a bus lost meanwhile is reconnected, BusLink).
#pragma once

#include <spdlog/common.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/service/agent_service.hpp"
#include "hostmaint/agent/service/cordon_keeper.hpp"
#include "hostmaint/agent/service/fleet_link.hpp"
#include "hostmaint/agent/service/controller_link.hpp"
#include "hostmaint/agent/service/notice_board.hpp"
#include "hostmaint/agent/service/service_notifier.hpp"
#include "hostmaint/agent/service/status_http_server.hpp"
#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace hostmaint::service {

struct DaemonOptions {
  std::filesystem::path config_path;
  bool config_must_exist = false;  // an explicit --config
  // --log-level; overrides the config's, also across reloads.
  std::optional<spdlog::level::level_enum> log_level;
  // How long to wait for the first inventory before recovering anyway (the
  // engine reconciles when the hypervisor connects later).
  std::chrono::seconds connect_timeout{10};
  // Where this boot's id is read: a changed id after a host shutdown says
  // the host rebooted (--boot-id-file, for tests).
  std::filesystem::path boot_id_file = "/proc/sys/kernel/random/boot_id";
};

// The first line of `file`, "" when it cannot be read.
std::string readBootId(const std::filesystem::path& file);

// The files a configuration was read from, ", "-separated, or
// "(defaults, no file)"; for --check-config and the reload log line.
std::string describeSources(const agent::Config& config);

// "trace", "debug", "info", "warn", "error", "critical", "off".
std::optional<spdlog::level::level_enum> parseLogLevel(std::string_view text);

// The daemon could not be set up; the message says what and where.
class DaemonStartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Daemon final {
 public:
  // Builds the parts that need no running loop (see the top of this file).
  // Throws DaemonStartError.
  Daemon(agent::Config config, DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts serving (see the top of this file) and runs the loop; returns the
  // process exit status: 0 after a clean stop, 1 when it could not start.
  int run();

 private:
  // Creating it creates the runtime and state directories when missing.
  struct Directories {
    explicit Directories(const agent::PathsConfig& paths);
  };

  void awaitSignal();
  void reload();
  // Runs the loop until the first inventory, a signal or the timeout; false
  // when the daemon was asked to stop meanwhile.
  bool awaitFirstInventory();
  void startServing();
  void publish(const agent::HostStatus& status);
  agent::EngineSettings engineSettings(const agent::Config& config) const;
  void onWebhookHealth(const agent::NoticeWebhookHealth& health);
  std::unique_ptr<FleetLink> fleetLink();

  // In dependency order: each part is built from those above it, and
  // destroyed before them. The callbacks the parts are given capture `this`:
  // the daemon outlives every part.
  agent::Config config_;
  const DaemonOptions options_;
  const std::string host_;
  const Directories directories_;
  boost::asio::io_context io_;
  const agent::SystemWallClock clock_;
  // libvirt's event loop runs on io_ before any connection opens, and stays
  // until the hypervisor's connection is closed.
  std::unique_ptr<hv::AsioEventLoopRegistration> event_loop_;
  std::unique_ptr<hv::Hypervisor> hypervisor_;
  // Built here so that their token files are checked before anything is
  // served; moved into the controller link by run().
  std::optional<ControllerClients> controller_clients_;
  NoticeBoard notice_board_;  // with the notice webhook and its thread, when configured
  agent::FileJournal journal_;
  // The cordon file beside the journal, and the [cordon] commands.
  CordonKeeper cordon_keeper_;
  ServiceNotifier notifier_;
  boost::asio::signal_set signals_;
  bool stop_requested_ = false;
  // [fleet]: etcd's client built (its password file checked) and its worker
  // started here; the agent asks it before draining (docs/fleet.md).
  std::unique_ptr<FleetLink> fleet_;
  // Built by run() once the first inventory is in, in this order.
  std::optional<AgentService> agent_;  // the engine, status.json, the D-Bus object and name
  std::optional<ControllerLink> controller_link_;
  std::optional<StatusHttpServer> http_server_;
  std::optional<WatchdogKeepalive> watchdog_;
};

// Runs the daemon; returns the process exit status (0 after a clean stop,
// 1 when it could not start).
int runDaemon(agent::Config config, const DaemonOptions& options);

}  // namespace hostmaint::service
