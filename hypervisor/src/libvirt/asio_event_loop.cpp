// libvirt's event loop on Asio (virEventRegisterImpl).
//
// libvirt calls the add/update/remove functions from any thread (a worker
// making an RPC call updates its socket's watch), so the id → record maps
// are guarded by a mutex, while every Asio object is touched only on the io
// thread through post(). Callbacks into libvirt run only on the io thread.
#include <libvirt/libvirt.h>
#include <poll.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <mutex>
#include <stdexcept>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace hostmaint::hv {
namespace asio = boost::asio;

namespace {

struct HandleWatch {
  int id = 0;
  int fd = -1;
  int events = 0;  // VIR_EVENT_HANDLE_* wanted; guarded by the loop's mutex
  virEventHandleCallback cb = nullptr;
  void* opaque = nullptr;
  virFreeCallback ff = nullptr;
  std::atomic<bool> removed{false};
  // io thread only:
  std::unique_ptr<asio::posix::stream_descriptor> descriptor;
  unsigned generation = 0;  // bumps on every re-arm; stale completions are ignored
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
  if (revents & POLLERR) out |= VIR_EVENT_HANDLE_ERROR;
  if (revents & POLLHUP) out |= VIR_EVENT_HANDLE_HANGUP;
  return out;
}

}  // namespace

class AsioEventLoopRegistration::Loop {
 public:
  explicit Loop(asio::io_context& io) : io_(io) {}

  // Handlers still queued on the io_context see `removed` and do nothing.
  ~Loop() {
    std::lock_guard lock(mutex_);
    for (auto& [id, w] : handles_) {
      w->removed = true;
      if (w->descriptor) w->descriptor->release();
    }
    for (auto& [id, t] : timeouts_) {
      t->removed = true;
      if (t->timer) t->timer->cancel();
    }
  }

  int addHandle(int fd, int events, virEventHandleCallback cb, void* opaque, virFreeCallback ff) {
    auto w = std::make_shared<HandleWatch>();
    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->opaque = opaque;
    w->ff = ff;
    {
      std::lock_guard lock(mutex_);
      w->id = next_id_++;
      handles_[w->id] = w;
    }
    asio::post(io_, [this, w] {
      if (w->removed) return;
      w->descriptor = std::make_unique<asio::posix::stream_descriptor>(io_, w->fd);
      arm(w);
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
    asio::post(io_, [this, w] {
      if (!w->removed && w->descriptor) arm(w);
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
      // The fd belongs to libvirt: release it rather than let Asio close it.
      if (w->descriptor) w->descriptor->release();
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
    asio::post(io_, [this, t] {
      if (t->removed) return;
      t->timer = std::make_unique<asio::steady_timer>(io_);
      arm(t);
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
    asio::post(io_, [this, t] {
      if (!t->removed && t->timer) arm(t);
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

  // Asio's reactor is edge-triggered, libvirt expects level-triggered
  // readiness (it may leave data unread). So before waiting, ask poll()
  // whether the fd is already ready, and dispatch at once if it is.
  void arm(const std::shared_ptr<HandleWatch>& w) {
    const unsigned gen = ++w->generation;
    w->descriptor->cancel();
    const int events = wantedEvents(*w);
    if (events == 0) return;
    pollfd pfd{w->fd, pollEvents(events), 0};
    if (::poll(&pfd, 1, 0) > 0 && pfd.revents != 0) {
      asio::post(io_, [this, w, gen] { dispatch(w, gen); });
      return;
    }
    auto on_ready = [this, w, gen](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      dispatch(w, gen);
    };
    if (events & VIR_EVENT_HANDLE_READABLE)
      w->descriptor->async_wait(asio::posix::stream_descriptor::wait_read, on_ready);
    if (events & VIR_EVENT_HANDLE_WRITABLE)
      w->descriptor->async_wait(asio::posix::stream_descriptor::wait_write, on_ready);
  }

  void dispatch(const std::shared_ptr<HandleWatch>& w, unsigned gen) {
    if (w->removed || gen != w->generation) return;
    const int events = wantedEvents(*w);
    pollfd pfd{w->fd, pollEvents(events), 0};
    const int revents = ::poll(&pfd, 1, 0) > 0 ? libvirtEvents(pfd.revents) : 0;
    if (revents != 0) w->cb(w->id, w->fd, revents, w->opaque);
    // The callback may have removed or updated (and so re-armed) the watch.
    if (!w->removed && gen == w->generation) arm(w);
  }

  void arm(const std::shared_ptr<Timeout>& t) {
    const unsigned gen = ++t->generation;
    t->timer->cancel();
    const int freq = frequency(*t);
    if (freq < 0) return;
    if (freq == 0) {
      asio::post(io_, [this, t, gen] { fire(t, gen); });
      return;
    }
    t->timer->expires_after(std::chrono::milliseconds(freq));
    t->timer->async_wait([this, t, gen](const boost::system::error_code& ec) {
      if (!ec) fire(t, gen);
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
// destructor; libvirt keeps calling these functions for the process's life.
std::atomic<AsioEventLoopRegistration::Loop*> g_loop{nullptr};

int addHandle(int fd, int events, virEventHandleCallback cb, void* opaque, virFreeCallback ff) {
  auto* loop = g_loop.load();
  return loop ? loop->addHandle(fd, events, cb, opaque, ff) : -1;
}
void updateHandle(int id, int events) {
  if (auto* loop = g_loop.load()) loop->updateHandle(id, events);
}
int removeHandle(int id) {
  auto* loop = g_loop.load();
  return loop ? loop->removeHandle(id) : -1;
}
int addTimeout(int frequency, virEventTimeoutCallback cb, void* opaque, virFreeCallback ff) {
  auto* loop = g_loop.load();
  return loop ? loop->addTimeout(frequency, cb, opaque, ff) : -1;
}
void updateTimeout(int id, int frequency) {
  if (auto* loop = g_loop.load()) loop->updateTimeout(id, frequency);
}
int removeTimeout(int id) {
  auto* loop = g_loop.load();
  return loop ? loop->removeTimeout(id) : -1;
}

}  // namespace

AsioEventLoopRegistration::AsioEventLoopRegistration(std::unique_ptr<Loop> loop)
    : loop_(std::move(loop)) {}

AsioEventLoopRegistration::~AsioEventLoopRegistration() {
  Loop* expected = loop_.get();
  g_loop.compare_exchange_strong(expected, nullptr);
}

std::unique_ptr<AsioEventLoopRegistration> installAsioEventLoop(asio::io_context& io) {
  auto loop = std::make_unique<AsioEventLoopRegistration::Loop>(io);
  AsioEventLoopRegistration::Loop* expected = nullptr;
  if (!g_loop.compare_exchange_strong(expected, loop.get()))
    throw std::logic_error("libvirt's event loop is already installed in this process");
  virEventRegisterImpl(addHandle, updateHandle, removeHandle, addTimeout, updateTimeout,
                       removeTimeout);
  return std::make_unique<AsioEventLoopRegistration>(std::move(loop));
}

}  // namespace hostmaint::hv
