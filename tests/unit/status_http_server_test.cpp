// StatusHttpServer over real sockets: the server runs on an io_context in a
// background thread (as on the daemon's loop), the test speaks HTTP to it
// with blocking Beast clients.
#include "hostmaint/agent/service/status_http_server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace hostmaint::service {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

agent::HostStatus drainingStatus() {
  agent::HostStatus status;
  status.generation = 7;
  status.host = "host-a";
  status.phase = agent::HostPhase::draining;
  status.hypervisor_connection = hv::ConnectionState::connected;
  status.blockers.push_back({"domain web1", "migrating to host-b"});
  agent::DomainStatus web1;
  web1.uuid = "00000000-0000-0000-0000-000000000001";
  web1.name = "web1";
  web1.stage = agent::DomainStage::acting;
  web1.action = agent::MaintenanceAction::live_migrate;
  web1.progress = agent::MigrationProgress{};
  web1.progress->data_processed_bytes = 1000;
  web1.progress->data_remaining_bytes = 24;
  web1.action_started_at = agent::TimePoint{} + std::chrono::seconds(170);
  status.updated_at = agent::TimePoint{} + std::chrono::seconds(200);
  status.domains.push_back(web1);
  agent::DomainStatus db1;
  db1.name = "db1";
  db1.stage = agent::DomainStage::done;
  db1.action = agent::MaintenanceAction::suspend;
  db1.action_started_at = agent::TimePoint{} + std::chrono::seconds(100);
  db1.action_finished_at = agent::TimePoint{} + std::chrono::milliseconds(142250);
  status.domains.push_back(db1);
  status.migration_throughput_bps = 125000000;
  agent::ControllerHealth controller;
  controller.consecutive_failures = 3;
  status.controller = controller;
  status.dbus = agent::BusHealth{false, agent::TimePoint{} + std::chrono::seconds(190), "lost"};
  return status;
}

agent::HostStatus emptyStatus() {
  agent::HostStatus status = drainingStatus();
  status.generation = 8;
  status.phase = agent::HostPhase::empty;
  status.ready = true;
  status.blockers.clear();
  for (auto& domain : status.domains) domain.stage = agent::DomainStage::done;
  return status;
}

// The server on a loop thread; every call into it goes through the loop.
class ServerFixture : public ::testing::Test {
 protected:
  void startServer(StatusHttpSettings settings, const agent::HostStatus& initial) {
    settings.listen_address = "127.0.0.1";
    settings.port = 0;
    server_.emplace(io_, settings);
    server_->start(initial);
    port_ = server_->port();
    ASSERT_NE(port_, 0);
    loop_ = std::thread([this] { io_.run(); });
  }

  template <typename F>
  auto onLoop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  void TearDown() override {
    if (loop_.joinable()) {
      onLoop([this] { server_.reset(); });
      work_.reset();
      loop_.join();
    }
  }

  http::response<http::string_body> request(http::verb verb, std::string_view target) {
    asio::io_context client_io;
    beast::tcp_stream stream(client_io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    stream.expires_after(5s);
    http::request<http::empty_body> req(verb, beast::string_view(target.data(), target.size()),
                                        11);
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return response;
  }

  // A connected client that never sends; reads time out after 3 s so a
  // server that never drops it fails the test instead of hanging it.
  tcp::socket idleClient(asio::io_context& client_io) {
    tcp::socket socket(client_io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    timeval limit{3, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return socket;
  }

  // True when the server closed `socket` (EOF or reset) rather than the read timing out.
  static bool closedByServer(tcp::socket& socket) {
    char byte = 0;
    beast::error_code error;
    socket.read_some(asio::buffer(&byte, 1), error);
    return error == asio::error::eof || error == asio::error::connection_reset;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ =
      asio::make_work_guard(io_);
  std::optional<StatusHttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread loop_;
};

// Strict Prometheus text format 0.0.4 line checker: returns the problems found.
std::vector<std::string> prometheusProblems(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf))");
  std::vector<std::string> problems;
  std::set<std::string> typed;
  std::set<std::string> sampled;
  if (text.empty() || text.back() != '\n') problems.push_back("does not end with a newline");
  std::istringstream lines(text);
  std::string line;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, match, help)) continue;
    if (std::regex_match(line, match, type)) {
      if (!typed.insert(match[1]).second) problems.push_back("second TYPE for " + match[1].str());
      if (sampled.count(match[1])) problems.push_back("TYPE after samples: " + line);
      continue;
    }
    if (std::regex_match(line, match, sample)) {
      if (!typed.count(match[1])) problems.push_back("sample without TYPE: " + line);
      sampled.insert(match[1]);
      continue;
    }
    problems.push_back("malformed line: '" + line + "'");
  }
  return problems;
}

