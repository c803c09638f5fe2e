// The D-Bus service against a private dbus-daemon: the real engine on a fake
// hypervisor, served by AgentService on one io_context; a client on the same
// loop calls methods and reads properties and PropertiesChanged signals.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <pugixml.hpp>
#include <set>
#include <string>
#include <vector>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/service/agent_object.hpp"
#include "hostmaint/agent/service/agent_service.hpp"
#include "hostmaint/agent/service/service_notifier.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "support/fake_clock.hpp"
#include "support/fake_hypervisor.hpp"
#include "support/memory_journal.hpp"
#include "support/private_dbus.hpp"

namespace hostmaint::service {
namespace {

using namespace std::chrono_literals;
using fake::runUntil;
namespace fs = std::filesystem;

// What a call brought back: the reply, or the D-Bus error.
struct CallResult {
  bool done = false;
  MessagePtr reply;
  std::string error_name;
  std::string error_message;
  static int handle(sd_bus_message* message, void* self, sd_bus_error*) {
    auto& result = *static_cast<CallResult*>(self);
    result.done = true;
    if (const sd_bus_error* error = sd_bus_message_get_error(message)) {
      result.error_name = error->name ? error->name : "";
      result.error_message = error->message ? error->message : "";
    }
    result.reply.reset(sd_bus_message_ref(message));
    return 0;
  }
};

// PropertiesChanged signals of the agent, as (property → value) for the
// simple types and as names for all: `names` sent with a value, `invalidated`
// named without one.
struct ChangeRecorder {
  struct Change {
    std::set<std::string> names;
    std::set<std::string> invalidated;
    std::map<std::string, std::string> strings;
    std::map<std::string, bool> bools;

    bool mentions(const std::string& name) const {
      return names.count(name) > 0 || invalidated.count(name) > 0;
    }
  };
  std::vector<Change> changes;

