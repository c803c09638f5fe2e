#include "hostmaint/agent/service/command_runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

extern char** environ;

namespace hostmaint::service {

// One command, from spawn to `done`. Owned by the runner until it has
// finished, and by the handlers pending on it; the watcher thread holds a
// weak reference only (so the last reference never drops on that thread,
// which could not join itself).
struct CommandRunner::Command {
  Command(boost::asio::io_context& io, std::function<void(const CommandResult&)> on_done)
      : io(io), pipe(io), timer(io), work(io.get_executor()), done(std::move(on_done)) {}
  ~Command() {
    if (watcher.joinable()) watcher.join();
  }

  boost::asio::io_context& io;
  boost::asio::posix::stream_descriptor pipe;  // the read end of stdout+stderr
  boost::asio::steady_timer timer;             // the timeout, then the grace before SIGKILL
  // Until `done` is posted the loop has work: the watcher's post may come
  // when nothing else is pending (the pipe at its end, the timer run).
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
  std::function<void(const CommandResult&)> done;
  CommandResult result;
  pid_t pid = -1;  // also the process group
  std::thread watcher;
  std::array<char, 4096> buffer{};
  std::string output;      // the raw tail
  bool reading = false;    // an async read is pending on `pipe`
  bool exited = false;     // the shell has ended (seen, not yet reaped)
  bool finished = false;   // reaped and `done` posted, or abandoned
  bool abandoned = false;  // the runner is gone: `done` must not run
};

namespace {

using Command = CommandRunner::Command;

std::string errnoText(int error) { return std::strerror(error); }

// `done`, on the loop, unless the runner is destroyed before it runs.
void postDone(const std::shared_ptr<Command>& command) {
  boost::asio::post(command->io, [command] {
    auto done = std::move(command->done);
    command->done = nullptr;
    if (done && !command->abandoned) done(command->result);
  });
}

void keepTail(Command& command, const char* data, std::size_t length) {
  command.output.append(data, length);
  // Trimmed in steps, not on every read: at most twice the tail is held.
  if (command.output.size() > 2 * kCommandOutputBytes)
    command.output.erase(0, command.output.size() - kCommandOutputBytes);
}

// Reaps the shell (its end was seen, so waitpid returns at once), and posts
// `done`. The leader is reaped only here: until then its zombie keeps the
// process group's id from being reused, so signalling the group is safe.
void finish(const std::shared_ptr<Command>& command) {
  command->finished = true;
  command->timer.cancel();
  if (command->reading) command->pipe.cancel();
  boost::system::error_code ignored;
  command->pipe.close(ignored);
  if (command->watcher.joinable()) command->watcher.join();
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(command->pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == command->pid) {
    if (WIFEXITED(status)) command->result.exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) command->result.signal = WTERMSIG(status);
  }
  command->result.finished_at = agent::Clock::now();
  command->result.output = commandOutputText(command->output, kCommandOutputBytes);
  command->output.clear();
  postDone(command);
  command->work.reset();
}

// What is still in the pipe after the shell ended; background processes it
// left may keep the pipe open, so this does not wait for the end of file.
void drainAfterExit(Command& command) {
  boost::system::error_code error;
  command.pipe.non_blocking(true, error);
  while (!error) {
    const std::size_t got = command.pipe.read_some(boost::asio::buffer(command.buffer), error);
    keepTail(command, command.buffer.data(), got);
  }
}

void readMore(const std::shared_ptr<Command>& command);

void onRead(const std::shared_ptr<Command>& command, const boost::system::error_code& error,
            std::size_t got) {
  command->reading = false;
  if (command->finished) return;
  keepTail(*command, command->buffer.data(), got);
  if (command->exited) {
    // The shell's end cancelled this read (or it completed meanwhile): take
    // the rest that is buffered, in order, and finish.
    if (error != boost::asio::error::eof) drainAfterExit(*command);
    finish(command);
  } else if (!error) {
    readMore(command);
  }
  // The end of file (or a read error) before the shell ended: the watcher's
  // news of its end finishes the command.
}

void readMore(const std::shared_ptr<Command>& command) {
  command->reading = true;
  command->pipe.async_read_some(
      boost::asio::buffer(command->buffer),
      [command](const boost::system::error_code& error, std::size_t got) {
        onRead(command, error, got);
      });
}

void onExited(const std::shared_ptr<Command>& command) {
  if (command->finished) return;
  command->exited = true;
  // A shell that ended after SIGTERM may leave children that ignore it.
  if (command->result.timed_out) ::kill(-command->pid, SIGKILL);
  if (command->reading) {
    command->pipe.cancel();  // its handler takes what is buffered and finishes
  } else {
    finish(command);
  }
}

void onTimeout(const std::shared_ptr<Command>& command, const boost::system::error_code& error) {
  if (error || command->finished || command->exited) return;
  command->result.timed_out = true;
  ::kill(-command->pid, SIGTERM);
  command->timer.expires_after(kCommandKillGrace);
  command->timer.async_wait([command](const boost::system::error_code& grace_error) {
    if (grace_error || command->finished || command->exited) return;
    ::kill(-command->pid, SIGKILL);
  });
}

// RAII for posix_spawn's two C structures.
class SpawnSettings {
 public:
  SpawnSettings() {
    ::posix_spawn_file_actions_init(&actions_);
    ::posix_spawnattr_init(&attributes_);
  }
  ~SpawnSettings() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attributes_);
  }
  SpawnSettings(const SpawnSettings&) = delete;
  SpawnSettings& operator=(const SpawnSettings&) = delete;
  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attributes() { return &attributes_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attributes_;
};

