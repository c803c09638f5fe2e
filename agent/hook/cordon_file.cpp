#include "cordon_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hostmaint::hook {
namespace {

class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

CordonFileRead unreadable(std::string error) {
  return {CordonFileRead::State::unreadable, {}, std::move(error)};
}

}  // namespace

CordonFileRead readCordonFile(const std::string& path) {
  const OwnedFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    if (errno == ENOENT) return {CordonFileRead::State::missing, {}, {}};
    return unreadable(std::strerror(errno));
  }
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) return unreadable(std::strerror(errno));
  if (!S_ISREG(status.st_mode)) return unreadable("not a regular file");
  const std::string too_big = "larger than " + std::to_string(kMaxCordonFileBytes) + " bytes";
  if (static_cast<std::size_t>(status.st_size) > kMaxCordonFileBytes) return unreadable(too_big);

  // Read to the end, in chunks (a 1 MiB buffer up front would cost more
  // than the rest of the hook), stopping once past the limit: the file may
  // have grown since fstat.
  std::string contents;
  contents.reserve(static_cast<std::size_t>(status.st_size));
  char chunk[16384];
  while (contents.size() <= kMaxCordonFileBytes) {
    const ssize_t got = ::read(fd.get(), chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return unreadable(std::strerror(errno));
    if (got == 0) break;
    contents.append(chunk, static_cast<std::size_t>(got));
  }
  if (contents.size() > kMaxCordonFileBytes) return unreadable(too_big);
  return {CordonFileRead::State::read, std::move(contents), {}};
}

std::string drainInput(int fd, std::size_t keep_bytes, std::size_t max_bytes) {
  std::string kept;
  if (::isatty(fd)) return kept;
  char buffer[65536];
  std::size_t total = 0;
  while (total < max_bytes) {
    const ssize_t got = ::read(fd, buffer, std::min(sizeof buffer, max_bytes - total));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the end, or nothing to read (closed, non-blocking, ...)
    const auto length = static_cast<std::size_t>(got);
    if (kept.size() < keep_bytes) kept.append(buffer, std::min(length, keep_bytes - kept.size()));
    total += length;
  }
  return kept;
}

}  // namespace hostmaint::hook
