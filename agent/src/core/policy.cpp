// Per-domain policy: the key table shared with the config, durations, the
// validator, and the <hostmaint:policy> metadata parser.
#include "hostmaint/agent/policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include <pugixml.hpp>

#include "policy_keys.hpp"

#include "enum_names.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;

constexpr std::array<std::pair<MaintenanceAction, std::string_view>, 5> kMaintenanceActionNames{{
    {MaintenanceAction::live_migrate, "live-migrate"},
    {MaintenanceAction::cold_migrate, "cold-migrate"},
    {MaintenanceAction::suspend, "suspend"},
    {MaintenanceAction::shutdown, "shutdown"},
    {MaintenanceAction::owner, "owner"},
}};

constexpr std::array<std::pair<HostShutdownAction, std::string_view>, 2> kHostShutdownActionNames{{
    {HostShutdownAction::suspend, "suspend"},
    {HostShutdownAction::shutdown, "shutdown"},
}};

constexpr std::array<std::pair<AckTimeoutAction, std::string_view>, 2> kAckTimeoutActionNames{{
    {AckTimeoutAction::proceed, "proceed"},
    {AckTimeoutAction::block, "block"},
}};

using detail::lookup;
using detail::nameOf;

using detail::joinNames;

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// Bounds that keep every deadline computed from a policy far away from
// TimePoint overflow (system_clock counts nanoseconds: ~292 years).
constexpr std::chrono::seconds kMaxDuration = std::chrono::days(3650);
constexpr int kMinPriority = -1000;
constexpr int kMaxPriority = 1000;
constexpr long long kMaxImpactedMembers = 100000;
constexpr std::size_t kMaxGroupLength = 128;

// ---- value parsers, one per kind of key ----

template <typename Enum, std::size_t N>
std::optional<std::string> parseWord(const std::array<std::pair<Enum, std::string_view>, N>& names,
                                     std::string_view text, Enum& out) {
  if (auto value = lookup(names, text)) {
    out = *value;
    return std::nullopt;
  }
  return quoted(text) + " is not one of " + joinNames(names);
}

std::optional<std::string> parseBool(std::string_view text, bool& out) {
  if (text == "true" || text == "yes" || text == "1") {
    out = true;
    return std::nullopt;
  }
  if (text == "false" || text == "no" || text == "0") {
    out = false;
    return std::nullopt;
  }
  return quoted(text) + " is not one of true, false, yes, no, 1, 0";
}

std::optional<std::string> parseDurationInto(std::string_view text, std::chrono::seconds& out) {
  if (auto value = parseDuration(text)) {
    out = *value;
    return std::nullopt;
  }
  return quoted(text) +
         " is not a duration (like 90s, 30m, 2h, 1d, 1h30m or a number of seconds, at most " +
         formatDuration(kMaxDuration) + ")";
}

std::optional<std::string> parseInteger(std::string_view text, long long min, long long max,
                                        long long& out) {
  long long value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
    return quoted(text) + " is not an integer";
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    return "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
           std::string(text);
  }
  out = value;
  return std::nullopt;
}

// Migration tuning bounds. The downtime floor is Nova's (it rounds smaller
// values up to 100 ms); above a few minutes a "live" migration is a cold one.
constexpr std::chrono::milliseconds kMinMaxDowntime{100};
constexpr std::chrono::milliseconds kMaxMaxDowntime = std::chrono::minutes(10);
constexpr long long kMaxDowntimeSteps = 100;
constexpr std::chrono::seconds kMinStepDelay{1};
constexpr std::chrono::seconds kMaxMigrationTimeout = std::chrono::days(1);
// libvirt takes MiB/s as an unsigned long; 1 TiB/s is beyond any NIC.
constexpr long long kMaxBandwidthMiBs = 1024 * 1024;
// QEMU's multifd channel limit.
constexpr long long kMaxParallelConnections = 255;

std::string formatMilliseconds(std::chrono::milliseconds value) {
  if (value % std::chrono::seconds(1) == std::chrono::milliseconds(0)) {
    return formatDuration(std::chrono::duration_cast<std::chrono::seconds>(value));
  }
  return std::to_string(value.count()) + "ms";
}

