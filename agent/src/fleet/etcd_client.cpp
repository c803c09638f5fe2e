#include "hostmaint/agent/fleet/etcd_client.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "hostmaint/agent/controller/http_client.hpp"

namespace hostmaint::agent::fleet {
namespace {

namespace ctl = agent::controller;

// Worth trying another member: this one is down, unreachable or without a
// leader (etcd's gateway maps Unavailable to 503, a timeout to 504).
bool tryAnotherMember(const ctl::HttpError& error) {
  switch (error.failure()) {
    case ctl::HttpFailure::transport:
    case ctl::HttpFailure::tls:
    case ctl::HttpFailure::timeout:
      return true;
    case ctl::HttpFailure::http_status:
      return error.httpStatus() >= 500;
    default:
      return false;
  }
}

std::string trimmedEndpoint(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

}  // namespace

struct EtcdClient::State {
  EtcdSettings settings;
  std::string password;
  std::size_t current = 0;  // index into settings.endpoints
  std::optional<std::string> token;
  std::optional<ctl::HttpClient> http;

  ctl::HttpClient& client() {
    if (!http) {
      ctl::HttpClientOptions options;
      options.ca_file = settings.ca_file;
      options.client_cert = settings.client_cert;
      options.client_key = settings.client_key;
      options.authorization = token;
      options.connect_timeout = settings.connect_timeout;
      options.request_timeout = settings.request_timeout;
      options.max_response_bytes = 8 * 1024 * 1024;
      http.emplace(std::move(options));
    }
    return *http;
  }
};

EtcdClient::EtcdClient(EtcdSettings settings) : state_(std::make_unique<State>()) {
  if (settings.endpoints.empty()) throw EtcdError(EtcdFailure::setup, "no etcd endpoint is configured");
  for (std::string& endpoint : settings.endpoints) endpoint = trimmedEndpoint(std::move(endpoint));
  if (!settings.user.empty()) {
    if (!settings.password_file) {
      throw EtcdError(EtcdFailure::setup,
                      "etcd user '" + settings.user + "' is set without a password file");
    }
    try {
      state_->password = ctl::readSecretFile(*settings.password_file,
                                             static_cast<unsigned>(::geteuid()), "etcd password file");
    } catch (const ctl::TokenFileError& error) {
      throw EtcdError(EtcdFailure::setup, error.what());
    }
  }
  state_->settings = std::move(settings);
}

EtcdClient::~EtcdClient() = default;
EtcdClient::EtcdClient(EtcdClient&&) noexcept = default;
EtcdClient& EtcdClient::operator=(EtcdClient&&) noexcept = default;

const std::string& EtcdClient::endpoint() const {
  return state_->settings.endpoints[state_->current];
}

// Exchanges the user's password for a token at `base` (etcd's simple tokens
// live minutes; call() fetches a new one when etcd refuses the old).
void EtcdClient::authenticate(const std::string& base) {
  State& s = *state_;
  const nlohmann::json request = {{"name", s.settings.user}, {"password", s.password}};
  s.token.reset();
  s.http.reset();  // no stale token on the authenticate call itself
  ctl::HttpResponse answer;
  try {
    answer = s.client().postJson(base + "/v3/auth/authenticate", request.dump());
  } catch (const ctl::HttpError& error) {
    // A wrong user or password is etcd's 400 (InvalidArgument), not a 401.
    if (error.failure() == ctl::HttpFailure::http_status && error.httpStatus() >= 400 &&
        error.httpStatus() < 500) {
      throw EtcdError(EtcdFailure::auth,
                      "etcd refused user '" + s.settings.user + "': " + error.what());
    }
    throw;
  }
  const nlohmann::json parsed = nlohmann::json::parse(answer.body, nullptr, false);
  if (parsed.is_discarded() || !parsed.contains("token") || !parsed["token"].is_string()) {
    throw EtcdError(EtcdFailure::auth,
                    "etcd at " + base + " answered the authentication without a token");
  }
  s.token = parsed["token"].get<std::string>();
  s.http.reset();  // the next client sends it
}

std::string EtcdClient::call(const std::string& path, const std::string& body) {
  State& s = *state_;
  const std::size_t count = s.settings.endpoints.size();
  std::string failures;
  bool token_is_fresh = false;
  std::size_t members_tried = 0;
  while (members_tried < count) {
    const std::string& base = s.settings.endpoints[s.current];
    try {
      if (!s.settings.user.empty() && !s.token) {
        authenticate(base);
        token_is_fresh = true;
      }
      return s.client().postJson(base + path, body).body;
    } catch (const ctl::HttpError& error) {
      if (error.failure() == ctl::HttpFailure::http_status && error.httpStatus() == 401) {
        if (s.token && !token_is_fresh) {
          // The token expired: log in again, once, at the same member.
          spdlog::debug("etcd: the auth token was refused at {}; logging in again", base);
          s.token.reset();
          continue;
        }
        throw EtcdError(EtcdFailure::auth,
                        "etcd refused user '" + s.settings.user + "': " + error.what());
      }
      if (error.failure() == ctl::HttpFailure::setup) throw EtcdError(EtcdFailure::setup, error.what());
      if (!tryAnotherMember(error)) throw EtcdError(EtcdFailure::refused, error.what());
      if (!failures.empty()) failures += "; ";
      failures += error.what();
      s.current = (s.current + 1) % count;
      ++members_tried;
    }
  }
  throw EtcdError(EtcdFailure::unreachable, "no etcd endpoint answered: " + failures);
}

namespace {
nlohmann::json parsedAnswer(const std::string& body, const std::string& what) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    throw EtcdError(EtcdFailure::refused, what + ": etcd's answer is not a JSON object");
  }
  return parsed;
}
}  // namespace

