#include "hostmaint/agent/service/agent_object.hpp"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "hostmaint/agent/caller_text.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/agent/status_json.hpp"

#ifndef HOSTMAINT_VERSION
#error "HOSTMAINT_VERSION must be defined by the build"
#endif

namespace hostmaint::service {
namespace {

std::uint64_t toUsec(agent::TimePoint time) {
  const auto usec =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  return usec < 0 ? 0 : static_cast<std::uint64_t>(usec);
}

// The gid of `group`, or nullopt when no such group exists.
std::optional<gid_t> groupId(const std::string& group) {
  long size = sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<std::size_t>(size) : 16384);
  struct group entry {};
  struct group* found = nullptr;
  while (getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE)
    buffer.resize(buffer.size() * 2);
  if (!found) return std::nullopt;
  return found->gr_gid;
}

// The property names in vtable order, for changedProperties().
constexpr std::array kEmittingProperties{
    "Phase",    "Ready",    "SessionId", "WindowStart",          "WindowEnd",  "Removal", "Reason",
    "Blockers", "Evidence", "Domains",   "HypervisorConnection", "StatusJSON", "Notices",
    "Migrations", "Cordoned", "HostShutdownState", "FleetStatus",
};

// An argument the caller got wrong before the engine is asked (becomes
// org.freedesktop.DBus.Error.InvalidArgs, not a refusal).
class InvalidArguments final : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Timestamps from callers end before 2200-01-01T00:00:00Z: far enough for
// any maintenance, and well inside what the clock's nanoseconds can hold
// (until 2262), so microseconds * 1000 cannot wrap around.
constexpr std::uint64_t kMaxTimestampUsec = 7'258'118'400'000'000;

// The time a caller passed in `argument`, or InvalidArguments naming it.
agent::TimePoint timestampArgument(const char* argument, std::uint64_t usec) {
  if (usec >= kMaxTimestampUsec)
    throw InvalidArguments(std::string(argument) + " " + std::to_string(usec) +
                           " is out of range: a time must be microseconds since the Unix epoch "
                           "before 2200-01-01T00:00:00Z (" +
                           std::to_string(kMaxTimestampUsec) + ")");
  return agent::TimePoint(std::chrono::duration_cast<agent::Clock::duration>(
      std::chrono::microseconds(static_cast<std::int64_t>(usec))));
}

// A reason as a caller passed it in `argument`, or InvalidArguments naming it.
std::string reasonArgument(const char* argument, const char* text) {
  const std::string_view reason = text ? text : "";
  if (const auto problem = agent::callerTextProblem(reason, agent::kMaxReasonBytes))
    throw InvalidArguments(std::string(argument) + " " + *problem +
                           "; a reason is one line of printable UTF-8 text");
  return std::string(reason);
}

// The (start_usec, end_usec, removal, reason) arguments that Schedule and
// Reschedule share: read from the message, checked when turned into a window
// (InvalidArgs naming the argument).
struct WindowArguments {
  std::uint64_t start_usec = 0;
  std::uint64_t end_usec = 0;
  int removal = 0;
  const char* reason = nullptr;

  int read(sd_bus_message* message) {
    return sd_bus_message_read(message, "ttbs", &start_usec, &end_usec, &removal, &reason);
  }
  agent::MaintenanceWindow window() const {
    agent::MaintenanceWindow window;
    window.start = timestampArgument("start_usec", start_usec);
    window.end = timestampArgument("end_usec", end_usec);
    window.removal = removal != 0;
    window.reason = reasonArgument("reason", reason);
    return window;
  }
};

}  // namespace

PropertyValues propertyValuesOf(const agent::HostStatus& status) {
  return propertyValuesOf(status, agent::statusToJson(status).dump(2));
}

