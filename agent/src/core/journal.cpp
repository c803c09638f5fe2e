// Atomic, durable file replacement and the state journal built on it.
#include "hostmaint/agent/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

namespace hostmaint::agent {
namespace {

// Owns one file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Closes now so a failing close (delayed write error on some file
  // systems) is reported instead of ignored in the destructor.
  int close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

[[noreturn]] void fail(std::string_view what, const std::filesystem::path& path, int error) {
  throw JournalError("cannot " + std::string(what) + " '" + path.string() +
                     "': " + std::strerror(error));
}

// Removes the temporary file unless the rename consumed it.
class TemporaryFile {
 public:
  explicit TemporaryFile(std::filesystem::path path) : path_(std::move(path)) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::filesystem::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

std::string randomSuffix() {
  std::random_device source;
  std::uniform_int_distribution<unsigned> digit(0, 35);
  std::string suffix;
  for (int i = 0; i < 8; ++i) {
    unsigned d = digit(source);
    suffix += static_cast<char>(d < 10 ? '0' + d : 'a' + (d - 10));
  }
  return suffix;
}

}  // namespace

void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         unsigned mode) {
  std::filesystem::path directory = path.parent_path();
  if (directory.empty()) directory = ".";

  // Same directory, so the rename never crosses a file system. The leading
  // dot keeps readers globbing the directory from seeing half a file.
  std::filesystem::path temp_path;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temp_path = directory / ("." + path.filename().string() + ".tmp-" + randomSuffix());
    fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) fail("create a temporary file to replace", path, errno);
  }
  if (fd < 0) fail("create a temporary file to replace", path, EEXIST);
  FileDescriptor file(fd);
  TemporaryFile temp(temp_path);

  const char* data = content.data();
  std::size_t remaining = content.size();
  while (remaining > 0) {
    ssize_t written = ::write(file.get(), data, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("write", temp.path(), errno);
    }
    data += written;
    remaining -= static_cast<std::size_t>(written);
  }
  // Mode set explicitly: the umask must not decide who can read state.
  if (::fchmod(file.get(), static_cast<mode_t>(mode)) != 0) fail("set mode of", temp.path(), errno);
  if (::fsync(file.get()) != 0) fail("sync", temp.path(), errno);
  if (file.close() != 0) fail("close", temp.path(), errno);

  if (::rename(temp.path().c_str(), path.c_str()) != 0) fail("replace", path, errno);
  temp.release();

  // The rename is durable only once the directory entry is on disk.
  FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail("open directory", directory, errno);
  if (::fsync(dir.get()) != 0 && errno != EINVAL) fail("sync directory", directory, errno);
}

FileJournal::FileJournal(std::filesystem::path state_dir)
    : dir_(std::move(state_dir)), path_(dir_ / "state.json") {}

std::optional<std::string> FileJournal::load() {
  FileDescriptor file(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    if (errno == ENOENT) return std::nullopt;
    fail("read journal", path_, errno);
  }
  std::string document;
  char buffer[16384];
  for (;;) {
    ssize_t count = ::read(file.get(), buffer, sizeof buffer);
    if (count < 0) {
      if (errno == EINTR) continue;
      fail("read journal", path_, errno);
    }
    if (count == 0) break;
    document.append(buffer, static_cast<std::size_t>(count));
  }
  return document;
}

void FileJournal::save(const std::string& document) {
  // State may name domains and owners: private to the daemon.
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    if (errno != ENOENT) fail("create state directory", dir_, errno);
    std::error_code error;
    std::filesystem::create_directories(dir_.parent_path(), error);
    if (error) fail("create state directory", dir_.parent_path(), error.value());
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      fail("create state directory", dir_, errno);
    }
  }
  writeFileAtomically(path_, document, 0600);
}

}  // namespace hostmaint::agent
