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
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

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
    std::list<std::thread> ended;
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(work));
      if (idle_ > 0) wake_.notify_one();
      ended = takeEnded();
      // An idle thread woken for earlier work may not have taken it yet: one
      // more thread whenever there is more work waiting than idle threads, so
      // work posted together runs together (up to `size`).
      if (queue_.size() > idle_ && threads_ < size_) {
        ++threads_;
        running_.emplace_back([this] { run(); });
      }
    }
    joinAll(ended);
  }

  // Waits until the work posted so far is done and every thread has ended.
  // Threads are joined, not only counted: a thread's thread-local state
  // (OpenSSL's, libvirt's) is freed as it exits, and must be before the
  // pool (or the process) goes.
  void join() {
    std::list<std::thread> ended;
    {
      std::unique_lock lock(mutex_);
      joining_ = true;
      wake_.notify_all();
      ended_.wait(lock, [this] { return threads_ == 0; });
      joining_ = false;
      ended = takeEnded();
    }
    joinAll(ended);
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
    ended_ids_.push_back(std::this_thread::get_id());
    ended_.notify_all();
  }

  // With the mutex held: the threads that left run(), to be joined outside it.
  std::list<std::thread> takeEnded() {
    std::list<std::thread> ended;
    for (const std::thread::id id : ended_ids_) {
      for (auto it = running_.begin(); it != running_.end(); ++it) {
        if (it->get_id() == id) {
          ended.splice(ended.end(), running_, it);
          break;
        }
      }
    }
    ended_ids_.clear();
    return ended;
  }

  static void joinAll(std::list<std::thread>& threads) {
    for (std::thread& thread : threads) thread.join();
  }

  const unsigned size_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable ended_;
  std::deque<std::function<void()>> queue_;
  std::list<std::thread> running_;          // started, not yet joined
  std::vector<std::thread::id> ended_ids_;  // of those, the ones that left run()
  unsigned threads_ = 0;
  unsigned idle_ = 0;
  bool joining_ = false;
};

}  // namespace hostmaint::hv::libvirt