std::optional<std::string> parseMillisecondsInto(std::string_view text, std::chrono::milliseconds min,
                                                 std::chrono::milliseconds max,
                                                 std::chrono::milliseconds& out) {
  // A bare number is seconds everywhere else but milliseconds in Nova's and
  // libvirt's downtime settings; refusing it beats guessing wrong by 1000x.
  if (!text.empty() &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return quoted(text) + " has no unit; write " + std::string(text) + "ms or " +
           std::string(text) + "s";
  }
  auto value = parseDurationMs(text);
  if (!value) {
    return quoted(text) + " is not a duration with units (like 500ms, 2s, 1s500ms)";
  }
  if (*value < min || *value > max) {
    return "must be between " + formatMilliseconds(min) + " and " + formatMilliseconds(max) +
           ", got " + std::string(text);
  }
  out = *value;
  return std::nullopt;
}

std::optional<std::string> parseBoundedDurationInto(std::string_view text, std::chrono::seconds min,
                                                    std::chrono::seconds max,
                                                    std::chrono::seconds& out) {
  std::chrono::seconds value{};
  if (auto error = parseDurationInto(text, value)) return error;
  if (value < min || value > max) {
    return "must be between " + formatDuration(min) + " and " + formatDuration(max) + ", got " +
           std::string(text);
  }
  out = value;
  return std::nullopt;
}

std::optional<std::string> checkGroup(std::string_view text) {
  if (text.size() > kMaxGroupLength) {
    return "group names are at most " + std::to_string(kMaxGroupLength) + " characters, got " +
           std::to_string(text.size());
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return quoted(text) + " contains a control character";
    }
  }
  return std::nullopt;
}

// ---- the key table ----

using Apply = std::optional<std::string> (*)(DomainPolicy&, std::string_view);

template <MaintenanceAction DomainPolicy::*Member>
std::optional<std::string> applyAction(DomainPolicy& policy, std::string_view text) {
  return parseWord(kMaintenanceActionNames, text, policy.*Member);
}

template <std::chrono::seconds DomainPolicy::*Member>
std::optional<std::string> applyDuration(DomainPolicy& policy, std::string_view text) {
  return parseDurationInto(text, policy.*Member);
}

template <bool DomainPolicy::*Member>
std::optional<std::string> applyBool(DomainPolicy& policy, std::string_view text) {
  return parseBool(text, policy.*Member);
}

template <std::chrono::seconds DomainPolicy::*Member, std::int64_t MinSeconds>
std::optional<std::string> applyMigrationTimeout(DomainPolicy& policy, std::string_view text) {
  return parseBoundedDurationInto(text, std::chrono::seconds(MinSeconds), kMaxMigrationTimeout,
                                  policy.*Member);
}

