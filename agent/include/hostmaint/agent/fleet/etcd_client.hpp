// EtcdClient: a blocking client of etcd's v3 API through its JSON gateway
// (POST /v3/...), over the controller's libcurl HttpClient: leases (grant,
// keepalive, revoke), range by key or prefix, put, delete and transactions.
// Keys and values are bytes, base64-encoded on the wire by this class.
//
// TLS: a CA file, an optional client certificate and key; verification is
// always on (HttpClient). Authentication: a user and a password read from a
// file with the token file's checks; the token etcd returns is sent with
// every request and fetched again when etcd says it expired.
//
// Several endpoints (the members of one cluster): a request that cannot be
// delivered to one (transport, TLS, timeout, 5xx: no leader there) goes to
// the next; the client stays with the last one that answered.
//
// Thread-compatible, not thread-safe: the fleet link drives it from one
// worker thread. Pure encoding lives in etcd_codec.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hostmaint/agent/fleet/etcd_codec.hpp"

namespace hostmaint::agent::fleet {

struct EtcdSettings {
  std::vector<std::string> endpoints;  // "https://10.0.0.1:2379"
  std::optional<std::filesystem::path> ca_file;
  std::optional<std::filesystem::path> client_cert;
  std::optional<std::filesystem::path> client_key;
  std::string user;  // empty: no authentication
  std::optional<std::filesystem::path> password_file;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
};

// Why a request failed.
enum class EtcdFailure {
  unreachable,  // no endpoint answered (transport, TLS, timeout, no leader)
  auth,         // the user or password was refused
  refused,      // etcd answered with an error for this request
  setup,        // a local problem: no endpoint, unreadable password file
};

class EtcdError : public std::runtime_error {
 public:
  EtcdError(EtcdFailure failure, const std::string& message)
      : std::runtime_error(message), failure_(failure) {}
  EtcdFailure failure() const { return failure_; }

 private:
  EtcdFailure failure_;
};

class EtcdClient {
 public:
  // Reads the password file (throws EtcdError(setup) naming it); contacts
  // nobody yet.
  explicit EtcdClient(EtcdSettings settings);
  ~EtcdClient();
  EtcdClient(EtcdClient&&) noexcept;
  EtcdClient& operator=(EtcdClient&&) noexcept;

  // A new lease of `ttl`; returns its id.
  std::int64_t grantLease(std::chrono::seconds ttl);
  // Renews lease `id` once; returns its TTL, or nullopt when the lease no
  // longer exists (it expired or was revoked: its keys are gone).
  std::optional<std::chrono::seconds> keepAlive(std::int64_t id);
  void revokeLease(std::int64_t id);

  std::vector<KeyValue> range(const std::string& key, bool prefix = false);
  void put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  void remove(const std::string& key, bool prefix = false);
  TxnResult txn(const std::vector<Compare>& compares, const std::vector<Operation>& success,
                const std::vector<Operation>& failure);

  // The endpoint that answered last (or will be tried first).
  const std::string& endpoint() const;

 private:
  struct State;
  // POSTs `body` to `path` at the current member, moving on to the next
  // when one cannot be reached; logs in first when a user is configured.
  std::string call(const std::string& path, const std::string& body);
  void authenticate(const std::string& base);
  std::unique_ptr<State> state_;
};

}  // namespace hostmaint::agent::fleet