  static int handle(sd_bus_message* message, void* self, sd_bus_error*) {
    auto& recorder = *static_cast<ChangeRecorder*>(self);
    const char* interface = nullptr;
    if (sd_bus_message_read(message, "s", &interface) < 0) return 0;
    if (std::string(interface) != kInterface) return 0;
    Change change;
    if (sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}") < 0) return 0;
    while (sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv") > 0) {
      const char* name = nullptr;
      sd_bus_message_read(message, "s", &name);
      change.names.insert(name);
      char type = 0;
      const char* contents = nullptr;
      sd_bus_message_peek_type(message, &type, &contents);
      if (std::string(contents) == "s") {
        const char* text = nullptr;
        sd_bus_message_read(message, "v", "s", &text);
        change.strings[name] = text;
      } else if (std::string(contents) == "b") {
        int value = 0;
        sd_bus_message_read(message, "v", "b", &value);
        change.bools[name] = value != 0;
      } else {
        sd_bus_message_skip(message, "v");
      }
      sd_bus_message_exit_container(message);
    }
    if (sd_bus_message_exit_container(message) < 0) return 0;
    if (sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "s") < 0) return 0;
    const char* invalidated = nullptr;
    while (sd_bus_message_read(message, "s", &invalidated) > 0)
      change.invalidated.insert(invalidated);
    recorder.changes.push_back(std::move(change));
    return 0;
  }
};

class DbusServiceTest : public ::testing::Test {
 protected:
  DbusServiceTest() {
    std::string pattern = (fs::temp_directory_path() / "hostmaint-run-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    runtime_dir = pattern;
    settings.host_name = "hv-test";
    web = hypervisor.uuidOf("web1");
  }
  ~DbusServiceTest() override { fs::remove_all(runtime_dir); }

  void SetUp() override {
    hypervisor.addDomain(fake::makeDomain("web1"));
    hypervisor.addDomain(fake::makeDomain("db1"));
    web = hypervisor.uuidOf("web1");
    AgentServiceOptions options;
    options.runtime_dir = runtime_dir;
    // A lost bus is reopened at the private bus's socket, quickly; the
    // first `refuse_opens` attempts fail.
    options.reopen_bus = [this] {
      ++reopens;
      if (refuse_opens > 0) {
        --refuse_opens;
        throw BusSetupError("refused by the test");
      }
      return openBusAt(bus.socketAddress());
    };
    options.bus_reconnect = {5ms, 20ms};
    options.publish_interval = publish_interval;
    service.emplace(io, AgentServiceParts{clock, hypervisor, journal, notifier}, settings,
                    openBusAt(bus.address()), options);
    engine = &service->engine();

    client = openBusAt(bus.address());
    sd_bus_slot* raw = nullptr;
    ASSERT_GE(sd_bus_match_signal(client.get(), &raw, kBusName, kObjectPath,
                                  "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                  &ChangeRecorder::handle, &recorder),
              0);
    match.reset(raw);
    client_dispatcher.emplace(io, client.get());
  }

  void TearDown() override {
    client_dispatcher.reset();
    engine = nullptr;
    service.reset();  // stops observing the hypervisor; the bus object goes before the engine
  }

  template <typename... Args>
  CallResult call(const char* interface, const char* method, const char* types, Args... args) {
    CallResult result;
    sd_bus_slot* raw = nullptr;
    const int sent = sd_bus_call_method_async(client.get(), &raw, kBusName, kObjectPath, interface,
                                              method, &CallResult::handle, &result, types, args...);
    SlotPtr slot(raw);
    EXPECT_GE(sent, 0) << method;
    client_dispatcher->kick();
    EXPECT_TRUE(runUntil(io, [&] { return result.done; })) << method << " got no reply";
    return result;
  }

  template <typename... Args>
  CallResult agentCall(const char* method, const char* types, Args... args) {
    return call(kInterface, method, types, args...);
  }

  MessagePtr property(const char* name, const char* type) {
    CallResult result = call("org.freedesktop.DBus.Properties", "Get", "ss", kInterface, name);
    EXPECT_EQ(result.error_name, "") << name << ": " << result.error_message;
    EXPECT_GE(sd_bus_message_enter_container(result.reply.get(), SD_BUS_TYPE_VARIANT, type), 0)
        << name;
    return std::move(result.reply);
  }
  std::string stringProperty(const char* name) {
    MessagePtr reply = property(name, "s");
    const char* text = nullptr;
    EXPECT_GE(sd_bus_message_read(reply.get(), "s", &text), 0);
    return text ? text : "";
  }
  bool boolProperty(const char* name) {
    MessagePtr reply = property(name, "b");
    int value = 0;
    EXPECT_GE(sd_bus_message_read(reply.get(), "b", &value), 0);
    return value != 0;
  }
  std::uint64_t usecProperty(const char* name) {
    MessagePtr reply = property(name, "t");
    std::uint64_t value = 0;
    EXPECT_GE(sd_bus_message_read(reply.get(), "t", &value), 0);
    return value;
  }
  std::vector<std::vector<std::string>> domainsProperty() {
    MessagePtr reply = property("Domains", "a(sssssss)");
    std::vector<std::vector<std::string>> rows;
    EXPECT_GE(sd_bus_message_enter_container(reply.get(), SD_BUS_TYPE_ARRAY, "(sssssss)"), 0);
    const char* f[7] = {};
    while (sd_bus_message_read(reply.get(), "(sssssss)", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5],
                               &f[6]) > 0)
      rows.emplace_back(f, f + 7);
    return rows;
  }

  nlohmann::json statusFile() {
    std::ifstream in(runtime_dir / "status.json");
    return nlohmann::json::parse(in);
  }

  std::uint64_t usecOf(agent::TimePoint time) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count());
  }

  CallResult scheduleIn(agent::Clock::duration starts_in) {
    const auto start = clock.now() + starts_in;
    return agentCall("Schedule", "ttbs", usecOf(start), usecOf(start + 2h), 0, "kernel update");
  }

  // Waits for a PropertiesChanged that names `property` (with its value or
  // as invalidated); returns it.
  std::optional<ChangeRecorder::Change> changeOf(const std::string& property) {
    std::optional<ChangeRecorder::Change> found;
    runUntil(io, [&] {
      for (const auto& change : recorder.changes)
        if (change.mentions(property)) {
          found = change;
          return true;
        }
      return false;
    });
    return found;
  }

  // Waits for a PropertiesChanged carrying Phase = `phase`.
  bool phaseSignalled(const std::string& phase) {
    return runUntil(io, [&] {
      for (const auto& change : recorder.changes) {
        auto found = change.strings.find("Phase");
        if (found != change.strings.end() && found->second == phase) return true;
      }
      return false;
    });
  }

  fake::PrivateDbus bus;
  boost::asio::io_context io;
  fs::path runtime_dir;
  fake::FakeHypervisor hypervisor;
  fake::FakeClock clock;
  fake::MemoryJournal journal;
  agent::EngineSettings settings;
  std::string web;
  ServiceNotifier notifier;
  std::optional<AgentService> service;
  agent::MaintenanceEngine* engine = nullptr;  // the service's
  BusPtr client;
  SlotPtr match;
  ChangeRecorder recorder;
  std::optional<BusDispatcher> client_dispatcher;
  int reopens = 0;
  int refuse_opens = 0;
  std::chrono::milliseconds publish_interval = 100ms;