const std::array<PolicyKey, 24> kPolicyKeys{{
    {"maintenance_action", PolicyValueKind::word, &applyAction<&DomainPolicy::maintenance_action>},
    {"removal_action", PolicyValueKind::word, &applyAction<&DomainPolicy::removal_action>},
    {"fallback_action", PolicyValueKind::word, &applyAction<&DomainPolicy::fallback_action>},
    {"removal_fallback_action", PolicyValueKind::word,
     &applyAction<&DomainPolicy::removal_fallback_action>},
    {"host_shutdown_action", PolicyValueKind::word,
     [](DomainPolicy& policy, std::string_view text) {
       return parseWord(kHostShutdownActionNames, text, policy.host_shutdown_action);
     }},
    {"ack_required", PolicyValueKind::boolean, &applyBool<&DomainPolicy::ack_required>},
    {"ack_timeout", PolicyValueKind::duration, &applyDuration<&DomainPolicy::ack_timeout>},
    {"ack_timeout_action", PolicyValueKind::word,
     [](DomainPolicy& policy, std::string_view text) {
       return parseWord(kAckTimeoutActionNames, text, policy.ack_timeout_action);
     }},
    {"lead_time", PolicyValueKind::duration, &applyDuration<&DomainPolicy::lead_time>},
    {"group", PolicyValueKind::text,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       if (auto error = checkGroup(text)) return error;
       policy.group = std::string(text);
       return std::nullopt;
     }},
    {"max_impacted_members", PolicyValueKind::integer,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       long long value = 0;
       if (auto error = parseInteger(text, 1, kMaxImpactedMembers, value)) return error;
       policy.max_impacted_members = static_cast<unsigned>(value);
       return std::nullopt;
     }},
    {"recovery_time", PolicyValueKind::duration, &applyDuration<&DomainPolicy::recovery_time>},
    {"priority", PolicyValueKind::integer,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       long long value = 0;
       if (auto error = parseInteger(text, kMinPriority, kMaxPriority, value)) return error;
       policy.priority = static_cast<int>(value);
       return std::nullopt;
     }},
    {"shutdown_timeout", PolicyValueKind::duration,
     &applyDuration<&DomainPolicy::shutdown_timeout>},
    {"force_stop", PolicyValueKind::boolean, &applyBool<&DomainPolicy::force_stop>},
    {"migration_max_downtime", PolicyValueKind::duration,
     [](DomainPolicy& policy, std::string_view text) {
       return parseMillisecondsInto(text, kMinMaxDowntime, kMaxMaxDowntime,
                                    policy.migration_max_downtime);
     }},
    {"migration_downtime_steps", PolicyValueKind::integer,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       long long value = 0;
       if (auto error = parseInteger(text, 0, kMaxDowntimeSteps, value)) return error;
       policy.migration_downtime_steps = static_cast<unsigned>(value);
       return std::nullopt;
     }},
    {"migration_downtime_step_delay", PolicyValueKind::duration,
     [](DomainPolicy& policy, std::string_view text) {
       return parseBoundedDurationInto(text, kMinStepDelay, kMaxMigrationTimeout,
                                       policy.migration_downtime_step_delay);
     }},
    {"migration_bandwidth_mib_s", PolicyValueKind::integer,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       long long value = 0;
       if (auto error = parseInteger(text, 0, kMaxBandwidthMiBs, value)) return error;
       policy.migration_bandwidth_mib_s = static_cast<std::uint64_t>(value);
       return std::nullopt;
     }},
    {"migration_auto_converge", PolicyValueKind::boolean,
     &applyBool<&DomainPolicy::migration_auto_converge>},
    {"migration_post_copy", PolicyValueKind::boolean,
     &applyBool<&DomainPolicy::migration_post_copy>},
    {"migration_completion_timeout_per_gib", PolicyValueKind::duration,
     &applyMigrationTimeout<&DomainPolicy::migration_completion_timeout_per_gib, 0>},
    {"migration_progress_timeout", PolicyValueKind::duration,
     &applyMigrationTimeout<&DomainPolicy::migration_progress_timeout, 0>},
    {"migration_parallel_connections", PolicyValueKind::integer,
     [](DomainPolicy& policy, std::string_view text) -> std::optional<std::string> {
       long long value = 0;
       if (auto error = parseInteger(text, 0, kMaxParallelConnections, value)) return error;
       policy.migration_parallel_connections = static_cast<unsigned>(value);
       return std::nullopt;
     }},
}};

// ---- XML namespace resolution (pugixml does not resolve prefixes) ----

std::string_view prefixOf(std::string_view qualified) {
  auto colon = qualified.find(':');
  return colon == std::string_view::npos ? std::string_view{} : qualified.substr(0, colon);
}

std::string_view localNameOf(std::string_view qualified) {
  auto colon = qualified.find(':');
  return colon == std::string_view::npos ? qualified : qualified.substr(colon + 1);
}

// The namespace URI bound to the element's prefix, looked up on the element
// and its ancestors as XML Namespaces prescribe; empty when unbound.
std::string_view namespaceOf(pugi::xml_node element) {
  std::string_view prefix = prefixOf(element.name());
  std::string declaration = prefix.empty() ? "xmlns" : "xmlns:" + std::string(prefix);
  for (pugi::xml_node node = element; node && node.type() == pugi::node_element;
       node = node.parent()) {
    if (pugi::xml_attribute attribute = node.attribute(declaration.c_str())) {
      return attribute.value();
    }
  }
  return {};
}

bool isNamespaceDeclaration(std::string_view attribute) {
  return attribute == "xmlns" || attribute.starts_with("xmlns:");
}

