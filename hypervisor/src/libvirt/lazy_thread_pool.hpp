// A pool of at most `size` threads that exist only while there is work for
// them: a thread starts when work is posted and no thread is idle, and ends
// after `idle_timeout` without work. An idle daemon (no maintenance, no event)
// keeps no thread that only waits; under a drain the threads stay for the
// next action. Work runs in the order it was posted, one item per thread
// (a pool of one runs it strictly in order).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace hostmaint::hv::libvirt {

class LazyThreadPool {
 public:
  explicit LazyThreadPool(unsigned size,
                          std::chrono::milliseconds idle_timeout = std::chrono::seconds(10))
      : size_(size == 0 ? 1 : size), idle_timeout_(idle_timeout) {}
  LazyThreadPool(const LazyThreadPool&) = delete;
  LazyThreadPool& operator=(const LazyThreadPool&) = delete;
  ~LazyThreadPool() { join(); }

  void post(std::function<void()> work) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(work));
    if (idle_ > 0) wake_.notify_one();
    // An idle thread woken for earlier work may not have taken it yet: one
    // more thread whenever there is more work waiting than idle threads, so
    // work posted together runs together (up to `size`).
    if (queue_.size() <= idle_ || threads_ >= size_) return;
    ++threads_;
    // Detached: a thread that ends leaves nothing to join; join() waits for
    // the count instead, and a thread touches the pool for the last time
    // while it holds the mutex.
    std::thread([this] { run(); }).detach();
  }

  // Waits until the work posted so far is done and every thread has ended.
  void join() {
    std::unique_lock lock(mutex_);
    joining_ = true;
    wake_.notify_all();
    ended_.wait(lock, [this] { return threads_ == 0; });
    joining_ = false;
  }

  unsigned threads() const {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (queue_.empty()) {
        if (joining_) break;
        ++idle_;
        const bool woken = wake_.wait_for(lock, idle_timeout_,
                                          [this] { return !queue_.empty() || joining_; });
        --idle_;
        if (!woken) break;  // idle for the whole timeout
        continue;
      }
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work();
      work = nullptr;  // what it holds goes before the pool may be gone
      lock.lock();
    }
    --threads_;
    ended_.notify_all();
  }

  const unsigned size_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable ended_;
  std::deque<std::function<void()>> queue_;
  unsigned threads_ = 0;
  unsigned idle_ = 0;
  bool joining_ = false;
};

}  // namespace hostmaint::hv::libvirt