  // The bus daemon restarts: the client is gone with it and comes back once
  // the service has reconnected.
  void restartBus() {
    client_dispatcher.reset();
    match.reset();
    client.reset();
    bus.restart();
  }
  void reconnectClient() {
    client = openBusAt(bus.address());
    client_dispatcher.emplace(io, client.get());
  }
  bool busConnectedInStatusFile() { return statusFile()["dbus"]["connected"] == true; }
};

TEST_F(DbusServiceTest, ServesTheRecoveredStateAndWritesTheStatusFile) {
  EXPECT_EQ(stringProperty("Phase"), "idle");
  EXPECT_FALSE(boolProperty("Ready"));
  EXPECT_EQ(stringProperty("SessionId"), "");
  EXPECT_EQ(usecProperty("WindowStart"), 0u);
  EXPECT_EQ(usecProperty("WindowEnd"), 0u);
  EXPECT_FALSE(boolProperty("Removal"));
  EXPECT_EQ(stringProperty("HypervisorConnection"), "connected");
  EXPECT_FALSE(stringProperty("Version").empty());

  const auto domains = domainsProperty();
  ASSERT_EQ(domains.size(), 2u);
  std::set<std::string> names{domains[0][1], domains[1][1]};
  EXPECT_EQ(names, (std::set<std::string>{"web1", "db1"}));
  for (const auto& row : domains) {
    EXPECT_EQ(row[0], hypervisor.uuidOf(row[1]));
    EXPECT_EQ(row[2], "running");
  }

  // One rendering: the property and the file are the same document.
  const nlohmann::json from_bus = nlohmann::json::parse(stringProperty("StatusJSON"));
  EXPECT_EQ(from_bus, statusFile());
  EXPECT_EQ(from_bus["phase"], "idle");
  EXPECT_EQ(from_bus, agent::statusToJson(service->shownStatus()));
  // The service adds the bus connection to the engine's status.
  EXPECT_EQ(from_bus["dbus"]["connected"], true);
  EXPECT_EQ(from_bus["dbus"]["since"], agent::formatTime(clock.now()));
  EXPECT_TRUE(from_bus["dbus"]["last_error"].is_null());
}

TEST_F(DbusServiceTest, ScheduleReturnsTheSessionAndEmitsWhatChanged) {
  const CallResult result = scheduleIn(30min);
  ASSERT_EQ(result.error_name, "") << result.error_message;
  const char* session_id = nullptr;
  ASSERT_GE(sd_bus_message_read(result.reply.get(), "s", &session_id), 0);
  ASSERT_NE(std::string(session_id), "");

  const auto change = changeOf("Phase");
  ASSERT_TRUE(change) << "no PropertiesChanged for Phase";
  EXPECT_EQ(change->strings.at("Phase"), "scheduled");
  EXPECT_EQ(change->strings.at("SessionId"), session_id);
  EXPECT_TRUE(change->names.count("WindowStart"));
  EXPECT_TRUE(change->names.count("Reason"));
  // The properties that grow with the domains are invalidated, not sent:
  // a Get returns the new document.
  EXPECT_TRUE(change->invalidated.count("StatusJSON"));
  EXPECT_TRUE(change->invalidated.count("Domains"));
  EXPECT_FALSE(change->names.count("StatusJSON"));
  EXPECT_FALSE(change->names.count("Domains"));
  EXPECT_FALSE(change->invalidated.count("Phase"));
  // Unchanged values are not re-sent; the constant one never is.
  EXPECT_FALSE(change->mentions("Removal"));
  EXPECT_FALSE(change->mentions("HypervisorConnection"));
  EXPECT_FALSE(change->mentions("Version"));
  EXPECT_EQ(nlohmann::json::parse(stringProperty("StatusJSON")), statusFile());
  EXPECT_EQ(statusFile()["session_id"], session_id);

  EXPECT_EQ(stringProperty("SessionId"), session_id);
  EXPECT_EQ(stringProperty("Reason"), "kernel update");
  EXPECT_EQ(usecProperty("WindowStart"), usecOf(clock.now() + 30min));
  EXPECT_EQ(statusFile()["phase"], "scheduled");
}

// The timer the service arms at nextWakeup() calls tick(): the window starts
// 200 ms after scheduling; the engine's clock is moved past it at once, and
// nothing but the timer enters the engine afterwards.
TEST_F(DbusServiceTest, WakeupTimerTicksTheEngine) {
  ASSERT_EQ(scheduleIn(200ms).error_name, "");
  clock.advance(1s);
  ASSERT_EQ(engine->status().phase, agent::HostPhase::scheduled);
  ASSERT_TRUE(phaseSignalled("draining")) << "the window start was not acted on";
  EXPECT_EQ(stringProperty("Phase"), "draining");
  EXPECT_EQ(statusFile()["phase"], "draining");
}