std::string_view trimmed(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

std::string describeElement(pugi::xml_node element) {
  std::string_view uri = namespaceOf(element);
  std::string out = quoted(localNameOf(element.name()));
  out += uri.empty() ? std::string(" in no namespace") : " in namespace " + quoted(uri);
  return out;
}

PolicyError errorFor(std::string_view key, std::string_view message) {
  return PolicyError{std::string(key) + ": " + std::string(message)};
}

std::optional<PolicyError> applyElement(DomainPolicy& policy, pugi::xml_node element,
                                        std::string_view policy_namespace,
                                        std::set<std::string, std::less<>>& seen) {
  std::string_view local = localNameOf(element.name());
  if (namespaceOf(element) != policy_namespace) {
    return PolicyError{"unknown element " + describeElement(element) + "; policy keys are in " +
                       quoted(kPolicyNamespace)};
  }
  const PolicyKey* key = findPolicyKey(local);
  if (key == nullptr) {
    std::vector<std::string_view> names;
    for (const PolicyKey& known : policyKeys()) names.push_back(known.name);
    std::string message = "unknown key";
    if (auto guess = closestName(local, names))
      message += " (did you mean '" + std::string(*guess) + "'?)";
    return errorFor(local, message + "; known keys are " + policyKeyNames());
  }
  if (!seen.insert(std::string(local)).second) {
    return errorFor(local, "set more than once");
  }
  for (pugi::xml_attribute attribute : element.attributes()) {
    if (!isNamespaceDeclaration(attribute.name())) {
      return errorFor(local, "unexpected attribute " + quoted(attribute.name()));
    }
  }
  std::string text;
  for (pugi::xml_node child : element.children()) {
    switch (child.type()) {
      case pugi::node_pcdata:
      case pugi::node_cdata:
        text += child.value();
        break;
      case pugi::node_comment:
      case pugi::node_pi:
        break;
      default:
        return errorFor(local, "expected a text value, found element " + quoted(child.name()));
    }
  }
  if (auto problem = key->apply(policy, trimmed(text))) return errorFor(local, *problem);
  return std::nullopt;
}

}  // namespace

std::string_view toString(MaintenanceAction action) {
  return nameOf(kMaintenanceActionNames, action);
}
std::string_view toString(HostShutdownAction action) {
  return nameOf(kHostShutdownActionNames, action);
}
std::string_view toString(AckTimeoutAction action) {
  return nameOf(kAckTimeoutActionNames, action);
}
std::optional<MaintenanceAction> parseMaintenanceAction(std::string_view text) {
  return lookup(kMaintenanceActionNames, text);
}
std::optional<HostShutdownAction> parseHostShutdownAction(std::string_view text) {
  return lookup(kHostShutdownActionNames, text);
}
std::optional<AckTimeoutAction> parseAckTimeoutAction(std::string_view text) {
  return lookup(kAckTimeoutActionNames, text);
}

bool keepsDomainOnHost(MaintenanceAction action) {
  return action == MaintenanceAction::suspend || action == MaintenanceAction::shutdown;
}

bool isMigration(MaintenanceAction action) {
  return action == MaintenanceAction::live_migrate || action == MaintenanceAction::cold_migrate;
}

std::span<const PolicyKey> policyKeys() { return kPolicyKeys; }

