// Checked readers of single TOML values for hostmaintd.conf.
#include "config_values.hpp"

#include <algorithm>

#include "hostmaint/agent/policy.hpp"

namespace hostmaint::agent::config_values {

using namespace std::chrono_literals;

namespace {

std::string durationHint(std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto show = [](std::chrono::milliseconds value) {
    if (value % 1s == 0ms)
      return formatDuration(std::chrono::duration_cast<std::chrono::seconds>(value));
    return std::to_string(value.count()) + "ms";
  };
  return "must be between " + show(min) + " and " + show(max);
}

}  // namespace

std::string_view typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

[[noreturn]] void wrongType(const toml::node& node, std::string_view expected) {
  throw BadValue{"expected " + std::string(expected) + ", got " + std::string(typeName(node))};
}

std::string readString(const toml::node& node) {
  if (const auto* value = node.as_string()) return value->get();
  wrongType(node, "a string");
}

std::string readNonEmptyString(const toml::node& node) {
  std::string value = readString(node);
  if (value.empty()) throw BadValue{"must not be empty"};
  return value;
}

bool readBool(const toml::node& node) {
  const auto* value = node.as_boolean();
  if (value == nullptr) wrongType(node, "a boolean (true or false)");
  return value->get();
}

std::int64_t readInteger(const toml::node& node, std::int64_t min, std::int64_t max) {
  const auto* value = node.as_integer();
  if (value == nullptr) wrongType(node, "an integer");
  if (value->get() < min || value->get() > max) {
    throw BadValue{"must be between " + std::to_string(min) + " and " + std::to_string(max) +
                   ", got " + std::to_string(value->get())};
  }
  return value->get();
}

DestinationConfig readDestination(const toml::node& element, std::size_t position) {
  const std::string where = "element " + std::to_string(position);
  DestinationConfig destination;
  if (const auto* text = element.as_string()) {
    if (text->get().empty()) throw BadValue{where + " must be a non-empty libvirt URI"};
    destination.uri = text->get();
    return destination;
  }
  const auto* table = element.as_table();
  if (table == nullptr) {
    throw BadValue{where + " must be a libvirt URI or a { uri = ... } table, got " +
                   std::string(typeName(element))};
  }
  for (const auto& [key, value] : *table) {
    const std::string name(key.str());
    try {
      if (name == "uri") {
        destination.uri = readNonEmptyString(value);
      } else if (name == "migrate_uri") {
        destination.migrate_uri = readNonEmptyString(value);
      } else if (name == "max_parallel") {
        destination.max_parallel = static_cast<unsigned>(readInteger(value, 1, kMaxParallel));
      } else if (name == "reserved_memory_mib") {
        destination.reserved_memory_mib =
            static_cast<std::uint64_t>(readInteger(value, 0, kMaxReservedMemoryMib));
      } else {
        throw BadValue{"unknown key; a destination has uri, migrate_uri, max_parallel, "
                       "reserved_memory_mib"};
      }
    } catch (const BadValue& bad) {
      throw BadValue{where + ", key '" + name + "': " + bad.what};
    }
  }
  if (destination.uri.empty()) throw BadValue{where + " has no uri"};
  return destination;
}

std::chrono::milliseconds readDuration(const toml::node& node, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max) {
  std::chrono::milliseconds value{};
  if (const auto* integer = node.as_integer()) {
    std::int64_t seconds = integer->get();
    if (seconds < 0 || seconds > max.count() / 1000 + 1) {
      throw BadValue{durationHint(min, max) + ", got " + std::to_string(seconds)};
    }
    value = std::chrono::seconds(seconds);
  } else if (const auto* string = node.as_string()) {
    std::string_view text = string->get();
    if (text.size() > 2 && text.ends_with("ms") &&
        std::all_of(text.begin(), text.end() - 2, [](char c) { return c >= '0' && c <= '9'; }) &&
        text.size() <= 12) {
      value = std::chrono::milliseconds(std::stoll(std::string(text.substr(0, text.size() - 2))));
    } else if (auto seconds = parseDuration(text)) {
      value = *seconds;
    } else {
      throw BadValue{
          "'" + std::string(text) +
          "' is not a duration (like 500ms, 90s, 30m, 2h, 1h30m or a number of seconds)"};
    }
  } else {
    wrongType(node, "a duration string or an integer number of seconds");
  }
  if (value < min || value > max) {
    std::string got = node.is_string() ? std::string(*node.value<std::string>())
                                       : std::to_string(*node.value<std::int64_t>());
    throw BadValue{durationHint(min, max) + ", got " + got};
  }
  return value;
}

std::chrono::seconds wholeSeconds(std::chrono::milliseconds value) {
  return std::chrono::ceil<std::chrono::seconds>(value);
}

std::filesystem::path readAbsolutePath(const toml::node& node) {
  std::filesystem::path path = readNonEmptyString(node);
  if (!path.is_absolute()) throw BadValue{"must be an absolute path, got '" + path.string() + "'"};
  return path;
}

std::string readWord(const toml::node& node, std::span<const std::string_view> accepted) {
  std::string value = readString(node);
  if (std::find(accepted.begin(), accepted.end(), value) != accepted.end()) return value;
  std::string list;
  for (std::string_view word : accepted) {
    if (!list.empty()) list += ", ";
    list += word;
  }
  throw BadValue{"'" + value + "' is not one of " + list};
}

std::string readKeyWord(const toml::node& node) {
  std::string word = readNonEmptyString(node);
  for (char ch : word) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == '/' || ch == 0x7f) {
      throw BadValue{"'" + word + "' must not contain '/', spaces or control characters"};
    }
  }
  return word;
}

}  // namespace hostmaint::agent::config_values
