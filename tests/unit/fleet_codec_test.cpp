// The etcd v3 JSON gateway's encoding (agent/src/fleet/etcd_codec.cpp):
// base64 both ways, the range end of a prefix, the transaction request as
// etcd reads it, and the answers as etcd 3.4 writes them (int64 as strings,
// false and zero fields left out).
#include <gtest/gtest.h>

#include "hostmaint/agent/fleet/etcd_codec.hpp"

namespace hostmaint::agent::fleet {
namespace {

TEST(Base64, RoundTripsEveryLengthAndByte) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("/hostmaint/a"), "L2hvc3RtYWludC9h");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 7) {
    EXPECT_EQ(base64Decode(base64Encode(all.substr(0, n))), all.substr(0, n)) << n;
  }
}

TEST(Base64, RefusesWhatIsNotBase64) {
  EXPECT_THROW(base64Decode("Zg="), EtcdFormatError);     // length
  EXPECT_THROW(base64Decode("Z!=="), EtcdFormatError);    // alphabet
  EXPECT_THROW(base64Decode("Zg==Zg=="), EtcdFormatError);  // padding inside
  EXPECT_THROW(base64Decode("Z=g="), EtcdFormatError);
}

TEST(PrefixEnd, IncrementsTheLastByteBelowFF) {
  EXPECT_EQ(prefixEnd("/a/"), "/a0");
  EXPECT_EQ(prefixEnd("ab"), "ac");
  EXPECT_EQ(prefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefixEnd(""), std::string(1, '\0'));
  EXPECT_EQ(prefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

TEST(TxnRequest, CreatesOnlyWhenAbsentWithTheLease) {
  const nlohmann::json request =
      txnRequest({Compare::absent("/f/holders/h1"), Compare::valueIs("/f/x", "v")},
                 {Put{"/f/holders/h1", "{}", 42}, Delete{"/f/d/", true}}, {Range{"/f/slots/", true}});
  EXPECT_EQ(request["compare"][0],
            (nlohmann::json{{"key", base64Encode("/f/holders/h1")},
                            {"target", "CREATE"},
                            {"result", "EQUAL"},
                            {"create_revision", "0"}}));
  EXPECT_EQ(request["compare"][1]["target"], "VALUE");
  EXPECT_EQ(request["compare"][1]["value"], base64Encode("v"));
  EXPECT_EQ(request["success"][0]["request_put"]["lease"], "42");
  EXPECT_EQ(request["success"][0]["request_put"]["value"], base64Encode("{}"));
  EXPECT_EQ(request["success"][1]["request_delete_range"]["range_end"], base64Encode("/f/d0"));
  EXPECT_EQ(request["failure"][0]["request_range"]["key"], base64Encode("/f/slots/"));
  // No lease: the field is left out (0 would mean the same to etcd).
  EXPECT_FALSE(operationJson(Put{"k", "v", 0})["request_put"].contains("lease"));
}

TEST(Answers, ParsesRangeTxnAndKeepAliveAsEtcd34WritesThem) {
  // Copied from etcd 3.4.23's gateway.
  const auto range = nlohmann::json::parse(
      R"({"header":{"revision":"2"},"kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"2",)"
      R"("version":"1","value":"eA==","lease":"7587899277877391367"}],"count":"1"})");
  const std::vector<KeyValue> kvs = parseKvs(range);
  ASSERT_EQ(kvs.size(), 1u);
  EXPECT_EQ(kvs[0], (KeyValue{"a", "x", 2, 2, 7587899277877391367}));
  EXPECT_TRUE(parseKvs(nlohmann::json::parse(R"({"header":{}})")).empty());

  const TxnResult won = parseTxnResponse(nlohmann::json::parse(
      R"({"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})"));
  EXPECT_TRUE(won.succeeded);
  EXPECT_EQ(won.revision, 2);
  const TxnResult lost = parseTxnResponse(nlohmann::json::parse(
      R"({"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},)"
      R"("kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"2","value":"eA=="}],"count":"1"}}]})"));
  EXPECT_FALSE(lost.succeeded);  // etcd leaves "succeeded": false out
  ASSERT_EQ(lost.ranges.size(), 1u);
  EXPECT_EQ(lost.ranges[0][0].value, "x");

  EXPECT_EQ(parseKeepAliveTtl(R"({"result":{"header":{},"ID":"7","TTL":"5"}})" "\n"), 5);
  // A revoked or expired lease: no TTL.
  EXPECT_EQ(parseKeepAliveTtl(R"({"result":{"header":{},"ID":"7"}})"), 0);
  EXPECT_THROW(parseKeepAliveTtl(R"({"error":{"grpc_code":14,"message":"no leader"}})"),
               EtcdFormatError);
  EXPECT_THROW(parseKeepAliveTtl("not json"), EtcdFormatError);
}

TEST(Answers, RefusesIntegersThatAreNot) {
  EXPECT_EQ(int64Field(nlohmann::json::parse(R"({"a":"12"})"), "a"), 12);
  EXPECT_EQ(int64Field(nlohmann::json::parse(R"({"a":12})"), "a"), 12);
  EXPECT_EQ(int64Field(nlohmann::json::parse(R"({})"), "a"), 0);
  EXPECT_THROW(int64Field(nlohmann::json::parse(R"({"a":"12x"})"), "a"), EtcdFormatError);
  EXPECT_THROW(int64Field(nlohmann::json::parse(R"({"a":true})"), "a"), EtcdFormatError);
}

}  // namespace
}  // namespace hostmaint::agent::fleet
