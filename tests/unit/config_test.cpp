// Config loading: defaults, overrides, drop-ins, and errors that name the
// file, line and key; plus parity of the shipped etc/hostmaintd.conf.
#include "hostmaint/agent/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace hostmaint::agent {

// Readable failures for policy comparisons (gtest would dump bytes).
void PrintTo(const DomainPolicy& p, std::ostream* out) {
  *out << "{maintenance_action=" << toString(p.maintenance_action)
       << " removal_action=" << toString(p.removal_action)
       << " fallback_action=" << toString(p.fallback_action)
       << " removal_fallback_action=" << toString(p.removal_fallback_action)
       << " host_shutdown_action=" << toString(p.host_shutdown_action)
       << " ack_required=" << p.ack_required << " ack_timeout=" << formatDuration(p.ack_timeout)
       << " ack_timeout_action=" << toString(p.ack_timeout_action)
       << " lead_time=" << formatDuration(p.lead_time) << " group='" << p.group
       << "' max_impacted_members=" << p.max_impacted_members
       << " recovery_time=" << formatDuration(p.recovery_time) << " priority=" << p.priority
       << " shutdown_timeout=" << formatDuration(p.shutdown_timeout)
       << " force_stop=" << p.force_stop << "}";
}

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "config-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, const std::string& text) {
    std::filesystem::path path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path main() const { return dir_ / "hostmaintd.conf"; }

  // The message of the ConfigError loading the main file throws.
  std::string errorOf(const std::string& text) {
    write("hostmaintd.conf", text);
    return loadError();
  }

  std::string loadError() {
    try {
      loadConfig(main(), true);
    } catch (const ConfigError& error) {
      return error.what();
    }
    ADD_FAILURE() << "expected a ConfigError";
    return {};
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigTest, MissingDefaultFileGivesDefaults) {
  Config config = loadConfig(dir_ / "absent.conf", false);
  EXPECT_TRUE(config.sources.empty());
  EXPECT_EQ(config.libvirt.uri, "qemu:///system");
  EXPECT_EQ(config.paths.state_dir, "/var/lib/hostmaint");
  EXPECT_EQ(config.paths.runtime_dir, "/run/hostmaint");
  EXPECT_EQ(config.policy, DomainPolicy{});
  // The limits are upper bounds for the adaptive scheduler (docs/configuration.md).
  EXPECT_TRUE(config.migration.adaptive);
  EXPECT_FALSE(config.migration.adaptive_initial_parallel) << "unset: the limit itself";
  EXPECT_EQ(config.limits.max_parallel_migrations, 8u);
  EXPECT_EQ(config.migration.max_parallel_per_destination, 8u);
}

TEST_F(ConfigTest, MissingExplicitFileIsAnError) {
  try {
    loadConfig(dir_ / "absent.conf", true);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), "cannot read config file '" +
                                             (dir_ / "absent.conf").string() +
                                             "': No such file or directory");
  }
}

TEST_F(ConfigTest, DirectoryInsteadOfFileIsAnError) {
  std::filesystem::create_directories(main());
  EXPECT_THAT(loadError(), HasSubstr("it is a directory, not a regular file"));
}

// The reload runs on the event loop: a FIFO must be refused at once, not
// read (which blocks until someone writes to it).
TEST_F(ConfigTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(main().c_str(), 0600), 0);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(loadError(), "cannot read config file '" + main().string() +
                             "': it is a FIFO, not a regular file");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(ConfigTest, DeviceIsRefused) {
  try {
    loadConfig("/dev/zero", true);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "cannot read config file '/dev/zero': it is a character device, not a regular file");
  }
}

TEST_F(ConfigTest, OversizedFileIsRefused) {
  write("hostmaintd.conf", "# " + std::string(1024 * 1024, 'x') + "\n");
  EXPECT_THAT(loadError(), HasSubstr("bytes, more than the 1048576 bytes a config file may have"));
}