PropertyValues propertyValuesOf(const agent::HostStatus& status, std::string status_json,
                                agent::NoticeTexts* notice_texts) {
  PropertyValues values;
  values.phase = std::string(agent::toString(status.phase));
  values.ready = status.ready;
  values.session_id = status.session_id.value_or("");
  if (status.window) {
    values.window_start_usec = toUsec(status.window->start);
    values.window_end_usec = toUsec(status.window->end);
    values.removal = status.window->removal;
    values.reason = status.window->reason;
  }
  for (const agent::Blocker& blocker : status.blockers)
    values.blockers.emplace_back(blocker.subject, blocker.reason);
  for (const hv::EvidenceCheck& check : status.evidence)
    values.evidence.emplace_back(check.name, check.ok, check.detail);
  for (const agent::DomainStatus& domain : status.domains) {
    values.domains.push_back({domain.uuid, domain.name, std::string(hv::toString(domain.run_state)),
                              std::string(agent::toString(domain.stage)),
                              domain.action ? std::string(agent::toString(*domain.action)) : "",
                              domain.result, domain.detail});
  }
  values.hypervisor_connection = std::string(hv::toString(status.hypervisor_connection));
  values.status_json = std::move(status_json);
  for (const agent::DomainStatus& domain : status.domains) {
    if (!domain.notice) continue;
    values.notices.emplace_back(domain.uuid, domain.name, domain.notice->revision,
                                notice_texts ? notice_texts->compact(domain.uuid, *domain.notice)
                                             : agent::noticeToJson(*domain.notice).dump());
  }
  for (const agent::DomainStatus& domain : status.domains) {
    if (domain.stage != agent::DomainStage::acting || !domain.progress) continue;
    const agent::MigrationProgress& p = *domain.progress;
    values.migrations.push_back({domain.uuid, domain.name, domain.destination.value_or(""),
                                 p.percent, p.data_processed_bytes, p.data_remaining_bytes,
                                 p.throughput_bps, p.downtime_limit_ms, p.post_copy,
                                 p.escalation});
  }
  values.cordoned = status.cordon.active;
  if (status.host_shutdown)
    values.host_shutdown_state = std::string(agent::toString(status.host_shutdown->phase));
  if (status.fleet) values.fleet_status = agent::fleetToJson(*status.fleet).dump();
  return values;
}

std::vector<std::string> changedProperties(const PropertyValues& before,
                                           const PropertyValues& after) {
  const std::array differs{
      before.phase != after.phase,
      before.ready != after.ready,
      before.session_id != after.session_id,
      before.window_start_usec != after.window_start_usec,
      before.window_end_usec != after.window_end_usec,
      before.removal != after.removal,
      before.reason != after.reason,
      before.blockers != after.blockers,
      before.evidence != after.evidence,
      before.domains != after.domains,
      before.hypervisor_connection != after.hypervisor_connection,
      before.status_json != after.status_json,
      before.notices != after.notices,
      before.migrations != after.migrations,
      before.cordoned != after.cordoned,
      before.host_shutdown_state != after.host_shutdown_state,
      before.fleet_status != after.fleet_status,
  };
  static_assert(differs.size() == kEmittingProperties.size());
  std::vector<std::string> names;
  for (std::size_t i = 0; i < differs.size(); ++i)
    if (differs[i]) names.emplace_back(kEmittingProperties[i]);
  return names;
}

AgentObject::AgentObject(sd_bus* bus, agent::MaintenanceEngine& engine, CallerPolicy policy,
                         std::function<void()> before_reply,
                         std::shared_ptr<agent::NoticeTexts> notice_texts)
    : bus_(bus),
      engine_(engine),
      policy_(std::move(policy)),
      before_reply_(std::move(before_reply)),
      notice_texts_(notice_texts ? std::move(notice_texts)
                                 : std::make_shared<agent::NoticeTexts>()),
      values_(propertyValuesOf(engine.status())) {
  sd_bus_slot* raw = nullptr;
  const int result = sd_bus_add_object_vtable(bus, &raw, kObjectPath, kInterface, vtable(), this);
  slot_.reset(raw);
  if (result < 0)
    throw BusSetupError(std::string("cannot register the D-Bus object ") + kObjectPath + ": " +
                        std::strerror(-result));
}

void AgentObject::publish(const agent::HostStatus& status) {
  publish(status, agent::statusToJson(status).dump(2));
}