std::int64_t EtcdClient::grantLease(std::chrono::seconds ttl) {
  const nlohmann::json request = {{"TTL", std::to_string(ttl.count())}};
  const nlohmann::json answer = parsedAnswer(call("/v3/lease/grant", request.dump()), "lease grant");
  try {
    const std::int64_t id = int64Field(answer, "ID");
    if (id == 0) throw EtcdFormatError("no lease ID");
    return id;
  } catch (const EtcdFormatError& error) {
    throw EtcdError(EtcdFailure::refused, std::string("lease grant: ") + error.what());
  }
}

std::optional<std::chrono::seconds> EtcdClient::keepAlive(std::int64_t id) {
  const nlohmann::json request = {{"ID", std::to_string(id)}};
  try {
    const std::int64_t ttl = parseKeepAliveTtl(call("/v3/lease/keepalive", request.dump()));
    if (ttl <= 0) return std::nullopt;
    return std::chrono::seconds(ttl);
  } catch (const EtcdFormatError& error) {
    throw EtcdError(EtcdFailure::refused, "lease " + std::to_string(id) + " keepalive: " + error.what());
  }
}

void EtcdClient::revokeLease(std::int64_t id) {
  const nlohmann::json request = {{"ID", std::to_string(id)}};
  call("/v3/lease/revoke", request.dump());
}

std::vector<KeyValue> EtcdClient::range(const std::string& key, bool prefix) {
  const nlohmann::json answer =
      parsedAnswer(call("/v3/kv/range", rangeRequest(key, prefix).dump()), "range " + key);
  try {
    return parseKvs(answer);
  } catch (const EtcdFormatError& error) {
    throw EtcdError(EtcdFailure::refused, "range " + key + ": " + error.what());
  }
}

void EtcdClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
  nlohmann::json request = {{"key", base64Encode(key)}, {"value", base64Encode(value)}};
  if (lease != 0) request["lease"] = std::to_string(lease);
  call("/v3/kv/put", request.dump());
}

void EtcdClient::remove(const std::string& key, bool prefix) {
  call("/v3/kv/deleterange", rangeRequest(key, prefix).dump());
}

TxnResult EtcdClient::txn(const std::vector<Compare>& compares,
                          const std::vector<Operation>& success,
                          const std::vector<Operation>& failure) {
  const nlohmann::json answer = parsedAnswer(
      call("/v3/kv/txn", txnRequest(compares, success, failure).dump()), "transaction");
  try {
    return parseTxnResponse(answer);
  } catch (const EtcdFormatError& error) {
    throw EtcdError(EtcdFailure::refused, std::string("transaction: ") + error.what());
  }
}

}  // namespace hostmaint::agent::fleet