// After a hypervisor event the timer is re-armed from the engine's new
// nextWakeup(): a window that started meanwhile (by the engine's clock) is
// acted on without waiting for the earlier, later-firing wakeup.
TEST_F(DbusServiceTest, HypervisorEventRearmsTheWakeup) {
  ASSERT_EQ(scheduleIn(30min).error_name, "");
  clock.advance(31min);
  hypervisor.addDomainWithEvent(fake::makeDomain("late1"));
  ASSERT_TRUE(phaseSignalled("draining"));
  EXPECT_EQ(statusFile()["phase"], "draining");
}

TEST_F(DbusServiceTest, HypervisorEventsChangeTheDomainsProperty) {
  recorder.changes.clear();
  hypervisor.setStateWithEvent(web, hv::DomainRunState::paused, hv::DomainEventKind::suspended);
  const auto change = changeOf("Domains");
  ASSERT_TRUE(change) << "no PropertiesChanged for Domains";
  EXPECT_TRUE(change->invalidated.count("Domains"));
  EXPECT_FALSE(change->mentions("Phase"));
  for (const auto& row : domainsProperty())
    if (row[1] == "web1") {
      EXPECT_EQ(row[2], "paused");
    }
}

// The bus daemon goes away and comes back: the service notices, reconnects
// with backoff (the first two attempts fail here), owns the name again and
// serves the state as it is now, with what changed while the bus was down.
TEST_F(DbusServiceTest, ReconnectsWhenTheBusComesBackAndServesTheCurrentState) {
  ASSERT_EQ(scheduleIn(200ms).error_name, "");
  ASSERT_TRUE(busConnectedInStatusFile());
  const auto connected_since = statusFile()["dbus"]["since"];
  EXPECT_TRUE(connected_since.is_string());
  EXPECT_TRUE(statusFile()["dbus"]["last_error"].is_null());

  refuse_opens = 2;
  restartBus();
  ASSERT_TRUE(runUntil(io, [&] { return !busConnectedInStatusFile(); }))
      << "the lost connection is not shown";
  EXPECT_EQ(statusFile()["dbus"]["last_error"], "lost the connection to the D-Bus system bus");
  // The maintenance goes on while the bus is down: the window starts.
  clock.advance(1s);
  ASSERT_TRUE(runUntil(io, [&] {
    return engine->status().phase == agent::HostPhase::draining && busConnectedInStatusFile();
  })) << "no drain or no reconnect";
  EXPECT_EQ(reopens, 3);
  EXPECT_EQ(statusFile()["dbus"]["last_error"], "refused by the test");

  reconnectClient();
  EXPECT_EQ(stringProperty("Phase"), "draining");
  const auto shown = nlohmann::json::parse(stringProperty("StatusJSON"));
  EXPECT_EQ(shown["dbus"]["connected"], true);
  EXPECT_EQ(shown, statusFile());
  // Methods are served again.
  EXPECT_EQ(agentCall("Cancel", "").error_name, "");
}

// Someone else owns the name when the bus is back: each attempt fails, the
// status says why, and the name is claimed once it is free again.
TEST_F(DbusServiceTest, ANameTakenWhileTheBusWasDownIsClaimedOnceFree) {
  restartBus();
  BusPtr rival = openBusAt(bus.address());
  requestBusName(rival.get(), kBusName);
  ASSERT_TRUE(runUntil(io, [&] {
    const auto error = statusFile()["dbus"]["last_error"];
    return error.is_string() && error.get<std::string>().find("already owned") != std::string::npos;
  })) << statusFile()["dbus"].dump();
  EXPECT_FALSE(busConnectedInStatusFile());
  rival.reset();
  ASSERT_TRUE(runUntil(io, [&] { return busConnectedInStatusFile(); }));
  reconnectClient();
  EXPECT_EQ(stringProperty("Phase"), "idle");
}

TEST(ReconnectDelayTest, DoublesFromTheFirstDelayUpToTheMaximum) {
  const BusReconnectSettings settings;  // 200 ms doubling to 30 s
  EXPECT_EQ(reconnectDelay(settings, 0), 200ms);
  EXPECT_EQ(reconnectDelay(settings, 1), 400ms);
  EXPECT_EQ(reconnectDelay(settings, 2), 800ms);
  EXPECT_EQ(reconnectDelay(settings, 7), 25600ms);
  EXPECT_EQ(reconnectDelay(settings, 8), 30s);
  EXPECT_EQ(reconnectDelay(settings, 1000), 30s);
  EXPECT_EQ(reconnectDelay(settings, ~0u), 30s);
  EXPECT_EQ(reconnectDelay({1s, 1s}, 3), 1s);
}

