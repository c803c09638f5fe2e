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

#include "hostmaint/agent/sd_bus_handles.hpp"

namespace hostmaint::service {

using sdbus::BusError;
using sdbus::BusPtr;
using sdbus::CredsPtr;
using sdbus::MessagePtr;
using sdbus::SlotPtr;

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
