// The D-Bus side of hostmaintctl: RAII owners for sd-bus handles, the client
// of org.hostmaint.Agent1 (docs/dbus-api.md) and the change subscription that
// `wait` blocks on.
#pragma once

#include <systemd/sd-bus.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "exit_status.hpp"
#include "hostmaint/agent/sd_bus_handles.hpp"

namespace hostmaint::ctl {

using sdbus::kBusName;
using sdbus::kInterface;
using sdbus::kObjectPath;
using sdbus::kRefusedError;
using sdbus::BusError;
using sdbus::BusPtr;
using sdbus::CredsPtr;
using sdbus::MessagePtr;
using sdbus::SlotPtr;

// What a failed call means for the operator: the exit status and a message.
// `result` is sd-bus's negative errno, `error` the D-Bus error if one came
// back (unset when the transport failed), `what` the call ("Schedule"),
// `address` the bus address for messages.
CtlError describeCallFailure(int result, const sd_bus_error& error, std::string_view what,
                             const std::string& address);

// systemd's SystemState ("running", "stopping", ...) read from the system
// bus, or nullopt with `problem` set when it cannot be read.
std::optional<std::string> systemManagerState(std::string& problem);

// A connection to the bus hostmaintd serves on, and its methods. Every
// failure is thrown as CtlError with the exit status it maps to.
class AgentClient {
 public:
  // `address` empty: the system bus, or $DBUS_SYSTEM_BUS_ADDRESS when set.
  explicit AgentClient(const std::string& address);

  // The whole status document (the StatusJSON property).
  std::string statusJson();
  std::string schedule(std::uint64_t start_usec, std::uint64_t end_usec, bool removal,
                       const std::string& reason);
  // Moves the window of the scheduled (or draining) maintenance.
  void reschedule(std::uint64_t start_usec, std::uint64_t end_usec, bool removal,
                  const std::string& reason);
  void cancel();
  // With a reason: AcknowledgeWithReason; without: Acknowledge, which older
  // daemons serve too.
  void acknowledge(const std::string& domain, const std::string& choice, const std::string& reason);
  void begin();
  void finish();
  void allowDomain(const std::string& domain, const std::string& reason);
  void disallowDomain(const std::string& domain);
  void hostShutdown();

  sd_bus* bus() { return bus_.get(); }
  // For messages: the address as the operator would recognise it.
  const std::string& address() const { return address_; }

 private:
  [[noreturn]] void throwCallFailure(int result, const BusError& error, std::string_view what) const;

  void callVoid(const char* method, std::string_view what);

  std::string address_;
  BusPtr bus_;
};

// Subscription to the daemon's PropertiesChanged and to its name losing its
// owner. Subscribe before reading the first state, so no change falls in
// between. Not movable: sd-bus keeps a pointer to it for the callbacks.
class StatusWatch {
 public:
  enum class Event { changed, daemon_gone, timed_out };

  explicit StatusWatch(AgentClient& client);
  StatusWatch(const StatusWatch&) = delete;
  StatusWatch& operator=(const StatusWatch&) = delete;

  // Dispatches bus traffic until a property changes, the daemon leaves the
  // bus, or `deadline` passes (never when nullopt). The signal does not carry
  // StatusJSON (it is only invalidated): after `changed`, read it.
  Event next(std::optional<std::chrono::steady_clock::time_point> deadline);

 private:
  static int onPropertiesChanged(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onNameOwnerChanged(sd_bus_message* message, void* self, sd_bus_error* error);

  AgentClient& client_;
  SlotPtr properties_slot_;
  SlotPtr owner_slot_;
  bool changed_ = false;
  bool daemon_gone_ = false;
};

}  // namespace hostmaint::ctl