TEST_F(ConfigTest, DropInSymlinkLoopIsAnErrorNamingIt) {
  write("hostmaintd.conf", "[limits]\nmax_parallel_actions = 2\n");
  const auto dir = dir_ / "hostmaintd.conf.d";
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(dir / "60-b.conf", dir / "50-a.conf");
  std::filesystem::create_symlink(dir / "50-a.conf", dir / "60-b.conf");
  EXPECT_THAT(loadError(), HasSubstr("cannot read config drop-in '" + (dir / "50-a.conf").string() +
                                     "': it is a symbolic link loop"));
}

TEST_F(ConfigTest, DanglingDropInIsAnErrorNamingIt) {
  write("hostmaintd.conf", "[limits]\nmax_parallel_actions = 2\n");
  const auto dir = dir_ / "hostmaintd.conf.d";
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(dir_ / "gone.conf", dir / "50-gone.conf");
  EXPECT_EQ(loadError(), "cannot read config drop-in '" + (dir / "50-gone.conf").string() +
                             "': it is a dangling symbolic link");
}

TEST_F(ConfigTest, DropInThatIsNoFileIsAnError) {
  write("hostmaintd.conf", "");
  std::filesystem::create_directories(dir_ / "hostmaintd.conf.d/50-dir.conf");
  EXPECT_THAT(loadError(), HasSubstr("50-dir.conf': it is a directory, not a regular file"));
}

// A symlink to a good drop-in is read like the file itself.
TEST_F(ConfigTest, DropInSymlinkToAFileIsRead) {
  write("hostmaintd.conf", "");
  write("elsewhere/local.conf", "[limits]\nmax_parallel_actions = 7\n");
  std::filesystem::create_directories(dir_ / "hostmaintd.conf.d");
  std::filesystem::create_symlink(dir_ / "elsewhere/local.conf",
                                  dir_ / "hostmaintd.conf.d/50-local.conf");
  EXPECT_EQ(loadConfig(main(), true).limits.max_parallel_actions, 7u);
}

// The default path as a link to nowhere was meant to be read: not "no file".
TEST_F(ConfigTest, DanglingMainFileIsAnErrorEvenWhenOptional) {
  std::filesystem::create_symlink(dir_ / "gone.conf", main());
  try {
    loadConfig(main(), false);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_THAT(error.what(), HasSubstr("it is a dangling symbolic link"));
  }
}

