// Owns one POSIX file descriptor, for every part of hostmaint that reads or
// writes files below the standard streams (which cannot report errno, and
// whose filebuf throws when a read fails).
#pragma once

#include <unistd.h>

#include <utility>

namespace hostmaint {

class FileDescriptor {
 public:
  // Takes `fd` as returned by open(2); a negative one (a failed open) owns nothing.
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

}  // namespace hostmaint
