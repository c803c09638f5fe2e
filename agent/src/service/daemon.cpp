#include "hostmaint/agent/service/daemon.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/service/agent_service.hpp"
#include "hostmaint/agent/service/asio_sd_bus.hpp"
#include "hostmaint/agent/service/controller_link.hpp"
#include "hostmaint/agent/service/notice_board.hpp"
#include "hostmaint/agent/service/service_notifier.hpp"
#include "hostmaint/agent/service/status_http_server.hpp"
#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace hostmaint::service {
namespace {

std::string hostName() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0) return "localhost";
  return name.data();
}

// Creates `dir` with `mode` when missing; an existing directory is left as
// the administrator set it up. Throws std::runtime_error naming the directory.
void ensureDirectory(const std::filesystem::path& dir, std::filesystem::perms mode,
                     const char* what) {
  std::error_code error;
  if (std::filesystem::is_directory(dir, error)) return;
  std::filesystem::create_directories(dir, error);
  if (!error) std::filesystem::permissions(dir, mode, error);
  if (error)
    throw std::runtime_error("cannot create the " + std::string(what) + " " + dir.string() + ": " +
                             error.message());
}

hv::LibvirtSettings libvirtSettingsFrom(const agent::Config& config) {
  hv::LibvirtSettings settings;
  settings.uri = config.libvirt.uri;
  settings.keepalive_interval = config.libvirt.keepalive_interval;
  settings.keepalive_count = config.libvirt.keepalive_count;
  settings.reconnect_min = config.libvirt.reconnect_min;
  settings.reconnect_max = config.libvirt.reconnect_max;
  settings.qemu_process_scope = config.evidence.qemu_process_scope;
  settings.proc_root = config.evidence.proc_root;
  settings.sysfs_root = config.evidence.sysfs_root;
  // Every action in flight holds a worker for its duration. The engine's
  // limits say how many run (at a host shutdown, every domain at once by
  // default): the pool must not add a lower one, and keeps room for the
  // probes that run beside them. Threads start only when work is there.
  const unsigned at_shutdown =
      config.host_shutdown.max_parallel == 0 ? 112u : config.host_shutdown.max_parallel;
  settings.worker_threads = std::max(config.limits.max_parallel_actions, at_shutdown) + 16;
  return settings;
}

spdlog::level::level_enum effectiveLevel(const agent::Config& config,
                                         const DaemonOptions& options) {
  if (options.log_level) return *options.log_level;
  return parseLogLevel(config.log_level).value_or(spdlog::level::info);
}

// Keys read once at start; a reload that changes them says they need a restart.
void warnAboutRestartOnlyKeys(const agent::Config& running, const agent::Config& loaded) {
  auto warn = [](const char* key) {
    spdlog::warn("configuration reload: {} changed; it takes effect when hostmaintd restarts", key);
  };
  if (running.libvirt.uri != loaded.libvirt.uri) warn("libvirt.uri");
  if (running.libvirt.keepalive_interval != loaded.libvirt.keepalive_interval ||
      running.libvirt.keepalive_count != loaded.libvirt.keepalive_count ||
      running.libvirt.reconnect_min != loaded.libvirt.reconnect_min ||
      running.libvirt.reconnect_max != loaded.libvirt.reconnect_max)
    warn("the [libvirt] connection settings");
  if (running.paths.state_dir != loaded.paths.state_dir) warn("paths.state_dir");
  if (running.paths.runtime_dir != loaded.paths.runtime_dir) warn("paths.runtime_dir");
  if (running.evidence.qemu_process_scope != loaded.evidence.qemu_process_scope ||
      running.evidence.proc_root != loaded.evidence.proc_root ||
      running.evidence.sysfs_root != loaded.evidence.sysfs_root)
    warn("the [evidence] settings");
  if (running.http.enabled != loaded.http.enabled ||
      running.http.listen_address != loaded.http.listen_address ||
      running.http.port != loaded.http.port ||
      running.http.max_connections != loaded.http.max_connections ||
      running.http.request_timeout != loaded.http.request_timeout)
    warn("the [http] settings");
  const agent::NoticesConfig& a = running.notices;
  const agent::NoticesConfig& b = loaded.notices;
  if (a.webhook_url != b.webhook_url || a.webhook_token_file != b.webhook_token_file ||
      a.webhook_ca_file != b.webhook_ca_file ||
      a.webhook_connect_timeout != b.webhook_connect_timeout ||
      a.webhook_timeout != b.webhook_timeout || a.webhook_attempts != b.webhook_attempts ||
      a.webhook_retry_min != b.webhook_retry_min || a.webhook_retry_max != b.webhook_retry_max)
    warn("the [notices] webhook settings");
}

