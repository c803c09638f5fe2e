// The readiness endpoint's request side without sockets: what a request's
// bytes parse to and which answer they get (the server runs the same parser
// limits and routing on its connections; fuzz/http_request_fuzz.cpp feeds
// the same function random bytes).
#include "hostmaint/agent/service/status_http_request.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/error.hpp>
#include <string>

namespace hostmaint::service {
namespace {

namespace http = boost::beast::http;

std::optional<StatusRequest> parse(const std::string& bytes, boost::beast::error_code& error) {
  return parseStatusRequest(bytes, error);
}

TEST(StatusHttpRequest, RoutesTheThreePathsForGetOnly) {
  EXPECT_EQ(routeStatusRequest(http::verb::get, "/v1/status"), StatusRoute::status);
  EXPECT_EQ(routeStatusRequest(http::verb::get, "/readyz"), StatusRoute::readyz);
  EXPECT_EQ(routeStatusRequest(http::verb::get, "/metrics?name[]=x"), StatusRoute::metrics);
  EXPECT_EQ(routeStatusRequest(http::verb::post, "/metrics"), StatusRoute::method_not_allowed);
  EXPECT_EQ(routeStatusRequest(http::verb::head, "/readyz"), StatusRoute::method_not_allowed);
  EXPECT_EQ(routeStatusRequest(http::verb::get, "/"), StatusRoute::not_found);
  EXPECT_EQ(routeStatusRequest(http::verb::get, "/readyz/"), StatusRoute::not_found);
  EXPECT_EQ(routeStatusRequest(http::verb::delete_, "/v2/status"), StatusRoute::not_found);
  EXPECT_EQ(routeStatusRequest(http::verb::get, ""), StatusRoute::not_found);
}

TEST(StatusHttpRequest, ParsesACompleteRequest) {
  boost::beast::error_code error;
  const auto request =
      parse("GET /readyz?verbose HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n", error);
  ASSERT_TRUE(request) << error.message();
  EXPECT_EQ(request->method, http::verb::get);
  EXPECT_EQ(request->target, "/readyz?verbose");
  EXPECT_EQ(request->version, 11u);
  EXPECT_EQ(request->route, StatusRoute::readyz);
}

TEST(StatusHttpRequest, ParsesARequestWithABodyWithinTheLimit) {
  boost::beast::error_code error;
  const auto sized = parse("POST /v1/status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", error);
  ASSERT_TRUE(sized) << error.message();
  EXPECT_EQ(sized->route, StatusRoute::method_not_allowed);
  const auto chunked = parse(
      "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", error);
  ASSERT_TRUE(chunked) << error.message();
  EXPECT_EQ(chunked->route, StatusRoute::not_found);
}

TEST(StatusHttpRequest, RefusesCutShortMalformedAndOversizedRequests) {
  boost::beast::error_code error;
  EXPECT_FALSE(parse("", error));
  EXPECT_EQ(error, http::error::end_of_stream);
  EXPECT_FALSE(parse("GET /readyz HTTP/1.1\r\nHost: x\r\n", error));
  EXPECT_TRUE(error);
  EXPECT_FALSE(parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", error));
  EXPECT_EQ(error, http::error::partial_message);
  EXPECT_FALSE(parse("GET /readyz HTTP/9.9\r\n\r\n", error));
  EXPECT_TRUE(error);
  EXPECT_FALSE(parse("GET /readyz HTTP/1.1\r\nBad Header\r\n\r\n", error));
  EXPECT_TRUE(error);

  const std::string big_header(kStatusRequestHeaderLimit, 'a');
  EXPECT_FALSE(parse("GET /readyz HTTP/1.1\r\nX-Big: " + big_header + "\r\n\r\n", error));
  EXPECT_EQ(error, http::error::header_limit);

  const std::string big_body(kStatusRequestBodyLimit + 1, 'b');
  EXPECT_FALSE(parse("POST /readyz HTTP/1.1\r\nContent-Length: " +
                         std::to_string(big_body.size()) + "\r\n\r\n" + big_body,
                     error));
  EXPECT_EQ(error, http::error::body_limit);
}

}  // namespace
}  // namespace hostmaint::service
