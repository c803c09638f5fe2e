// Reads hostmaintd.conf and its drop-ins into Config. Every value is checked
// where it is read, so an error can name the file, line and key it came from.
// The config's schema is here in one list, table by table in the order
// docs/configuration.md lists them; the value readers are in
// config_values.cpp, the reading of files in config_files.cpp.
#include "hostmaint/agent/config.hpp"


#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include <boost/asio/ip/address.hpp>
#include <toml++/toml.h>

#include "config_files.hpp"
#include "config_values.hpp"
#include "policy_keys.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;
using namespace config_values;
using config_files::dropInFiles;
using config_files::readFile;

// Where a key was last set, so errors found after merging (cross-key
// checks, policy combinations) still point at the right file and line.
struct Location {
  std::filesystem::path file;
  std::int64_t line = 0;
};

std::string describe(const Location& where) {
  std::string out = where.file.string();
  if (where.line > 0) out += ":" + std::to_string(where.line);
  return out;
}

[[noreturn]] void failAt(const Location& where, std::string_view key, std::string_view what) {
  throw ConfigError(describe(where) + ": key '" + std::string(key) + "': " + std::string(what));
}

constexpr std::array<std::string_view, 2> kQemuProcessScopes{"all", "known-domains"};
constexpr std::array<std::string_view, 7> kLogLevels{"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};

// One settable key outside [policy] (those come from the shared policy table).
struct SettingKey {
  std::string_view section;
  std::string_view name;
  void (*set)(Config& config, const toml::node& node);
};


const std::array<SettingKey, 43> kSettings{{
    {"libvirt", "uri",
     [](Config& c, const toml::node& n) { c.libvirt.uri = readNonEmptyString(n); }},
    {"libvirt", "keepalive_interval",
     [](Config& c, const toml::node& n) {
       auto interval = readDuration(n, 1s, 1h);
       // libvirt takes the keepalive interval in whole seconds.
       if (interval % 1s != 0ms) throw BadValue{"must be a whole number of seconds"};
       c.libvirt.keepalive_interval = std::chrono::duration_cast<std::chrono::seconds>(interval);
     }},
    {"libvirt", "keepalive_count",
     [](Config& c, const toml::node& n) {
       c.libvirt.keepalive_count = static_cast<unsigned>(readInteger(n, 1, 100));
     }},
    {"libvirt", "reconnect_min",
     [](Config& c, const toml::node& n) { c.libvirt.reconnect_min = readDuration(n, 10ms, 1h); }},
    {"libvirt", "reconnect_max",
     [](Config& c, const toml::node& n) { c.libvirt.reconnect_max = readDuration(n, 10ms, 1h); }},
    {"paths", "state_dir",
     [](Config& c, const toml::node& n) { c.paths.state_dir = readAbsolutePath(n); }},
    {"paths", "runtime_dir",
     [](Config& c, const toml::node& n) { c.paths.runtime_dir = readAbsolutePath(n); }},
    {"limits", "max_parallel_actions",
     [](Config& c, const toml::node& n) {
       c.limits.max_parallel_actions = static_cast<unsigned>(readInteger(n, 1, kMaxParallel));
     }},
    {"limits", "max_parallel_migrations",
     [](Config& c, const toml::node& n) {
       c.limits.max_parallel_migrations = static_cast<unsigned>(readInteger(n, 1, kMaxParallel));
     }},
    {"limits", "save_timeout",
     [](Config& c, const toml::node& n) {
       c.limits.save_timeout = wholeSeconds(readDuration(n, 1s, 24h));
     }},
    {"limits", "restore_timeout",
     [](Config& c, const toml::node& n) {
       c.limits.restore_timeout = wholeSeconds(readDuration(n, 1s, 24h));
     }},
    {"migration", "destinations",
     [](Config& c, const toml::node& n) {
       const auto* array = n.as_array();
       if (array == nullptr) wrongType(n, "an array of libvirt URIs or { uri = ... } tables");
       std::vector<DestinationConfig> destinations;
       for (std::size_t i = 0; i < array->size(); ++i) {
         DestinationConfig destination = readDestination(*array->get(i), i + 1);
         for (const auto& earlier : destinations) {
           if (earlier.uri == destination.uri) {
             throw BadValue{"element " + std::to_string(i + 1) + " lists '" + destination.uri +
                            "' again"};
           }
         }
         destinations.push_back(std::move(destination));
       }
       c.migration.destinations = std::move(destinations);
     }},
    {"migration", "max_parallel_per_destination",
     [](Config& c, const toml::node& n) {
       c.migration.max_parallel_per_destination =
           static_cast<unsigned>(readInteger(n, 1, kMaxParallel));
     }},
    {"migration", "adaptive",
     [](Config& c, const toml::node& n) { c.migration.adaptive = readBool(n); }},
    {"migration", "adaptive_initial_parallel",
     [](Config& c, const toml::node& n) {
       c.migration.adaptive_initial_parallel = static_cast<unsigned>(readInteger(n, 1, kMaxParallel));
     }},
    {"migration", "reserved_memory_mib",
     [](Config& c, const toml::node& n) {
       c.migration.reserved_memory_mib =
           static_cast<std::uint64_t>(readInteger(n, 0, kMaxReservedMemoryMib));
     }},
    {"migration", "destination_probe_interval",
     [](Config& c, const toml::node& n) {
       const auto interval = readDuration(n, 1s, 1h);
       if (interval % 1s != 0ms) throw BadValue{"must be a whole number of seconds"};
       c.migration.destination_probe_interval =
           std::chrono::duration_cast<std::chrono::seconds>(interval);
     }},
    {"migration", "stall_timeout",
     [](Config& c, const toml::node& n) {
       c.migration.stall_timeout = wholeSeconds(readDuration(n, 0s, 1h));
     }},
    {"migration", "destination_retries",
     [](Config& c, const toml::node& n) {
       c.migration.destination_retries = static_cast<unsigned>(readInteger(n, 0, 10));
     }},
    {"migration", "destination_retry_delay",
     [](Config& c, const toml::node& n) {
       c.migration.destination_retry_delay = wholeSeconds(readDuration(n, 1s, 1h));
     }},
    {"evidence", "qemu_process_scope",
     [](Config& c, const toml::node& n) {
       c.evidence.qemu_process_scope = readWord(n, kQemuProcessScopes);
     }},
    {"evidence", "proc_root",
     [](Config& c, const toml::node& n) { c.evidence.proc_root = readAbsolutePath(n); }},
    {"evidence", "sysfs_root",
     [](Config& c, const toml::node& n) { c.evidence.sysfs_root = readAbsolutePath(n); }},
    {"dbus", "admin_group",
     [](Config& c, const toml::node& n) {
       std::string group = readString(n);
       for (char ch : group) {
         if (static_cast<unsigned char>(ch) <= 0x20 || ch == ':' || ch == 0x7f) {
           throw BadValue{"'" + group + "' is not a valid group name"};
         }
       }
       c.dbus.admin_group = std::move(group);
     }},
    {"log", "level", [](Config& c, const toml::node& n) { c.log_level = readWord(n, kLogLevels); }},
    {"http", "enabled",
     [](Config& c, const toml::node& n) { c.http.enabled = readBool(n); }},
    {"http", "listen_address",
     [](Config& c, const toml::node& n) {
       std::string address = readNonEmptyString(n);
       boost::system::error_code error;
       boost::asio::ip::make_address(address, error);
       if (error) throw BadValue{"'" + address + "' is not an IPv4 or IPv6 address"};
       c.http.listen_address = std::move(address);
     }},
    {"http", "port",
     [](Config& c, const toml::node& n) {
       c.http.port = static_cast<std::uint16_t>(readInteger(n, 1, 65535));
     }},
    {"http", "max_connections",
     [](Config& c, const toml::node& n) {
       c.http.max_connections = static_cast<std::size_t>(readInteger(n, 1, 10000));
     }},
    {"http", "request_timeout",
     [](Config& c, const toml::node& n) { c.http.request_timeout = readDuration(n, 100ms, 10min); }},
    {"controller", "base_url",
     [](Config& c, const toml::node& n) {
       std::string url = readString(n);
       if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://"))
         throw BadValue{"must start with http:// or https://, got '" + url + "'"};
       c.controller.base_url = std::move(url);
     }},
    {"controller", "host_id",
     [](Config& c, const toml::node& n) { c.controller.host_id = readString(n); }},
    {"controller", "poll_interval",
     [](Config& c, const toml::node& n) { c.controller.poll_interval = readDuration(n, 1s, 24h); }},
    {"controller", "max_backoff",
     [](Config& c, const toml::node& n) { c.controller.max_backoff = readDuration(n, 1s, 24h); }},
    {"controller", "long_poll",
     [](Config& c, const toml::node& n) { c.controller.long_poll = readBool(n); }},
    {"controller", "heartbeat_interval",
     [](Config& c, const toml::node& n) {
       c.controller.heartbeat_interval = readDuration(n, 1s, 24h);
     }},
    {"controller", "ca_file",
     [](Config& c, const toml::node& n) { c.controller.ca_file = readAbsolutePath(n); }},
    {"controller", "client_cert",
     [](Config& c, const toml::node& n) { c.controller.client_cert = readAbsolutePath(n); }},
    {"controller", "client_key",
     [](Config& c, const toml::node& n) { c.controller.client_key = readAbsolutePath(n); }},
    {"controller", "token_file",
     [](Config& c, const toml::node& n) { c.controller.token_file = readAbsolutePath(n); }},
    {"controller", "connect_timeout",
     [](Config& c, const toml::node& n) {
       c.controller.connect_timeout = readDuration(n, 100ms, 10min);
     }},
    {"controller", "request_timeout",
     [](Config& c, const toml::node& n) {
       c.controller.request_timeout = readDuration(n, 100ms, 1h);
     }},
    {"controller", "max_response_bytes",
     [](Config& c, const toml::node& n) {
       c.controller.max_response_bytes =
           static_cast<std::size_t>(readInteger(n, 1024, 64 * 1024 * 1024));
     }},
}};

// [notices] (docs/notices.md), in a table of its own.
const std::array<SettingKey, 11> kNoticeSettings{{
    {"notices", "webhook_url",
     [](Config& c, const toml::node& n) {
       std::string url = readString(n);
       if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://"))
         throw BadValue{"must start with http:// or https://, got '" + url + "'"};
       c.notices.webhook_url = std::move(url);
     }},
    {"notices", "webhook_token_file",
     [](Config& c, const toml::node& n) { c.notices.webhook_token_file = readAbsolutePath(n); }},
    {"notices", "webhook_ca_file",
     [](Config& c, const toml::node& n) { c.notices.webhook_ca_file = readAbsolutePath(n); }},
    {"notices", "webhook_connect_timeout",
     [](Config& c, const toml::node& n) {
       c.notices.webhook_connect_timeout = readDuration(n, 100ms, 5min);
     }},
    {"notices", "webhook_timeout",
     [](Config& c, const toml::node& n) { c.notices.webhook_timeout = readDuration(n, 100ms, 10min); }},
    {"notices", "webhook_attempts",
     [](Config& c, const toml::node& n) {
       c.notices.webhook_attempts = static_cast<unsigned>(readInteger(n, 1, 100));
     }},
    {"notices", "webhook_retry_min",
     [](Config& c, const toml::node& n) { c.notices.webhook_retry_min = readDuration(n, 10ms, 1h); }},
    {"notices", "webhook_retry_max",
     [](Config& c, const toml::node& n) { c.notices.webhook_retry_max = readDuration(n, 10ms, 24h); }},
    {"notices", "assumed_migration_throughput_mib_s",
     [](Config& c, const toml::node& n) {
       c.notices.assumed_migration_throughput_mib_s =
           static_cast<std::uint64_t>(readInteger(n, 1, 1024 * 1024));
     }},
    {"notices", "min_expected_downtime",
     [](Config& c, const toml::node& n) {
       c.notices.min_expected_downtime = wholeSeconds(readDuration(n, 0s, 24h));
     }},
    {"notices", "boot_estimate",
     [](Config& c, const toml::node& n) {
       c.notices.boot_estimate = wholeSeconds(readDuration(n, 0s, 24h));
     }},
}};

// [cordon] and [host_shutdown]: guarding the host around the drain
// (docs/operations.md, "Cordon" and "Host shutdown").
const std::array<SettingKey, 4> kGuardSettings{{
    {"cordon", "cordon_command",
     [](Config& c, const toml::node& n) { c.cordon.cordon_command = readString(n); }},
    {"cordon", "uncordon_command",
     [](Config& c, const toml::node& n) { c.cordon.uncordon_command = readString(n); }},
    {"cordon", "command_timeout",
     [](Config& c, const toml::node& n) { c.cordon.command_timeout = readDuration(n, 1s, 1h); }},
    {"host_shutdown", "max_parallel",
     [](Config& c, const toml::node& n) {
       c.host_shutdown.max_parallel = static_cast<unsigned>(readInteger(n, 0, 1024));
     }},
}};

// [fleet] (docs/fleet.md): coordination through etcd.
const std::array<SettingKey, 21> kFleetSettings{{
    {"fleet", "endpoints",
     [](Config& c, const toml::node& n) {
       const auto* array = n.as_array();
       if (array == nullptr) wrongType(n, "an array of etcd client URLs");
       std::vector<std::string> endpoints;
       for (std::size_t i = 0; i < array->size(); ++i) {
         const auto* text = array->get(i)->as_string();
         if (text == nullptr || !(text->get().starts_with("http://") ||
                                  text->get().starts_with("https://"))) {
           throw BadValue{"element " + std::to_string(i + 1) +
                          " must be an http:// or https:// URL of an etcd member"};
         }
         endpoints.push_back(text->get());
       }
       c.fleet.endpoints = std::move(endpoints);
     }},
    {"fleet", "name", [](Config& c, const toml::node& n) { c.fleet.name = readKeyWord(n); }},
    {"fleet", "prefix",
     [](Config& c, const toml::node& n) {
       std::string prefix = readNonEmptyString(n);
       if (!prefix.starts_with('/') || prefix.ends_with('/')) {
         throw BadValue{"must start with '/' and not end with one, got '" + prefix + "'"};
       }
       c.fleet.prefix = std::move(prefix);
     }},
    {"fleet", "host",
     [](Config& c, const toml::node& n) {
       std::string host = readString(n);  // empty: controller.host_id or the host name
       if (!host.empty()) host = readKeyWord(n);
       c.fleet.host = std::move(host);
     }},
    {"fleet", "failure_domain",
     [](Config& c, const toml::node& n) {
       std::string label = readString(n);
       if (!label.empty()) label = readKeyWord(n);
       c.fleet.failure_domain = std::move(label);
     }},
    {"fleet", "max_concurrent",
     [](Config& c, const toml::node& n) {
       c.fleet.max_concurrent = static_cast<unsigned>(readInteger(n, 1, 1000));
     }},
    {"fleet", "max_concurrent_per_domain",
     [](Config& c, const toml::node& n) {
       c.fleet.max_concurrent_per_domain = static_cast<unsigned>(readInteger(n, 0, 1000));
     }},
    {"fleet", "lease_ttl",
     [](Config& c, const toml::node& n) {
       c.fleet.lease_ttl = wholeSeconds(readDuration(n, 2s, 1h));
     }},
    {"fleet", "poll_interval",
     [](Config& c, const toml::node& n) { c.fleet.poll_interval = readDuration(n, 100ms, 1min); }},
    {"fleet", "ca_file",
     [](Config& c, const toml::node& n) { c.fleet.ca_file = readAbsolutePath(n); }},
    {"fleet", "client_cert",
     [](Config& c, const toml::node& n) { c.fleet.client_cert = readAbsolutePath(n); }},
    {"fleet", "client_key",
     [](Config& c, const toml::node& n) { c.fleet.client_key = readAbsolutePath(n); }},
    {"fleet", "user", [](Config& c, const toml::node& n) { c.fleet.user = readString(n); }},
    {"fleet", "password_file",
     [](Config& c, const toml::node& n) { c.fleet.password_file = readAbsolutePath(n); }},
    {"fleet", "connect_timeout",
     [](Config& c, const toml::node& n) { c.fleet.connect_timeout = readDuration(n, 100ms, 1min); }},
    {"fleet", "request_timeout",
     [](Config& c, const toml::node& n) { c.fleet.request_timeout = readDuration(n, 100ms, 5min); }},
    {"fleet", "maintenance_command",
     [](Config& c, const toml::node& n) { c.fleet.maintenance_command = readString(n); }},
    {"fleet", "migration_uri",
     [](Config& c, const toml::node& n) { c.fleet.migration_uri = readString(n); }},
    {"fleet", "migrate_uri",
     [](Config& c, const toml::node& n) { c.fleet.migrate_uri = readString(n); }},
    {"fleet", "max_incoming_migrations",
     [](Config& c, const toml::node& n) {
       c.fleet.max_incoming_migrations = static_cast<unsigned>(readInteger(n, 0, 1000));
     }},
    {"fleet", "maintenance_command_timeout",
     [](Config& c, const toml::node& n) {
       c.fleet.maintenance_command_timeout = wholeSeconds(readDuration(n, 10s, 24h));
     }},
}};

// Every table of settings outside [policy], in the order their sections are listed.
const std::array<std::span<const SettingKey>, 4> kSettingTables{
    {kSettings, kNoticeSettings, kGuardSettings, kFleetSettings}};

// [policy] keys come from the table shared with the metadata parser.
constexpr std::string_view kPolicySection = "policy";

std::vector<std::string_view> knownSections() {
  std::vector<std::string_view> sections;
  for (std::span<const SettingKey> table : kSettingTables) {
    for (const SettingKey& key : table) {
      if (std::find(sections.begin(), sections.end(), key.section) == sections.end()) {
        sections.push_back(key.section);
      }
    }
  }
  sections.push_back(kPolicySection);
  return sections;
}

std::vector<std::string_view> knownKeys(std::string_view section) {
  std::vector<std::string_view> keys;
  if (section == kPolicySection) {
    for (const PolicyKey& key : policyKeys()) keys.push_back(key.name);
  } else {
    for (std::span<const SettingKey> table : kSettingTables) {
      for (const SettingKey& key : table) {
        if (key.section == section) keys.push_back(key.name);
      }
    }
  }
  return keys;
}

std::string joined(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string unknownMessage(std::string_view what, std::string_view name,
                           std::span<const std::string_view> known) {
  std::string message = "unknown " + std::string(what);
  if (auto guess = closestName(name, known))
    message += " (did you mean '" + std::string(*guess) + "'?)";
  return message + "; known: " + joined(known);
}

// The text form the shared policy table parses, after checking the TOML
// type fits the key's kind.
std::string policyText(const PolicyKey& key, const toml::node& node) {
  switch (key.kind) {
    case PolicyValueKind::word:
    case PolicyValueKind::text:
      return readString(node);
    case PolicyValueKind::integer:
      if (const auto* value = node.as_integer()) return std::to_string(value->get());
      wrongType(node, "an integer");
    case PolicyValueKind::boolean:
      if (const auto* value = node.as_boolean()) return value->get() ? "true" : "false";
      wrongType(node, "a boolean (true or false)");
    case PolicyValueKind::duration:
      if (const auto* value = node.as_integer()) return std::to_string(value->get());
      if (const auto* value = node.as_string()) return value->get();
      wrongType(node, "a duration string or an integer number of seconds");
  }
  wrongType(node, "a value");
}

class ConfigReader {
 public:
  void readFileInto(const std::filesystem::path& path, std::string_view text) {
    toml::table document;
    try {
      document = toml::parse(text, path.string());
    } catch (const toml::parse_error& error) {
      throw ConfigError(path.string() + ":" + std::to_string(error.source().begin.line) + ":" +
                        std::to_string(error.source().begin.column) + ": " +
                        std::string(error.description()));
    }
    config_.sources.push_back(path);
    for (const auto& [section_key, section_node] : document) {
      Location where{path, lineOf(section_key, section_node)};
      const auto* section = section_node.as_table();
      if (section == nullptr) {
        failAt(where, section_key.str(),
               "settings belong in a section; known sections: " + joined(knownSections()));
      }
      auto sections = knownSections();
      if (std::find(sections.begin(), sections.end(), section_key.str()) == sections.end()) {
        throw ConfigError(describe(where) + ": section '[" + std::string(section_key.str()) +
                          "]': " + unknownMessage("section", section_key.str(), sections));
      }
      for (const auto& [key, node] : *section) {
        readKey(section_key.str(), key, node, Location{path, lineOf(key, node)});
      }
    }
  }

  // Checks that span several keys, once every file is merged.
  void checkMerged(const std::filesystem::path& main_file) {
    if (config_.libvirt.reconnect_min > config_.libvirt.reconnect_max) {
      failAt(origin("libvirt.reconnect_min", main_file), "libvirt.reconnect_min",
             "must not be larger than libvirt.reconnect_max (" +
                 std::to_string(config_.libvirt.reconnect_max.count()) + "ms)");
    }
    // The default upper bound follows a lower max_parallel_actions: a config
    // that only lowers the actions (as many did when the default was 2) stays valid.
    if (config_.limits.max_parallel_migrations > config_.limits.max_parallel_actions &&
        !origins_.contains("limits.max_parallel_migrations")) {
      config_.limits.max_parallel_migrations = config_.limits.max_parallel_actions;
    }
    if (config_.limits.max_parallel_migrations > config_.limits.max_parallel_actions) {
      failAt(origin("limits.max_parallel_migrations", main_file), "limits.max_parallel_migrations",
             "must not be larger than limits.max_parallel_actions (" +
                 std::to_string(config_.limits.max_parallel_actions) +
                 "), since migrations are actions");
    }
    if (config_.controller.token_file && !config_.controller.base_url.empty() &&
        !config_.controller.base_url.starts_with("https://")) {
      failAt(origin("controller.base_url", main_file), "controller.base_url",
             "must be https:// when controller.token_file is set, so the token is not sent "
             "in clear text");
    }
    if (config_.controller.client_key && !config_.controller.client_cert) {
      failAt(origin("controller.client_key", main_file), "controller.client_key",
             "needs controller.client_cert (the certificate the key belongs to)");
    }
    checkNotices(main_file);
    checkFleet(main_file);
    if (auto violation = findPolicyViolation(config_.policy)) {
      std::string key = "policy." + violation->key;
      failAt(origin(key, main_file), key, violation->message);
    }
  }

  Config take() { return std::move(config_); }

 private:
  void checkFleet(const std::filesystem::path& main_file) {
    const FleetConfig& fleet = config_.fleet;
    if (!fleet.user.empty()) {
      if (!fleet.password_file) {
        failAt(origin("fleet.user", main_file), "fleet.user", "needs fleet.password_file");
      }
      for (const std::string& endpoint : fleet.endpoints) {
        if (!endpoint.starts_with("https://")) {
          failAt(origin("fleet.endpoints", main_file), "fleet.endpoints",
                 "must be https:// when fleet.user is set, so the password is not sent in clear "
                 "text (got '" + endpoint + "')");
        }
      }
    }
    if (fleet.client_key && !fleet.client_cert) {
      failAt(origin("fleet.client_key", main_file), "fleet.client_key",
             "needs fleet.client_cert (the certificate the key belongs to)");
    }
    if (fleet.max_concurrent_per_domain > 0 && fleet.failure_domain.empty()) {
      failAt(origin("fleet.max_concurrent_per_domain", main_file),
             "fleet.max_concurrent_per_domain", "needs fleet.failure_domain (this host's domain)");
    }
  }

  void checkNotices(const std::filesystem::path& main_file) {
    const NoticesConfig& notices = config_.notices;
    if (notices.webhook_token_file && !notices.webhook_url.empty() &&
        !notices.webhook_url.starts_with("https://")) {
      failAt(origin("notices.webhook_url", main_file), "notices.webhook_url",
             "must be https:// when notices.webhook_token_file is set, so the token is not sent "
             "in clear text");
    }
    if (notices.webhook_retry_min > notices.webhook_retry_max) {
      failAt(origin("notices.webhook_retry_min", main_file), "notices.webhook_retry_min",
             "must not be larger than notices.webhook_retry_max (" +
                 std::to_string(notices.webhook_retry_max.count()) + "ms)");
    }
  }

 private:
  static std::int64_t lineOf(const toml::key& key, const toml::node& node) {
    if (key.source().begin.line > 0) return static_cast<std::int64_t>(key.source().begin.line);
    return static_cast<std::int64_t>(node.source().begin.line);
  }

  Location origin(const std::string& key, const std::filesystem::path& main_file) const {
    auto found = origins_.find(key);
    return found != origins_.end() ? found->second : Location{main_file, 0};
  }

  void readKey(std::string_view section, const toml::key& key, const toml::node& node,
               const Location& where) {
    std::string full = std::string(section) + "." + std::string(key.str());
    try {
      if (section == kPolicySection) {
        const PolicyKey* policy_key = findPolicyKey(key.str());
        if (policy_key == nullptr) {
          failAt(where, full, unknownMessage("key", key.str(), knownKeys(section)));
        }
        if (auto problem = policy_key->apply(config_.policy, policyText(*policy_key, node))) {
          throw BadValue{*problem};
        }
      } else {
        const SettingKey* setting = nullptr;
        for (std::span<const SettingKey> table : kSettingTables) {
          for (const SettingKey& candidate : table) {
            if (candidate.section == section && candidate.name == key.str()) {
              setting = &candidate;
            }
          }
        }
        if (setting == nullptr) {
          failAt(where, full, unknownMessage("key", key.str(), knownKeys(section)));
        }
        setting->set(config_, node);
      }
    } catch (const BadValue& bad) {
      failAt(where, full, bad.what);
    }
    origins_[full] = where;
  }

  Config config_;
  std::map<std::string, Location> origins_;
};

}  // namespace

std::vector<std::string> knownConfigKeys() {
  std::vector<std::string> keys;
  for (std::string_view section : knownSections()) {
    for (std::string_view key : knownKeys(section)) {
      keys.push_back(std::string(section) + "." + std::string(key));
    }
  }
  return keys;
}

Config loadConfig(const std::filesystem::path& path, bool must_exist) {
  ConfigReader reader;
  if (auto text = readFile(path, !must_exist)) reader.readFileInto(path, *text);
  std::filesystem::path drop_in_dir = path;
  drop_in_dir += ".d";
  for (const auto& file : dropInFiles(drop_in_dir)) {
    // Listed a moment ago; if it vanished since, that is worth an error.
    reader.readFileInto(file, *readFile(file, false));
  }
  reader.checkMerged(path);
  return reader.take();
}

Config parseConfig(std::string_view text, const std::filesystem::path& source_name) {
  ConfigReader reader;
  reader.readFileInto(source_name, text);
  reader.checkMerged(source_name);
  return reader.take();
}

DestinationConfig MigrationConfig::destination(const std::string& uri) const {
  for (const auto& configured : destinations) {
    if (configured.uri == uri) return configured;
  }
  DestinationConfig requested;
  requested.uri = uri;
  return requested;
}

}  // namespace hostmaint::agent