// The controller's HTTP clients when a controller is configured; reading
// their token file is the first check a start must pass.
std::optional<ControllerClients> controllerClients(const agent::ControllerConfig& config,
                                                   const std::string& host) {
  if (config.base_url.empty()) return std::nullopt;
  try {
    return std::make_optional<ControllerClients>(config,
                                                 config.host_id.empty() ? host : config.host_id);
  } catch (const std::exception& error) {
    throw DaemonStartError("cannot set up the controller link to " + config.base_url + ": " +
                           error.what());
  }
}

// The notice webhook when one is configured; its token file is checked by
// the controller's rule.
std::unique_ptr<NoticeWebhook> noticeWebhook(
    boost::asio::io_context& io, const agent::NoticesConfig& config, const agent::WallClock& clock,
    std::function<void(const agent::NoticeWebhookHealth&)> on_health) {
  if (config.webhook_url.empty()) return nullptr;
  try {
    return std::make_unique<NoticeWebhook>(io, config, clock, std::move(on_health));
  } catch (const std::exception& error) {
    throw DaemonStartError("cannot set up the notice webhook " + config.webhook_url + ": " +
                           error.what());
  }
}

// The hypervisor's observer while the daemon waits for the first inventory
// (the engine does not exist yet: it would journal a fresh state over the
// saved one). It only logs and notes; AgentService takes over afterwards.
class FirstInventory final : public hv::HypervisorObserver {
 public:
  explicit FirstInventory(hv::Hypervisor& hypervisor) : hypervisor_(hypervisor) {
    hypervisor_.setObserver(this);
  }
  ~FirstInventory() override { hypervisor_.setObserver(nullptr); }
  FirstInventory(const FirstInventory&) = delete;
  FirstInventory& operator=(const FirstInventory&) = delete;

  bool received() const { return received_; }

  void onDomainEvent(const hv::DomainEvent&) override {}
  void onMigrationSwitchover(const std::string&) override {}  // nothing migrates yet
  void onInventoryRefreshed() override { received_ = true; }
  void onConnectionStateChanged(hv::ConnectionState state, const std::string& detail) override {
    logHypervisorConnection(state, detail);
  }

 private:
  hv::Hypervisor& hypervisor_;
  bool received_ = false;
};

}  // namespace

std::string readBootId(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string id;
  if (in) std::getline(in, id);
  return id;
}

std::string describeSources(const agent::Config& config) {
  std::string files;
  for (const auto& source : config.sources) {
    if (!files.empty()) files += ", ";
    files += source.string();
  }
  return files.empty() ? "(defaults, no file)" : files;
}

std::optional<spdlog::level::level_enum> parseLogLevel(std::string_view text) {
  if (text == "trace") return spdlog::level::trace;
  if (text == "debug") return spdlog::level::debug;
  if (text == "info") return spdlog::level::info;
  if (text == "warn") return spdlog::level::warn;
  if (text == "error") return spdlog::level::err;
  if (text == "critical") return spdlog::level::critical;
  if (text == "off") return spdlog::level::off;
  return std::nullopt;
}

