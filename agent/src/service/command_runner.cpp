#include "hostmaint/agent/service/command_runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

extern char** environ;

namespace hostmaint::service {

namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr std::size_t kOutputTail = 4096;
constexpr auto kKillGrace = 5s;
// How often a waiting command thread looks at the stop flag.
constexpr auto kStopCheck = 100ms;

// Control characters other than newline and tab would drive the terminal
// of whoever reads the status.
std::string printableOutput(std::string text) {
  for (char& c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\n' && c != '\t') || byte == 0x7f) c = '?';
  }
  return text;
}

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  ~Pipe() {
    if (read_end >= 0) close(read_end);
    if (write_end >= 0) close(write_end);
  }
};

}  // namespace

struct CommandRunner::Shared {
  std::atomic<bool> stopping{false};
  std::mutex mutex;
  std::vector<std::thread> threads;
};

CommandRunner::CommandRunner(boost::asio::io_context& io)
    : io_(io), shared_(std::make_shared<Shared>()) {}

CommandRunner::~CommandRunner() {
  shared_->stopping = true;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(shared_->mutex);
    threads.swap(shared_->threads);
  }
  for (std::thread& thread : threads) thread.join();
}

void CommandRunner::run(std::string command_line, std::chrono::milliseconds timeout,
                        std::function<void(const CommandResult&)> done) {
  std::weak_ptr<Shared> weak = shared_;
  Shared* shared = shared_.get();
  std::lock_guard lock(shared->mutex);
  shared->threads.emplace_back([this, weak, shared, command_line = std::move(command_line),
                                timeout, done = std::move(done)]() mutable {
    CommandResult result;
    result.command = command_line;
    result.started_at = agent::Clock::now();
    auto finish = [&] {
      result.finished_at = agent::Clock::now();
      result.output = printableOutput(std::move(result.output));
      if (shared->stopping) return;
      boost::asio::post(io_, [weak, done = std::move(done), result = std::move(result)] {
        if (weak.lock()) done(result);
      });
    };

    Pipe output;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      result.error = std::string("cannot create a pipe: ") + std::strerror(errno);
      return finish();
    }
    output.read_end = fds[0];
    output.write_end = fds[1];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, output.write_end, 1);
    posix_spawn_file_actions_adddup2(&actions, output.write_end, 2);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // A group of its own: the timeout kills whatever the shell started too.
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    const char* argv[] = {"/bin/sh", "-c", command_line.c_str(), nullptr};
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes,
                                    const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    close(output.write_end);
    output.write_end = -1;
    if (spawned != 0) {
      result.error = std::string("cannot run /bin/sh: ") + std::strerror(spawned);
      return finish();
    }

    const auto deadline = Steady::now() + timeout;
    std::optional<Steady::time_point> kill_at;
    bool open = true;
    int status = 0;
    bool reaped = false;
    char buffer[4096];
    while (!reaped) {
      if (shared->stopping) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        return;
      }
      const auto now = Steady::now();
      if (!result.timed_out && now >= deadline) {
        result.timed_out = true;
        kill(-pid, SIGTERM);
        kill_at = now + kKillGrace;
      }
      if (kill_at && now >= *kill_at) {
        kill(-pid, SIGKILL);
        kill_at.reset();
      }
      if (open) {
        pollfd readable{output.read_end, POLLIN, 0};
        const int ready = poll(&readable, 1, static_cast<int>(kStopCheck.count()));
        if (ready > 0) {
          const ssize_t got = read(output.read_end, buffer, sizeof buffer);
          if (got > 0) {
            result.output.append(buffer, static_cast<std::size_t>(got));
            if (result.output.size() > kOutputTail)
              result.output.erase(0, result.output.size() - kOutputTail);
          } else if (got == 0 || errno != EINTR) {
            open = false;  // every writer closed it (a daemonised child may keep it: see below)
          }
        }
      } else {
        std::this_thread::sleep_for(kStopCheck / 10);
      }
      const pid_t waited = waitpid(pid, &status, WNOHANG);
      // The shell exited: what its children still write is not waited for.
      if (waited == pid) reaped = true;
    }
    // Drain what is already in the pipe.
    for (pollfd readable{output.read_end, POLLIN, 0}; open && poll(&readable, 1, 0) > 0;) {
      const ssize_t got = read(output.read_end, buffer, sizeof buffer);
      if (got <= 0) break;
      result.output.append(buffer, static_cast<std::size_t>(got));
    }
    if (result.output.size() > kOutputTail)
      result.output.erase(0, result.output.size() - kOutputTail);
    if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    finish();
  });
}

}  // namespace hostmaint::service