void AgentObject::publish(const agent::HostStatus& status, std::string status_json) {
  PropertyValues next = propertyValuesOf(status, std::move(status_json), notice_texts_.get());
  const std::vector<std::string> changed = changedProperties(values_, next);
  values_ = std::move(next);
  if (changed.empty()) return;
  std::vector<char*> names;
  for (const std::string& name : changed) names.push_back(const_cast<char*>(name.c_str()));
  names.push_back(nullptr);
  // sd-bus sends the EMITS_CHANGE ones with their values and lists the
  // EMITS_INVALIDATION ones (vtable()) as invalidated, without reading them.
  const int result =
      sd_bus_emit_properties_changed_strv(bus_, kObjectPath, kInterface, names.data());
  // Clients re-read on their next Get; a lost signal is not worth stopping for.
  if (result < 0)
    spdlog::warn("cannot emit PropertiesChanged for {}: {}", changed.front(),
                 std::strerror(-result));
}

void AgentObject::emitNotice(const std::string& uuid, const std::string& name,
                             const agent::DomainNotice& notice) {
  const std::string& json = notice_texts_->compact(uuid, notice);
  const int result = sd_bus_emit_signal(bus_, kObjectPath, kInterface, "Notice", "ssts",
                                        uuid.c_str(), name.c_str(), notice.revision, json.c_str());
  // The notice stays readable in the Notices property and StatusJSON.
  if (result < 0)
    spdlog::warn("cannot emit the Notice signal for domain {} (revision {}): {}", name,
                 notice.revision, std::strerror(-result));
}

