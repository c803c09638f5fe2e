#include "hostmaint/agent/service/status_http_server.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <utility>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "hostmaint/agent/service/status_http_request.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::array kPhases{agent::HostPhase::idle,     agent::HostPhase::scheduled,
                             agent::HostPhase::draining, agent::HostPhase::empty,
                             agent::HostPhase::in_maintenance, agent::HostPhase::restoring};
constexpr std::array kStages{
    agent::DomainStage::planned,   agent::DomainStage::awaiting_ack, agent::DomainStage::waiting,
    agent::DomainStage::acting,    agent::DomainStage::done,         agent::DomainStage::failed,
    agent::DomainStage::blocked,   agent::DomainStage::left,         agent::DomainStage::restoring,
    agent::DomainStage::restored,  agent::DomainStage::restore_failed};

bool isMigration(const agent::DomainStatus& domain) {
  return domain.stage == agent::DomainStage::acting && domain.action &&
         (*domain.action == agent::MaintenanceAction::live_migrate ||
          *domain.action == agent::MaintenanceAction::cold_migrate);
}

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class MetricsText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::uint64_t value) { sample(name, {}, value); }
  void sample(std::string_view name, Labels labels, std::uint64_t value) {
    line(name, labels, std::to_string(value));
  }
  // Seconds with millisecond resolution.
  void seconds(std::string_view name, Labels labels, std::chrono::milliseconds value) {
    const auto ms = std::max<std::int64_t>(0, value.count());
    char text[32];
    std::snprintf(text, sizeof text, "%lld.%03lld", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000));
    line(name, labels, text);
  }
  std::string take() { return std::move(out_); }

 private:
  void line(std::string_view name, Labels labels, std::string_view value) {
    out_ += name;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [label, label_value] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += label;
        out_ += "=\"";
        // The text format's escapes; anything else (UTF-8 included) goes as is.
        for (char c : label_value) {
          if (c == '\\' || c == '"') out_ += '\\';
          if (c == '\n') {
            out_ += "\\n";
            continue;
          }
          out_ += c;
        }
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  std::string out_;
};

std::string_view actionName(const agent::DomainStatus& domain) {
  return domain.action ? agent::toString(*domain.action) : std::string_view("none");
}

}  // namespace

void MetricsCounters::observe(const agent::HostStatus& status) {
  std::map<std::string, std::uint64_t> still_migrating;
  for (const auto& domain : status.domains) {
    if (!domain.progress) continue;
    const std::uint64_t processed = domain.progress->data_processed_bytes;
    auto known = migrating_bytes.find(domain.uuid);
    if (known != migrating_bytes.end() && processed < known->second) {
      // A new migration of the same domain (a retry or a fallback): the
      // earlier one's bytes were transferred all the same.
      finished_migration_bytes += known->second;
    }
    still_migrating[domain.uuid] = processed;
  }
  for (const auto& [uuid, bytes] : migrating_bytes) {
    if (!still_migrating.contains(uuid)) finished_migration_bytes += bytes;
  }
  migrating_bytes = std::move(still_migrating);

  const int failures = status.controller ? status.controller->consecutive_failures : 0;
  if (failures > controller_failures) {
    controller_errors += static_cast<std::uint64_t>(failures - controller_failures);
  }
  controller_failures = failures;
}

std::uint64_t MetricsCounters::migratedBytes() const {
  std::uint64_t total = finished_migration_bytes;
  for (const auto& [uuid, bytes] : migrating_bytes) total += bytes;
  return total;
}

