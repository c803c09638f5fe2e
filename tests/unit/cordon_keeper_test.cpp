// CordonKeeper: the file libvirt's hook reads, and the [cordon] commands run
// when the cordon begins and ends (real /bin/sh commands, a temp directory).
#include "hostmaint/agent/service/cordon_keeper.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cordon.hpp"
#include "cordon_file.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "support/fake_clock.hpp"

namespace hostmaint::service {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class CordonKeeperTest : public ::testing::Test {
 protected:
  CordonKeeperTest() {
    dir_ = fs::temp_directory_path() / ("cordon-keeper-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config.command_timeout = 5s;
  }
  ~CordonKeeperTest() override { fs::remove_all(dir_); }

  std::unique_ptr<CordonKeeper> keeper() {
    return std::make_unique<CordonKeeper>(io, file(), "hv-a", config, clock, [this] { ++changes; });
  }
  fs::path file() const { return dir_ / "cordon.json"; }
  nlohmann::json document() const {
    std::ifstream in(file());
    std::stringstream text;
    text << in.rdbuf();
    return nlohmann::json::parse(text.str());
  }
  static agent::CordonStatus cordoned() {
    agent::CordonStatus cordon;
    cordon.active = true;
    cordon.phase = agent::HostPhase::draining;
    cordon.session_id = "s-1";
    agent::MaintenanceWindow window;
    window.start = agent::TimePoint(std::chrono::seconds(1893456000));
    window.end = window.start + 2h;
    window.reason = "kernel";
    cordon.window = window;
    cordon.since = window.start;
    cordon.allowed.push_back({"web9", "", "", "debugging", "uid 0", window.start});
    cordon.restoring.emplace_back("db", "uuid-db");
    return cordon;
  }
  // Runs the loop until no command runs any more (or 10 s).
  void settle(const CordonKeeper& keeper) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      agent::CordonStatus shown;
      keeper.decorate(shown);
      const bool running = std::any_of(shown.commands.begin(), shown.commands.end(),
                                       [](const auto& run) { return run.running; });
      if (!running) return;
      io.restart();
      io.run_for(20ms);
    }
    FAIL() << "a cordon command did not end";
  }

  boost::asio::io_context io;
  fake::FakeClock clock;
  agent::CordonConfig config;
  int changes = 0;

 private:
  fs::path dir_;
};