TEST_F(ConfigTest, EverySectionIsRead) {
  write("hostmaintd.conf", R"([libvirt]
uri = "test:///default"
keepalive_interval = "10s"
keepalive_count = 5
reconnect_min = "250ms"
reconnect_max = 60

[paths]
state_dir = "/tmp/state"
runtime_dir = "/tmp/run"

[limits]
max_parallel_actions = 8
max_parallel_migrations = 3

[migration]
destinations = ["qemu+ssh://host-b/system",
                { uri = "qemu+ssh://host-c/system", migrate_uri = "tcp://10.0.0.3", max_parallel = 1, reserved_memory_mib = 2048 }]
max_parallel_per_destination = 3
reserved_memory_mib = 1024
destination_probe_interval = "1m"
adaptive = false
adaptive_initial_parallel = 2

[evidence]
qemu_process_scope = "known-domains"
proc_root = "/tmp/proc"
sysfs_root = "/tmp/sys"

[dbus]
admin_group = "hostmaint"

[policy]
maintenance_action = "suspend"
removal_action = "cold-migrate"
ack_required = true
ack_timeout = 7200
lead_time = "1h30m"
group = "db"
max_impacted_members = 2
priority = -5
force_stop = false

[log]
level = "debug"
)");
  Config config = loadConfig(main(), true);
  EXPECT_EQ(config.libvirt.uri, "test:///default");
  EXPECT_EQ(config.libvirt.keepalive_interval, 10s);
  EXPECT_EQ(config.libvirt.keepalive_count, 5u);
  EXPECT_EQ(config.libvirt.reconnect_min, 250ms);
  EXPECT_EQ(config.libvirt.reconnect_max, 60s);
  EXPECT_EQ(config.paths.state_dir, "/tmp/state");
  EXPECT_EQ(config.paths.runtime_dir, "/tmp/run");
  EXPECT_EQ(config.limits.max_parallel_actions, 8u);
  EXPECT_EQ(config.limits.max_parallel_migrations, 3u);
  ASSERT_EQ(config.migration.destinations.size(), 2u);
  EXPECT_EQ(config.migration.destinations[0],
            (DestinationConfig{"qemu+ssh://host-b/system", "", std::nullopt, std::nullopt}));
  EXPECT_EQ(config.migration.destinations[1],
            (DestinationConfig{"qemu+ssh://host-c/system", "tcp://10.0.0.3", 1u, 2048u}));
  EXPECT_EQ(config.migration.max_parallel_per_destination, 3u);
  EXPECT_EQ(config.migration.reserved_memory_mib, 1024u);
  EXPECT_EQ(config.migration.destination_probe_interval, 60s);
  EXPECT_FALSE(config.migration.adaptive);
  EXPECT_EQ(config.migration.adaptive_initial_parallel, std::optional<unsigned>(2u));
  // A destination only a maintenance request names gets the section's defaults.
  EXPECT_EQ(config.migration.maxParallelAt(config.migration.destination("qemu:///other")), 3u);
  EXPECT_EQ(config.migration.reservedMemoryMibAt(config.migration.destinations[1]), 2048u);
  EXPECT_EQ(config.evidence.qemu_process_scope, "known-domains");
  EXPECT_EQ(config.evidence.proc_root, "/tmp/proc");
  EXPECT_EQ(config.evidence.sysfs_root, "/tmp/sys");
  EXPECT_EQ(config.dbus.admin_group, "hostmaint");
  EXPECT_EQ(config.policy.maintenance_action, MaintenanceAction::suspend);
  EXPECT_EQ(config.policy.removal_action, MaintenanceAction::cold_migrate);
  EXPECT_TRUE(config.policy.ack_required);
  EXPECT_EQ(config.policy.ack_timeout, 2h);
  EXPECT_EQ(config.policy.lead_time, 90min);
  EXPECT_EQ(config.policy.group, "db");
  EXPECT_EQ(config.policy.max_impacted_members, 2u);
  EXPECT_EQ(config.policy.priority, -5);
  EXPECT_FALSE(config.policy.force_stop);
  EXPECT_EQ(config.log_level, "debug");
  EXPECT_EQ(config.sources, std::vector<std::filesystem::path>{main()});
}

TEST_F(ConfigTest, DropInsApplyInNameOrder) {
  write("hostmaintd.conf", "[policy]\npriority = 1\ngroup = \"main\"\n");
  write("hostmaintd.conf.d/20-late.conf", "[policy]\npriority = 20\n");
  write("hostmaintd.conf.d/10-early.conf", "[policy]\npriority = 10\nlead_time = \"5m\"\n");
  write("hostmaintd.conf.d/90-ignored.conf.disabled", "[policy]\npriority = 90\n");
  write("hostmaintd.conf.d/99-broken-but-ignored.txt", "not toml at all [");
  Config config = loadConfig(main(), true);
  EXPECT_EQ(config.policy.priority, 20);
  EXPECT_EQ(config.policy.lead_time, 5min);
  EXPECT_EQ(config.policy.group, "main");
  EXPECT_EQ(config.sources,
            (std::vector<std::filesystem::path>{main(), dir_ / "hostmaintd.conf.d/10-early.conf",
                                                dir_ / "hostmaintd.conf.d/20-late.conf"}));
}

TEST_F(ConfigTest, DropInsApplyWithoutAMainFile) {
  write("hostmaintd.conf.d/50-local.conf", "[limits]\nmax_parallel_actions = 9\n");
  Config config = loadConfig(main(), false);
  EXPECT_EQ(config.limits.max_parallel_actions, 9u);
  EXPECT_EQ(config.sources.size(), 1u);
}

