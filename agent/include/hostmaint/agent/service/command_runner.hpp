// Runs the admin's shell commands ([cordon] cordon_command and
// uncordon_command, docs/configuration.md) without ever blocking the loop:
// `/bin/sh -c COMMAND` in a process group of its own, stdin from /dev/null,
// stdout and stderr into one pipe read on the io_context, a timeout after
// which the whole group gets SIGTERM and, 5 s later (or as soon as the shell
// has ended), SIGKILL. Each command has a watcher thread that only waits for
// its shell to end (waitid on that pid, never on any child: no SIGCHLD
// handler, nothing reaped that is not ours) and posts that to the loop.
//
// Threading: construct, call run() and destroy on the io_context's thread
// (or while the io_context is not running); `done` runs there too.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

struct CommandResult {
  std::string command;
  agent::TimePoint started_at{}, finished_at{};
  std::optional<int> exit_status;  // set when the shell exited
  std::optional<int> signal;       // set when the shell was killed by a signal
  bool timed_out = false;          // killed at the timeout (SIGTERM, then SIGKILL after 5 s)
  // stdout and stderr interleaved as written: the last 4 KiB, with invalid
  // UTF-8 and control characters (except \n and \t) replaced by U+FFFD.
  std::string output;
  std::string error;  // could not be started at all ("cannot start /bin/sh: ..."); else empty

  bool ok() const { return exit_status == 0; }
};

// How much of a command's output is kept (its end), and the grace between
// SIGTERM and SIGKILL for a command that timed out.
inline constexpr std::size_t kCommandOutputBytes = 4096;
inline constexpr std::chrono::seconds kCommandKillGrace{5};

class CommandRunner {
 public:
  explicit CommandRunner(boost::asio::io_context& io);
  // Kills (SIGKILL, the whole process group) and reaps whatever still runs;
  // their `done` is never called. Never blocks longer than the kernel takes
  // to end a killed process.
  ~CommandRunner();
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  // Starts `command_line`; several may run at once. `done` is posted to the
  // io_context exactly once, with the result, unless the runner is destroyed
  // first. Background processes a command leaves behind when its shell
  // exits normally are not killed (and what they write later is not read).
  void run(std::string command_line, std::chrono::milliseconds timeout,
           std::function<void(const CommandResult&)> done);

  struct Command;  // defined in command_runner.cpp

 private:
  boost::asio::io_context& io_;
  std::vector<std::shared_ptr<Command>> commands_;  // pruned on run() once `done` has run
};

// `raw` made safe to show or log: its last `max_bytes` (not starting inside
// a UTF-8 sequence), invalid UTF-8 and control characters other than \n and
// \t replaced by U+FFFD. Exposed for the tests.
std::string commandOutputText(std::string_view raw, std::size_t max_bytes);

}  // namespace hostmaint::service