TEST_F(DbusServiceTest, RefusalsCarryTheEnginesMessage) {
  std::string expected;
  try {
    engine->cancel();
  } catch (const agent::CommandError& error) {
    expected = error.what();
  }
  ASSERT_FALSE(expected.empty()) << "cancel on an idle host should be refused";

  const CallResult cancel = agentCall("Cancel", "");
  EXPECT_EQ(cancel.error_name, kRefusedError);
  EXPECT_EQ(cancel.error_message, expected);

  const CallResult unknown = agentCall("Acknowledge", "ss", "no-such-domain", "move");
  EXPECT_EQ(unknown.error_name, kRefusedError);
  EXPECT_NE(unknown.error_message.find("no-such-domain"), std::string::npos)
      << unknown.error_message;

  const auto start = clock.now() + 1h;
  const CallResult backwards =
      agentCall("Schedule", "ttbs", usecOf(start), usecOf(start - 30min), 0, "oops");
  EXPECT_EQ(backwards.error_name, kRefusedError);
  EXPECT_NE(backwards.error_message.find("cannot schedule"), std::string::npos)
      << backwards.error_message;

  const CallResult begin = agentCall("Begin", "");
  EXPECT_EQ(begin.error_name, kRefusedError);
  EXPECT_NE(begin.error_message.find("cannot begin"), std::string::npos) << begin.error_message;
  EXPECT_EQ(stringProperty("Phase"), "idle");
}

