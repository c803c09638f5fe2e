// libvirt's event loop on Asio, driven through libvirt's own public
// virEvent* entry points (which dispatch to the registered implementation).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <functional>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace {

using namespace std::chrono_literals;
namespace hv = hostmaint::hv;

// libvirt keeps an event implementation for the life of the process, so the
// io_context it runs on lives as long as the test binary.
boost::asio::io_context& loopIo() {
  static boost::asio::io_context io;
  static auto registration = hv::installAsioEventLoop(io);
  return io;
}

bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
  auto& io = loopIo();
  auto guard = boost::asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(5ms);
  }
  return true;
}

// Runs the loop for a while; for asserting that something does NOT happen.
// Returns how many handlers ran, so a test can tell an idle loop from a
// spinning one.
std::size_t runFor(std::chrono::milliseconds span) {
  auto& io = loopIo();
  auto guard = boost::asio::make_work_guard(io);
  io.restart();
  return io.run_for(span);
}

struct Pipe {
  std::array<int, 2> fds{-1, -1};
  Pipe() { EXPECT_EQ(::pipe(fds.data()), 0); }
  ~Pipe() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

struct HandleLog {
  int calls = 0;
  int last_events = 0;
  int freed = 0;
  bool consume_one_byte = true;
};

void onHandle(int, int fd, int events, void* opaque) {
  auto* log = static_cast<HandleLog*>(opaque);
  ++log->calls;
  log->last_events = events;
  char byte = 0;
  if (log->consume_one_byte && (events & VIR_EVENT_HANDLE_READABLE)) {
    ASSERT_EQ(::read(fd, &byte, 1), 1);
  }
}

void freeHandleLog(void* opaque) { ++static_cast<HandleLog*>(opaque)->freed; }

struct TimerLog {
  int fired = 0;
  int freed = 0;
};
void onTimer(int, void* opaque) { ++static_cast<TimerLog*>(opaque)->fired; }
void freeTimerLog(void* opaque) { ++static_cast<TimerLog*>(opaque)->freed; }

TEST(LibvirtEventLoop, InstallingTwiceIsRefused) {
  loopIo();
  boost::asio::io_context other;
  EXPECT_THROW(hv::installAsioEventLoop(other), std::logic_error);
}

TEST(LibvirtEventLoop, PipeWatchFiresReadableUntilDrainedThenRemovalFreesLater) {
  loopIo();
  Pipe pipe;
  HandleLog log;
  const int id = virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &log,
                                   freeHandleLog);
  ASSERT_GT(id, 0);
  runFor(20ms);
  EXPECT_EQ(log.calls, 0) << "nothing written yet";

  ASSERT_EQ(::write(pipe.fds[1], "ab", 2), 2);
  // Level-triggered: one byte consumed per callback, so two callbacks.
  ASSERT_TRUE(runUntil([&] { return log.calls >= 2; }));
  EXPECT_TRUE(log.last_events & VIR_EVENT_HANDLE_READABLE);
  runFor(20ms);
  EXPECT_EQ(log.calls, 2) << "drained pipe must not fire again";

  ASSERT_EQ(virEventRemoveHandle(id), 0);
  EXPECT_EQ(log.freed, 0) << "the free callback must not run inside libvirt's call";
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
  ASSERT_EQ(::write(pipe.fds[1], "c", 1), 1);
  runFor(20ms);
  EXPECT_EQ(log.calls, 2) << "a removed watch never fires";
  EXPECT_EQ(virEventRemoveHandle(id), -1);
}

TEST(LibvirtEventLoop, UpdatingAWatchToNoEventsSilencesIt) {
  loopIo();
  Pipe pipe;
  HandleLog log;
  log.consume_one_byte = false;
  const int id = virEventAddHandle(pipe.fds[0], 0, onHandle, &log, freeHandleLog);
  ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);
  runFor(20ms);
  EXPECT_EQ(log.calls, 0);
  virEventUpdateHandle(id, VIR_EVENT_HANDLE_READABLE);
  ASSERT_TRUE(runUntil([&] { return log.calls >= 1; }));
  virEventUpdateHandle(id, 0);
  runFor(5ms);
  const int calls = log.calls;
  runFor(20ms);
  EXPECT_EQ(log.calls, calls);
  virEventRemoveHandle(id);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
}

TEST(LibvirtEventLoop, HangupIsReported) {
  loopIo();
  Pipe pipe;
  HandleLog log;
  log.consume_one_byte = false;
  const int id =
      virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog);
  ::close(pipe.fds[1]);
  pipe.fds[1] = -1;
  ASSERT_TRUE(runUntil([&] { return log.calls >= 1; }));
  EXPECT_TRUE(log.last_events & VIR_EVENT_HANDLE_HANGUP);
  virEventRemoveHandle(id);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
}

