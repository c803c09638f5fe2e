// The D-Bus object /org/hostmaint/Agent1 (interface org.hostmaint.Agent1,
// docs/dbus-api.md; introspection XML: agent/src/service/org.hostmaint.Agent1.xml).
//
// Properties are rendered from the engine's HostStatus; publish() emits
// PropertiesChanged for exactly the properties whose D-Bus values changed:
// the small ones with their new values, the ones that grow with the number
// of domains (Blockers, Evidence, Domains, StatusJSON, Notices) as
// invalidated only, to be re-read with Get (docs/dbus-api.md, "Properties").
// Methods call the engine; a refusal (CommandError) becomes
// org.hostmaint.Agent1.Error.Refused with the engine's message.
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/agent/service/asio_sd_bus.hpp"

namespace hostmaint::service {

using sdbus::kBusName;
using sdbus::kInterface;
using sdbus::kObjectPath;
using sdbus::kRefusedError;

// The values of the properties as they go on the bus, so "changed" means
// "a client would see something different".
struct PropertyValues {
  std::string phase;
  bool ready = false;
  std::string session_id;
  std::uint64_t window_start_usec = 0;
  std::uint64_t window_end_usec = 0;
  bool removal = false;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> blockers;
  std::vector<std::tuple<std::string, bool, std::string>> evidence;
  // uuid, name, run state, stage, action or "", result, detail
  std::vector<std::array<std::string, 7>> domains;
  std::string hypervisor_connection;
  std::string status_json;
  // uuid, name, revision, the notice as JSON (docs/notices.md)
  std::vector<std::tuple<std::string, std::string, std::uint64_t, std::string>> notices;
  // Migrations running now (docs/dbus-api.md, Migrations).
  struct Migration {
    std::string uuid, name, destination;
    double percent = 0;
    std::uint64_t processed_bytes = 0, remaining_bytes = 0, throughput_bps = 0;
    std::uint64_t downtime_limit_ms = 0;
    bool post_copy = false;
    std::string escalation;
    bool operator==(const Migration&) const = default;
  };
  std::vector<Migration> migrations;
  bool cordoned = false;
  std::string host_shutdown_state;  // "" when hostmaintd never handled a host shutdown
  // status.json's `fleet` object (docs/fleet.md), "null" without a [fleet].
  std::string fleet_status = "null";

  bool operator==(const PropertyValues&) const = default;
};

PropertyValues propertyValuesOf(const agent::HostStatus& status);
// The same with StatusJSON already rendered (statusToJson(status).dump(2))
// and, when given, the notices' texts reused from `notice_texts`.
PropertyValues propertyValuesOf(const agent::HostStatus& status, std::string status_json,
                                agent::NoticeTexts* notice_texts = nullptr);

// Names of the properties that differ between `before` and `after`, in
// vtable order.
std::vector<std::string> changedProperties(const PropertyValues& before,
                                           const PropertyValues& after);

// Who may call mutating methods: root, or members of `admin_group` when set.
struct CallerPolicy {
  std::string admin_group;
};

class AgentObject {
 public:
  // Registers the object on `bus` with the engine's current status.
  // `before_reply` (may be empty) runs after a command succeeded, before its
  // reply is sent: the owner publishes the status it changed. The notices'
  // texts come from `notice_texts` when given (shared with the status
  // renderer), else from its own.
  AgentObject(sd_bus* bus, agent::MaintenanceEngine& engine, CallerPolicy policy,
              std::function<void()> before_reply = {},
              std::shared_ptr<agent::NoticeTexts> notice_texts = nullptr);
  AgentObject(const AgentObject&) = delete;
  AgentObject& operator=(const AgentObject&) = delete;

  // New snapshot: emits PropertiesChanged for what changed since the last one.
  void publish(const agent::HostStatus& status);
  // The same with StatusJSON already rendered (statusToJson(status).dump(2)).
  void publish(const agent::HostStatus& status, std::string status_json);
  void setCallerPolicy(CallerPolicy policy) { policy_ = std::move(policy); }
  // Emits the Notice signal for one issued notice.
  void emitNotice(const std::string& uuid, const std::string& name, const agent::DomainNotice& notice);

  const PropertyValues& values() const { return values_; }

 private:
  static const sd_bus_vtable* vtable();
  static int onSchedule(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onReschedule(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onCancel(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onAcknowledge(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onAcknowledgeWithReason(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onBegin(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onFinish(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onAllowDomain(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onDisallowDomain(sd_bus_message* message, void* self, sd_bus_error* error);
  static int onHostShutdown(sd_bus_message* message, void* self, sd_bus_error* error);
  static int getProperty(sd_bus* bus, const char* path, const char* interface, const char* property,
                         sd_bus_message* reply, void* self, sd_bus_error* error);

  // Checks the caller may mutate; fills `error` and returns its negative
  // errno when not (and logs the refusal), else stores its uid in `caller`.
  int authorize(sd_bus_message* message, const char* method, sd_bus_error* error,
                uid_t& caller) const;
  // Acknowledge and AcknowledgeWithReason: the same call, with or without
  // the reason argument.
  int acknowledgeCall(sd_bus_message* message, const char* method, bool with_reason,
                      sd_bus_error* error);
  // Runs a command on the engine, mapping its refusal to the Refused error;
  // logs the caller's uid and the outcome.
  int runCommand(sd_bus_message* message, const char* method, sd_bus_error* error,
                 const std::function<void(sd_bus_message* reply)>& command);

  sd_bus* bus_;
  agent::MaintenanceEngine& engine_;
  CallerPolicy policy_;
  std::function<void()> before_reply_;
  // The uid whose command runs now (runCommand), for what the engine records.
  uid_t caller_ = 0;
  std::shared_ptr<agent::NoticeTexts> notice_texts_;
  PropertyValues values_;
  SlotPtr slot_;
};

}  // namespace hostmaint::service
