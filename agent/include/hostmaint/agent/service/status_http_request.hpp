// The local HTTP endpoint's request side, apart from any socket: how a
// request is parsed (Beast's parser with our size limits) and which answer a
// parsed request gets. StatusHttpServer uses both on its connections; tests
// and the fuzzer feed them bytes directly.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hostmaint::service {

// A status request has no body and a few short headers; anything larger is
// not one of ours.
inline constexpr std::uint32_t kStatusRequestHeaderLimit = 8 * 1024;
inline constexpr std::uint64_t kStatusRequestBodyLimit = 1024;

using StatusRequestParser =
    boost::beast::http::request_parser<boost::beast::http::string_body>;

// Applies the limits above to a fresh parser.
void limitStatusRequest(StatusRequestParser& parser);

// What a request asks for, decided from its method and target alone.
enum class StatusRoute {
  status,              // GET /v1/status
  readyz,              // GET /readyz
  metrics,             // GET /metrics
  not_found,           // any other path
  method_not_allowed,  // a known path with a method other than GET
};
StatusRoute routeStatusRequest(boost::beast::http::verb method, std::string_view target);

// The parts of one request the server acts on.
struct StatusRequest {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  std::string target;
  unsigned version = 11;
  StatusRoute route = StatusRoute::not_found;
};

// Parses the first request in `bytes` as the server would read it from a
// connection. nullopt when the bytes are malformed, exceed the limits or end
// before the request does; `error` then says which (Beast's error code).
std::optional<StatusRequest> parseStatusRequest(std::string_view bytes,
                                                boost::beast::error_code& error);

}  // namespace hostmaint::service
