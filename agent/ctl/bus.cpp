#include "bus.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "exit_status.hpp"

namespace hostmaint::ctl {
namespace {

constexpr const char* kDefaultSystemBus = "unix:path=/run/dbus/system_bus_socket";

std::string describeErrno(int negative_errno) { return std::strerror(-negative_errno); }

// The bus's guid says nothing to an operator reading an error message.
std::string withoutGuid(std::string address) {
  const auto guid = address.find(",guid=");
  if (guid != std::string::npos) address.erase(guid);
  return address;
}

struct FreeDeleter {
  void operator()(char* text) const { std::free(text); }
};

}  // namespace

AgentClient::AgentClient(const std::string& address) {
  sd_bus* raw = nullptr;
  int result = 0;
  if (address.empty()) {
    const char* from_env = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
    address_ = withoutGuid(from_env && *from_env ? from_env : kDefaultSystemBus);
    result = sd_bus_open_system(&raw);
    bus_.reset(raw);
  } else {
    address_ = withoutGuid(address);
    result = sd_bus_new(&raw);
    bus_.reset(raw);
    if (result >= 0) result = sd_bus_set_address(raw, address.c_str());
    if (result >= 0) result = sd_bus_set_bus_client(raw, 1);
    if (result >= 0) result = sd_bus_start(raw);
  }
  if (result < 0)
    throw CtlError(ExitStatus::unreachable,
                   "cannot connect to the system bus at " + address_ + ": " + describeErrno(result));
}

CtlError describeCallFailure(int result, const sd_bus_error& error, std::string_view what,
                             const std::string& address) {
  const std::string doing(what);
  const auto is = [&error](const char* name) { return sd_bus_error_has_name(&error, name) != 0; };
  const std::string message = error.message ? error.message : "";
  if (!sd_bus_error_is_set(&error))
    return CtlError(ExitStatus::unreachable, "lost the connection to the bus at " + address +
                                                 " during " + doing + ": " + describeErrno(result));
  if (is(kRefusedError)) return CtlError(ExitStatus::refused, message);
  if (is(SD_BUS_ERROR_ACCESS_DENIED) || is(SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
    return CtlError(ExitStatus::access_denied,
                    "access denied for " + doing +
                        " (changing maintenance needs root; anyone may read the status): " + message);
  if (is(SD_BUS_ERROR_SERVICE_UNKNOWN) || is(SD_BUS_ERROR_NAME_HAS_NO_OWNER))
    return CtlError(ExitStatus::unreachable, std::string("hostmaintd is not running (no owner for ") +
                                                 kBusName + " on the system bus at " + address + ")");
  if (is(SD_BUS_ERROR_NO_REPLY) || is(SD_BUS_ERROR_TIMEOUT) || is(SD_BUS_ERROR_DISCONNECTED))
    return CtlError(ExitStatus::unreachable, "hostmaintd did not answer " + doing + ": " + message);
  if (is(SD_BUS_ERROR_INVALID_ARGS))
    return CtlError(ExitStatus::usage,
                    "hostmaintd rejected the arguments of " + doing + ": " + message);
  if (is(SD_BUS_ERROR_UNKNOWN_METHOD) || is(SD_BUS_ERROR_UNKNOWN_PROPERTY) ||
      is(SD_BUS_ERROR_UNKNOWN_OBJECT) || is(SD_BUS_ERROR_UNKNOWN_INTERFACE))
    return CtlError(ExitStatus::refused, "hostmaintd does not support " + doing + " (" + message +
                                             "); is hostmaintctl newer than the running daemon?");
  return CtlError(ExitStatus::refused,
                  doing + " failed: " + std::string(error.name) + ": " + message);
}

void AgentClient::throwCallFailure(int result, const BusError& error, std::string_view what) const {
  throw describeCallFailure(result, *error.raw(), what, address_);
}

std::string AgentClient::statusJson() {
  BusError error;
  char* raw = nullptr;
  const int result = sd_bus_get_property_string(bus_.get(), kBusName, kObjectPath, kInterface,
                                                "StatusJSON", error.get(), &raw);
  std::unique_ptr<char, FreeDeleter> text(raw);
  if (result < 0) throwCallFailure(result, error, "reading the status");
  return text ? std::string(text.get()) : std::string();
}

std::string AgentClient::schedule(std::uint64_t start_usec, std::uint64_t end_usec, bool removal,
                                  const std::string& reason) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const int result = sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface, "Schedule",
                                        error.get(), &raw_reply, "ttbs", start_usec, end_usec,
                                        static_cast<int>(removal), reason.c_str());
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, "Schedule");
  const char* session_id = nullptr;
  const int read = sd_bus_message_read(reply.get(), "s", &session_id);
  if (read < 0)
    throw CtlError(ExitStatus::refused,
                   "cannot read the session id from hostmaintd's reply to Schedule: " +
                       describeErrno(read));
  return session_id;
}

void AgentClient::callVoid(const char* method, std::string_view what) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const int result = sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface, method,
                                        error.get(), &raw_reply, "");
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, what);
}

void AgentClient::cancel() { callVoid("Cancel", "Cancel"); }
void AgentClient::begin() { callVoid("Begin", "Begin"); }
void AgentClient::finish() { callVoid("Finish", "Finish"); }

void AgentClient::allowDomain(const std::string& domain, const std::string& reason) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const int result = sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface,
                                        "AllowDomain", error.get(), &raw_reply, "ss",
                                        domain.c_str(), reason.c_str());
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, "AllowDomain");
}

