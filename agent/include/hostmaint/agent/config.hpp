// hostmaintd's configuration: read once into this typed struct, passed down.
//
// Sources: the main TOML file (default /etc/hostmaint/hostmaintd.conf), then
// every `*.conf` in `<main file>.d/` in name order, each overriding keys it
// sets. etc/hostmaintd.conf lists every key with its default; no key is
// required. Reference: docs/configuration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hostmaint/agent/policy.hpp"

namespace hostmaint::agent {

inline constexpr const char* kDefaultConfigPath = "/etc/hostmaint/hostmaintd.conf";

struct LibvirtConfig {
  std::string uri = "qemu:///system";
  std::chrono::seconds keepalive_interval{5};
  unsigned keepalive_count = 3;
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{std::chrono::seconds(30)};
};

struct PathsConfig {
  std::filesystem::path state_dir = "/var/lib/hostmaint";
  std::filesystem::path runtime_dir = "/run/hostmaint";
};

struct LimitsConfig {
  // Upper bounds: live migrations run as many at once as the adaptive
  // scheduler finds useful within them ([migration] adaptive).
  unsigned max_parallel_actions = 8;      // all actions at once on this host
  unsigned max_parallel_migrations = 8;   // of which migrations
  // How long a managed-save, and a restore (the start that brings a domain
  // back), may run before it is a blocker naming its deadline. Neither is
  // aborted: libvirt is still at work, and an aborted save is wasted.
  std::chrono::seconds save_timeout{std::chrono::minutes(15)};
  std::chrono::seconds restore_timeout{std::chrono::minutes(15)};
};

// One candidate migration destination.
struct DestinationConfig {
  std::string uri;          // libvirt URI of the destination's libvirtd
  std::string migrate_uri;  // data-stream URI ("tcp://10.0.0.2"); empty: the destination's choice
  std::optional<unsigned> max_parallel;               // unset: max_parallel_per_destination
  std::optional<std::uint64_t> reserved_memory_mib;   // unset: migration.reserved_memory_mib
  bool operator==(const DestinationConfig&) const = default;
};

struct MigrationConfig {
  // Candidate destinations; empty: migration is not possible and domains
  // follow their fallback action.
  std::vector<DestinationConfig> destinations;
  // Incoming migrations at once per destination: an upper bound; the
  // adaptive scheduler decides within it how many share the link.
  unsigned max_parallel_per_destination = 8;
  // How many live migrations run at once follows what they measure
  // (docs/policy.md, "Adaptive migration scheduling"); false: always as
  // many as the limits allow.
  bool adaptive = true;
  // At once before anything is measured (at most max_parallel_migrations);
  // unset: the limit itself. A drain of guests that finish in seconds is over
  // before anything can be measured, so starting below the limit only makes
  // it slower; a link that is the limit is found by the first trial.
  std::optional<unsigned> adaptive_initial_parallel;
  // Memory kept free on a destination for its own use (Nova's
  // reserved_host_memory_mb); a domain must fit in free memory minus this.
  std::uint64_t reserved_memory_mib = 512;
  // A destination's free memory older than this is probed again before use.
  std::chrono::seconds destination_probe_interval{30};
  // A migration that failed because of its destination (unreachable, its
  // libvirtd gone, ...) is tried again this many times before the domain's
  // fallback: at once on another destination when there is one, else on the
  // same one after destination_retry_delay (doubled each time), and only
  // while the window has not ended.
  unsigned destination_retries = 2;
  std::chrono::seconds destination_retry_delay{30};
  // A live migration that moved no data at all for this long is aborted as
  // a destination failure (the link is cut or stalled) and retried as
  // above; 0: never. Not a guest that cannot converge: that one moves data.
  std::chrono::seconds stall_timeout{30};

  // The entry for `uri`: the configured one, or defaults for a URI that only
  // a maintenance request named.
  DestinationConfig destination(const std::string& uri) const;
  unsigned maxParallelAt(const DestinationConfig& destination) const {
    return destination.max_parallel.value_or(max_parallel_per_destination);
  }
  std::uint64_t reservedMemoryMibAt(const DestinationConfig& destination) const {
    return destination.reserved_memory_mib.value_or(reserved_memory_mib);
  }
};

struct EvidenceConfig {
  // Which QEMU processes count against emptiness: "all" on the host, or only
  // those whose -uuid is a domain this host ran ("known-domains", for hosts
  // that share a kernel with another hypervisor, as in the lab).
  std::string qemu_process_scope = "all";
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path sysfs_root = "/sys";
};

struct DbusConfig {
  // Besides root, members of this group may call mutating methods (enforced
  // by the daemon from the caller's credentials, in addition to the bus
  // policy shipped in systemd/). Empty: root only.
  std::string admin_group;
};

// [controller]: the cloud's maintenance service, polled for the desired
// state and sent the status. An empty base_url turns the link off.
struct ControllerConfig {
  std::string base_url;
  std::string host_id;  // empty: the host name
  std::chrono::milliseconds poll_interval{std::chrono::seconds(30)};
  // Ask the controller to hold each poll up to poll_interval (Prefer: wait).
  bool long_poll = true;
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(60)};
  std::optional<std::filesystem::path> ca_file;
  std::optional<std::filesystem::path> client_cert;
  std::optional<std::filesystem::path> client_key;
  std::optional<std::filesystem::path> token_file;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::size_t max_response_bytes = 1024 * 1024;
};

