// A private dbus-daemon for tests of the sd-bus glue: started in a temporary
// directory, its address read from --print-address, stopped at the end.
// Plus helpers to run an io_context until a condition holds, with a limit
// (tests wait on conditions, never sleep).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace hostmaint::fake {

class PrivateDbus {
 public:
  PrivateDbus() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "hostmaint-bus-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir_ = pattern;
    start();
  }

  ~PrivateDbus() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Stops the dbus-daemon (every connection is lost) and starts a new one on
  // the same socket, which socketAddress() reaches.
  void restart() {
    stop();
    start();
  }

  PrivateDbus(const PrivateDbus&) = delete;
  PrivateDbus& operator=(const PrivateDbus&) = delete;

  // As printed, with the daemon's guid: a connection to it checks the guid.
  const std::string& address() const { return address_; }
  // The socket alone: reaches whichever daemon listens there (restart()).
  std::string socketAddress() const { return "unix:path=" + (dir_ / "bus").string(); }

 private:
  // Starts a dbus-daemon on the socket; the constructor's and restart()'s.
  void start() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // dup2 onto itself clears close-on-exec in the child only.
    posix_spawn_file_actions_adddup2(&actions, fds[1], 3);
    // Its output goes to a file of its own, not the test's: a daemon
    // orphaned by a crashing test would otherwise hold ctest's pipe open,
    // and ctest would wait for it forever.
    const std::string log = (dir_ / "dbus-daemon.log").string();
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args{"dbus-daemon",
                                  "--session",
                                  "--nofork",
                                  "--nopidfile",
                                  "--address=" + socketAddress(),
                                  "--print-address=3"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int spawned = posix_spawnp(&pid_, "dbus-daemon", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (spawned != 0) {
      close(fds[0]);
      throw std::system_error(spawned, std::generic_category(), "cannot start dbus-daemon");
    }
    address_ = readLine(fds[0], std::chrono::seconds(10));
    close(fds[0]);
    if (address_.empty()) throw std::runtime_error("dbus-daemon did not print its address");
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  static std::string readLine(int fd, std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.empty() || line.back() != '\n') {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd entry{fd, POLLIN, 0};
      if (poll(&entry, 1, static_cast<int>(left.count())) <= 0) return {};
      char buffer[256];
      const ssize_t got = read(fd, buffer, sizeof buffer);
      if (got <= 0) return {};
      line.append(buffer, static_cast<std::size_t>(got));
    }
    line.pop_back();
    return line;
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// Runs `io` until `done()` holds; false when `timeout` passed first.
inline bool runUntil(boost::asio::io_context& io, const std::function<bool()>& done,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (io.stopped()) io.restart();
  while (!done()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return false;
    io.run_one_for(left);
    if (io.stopped()) io.restart();
  }
  return true;
}

}  // namespace hostmaint::fake
