#include "hostmaint/agent/service/asio_sd_bus.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace hostmaint::service {
namespace {

std::string errnoText(int negative_errno) { return std::strerror(-negative_errno); }

std::string withoutGuid(std::string address) {
  const auto guid = address.find(",guid=");
  if (guid != std::string::npos) address.erase(guid);
  return address;
}

}  // namespace

std::string systemBusAddress() {
  const char* from_env = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
  return withoutGuid(from_env && *from_env ? from_env : "unix:path=/run/dbus/system_bus_socket");
}

BusPtr openSystemBus() {
  sd_bus* raw = nullptr;
  const int result = sd_bus_open_system(&raw);
  BusPtr bus(raw);
  if (result < 0)
    throw BusSetupError("cannot connect to the system bus at " + systemBusAddress() + ": " +
                        errnoText(result));
  return bus;
}

BusPtr openBusAt(const std::string& address) {
  sd_bus* raw = nullptr;
  int result = sd_bus_new(&raw);
  BusPtr bus(raw);
  if (result >= 0) result = sd_bus_set_address(raw, address.c_str());
  if (result >= 0) result = sd_bus_set_bus_client(raw, 1);
  if (result >= 0) result = sd_bus_start(raw);
  if (result < 0)
    throw BusSetupError("cannot connect to the bus at " + withoutGuid(address) + ": " +
                        errnoText(result));
  return bus;
}

void requestBusName(sd_bus* bus, const std::string& name) {
  // No flags: neither replace an owner nor queue behind one. A second daemon
  // must fail loudly instead of waiting in line.
  const int result = sd_bus_request_name(bus, name.c_str(), 0);
  if (result == -EEXIST)
    throw BusSetupError("cannot own the bus name " + name +
                        ": it is already owned (is another hostmaintd running?)");
  if (result == -EACCES || result == -EPERM)
    throw BusSetupError("cannot own the bus name " + name +
                        ": the bus policy does not allow it (install "
                        "systemd/org.hostmaint.Agent1.conf and run as root)");
  if (result < 0) throw BusSetupError("cannot own the bus name " + name + ": " + errnoText(result));
}

struct BusDispatcher::State : std::enable_shared_from_this<BusDispatcher::State> {
  State(boost::asio::io_context& io, sd_bus* bus_in, std::function<void()> on_disconnect_in)
      : bus(bus_in),
        descriptor(io, sd_bus_get_fd(bus_in)),
        timer(io),
        on_disconnect(std::move(on_disconnect_in)) {}

  ~State() {
    // The fd belongs to sd-bus; asio must not close it.
    boost::system::error_code ignored;
    descriptor.cancel(ignored);
    descriptor.release();
  }

  sd_bus* bus;
  boost::asio::posix::stream_descriptor descriptor;
  boost::asio::steady_timer timer;
  std::function<void()> on_disconnect;
  bool read_pending = false;
  bool write_pending = false;
  bool disconnected = false;

  void process() {
    if (disconnected) return;
    int result = 0;
    do {
      result = sd_bus_process(bus, nullptr);
    } while (result > 0);
    if (result < 0) {
      disconnected = true;
      spdlog::error("lost the connection to the D-Bus bus: {}", errnoText(result));
      boost::system::error_code ignored;
      descriptor.cancel(ignored);
      timer.cancel();
      if (on_disconnect) on_disconnect();
      return;
    }
    arm();
  }

  void arm() {
    if (disconnected) return;
    std::weak_ptr<State> weak = weak_from_this();
    const int events = sd_bus_get_events(bus);
    if (events < 0) {
      // Only fails on a closed connection; the next process() reports it.
      return;
    }
    if (!read_pending) {
      read_pending = true;
      descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                            [weak](const boost::system::error_code& error) {
                              auto self = weak.lock();
                              if (!self) return;
                              self->read_pending = false;
                              if (error == boost::asio::error::operation_aborted) return;
                              self->process();
                            });
    }
    if ((events & POLLOUT) != 0 && !write_pending) {
      write_pending = true;
      descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                            [weak](const boost::system::error_code& error) {
                              auto self = weak.lock();
                              if (!self) return;
                              self->write_pending = false;
                              if (error == boost::asio::error::operation_aborted) return;
                              self->process();
                            });
    }
    std::uint64_t usec = 0;
    if (sd_bus_get_timeout(bus, &usec) >= 0 && usec != UINT64_MAX) {
      // sd-bus gives an absolute CLOCK_MONOTONIC time, steady_clock's clock on Linux.
      timer.expires_at(std::chrono::steady_clock::time_point(std::chrono::microseconds(usec)));
      timer.async_wait([weak](const boost::system::error_code& error) {
        if (error == boost::asio::error::operation_aborted) return;
        if (auto self = weak.lock()) self->process();
      });
    } else {
      timer.cancel();
    }
  }
};

BusDispatcher::BusDispatcher(boost::asio::io_context& io, sd_bus* bus,
                             std::function<void()> on_disconnect)
    : state_(std::make_shared<State>(io, bus, std::move(on_disconnect))) {
  // Messages may already be queued (the Hello reply, calls that arrived
  // while the object was registered); handle them on the loop.
  state_->process();
}

BusDispatcher::~BusDispatcher() = default;

void BusDispatcher::kick() {
  // Posted, not run here: kick() may be called from inside a bus callback,
  // and sd_bus_process refuses to recurse.
  std::weak_ptr<State> weak = state_;
  boost::asio::post(state_->timer.get_executor(), [weak] {
    if (auto self = weak.lock()) self->process();
  });
}

}  // namespace hostmaint::service