TEST_F(ConfigTest, UnknownKeyNamesFileLineKeyAndSuggestion) {
  std::string message =
      errorOf("[libvirt]\nuri = \"test:///default\"\n\n[limits]\nmax_paralel_actions = 3\n");
  EXPECT_THAT(message,
              StartsWith(main().string() + ":5: key 'limits.max_paralel_actions': unknown key"));
  EXPECT_THAT(message, HasSubstr("did you mean 'max_parallel_actions'"));
}

TEST_F(ConfigTest, UnknownPolicyKeyIsAnError) {
  EXPECT_THAT(errorOf("[policy]\n\npriorty = 3\n"),
              StartsWith(main().string() +
                         ":3: key 'policy.priorty': unknown key (did you mean 'priority'?)"));
}

TEST_F(ConfigTest, UnknownSectionIsAnError) {
  EXPECT_THAT(errorOf("[libvirt]\nuri = \"x\"\n[limit]\nmax_parallel_actions = 3\n"),
              StartsWith(main().string() +
                         ":3: section '[limit]': unknown section (did you mean 'limits'?)"));
}

TEST_F(ConfigTest, TopLevelKeyIsAnError) {
  EXPECT_THAT(errorOf("uri = \"x\"\n"),
              StartsWith(main().string() + ":1: key 'uri': settings belong in a section"));
}

TEST_F(ConfigTest, WrongTypeNamesExpectedAndActual) {
  EXPECT_EQ(
      errorOf("[limits]\nmax_parallel_actions = \"four\"\n"),
      main().string() + ":2: key 'limits.max_parallel_actions': expected an integer, got string");
  EXPECT_EQ(errorOf("[libvirt]\nuri = 5\n"),
            main().string() + ":2: key 'libvirt.uri': expected a string, got integer");
  EXPECT_EQ(errorOf("[policy]\nforce_stop = \"yes\"\n"),
            main().string() +
                ":2: key 'policy.force_stop': expected a boolean (true or false), got string");
  EXPECT_EQ(errorOf("[policy]\npriority = 1.5\n"),
            main().string() + ":2: key 'policy.priority': expected an integer, got float");
  EXPECT_THAT(errorOf("[migration]\ndestinations = [\"a\", 3]\n"),
              StartsWith(main().string() +
                         ":2: key 'migration.destinations': element 2 must be a libvirt URI or a "
                         "{ uri = ... } table, got integer"));
  EXPECT_THAT(errorOf("[migration]\ndestinations = [{ uri = \"a\", max_paralel = 2 }]\n"),
              HasSubstr("element 1, key 'max_paralel': unknown key"));
  EXPECT_THAT(errorOf("[migration]\ndestinations = [{ migrate_uri = \"tcp://x\" }]\n"),
              HasSubstr("element 1 has no uri"));
  EXPECT_THAT(errorOf("[migration]\ndestinations = [\"a\", { uri = \"a\" }]\n"),
              HasSubstr("element 2 lists 'a' again"));
  EXPECT_THAT(errorOf("[migration]\ndestinations = [{ uri = \"a\", max_parallel = 0 }]\n"),
              HasSubstr("element 1, key 'max_parallel'"));
}

TEST_F(ConfigTest, OutOfRangeNamesTheLimits) {
  EXPECT_EQ(
      errorOf("[limits]\n\nmax_parallel_actions = 0\n"),
      main().string() + ":3: key 'limits.max_parallel_actions': must be between 1 and 64, got 0");
  EXPECT_THAT(
      errorOf("[libvirt]\nreconnect_min = \"1ms\"\n"),
      StartsWith(main().string() + ":2: key 'libvirt.reconnect_min': must be between 10ms and 1h"));
  EXPECT_THAT(errorOf("[paths]\nstate_dir = \"relative/dir\"\n"),
              HasSubstr(":2: key 'paths.state_dir': must be an absolute path"));
  EXPECT_THAT(errorOf("[log]\nlevel = \"loud\"\n"),
              HasSubstr(":2: key 'log.level': 'loud' is not one of trace, debug, info, warn, "
                        "error, critical, off"));
  EXPECT_THAT(
      errorOf("[evidence]\nqemu_process_scope = \"some\"\n"),
      HasSubstr(":2: key 'evidence.qemu_process_scope': 'some' is not one of all, known-domains"));
}