std::string renderMetrics(const agent::HostStatus& status, const MetricsCounters& counters) {
  MetricsText text;
  text.family("hostmaint_phase", "gauge", "1 for the host's current maintenance phase, else 0.");
  for (agent::HostPhase phase : kPhases)
    text.sample("hostmaint_phase", {{"phase", agent::toString(phase)}},
                phase == status.phase ? 1 : 0);
  text.family("hostmaint_ready", "gauge",
              "1 when the host is proven empty and ready for maintenance.");
  text.sample("hostmaint_ready", status.ready ? 1 : 0);
  text.family("hostmaint_domains", "gauge", "Domains in the maintenance by stage.");
  std::map<agent::DomainStage, std::uint64_t> by_stage;
  for (const auto& domain : status.domains) ++by_stage[domain.stage];
  for (agent::DomainStage stage : kStages)
    text.sample("hostmaint_domains", {{"stage", agent::toString(stage)}}, by_stage[stage]);
  std::uint64_t migrations = 0;
  std::uint64_t processed = 0;
  std::uint64_t remaining = 0;
  for (const auto& domain : status.domains) {
    if (!isMigration(domain)) continue;
    ++migrations;
    if (domain.progress) {
      processed += domain.progress->data_processed_bytes;
      remaining += domain.progress->data_remaining_bytes;
    }
  }
  text.family("hostmaint_migrations_in_flight", "gauge", "Migrations running now.");
  text.sample("hostmaint_migrations_in_flight", migrations);
  text.family("hostmaint_migration_processed_bytes", "gauge",
              "Bytes transferred so far by the migrations running now.");
  text.sample("hostmaint_migration_processed_bytes", processed);
  text.family("hostmaint_migration_remaining_bytes", "gauge",
              "Bytes still to transfer by the migrations running now.");
  text.sample("hostmaint_migration_remaining_bytes", remaining);
  text.family("hostmaint_migrated_bytes_total", "counter",
              "Bytes transferred by migrations since hostmaintd started, running ones included.");
  text.sample("hostmaint_migrated_bytes_total", counters.migratedBytes());
  text.family("hostmaint_cordoned", "gauge",
              "1 while libvirt's hook refuses new domains on this host (drain to finish).");
  text.sample("hostmaint_cordoned", status.cordon.active ? 1 : 0);
  text.family("hostmaint_cordon_command_failed", "gauge",
              "1 when the last run of a [cordon] command failed.");
  for (const agent::CordonCommandStatus& run : status.cordon.commands)
    text.sample("hostmaint_cordon_command_failed", {{"command", run.which}},
                !run.running && !run.ok() ? 1 : 0);
  if (status.host_shutdown) {
    text.family("hostmaint_host_shutdown_domains", "gauge",
                "Domains of the last host shutdown by result.");
    std::map<std::string, std::uint64_t> by_result;
    for (const agent::HostShutdownDomain& domain : status.host_shutdown->domains)
      ++by_result[std::string(agent::toString(domain.result))];
    for (const auto& [result, count] : by_result)
      text.sample("hostmaint_host_shutdown_domains", {{"result", result}}, count);
  }
  text.family("hostmaint_overrun", "gauge",
              "1 while the maintenance window has ended with the host still draining.");
  text.sample("hostmaint_overrun", status.overrun ? 1 : 0);
  text.family("hostmaint_leftover_definitions", "gauge",
              "Definitions failed migrations may have left on destinations, not settled yet.");
  text.sample("hostmaint_leftover_definitions", status.leftovers.size());
  text.family("hostmaint_blockers", "gauge", "Reasons the host is not ready.");
  text.sample("hostmaint_blockers", status.blockers.size());
  text.family("hostmaint_hypervisor_connected", "gauge",
              "1 while the connection to the hypervisor is up.");
  text.sample("hostmaint_hypervisor_connected",
              status.hypervisor_connection == hv::ConnectionState::connected ? 1 : 0);
  if (status.dbus) {
    text.family("hostmaint_dbus_connected", "gauge",
                "1 while hostmaintd is connected to the D-Bus system bus and owns its name.");
    text.sample("hostmaint_dbus_connected", status.dbus->connected ? 1 : 0);
  }
  text.family("hostmaint_migration_throughput_bytes_per_second", "gauge",
              "Throughput of this host's recent migrations (moving average; 0 until one ended).");
  text.sample("hostmaint_migration_throughput_bytes_per_second", status.migration_throughput_bps);
  // Per domain: a host runs tens of domains, not thousands, so the label set stays small.
  text.family("hostmaint_action_duration_seconds", "gauge",
              "How long each domain's last finished maintenance action took.");
  for (const auto& domain : status.domains) {
    if (!domain.action_started_at || !domain.action_finished_at) continue;
    text.seconds("hostmaint_action_duration_seconds",
                 {{"domain", domain.name}, {"action", actionName(domain)}},
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     *domain.action_finished_at - *domain.action_started_at));
  }
  // Running actions by age: a stuck migration shows as a growing number.
  text.family("hostmaint_action_running_seconds", "gauge",
              "How long each action still running has been running.");
  for (const auto& domain : status.domains) {
    if (!domain.action_started_at || domain.action_finished_at) continue;
    if (domain.stage != agent::DomainStage::acting && domain.stage != agent::DomainStage::restoring)
      continue;
    text.seconds("hostmaint_action_running_seconds",
                 {{"domain", domain.name}, {"action", actionName(domain)}},
                 std::chrono::duration_cast<std::chrono::milliseconds>(status.updated_at -
                                                                       *domain.action_started_at));
  }
  if (status.controller) {
    text.family("hostmaint_controller_up", "gauge",
                "1 while the last exchange with the controller succeeded.");
    text.sample("hostmaint_controller_up", status.controller->consecutive_failures == 0 ? 1 : 0);
    text.family("hostmaint_controller_consecutive_errors", "gauge",
                "Failed exchanges with the controller since the last good one.");
    text.sample("hostmaint_controller_consecutive_errors",
                static_cast<std::uint64_t>(status.controller->consecutive_failures));
    text.family("hostmaint_controller_errors_total", "counter",
                "Failed exchanges with the controller since hostmaintd started.");
    text.sample("hostmaint_controller_errors_total", counters.controller_errors);
  }
  if (status.fleet) {
    const agent::FleetStatus& fleet = *status.fleet;
    text.family("hostmaint_fleet_up", "gauge", "1 while the last exchange with etcd succeeded.");
    text.sample("hostmaint_fleet_up", fleet.reachable ? 1 : 0);
    text.family("hostmaint_fleet_slot_held", "gauge",
                "1 while this host holds a fleet maintenance slot.");
    text.sample("hostmaint_fleet_slot_held", fleet.slot ? 1 : 0);
    text.family("hostmaint_fleet_waiting_for_slot", "gauge",
                "1 while this host's maintenance waits for a fleet slot.");
    text.sample("hostmaint_fleet_waiting_for_slot", fleet.waiting_for_slot ? 1 : 0);
    text.family("hostmaint_fleet_hosts", "gauge", "Hosts publishing a record in the fleet.");
    text.sample("hostmaint_fleet_hosts", static_cast<std::uint64_t>(fleet.hosts));
    text.family("hostmaint_fleet_hosts_in_maintenance", "gauge",
                "Maintenance slots held in the fleet, as last read from etcd.");
    text.sample("hostmaint_fleet_hosts_in_maintenance",
                static_cast<std::uint64_t>(fleet.hosts_in_maintenance));
    text.family("hostmaint_fleet_max_concurrent", "gauge",
                "Hosts of the fleet allowed in maintenance at once (this host's limit).");
    text.sample("hostmaint_fleet_max_concurrent", static_cast<std::uint64_t>(fleet.max_concurrent));
    // Groups across hosts and peers as destinations, as last read: one
    // sample per group or peer, each family only when there is one.
    auto perGroup = [&](std::string_view name, std::string_view help, auto value) {
      if (fleet.groups.empty()) return;
      text.family(name, "gauge", help);
      for (const agent::FleetGroup& group : fleet.groups) {
        if (auto v = value(group)) text.sample(name, {{"group", group.group}}, *v);
      }
    };
    using Value = std::optional<std::uint64_t>;
    perGroup("hostmaint_fleet_group_impacted",
             "Members of the group impacted now across the fleet, as the hosts' records say.",
             [](const agent::FleetGroup& g) -> Value { return g.impacted.size(); });
    perGroup("hostmaint_fleet_group_max_impacted",
             "The group's max_impacted_members (the smallest any host publishes).",
             [](const agent::FleetGroup& g) -> Value {
               return g.max_impacted_members > 0 ? Value(g.max_impacted_members) : std::nullopt;
             });
    perGroup("hostmaint_fleet_group_members", "Members of the group on every host of the fleet.",
             [](const agent::FleetGroup& g) -> Value { return g.members; });
    auto perPeer = [&](std::string_view name, std::string_view help, auto value) {
      if (fleet.peers.empty()) return;
      text.family(name, "gauge", help);
      for (const agent::FleetPeer& peer : fleet.peers) {
        if (auto v = value(peer)) text.sample(name, {{"peer", peer.host}}, *v);
      }
    };
    perPeer("hostmaint_fleet_peer_incoming",
            "Migrations into the peer claimed by hosts other than this one.",
            [](const agent::FleetPeer& p) -> Value { return p.incoming; });
    perPeer("hostmaint_fleet_peer_max_incoming", "The peer's max_incoming_migrations.",
            [](const agent::FleetPeer& p) -> Value { return p.max_incoming; });
    perPeer("hostmaint_fleet_peer_queued",
            "Migrations waiting in the peer's queue for an incoming slot, from every host.",
            [](const agent::FleetPeer& p) -> Value { return p.queued; });
    perPeer("hostmaint_fleet_peer_free_memory_bytes",
            "The peer's free memory after its reserve, as it publishes it (when known).",
            [](const agent::FleetPeer& p) -> Value { return p.free_memory_bytes; });
    perPeer("hostmaint_fleet_peer_usable",
            "1 while the peer is a migration destination candidate for this host.",
            [](const agent::FleetPeer& p) -> Value { return p.usable ? 1 : 0; });
    perPeer("hostmaint_fleet_peer_cordoned", "1 while the peer is cordoned.",
            [](const agent::FleetPeer& p) -> Value { return p.cordoned ? 1 : 0; });
    perPeer("hostmaint_fleet_peer_in_maintenance",
            "1 while the peer's own maintenance is on (its phase is not idle).",
            [](const agent::FleetPeer& p) -> Value { return p.phase != "idle" ? 1 : 0; });
  }
  text.family("hostmaint_status_generation", "gauge",
              "Generation of the status snapshot, bumped on every change.");
  text.sample("hostmaint_status_generation", status.generation);
  return text.take();
}

