// The etcd v3 JSON gateway's encoding, without any I/O: base64 keys and
// values, the range end of a prefix, transaction requests, and the parsing
// of range, transaction and lease answers (int64 fields come as strings,
// false and zero fields are left out). Unit-tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace hostmaint::agent::fleet {

std::string base64Encode(std::string_view bytes);
// Throws EtcdFormatError on characters outside the alphabet or a bad length.
std::string base64Decode(std::string_view text);

// The smallest key after every key that starts with `prefix` (etcd's
// range_end for a prefix): the last byte below 0xff incremented, the rest
// dropped. "\0" for an empty or all-0xff prefix (every key).
std::string prefixEnd(std::string_view prefix);

// An answer that is not what the gateway sends.
class EtcdFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;  // 0: none
  bool operator==(const KeyValue&) const = default;
};

// One condition of a transaction.
struct Compare {
  enum class Target { create_revision, mod_revision, value };
  enum class Result { equal, not_equal, greater, less };
  std::string key;
  Target target = Target::create_revision;
  Result result = Result::equal;
  std::int64_t revision = 0;  // create_revision, mod_revision
  std::string value;          // value

  // The key does not exist (its create revision is 0).
  static Compare absent(std::string key);
  // The key exists with exactly this value.
  static Compare valueIs(std::string key, std::string value);
  // The key was last written at `revision` (0: it does not exist).
  static Compare modRevisionIs(std::string key, std::int64_t revision);
};

struct Put {
  std::string key;
  std::string value;
  std::int64_t lease = 0;
};
struct Delete {
  std::string key;
  bool prefix = false;
};
struct Range {
  std::string key;
  bool prefix = false;
};
using Operation = std::variant<Put, Delete, Range>;

struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;
  // The key-values of each Range operation of the branch taken, in order.
  std::vector<std::vector<KeyValue>> ranges;
};

nlohmann::json operationJson(const Operation& operation);
nlohmann::json txnRequest(const std::vector<Compare>& compares,
                          const std::vector<Operation>& success,
                          const std::vector<Operation>& failure);
nlohmann::json rangeRequest(const std::string& key, bool prefix);

// An int64 field: a decimal string, a number, or absent (0).
std::int64_t int64Field(const nlohmann::json& object, const char* name);
std::vector<KeyValue> parseKvs(const nlohmann::json& range_response);
TxnResult parseTxnResponse(const nlohmann::json& response);
// A keepalive answer ({"result": {"ID", "TTL"}}, TTL absent when the lease
// is gone): the TTL, 0 when gone.
std::int64_t parseKeepAliveTtl(std::string_view body);

}  // namespace hostmaint::agent::fleet