const PolicyKey* findPolicyKey(std::string_view name) {
  for (const PolicyKey& key : kPolicyKeys) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

std::string policyKeyNames() {
  std::string out;
  for (const PolicyKey& key : kPolicyKeys) {
    if (!out.empty()) out += ", ";
    out += key.name;
  }
  return out;
}

std::optional<std::string_view> closestName(std::string_view name,
                                            std::span<const std::string_view> known) {
  // Plain Levenshtein distance; the lists are a few dozen short names.
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        std::size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  std::optional<std::string_view> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (std::string_view candidate : known) {
    std::size_t d = distance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  // More than a third of the name changed is not a typo any more.
  if (!best || best_distance == 0 || best_distance > std::max<std::size_t>(2, name.size() / 3)) {
    return std::nullopt;
  }
  return best;
}

std::optional<PolicyViolation> findPolicyViolation(const DomainPolicy& policy) {
  const std::string kLeaves = "; use one of live-migrate, cold-migrate, owner";
  if (keepsDomainOnHost(policy.removal_action)) {
    return PolicyViolation{"removal_action",
                           quoted(toString(policy.removal_action)) +
                               " keeps the domain on the host, which is being removed" + kLeaves};
  }
  if (keepsDomainOnHost(policy.removal_fallback_action)) {
    return PolicyViolation{"removal_fallback_action",
                           quoted(toString(policy.removal_fallback_action)) +
                               " keeps the domain on the host, which is being removed" + kLeaves};
  }
  if (policy.max_impacted_members < 1 || policy.max_impacted_members > kMaxImpactedMembers) {
    return PolicyViolation{"max_impacted_members",
                           "must be between 1 and " + std::to_string(kMaxImpactedMembers) +
                               ", got " + std::to_string(policy.max_impacted_members)};
  }
  if (policy.priority < kMinPriority || policy.priority > kMaxPriority) {
    return PolicyViolation{"priority", "must be between " + std::to_string(kMinPriority) + " and " +
                                           std::to_string(kMaxPriority) + ", got " +
                                           std::to_string(policy.priority)};
  }
  if (policy.shutdown_timeout < 1s) {
    return PolicyViolation{"shutdown_timeout",
                           "must be at least 1s, got " + formatDuration(policy.shutdown_timeout)};
  }
  if (policy.ack_required && policy.ack_timeout < 1s) {
    return PolicyViolation{"ack_timeout", "must be at least 1s when ack_required is true, got " +
                                              formatDuration(policy.ack_timeout)};
  }
  const std::pair<std::string_view, std::chrono::seconds> durations[] = {
      {"ack_timeout", policy.ack_timeout},
      {"lead_time", policy.lead_time},
      {"recovery_time", policy.recovery_time},
      {"shutdown_timeout", policy.shutdown_timeout},
  };
  for (const auto& [key, value] : durations) {
    if (value < 0s || value > kMaxDuration) {
      return PolicyViolation{std::string(key), "must be between 0s and " +
                                                   formatDuration(kMaxDuration) + ", got " +
                                                   formatDuration(value)};
    }
  }
  if (auto problem = checkGroup(policy.group)) return PolicyViolation{"group", *problem};
  // The parsers enforce these too; a policy built in code gets the same checks.
  if (policy.migration_max_downtime < kMinMaxDowntime ||
      policy.migration_max_downtime > kMaxMaxDowntime) {
    return PolicyViolation{"migration_max_downtime",
                           "must be between " + formatMilliseconds(kMinMaxDowntime) + " and " +
                               formatMilliseconds(kMaxMaxDowntime) + ", got " +
                               formatMilliseconds(policy.migration_max_downtime)};
  }
  const std::pair<std::string_view, std::pair<long long, long long>> counts[] = {
      {"migration_downtime_steps", {policy.migration_downtime_steps, kMaxDowntimeSteps}},
      {"migration_parallel_connections",
       {policy.migration_parallel_connections, kMaxParallelConnections}},
  };
  for (const auto& [key, value_and_max] : counts) {
    if (value_and_max.first > value_and_max.second) {
      return PolicyViolation{std::string(key), "must be between 0 and " +
                                                   std::to_string(value_and_max.second) +
                                                   ", got " + std::to_string(value_and_max.first)};
    }
  }
  if (policy.migration_bandwidth_mib_s > static_cast<std::uint64_t>(kMaxBandwidthMiBs)) {
    return PolicyViolation{"migration_bandwidth_mib_s",
                           "must be between 0 and " + std::to_string(kMaxBandwidthMiBs) +
                               ", got " + std::to_string(policy.migration_bandwidth_mib_s)};
  }
  const std::pair<std::string_view, std::pair<std::chrono::seconds, std::chrono::seconds>>
      migration_durations[] = {
          {"migration_downtime_step_delay", {policy.migration_downtime_step_delay, kMinStepDelay}},
          {"migration_completion_timeout_per_gib",
           {policy.migration_completion_timeout_per_gib, 0s}},
          {"migration_progress_timeout", {policy.migration_progress_timeout, 0s}},
      };
  for (const auto& [key, value_and_min] : migration_durations) {
    if (value_and_min.first < value_and_min.second || value_and_min.first > kMaxMigrationTimeout) {
      return PolicyViolation{std::string(key), "must be between " +
                                                   formatDuration(value_and_min.second) + " and " +
                                                   formatDuration(kMaxMigrationTimeout) + ", got " +
                                                   formatDuration(value_and_min.first)};
    }
  }
  return std::nullopt;
}

std::optional<std::string> validatePolicy(const DomainPolicy& policy) {
  if (auto violation = findPolicyViolation(policy)) {
    return violation->key + ": " + violation->message;
  }
  return std::nullopt;
}

PolicyResult applyPolicyMetadata(const DomainPolicy& defaults, std::string_view metadata_xml) {
  // No element at all means no overrides; anything present must be right.
  if (trimmed(metadata_xml).empty()) {
    if (auto error = validatePolicy(defaults)) return PolicyError{*error};
    return defaults;
  }

  pugi::xml_document document;
  pugi::xml_parse_result parsed = document.load_buffer(metadata_xml.data(), metadata_xml.size(),
                                                       pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return PolicyError{
        "policy metadata is not well-formed XML: " + std::string(parsed.description()) +
        " at offset " + std::to_string(parsed.offset)};
  }

  pugi::xml_node root;
  for (pugi::xml_node node : document.children()) {
    if (node.type() == pugi::node_element) {
      if (root) {
        return PolicyError{"policy metadata has more than one root element: " +
                           quoted(root.name()) + " and " + quoted(node.name())};
      }
      root = node;
    }
  }
  // virDomainGetMetadata returns the element it was asked for by namespace
  // with that namespace stripped, so "no namespace" is accepted as well.
  std::string_view root_namespace = root ? namespaceOf(root) : std::string_view{};
  if (!root || localNameOf(root.name()) != "policy" ||
      (root_namespace != kPolicyNamespace && !root_namespace.empty())) {
    std::string found = root ? describeElement(root) : std::string("nothing");
    return PolicyError{"policy metadata must be a 'policy' element in namespace " +
                       quoted(kPolicyNamespace) + ", found " + found};
  }

  DomainPolicy policy = defaults;
  std::set<std::string, std::less<>> seen;
  for (pugi::xml_node child : root.children()) {
    switch (child.type()) {
      case pugi::node_element:
        if (auto error = applyElement(policy, child, root_namespace, seen)) return *error;
        break;
      case pugi::node_pcdata:
      case pugi::node_cdata:
        if (!trimmed(child.value()).empty()) {
          return PolicyError{"policy metadata: unexpected text " + quoted(trimmed(child.value())) +
                             " between keys"};
        }
        break;
      default:
        break;  // comments, processing instructions
    }
  }
  if (auto error = validatePolicy(policy)) return PolicyError{*error};
  return policy;
}

std::optional<std::chrono::seconds> parseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  // A bare number is seconds.
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
    if (value > kMaxDuration.count()) return std::nullopt;
    return std::chrono::seconds(value);
  }
  // Otherwise units (1d2h30m10s), in whole seconds: this key's unit.
  const auto value = parseDurationMs(text);
  if (!value || *value % std::chrono::seconds(1) != std::chrono::milliseconds(0)) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*value);
}