TEST_F(ConfigTest, BadPolicyValueUsesThePolicyVocabulary) {
  EXPECT_EQ(errorOf("[policy]\nmaintenance_action = \"teleport\"\n"),
            main().string() +
                ":2: key 'policy.maintenance_action': 'teleport' is not one of "
                "live-migrate, cold-migrate, suspend, shutdown, owner");
  EXPECT_THAT(errorOf("[policy]\nshutdown_timeout = \"soon\"\n"),
              HasSubstr(":2: key 'policy.shutdown_timeout': 'soon' is not a duration"));
  EXPECT_THAT(errorOf("[policy]\nlead_time = -5\n"),
              HasSubstr(":2: key 'policy.lead_time': '-5' is not a duration"));
}

TEST_F(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  EXPECT_THAT(errorOf("[libvirt]\nuri = \"x\"\nkeepalive_count = \n"),
              StartsWith(main().string() + ":3:"));
  EXPECT_THAT(errorOf("[libvirt\nuri = 1\n"), StartsWith(main().string() + ":1:"));
}

TEST_F(ConfigTest, ErrorInDropInNamesTheDropIn) {
  write("hostmaintd.conf", "[limits]\nmax_parallel_actions = 2\n");
  write("hostmaintd.conf.d/50-local.conf", "\n[limits]\nmax_parallel_actions = -1\n");
  EXPECT_THAT(loadError(), StartsWith((dir_ / "hostmaintd.conf.d/50-local.conf").string() +
                                      ":3: key 'limits.max_parallel_actions'"));
}

TEST_F(ConfigTest, PolicyCombinationErrorNamesWhereTheKeyWasSet) {
  write("hostmaintd.conf", "[policy]\nack_required = true\n");
  write("hostmaintd.conf.d/10-a.conf", "[policy]\nremoval_action = \"owner\"\n");
  write("hostmaintd.conf.d/20-b.conf", "# local\n[policy]\n\nremoval_action = \"suspend\"\n");
  EXPECT_THAT(loadError(),
              StartsWith((dir_ / "hostmaintd.conf.d/20-b.conf").string() +
                         ":4: key 'policy.removal_action': 'suspend' keeps the domain"));
}

TEST_F(ConfigTest, CrossKeyChecksNameTheKey) {
  EXPECT_THAT(
      errorOf("[limits]\nmax_parallel_actions = 2\nmax_parallel_migrations = 3\n"),
      StartsWith(main().string() + ":3: key 'limits.max_parallel_migrations': must not be larger"));
  EXPECT_THAT(errorOf("[libvirt]\nreconnect_min = \"2m\"\n"),
              StartsWith(main().string() + ":2: key 'libvirt.reconnect_min': must not be larger"));
}

