// Runs the [cordon] commands: /bin/sh -c COMMAND in a process group of its
// own, stdin from /dev/null, stdout and stderr captured together (the tail),
// killed with its children at the timeout. The result is posted to the loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::service {

struct CommandResult {
  std::string command;
  agent::TimePoint started_at{}, finished_at{};
  std::optional<int> exit_status;  // set when it exited
  std::optional<int> signal;       // set when killed by a signal
  bool timed_out = false;          // killed (SIGTERM, then SIGKILL after 5 s) at the timeout
  std::string output;              // stdout+stderr, the last 4 KiB, control characters replaced
  std::string error;               // could not be started at all
  bool ok() const { return error.empty() && exit_status == 0; }
};

class CommandRunner {
 public:
  explicit CommandRunner(boost::asio::io_context& io);
  ~CommandRunner();  // kills what still runs; its `done` is not called
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  // `done` is posted to the io_context exactly once, unless the runner is
  // destroyed first.
  void run(std::string command_line, std::chrono::milliseconds timeout,
           std::function<void(const CommandResult&)> done);

 private:
  struct Shared;
  boost::asio::io_context& io_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace hostmaint::service