TEST_F(DbusServiceTest, MalformedArgumentsAreInvalidArgs) {
  const CallResult result = agentCall("Schedule", "ss", "tomorrow", "later");
  EXPECT_EQ(result.error_name, SD_BUS_ERROR_INVALID_ARGS);

  // A choice other than move/keep is the caller's mistake, not the engine's refusal.
  const CallResult ack = agentCall("Acknowledge", "ss", "web1", "maybe");
  EXPECT_EQ(ack.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(ack.error_message.find("'maybe'"), std::string::npos) << ack.error_message;
}

// Microseconds times 1000 must not wrap around: a window in year ~75000 was
// once taken as starting now, year 10000 as 1816.
TEST_F(DbusServiceTest, TimestampsOutOfRangeAreInvalidArgsNamingTheArgument) {
  const std::uint64_t year_75000 = 2'305'000'000'000'000'000;
  const CallResult far = agentCall("Schedule", "ttbs", year_75000, year_75000 + 3'600'000'000, 0,
                                   "far future");
  EXPECT_EQ(far.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(far.error_message.find("start_usec 2305000000000000000 is out of range"),
            std::string::npos)
      << far.error_message;

  const std::uint64_t year_10000 = 253'402'300'800'000'000;
  const CallResult end = agentCall("Schedule", "ttbs", usecOf(clock.now()), year_10000, 0, "");
  EXPECT_EQ(end.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(end.error_message.find("end_usec"), std::string::npos) << end.error_message;
  EXPECT_NE(end.error_message.find("before 2200-01-01T00:00:00Z"), std::string::npos)
      << end.error_message;
  EXPECT_EQ(stringProperty("Phase"), "idle");

  // The last accepted microsecond is still a time, not a wrapped one.
  const std::uint64_t last = 7'258'118'400'000'000 - 1;
  const CallResult edge = agentCall("Schedule", "ttbs", last - 1'000'000, last, 0, "edge");
  EXPECT_EQ(edge.error_name, "") << edge.error_message;
  EXPECT_EQ(usecProperty("WindowEnd"), last);
}

TEST_F(DbusServiceTest, ReasonsWithControlCharactersOrTooLongAreInvalidArgs) {
  const auto start = clock.now() + 1h;
  const CallResult escape =
      agentCall("Schedule", "ttbs", usecOf(start), usecOf(start + 1h), 0, "bios\x1b[2J\x07");
  EXPECT_EQ(escape.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(escape.error_message.find("reason contains the control character U+001B at byte 4"),
            std::string::npos)
      << escape.error_message;

  const CallResult newline =
      agentCall("Schedule", "ttbs", usecOf(start), usecOf(start + 1h), 0, "one\ntwo");
  EXPECT_EQ(newline.error_name, SD_BUS_ERROR_INVALID_ARGS);

  const std::string too_long(1025, 'x');
  const CallResult longer =
      agentCall("Schedule", "ttbs", usecOf(start), usecOf(start + 1h), 0, too_long.c_str());
  EXPECT_EQ(longer.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(longer.error_message.find("reason is 1025 bytes long (at most 1024)"),
            std::string::npos)
      << longer.error_message;
  EXPECT_EQ(stringProperty("Phase"), "idle");

  const std::string longest(1024, 'x');
  const CallResult fits =
      agentCall("Schedule", "ttbs", usecOf(start), usecOf(start + 1h), 0, longest.c_str());
  EXPECT_EQ(fits.error_name, "") << fits.error_message;
  EXPECT_EQ(stringProperty("Reason"), longest);
}

TEST_F(DbusServiceTest, RescheduleMovesTheWindowWithTheEnginesRules) {
  const CallResult idle = agentCall("Reschedule", "ttbs", usecOf(clock.now() + 1h),
                                    usecOf(clock.now() + 2h), 0, "");
  EXPECT_EQ(idle.error_name, kRefusedError);
  EXPECT_NE(idle.error_message.find("cannot reschedule"), std::string::npos) << idle.error_message;

  ASSERT_EQ(scheduleIn(30min).error_name, "");
  const std::string session = stringProperty("SessionId");
  recorder.changes.clear();
  const auto start = clock.now() + 2h;
  const CallResult moved =
      agentCall("Reschedule", "ttbs", usecOf(start), usecOf(start + 3h), 1, "moved by the admin");
  ASSERT_EQ(moved.error_name, "") << moved.error_message;
  const auto change = changeOf("WindowStart");
  ASSERT_TRUE(change) << "no PropertiesChanged for WindowStart";
  EXPECT_EQ(usecProperty("WindowStart"), usecOf(start));
  EXPECT_EQ(usecProperty("WindowEnd"), usecOf(start + 3h));
  EXPECT_TRUE(boolProperty("Removal"));
  EXPECT_EQ(stringProperty("Reason"), "moved by the admin");
  EXPECT_EQ(stringProperty("SessionId"), session);  // the same maintenance, moved
  EXPECT_EQ(statusFile()["window"]["reason"], "moved by the admin");

  // The engine's checks apply: an end before the start is refused.
  const CallResult backwards =
      agentCall("Reschedule", "ttbs", usecOf(start), usecOf(start - 1h), 0, "");
  EXPECT_EQ(backwards.error_name, kRefusedError);
  EXPECT_NE(backwards.error_message.find("cannot reschedule: the window ends"), std::string::npos)
      << backwards.error_message;
  // And the caller's text is checked before the engine sees it.
  const CallResult bell = agentCall("Reschedule", "ttbs", usecOf(start), usecOf(start + 1h), 0,
                                    "ring\x07");
  EXPECT_EQ(bell.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_EQ(stringProperty("Reason"), "moved by the admin");
}

// Publication with an interval far longer than the test's steps: what is
// held back and what is not cannot depend on the machine's speed.
class DbusServiceCoalescingTest : public DbusServiceTest {
 protected:
  DbusServiceCoalescingTest() { publish_interval = 1500ms; }

  std::string webStateInFile() {
    const nlohmann::json status = statusFile();
    for (const auto& domain : status["domains"])
      if (domain["name"] == "web1") return domain["run_state"];
    return "";
  }
  std::size_t domainsChanges() const {
    return static_cast<std::size_t>(std::count_if(
        recorder.changes.begin(), recorder.changes.end(),
        [](const ChangeRecorder::Change& change) { return change.mentions("Domains"); }));
  }
};

// A burst of changes (here twelve events at once) goes out twice: the first
// at once, the rest together with the last state one interval later.
TEST_F(DbusServiceCoalescingTest, ABurstIsPublishedAtOnceAndThenOncePerInterval) {
  recorder.changes.clear();
  for (int i = 0; i < 12; ++i) {
    const bool pause = i % 2 == 0;
    hypervisor.setStateWithEvent(web, pause ? hv::DomainRunState::paused : hv::DomainRunState::running,
                                 pause ? hv::DomainEventKind::suspended : hv::DomainEventKind::resumed);
  }
  ASSERT_TRUE(runUntil(io, [&] { return domainsChanges() >= 1; }));
  EXPECT_EQ(webStateInFile(), "paused") << "the first change, at once";
  runUntil(io, [] { return false; }, 300ms);
  EXPECT_EQ(domainsChanges(), 1u) << "the rest is held back";
  ASSERT_TRUE(runUntil(io, [&] { return domainsChanges() >= 2; }, 3s)) << "never published";
  EXPECT_EQ(webStateInFile(), "running") << "the last state";
  runUntil(io, [] { return false; }, 300ms);
  EXPECT_EQ(domainsChanges(), 2u);
}

// A change of phase is not held back, nor is what a method did: its caller
// reads it as soon as the reply arrives.
TEST_F(DbusServiceCoalescingTest, PhaseChangesAndMethodRepliesAreNotHeldBack) {
  hypervisor.setStateWithEvent(web, hv::DomainRunState::paused, hv::DomainEventKind::suspended);
  ASSERT_EQ(webStateInFile(), "paused");
  ASSERT_EQ(scheduleIn(30min).error_name, "");
  EXPECT_EQ(statusFile()["phase"], "scheduled");
  EXPECT_EQ(stringProperty("Phase"), "scheduled");
  hypervisor.setStateWithEvent(web, hv::DomainRunState::running, hv::DomainEventKind::resumed);
  EXPECT_EQ(webStateInFile(), "paused") << "held back within the interval";
  ASSERT_EQ(agentCall("AcknowledgeWithReason", "sss", "db1", "move", "fine").error_name, "");
  EXPECT_EQ(webStateInFile(), "running");
  const nlohmann::json status = statusFile();
  for (const auto& domain : status["domains"]) {
    if (domain["name"] == "db1") {
      EXPECT_EQ(domain["ack_reason"], "fine");
    }
  }
}

TEST_F(DbusServiceTest, AcknowledgeWithReasonKeepsTheReasonWithTheAck) {
  ASSERT_EQ(scheduleIn(30min).error_name, "");
  const CallResult acked =
      agentCall("AcknowledgeWithReason", "sss", "web1", "move", "owner agreed (TICKET-9)");
  ASSERT_EQ(acked.error_name, "") << acked.error_message;
  const nlohmann::json status = statusFile();
  nlohmann::json web;
  for (const auto& domain : status["domains"])
    if (domain["name"] == "web1") web = domain;
  EXPECT_EQ(web["ack"], "move");
  EXPECT_EQ(web["ack_reason"], "owner agreed (TICKET-9)");
  ASSERT_TRUE(web["notice"].is_object()) << web.dump();
  EXPECT_EQ(web["notice"]["ack_reason"], "owner agreed (TICKET-9)");

  // Acknowledge is AcknowledgeWithReason without one.
  ASSERT_EQ(agentCall("Acknowledge", "ss", "db1", "move").error_name, "");
  const nlohmann::json after = statusFile();
  for (const auto& domain : after["domains"]) {
    if (domain["name"] == "db1") {
      EXPECT_TRUE(domain["ack_reason"].is_null()) << domain.dump();
    }
  }

  const CallResult bad = agentCall("AcknowledgeWithReason", "sss", "web1", "keep", "two\nlines");
  EXPECT_EQ(bad.error_name, SD_BUS_ERROR_INVALID_ARGS);
  EXPECT_NE(bad.error_message.find("reason contains the control character U+000A"),
            std::string::npos)
      << bad.error_message;
}

// The introspection XML in the repository is the interface's source of truth
// (docs/dbus-api.md points at it): the served interface must match it member
// for member, with types, argument names, access and change annotations.
std::set<std::string> membersOf(const pugi::xml_node& interface) {
  std::set<std::string> members;
  for (const pugi::xml_node& node : interface.children()) {
    const std::string kind = node.name();
    std::string line = kind + " " + node.attribute("name").value();
    if (kind == "method" || kind == "signal") {
      for (const pugi::xml_node& arg : node.children("arg"))
        line += std::string(" ") + arg.attribute("direction").as_string("in") + ":" +
                arg.attribute("name").value() + ":" + arg.attribute("type").value();
    } else if (kind == "property") {
      line += std::string(" ") + node.attribute("type").value() + " " +
              node.attribute("access").value();
      const pugi::xml_node emits = node.find_child_by_attribute(
          "annotation", "name", "org.freedesktop.DBus.Property.EmitsChangedSignal");
      line += std::string(" emits=") + (emits ? emits.attribute("value").value() : "true");
    } else {
      continue;
    }
    members.insert(line);
  }
  return members;
}

TEST_F(DbusServiceTest, IntrospectionMatchesTheCheckedInXml) {
  CallResult result = call("org.freedesktop.DBus.Introspectable", "Introspect", "");
  ASSERT_EQ(result.error_name, "");
  const char* live_xml = nullptr;
  ASSERT_GE(sd_bus_message_read(result.reply.get(), "s", &live_xml), 0);
  pugi::xml_document live;
  ASSERT_TRUE(live.load_string(live_xml));
  pugi::xml_document file;
  const std::string path =
      std::string(HOSTMAINT_SOURCE_DIR) + "/agent/src/service/org.hostmaint.Agent1.xml";
  ASSERT_TRUE(file.load_file(path.c_str())) << path;

  const auto live_interface =
      live.child("node").find_child_by_attribute("interface", "name", kInterface);
  const auto file_interface =
      file.child("node").find_child_by_attribute("interface", "name", kInterface);
  ASSERT_TRUE(live_interface);
  ASSERT_TRUE(file_interface) << path << " has no interface " << kInterface;
  EXPECT_EQ(membersOf(file_interface), membersOf(live_interface));
}

TEST(ChangedProperties, NamesExactlyTheValuesThatDiffer) {
  PropertyValues before;
  before.phase = "idle";
  before.status_json = "{}";
  PropertyValues after = before;
  EXPECT_TRUE(changedProperties(before, after).empty());
  after.phase = "scheduled";
  after.window_end_usec = 42;
  after.domains.push_back({"u", "web1", "running", "planned", "", "", ""});
  after.status_json = "{\"generation\":2}";
  EXPECT_EQ(changedProperties(before, after),
            (std::vector<std::string>{"Phase", "WindowEnd", "Domains", "StatusJSON"}));
}

TEST(MigrationsProperty, ListsOnlyRunningMigrationsWithTheirProgress) {
  agent::HostStatus status;
  agent::DomainStatus moving;
  moving.uuid = "u-1";
  moving.name = "db";
  moving.stage = agent::DomainStage::acting;
  moving.destination = "qemu+tls://b/system";
  agent::MigrationProgress progress;
  progress.percent = 40;
  progress.data_remaining_bytes = 600;
  progress.downtime_limit_ms = 400;
  progress.escalation = "downtime 400ms";
  moving.progress = progress;
  agent::DomainStatus done;
  done.uuid = "u-2";
  done.stage = agent::DomainStage::done;
  status.domains = {moving, done};
  const PropertyValues values = propertyValuesOf(status);
  ASSERT_EQ(values.migrations.size(), 1u);
  EXPECT_EQ(values.migrations[0].name, "db");
  EXPECT_EQ(values.migrations[0].destination, "qemu+tls://b/system");
  EXPECT_EQ(values.migrations[0].remaining_bytes, 600u);
  EXPECT_EQ(values.migrations[0].escalation, "downtime 400ms");

  PropertyValues later = values;
  later.migrations[0].percent = 80;
  EXPECT_EQ(changedProperties(values, later), (std::vector<std::string>{"Migrations"}));
}

}  // namespace
}  // namespace hostmaint::service

namespace hostmaint::service {
namespace {

// A service manager that stops reading must not stall the event loop: after
// READY=1, updates are sent without waiting and dropped when its queue is full.
TEST(ServiceNotifierTest, UpdatesNeverBlockOnAManagerThatDoesNotRead) {
  std::string pattern = (fs::temp_directory_path() / "hostmaint-notify-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path socket_path = fs::path(pattern) / "notify";
  const int manager = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(manager, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(bind(manager, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
  {
    ServiceNotifier notifier;
    notifier.ready("idle");
    // Far more than a unix datagram queue holds (net.unix.max_dgram_qlen, 10 by default).
    for (int i = 0; i < 500; ++i) notifier.status("update " + std::to_string(i));
    notifier.stopping();
  }
  unsetenv("NOTIFY_SOCKET");
  char buffer[512] = {};
  const ssize_t got = recv(manager, buffer, sizeof buffer - 1, MSG_DONTWAIT);
  ASSERT_GT(got, 0);
  EXPECT_EQ(std::string(buffer), "READY=1\nSTATUS=idle");
  std::memset(buffer, 0, sizeof buffer);
  ASSERT_GT(recv(manager, buffer, sizeof buffer - 1, MSG_DONTWAIT), 0);
  EXPECT_EQ(std::string(buffer), "STATUS=update 0");
  close(manager);
  fs::remove_all(pattern);
}

TEST(StatusLineTest, SaysPhaseReadinessAndStages) {
  agent::HostStatus status;
  status.phase = agent::HostPhase::draining;
  status.hypervisor_connection = hv::ConnectionState::disconnected;
  agent::DomainStatus done;
  done.stage = agent::DomainStage::done;
  agent::DomainStatus acting;
  acting.stage = agent::DomainStage::acting;
  status.domains = {done, acting, done};
  EXPECT_EQ(statusLine(status),
            "draining, not ready, 3 domains (1 acting, 2 done), hypervisor disconnected");
  status.dbus = agent::BusHealth{false, std::nullopt, "lost"};
  EXPECT_EQ(statusLine(status),
            "draining, not ready, 3 domains (1 acting, 2 done), hypervisor disconnected, D-Bus "
            "disconnected");
  status.dbus->connected = true;
  EXPECT_EQ(statusLine(status),
            "draining, not ready, 3 domains (1 acting, 2 done), hypervisor disconnected");
}

}  // namespace
}  // namespace hostmaint::service
