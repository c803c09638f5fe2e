#include "hostmaint/agent/service/status_http_request.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

namespace hostmaint::service {

namespace http = boost::beast::http;

void limitStatusRequest(StatusRequestParser& parser) {
  parser.header_limit(kStatusRequestHeaderLimit);
  parser.body_limit(kStatusRequestBodyLimit);
}

StatusRoute routeStatusRequest(http::verb method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/v1/status" && path != "/readyz" && path != "/metrics") return StatusRoute::not_found;
  if (method != http::verb::get) return StatusRoute::method_not_allowed;
  if (path == "/v1/status") return StatusRoute::status;
  if (path == "/readyz") return StatusRoute::readyz;
  return StatusRoute::metrics;
}

std::optional<StatusRequest> parseStatusRequest(std::string_view bytes,
                                                boost::beast::error_code& error) {
  error = {};
  StatusRequestParser parser;
  limitStatusRequest(parser);
  // What http::read does with a connection's bytes: the parser consumes a
  // prefix each time (nothing while the header is incomplete).
  std::size_t offset = 0;
  while (!parser.is_done()) {
    if (offset < bytes.size()) {
      const std::size_t used =
          parser.put(boost::asio::buffer(bytes.data() + offset, bytes.size() - offset), error);
      offset += used;
      if (error == http::error::need_more) error = {};
      if (error) return std::nullopt;
      if (used > 0) continue;
    }
    // Nothing left, or not enough for the parser's next step: the peer has
    // closed the connection, which is how http::read ends such a request
    // (a parser that saw nothing would otherwise call that a message).
    if (!parser.got_some()) {
      error = http::error::end_of_stream;
      return std::nullopt;
    }
    parser.put_eof(error);
    if (error) return std::nullopt;
    break;
  }
  if (!parser.is_done()) {
    error = http::error::partial_message;
    return std::nullopt;
  }
  const auto& request = parser.get();
  StatusRequest parsed;
  parsed.method = request.method();
  parsed.target = std::string(request.target());
  parsed.version = request.version();
  parsed.route = routeStatusRequest(parsed.method, parsed.target);
  return parsed;
}

}  // namespace hostmaint::service
