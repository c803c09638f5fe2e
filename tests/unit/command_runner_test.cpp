// CommandRunner: [cordon] commands run by /bin/sh in a process group of their
// own, output kept at its tail, killed at the timeout, never blocking the loop.
#include "hostmaint/agent/service/command_runner.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace hostmaint::service {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Dead: gone, or a zombie nobody reaped yet (its parent, the killed shell, is
// gone too and the machine's PID 1 may be slow to reap orphans).
bool processDead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!condition()) {
    if (SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class CommandRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "hostmaint-runner-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir = pattern;
  }
  void TearDown() override { fs::remove_all(dir); }

  // Runs `command` and the loop until its result arrives (or `limit` passes).
  std::optional<CommandResult> runToEnd(const std::string& command,
                                        std::chrono::milliseconds timeout = 10s,
                                        std::chrono::milliseconds limit = 20s) {
    std::optional<CommandResult> result;
    int calls = 0;
    runner.run(command, timeout, [&](const CommandResult& r) {
      ++calls;
      result = r;
    });
    EXPECT_FALSE(result) << "done must be posted, not called from run()";
    const auto deadline = SteadyClock::now() + limit;
    while (!result && SteadyClock::now() < deadline) io.run_one_for(100ms);
    io.poll();
    EXPECT_EQ(calls, result ? 1 : 0);
    return result;
  }

  fs::path dir;
  boost::asio::io_context io;
  CommandRunner runner{io};
};

TEST_F(CommandRunnerTest, ExitZeroWithOutputInterleaved) {
  const auto before = agent::Clock::now();
  const auto result = runToEnd("echo out; echo err >&2; printf 'tab\\there\\n'");
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(result->exit_status, 0);
  EXPECT_EQ(result->signal, std::nullopt);
  EXPECT_FALSE(result->timed_out);
  EXPECT_EQ(result->error, "");
  EXPECT_EQ(result->output, "out\nerr\ntab\there\n");
  EXPECT_EQ(result->command, "echo out; echo err >&2; printf 'tab\\there\\n'");
  EXPECT_GE(result->started_at, before);
  EXPECT_GE(result->finished_at, result->started_at);
}

TEST_F(CommandRunnerTest, ExitThreeIsNotOk) {
  const auto result = runToEnd("echo failing; exit 3");
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->exit_status, 3);
  EXPECT_EQ(result->output, "failing\n");
}

TEST_F(CommandRunnerTest, StdinIsDevNull) {
  const auto result = runToEnd("cat; echo read-to-end");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->output, "read-to-end\n");
}

TEST_F(CommandRunnerTest, OutputOverTheLimitKeepsTheTail) {
  // 100000 lines, far past the pipe's buffer: read all along, tail kept.
  const auto result = runToEnd(
      "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; "
      "yes filler | head -n 100000 >/dev/null; echo last");
  ASSERT_TRUE(result);
  std::string all;
  for (int i = 0; i < 3000; ++i) all += "line " + std::to_string(i) + "\n";
  all += "last\n";
  EXPECT_EQ(result->output, all.substr(all.size() - kCommandOutputBytes));
}

TEST_F(CommandRunnerTest, LargeOutputDoesNotStallTheCommand) {
  const auto result = runToEnd("yes 0123456789 | head -n 100000");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_status, 0);
  EXPECT_EQ(result->output.size(), kCommandOutputBytes);
  EXPECT_TRUE(result->output.ends_with("0123456789\n0123456789\n"));
}

TEST_F(CommandRunnerTest, TimeoutKillsTheWholeProcessGroup) {
  const auto started = SteadyClock::now();
  const auto result = runToEnd("sleep 30 & echo $!; wait", 300ms);
  ASSERT_TRUE(result);
  EXPECT_LT(SteadyClock::now() - started, 4s) << "SIGTERM must end it, not the SIGKILL grace";
  EXPECT_TRUE(result->timed_out);
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->exit_status, std::nullopt);
  EXPECT_EQ(result->signal, SIGTERM);
  const pid_t sleeper = std::atoi(result->output.c_str());
  ASSERT_GT(sleeper, 1) << result->output;
  EXPECT_TRUE(waitFor([&] { return processDead(sleeper); }, 2000ms))
      << "the shell's child sleep " << sleeper << " survived the timeout";
}

TEST_F(CommandRunnerTest, TimeoutIgnoringSigtermGetsSigkill) {
  // SIGTERM ignored by the shell and (inherited) by its sleep: SIGKILL after the grace.
  const auto started = SteadyClock::now();
  const auto result = runToEnd("trap '' TERM; sleep 30 & echo $!; wait", 200ms);
  ASSERT_TRUE(result);
  EXPECT_GE(SteadyClock::now() - started, kCommandKillGrace);
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->signal, SIGKILL);
  const pid_t sleeper = std::atoi(result->output.c_str());
  ASSERT_GT(sleeper, 1) << result->output;
  EXPECT_TRUE(waitFor([&] { return processDead(sleeper); }, 2000ms));
}