Daemon::Directories::Directories(const agent::PathsConfig& paths) {
  try {
    ensureDirectory(paths.runtime_dir, std::filesystem::perms(0755), "runtime directory");
    ensureDirectory(paths.state_dir, std::filesystem::perms(0700), "state directory");
  } catch (const std::runtime_error& error) {
    throw DaemonStartError(error.what());
  }
}

Daemon::Daemon(agent::Config config, DaemonOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      host_(hostName()),
      directories_(config_.paths),
      event_loop_(hv::installAsioEventLoop(io_)),
      hypervisor_(hv::makeLibvirtHypervisor(io_, libvirtSettingsFrom(config_))),
      controller_clients_(controllerClients(config_.controller, host_)),
      notice_board_(config_.paths.state_dir, host_, clock_,
                    noticeWebhook(io_, config_.notices, clock_,
                                  [this](const agent::NoticeWebhookHealth& health) {
                                    onWebhookHealth(health);
                                  })),
      journal_(config_.paths.state_dir),
      cordon_keeper_(io_, config_.paths.state_dir / "cordon.json", host_, config_.cordon, clock_,
                     [this] {
                       if (agent_) agent_->republish();
                     }),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      fleet_(fleetLink()) {
  awaitSignal();
}

std::unique_ptr<FleetLink> Daemon::fleetLink() {
  if (!config_.fleet.enabled()) return nullptr;
  FleetHooks hooks;
  hooks.on_change = [this] {
    if (!agent_) return;
    agent_->republish();
    agent_->engine().tick();
  };
  hooks.schedule = [this](const agent::ScheduleRequest& request) {
    if (!agent_) throw agent::CommandError("hostmaintd is not serving yet");
    agent_->engine().schedule(request);
  };
  hooks.begin = [this] {
    if (agent_) agent_->engine().begin();
  };
  hooks.finish = [this] {
    if (agent_) agent_->engine().finish();
  };
  try {
    return std::make_unique<FleetLink>(
        io_, config_.fleet, fleetHostName(config_, host_), clock_, std::move(hooks),
        FleetLocal{config_.paths.state_dir / "fleet-command.json",
                   readBootId(options_.boot_id_file), config_.evidence.proc_root / "meminfo",
                   config_.migration.reserved_memory_mib << 20});
  } catch (const agent::fleet::EtcdError& error) {
    throw DaemonStartError("cannot set up the fleet link to etcd: " + std::string(error.what()));
  }
}

Daemon::~Daemon() = default;

agent::EngineSettings Daemon::engineSettings(const agent::Config& config) const {
  agent::EngineSettings settings = agent::engineSettingsFrom(config, host_);
  settings.boot_id = readBootId(options_.boot_id_file);
  return settings;
}

void Daemon::awaitSignal() {
  signals_.async_wait([this](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    if (signal_number == SIGHUP) {
      reload();
      awaitSignal();
      return;
    }
    spdlog::info("stopping on {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    notifier_.stopping();
    stop_requested_ = true;
    // Shutdowns and managed-saves on worker threads give up at their next
    // poll, and a pre-copy migration is aborted (docs/architecture.md,
    // "Stopping"); the journal has them all and a restarted daemon reconciles.
    io_.stop();
  });
}

void Daemon::reload() {
  try {
    agent::Config loaded = agent::loadConfig(options_.config_path, options_.config_must_exist);
    warnAboutRestartOnlyKeys(config_, loaded);
    // Before the agent exists its settings come from config_ when it is built.
    if (agent_)
      agent_->reload(engineSettings(loaded), CallerPolicy{loaded.dbus.admin_group});
    cordon_keeper_.reload(loaded.cordon);
    spdlog::set_level(effectiveLevel(loaded, options_));
    config_ = std::move(loaded);
    spdlog::info("configuration reloaded from {}", describeSources(config_));
  } catch (const agent::ConfigError& error) {
    spdlog::error("configuration reload failed, keeping the running configuration: {}",
                  error.what());
  }
}

bool Daemon::awaitFirstInventory() {
  FirstInventory first(*hypervisor_);
  bool waited_out = false;
  boost::asio::steady_timer deadline(io_, options_.connect_timeout);
  deadline.async_wait([&](const boost::system::error_code& error) {
    if (!error) waited_out = true;
  });
  while (!first.received() && !waited_out && !io_.stopped()) io_.run_one();
  deadline.cancel();
  if (stop_requested_ || io_.stopped()) return false;
  if (!first.received())
    spdlog::warn(
        "no inventory from {} after {} s; starting without it and reconciling when it "
        "connects",
        config_.libvirt.uri, options_.connect_timeout.count());
  return true;
}

void Daemon::publish(const agent::HostStatus& status) {
  if (fleet_) fleet_->offerStatus(status);
  if (http_server_) http_server_->update(status);
  if (controller_link_) controller_link_->offerStatus(status);
}

void Daemon::onWebhookHealth(const agent::NoticeWebhookHealth& health) {
  notice_board_.setWebhookHealth(health);
  // Delivery health is status like any other: every reader sees it.
  if (agent_) agent_->republish();
}

void Daemon::startServing() {
  AgentServiceOptions options;
  options.runtime_dir = config_.paths.runtime_dir;
  options.caller_policy.admin_group = config_.dbus.admin_group;
  options.on_published = [this](const agent::HostStatus& status) { publish(status); };
  try {
    // The engine takes the hypervisor's connection state when it is built,
    // so it is built now, and recovers before the loop delivers any other event.
    agent_.emplace(io_,
                   AgentServiceParts{clock_, *hypervisor_, journal_, notifier_, &notice_board_,
                                     &cordon_keeper_, fleet_.get()},
                   engineSettings(config_), openSystemBus(), std::move(options));
  } catch (const agent::JournalError& error) {
    // Starting afresh would forget a maintenance in progress: refuse instead.
    throw DaemonStartError(std::string(error.what()) + " (" + journal_.path().string() +
                           "); fix or move it aside to start without it");
  } catch (const BusSetupError& error) {
    throw DaemonStartError(error.what());
  }
  if (controller_clients_) {
    controller_link_.emplace(io_, config_.controller, std::move(*controller_clients_), clock_,
                             agent_->engine(), agent_->shownStatus(),
                             [this](const agent::ControllerHealth& health) {
                               agent_->showControllerHealth(health);
                             });
    controller_clients_.reset();
  }
  if (fleet_) fleet_->offerStatus(agent_->shownStatus());
  // Listening starts once the bus name is ours: a second hostmaintd has
  // already failed on the name before it could take the port.
  if (config_.http.enabled) {
    http_server_.emplace(io_, StatusHttpSettings{config_.http.listen_address, config_.http.port,
                                                 config_.http.max_connections,
                                                 config_.http.request_timeout});
    try {
      http_server_->start(agent_->shownStatus());
    } catch (const HttpListenError& error) {
      throw DaemonStartError(error.what());
    }
    spdlog::info("serving status, readiness and metrics on http://{}:{}",
                 config_.http.listen_address, http_server_->port());
  }
  watchdog_.emplace(io_, notifier_);
}

int Daemon::run() {
  if (!awaitFirstInventory()) return 0;
  try {
    startServing();
  } catch (const DaemonStartError& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  const std::string status = statusLine(agent_->engine().status());
  notifier_.ready(status);
  spdlog::info("hostmaintd {} ready: {} on {}, serving {} on the system bus at {}",
               HOSTMAINT_VERSION, status, config_.libvirt.uri, kBusName, systemBusAddress());
  io_.run();
  watchdog_->stop();
  return 0;
}

int runDaemon(agent::Config config, const DaemonOptions& options) {
  spdlog::set_level(effectiveLevel(config, options));
  std::optional<Daemon> daemon;
  try {
    daemon.emplace(std::move(config), options);
  } catch (const DaemonStartError& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  return daemon->run();
}

}  // namespace hostmaint::service
