// The optional local readiness endpoint: a read-only HTTP/1.1 server on the
// daemon's io_context serving the latest status it was given:
//   GET /v1/status  the status JSON (docs/status-json.md)
//   GET /readyz     200 "ready\n" when the host is empty, else 503 with the blockers
//   GET /metrics    Prometheus text format 0.0.4
// It never calls into the engine: AgentService hands it every new status.
// Slow or idle clients cannot starve it: each connection has a deadline, the
// number of connections is capped (beyond it new sockets are closed at once)
// and request headers and bodies are size-limited. Reference: docs/http-endpoint.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

struct StatusHttpSettings {
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 9465;  // 0: an ephemeral port (tests); see StatusHttpServer::port()
  std::size_t max_connections = 64;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
};

// The listening socket could not be set up; the message names address:port.
class HttpListenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StatusHttpState;  // defined in status_http_server.cpp

class StatusHttpServer {
 public:
  StatusHttpServer(boost::asio::io_context& io, StatusHttpSettings settings);
  // Closes the listener and every open connection.
  ~StatusHttpServer();
  StatusHttpServer(const StatusHttpServer&) = delete;
  StatusHttpServer& operator=(const StatusHttpServer&) = delete;

  // Binds, listens and starts accepting. Throws HttpListenError.
  void start(const agent::HostStatus& initial);
  // The status served from now on.
  void update(const agent::HostStatus& status);

  // The bound port (the ephemeral one when settings.port was 0); 0 before start().
  std::uint16_t port() const;
  std::size_t openConnections() const;

 private:
  std::shared_ptr<StatusHttpState> state_;
};

// What /metrics counts that a status snapshot does not carry, accumulated
// from the statuses the server is given (so since the daemon started; a
// Prometheus counter reset on restart is what rate() expects).
struct MetricsCounters {
  // Feeds one published status, in order.
  void observe(const agent::HostStatus& status);
  // Finished migrations' bytes plus the running ones' so far.
  std::uint64_t migratedBytes() const;

  std::uint64_t finished_migration_bytes = 0;
  std::map<std::string, std::uint64_t> migrating_bytes;  // uuid -> processed so far
  std::uint64_t controller_errors = 0;
  int controller_failures = 0;  // consecutive failures in the last status seen
};

// The bodies, exposed for tests.
std::string renderMetrics(const agent::HostStatus& status, const MetricsCounters& counters = {});
std::string renderNotReady(const agent::HostStatus& status);

}  // namespace hostmaint::service