TEST_F(CommandRunnerTest, NonexistentProgramIsTheShells127) {
  const auto result = runToEnd("hostmaint-no-such-program --flag");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->exit_status, 127);
  EXPECT_EQ(result->error, "") << "the shell started; the program did not";
  EXPECT_NE(result->output.find("hostmaint-no-such-program"), std::string::npos);
  EXPECT_NE(result->output.find("not found"), std::string::npos) << result->output;
}

TEST_F(CommandRunnerTest, BackgroundChildHoldingThePipeDoesNotDelayTheEnd) {
  const auto started = SteadyClock::now();
  const auto result = runToEnd("sleep 30 & echo $!; echo started");
  ASSERT_TRUE(result);
  EXPECT_LT(SteadyClock::now() - started, 4s);
  EXPECT_EQ(result->exit_status, 0);
  const pid_t sleeper = std::atoi(result->output.c_str());
  ASSERT_GT(sleeper, 1);
  EXPECT_TRUE(result->output.ends_with("\nstarted\n")) << result->output;
  EXPECT_FALSE(processDead(sleeper)) << "left running after a normal exit";
  ::kill(sleeper, SIGKILL);
}

TEST_F(CommandRunnerTest, SeveralRunAtOnce) {
  std::vector<std::string> finished;
  runner.run("sleep 0.3; echo slow", 10s,
             [&](const CommandResult& r) { finished.push_back(r.output); });
  runner.run("echo fast", 10s, [&](const CommandResult& r) { finished.push_back(r.output); });
  const auto deadline = SteadyClock::now() + 10s;
  while (finished.size() < 2 && SteadyClock::now() < deadline) io.run_one_for(100ms);
  EXPECT_EQ(finished, (std::vector<std::string>{"fast\n", "slow\n"}));
}

TEST_F(CommandRunnerTest, SignalsTheDaemonIgnoresAreDefaultForTheCommand) {
  // hostmaintd ignores SIGPIPE; a pipeline in a command must still end by it.
  struct sigaction ignore {};
  struct sigaction previous {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &previous);
  const auto result = runToEnd("yes | head -n 1");
  sigaction(SIGPIPE, &previous, nullptr);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->output, "y\n");
}

TEST(CommandRunnerLifetime, DestructionWhileRunningKillsReapsAndReturnsPromptly) {
  std::string pattern = (fs::temp_directory_path() / "hostmaint-runner-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path pid_file = fs::path(pattern) / "pid";

  boost::asio::io_context io;
  auto runner = std::make_unique<CommandRunner>(io);
  bool called = false;
  runner->run("echo $$ > '" + pid_file.string() + "'.new && mv '" + pid_file.string() + "'.new '" +
                  pid_file.string() + "' && exec sleep 30",
              10s, [&](const CommandResult&) { called = true; });
  // The shell runs whether or not the loop does: wait for it to have exec'd sleep.
  ASSERT_TRUE(waitFor([&] { return fs::exists(pid_file); }, 5000ms));
  pid_t pid = 0;
  std::ifstream(pid_file) >> pid;
  ASSERT_GT(pid, 1);
  io.run_for(100ms);

  const auto started = SteadyClock::now();
  runner.reset();
  EXPECT_LT(SteadyClock::now() - started, 1s);
  // Reaped by the destructor, not left as a zombie.
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(pid)));
  io.run_for(200ms);
  EXPECT_FALSE(called) << "done must not run after the runner is gone";
  fs::remove_all(pattern);
}

TEST(CommandOutputText, ReplacesControlCharactersAndInvalidUtf8) {
  EXPECT_EQ(commandOutputText("a\tb\nc", 100), "a\tb\nc");
  EXPECT_EQ(commandOutputText("bell\a esc\x1b[0m cr\r del\x7f", 100),
            "bell\uFFFD esc\uFFFD[0m cr\uFFFD del\uFFFD");
  EXPECT_EQ(commandOutputText("caf\xC3\xA9 \xE2\x82\xAC", 100), "caf\u00E9 \u20AC");
  EXPECT_EQ(commandOutputText("bad \xFF\xC3 end", 100), "bad \uFFFD\uFFFD end");
  EXPECT_EQ(commandOutputText("c1 \xC2\x85 overlong \xC0\xAF", 100),
            "c1 \uFFFD overlong \uFFFD\uFFFD");
}

TEST(CommandOutputText, KeepsTheTailWithoutAHalfSequence) {
  EXPECT_EQ(commandOutputText("0123456789", 4), "6789");
  // The cut falls inside the 3-byte euro sign: its rest is dropped, not replaced.
  EXPECT_EQ(commandOutputText("x\xE2\x82\xAC"
                              "abc",
                              4),
            "abc");
  EXPECT_EQ(commandOutputText("x\xE2\x82\xAC"
                              "abc",
                              6),
            "\u20AC"
            "abc");
}

}  // namespace
}  // namespace hostmaint::service