std::string renderNotReady(const agent::HostStatus& status) {
  nlohmann::json blockers = nlohmann::json::array();
  for (const auto& blocker : status.blockers)
    blockers.push_back({{"subject", blocker.subject}, {"reason", blocker.reason}});
  nlohmann::json body{{"ready", false},
                      {"phase", std::string(agent::toString(status.phase))},
                      {"blockers", std::move(blockers)}};
  return body.dump() + "\n";
}

struct StatusHttpState {
  StatusHttpState(asio::io_context& io, StatusHttpSettings s) : settings(std::move(s)), acceptor(io) {}

  StatusHttpSettings settings;
  tcp::acceptor acceptor;
  agent::HostStatus status;
  MetricsCounters counters;
  std::size_t connections = 0;
  // Open connections' streams, to close them when the server goes away.
  std::map<std::uint64_t, beast::tcp_stream*> open;
  std::uint64_t next_id = 0;
};

namespace {

using StatePtr = std::shared_ptr<StatusHttpState>;

}  // namespace

// One connection: read one request within the deadline, answer, close.
class StatusHttpSession : public std::enable_shared_from_this<StatusHttpSession> {
 public:
  StatusHttpSession(StatePtr state, tcp::socket socket)
      : state_(std::move(state)), stream_(std::move(socket)), id_(state_->next_id++) {
    ++state_->connections;
    state_->open.emplace(id_, &stream_);
    limitStatusRequest(parser_);
  }
  ~StatusHttpSession() {
    --state_->connections;
    state_->open.erase(id_);
  }
  StatusHttpSession(const StatusHttpSession&) = delete;
  StatusHttpSession& operator=(const StatusHttpSession&) = delete;