TEST_F(CordonKeeperTest, TheFileSaysWhatTheHookNeeds) {
  auto cordon_keeper = keeper();
  agent::CordonStatus cordon = cordoned();
  // Allowed by UUID before it is defined here (an incoming migration).
  cordon.allowed.push_back({"6f2d3c8e-0000-4000-8000-00000000000a", "", "", "", "uid 0", {}});
  cordon_keeper->update(cordon);
  const nlohmann::json doc = document();
  EXPECT_EQ(doc["format"], 1);
  EXPECT_EQ(doc["host"], "hv-a");
  EXPECT_EQ(doc["cordoned"], true);
  EXPECT_EQ(doc["phase"], "draining");
  EXPECT_EQ(doc["session_id"], "s-1");
  EXPECT_EQ(doc["window_end"], "2030-01-01T02:00:00Z");
  EXPECT_EQ(doc["reason"], "kernel");
  EXPECT_EQ(doc["allowed"][0]["domain"], "web9");
  EXPECT_EQ(doc["allowed"][0]["uuid"], "");
  EXPECT_EQ(doc["allowed"][1]["uuid"], "6f2d3c8e-0000-4000-8000-00000000000a")
      << "matched by UUID, as the hook compares names with 'domain'";
  EXPECT_EQ(doc["restoring"][0]["name"], "db");
  EXPECT_EQ(doc["restoring"][0]["uuid"], "uuid-db");
  EXPECT_EQ(fs::status(file()).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  agent::CordonStatus lifted;
  cordon_keeper->update(lifted);
  EXPECT_EQ(document()["cordoned"], false);
}

TEST_F(CordonKeeperTest, CommandsRunWhenTheCordonBeginsAndEndsAndFailuresShow) {
  config.cordon_command = "echo disabling $((1+1)); exit 3";
  config.uncordon_command = "echo enabled";
  auto cordon_keeper = keeper();
  cordon_keeper->update(cordoned());
  settle(*cordon_keeper);
  agent::CordonStatus shown = cordoned();
  cordon_keeper->decorate(shown);
  ASSERT_EQ(shown.commands.size(), 1u);
  EXPECT_EQ(shown.commands[0].which, "cordon");
  EXPECT_EQ(shown.commands[0].exit_status, 3);
  EXPECT_EQ(shown.commands[0].output, "disabling 2\n");
  EXPECT_FALSE(shown.commands[0].ok());
  auto blocker = cordon_keeper->blocker(shown);
  ASSERT_TRUE(blocker.has_value());
  EXPECT_EQ(blocker->subject, "cordon cordon command");
  EXPECT_NE(blocker->reason.find("exited with status 3"), std::string::npos) << blocker->reason;
  EXPECT_GE(changes, 2) << "the start and the end of the command are published";

  // Unchanged: nothing runs again.
  cordon_keeper->update(cordoned());
  settle(*cordon_keeper);
  cordon_keeper->decorate(shown);
  EXPECT_EQ(shown.commands.size(), 1u);

  agent::CordonStatus lifted;
  cordon_keeper->update(lifted);
  settle(*cordon_keeper);
  cordon_keeper->decorate(lifted);
  ASSERT_EQ(lifted.commands.size(), 1u);
  EXPECT_EQ(lifted.commands[0].which, "uncordon");
  EXPECT_TRUE(lifted.commands[0].ok());
  EXPECT_FALSE(cordon_keeper->blocker(lifted).has_value());
}

TEST_F(CordonKeeperTest, ARestartRunsOnlyTheCommandOwedByWhatTheFileSays) {
  config.cordon_command = "echo cordon";
  config.uncordon_command = "echo uncordon";
  auto first = keeper();
  first->update(cordoned());
  settle(*first);
  first.reset();

  // Restarted, still cordoned: no command.
  auto second = keeper();
  second->update(cordoned());
  agent::CordonStatus shown;
  second->decorate(shown);
  EXPECT_TRUE(shown.commands.empty());
  second.reset();

  // Restarted after the maintenance ended meanwhile: the uncordon is owed.
  auto third = keeper();
  agent::CordonStatus lifted;
  third->update(lifted);
  settle(*third);
  third->decorate(lifted);
  ASSERT_EQ(lifted.commands.size(), 1u);
  EXPECT_EQ(lifted.commands[0].which, "uncordon");
}

TEST_F(CordonKeeperTest, ACommandPastItsTimeoutIsKilledAndReported) {
  config.cordon_command = "sleep 30";
  config.command_timeout = 300ms;
  auto cordon_keeper = keeper();
  const auto started = std::chrono::steady_clock::now();
  cordon_keeper->update(cordoned());
  settle(*cordon_keeper);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
  agent::CordonStatus shown = cordoned();
  cordon_keeper->decorate(shown);
  ASSERT_EQ(shown.commands.size(), 1u);
  EXPECT_TRUE(shown.commands[0].timed_out);
  EXPECT_FALSE(shown.commands[0].ok());
}

TEST_F(CordonKeeperTest, AnUnwritableFileIsABlockerNamingThePath) {
  auto cordon_keeper = std::make_unique<CordonKeeper>(io, file().parent_path() / "missing" / "cordon.json",
                                                      "hv-a", config, clock, [] {});
  cordon_keeper->update(cordoned());
  agent::CordonStatus shown = cordoned();
  cordon_keeper->decorate(shown);
  ASSERT_TRUE(shown.file_error.has_value());
  auto blocker = cordon_keeper->blocker(shown);
  ASSERT_TRUE(blocker.has_value());
  EXPECT_EQ(blocker->subject, "cordon");
  EXPECT_NE(blocker->reason.find("missing"), std::string::npos) << blocker->reason;
}

// The file as hostmaintd writes it, read and judged by the hook's own code:
// the two sides of the format cannot drift apart unnoticed.
TEST_F(CordonKeeperTest, TheHookUnderstandsTheFileTheDaemonWrites) {
  auto cordon_keeper = keeper();
  agent::CordonStatus cordon = cordoned();
  cordon.allowed.push_back({"6f2d3c8e-0000-4000-8000-00000000000a", "", "", "", "uid 0", {}});
  cordon_keeper->update(cordon);
  auto verdict = [&](const std::string& name, const std::string& uuid) {
    return hook::decide(hook::GuardedOperation::start, {name, uuid}, file().string(),
                        hook::readCordonFile(file().string()));
  };
  const hook::HookVerdict refused = verdict("web3", "");
  EXPECT_FALSE(refused.allowed);
  EXPECT_NE(refused.message.find("s-1"), std::string::npos) << refused.message;
  EXPECT_NE(refused.message.find("hostmaintctl allow web3"), std::string::npos) << refused.message;
  EXPECT_TRUE(verdict("web9", "").allowed) << "allowed by name";
  EXPECT_TRUE(verdict("db", "").allowed) << "being restored";
  EXPECT_TRUE(verdict("other-name", "uuid-db").allowed) << "being restored, by UUID";
  EXPECT_TRUE(verdict("incoming", "6f2d3c8e-0000-4000-8000-00000000000a").allowed);

  cordon_keeper->update(agent::CordonStatus{});
  EXPECT_TRUE(verdict("web3", "").allowed) << "not cordoned";
}

}  // namespace
}  // namespace hostmaint::service
