// The D-Bus names of hostmaintd's API and RAII owners for sd-bus handles,
// shared by the daemon's service and by hostmaintctl so both speak of the
// same object and free handles the same way.
#pragma once

#include <systemd/sd-bus.h>

#include <memory>
#include <string>

namespace hostmaint::sdbus {

inline constexpr const char* kBusName = "org.hostmaint.Agent1";
inline constexpr const char* kObjectPath = "/org/hostmaint/Agent1";
inline constexpr const char* kInterface = "org.hostmaint.Agent1";
inline constexpr const char* kRefusedError = "org.hostmaint.Agent1.Error.Refused";

struct BusCloser {
  // Flush first: a reply, signal or call queued just before closing still goes out.
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
  const sd_bus_error* raw() const { return &error_; }
  bool isSet() const { return sd_bus_error_is_set(&error_) != 0; }
  std::string name() const { return error_.name ? error_.name : ""; }
  std::string message() const { return error_.message ? error_.message : ""; }

 private:
  sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

}  // namespace hostmaint::sdbus
