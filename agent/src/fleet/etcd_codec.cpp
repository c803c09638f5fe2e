#include "hostmaint/agent/fleet/etcd_codec.hpp"

#include <array>

namespace hostmaint::agent::fleet {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

const char* targetName(Compare::Target target) {
  switch (target) {
    case Compare::Target::create_revision: return "CREATE";
    case Compare::Target::mod_revision: return "MOD";
    case Compare::Target::value: return "VALUE";
  }
  return "CREATE";
}

const char* resultName(Compare::Result result) {
  switch (result) {
    case Compare::Result::equal: return "EQUAL";
    case Compare::Result::not_equal: return "NOT_EQUAL";
    case Compare::Result::greater: return "GREATER";
    case Compare::Result::less: return "LESS";
  }
  return "EQUAL";
}

nlohmann::json compareJson(const Compare& compare) {
  nlohmann::json out = {{"key", base64Encode(compare.key)},
                        {"target", targetName(compare.target)},
                        {"result", resultName(compare.result)}};
  switch (compare.target) {
    case Compare::Target::create_revision:
      out["create_revision"] = std::to_string(compare.revision);
      break;
    case Compare::Target::mod_revision:
      out["mod_revision"] = std::to_string(compare.revision);
      break;
    case Compare::Target::value:
      out["value"] = base64Encode(compare.value);
      break;
  }
  return out;
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    throw EtcdFormatError("base64 text of " + std::to_string(text.size()) +
                          " characters (not a multiple of 4)");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::array<int, 4> s{};
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + j];
      const bool last_group = i + 4 == text.size();
      if (c == '=' && last_group && j >= 2 && (j == 3 || text[i + 3] == '=')) {
        s[j] = 0;
        ++padding;
        continue;
      }
      if (padding > 0 || (s[j] = sextet(c)) < 0) {
        throw EtcdFormatError("base64 text has '" + std::string(1, c) + "' at offset " +
                              std::to_string(i + j));
      }
    }
    const unsigned v = (s[0] << 18) | (s[1] << 12) | (s[2] << 6) | s[3];
    out += static_cast<char>((v >> 16) & 0xff);
    if (padding < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

Compare Compare::absent(std::string key) {
  Compare compare;
  compare.key = std::move(key);
  compare.target = Target::create_revision;
  compare.result = Result::equal;
  compare.revision = 0;
  return compare;
}

Compare Compare::modRevisionIs(std::string key, std::int64_t revision) {
  Compare compare;
  compare.key = std::move(key);
  compare.target = Target::mod_revision;
  compare.result = Result::equal;
  compare.revision = revision;
  return compare;
}

Compare Compare::valueIs(std::string key, std::string value) {
  Compare compare;
  compare.key = std::move(key);
  compare.target = Target::value;
  compare.result = Result::equal;
  compare.value = std::move(value);
  return compare;
}

nlohmann::json rangeRequest(const std::string& key, bool prefix) {
  nlohmann::json out = {{"key", base64Encode(key)}};
  if (prefix) out["range_end"] = base64Encode(prefixEnd(key));
  return out;
}

nlohmann::json operationJson(const Operation& operation) {
  if (const auto* put = std::get_if<Put>(&operation)) {
    nlohmann::json request = {{"key", base64Encode(put->key)},
                              {"value", base64Encode(put->value)}};
    if (put->lease != 0) request["lease"] = std::to_string(put->lease);
    return {{"request_put", request}};
  }
  if (const auto* del = std::get_if<Delete>(&operation)) {
    return {{"request_delete_range", rangeRequest(del->key, del->prefix)}};
  }
  const auto& range = std::get<Range>(operation);
  return {{"request_range", rangeRequest(range.key, range.prefix)}};
}

nlohmann::json txnRequest(const std::vector<Compare>& compares,
                          const std::vector<Operation>& success,
                          const std::vector<Operation>& failure) {
  nlohmann::json out = nlohmann::json::object();
  out["compare"] = nlohmann::json::array();
  for (const Compare& compare : compares) out["compare"].push_back(compareJson(compare));
  out["success"] = nlohmann::json::array();
  for (const Operation& operation : success) out["success"].push_back(operationJson(operation));
  out["failure"] = nlohmann::json::array();
  for (const Operation& operation : failure) out["failure"].push_back(operationJson(operation));
  return out;
}

std::int64_t int64Field(const nlohmann::json& object, const char* name) {
  if (!object.is_object()) throw EtcdFormatError(std::string("expected an object around '") + name + "'");
  const auto found = object.find(name);
  if (found == object.end() || found->is_null()) return 0;
  if (found->is_number_integer()) return found->get<std::int64_t>();
  if (found->is_string()) {
    const std::string& text = found->get_ref<const std::string&>();
    std::size_t used = 0;
    try {
      const long long value = std::stoll(text, &used);
      if (used == text.size()) return value;
    } catch (const std::exception&) {
    }
    throw EtcdFormatError(std::string("field '") + name + "' is not an integer: '" + text + "'");
  }
  throw EtcdFormatError(std::string("field '") + name + "' is not an integer");
}

std::vector<KeyValue> parseKvs(const nlohmann::json& range_response) {
  std::vector<KeyValue> out;
  const auto found = range_response.find("kvs");
  if (found == range_response.end()) return out;
  if (!found->is_array()) throw EtcdFormatError("'kvs' is not an array");
  for (const nlohmann::json& item : *found) {
    KeyValue kv;
    kv.key = base64Decode(item.value("key", std::string()));
    kv.value = base64Decode(item.value("value", std::string()));
    kv.create_revision = int64Field(item, "create_revision");
    kv.mod_revision = int64Field(item, "mod_revision");
    kv.lease = int64Field(item, "lease");
    out.push_back(std::move(kv));
  }
  return out;
}

TxnResult parseTxnResponse(const nlohmann::json& response) {
  TxnResult result;
  result.succeeded = response.value("succeeded", false);
  if (const auto header = response.find("header"); header != response.end()) {
    result.revision = int64Field(*header, "revision");
  }
  if (const auto responses = response.find("responses"); responses != response.end()) {
    for (const nlohmann::json& item : *responses) {
      if (const auto range = item.find("response_range"); range != item.end()) {
        result.ranges.push_back(parseKvs(*range));
      }
    }
  }
  return result;
}

std::int64_t parseKeepAliveTtl(std::string_view body) {
  // A stream of one message: the first JSON value is the answer.
  const std::size_t end = body.find('\n');
  const nlohmann::json message =
      nlohmann::json::parse(end == std::string_view::npos ? body : body.substr(0, end), nullptr,
                            false);
  if (message.is_discarded() || !message.is_object()) {
    throw EtcdFormatError("lease keepalive answer is not a JSON object");
  }
  if (const auto error = message.find("error"); error != message.end()) {
    throw EtcdFormatError("lease keepalive failed: " + error->dump());
  }
  const auto result = message.find("result");
  if (result == message.end()) throw EtcdFormatError("lease keepalive answer has no 'result'");
  return int64Field(*result, "TTL");
}

}  // namespace hostmaint::agent::fleet
