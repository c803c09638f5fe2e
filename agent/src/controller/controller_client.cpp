#include "hostmaint/agent/controller/controller_client.hpp"

#include <cctype>

namespace hostmaint::agent::controller {

std::string percentEncodePathSegment(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0f];
    }
  }
  return out;
}

ControllerClient::ControllerClient(std::string base_url, std::string host_id, HttpClient http)
    : http_(std::move(http)) {
  const bool https = base_url.starts_with("https://");
  if (!https && !base_url.starts_with("http://")) {
    throw HttpError(HttpFailure::setup, base_url, 0,
                    "controller base URL '" + base_url + "' must start with https:// or http://");
  }
  if (!https && http_.options().bearer_token) {
    throw HttpError(HttpFailure::setup, base_url, 0,
                    "controller base URL '" + base_url +
                        "' is plain http: refusing to send the bearer token in clear");
  }
  if (host_id.empty()) {
    throw HttpError(HttpFailure::setup, base_url, 0, "controller host id is empty");
  }
  while (base_url.ends_with('/')) base_url.pop_back();
  const std::string host_url = base_url + "/v1/hosts/" + percentEncodePathSegment(host_id);
  maintenance_url_ = host_url + "/maintenance";
  status_url_ = host_url + "/status";
}

DesiredStateFetch ControllerClient::fetchDesiredState(
    const std::optional<std::string>& etag, std::optional<std::chrono::seconds> prefer_wait) {
  GetRequest request;
  request.if_none_match = etag;
  request.prefer_wait = prefer_wait;
  HttpResponse response = http_.get(maintenance_url_, request);

  DesiredStateFetch fetch;
  if (response.status == 304) {
    fetch.not_modified = true;
    fetch.etag = response.etag ? response.etag : etag;
    return fetch;
  }
  if (response.status != 200) {
    throw HttpError(HttpFailure::http_status, maintenance_url_, response.status,
                    "GET " + maintenance_url_ + ": HTTP status " +
                        std::to_string(response.status) + " (expected 200 or 304)");
  }
  try {
    fetch.desired = parseDesiredState(response.body, http_.options().max_response_bytes);
  } catch (const ProtocolError& error) {
    throw ProtocolError(std::string(error.what()) + " (from " + maintenance_url_ + ")");
  }
  fetch.etag = std::move(response.etag);
  return fetch;
}

void ControllerClient::putStatus(const std::string& body) { http_.putJson(status_url_, body); }

}  // namespace hostmaint::agent::controller
