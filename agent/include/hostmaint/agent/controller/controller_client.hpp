// The two controller endpoints over one HttpClient:
//   GET {base}/v1/hosts/{host}/maintenance  -> DesiredState (ETag-aware)
//   PUT {base}/v1/hosts/{host}/status       <- status report
// Blocking; used from the daemon's controller worker thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "hostmaint/agent/controller/http_client.hpp"
#include "hostmaint/agent/controller/protocol.hpp"
#include "hostmaint/agent/controller/status_reporter.hpp"

namespace hostmaint::agent::controller {

// Percent-encodes everything but RFC 3986 unreserved characters, so a host
// id cannot add path segments or a query.
std::string percentEncodePathSegment(std::string_view text);

struct DesiredStateFetch {
  // 304: the desired state is the one the caller already has.
  bool not_modified = false;
  // Set when not_modified is false.
  std::optional<DesiredState> desired;
  // The ETag to send as If-None-Match next time (kept from the request on a
  // 304 that carries none).
  std::optional<std::string> etag;
};

class ControllerClient final : public StatusTransport {
 public:
  // `base_url` is "https://controller.example/api" (a trailing slash is
  // dropped). Throws HttpError(setup) for a URL that is not http(s), an
  // empty host id, or a bearer token configured for a plain-http URL
  // (it would travel in clear).
  ControllerClient(std::string base_url, std::string host_id, HttpClient http);

  // Throws HttpError (transport, TLS, timeout, size, status) or
  // ProtocolError (a document that fails validation).
  DesiredStateFetch fetchDesiredState(const std::optional<std::string>& etag,
                                      std::optional<std::chrono::seconds> prefer_wait = {});
  // Throws HttpError.
  void putStatus(const std::string& body) override;

  const std::string& maintenanceUrl() const { return maintenance_url_; }
  const std::string& statusUrl() const { return status_url_; }

 private:
  HttpClient http_;
  std::string maintenance_url_;
  std::string status_url_;
};

}  // namespace hostmaint::agent::controller