std::optional<std::chrono::milliseconds> parseDurationMs(std::string_view text) {
  if (text.empty()) return std::nullopt;
  // Units in descending order, each at most once: 1m30s, 1s500ms, 500ms.
  constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> kUnits{
      {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};
  constexpr std::int64_t kMax = std::chrono::milliseconds(kMaxDuration).count();
  std::size_t next_unit = 0;
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t digits_end = pos;
    while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') {
      ++digits_end;
    }
    if (digits_end == pos || digits_end == text.size()) return std::nullopt;
    std::int64_t amount = 0;
    auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + digits_end, amount);
    if (ec != std::errc{}) return std::nullopt;
    std::size_t unit_end = digits_end;
    while (unit_end < text.size() && (text[unit_end] < '0' || text[unit_end] > '9')) ++unit_end;
    std::string_view unit = text.substr(digits_end, unit_end - digits_end);
    while (next_unit < kUnits.size() && kUnits[next_unit].first != unit) ++next_unit;
    if (next_unit == kUnits.size()) return std::nullopt;
    std::int64_t scale = kUnits[next_unit].second;
    ++next_unit;
    if (amount > kMax / scale) return std::nullopt;
    total += amount * scale;
    if (total > kMax) return std::nullopt;
    pos = unit_end;
  }
  return std::chrono::milliseconds(total);
}

std::string formatDuration(std::chrono::seconds duration) {
  std::int64_t total = duration.count();
  if (total == 0) return "0s";
  std::string out;
  if (total < 0) {
    out = "-";
    // Negating INT64_MIN overflows; no real duration comes near it.
    if (total == std::numeric_limits<std::int64_t>::min()) return "-" + std::to_string(total);
    total = -total;
  }
  constexpr std::array<std::pair<char, std::int64_t>, 4> kUnits{
      {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};
  for (const auto& [unit, scale] : kUnits) {
    if (total >= scale) {
      out += std::to_string(total / scale);
      out += unit;
      total %= scale;
    }
  }
  return out;
}

}  // namespace hostmaint::agent
