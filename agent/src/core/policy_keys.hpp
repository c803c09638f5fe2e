// The one table of policy keys, shared by the per-domain metadata parser
// (policy.cpp) and the config's [policy] table (config.cpp), so the two
// vocabularies cannot drift apart. Internal to hostmaint_core.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hostmaint/agent/policy.hpp"

namespace hostmaint::agent {

// The XML namespace of the <policy> metadata element (docs/policy.md).
inline constexpr std::string_view kPolicyNamespace = "https://hostmaint.org/xmlns/policy/1";

// What a key's value is, which decides which TOML types the config accepts
// for it. Every value also has a text form, which is what the metadata
// element carries and what `apply` parses.
enum class PolicyValueKind {
  word,  // one of a fixed set of words (actions)
  text,  // free text (group)
  integer,
  boolean,   // true/false/yes/no/1/0
  duration,  // "30m", "1h30m" or a number of seconds
};

struct PolicyKey {
  std::string_view name;
  PolicyValueKind kind;
  // Parses `text` into `policy`. Returns what is wrong with the value
  // ("'teleport' is not one of live-migrate, ..."), without the key name, so
  // each caller can prefix its own location.
  std::optional<std::string> (*apply)(DomainPolicy& policy, std::string_view text);
};

// Parses a duration that must carry units, down to milliseconds: "500ms",
// "2s", "1s500ms", "1m30s" (d, h, m, s, ms, largest first, each at most
// once). A bare number is refused: for downtimes it is ambiguous.
std::optional<std::chrono::milliseconds> parseDurationMs(std::string_view text);

std::span<const PolicyKey> policyKeys();
const PolicyKey* findPolicyKey(std::string_view name);
// "a, b, c" of every key name, for "unknown key" messages.
std::string policyKeyNames();

// A combination that cannot be honoured, attributed to the key to change.
struct PolicyViolation {
  std::string key;
  std::string message;  // without the key name
};
std::optional<PolicyViolation> findPolicyViolation(const DomainPolicy& policy);

// The known name closest to `name` by edit distance, when it is close
// enough to be a plausible typo; for "did you mean" hints.
std::optional<std::string_view> closestName(std::string_view name,
                                            std::span<const std::string_view> known);

}  // namespace hostmaint::agent
