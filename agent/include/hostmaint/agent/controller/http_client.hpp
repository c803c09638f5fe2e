// A blocking HTTP(S) client for talking to the maintenance controller:
// one libcurl easy handle per object, TLS verification always on, optional
// CA file, client certificate (mTLS) and bearer token, connect and total
// timeouts, and a response size limit enforced while the body arrives.
//
// Thread-compatible, not thread-safe: the daemon drives one HttpClient from
// one worker thread at a time. Different HttpClient objects may be used from
// different threads concurrently (libcurl is initialised once, thread-safely,
// and signals are never used for timeouts).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hostmaint::agent::controller {

// Why a request failed, for callers that react differently (backoff on all,
// log level, the controller status shown to the admin).
enum class HttpFailure {
  transport,    // DNS, connection refused, reset, protocol error
  tls,          // certificate verification, handshake, client certificate
  timeout,      // connect timeout or total timeout
  too_large,    // the response exceeded max_response_bytes
  http_status,  // the server answered with a status the caller does not accept
  setup,        // a local problem: bad option, unreadable certificate path
};
std::string_view toString(HttpFailure failure);

// A failed request. what() is a full sentence with the method, the URL, the
// HTTP status when there was one, and curl's own error text.
class HttpError : public std::runtime_error {
 public:
  HttpError(HttpFailure failure, std::string url, long http_status, const std::string& message);

  HttpFailure failure() const { return failure_; }
  const std::string& url() const { return url_; }
  long httpStatus() const { return http_status_; }  // 0 when no response came

 private:
  HttpFailure failure_;
  std::string url_;
  long http_status_;
};

// The token file is missing, not a regular file, or readable/writable by
// group or others, or owned by someone else than root or the daemon.
class TokenFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a bearer token from `path`. The file must be a regular file owned by
// root or by `allowed_owner` (the daemon's uid) with no group/other
// permission bits (0600 or 0400): a token others can read is a leaked token.
// Surrounding whitespace (a trailing newline) is stripped; an empty token is
// refused. Throws TokenFileError naming the path and its mode.
std::string readBearerToken(const std::filesystem::path& path, unsigned allowed_owner);
// Same, with the calling process's effective uid as the allowed owner.
std::string readBearerToken(const std::filesystem::path& path);
// The same checks for any one-line secret (the etcd password); `what` names
// it in errors ("etcd password file").
std::string readSecretFile(const std::filesystem::path& path, unsigned allowed_owner,
                           const std::string& what);

struct HttpClientOptions {
  // PEM bundle of CAs to trust instead of the system store.
  std::optional<std::filesystem::path> ca_file;
  // Client certificate and key (PEM) for mTLS; both or neither.
  std::optional<std::filesystem::path> client_cert;
  std::optional<std::filesystem::path> client_key;
  // Sent as "Authorization: Bearer <token>" (see readBearerToken).
  std::optional<std::string> bearer_token;
  // Sent verbatim as "Authorization: <value>" when there is no bearer token
  // (etcd's gateway takes its auth token so, without a scheme).
  std::optional<std::string> authorization;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // The whole request, connect to last byte.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::size_t max_response_bytes = 1024 * 1024;
  std::string user_agent = "hostmaintd";
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::optional<std::string> etag;  // verbatim, quotes included
};

struct GetRequest {
  // Sent as If-None-Match; a 304 answer then comes back with an empty body.
  std::optional<std::string> if_none_match;
  // Long-poll hint sent as "Prefer: wait=N". The request's total timeout is
  // extended by this much so a server that holds the request is not cut off.
  std::optional<std::chrono::seconds> prefer_wait;
};

class HttpClient {
 public:
  // Throws HttpError(setup) when an option is inconsistent (a client key
  // without a certificate) or libcurl cannot be initialised.
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Returns 2xx and 304 responses; throws HttpError for everything else
  // (other statuses with http_status, and every transfer failure).
  HttpResponse get(const std::string& url, const GetRequest& request = {});
  // Sends `json` with Content-Type: application/json. Returns 2xx responses;
  // throws HttpError otherwise.
  HttpResponse putJson(const std::string& url, std::string_view json);
  HttpResponse postJson(const std::string& url, std::string_view json);

  const HttpClientOptions& options() const { return options_; }

 private:
  struct Handle;
  HttpResponse perform(std::string_view method, const std::string& url, const GetRequest* get,
                       std::optional<std::string_view> body);

  HttpClientOptions options_;
  std::unique_ptr<Handle> handle_;
};

}  // namespace hostmaint::agent::controller