// [http]: the optional local readiness endpoint (docs/http-endpoint.md).
struct HttpConfig {
  bool enabled = false;
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 9465;
  std::size_t max_connections = 64;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
};

// [notices]: owner notices (docs/notices.md): the downtime estimates and the
// optional webhook every notice is POSTed to. An empty webhook_url turns the
// webhook off; notices still go to D-Bus, status.json and the controller.
struct NoticesConfig {
  std::string webhook_url;
  std::optional<std::filesystem::path> webhook_token_file;
  std::optional<std::filesystem::path> webhook_ca_file;
  std::chrono::milliseconds webhook_connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds webhook_timeout{std::chrono::seconds(15)};
  unsigned webhook_attempts = 5;  // per notice, the first included
  std::chrono::milliseconds webhook_retry_min{std::chrono::seconds(2)};
  std::chrono::milliseconds webhook_retry_max{std::chrono::minutes(5)};
  std::uint64_t assumed_migration_throughput_mib_s = 100;
  std::chrono::seconds min_expected_downtime{30};
  std::chrono::seconds boot_estimate{120};
};

// [cordon]: commands run when the cordon begins and ends, for the cloud's
// own scheduler (for example disabling this host's compute service).
struct CordonConfig {
  std::string cordon_command;    // run by /bin/sh -c; empty: none
  std::string uncordon_command;
  std::chrono::milliseconds command_timeout{std::chrono::seconds(60)};
  bool operator==(const CordonConfig&) const = default;
};

// [host_shutdown]: what runs when the host shuts down outside a drain.
struct HostShutdownConfig {
  unsigned max_parallel = 0;  // managed-saves/shutdowns (and restores) at once; 0: all at once
  bool operator==(const HostShutdownConfig&) const = default;
};

// [fleet]: coordination with the other hosts of a fleet through etcd
// (docs/fleet.md). No endpoint: the host is on its own.
struct FleetConfig {
  std::vector<std::string> endpoints;  // etcd client URLs of one cluster
  std::string name = "default";        // the fleet: hosts with the same prefix and name
  std::string prefix = "/hostmaint";   // keys live under {prefix}/{name}/
  std::string host;                    // empty: controller.host_id, else the host name
  std::string failure_domain;          // a rack, a zone: empty for none
  unsigned max_concurrent = 1;         // hosts in maintenance at once
  unsigned max_concurrent_per_domain = 0;  // per failure domain; 0: no such limit
  std::chrono::seconds lease_ttl{15};
  std::chrono::milliseconds poll_interval{std::chrono::seconds(2)};
  std::optional<std::filesystem::path> ca_file;
  std::optional<std::filesystem::path> client_cert;
  std::optional<std::filesystem::path> client_key;
  std::string user;  // empty: no authentication
  std::optional<std::filesystem::path> password_file;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
  // Run by /bin/sh -c on the empty host in a rolling schedule's maintenance
  // (an update and a reboot); its success finishes the maintenance. Empty:
  // the maintenance waits for finish.
  std::string maintenance_command;
  // The command's timeout, and how long the slot stays held while it runs
  // (across the reboot it may do).
  std::chrono::seconds maintenance_command_timeout{std::chrono::hours(1)};
  // Peers as destinations (docs/fleet.md): the libvirt URI other hosts of
  // the fleet migrate to this host with ("qemu+tls://hv-17/system"); empty:
  // this host is not offered as a destination. migrate_uri: the data
  // stream's ("tcp://10.0.0.17"), empty for libvirt's choice.
  std::string migration_uri;
  std::string migrate_uri;
  // Migrations into this host at once, from all its peers together.
  unsigned max_incoming_migrations = 2;

  bool enabled() const { return !endpoints.empty(); }
  bool operator==(const FleetConfig&) const = default;
};

struct Config {
  LibvirtConfig libvirt;
  PathsConfig paths;
  LimitsConfig limits;
  MigrationConfig migration;
  EvidenceConfig evidence;
  DbusConfig dbus;
  HttpConfig http;
  ControllerConfig controller;
  NoticesConfig notices;
  CordonConfig cordon;
  HostShutdownConfig host_shutdown;
  FleetConfig fleet;
  DomainPolicy policy;  // host defaults, overridden per domain
  std::string log_level = "info";

  // Files the config was read from, in order (for --check-config output).
  std::vector<std::filesystem::path> sources;
};

// A config error names the file, line and key: "hostmaintd.conf:12: key
// 'limits.max_parallel_actions': must be between 1 and 64, got 0".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads `path` and its drop-in directory. A missing main file is an error
// only when `must_exist` (an explicit --config); the default path may be
// absent, giving all defaults.
Config loadConfig(const std::filesystem::path& path, bool must_exist);

// Parses one configuration document given as text, with the checks
// loadConfig runs on a main file without drop-ins; `source_name` stands in
// for the file name in errors. Touches no file system (tests, the fuzzer).
Config parseConfig(std::string_view text, const std::filesystem::path& source_name);

// Every settable key as "section.key" ("libvirt.uri", "policy.priority");
// lets a test prove the shipped etc/hostmaintd.conf lists them all.
std::vector<std::string> knownConfigKeys();

}  // namespace hostmaint::agent
