#include "hostmaint/agent/service/bus_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace hostmaint::service {
namespace {

// RequestName's answers (the D-Bus specification).
constexpr std::uint32_t kPrimaryOwner = 1;
constexpr std::uint32_t kAlreadyOwner = 4;

std::string secondsText(std::chrono::steady_clock::duration duration) {
  const double seconds = std::chrono::duration<double>(duration).count();
  return fmt::format("{:.1f} s", seconds);
}

}  // namespace

std::chrono::milliseconds reconnectDelay(const BusReconnectSettings& settings, unsigned attempt) {
  std::chrono::milliseconds delay = settings.first_delay;
  // Doubled step by step: a long outage's attempt count cannot overflow a shift.
  for (unsigned i = 0; i < attempt && delay < settings.max_delay && delay.count() > 0; ++i)
    delay *= 2;
  return std::min(delay, settings.max_delay);
}

BusLink::BusLink(boost::asio::io_context& io, const agent::WallClock& clock,
                 agent::MaintenanceEngine& engine, CallerPolicy policy, BusLinkHooks hooks,
                 BusReconnectSettings settings)
    : io_(io),
      clock_(clock),
      engine_(engine),
      policy_(std::move(policy)),
      hooks_(std::move(hooks)),
      settings_(settings),
      retry_(io) {}

BusLink::~BusLink() {
  // The retry's handler sees operation_aborted and touches nothing.
  retry_.cancel();
  connection_.reset();
}

void BusLink::attach(BusPtr bus) {
  // Connected from here: if claiming the name fails the daemon does not
  // start, and the status published below says what clients will see.
  health_.connected = true;
  health_.since = clock_.now();
  connect(std::move(bus));
  // The object is registered before the name is claimed: whoever sees the
  // name sees the whole object.
  requestBusName(connection_->bus.get(), kBusName);
}

void BusLink::connect(BusPtr bus) {
  connection_.emplace();
  connection_->bus = std::move(bus);
  sd_bus* raw = connection_->bus.get();
  connection_->object = std::make_unique<AgentObject>(raw, engine_, policy_, hooks_.before_reply,
                                                         hooks_.notice_texts);
  connection_->dispatcher = std::make_unique<BusDispatcher>(
      io_, raw, [this] { fail("lost the connection to the D-Bus system bus"); });
  usable_ = true;
  // After the object and its dispatcher exist: the notices the status issues
  // now (a restart that changed a plan, a restore after a host shutdown) go
  // out as signals through emitNotice, which kicks the dispatcher.
  connection_->object->publish(hooks_.shown_status());
}

void BusLink::publish(const agent::HostStatus& status) {
  if (!usable_) return;
  connection_->object->publish(status);
  connection_->dispatcher->kick();
}

void BusLink::publish(const agent::HostStatus& status, std::string status_json) {
  if (!usable_) return;
  connection_->object->publish(status, std::move(status_json));
  connection_->dispatcher->kick();
}

void BusLink::emitNotice(const std::string& uuid, const std::string& name,
                         const agent::DomainNotice& notice) {
  if (!usable_) return;
  connection_->object->emitNotice(uuid, name, notice);
  connection_->dispatcher->kick();
}

void BusLink::setCallerPolicy(CallerPolicy policy) {
  policy_ = policy;
  if (connection_ && connection_->object) connection_->object->setCallerPolicy(std::move(policy));
}

void BusLink::fail(std::string why) {
  usable_ = false;
  // Called from the dispatcher or from sd-bus's reply callback, both still
  // using the connection: it is dropped from the loop instead.
  retry_.expires_after(std::chrono::steady_clock::duration::zero());
  retry_.async_wait([this, why = std::move(why)](const boost::system::error_code& error) {
    if (error) return;
    dropAndRetry(why);
  });
}

void BusLink::dropAndRetry(const std::string& why) {
  connection_.reset();
  usable_ = false;
  const std::chrono::milliseconds delay = reconnectDelay(settings_, attempts_);
  if (health_.connected) {
    spdlog::warn(
        "{}; the maintenance goes on, reconnecting with backoff (first attempt in {} ms)", why,
        delay.count());
    lost_at_ = std::chrono::steady_clock::now();
    health_ = {false, clock_.now(), why};
    last_logged_error_ = why;
    hooks_.on_health_changed();
  } else if (why != last_logged_error_) {
    // Each distinct reason once; the same one again only at debug level.
    const bool name_refused = why.rfind("cannot own the bus name", 0) == 0;
    spdlog::log(name_refused ? spdlog::level::err : spdlog::level::warn,
                "cannot reconnect to the D-Bus system bus: {}; retrying with backoff (next in {} "
                "ms)",
                why, delay.count());
    last_logged_error_ = why;
    health_.last_error = why;
    hooks_.on_health_changed();
  } else {
    spdlog::debug("cannot reconnect to the D-Bus system bus: {}; next attempt in {} ms", why,
                  delay.count());
  }
  ++attempts_;
  retry_.expires_after(delay);
  retry_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    attempt();
  });
}

void BusLink::attempt() {
  try {
    connect(hooks_.open_bus());
  } catch (const BusSetupError& error) {
    fail(error.what());
    return;
  }
  // Asynchronously: a bus that accepts connections but answers slowly must
  // not hold up the loop, and with it the maintenance.
  sd_bus_slot* slot = nullptr;
  const int result = sd_bus_request_name_async(connection_->bus.get(), &slot, kBusName, 0,
                                               &BusLink::onNameReply, this);
  connection_->name_request.reset(slot);
  if (result < 0) {
    fail(std::string("cannot own the bus name ") + kBusName + ": " + std::strerror(-result));
    return;
  }
  connection_->dispatcher->kick();
}

int BusLink::onNameReply(sd_bus_message* reply, void* self, sd_bus_error*) {
  auto& link = *static_cast<BusLink*>(self);
  const std::string refused = std::string("cannot own the bus name ") + kBusName + ": ";
  if (const sd_bus_error* error = sd_bus_message_get_error(reply)) {
    link.fail(refused + (error->message ? error->message : error->name ? error->name : "refused"));
    return 0;
  }
  std::uint32_t answer = 0;
  const int read = sd_bus_message_read(reply, "u", &answer);
  if (read < 0) {
    link.fail(refused + "unreadable answer: " + std::strerror(-read));
    return 0;
  }
  if (answer != kPrimaryOwner && answer != kAlreadyOwner) {
    // No flags were given: neither queued nor replacing, as at start.
    link.fail(refused + "it is already owned (is another hostmaintd running?)");
    return 0;
  }
  link.onClaimed();
  return 0;
}

void BusLink::onClaimed() {
  spdlog::info("reconnected to the D-Bus system bus after {}, {} is ours again",
               secondsText(std::chrono::steady_clock::now() - lost_at_), kBusName);
  attempts_ = 0;
  last_logged_error_.clear();
  health_.connected = true;
  health_.since = clock_.now();
  // Republishes: the properties' StatusJSON says connected again.
  hooks_.on_health_changed();
}

}  // namespace hostmaint::service
