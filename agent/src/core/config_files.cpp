// Reading hostmaintd.conf and its drop-in directory from disk.
#include "config_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/file_descriptor.hpp"

namespace hostmaint::agent::config_files {
namespace {

// A config file is a few KiB; anything past this is not one.
constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;

[[noreturn]] void cannotRead(const std::filesystem::path& path, const std::string& why) {
  throw ConfigError("cannot read config file '" + path.string() + "': " + why);
}

std::string fileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

// The file's text; nullopt when it does not exist and that is allowed.
// Only a regular file of bounded size is read: the reload runs on the event
// loop, and a FIFO (which blocks until someone writes) or /dev/zero (which
// never ends) at the path must not stop the daemon from serving.
std::optional<std::string> readFile(const std::filesystem::path& path, bool missing_ok) {
  // O_NONBLOCK: opening a FIFO without a writer returns at once; fstat on
  // the opened file, not stat on the path, so the checked file is the read one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int open_error = errno;
    if (open_error == ELOOP) cannotRead(path, "it is a symbolic link loop");
    std::error_code ignored;
    // A link to nowhere was meant to be read: not the same as no file.
    if (open_error == ENOENT && std::filesystem::is_symlink(path, ignored))
      cannotRead(path, "it is a dangling symbolic link");
    if (open_error == ENOENT && missing_ok) return std::nullopt;
    cannotRead(path, std::strerror(open_error));
  }
  const FileDescriptor closer(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) cannotRead(path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) cannotRead(path, "it is " + fileTypeName(info.st_mode) +
                                                   ", not a regular file");
  if (static_cast<std::uintmax_t>(info.st_size) > kMaxConfigFileBytes)
    cannotRead(path, "it is " + std::to_string(info.st_size) + " bytes, more than the " +
                         std::to_string(kMaxConfigFileBytes) + " bytes a config file may have");
  std::string text;
  char buffer[8192];
  for (;;) {
    const ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0) {
      if (errno == EINTR) continue;
      cannotRead(path, std::strerror(errno));
    }
    if (count == 0) break;
    text.append(buffer, static_cast<std::size_t>(count));
    // It may grow while being read.
    if (text.size() > kMaxConfigFileBytes)
      cannotRead(path, "it is more than the " + std::to_string(kMaxConfigFileBytes) +
                           " bytes a config file may have");
  }
  return text;
}

std::vector<std::filesystem::path> dropInFiles(const std::filesystem::path& directory) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  if (!std::filesystem::exists(directory, error)) return files;
  std::filesystem::directory_iterator entries(directory, error);
  if (error) {
    throw ConfigError("cannot read config drop-in directory '" + directory.string() +
                      "': " + error.message());
  }
  std::vector<std::filesystem::directory_entry> candidates;
  for (const auto& entry : entries) {
    if (entry.path().extension() == ".conf") candidates.push_back(entry);
  }
  // Name order (bytewise, like systemd), so 10-x.conf is applied before
  // 50-y.conf, and the first bad one is the one named.
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.path().filename().string() < b.path().filename().string();
  });
  for (const auto& entry : candidates) {
    // A .conf that cannot be read as a file (a symlink loop, a dangling
    // link, a directory, a FIFO) was meant to configure something: it is an
    // error, like an unreadable one, never skipped without a word.
    std::error_code status_error;
    const std::filesystem::file_status status = entry.status(status_error);
    if (status_error || !std::filesystem::is_regular_file(status)) {
      std::string why;
      if (status_error == std::errc::too_many_symbolic_link_levels) {
        why = "it is a symbolic link loop";
      } else if (entry.is_symlink(error) && !std::filesystem::exists(status)) {
        why = "it is a dangling symbolic link";
      } else if (status_error) {
        why = status_error.message();
      } else {
        why = std::filesystem::is_directory(status) ? "it is a directory, not a regular file"
                                                    : "it is not a regular file";
      }
      throw ConfigError("cannot read config drop-in '" + entry.path().string() + "': " + why);
    }
    files.push_back(entry.path());
  }
  return files;
}

}  // namespace hostmaint::agent::config_files
