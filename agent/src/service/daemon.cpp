#include "hostmaint/agent/service/daemon.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
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

}  // namespace

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

int runDaemon(agent::Config config, const DaemonOptions& options) {
  spdlog::set_level(effectiveLevel(config, options));
  try {
    ensureDirectory(config.paths.runtime_dir, std::filesystem::perms(0755), "runtime directory");
    ensureDirectory(config.paths.state_dir, std::filesystem::perms(0700), "state directory");
  } catch (const std::runtime_error& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }

  boost::asio::io_context io;
  int exit_status = 0;
  bool stop_requested = false;
  const std::string host = hostName();

  // libvirt's event loop must run on this io_context before any connection opens.
  auto event_loop = hv::installAsioEventLoop(io);
  std::unique_ptr<hv::Hypervisor> hypervisor =
      hv::makeLibvirtHypervisor(io, libvirtSettingsFrom(config));
  agent::SystemWallClock clock;

  // The token is checked before anything else is served: a token others can
  // read must stop the start, not be noticed later.
  std::unique_ptr<ControllerLink> controller_link;
  if (!config.controller.base_url.empty()) {
    try {
      controller_link = std::make_unique<ControllerLink>(
          io, config.controller,
          config.controller.host_id.empty() ? host : config.controller.host_id, clock);
    } catch (const std::exception& error) {
      spdlog::critical("cannot set up the controller link to {}: {}", config.controller.base_url,
                       error.what());
      return 1;
    }
  }

  // The notice webhook's token file is checked by the same rule.
  NoticeBoard notice_board(config.paths.state_dir, host, clock);
  AgentService* notice_health_sink = nullptr;  // the service, once it exists
  if (!config.notices.webhook_url.empty()) {
    try {
      notice_board.setWebhook(std::make_unique<NoticeWebhook>(
          io, config.notices, clock,
          [&notice_health_sink](const agent::NoticeWebhookHealth& health) {
            if (notice_health_sink) notice_health_sink->setNoticeWebhookHealth(health);
          }));
    } catch (const std::exception& error) {
      spdlog::critical("cannot set up the notice webhook {}: {}", config.notices.webhook_url,
                       error.what());
      return 1;
    }
  }

  AgentServiceOptions service_options;
  service_options.runtime_dir = config.paths.runtime_dir;
  service_options.caller_policy.admin_group = config.dbus.admin_group;
  service_options.on_bus_lost = [&](const std::string& why) {
    spdlog::critical("{}; stopping so the service manager can restart hostmaintd", why);
    exit_status = 1;
    io.stop();
  };
  AgentService service(io, clock, service_options);
  service.setNoticeBoard(&notice_board);
  notice_health_sink = &service;
  hypervisor->setObserver(&service.hypervisorObserver());
  // Whatever way this function returns, the hypervisor (destroyed last) must
  // not call into the service or engine after they are gone.
  struct ObserverDetach {
    hv::Hypervisor& hypervisor;
    ~ObserverDetach() { hypervisor.setObserver(nullptr); }
  } detach_observer{*hypervisor};
  agent::FileJournal journal(config.paths.state_dir);
  // Built after the first inventory (below); the signal handler may run before.
  std::optional<agent::MaintenanceEngine> engine;

  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> await_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
      if (error) return;
      if (signal_number == SIGHUP) {
        try {
          agent::Config loaded = agent::loadConfig(options.config_path, options.config_must_exist);
          warnAboutRestartOnlyKeys(config, loaded);
          if (engine) engine->updateSettings(agent::engineSettingsFrom(loaded, host));
          service.setCallerPolicy(CallerPolicy{loaded.dbus.admin_group});
          spdlog::set_level(effectiveLevel(loaded, options));
          config = std::move(loaded);
          spdlog::info("configuration reloaded from {}", describeSources(config));
        } catch (const agent::ConfigError& error) {
          spdlog::error("configuration reload failed, keeping the running configuration: {}",
                        error.what());
        }
        await_signal();
        return;
      }
      spdlog::info("stopping on {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
      service.notifier().stopping();
      stop_requested = true;
      // Actions already started keep running in libvirt; the journal has them
      // and a restarted daemon picks them up.
      io.stop();
    });
  };
  await_signal();

  // Reconcile against a real inventory when there is one: wait for it, but
  // not forever; the engine reconciles when the hypervisor connects later.
  bool waited_out = false;
  boost::asio::steady_timer connect_deadline(io, options.connect_timeout);
  connect_deadline.async_wait([&](const boost::system::error_code& error) {
    if (!error) waited_out = true;
  });
  while (!service.inventoryReceived() && !waited_out && !io.stopped()) io.run_one();
  connect_deadline.cancel();
  if (stop_requested || io.stopped()) return exit_status;
  if (!service.inventoryReceived())
    spdlog::warn(
        "no inventory from {} after {} s; starting without it and reconciling when it "
        "connects",
        config.libvirt.uri, options.connect_timeout.count());

  // The engine takes the hypervisor's connection state when it is built, so
  // it is built now, and recovers before the loop delivers any other event.
  engine.emplace(*hypervisor, clock, journal, agent::engineSettingsFrom(config, host), service);
  service.attach(*engine);
  try {
    engine->recover();
  } catch (const agent::JournalError& error) {
    // Starting afresh would forget a maintenance in progress: refuse instead.
    spdlog::critical("{} ({}); fix or move it aside to start without it", error.what(),
                     journal.path().string());
    return 1;
  }

  try {
    service.serve(openSystemBus());
  } catch (const BusSetupError& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  if (controller_link) {
    service.setStatusForwarder(
        [&link = *controller_link](const agent::HostStatus& status) { link.offerStatus(status); });
    // Offered first: the worker's first poll must know whether the host is draining.
    controller_link->offerStatus(service.shownStatus());
    controller_link->start(*engine, [&service](const agent::ControllerHealth& health) {
      service.setControllerHealth(health);
    });
  }
  // Listening starts once the bus name is ours: a second hostmaintd has
  // already failed on the name before it could take the port.
  std::optional<StatusHttpServer> http_server;
  // The server goes before the service: the service must not hand it a status after.
  struct HttpDetach {
    AgentService& service;
    ~HttpDetach() { service.serveHttp(nullptr); }
  } detach_http{service};
  if (config.http.enabled) {
    http_server.emplace(io, StatusHttpSettings{config.http.listen_address, config.http.port,
                                               config.http.max_connections,
                                               config.http.request_timeout});
    try {
      http_server->start(service.shownStatus());
    } catch (const HttpListenError& error) {
      spdlog::critical("{}", error.what());
      return 1;
    }
    service.serveHttp(&*http_server);
    spdlog::info("serving status, readiness and metrics on http://{}:{}",
                 config.http.listen_address, http_server->port());
  }
  WatchdogKeepalive watchdog(io, service.notifier());
  service.notifier().ready(statusLine(engine->status()));
  spdlog::info("hostmaintd {} ready: {} on {}, serving {} on the system bus at {}",
               HOSTMAINT_VERSION, statusLine(engine->status()), config.libvirt.uri, kBusName,
               systemBusAddress());

  io.run();
  watchdog.stop();
  return exit_status;
}

}  // namespace hostmaint::service