// The shipped file, with every "#key = value" line uncommented, must give
// exactly the defaults and mention every key: the file cannot drift.
TEST(ShippedConfig, ListsEveryKeyAtItsDefault) {
  std::filesystem::path shipped =
      std::filesystem::path(HOSTMAINT_SOURCE_DIR) / "etc/hostmaintd.conf";
  std::ifstream in(shipped);
  ASSERT_TRUE(in) << shipped;
  std::regex key_line(R"(^#([a-z_]+) = .*$)");
  std::regex section_line(R"(^\[([a-z_]+)\]$)");
  std::ostringstream uncommented;
  std::set<std::string> listed;
  std::string section;
  for (std::string line; std::getline(in, line);) {
    std::smatch match;
    if (std::regex_match(line, match, section_line)) section = match[1];
    if (std::regex_match(line, match, key_line)) {
      EXPECT_TRUE(listed.insert(section + "." + match[1].str()).second) << "listed twice: " << line;
      line.erase(0, 1);
    }
    uncommented << line << "\n";
  }
  auto known = knownConfigKeys();
  EXPECT_EQ(listed, std::set<std::string>(known.begin(), known.end()));

  std::string pattern = (std::filesystem::temp_directory_path() / "shipped-config-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  std::filesystem::path path = std::filesystem::path(pattern) / "hostmaintd.conf";
  std::ofstream(path) << uncommented.str();
  Config config = loadConfig(path, true);
  std::filesystem::remove_all(pattern);

  Config defaults;
  EXPECT_EQ(config.libvirt.uri, defaults.libvirt.uri);
  EXPECT_EQ(config.libvirt.keepalive_interval, defaults.libvirt.keepalive_interval);
  EXPECT_EQ(config.libvirt.keepalive_count, defaults.libvirt.keepalive_count);
  EXPECT_EQ(config.libvirt.reconnect_min, defaults.libvirt.reconnect_min);
  EXPECT_EQ(config.libvirt.reconnect_max, defaults.libvirt.reconnect_max);
  EXPECT_EQ(config.paths.state_dir, defaults.paths.state_dir);
  EXPECT_EQ(config.paths.runtime_dir, defaults.paths.runtime_dir);
  EXPECT_EQ(config.limits.max_parallel_actions, defaults.limits.max_parallel_actions);
  EXPECT_EQ(config.limits.max_parallel_migrations, defaults.limits.max_parallel_migrations);
  EXPECT_EQ(config.migration.destinations, defaults.migration.destinations);
  EXPECT_EQ(config.evidence.qemu_process_scope, defaults.evidence.qemu_process_scope);
  EXPECT_EQ(config.evidence.proc_root, defaults.evidence.proc_root);
  EXPECT_EQ(config.evidence.sysfs_root, defaults.evidence.sysfs_root);
  EXPECT_EQ(config.dbus.admin_group, defaults.dbus.admin_group);
  EXPECT_EQ(config.policy, defaults.policy);
  EXPECT_EQ(config.log_level, defaults.log_level);
}

// The reference docs must mention every key, so a new key cannot ship
// undocumented.
TEST(ConfigDocs, EveryKeyIsDocumented) {
  auto read = [](const char* relative) {
    std::ifstream in(std::filesystem::path(HOSTMAINT_SOURCE_DIR) / relative);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
  std::string configuration = read("docs/configuration.md");
  std::string policy = read("docs/policy.md");
  ASSERT_FALSE(configuration.empty());
  ASSERT_FALSE(policy.empty());
  for (const std::string& full : knownConfigKeys()) {
    std::string section = full.substr(0, full.find('.'));
    std::string key = "`" + full.substr(full.find('.') + 1) + "`";
    EXPECT_NE(configuration.find("### `[" + section + "]`"), std::string::npos) << section;
    EXPECT_NE(configuration.find(key), std::string::npos) << full << " in docs/configuration.md";
    if (section == "policy") {
      EXPECT_NE(policy.find("| " + key + " |"), std::string::npos) << full << " in docs/policy.md";
    }
  }
}

TEST_F(ConfigTest, TextParsesLikeTheSameFileWithTheSameErrors) {
  const std::string text =
      "[limits]\nmax_parallel_actions = 8\n[policy]\nmaintenance_action = \"suspend\"\n";
  write("hostmaintd.conf", text);
  const Config from_file = loadConfig(main(), true);
  const Config from_text = parseConfig(text, main());
  EXPECT_EQ(from_text.limits.max_parallel_actions, 8u);
  EXPECT_EQ(from_text.policy, from_file.policy);
  EXPECT_EQ(from_text.sources, from_file.sources);

  const std::string bad = "[limits]\nmax_parallel_migrations = 9\n";
  try {
    parseConfig(bad, "given.conf");
    FAIL() << "accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), errorOf(bad).replace(0, main().string().size(), "given.conf"));
  }
}

}  // namespace
}  // namespace hostmaint::agent