  void start() {
    stream_.expires_after(state_->settings.request_timeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       self->onRead(error);
                     });
  }

 private:
  void onRead(beast::error_code error) {
    // Timeout, reset, oversized or malformed request: nothing worth answering.
    if (error) {
      close();
      return;
    }
    respond(parser_.get());
  }

  void respond(const http::request<http::string_body>& request) {
    response_.version(request.version());
    response_.keep_alive(false);
    response_.set(http::field::server, "hostmaintd");
    response_.set(http::field::cache_control, "no-store");
    const std::string_view target(request.target().data(), request.target().size());
    const agent::HostStatus& status = state_->status;
    switch (routeStatusRequest(request.method(), target)) {
      case StatusRoute::not_found:
        answer(http::status::not_found, "text/plain; charset=utf-8", "not found\n");
        break;
      case StatusRoute::method_not_allowed:
        response_.set(http::field::allow, "GET");
        answer(http::status::method_not_allowed, "text/plain; charset=utf-8",
               "method not allowed; use GET\n");
        break;
      case StatusRoute::status:
        answer(http::status::ok, "application/json", agent::statusToJson(status).dump() + "\n");
        break;
      case StatusRoute::readyz:
        if (status.ready)
          answer(http::status::ok, "text/plain; charset=utf-8", "ready\n");
        else
          answer(http::status::service_unavailable, "application/json", renderNotReady(status));
        break;
      case StatusRoute::metrics:
        answer(http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
               renderMetrics(status, state_->counters));
        break;
    }
  }

  void answer(http::status code, std::string_view content_type, std::string body) {
    response_.result(code);
    response_.set(http::field::content_type,
                  beast::string_view(content_type.data(), content_type.size()));
    response_.body() = std::move(body);
    response_.prepare_payload();
    // The same deadline covers the write: a client that stops reading is dropped.
    stream_.expires_after(state_->settings.request_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code, std::size_t) {
                        self->close();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  StatePtr state_;
  beast::tcp_stream stream_;
  std::uint64_t id_;
  beast::flat_buffer buffer_;
  StatusRequestParser parser_;
  http::response<http::string_body> response_;
};

namespace {

void accept(const StatePtr& state) {
  state->acceptor.async_accept(
      [weak = std::weak_ptr(state)](beast::error_code error, tcp::socket socket) {
        StatePtr state = weak.lock();
        if (!state || !state->acceptor.is_open()) return;
        if (error) {
          spdlog::debug("http: accept failed: {}", error.message());
        } else if (state->connections >= state->settings.max_connections) {
          // Over the cap: closed at once, so idle clients cannot pile up.
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          std::make_shared<StatusHttpSession>(state, std::move(socket))->start();
        }
        accept(state);
      });
}

}  // namespace

StatusHttpServer::StatusHttpServer(asio::io_context& io, StatusHttpSettings settings)
    : state_(std::make_shared<StatusHttpState>(io, std::move(settings))) {}

StatusHttpServer::~StatusHttpServer() {
  beast::error_code ignored;
  state_->acceptor.close(ignored);
  // Closing cancels their pending operations; the sessions then end in the loop.
  auto open = state_->open;
  for (auto& [id, stream] : open) {
    stream->socket().close(ignored);
  }
}

void StatusHttpServer::start(const agent::HostStatus& initial) {
  state_->counters.observe(initial);
  state_->status = initial;
  const std::string where =
      state_->settings.listen_address + ":" + std::to_string(state_->settings.port);
  beast::error_code error;
  const asio::ip::address address = asio::ip::make_address(state_->settings.listen_address, error);
  if (error) throw HttpListenError("cannot listen on " + where + ": " + error.message());
  const tcp::endpoint endpoint(address, state_->settings.port);
  auto fail = [&](std::string_view step) {
    throw HttpListenError("cannot " + std::string(step) + " HTTP endpoint " + where + ": " +
                          error.message());
  };
  if (state_->acceptor.open(endpoint.protocol(), error)) fail("open");
  if (state_->acceptor.set_option(asio::socket_base::reuse_address(true), error)) fail("set up");
  if (state_->acceptor.bind(endpoint, error)) fail("bind");
  if (state_->acceptor.listen(asio::socket_base::max_listen_connections, error)) fail("listen on");
  accept(state_);
}

void StatusHttpServer::update(const agent::HostStatus& status) {
  state_->counters.observe(status);
  state_->status = status;
}

std::uint16_t StatusHttpServer::port() const {
  beast::error_code error;
  if (!state_->acceptor.is_open()) return 0;
  const auto endpoint = state_->acceptor.local_endpoint(error);
  return error ? 0 : endpoint.port();
}

std::size_t StatusHttpServer::openConnections() const { return state_->connections; }

}  // namespace hostmaint::service
