// libvirt's event loop on Asio (virEventRegisterImpl).
//
// libvirt calls the add/update/remove functions from any thread (a worker
// making an RPC call updates its socket's watch), so the id → record maps
// are guarded by a mutex, while every Asio object is touched only on the io
// thread through post(). Callbacks into libvirt run only on the io thread.
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace hostmaint::hv {
namespace asio = boost::asio;

namespace {

// Closes a descriptor the loop owns until Asio takes it over.
class OwnedFd {
 public:
  explicit OwnedFd(int fd = -1) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// A watch waits on its own duplicate of libvirt's descriptor, never on
// libvirt's number: libvirt closes its fd right after removeHandle, before the
// io thread has dropped the watch, and the number may by then belong to
// someone else (unregistering it from epoll would silence them). The
// duplicate keeps the open file alive until the io thread closes it.
struct HandleWatch {
  int id = 0;
  int fd = -1;  // libvirt's number, passed back to its callback only
  OwnedFd dup;  // ours until `descriptor` takes it over
  // The file status flags libvirt's fd had: they are shared with the dup, and
  // Asio makes a descriptor non-blocking before its first wait.
  int status_flags = 0;
  int events = 0;  // VIR_EVENT_HANDLE_* wanted; guarded by the loop's mutex
  virEventHandleCallback cb = nullptr;
  void* opaque = nullptr;
  virFreeCallback ff = nullptr;
  std::atomic<bool> removed{false};
  // io thread only:
  std::unique_ptr<asio::posix::stream_descriptor> descriptor;
  bool waited = false;      // Asio has set (and we have undone) O_NONBLOCK
  unsigned generation = 0;  // bumps on every re-arm; stale completions are ignored
  int watched_fd() const { return descriptor ? descriptor->native_handle() : dup.get(); }
};

struct Timeout {
  int id = 0;
  int frequency_ms = -1;  // guarded by the loop's mutex
  virEventTimeoutCallback cb = nullptr;
  void* opaque = nullptr;
  virFreeCallback ff = nullptr;
  std::atomic<bool> removed{false};
  // io thread only:
  std::unique_ptr<asio::steady_timer> timer;
  unsigned generation = 0;
};

short pollEvents(int events) {
  short out = 0;
  if (events & VIR_EVENT_HANDLE_READABLE) out |= POLLIN;
  if (events & VIR_EVENT_HANDLE_WRITABLE) out |= POLLOUT;
  return out;
}

int libvirtEvents(short revents) {
  int out = 0;
  if (revents & POLLIN) out |= VIR_EVENT_HANDLE_READABLE;
  if (revents & POLLOUT) out |= VIR_EVENT_HANDLE_WRITABLE;
  // POLLNVAL too: libvirt's own poll loop reports an invalid fd as an error.
  if (revents & (POLLERR | POLLNVAL)) out |= VIR_EVENT_HANDLE_ERROR;
  if (revents & POLLHUP) out |= VIR_EVENT_HANDLE_HANGUP;
  return out;
}

}  // namespace

// Shared by the registration (until it is destroyed) and, weakly, by every
// handler queued on the io_context: a handler that runs after the
// registration is gone finds no loop and does nothing.
class AsioEventLoopRegistration::Loop : public std::enable_shared_from_this<Loop> {
 public:
  explicit Loop(asio::io_context& io) : io_(io) {}

  // Stops every watch and timer. Their Asio objects are dropped on the io
  // thread (they may be in use there right now); libvirt's free callbacks do
  // not run, as libvirt's own loop does not run them once it stops either.
  void stop() {
    std::map<int, std::shared_ptr<HandleWatch>> handles;
    std::map<int, std::shared_ptr<Timeout>> timeouts;
    {
      std::lock_guard lock(mutex_);
      handles.swap(handles_);
      timeouts.swap(timeouts_);
    }
    for (auto& [id, w] : handles) w->removed = true;
    for (auto& [id, t] : timeouts) t->removed = true;
    asio::post(io_, [handles = std::move(handles), timeouts = std::move(timeouts)] {
      for (auto& [id, w] : handles) w->descriptor.reset();
      for (auto& [id, t] : timeouts)
        if (t->timer) t->timer->cancel();
    });
  }

  int addHandle(int fd, int events, virEventHandleCallback cb, void* opaque, virFreeCallback ff) {
    auto w = std::make_shared<HandleWatch>();
    w->fd = fd;
    // On libvirt's thread, while its fd is certainly still open.
    w->dup = OwnedFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (w->dup.get() < 0) {
      spdlog::error("libvirt asked to watch fd {}, which cannot be duplicated: {}", fd,
                    std::strerror(errno));
      return -1;  // libvirt then frees `opaque` itself
    }
    w->status_flags = ::fcntl(w->dup.get(), F_GETFL);
    w->events = events;
    w->cb = cb;
    w->opaque = opaque;
    w->ff = ff;
    {
      std::lock_guard lock(mutex_);
      w->id = next_id_++;
      handles_[w->id] = w;
    }
    asio::post(io_, [alive = weak_from_this(), w] {
      auto self = alive.lock();
      if (!self || w->removed) return;
      self->startWatching(w);
    });
    return w->id;
  }

  void updateHandle(int id, int events) {
    std::shared_ptr<HandleWatch> w;
    {
      std::lock_guard lock(mutex_);
      auto it = handles_.find(id);
      if (it == handles_.end()) return;
      w = it->second;
      w->events = events;
    }
    asio::post(io_, [alive = weak_from_this(), w] {
      auto self = alive.lock();
      if (self && !w->removed && w->descriptor) self->arm(w);
    });
  }

  int removeHandle(int id) {
    std::shared_ptr<HandleWatch> w;
    {
      std::lock_guard lock(mutex_);
      auto it = handles_.find(id);
      if (it == handles_.end()) return -1;
      w = it->second;
      handles_.erase(it);
    }
    w->removed = true;
    // libvirt may hold its own locks here: the free callback runs later.
    asio::post(io_, [w] {
      // Closes our dup (unregistering it first); libvirt's fd is libvirt's.
      w->descriptor.reset();
      if (w->ff) w->ff(w->opaque);
    });
    return 0;
  }

  int addTimeout(int frequency, virEventTimeoutCallback cb, void* opaque, virFreeCallback ff) {
    auto t = std::make_shared<Timeout>();
    t->frequency_ms = frequency;
    t->cb = cb;
    t->opaque = opaque;
    t->ff = ff;
    {
      std::lock_guard lock(mutex_);
      t->id = next_id_++;
      timeouts_[t->id] = t;
    }
    asio::post(io_, [alive = weak_from_this(), t] {
      auto self = alive.lock();
      if (!self || t->removed) return;
      t->timer = std::make_unique<asio::steady_timer>(self->io_);
      self->arm(t);
    });
    return t->id;
  }

  void updateTimeout(int id, int frequency) {
    std::shared_ptr<Timeout> t;
    {
      std::lock_guard lock(mutex_);
      auto it = timeouts_.find(id);
      if (it == timeouts_.end()) return;
      t = it->second;
      t->frequency_ms = frequency;
    }
    asio::post(io_, [alive = weak_from_this(), t] {
      auto self = alive.lock();
      if (self && !t->removed && t->timer) self->arm(t);
    });
  }

  int removeTimeout(int id) {
    std::shared_ptr<Timeout> t;
    {
      std::lock_guard lock(mutex_);
      auto it = timeouts_.find(id);
      if (it == timeouts_.end()) return -1;
      t = it->second;
      timeouts_.erase(it);
    }
    t->removed = true;
    asio::post(io_, [t] {
      if (t->timer) t->timer->cancel();
      if (t->ff) t->ff(t->opaque);
    });
    return 0;
  }

 private:
  int wantedEvents(const HandleWatch& w) {
    std::lock_guard lock(mutex_);
    return w.events;
  }
  int frequency(const Timeout& t) {
    std::lock_guard lock(mutex_);
    return t.frequency_ms;
  }

  // Hands the dup to Asio. Registration can still fail (epoll's limits); then
  // libvirt hears an error on the watch, as from poll(), and the io thread
  // goes on: nothing may throw out of io.run().
  void startWatching(const std::shared_ptr<HandleWatch>& w) {
    auto descriptor = std::make_unique<asio::posix::stream_descriptor>(io_);
    boost::system::error_code ec;
    descriptor->assign(w->dup.get(), ec);
    if (ec) {
      spdlog::error("cannot watch libvirt's fd {} (as fd {}): {}", w->fd, w->dup.get(),
                    ec.message());
      w->cb(w->id, w->fd, VIR_EVENT_HANDLE_ERROR, w->opaque);
      return;
    }
    w->dup.release();
    w->descriptor = std::move(descriptor);
    arm(w);
  }

  // Asio's wait_read/wait_write do no I/O, yet Asio 1.74's start_op sets
  // FIONBIO on a descriptor before its first wait (and never resets it). The
  // flag lives in the open file, which libvirt shares: put back what libvirt
  // had right after the first wait is queued. Asio then remembers the
  // descriptor as non-blocking and does not set it again.
  void restoreStatusFlags(HandleWatch& w) {
    if (w.waited) return;
    w.waited = true;
    if (w.status_flags >= 0 && !(w.status_flags & O_NONBLOCK))
      ::fcntl(w.descriptor->native_handle(), F_SETFL, w.status_flags);
  }

  // Asio's reactor is edge-triggered, libvirt expects level-triggered
  // readiness (it may leave data unread). So before waiting, ask poll()
  // whether the fd is already ready, and dispatch at once if it is.
  void arm(const std::shared_ptr<HandleWatch>& w) {
    const unsigned gen = ++w->generation;
    w->descriptor->cancel();
    const int events = wantedEvents(*w);
    if (events == 0) return;
    pollfd pfd{w->watched_fd(), pollEvents(events), 0};
    if (::poll(&pfd, 1, 0) > 0 && pfd.revents != 0) {
      asio::post(io_, [alive = weak_from_this(), w, gen] {
        if (auto self = alive.lock()) self->dispatch(w, gen);
      });
      return;
    }
    auto on_ready = [alive = weak_from_this(), w, gen](const boost::system::error_code& ec) {
      auto self = alive.lock();
      if (!self || ec == asio::error::operation_aborted) return;
      self->dispatch(w, gen);
    };
    if (events & VIR_EVENT_HANDLE_READABLE)
      w->descriptor->async_wait(asio::posix::stream_descriptor::wait_read, on_ready);
    if (events & VIR_EVENT_HANDLE_WRITABLE)
      w->descriptor->async_wait(asio::posix::stream_descriptor::wait_write, on_ready);
    restoreStatusFlags(*w);
  }

  void dispatch(const std::shared_ptr<HandleWatch>& w, unsigned gen) {
    if (w->removed || gen != w->generation) return;
    const int events = wantedEvents(*w);
    pollfd pfd{w->watched_fd(), pollEvents(events), 0};
    const short revents = ::poll(&pfd, 1, 0) > 0 ? pfd.revents : 0;
    if (revents != 0) w->cb(w->id, w->fd, libvirtEvents(revents), w->opaque);
    // The callback may have removed or updated (and so re-armed) the watch.
    if (w->removed || gen != w->generation) return;
    // An invalid fd stays invalid: re-arming would spin the io thread. It
    // waits for libvirt to update or remove the watch.
    if (revents & POLLNVAL) {
      spdlog::error("libvirt's watch {} on fd {} has an invalid descriptor", w->id, w->fd);
      return;
    }
    arm(w);
  }

  void arm(const std::shared_ptr<Timeout>& t) {
    const unsigned gen = ++t->generation;
    t->timer->cancel();
    const int freq = frequency(*t);
    if (freq < 0) return;
    if (freq == 0) {
      asio::post(io_, [alive = weak_from_this(), t, gen] {
        if (auto self = alive.lock()) self->fire(t, gen);
      });
      return;
    }
    t->timer->expires_after(std::chrono::milliseconds(freq));
    t->timer->async_wait([alive = weak_from_this(), t, gen](const boost::system::error_code& ec) {
      auto self = alive.lock();
      if (self && !ec) self->fire(t, gen);
    });
  }

  void fire(const std::shared_ptr<Timeout>& t, unsigned gen) {
    if (t->removed || gen != t->generation) return;
    t->cb(t->id, t->opaque);
    if (!t->removed && gen == t->generation) arm(t);
  }

  asio::io_context& io_;
  std::mutex mutex_;
  int next_id_ = 1;
  std::map<int, std::shared_ptr<HandleWatch>> handles_;
  std::map<int, std::shared_ptr<Timeout>> timeouts_;
};

namespace {

// The one static: virEventRegisterImpl takes plain C functions with no user
// data, so they can reach the Asio loop only through a process-wide pointer.
// It is set by installAsioEventLoop and cleared by the registration's
// destructor; libvirt keeps calling these functions, from any thread, for the
// process's life. Each call takes its own reference, so a registration
// destroyed meanwhile cannot free the loop under it.
struct InstalledLoop {
  std::mutex mutex;
  std::shared_ptr<AsioEventLoopRegistration::Loop> loop;
};
InstalledLoop& installed() {
  static InstalledLoop instance;
  return instance;
}
std::shared_ptr<AsioEventLoopRegistration::Loop> currentLoop() {
  auto& g = installed();
  std::lock_guard lock(g.mutex);
  return g.loop;
}

int addHandle(int fd, int events, virEventHandleCallback cb, void* opaque, virFreeCallback ff) {
  auto loop = currentLoop();
  return loop ? loop->addHandle(fd, events, cb, opaque, ff) : -1;
}
void updateHandle(int id, int events) {
  if (auto loop = currentLoop()) loop->updateHandle(id, events);
}
int removeHandle(int id) {
  auto loop = currentLoop();
  return loop ? loop->removeHandle(id) : -1;
}
int addTimeout(int frequency, virEventTimeoutCallback cb, void* opaque, virFreeCallback ff) {
  auto loop = currentLoop();
  return loop ? loop->addTimeout(frequency, cb, opaque, ff) : -1;
}
void updateTimeout(int id, int frequency) {
  if (auto loop = currentLoop()) loop->updateTimeout(id, frequency);
}
int removeTimeout(int id) {
  auto loop = currentLoop();
  return loop ? loop->removeTimeout(id) : -1;
}

}  // namespace

AsioEventLoopRegistration::AsioEventLoopRegistration(std::shared_ptr<Loop> loop)
    : loop_(std::move(loop)) {}

AsioEventLoopRegistration::~AsioEventLoopRegistration() {
  {
    auto& g = installed();
    std::lock_guard lock(g.mutex);
    if (g.loop == loop_) g.loop.reset();
  }
  loop_->stop();
}

std::unique_ptr<AsioEventLoopRegistration> installAsioEventLoop(asio::io_context& io) {
  auto loop = std::make_shared<AsioEventLoopRegistration::Loop>(io);
  {
    auto& g = installed();
    std::lock_guard lock(g.mutex);
    if (g.loop)
      throw std::logic_error("libvirt's event loop is already installed in this process");
    g.loop = loop;
  }
  virEventRegisterImpl(addHandle, updateHandle, removeHandle, addTimeout, updateTimeout,
                       removeTimeout);
  return std::make_unique<AsioEventLoopRegistration>(std::move(loop));
}

}  // namespace hostmaint::hv