void AgentClient::disallowDomain(const std::string& domain) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const int result = sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface,
                                        "DisallowDomain", error.get(), &raw_reply, "s",
                                        domain.c_str());
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, "DisallowDomain");
}

void AgentClient::hostShutdown() { callVoid("HostShutdown", "HostShutdown"); }

std::optional<std::string> systemManagerState(std::string& problem) {
  sd_bus* raw = nullptr;
  int result = sd_bus_open_system(&raw);
  BusPtr bus(raw);
  if (result < 0) {
    problem = std::string("cannot connect to the system bus: ") + std::strerror(-result);
    return std::nullopt;
  }
  BusError error;
  char* state = nullptr;
  result = sd_bus_get_property_string(bus.get(), "org.freedesktop.systemd1",
                                      "/org/freedesktop/systemd1",
                                      "org.freedesktop.systemd1.Manager", "SystemState",
                                      error.get(), &state);
  if (result < 0) {
    problem = std::string("cannot read systemd's SystemState: ") +
              (error.get()->message ? error.get()->message : std::strerror(-result));
    return std::nullopt;
  }
  std::string text = state;
  std::free(state);
  return text;
}

void AgentClient::reschedule(std::uint64_t start_usec, std::uint64_t end_usec, bool removal,
                             const std::string& reason) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const int result = sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface, "Reschedule",
                                        error.get(), &raw_reply, "ttbs", start_usec, end_usec,
                                        static_cast<int>(removal), reason.c_str());
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, "Reschedule");
}

void AgentClient::acknowledge(const std::string& domain, const std::string& choice,
                              const std::string& reason) {
  BusError error;
  sd_bus_message* raw_reply = nullptr;
  const char* method = reason.empty() ? "Acknowledge" : "AcknowledgeWithReason";
  const int result =
      reason.empty()
          ? sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface, method, error.get(),
                               &raw_reply, "ss", domain.c_str(), choice.c_str())
          : sd_bus_call_method(bus_.get(), kBusName, kObjectPath, kInterface, method, error.get(),
                               &raw_reply, "sss", domain.c_str(), choice.c_str(), reason.c_str());
  MessagePtr reply(raw_reply);
  if (result < 0) throwCallFailure(result, error, method);
}

StatusWatch::StatusWatch(AgentClient& client) : client_(client) {
  sd_bus_slot* raw = nullptr;
  // Sender by well-known name: the bus matches it against whoever owns it now.
  int result = sd_bus_match_signal(client_.bus(), &raw, kBusName, kObjectPath,
                                   "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                   &StatusWatch::onPropertiesChanged, this);
  properties_slot_.reset(raw);
  if (result < 0)
    throw CtlError(ExitStatus::unreachable,
                   "cannot subscribe to hostmaintd's property changes: " + describeErrno(result));
  const std::string owner_rule =
      std::string("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                  "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='") +
      kBusName + "'";
  raw = nullptr;
  result = sd_bus_add_match(client_.bus(), &raw, owner_rule.c_str(),
                            &StatusWatch::onNameOwnerChanged, this);
  owner_slot_.reset(raw);
  if (result < 0)
    throw CtlError(ExitStatus::unreachable,
                   "cannot subscribe to hostmaintd leaving the bus: " + describeErrno(result));
}

int StatusWatch::onPropertiesChanged(sd_bus_message* message, void* self, sd_bus_error*) {
  auto& watch = *static_cast<StatusWatch*>(self);
  const char* interface = nullptr;
  if (sd_bus_message_read(message, "s", &interface) < 0 || std::strcmp(interface, kInterface) != 0)
    return 0;
  // Every change invalidates StatusJSON (its generation moves), which the
  // daemon does not send by value (docs/dbus-api.md): the caller Gets it.
  watch.changed_ = true;
  return 0;
}

int StatusWatch::onNameOwnerChanged(sd_bus_message* message, void* self, sd_bus_error*) {
  auto& watch = *static_cast<StatusWatch*>(self);
  const char* name = nullptr;
  const char* old_owner = nullptr;
  const char* new_owner = nullptr;
  if (sd_bus_message_read(message, "sss", &name, &old_owner, &new_owner) < 0) return 0;
  if (new_owner == nullptr || *new_owner == '\0') watch.daemon_gone_ = true;
  return 0;
}

StatusWatch::Event StatusWatch::next(std::optional<std::chrono::steady_clock::time_point> deadline) {
  using namespace std::chrono;
  changed_ = false;
  while (true) {
    // Dispatch everything already queued before deciding to block: signals
    // that queued up while the caller read the status come out as one
    // change, one Get.
    int result = 0;
    do {
      result = sd_bus_process(client_.bus(), nullptr);
    } while (result > 0 && !daemon_gone_);
    if (result < 0)
      throw CtlError(ExitStatus::unreachable, "lost the connection to the bus at " +
                                                  client_.address() + ": " + describeErrno(result));
    if (daemon_gone_) return Event::daemon_gone;
    if (changed_) return Event::changed;

    std::uint64_t timeout_usec = UINT64_MAX;
    if (deadline) {
      const auto now = steady_clock::now();
      if (now >= *deadline) return Event::timed_out;
      timeout_usec = static_cast<std::uint64_t>(duration_cast<microseconds>(*deadline - now).count());
    }
    result = sd_bus_wait(client_.bus(), timeout_usec);
    if (result < 0 && result != -EINTR)
      throw CtlError(ExitStatus::unreachable, "lost the connection to the bus at " +
                                                  client_.address() + ": " + describeErrno(result));
  }
}

}  // namespace hostmaint::ctl
