// sd-bus on Boost.Asio: RAII owners for sd-bus handles, opening the bus, and
// BusDispatcher, which lets the daemon's one io_context drive a bus
// connection (its fd, its wanted events and its timeout) so method calls and
// signals are handled on the loop that owns all state.
#pragma once

#include <systemd/sd-bus.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace hostmaint::service {

struct BusCloser {
  // Flush first: a reply or signal queued just before closing still goes out.
  void operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }
};
struct SlotUnref {
  void operator()(sd_bus_slot* slot) const { sd_bus_slot_unref(slot); }
};
struct MessageUnref {
  void operator()(sd_bus_message* message) const { sd_bus_message_unref(message); }
};
struct CredsUnref {
  void operator()(sd_bus_creds* creds) const { sd_bus_creds_unref(creds); }
};
using BusPtr = std::unique_ptr<sd_bus, BusCloser>;
using SlotPtr = std::unique_ptr<sd_bus_slot, SlotUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;
using CredsPtr = std::unique_ptr<sd_bus_creds, CredsUnref>;

// Owns an sd_bus_error; freed whatever path is taken.
class BusError {
 public:
  BusError() = default;
  BusError(const BusError&) = delete;
  BusError& operator=(const BusError&) = delete;
  ~BusError() { sd_bus_error_free(&error_); }
  sd_bus_error* get() { return &error_; }
  bool isSet() const { return sd_bus_error_is_set(&error_) != 0; }
  std::string name() const { return error_.name ? error_.name : ""; }
  std::string message() const { return error_.message ? error_.message : ""; }

 private:
  sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

// Connecting, registering or owning a name failed; the message says which
// bus and why.
class BusSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The system bus (sd_bus_open_system honours $DBUS_SYSTEM_BUS_ADDRESS).
BusPtr openSystemBus();
// A bus at an explicit address, as a bus client (tests, private buses).
BusPtr openBusAt(const std::string& address);
// The address of the system bus as an operator would recognise it, for messages.
std::string systemBusAddress();

// Claims `name` on `bus`; throws BusSetupError naming the name and the
// reason (already owned, denied by the bus policy, ...).
void requestBusName(sd_bus* bus, const std::string& name);

// Drives `bus` from `io`: waits for the bus fd to become readable (and
// writable when sd-bus has output queued) and for sd-bus's own timeout,
// then runs sd_bus_process until it has nothing left to do.
//
// The fd stays owned by sd-bus. Handlers hold only a weak reference, so the
// dispatcher may be destroyed while waits are outstanding.
class BusDispatcher {
 public:
  // `on_disconnect` runs once if the connection to the bus is lost.
  BusDispatcher(boost::asio::io_context& io, sd_bus* bus, std::function<void()> on_disconnect = {});
  ~BusDispatcher();
  BusDispatcher(const BusDispatcher&) = delete;
  BusDispatcher& operator=(const BusDispatcher&) = delete;

  // Processes what is pending and re-arms the waits. Call after sending from
  // outside a bus callback (emitting a signal from an engine change), so
  // output that sd-bus could not write at once is flushed when the socket
  // becomes writable.
  void kick();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace hostmaint::service
