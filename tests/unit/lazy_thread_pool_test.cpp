// The libvirt layer's thread pool: threads only while there is work, work
// posted together runs together, join() waits for all of it.
#include "libvirt/lazy_thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hostmaint::hv::libvirt {
namespace {

using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(LazyThreadPool, StartsNoThreadBeforeWorkAndEndsThemWhenIdle) {
  LazyThreadPool pool(4, 50ms);
  EXPECT_EQ(pool.threads(), 0u);
  std::atomic<int> done = 0;
  pool.post([&] { ++done; });
  EXPECT_TRUE(eventually([&] { return done == 1; }));
  EXPECT_TRUE(eventually([&] { return pool.threads() == 0; })) << "the thread outlived its idle time";
}

// Four items posted at once while one thread is idle all run at the same
// time: none waits behind another (a drain's actions must not serialise).
TEST(LazyThreadPool, WorkPostedTogetherRunsTogether) {
  LazyThreadPool pool(4, 10s);
  pool.post([] {});
  ASSERT_TRUE(eventually([&] { return pool.threads() == 1; }));
  std::this_thread::sleep_for(20ms);  // that thread is idle now
  std::mutex mutex;
  std::condition_variable all_in;
  int running = 0;
  std::atomic<int> met = 0;
  for (int i = 0; i < 4; ++i) {
    pool.post([&] {
      std::unique_lock lock(mutex);
      ++running;
      all_in.notify_all();
      if (all_in.wait_for(lock, 5s, [&] { return running == 4; })) ++met;
    });
  }
  pool.join();
  EXPECT_EQ(met, 4) << "the four items did not all run at once";
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(LazyThreadPool, NeverMoreThreadsThanItsSizeAndAPoolOfOneKeepsTheOrder) {
  LazyThreadPool pool(1, 10s);
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) pool.post([&order, i] { order.push_back(i); });
  EXPECT_LE(pool.threads(), 1u);
  pool.join();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(LazyThreadPool, JoinWaitsForWorkPostedBeforeIt) {
  std::atomic<int> done = 0;
  {
    LazyThreadPool pool(2, 10s);
    for (int i = 0; i < 10; ++i) pool.post([&] {
      std::this_thread::sleep_for(5ms);
      ++done;
    });
  }  // the destructor joins
  EXPECT_EQ(done, 10);
}

}  // namespace
}  // namespace hostmaint::hv::libvirt