// Starts /bin/sh -c `command_line` with stdout and stderr on `output_fd`;
// returns 0 or the error number.
int spawnShell(const std::string& command_line, int output_fd, pid_t& pid) {
  SpawnSettings settings;
  posix_spawn_file_actions_addopen(settings.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(settings.actions(), output_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(settings.actions(), output_fd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Our descriptors are close-on-exec already; this also covers one a
  // library opened without it (libvirt's, sd-bus's), so no command holds
  // the daemon's sockets.
  posix_spawn_file_actions_addclosefrom_np(settings.actions(), STDERR_FILENO + 1);
#endif
  // A group of its own, so the timeout reaches the whole tree; signals as a
  // fresh process has them (the daemon blocks or ignores some, e.g. SIGPIPE).
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(settings.attributes(),
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(settings.attributes(), 0);
  posix_spawnattr_setsigmask(settings.attributes(), &none);
  posix_spawnattr_setsigdefault(settings.attributes(), &all);

  char shell[] = "/bin/sh";
  char dash_c[] = "-c";
  std::string command = command_line;
  char* const argv[] = {shell, dash_c, command.data(), nullptr};
  return ::posix_spawn(&pid, shell, settings.actions(), settings.attributes(), argv, environ);
}

void closeFd(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace

CommandRunner::CommandRunner(boost::asio::io_context& io) : io_(io) {}

CommandRunner::~CommandRunner() {
  for (const auto& command : commands_) {
    command->abandoned = true;  // a `done` already posted will not run
    if (command->finished) continue;
    command->finished = true;  // its pending handlers will do nothing
    if (command->pid > 0) {
      ::kill(-command->pid, SIGKILL);
      if (command->watcher.joinable()) command->watcher.join();  // ends: the shell is killed
      while (::waitpid(command->pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    command->timer.cancel();
    boost::system::error_code ignored;
    command->pipe.close(ignored);
    command->work.reset();
  }
}

void CommandRunner::run(std::string command_line, std::chrono::milliseconds timeout,
                        std::function<void(const CommandResult&)> done) {
  // Kept until `done` has run, so the destructor can still stop a `done` posted but not yet run.
  std::erase_if(commands_, [](const std::shared_ptr<Command>& command) {
    return command->finished && !command->done;
  });
  auto command = std::make_shared<Command>(io_, std::move(done));
  commands_.push_back(command);
  command->result.command = command_line;
  command->result.started_at = agent::Clock::now();

  const auto cannot_start = [&](const std::string& what, int error) {
    command->result.error = what + ": " + errnoText(error);
    command->result.finished_at = agent::Clock::now();
    command->finished = true;
    postDone(command);
    command->work.reset();
  };

  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return cannot_start("cannot create a pipe", errno);
  pid_t pid = -1;
  const int spawn_error = spawnShell(command_line, fds[1], pid);
  closeFd(fds[1]);
  if (spawn_error != 0) {
    closeFd(fds[0]);
    return cannot_start("cannot start /bin/sh", spawn_error);
  }
  command->pid = pid;
  command->pipe.assign(fds[0]);

  // The watcher waits for this shell only, and leaves it unreaped (WNOWAIT):
  // reaping is finish()'s, after the last signal to its group.
  try {
    command->watcher = std::thread([pid, &io = io_, weak = std::weak_ptr<Command>(command)] {
      siginfo_t info{};
      while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 &&
             errno == EINTR) {
      }
      boost::asio::post(io, [weak] {
        if (const auto target = weak.lock()) onExited(target);
      });
    });
  } catch (const std::system_error& error) {
    // Nothing would ever see the shell end: it must not run unwatched.
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return cannot_start("cannot start a thread to watch /bin/sh", error.code().value());
  }

  command->timer.expires_after(timeout);
  command->timer.async_wait(
      [command](const boost::system::error_code& error) { onTimeout(command, error); });
  readMore(command);
}

std::string commandOutputText(std::string_view raw, std::size_t max_bytes) {
  if (raw.size() > max_bytes) {
    raw.remove_prefix(raw.size() - max_bytes);
    // Not from inside a sequence that the cut split.
    for (int skipped = 0;
         skipped < 3 && !raw.empty() && (static_cast<unsigned char>(raw.front()) & 0xC0) == 0x80;
         ++skipped)
      raw.remove_prefix(1);
  }
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(raw.size());
  std::size_t i = 0;
  while (i < raw.size()) {
    const auto lead = static_cast<unsigned char>(raw[i]);
    if (lead < 0x80) {
      const bool control = (lead < 0x20 && lead != '\n' && lead != '\t') || lead == 0x7F;
      if (control) {
        out += kReplacement;
      } else {
        out += static_cast<char>(lead);
      }
      ++i;
      continue;
    }
    std::size_t length = (lead & 0xE0) == 0xC0 && lead >= 0xC2   ? 2
                         : (lead & 0xF0) == 0xE0                 ? 3
                         : (lead & 0xF8) == 0xF0 && lead <= 0xF4 ? 4
                                                                 : 0;
    std::uint32_t value = length == 2 ? lead & 0x1Fu : length == 3 ? lead & 0x0Fu : lead & 0x07u;
    for (std::size_t k = 1; length > 0 && k < length; ++k) {
      if (i + k >= raw.size() || (static_cast<unsigned char>(raw[i + k]) & 0xC0) != 0x80) {
        length = 0;
        break;
      }
      value = (value << 6) | (static_cast<unsigned char>(raw[i + k]) & 0x3Fu);
    }
    const bool valid = length > 0 && !(length == 3 && value < 0x800) &&
                       !(length == 4 && value < 0x10000) && !(value >= 0xD800 && value <= 0xDFFF) &&
                       value <= 0x10FFFF && value > 0x9F;  // C1 controls are replaced too
    if (valid) {
      out.append(raw.substr(i, length));
      i += length;
    } else {
      out += kReplacement;
      i += length > 0 ? length : 1;  // a C1 control is one character; a bad byte one byte
    }
  }
  return out;
}

}  // namespace hostmaint::service
