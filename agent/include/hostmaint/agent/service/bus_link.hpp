// BusLink is hostmaintd on the D-Bus system bus: the connection, the
// AgentObject registered on it, the BusDispatcher driving it from the loop and
// the bus name, kept up across a lost connection.
//
// At start the link is attached to a bus its owner opened, and a failure is
// thrown: a daemon that cannot reach the bus does not start, and systemd
// restarts it. A loss after that is not fatal. The link drops the dead
// connection and opens a new one after a doubling delay (reconnectDelay),
// registers the object again, publishes the status as shown now and claims
// the name again; a name owned by someone else meanwhile is one more failed
// attempt. Nothing else in the daemon depends on the bus: the engine,
// status.json, the HTTP endpoint and the controller link go on meanwhile
// (docs/dbus-api.md, "Reconnection").
//
// Everything runs on the io_context's thread: the retries wait on a
// steady_timer, and the name is claimed again asynchronously, so the loop
// never waits on a bus that is coming back.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hostmaint/agent/engine.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/service/agent_object.hpp"
#include "hostmaint/agent/service/asio_sd_bus.hpp"

namespace hostmaint::service {

struct BusReconnectSettings {
  std::chrono::milliseconds first_delay{200};
  std::chrono::milliseconds max_delay{std::chrono::seconds(30)};
};

// How long to wait before reconnect attempt `attempt` (0: the first after
// the loss): first_delay doubled per attempt, at most max_delay.
std::chrono::milliseconds reconnectDelay(const BusReconnectSettings& settings, unsigned attempt);

// What the link asks of its owner.
struct BusLinkHooks {
  // Opens a new connection to the bus (openSystemBus in the daemon); throws
  // BusSetupError.
  std::function<BusPtr()> open_bus;
  // The status as shown now: published on a new connection's object.
  std::function<agent::HostStatus()> shown_status;
  // health() changed (lost, reconnected, a new error): publish again.
  std::function<void()> on_health_changed;
  // Before a method's reply: publish a status change still held back, so the
  // caller reads what its call did (AgentServiceOptions::publish_interval).
  std::function<void()> before_reply;
  // The notices' texts, shared with the status renderer (may be null).
  std::shared_ptr<agent::NoticeTexts> notice_texts;
};

class BusLink {
 public:
  // Attaches nothing yet: attach() does, once.
  BusLink(boost::asio::io_context& io, const agent::WallClock& clock,
          agent::MaintenanceEngine& engine, CallerPolicy policy, BusLinkHooks hooks,
          BusReconnectSettings settings = {});
  ~BusLink();
  BusLink(const BusLink&) = delete;
  BusLink& operator=(const BusLink&) = delete;

  // At start: registers the object on `bus`, publishes shown_status() on it,
  // drives the bus from the loop and claims the name, waiting for the bus's
  // answer (nothing else is served yet). Throws BusSetupError with the reason.
  void attach(BusPtr bus);

  // A new status: PropertiesChanged for what changed. Dropped while there is
  // no connection: a new one publishes the whole status.
  void publish(const agent::HostStatus& status);
  // The same with StatusJSON already rendered (statusToJson(status).dump(2)).
  void publish(const agent::HostStatus& status, std::string status_json);
  // The Notice signal. Dropped while there is no connection: the Notices
  // property holds the latest notice of each domain.
  void emitNotice(const std::string& uuid, const std::string& name,
                  const agent::DomainNotice& notice);
  void setCallerPolicy(CallerPolicy policy);

  const agent::BusHealth& health() const { return health_; }

 private:
  // One connection and what lives on it, destroyed in reverse.
  struct Connection {
    BusPtr bus;
    std::unique_ptr<AgentObject> object;
    std::unique_ptr<BusDispatcher> dispatcher;
    SlotPtr name_request;  // the asynchronous RequestName of a reconnect
  };

  // Opens a connection with the object registered and its status published.
  void connect(BusPtr bus);
  // A reconnect attempt: opens the bus and asks for the name.
  void attempt();
  static int onNameReply(sd_bus_message* reply, void* self, sd_bus_error* error);
  void onClaimed();
  // The connection is lost or an attempt failed: nothing is sent on it any
  // more; it is dropped from the loop (not inside sd-bus's or the
  // dispatcher's callback) and the next attempt scheduled.
  void fail(std::string why);
  void dropAndRetry(const std::string& why);

  boost::asio::io_context& io_;
  const agent::WallClock& clock_;
  agent::MaintenanceEngine& engine_;
  CallerPolicy policy_;
  BusLinkHooks hooks_;
  const BusReconnectSettings settings_;

  agent::BusHealth health_;
  std::optional<Connection> connection_;
  bool usable_ = false;  // connection_ is alive: send on it
  unsigned attempts_ = 0;  // failed attempts since the loss
  std::chrono::steady_clock::time_point lost_at_{};
  std::string last_logged_error_;
  boost::asio::steady_timer retry_;
};

}  // namespace hostmaint::service
