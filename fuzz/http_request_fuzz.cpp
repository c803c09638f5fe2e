// Bytes a local client sends to the readiness endpoint (docs/http-endpoint.md):
// parsed as the server parses them, with its limits, then routed.
#include <boost/beast/core/error.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hostmaint/agent/service/status_http_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostmaint::service;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  boost::beast::error_code error;
  const auto request = parseStatusRequest(bytes, error);
  if (request.has_value() == static_cast<bool>(error)) __builtin_trap();
  if (request && request->target.size() > kStatusRequestHeaderLimit) __builtin_trap();
  return 0;
}