// name{labels} -> value, for the samples in `text`.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST_F(ServerFixture, ReadyzIs503WithBlockersUntilTheHostIsReady) {
  startServer({}, drainingStatus());
  auto response = request(http::verb::get, "/readyz");
  EXPECT_EQ(response.result(), http::status::service_unavailable);
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["ready"], false);
  EXPECT_EQ(body["phase"], "draining");
  ASSERT_EQ(body["blockers"].size(), 1u);
  EXPECT_EQ(body["blockers"][0]["subject"], "domain web1");

  onLoop([this] { server_->update(emptyStatus()); });
  response = request(http::verb::get, "/readyz");
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_EQ(response.body(), "ready\n");
}

TEST_F(ServerFixture, StatusIsTheStatusJson) {
  startServer({}, drainingStatus());
  auto response = request(http::verb::get, "/v1/status");
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_EQ(response[http::field::content_type], "application/json");
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["host"], "host-a");
  EXPECT_EQ(body["phase"], "draining");
  EXPECT_EQ(body["generation"], 7);
}

TEST_F(ServerFixture, MetricsAreValidPrometheusTextWithTheStatusValues) {
  startServer({}, drainingStatus());
  auto response = request(http::verb::get, "/metrics");
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_EQ(response[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(prometheusProblems(response.body()), std::vector<std::string>{});
  auto values = samples(response.body());
  EXPECT_EQ(values["hostmaint_phase{phase=\"draining\"}"], "1");
  EXPECT_EQ(values["hostmaint_phase{phase=\"idle\"}"], "0");
  EXPECT_EQ(values["hostmaint_phase{phase=\"in-maintenance\"}"], "0");
  EXPECT_EQ(values["hostmaint_ready"], "0");
  EXPECT_EQ(values["hostmaint_domains{stage=\"acting\"}"], "1");
  EXPECT_EQ(values["hostmaint_domains{stage=\"done\"}"], "1");
  EXPECT_EQ(values["hostmaint_domains{stage=\"restore-failed\"}"], "0");
  EXPECT_EQ(values["hostmaint_migrations_in_flight"], "1");
  EXPECT_EQ(values["hostmaint_migration_processed_bytes"], "1000");
  EXPECT_EQ(values["hostmaint_migration_remaining_bytes"], "24");
  EXPECT_EQ(values["hostmaint_blockers"], "1");
  EXPECT_EQ(values["hostmaint_overrun"], "0");
  EXPECT_EQ(values["hostmaint_hypervisor_connected"], "1");
  EXPECT_EQ(values["hostmaint_dbus_connected"], "0");
  EXPECT_EQ(values["hostmaint_status_generation"], "7");
  EXPECT_EQ(values["hostmaint_action_duration_seconds{domain=\"db1\",action=\"suspend\"}"],
            "42.250");
  EXPECT_EQ(values.count("hostmaint_action_duration_seconds{domain=\"web1\",action=\"live-migrate\"}"),
            0u)
      << "web1's action has not finished";
  EXPECT_EQ(values["hostmaint_action_running_seconds{domain=\"web1\",action=\"live-migrate\"}"],
            "30.000");
  EXPECT_EQ(values["hostmaint_migrated_bytes_total"], "1000");
  EXPECT_EQ(values["hostmaint_controller_errors_total"], "3");
  EXPECT_EQ(values["hostmaint_migration_throughput_bytes_per_second"], "125000000");
  EXPECT_EQ(values["hostmaint_controller_up"], "0");
  EXPECT_EQ(values["hostmaint_controller_consecutive_errors"], "3");
}

TEST(Metrics, OverrunIsAGauge) {
  agent::HostStatus status = drainingStatus();
  status.overrun = true;
  status.overrun_since = agent::TimePoint{} + std::chrono::seconds(150);
  const auto text = renderMetrics(status);
  EXPECT_EQ(prometheusProblems(text), std::vector<std::string>{});
  EXPECT_NE(text.find("# TYPE hostmaint_overrun gauge\nhostmaint_overrun 1\n"), std::string::npos)
      << text;
}

TEST(MetricsCounters, MigratedBytesAndControllerErrorsOnlyGrow) {
  MetricsCounters counters;
  agent::HostStatus status = drainingStatus();  // web1 at 1000 bytes, 3 controller failures
  counters.observe(status);
  EXPECT_EQ(counters.migratedBytes(), 1000u);
  EXPECT_EQ(counters.controller_errors, 3u);

  status.domains[0].progress->data_processed_bytes = 5000;
  status.controller->consecutive_failures = 4;
  counters.observe(status);
  EXPECT_EQ(counters.migratedBytes(), 5000u);
  EXPECT_EQ(counters.controller_errors, 4u);

  // web1's migration ended (progress gone), the controller recovered.
  status.domains[0].progress.reset();
  status.domains[0].stage = agent::DomainStage::done;
  status.controller->consecutive_failures = 0;
  counters.observe(status);
  EXPECT_EQ(counters.migratedBytes(), 5000u);
  EXPECT_EQ(counters.controller_errors, 4u);

  // A second migration of web1 (a fallback after an abort) adds its own bytes,
  // and a new failure counts once more.
  status.domains[0].progress = agent::MigrationProgress{};
  status.domains[0].progress->data_processed_bytes = 700;
  status.controller->consecutive_failures = 1;
  counters.observe(status);
  EXPECT_EQ(counters.migratedBytes(), 5700u);
  EXPECT_EQ(counters.controller_errors, 5u);
  status.domains[0].progress->data_processed_bytes = 100;  // and a third, from zero
  counters.observe(status);
  EXPECT_EQ(counters.migratedBytes(), 5800u);

  const auto text = renderMetrics(status, counters);
  EXPECT_NE(text.find("# TYPE hostmaint_migrated_bytes_total counter\nhostmaint_migrated_bytes_total 5800\n"),
            std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
  agent::HostStatus status = drainingStatus();
  status.domains[1].name = "db\"1\\x\ny";
  const auto text = renderMetrics(status);
  EXPECT_NE(text.find(R"(hostmaint_action_duration_seconds{domain="db\"1\\x\ny",action="suspend"} 42.250)"),
            std::string::npos)
      << text;
}

TEST(PrometheusChecker, RejectsWhatIsNotTheTextFormat) {
  EXPECT_TRUE(prometheusProblems("# TYPE a gauge\na 1\n").empty());
  EXPECT_FALSE(prometheusProblems("b 1\n").empty());              // no TYPE
  EXPECT_FALSE(prometheusProblems("# TYPE a gauge\na{x=y} 1\n").empty());  // unquoted label
  EXPECT_FALSE(prometheusProblems("# TYPE a gauge\na one\n").empty());
  EXPECT_FALSE(prometheusProblems("# TYPE a gauge\na 1").empty());  // no final newline
}

TEST_F(ServerFixture, UnknownPathsAre404AndOtherMethods405) {
  startServer({}, drainingStatus());
  EXPECT_EQ(request(http::verb::get, "/").result(), http::status::not_found);
  EXPECT_EQ(request(http::verb::get, "/v1/statusx").result(), http::status::not_found);
  auto response = request(http::verb::post, "/readyz");
  EXPECT_EQ(response.result(), http::status::method_not_allowed);
  EXPECT_EQ(response[http::field::allow], "GET");
  EXPECT_EQ(request(http::verb::delete_, "/v1/status").result(),
            http::status::method_not_allowed);
}

TEST_F(ServerFixture, SlowClientsDoNotStopOthersAndAreDroppedAtTheTimeout) {
  StatusHttpSettings settings;
  settings.max_connections = 100;
  settings.request_timeout = 300ms;
  startServer(settings, drainingStatus());
  asio::io_context client_io;
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 80; ++i) idle.push_back(idleClient(client_io));

  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(request(http::verb::get, "/readyz").result(), http::status::service_unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 250ms) << "served only after the timeout";

  for (auto& socket : idle) EXPECT_TRUE(closedByServer(socket));
  EXPECT_EQ(onLoop([this] { return server_->openConnections(); }), 0u);
}

TEST_F(ServerFixture, ConnectionsBeyondTheCapAreClosedAtOnce) {
  StatusHttpSettings settings;
  settings.max_connections = 2;
  settings.request_timeout = 10s;
  startServer(settings, drainingStatus());
  asio::io_context client_io;
  std::vector<tcp::socket> idle;
  idle.push_back(idleClient(client_io));
  idle.push_back(idleClient(client_io));
  // A request from each of the held connections' peers would be served; the
  // third connection is over the cap. Its read ends (closed) well before the
  // 3 s receive limit and the 10 s request timeout.
  tcp::socket third = idleClient(client_io);
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_TRUE(closedByServer(third));
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 2s);
  EXPECT_EQ(onLoop([this] { return server_->openConnections(); }), 2u);
}

TEST(StatusHttpServerListen, APortInUseIsAnErrorNamingTheAddress) {
  asio::io_context io;
  StatusHttpSettings settings;
  settings.port = 0;
  StatusHttpServer first(io, settings);
  first.start({});
  settings.port = first.port();
  StatusHttpServer second(io, settings);
  try {
    second.start({});
    FAIL() << "bound a port already in use";
  } catch (const HttpListenError& error) {
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(settings.port)),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace hostmaint::service