TEST(LibvirtEventLoop, PeriodicTimeoutRepeatsUntilDisabledAndRemovalFrees) {
  loopIo();
  TimerLog log;
  const int id = virEventAddTimeout(5, onTimer, &log, freeTimerLog);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(runUntil([&] { return log.fired >= 3; }));

  virEventUpdateTimeout(id, -1);
  runFor(5ms);
  const int fired = log.fired;
  runFor(30ms);
  EXPECT_EQ(log.fired, fired) << "frequency -1 disables the timeout";

  virEventUpdateTimeout(id, 0);  // as soon as possible, repeatedly
  ASSERT_TRUE(runUntil([&] { return log.fired >= fired + 5; }));

  ASSERT_EQ(virEventRemoveTimeout(id), 0);
  EXPECT_EQ(log.freed, 0);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
  const int after = log.fired;
  runFor(20ms);
  EXPECT_EQ(log.fired, after);
}

TEST(LibvirtEventLoop, TheSameDescriptorWatchedTwiceFiresBothWatches) {
  loopIo();
  Pipe pipe;
  HandleLog first, second;
  first.consume_one_byte = second.consume_one_byte = false;
  const int a =
      virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &first, freeHandleLog);
  const int b =
      virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &second, freeHandleLog);
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);
  // Registering one fd twice with epoll fails (EEXIST); that must neither
  // throw out of io.run() nor silence the second watch.
  ASSERT_NO_THROW(EXPECT_TRUE(runUntil([&] { return first.calls >= 1 && second.calls >= 1; })));
  virEventRemoveHandle(a);
  virEventRemoveHandle(b);
  ASSERT_TRUE(runUntil([&] { return first.freed == 1 && second.freed == 1; }));
}

TEST(LibvirtEventLoop, AClosedDescriptorIsRefusedAtOnce) {
  loopIo();
  int fd = -1;
  {
    Pipe pipe;
    fd = pipe.fds[0];
  }
  HandleLog log;
  EXPECT_EQ(virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog), -1);
  ASSERT_NO_THROW(runFor(20ms));
  EXPECT_EQ(log.calls, 0);
  EXPECT_EQ(log.freed, 0) << "libvirt frees the opaque itself when adding fails";
}

TEST(LibvirtEventLoop, ARegularFileIsAlwaysReadable) {
  loopIo();
  char path[] = "/tmp/hostmaint-event-loop-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  HandleLog log;
  log.consume_one_byte = false;
  const int id = virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog);
  ASSERT_GT(id, 0);
  ASSERT_NO_THROW(EXPECT_TRUE(runUntil([&] { return log.calls >= 2; })));
  EXPECT_TRUE(log.last_events & VIR_EVENT_HANDLE_READABLE);
  virEventRemoveHandle(id);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
  ::close(fd);
}

TEST(LibvirtEventLoop, ADescriptorClosedBeforeItsWatchIsRemovedDoesNotSpinTheLoop) {
  loopIo();
  Pipe pipe;
  HandleLog log;
  log.consume_one_byte = false;
  const int id =
      virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog);
  runFor(5ms);
  ::close(pipe.fds[0]);
  pipe.fds[0] = -1;
  // libvirt re-arms its watches at any time (a worker's RPC call does).
  virEventUpdateHandle(id, VIR_EVENT_HANDLE_READABLE);
  // Nothing is ready, so an idle loop runs a handful of handlers at most; a
  // loop that re-arms on POLLNVAL runs thousands.
  EXPECT_LT(runFor(50ms), 20u);
  virEventRemoveHandle(id);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
}

TEST(LibvirtEventLoop, WatchingLeavesTheDescriptorsBlockingModeAlone) {
  loopIo();
  Pipe pipe;
  ASSERT_EQ(::fcntl(pipe.fds[0], F_GETFL) & O_NONBLOCK, 0);
  HandleLog log;
  const int id =
      virEventAddHandle(pipe.fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog);
  runFor(10ms);
  ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);
  ASSERT_TRUE(runUntil([&] { return log.calls >= 1; }));
  EXPECT_EQ(::fcntl(pipe.fds[0], F_GETFL) & O_NONBLOCK, 0)
      << "libvirt's fd must stay blocking: its reads would fail with EAGAIN";
  virEventRemoveHandle(id);
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
}

// libvirt closes its fd right after removing the watch; the number may be
// reused (by another Asio user on the same io_context) before the loop has
// dropped the watch. Dropping it must not unregister the newcomer.
TEST(LibvirtEventLoop, ARemovedWatchDoesNotUnregisterTheNextUserOfItsFdNumber) {
  auto& io = loopIo();
  auto old_pipe = std::make_unique<Pipe>();
  HandleLog log;
  const int reused = old_pipe->fds[0];
  const int id =
      virEventAddHandle(old_pipe->fds[0], VIR_EVENT_HANDLE_READABLE, onHandle, &log, freeHandleLog);
  runFor(10ms);
  ASSERT_EQ(virEventRemoveHandle(id), 0);
  old_pipe.reset();  // as libvirt does, before the loop has run again
  Pipe pipe;
  ASSERT_EQ(pipe.fds[0], reused) << "the test needs the lowest free fd number back";
  boost::asio::posix::stream_descriptor newcomer(io, pipe.fds[0]);
  bool ready = false;
  newcomer.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [&](const boost::system::error_code& ec) { ready = !ec; });
  ASSERT_TRUE(runUntil([&] { return log.freed == 1; }));
  ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);
  EXPECT_TRUE(runUntil([&] { return ready; }, 1s));
  newcomer.release();
}

}  // namespace