const sd_bus_vtable* AgentObject::vtable() {
  // Properties whose size grows with the number of domains only invalidate:
  // one PropertiesChanged of a schedule of 500 domains carried 1.4 MB by
  // value (StatusJSON alone 880 kB), which hostmaintd marshalled, dbus-daemon
  // validated and every watcher copied before the method's reply got through
  // (docs/performance.md, "fourth round"). A watcher re-reads them with Get;
  // the small ones (Phase, Ready, ...) still arrive with their values.
  static const sd_bus_vtable table[] = {
      SD_BUS_VTABLE_START(0),
      SD_BUS_PROPERTY("Phase", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Ready", "b", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("SessionId", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("WindowStart", "t", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("WindowEnd", "t", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Removal", "b", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Reason", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Blockers", "a(ss)", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
      SD_BUS_PROPERTY("Evidence", "a(sbs)", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
      SD_BUS_PROPERTY("Domains", "a(sssssss)", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
      SD_BUS_PROPERTY("HypervisorConnection", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("StatusJSON", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
      SD_BUS_PROPERTY("Notices", "a(ssts)", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
      SD_BUS_PROPERTY("Migrations", "a(sssdttttbs)", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Cordoned", "b", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("HostShutdownState", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("FleetStatus", "s", &AgentObject::getProperty, 0,
                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
      SD_BUS_PROPERTY("Version", "s", &AgentObject::getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
      SD_BUS_SIGNAL_WITH_NAMES("Notice", "ssts",
                               SD_BUS_PARAM(uuid) SD_BUS_PARAM(name) SD_BUS_PARAM(revision)
                                   SD_BUS_PARAM(notice_json),
                               0),
      // UNPRIVILEGED: sd-bus's own check would admit only root; authorize()
      // decides instead, so that [dbus] admin_group can work.
      SD_BUS_METHOD_WITH_NAMES("Schedule", "ttbs",
                               SD_BUS_PARAM(start_usec) SD_BUS_PARAM(end_usec) SD_BUS_PARAM(removal)
                                   SD_BUS_PARAM(reason),
                               "s", SD_BUS_PARAM(session_id), &AgentObject::onSchedule,
                               SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("Reschedule", "ttbs",
                               SD_BUS_PARAM(start_usec) SD_BUS_PARAM(end_usec) SD_BUS_PARAM(removal)
                                   SD_BUS_PARAM(reason),
                               "", , &AgentObject::onReschedule, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("Cancel", "", "", &AgentObject::onCancel, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("Acknowledge", "ss", SD_BUS_PARAM(domain) SD_BUS_PARAM(choice), "", ,
                               &AgentObject::onAcknowledge, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("AcknowledgeWithReason", "sss",
                               SD_BUS_PARAM(domain) SD_BUS_PARAM(choice) SD_BUS_PARAM(reason), "", ,
                               &AgentObject::onAcknowledgeWithReason, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("Begin", "", "", &AgentObject::onBegin, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("Finish", "", "", &AgentObject::onFinish, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("AllowDomain", "ss", SD_BUS_PARAM(domain) SD_BUS_PARAM(reason), "",
                               , &AgentObject::onAllowDomain, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD_WITH_NAMES("DisallowDomain", "s", SD_BUS_PARAM(domain), "", ,
                               &AgentObject::onDisallowDomain, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("HostShutdown", "", "", &AgentObject::onHostShutdown,
                    SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_VTABLE_END,
  };
  return table;
}

int AgentObject::getProperty(sd_bus*, const char*, const char*, const char* property,
                             sd_bus_message* reply, void* self, sd_bus_error* error) {
  const PropertyValues& v = static_cast<AgentObject*>(self)->values_;
  const std::string_view name(property);
  auto appendString = [&](const std::string& text) {
    return sd_bus_message_append(reply, "s", text.c_str());
  };
  auto appendBool = [&](bool value) {
    return sd_bus_message_append(reply, "b", static_cast<int>(value));
  };
  auto appendArray = [&](const char* element, const auto& items, auto append_one) {
    int r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, element);
    for (const auto& item : items) {
      if (r < 0) return r;
      r = append_one(item);
    }
    return r < 0 ? r : sd_bus_message_close_container(reply);
  };

  if (name == "Phase") return appendString(v.phase);
  if (name == "Ready") return appendBool(v.ready);
  if (name == "SessionId") return appendString(v.session_id);
  if (name == "WindowStart") return sd_bus_message_append(reply, "t", v.window_start_usec);
  if (name == "WindowEnd") return sd_bus_message_append(reply, "t", v.window_end_usec);
  if (name == "Removal") return appendBool(v.removal);
  if (name == "Reason") return appendString(v.reason);
  if (name == "Blockers")
    return appendArray("(ss)", v.blockers, [&](const auto& b) {
      return sd_bus_message_append(reply, "(ss)", b.first.c_str(), b.second.c_str());
    });
  if (name == "Evidence")
    return appendArray("(sbs)", v.evidence, [&](const auto& e) {
      return sd_bus_message_append(reply, "(sbs)", std::get<0>(e).c_str(),
                                   static_cast<int>(std::get<1>(e)), std::get<2>(e).c_str());
    });
  if (name == "Domains")
    return appendArray("(sssssss)", v.domains, [&](const auto& d) {
      return sd_bus_message_append(reply, "(sssssss)", d[0].c_str(), d[1].c_str(), d[2].c_str(),
                                   d[3].c_str(), d[4].c_str(), d[5].c_str(), d[6].c_str());
    });
  if (name == "HypervisorConnection") return appendString(v.hypervisor_connection);
  if (name == "StatusJSON") return appendString(v.status_json);
  if (name == "FleetStatus") return appendString(v.fleet_status);
  if (name == "Notices")
    return appendArray("(ssts)", v.notices, [&](const auto& n) {
      return sd_bus_message_append(reply, "(ssts)", std::get<0>(n).c_str(),
                                   std::get<1>(n).c_str(), std::get<2>(n), std::get<3>(n).c_str());
    });
  if (name == "Migrations")
    return appendArray("(sssdttttbs)", v.migrations, [&](const PropertyValues::Migration& m) {
      return sd_bus_message_append(reply, "(sssdttttbs)", m.uuid.c_str(), m.name.c_str(),
                                   m.destination.c_str(), m.percent, m.processed_bytes,
                                   m.remaining_bytes, m.throughput_bps, m.downtime_limit_ms,
                                   static_cast<int>(m.post_copy), m.escalation.c_str());
    });
  if (name == "Cordoned") return appendBool(v.cordoned);
  if (name == "HostShutdownState") return appendString(v.host_shutdown_state);
  if (name == "Version") return sd_bus_message_append(reply, "s", HOSTMAINT_VERSION);
  return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "unknown property %s", property);
}

int AgentObject::authorize(sd_bus_message* message, const char* method, sd_bus_error* error,
                           uid_t& caller) const {
  sd_bus_creds* raw = nullptr;
  const int queried =
      sd_bus_query_sender_creds(message,
                                SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID |
                                    SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_AUGMENT,
                                &raw);
  CredsPtr creds(raw);
  uid_t euid = 0;
  if (queried < 0 || sd_bus_creds_get_euid(creds.get(), &euid) < 0) {
    spdlog::warn("refused {}: cannot tell who the caller is ({})", method,
                 queried < 0 ? std::strerror(-queried) : "no effective uid in its credentials");
    return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                             "cannot determine the caller's credentials for %s", method);
  }
  bool allowed = euid == 0;
  if (!allowed && !policy_.admin_group.empty()) {
    if (const auto admin_gid = groupId(policy_.admin_group)) {
      gid_t egid = 0;
      if (sd_bus_creds_get_egid(creds.get(), &egid) >= 0 && egid == *admin_gid) allowed = true;
      const gid_t* gids = nullptr;
      const int count = sd_bus_creds_get_supplementary_gids(creds.get(), &gids);
      for (int i = 0; !allowed && i < count; ++i) allowed = gids[i] == *admin_gid;
    } else {
      spdlog::warn("[dbus] admin_group '{}' does not exist; only root may change maintenance",
                   policy_.admin_group);
    }
  }
  if (!allowed) {
    spdlog::warn("refused {} from uid {}: not root{}", method, euid,
                 policy_.admin_group.empty() ? "" : " nor in group " + policy_.admin_group);
    if (policy_.admin_group.empty())
      return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "only root may call %s", method);
    return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                             "only root or members of group %s may call %s",
                             policy_.admin_group.c_str(), method);
  }
  caller = euid;
  return 0;
}

int AgentObject::runCommand(sd_bus_message* message, const char* method, sd_bus_error* error,
                            const std::function<void(sd_bus_message* reply)>& command) {
  uid_t caller = 0;
  if (const int denied = authorize(message, method, error, caller); denied < 0) return denied;
  sd_bus_message* raw_reply = nullptr;
  int result = sd_bus_message_new_method_return(message, &raw_reply);
  MessagePtr reply(raw_reply);
  if (result < 0) return result;
  caller_ = caller;
  try {
    command(reply.get());
  } catch (const InvalidArguments& invalid) {
    spdlog::info("{} by uid {} rejected: {}", method, caller, invalid.what());
    return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, invalid.what());
  } catch (const agent::CommandError& refusal) {
    spdlog::info("{} by uid {} refused: {}", method, caller, refusal.what());
    return sd_bus_error_set(error, kRefusedError, refusal.what());
  } catch (const std::exception& failure) {
    // Not a refusal: the engine could not do what it accepted (journal
    // unwritable, ...). Say so to the caller; the daemon keeps running.
    spdlog::error("{} by uid {} failed: {}", method, caller, failure.what());
    return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, failure.what());
  }
  spdlog::info("{} by uid {} done", method, caller);
  if (before_reply_) before_reply_();
  result = sd_bus_send(nullptr, reply.get(), nullptr);
  return result < 0 ? result : 1;
}

int AgentObject::onSchedule(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  WindowArguments arguments;
  if (const int read = arguments.read(message); read < 0) return read;
  return object.runCommand(message, "Schedule", error, [&](sd_bus_message* reply) {
    agent::ScheduleRequest request;
    request.window = arguments.window();
    const std::string session_id = object.engine_.schedule(request);
    spdlog::info("maintenance {} scheduled from {} to {}{}", session_id,
                 agent::formatTime(request.window.start), agent::formatTime(request.window.end),
                 request.window.removal ? " (host removal)" : "");
    const int appended = sd_bus_message_append(reply, "s", session_id.c_str());
    if (appended < 0)
      throw std::runtime_error(std::string("cannot build the reply to Schedule: ") +
                               std::strerror(-appended));
  });
}

int AgentObject::onReschedule(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  WindowArguments arguments;
  if (const int read = arguments.read(message); read < 0) return read;
  return object.runCommand(message, "Reschedule", error, [&](sd_bus_message*) {
    const agent::MaintenanceWindow window = arguments.window();
    // The engine's own window move, the one the controller link uses: the
    // same rules whoever moves the window.
    object.engine_.reschedule(window);
    spdlog::info("maintenance {} rescheduled to {} to {}{}",
                 object.engine_.status().session_id.value_or("?"), agent::formatTime(window.start),
                 agent::formatTime(window.end), window.removal ? " (host removal)" : "");
  });
}

int AgentObject::onCancel(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  return object.runCommand(message, "Cancel", error,
                           [&](sd_bus_message*) { object.engine_.cancel(); });
}

int AgentObject::onAcknowledge(sd_bus_message* message, void* self, sd_bus_error* error) {
  return static_cast<AgentObject*>(self)->acknowledgeCall(message, "Acknowledge", false, error);
}

int AgentObject::onAcknowledgeWithReason(sd_bus_message* message, void* self,
                                         sd_bus_error* error) {
  return static_cast<AgentObject*>(self)->acknowledgeCall(message, "AcknowledgeWithReason", true,
                                                          error);
}

int AgentObject::acknowledgeCall(sd_bus_message* message, const char* method, bool with_reason,
                                 sd_bus_error* error) {
  const char* domain = nullptr;
  const char* choice_text = nullptr;
  const char* reason_text = nullptr;
  const int read = with_reason
                       ? sd_bus_message_read(message, "sss", &domain, &choice_text, &reason_text)
                       : sd_bus_message_read(message, "ss", &domain, &choice_text);
  if (read < 0) return read;
  return runCommand(message, method, error, [&](sd_bus_message*) {
    const auto choice = agent::parseAckChoice(choice_text);
    if (!choice)
      throw InvalidArguments("cannot acknowledge '" + agent::printableExcerpt(domain) + "': choice '" +
                             agent::printableExcerpt(choice_text) + "' is neither 'move' nor 'keep'");
    std::string reason = reasonArgument("reason", reason_text);
    engine_.acknowledge(domain, *choice, std::move(reason));
  });
}

int AgentObject::onBegin(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  return object.runCommand(message, "Begin", error,
                           [&](sd_bus_message*) { object.engine_.begin(); });
}

int AgentObject::onFinish(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  return object.runCommand(message, "Finish", error,
                           [&](sd_bus_message*) { object.engine_.finish(); });
}

int AgentObject::onAllowDomain(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  const char* domain = nullptr;
  const char* reason_text = nullptr;
  if (const int read = sd_bus_message_read(message, "ss", &domain, &reason_text); read < 0)
    return read;
  return object.runCommand(message, "AllowDomain", error, [&](sd_bus_message*) {
    if (auto problem = agent::callerTextProblem(domain, agent::kMaxReasonBytes))
      throw InvalidArguments("domain: " + *problem);
    std::string reason = reasonArgument("reason", reason_text);
    object.engine_.allowDomain(domain, std::move(reason), "uid " + std::to_string(object.caller_));
    spdlog::info("domain '{}' may start on or migrate into this host despite the cordon",
                 agent::printableExcerpt(domain));
  });
}

int AgentObject::onDisallowDomain(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  const char* domain = nullptr;
  if (const int read = sd_bus_message_read(message, "s", &domain); read < 0) return read;
  return object.runCommand(message, "DisallowDomain", error, [&](sd_bus_message*) {
    object.engine_.disallowDomain(domain);
  });
}

int AgentObject::onHostShutdown(sd_bus_message* message, void* self, sd_bus_error* error) {
  auto& object = *static_cast<AgentObject*>(self);
  return object.runCommand(message, "HostShutdown", error, [&](sd_bus_message*) {
    spdlog::warn("the host is shutting down: every running domain gets its host_shutdown_action");
    object.engine_.hostShutdown("uid " + std::to_string(object.caller_));
  });
}

}  // namespace hostmaint::service
