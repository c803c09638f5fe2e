// Hypervisor on one shared libvirt connection.
//
// Threads: the io thread owns all state here (inventory, connection state,
// observer calls). A one-thread "reader" pool opens connections and re-reads
// domains in event order; a worker pool runs the blocking actions. Both post
// their results back to the io thread.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <map>
#include <unordered_map>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"
#include "libvirt/definition_settler.hpp"
#include "libvirt/lazy_thread_pool.hpp"
#include "libvirt/destination_probe.hpp"
#include "libvirt/dirty_rate.hpp"
#include "libvirt/domain_actions.hpp"
#include "libvirt/domain_reader.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv {
namespace asio = boost::asio;
using libvirt::SharedConnection;

namespace {

// libvirt prints every error to stderr unless an error function is set; the
// errors are read per call (virGetLastErrorMessage) and reported with context.
void ignoreLibvirtError(void*, virErrorPtr) {}

DomainEventKind mapLifecycle(int event, int detail) {
  switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED: return DomainEventKind::defined;
    case VIR_DOMAIN_EVENT_UNDEFINED: return DomainEventKind::undefined;
    case VIR_DOMAIN_EVENT_STARTED: return DomainEventKind::started;
    case VIR_DOMAIN_EVENT_SUSPENDED: return DomainEventKind::suspended;
    case VIR_DOMAIN_EVENT_RESUMED: return DomainEventKind::resumed;
    case VIR_DOMAIN_EVENT_STOPPED:
      if (detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED) return DomainEventKind::migrated_away;
      if (detail == VIR_DOMAIN_EVENT_STOPPED_SAVED) return DomainEventKind::saved;
      return DomainEventKind::stopped;
    case VIR_DOMAIN_EVENT_SHUTDOWN: return DomainEventKind::changed;
    case VIR_DOMAIN_EVENT_PMSUSPENDED: return DomainEventKind::suspended;
    case VIR_DOMAIN_EVENT_CRASHED: return DomainEventKind::stopped;
    default: return DomainEventKind::changed;
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string closeReason(int reason) {
  switch (reason) {
    case VIR_CONNECT_CLOSE_REASON_ERROR: return "connection to libvirt closed: I/O error";
    case VIR_CONNECT_CLOSE_REASON_EOF: return "connection to libvirt closed: end of file";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
      return "connection to libvirt closed: keepalive timeout";
    case VIR_CONNECT_CLOSE_REASON_CLIENT: return "connection to libvirt closed by the client";
    default: return "connection to libvirt closed";
  }
}

class LibvirtHypervisor;

// What libvirt hands back to one connection's callbacks (freed by libvirt's
// free callback, or by us when registering fails). The generation tells the
// io thread whether the connection is still the current one: an event queued
// by a connection that has since been replaced must not touch the inventory
// read from its successor. `alive` is checked before `self` is used, which
// also makes a close reported from another thread during destruction safe.
struct ConnectionCallbacks {
  LibvirtHypervisor* self;
  std::weak_ptr<int> alive;
  asio::io_context& io;
  unsigned generation;
};

void freeConnectionCallbacks(void* opaque) { delete static_cast<ConnectionCallbacks*>(opaque); }

class LibvirtHypervisor final : public Hypervisor {
 public:
  LibvirtHypervisor(asio::io_context& io, LibvirtSettings settings)
      : io_(io),
        settings_(std::move(settings)),
        reconnect_timer_(io),
        backoff_(settings_.reconnect_min),
        workers_(std::max(1u, settings_.worker_threads)) {
    virSetErrorFunc(nullptr, ignoreLibvirtError);
    asio::post(io_, [this, alive = weakSelf()] {
      if (alive.lock()) connect();
    });
  }

  // Joins the threads: running shutdowns give up at their next poll; a
  // running migration is waited for.
  ~LibvirtHypervisor() override {
    stopping_ = true;
    lifetime_.reset();
    reconnect_timer_.cancel();
    reader_.join();
    workers_.join();
    conn_.reset();
  }

  void setObserver(HypervisorObserver* observer) override { observer_ = observer; }
  ConnectionState connectionState() const override { return state_; }
  std::string description() const override { return settings_.uri; }

  // libvirt's test driver keeps its state per connection: everything must
  // use the shared one there.
  bool usesTestDriver() const {
    return lower(driver_type_) == "test" || settings_.uri.rfind("test:", 0) == 0;
  }

  static bool isLongCall(ActionKind kind) {
    return kind != ActionKind::shutdown;  // its calls are short; it polls
  }

  Capabilities capabilities() const override {
    Capabilities caps;
    const bool test_driver = usesTestDriver();
    caps.live_migration = caps.cold_migration = !test_driver;
    if (test_driver) caps.why_no_migration = "the libvirt test driver cannot migrate";
    return caps;
  }

  std::vector<DomainInfo> domains() const override {
    std::vector<DomainInfo> out;
    out.reserve(inventory_.size());
    for (const auto& [uuid, info] : inventory_) out.push_back(info);
    return out;
  }

  std::optional<DomainInfo> domain(const std::string& uuid) const override {
    auto it = inventory_.find(uuid);
    if (it == inventory_.end()) return std::nullopt;
    return it->second;
  }

  const DomainInfo* findDomain(const std::string& uuid) const override {
    auto it = inventory_.find(uuid);
    return it == inventory_.end() ? nullptr : &it->second;
  }

  void startAction(const ActionRequest& request, ActionDone done,
                   ActionProgressFn progress) override {
    auto alive = weakSelf();
    libvirt::ActionContext ctx;
    if (progress)
      ctx.progress = [this, alive, progress](const ActionProgress& p) {
        asio::post(io_, [alive, progress, p] {
          if (alive.lock()) progress(p);
        });
      };
    ctx.stopping = &stopping_;
    if (request.kind == ActionKind::live_migrate || request.kind == ActionKind::adopt_migration) {
      std::erase_if(steer_cells_, [](const auto& entry) { return entry.second.expired(); });
      auto cell = std::make_shared<libvirt::SteerCell>();
      steer_cells_[request.uuid] = cell;
      ctx.steer = cell;
    }
    const bool own_connection = isLongCall(request.kind) && !usesTestDriver();
    workers_.post([this, alive, conn = conn_, request, done = std::move(done),
                          ctx = std::move(ctx), own_connection]() mutable {
      // A long call gets a connection of its own: libvirtd runs at most
      // max_client_requests (5 by default) calls of one connection at once,
      // so five migrations or saves on the shared one would hold back every
      // other call (inventory re-reads, progress, probes, a sixth action)
      // until one of them ended.
      libvirt::Connection own;
      if (own_connection) {
        own.reset(virConnectOpen(settings_.uri.c_str()));
        if (!own) {
          spdlog::warn("{} of '{}': cannot open a connection of its own ({}); using the shared one",
                       libvirt::actionVerb(request.kind), request.name, libvirt::lastError());
        }
      }
      ActionResult result = libvirt::runAction(own ? own.get() : conn.get(), request, ctx);
      own.reset();
      // A stop interrupts what it must; each action said so already. Nobody
      // hears the result then, and re-reading a domain whose migration goes
      // on waits behind it in libvirtd for seconds: the stop would too.
      if (stopping_) return;
      if (!result.ok) spdlog::warn("{}", result.message);
      // Re-read the domain before reporting, so that whoever hears `done`
      // sees the state the action left (the lifecycle event may come later).
      const std::string context = "after " + libvirt::actionVerb(request.kind);
      deliverAfterReread(alive, conn, request.uuid, true, context,
                         [done = std::move(done), result = std::move(result)] { done(result); });
    });
  }

  void steerMigration(const std::string& uuid, const MigrationSteer& steer) override {
    auto it = steer_cells_.find(uuid);
    if (it == steer_cells_.end()) return;
    std::shared_ptr<libvirt::SteerCell> cell = it->second.lock();
    if (!cell) {
      steer_cells_.erase(it);  // that migration ended
      return;
    }
    cell->hold = steer.hold;
    cell->hurry = steer.hurry;
  }

  void probeDirtyRate(const std::string& uuid, DirtyRateDone done) override {
    workers_.post([this, alive = weakSelf(), conn = conn_, uuid, done = std::move(done)]() mutable {
      DirtyRateReport report = libvirt::measureDirtyRate(conn.get(), uuid, stopping_);
      asio::post(io_, [alive, report = std::move(report), done = std::move(done)] {
        if (alive.lock()) done(report);
      });
    });
  }

  void probeDestination(const std::string& uri, DestinationProbeDone done) override {
    workers_.post([this, alive = weakSelf(), conn = conn_, uri,
                          done = std::move(done)]() mutable {
      DestinationReport report = libvirt::probeDestination(uri, conn.get());
      if (report.reachable) {
        spdlog::info("destination {} ({}): {} MiB free of {} MiB", uri, report.hostname,
                     report.free_memory_bytes >> 20, report.total_memory_bytes >> 20);
      } else {
        spdlog::warn("destination {} unusable: {}", uri, report.error);
      }
      asio::post(io_, [alive, report = std::move(report), done = std::move(done)] {
        if (alive.lock()) done(report);
      });
    });
  }

  void settleDefinition(const std::string& uuid, const std::string& destination_uri,
                        DefinitionSettledFn done) override {
    workers_.post([this, alive = weakSelf(), conn = conn_, uuid, destination_uri,
                   done = std::move(done)]() mutable {
      DefinitionSettled result = libvirt::settleDefinition(conn.get(), uuid, destination_uri);
      // The inventory hears of a removal here by its event; re-reading now
      // keeps whoever hears `done` from acting on the stale definition.
      const bool reread = result.outcome == DefinitionOutcome::runs_there;
      deliverAfterReread(alive, conn, uuid, reread, "after settling the definition of " + uuid,
                         [done = std::move(done), result = std::move(result)] { done(result); });
    });
  }

  EmptinessReport probeEmptiness(const EmptinessQuery& query) override {
    HostScanSettings scan{settings_.qemu_process_scope, settings_.proc_root, settings_.sysfs_root};
    EmptinessReport report = probeHostEmptiness(domains(), query, scan);
    if (state_ != ConnectionState::connected) {
      // The inventory may be stale: what libvirt knew cannot count as evidence.
      for (auto& check : report.checks) {
        if (check.name == "no-qemu-processes" || check.name == "hugepages-free") continue;
        check.ok = false;
        check.detail = "not connected to " + settings_.uri + "; last known: " + check.detail;
      }
    }
    return report;
  }

 private:
  std::weak_ptr<int> weakSelf() const { return lifetime_; }

  // On a worker thread: re-reads the domain (when `reread`), then, on the io
  // thread, puts what was read into the inventory before `deliver` runs.
  void deliverAfterReread(const std::weak_ptr<int>& alive, const SharedConnection& conn,
                          const std::string& uuid, bool reread, const std::string& context,
                          std::function<void()> deliver) {
    std::optional<DomainInfo> after;
    bool known = false;
    if (conn && reread) {
      try {
        after = libvirt::readDomainByUuid(conn.get(), uuid);
        known = true;
      } catch (const std::runtime_error& e) {
        spdlog::warn("{}: {}", context, e.what());
      }
    }
    spdlog::debug("{}: {} re-read", context, uuid);
    asio::post(io_, [this, alive, uuid, after = std::move(after), known,
                     deliver = std::move(deliver)] {
      if (!alive.lock()) return;
      if (after)
        inventory_[uuid] = *after;
      else if (known)
        inventory_.erase(uuid);
      deliver();
    });
  }

  void setState(ConnectionState state, const std::string& detail) {
    const bool changed = state != state_ || detail != state_detail_;
    state_ = state;
    state_detail_ = detail;
    if (changed && observer_) observer_->onConnectionStateChanged(state, detail);
  }

  // Opens the connection and reads the inventory on the reader thread.
  void connect() {
    // Every attempt is a new generation: callbacks of older connections are
    // recognised on the io thread and ignored.
    const unsigned generation = ++generation_;
    reader_.post([this, alive = weakSelf(), generation] {
      virConnectPtr raw = virConnectOpen(settings_.uri.c_str());
      if (!raw) {
        std::string error = "cannot connect to " + settings_.uri + ": " + libvirt::lastError();
        asio::post(io_, [this, alive, error] {
          if (alive.lock()) onConnectFailed(error);
        });
        return;
      }
      if (virConnectSetKeepAlive(raw, static_cast<int>(settings_.keepalive_interval.count()),
                                 settings_.keepalive_count) < 0)
        spdlog::debug("no keepalive on {}: {}", settings_.uri, libvirt::lastError());
      auto callbacks = [&] {
        return std::make_unique<ConnectionCallbacks>(
            ConnectionCallbacks{this, alive, io_, generation});
      };
      // libvirt owns a context once registering succeeds (and frees it on
      // deregistering); a failed registration leaves it to us.
      auto lifecycle_ctx = callbacks();
      const int lifecycle_id = virConnectDomainEventRegisterAny(
          raw, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(onLifecycleEvent),
          lifecycle_ctx.get(), freeConnectionCallbacks);
      if (lifecycle_id >= 0) lifecycle_ctx.release();
      auto metadata_ctx = callbacks();
      const int metadata_id = virConnectDomainEventRegisterAny(
          raw, nullptr, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
          VIR_DOMAIN_EVENT_CALLBACK(onMetadataEvent), metadata_ctx.get(), freeConnectionCallbacks);
      if (metadata_id >= 0) metadata_ctx.release();
      if (lifecycle_id < 0 || metadata_id < 0)
        spdlog::warn("cannot subscribe to domain events on {}: {}", settings_.uri,
                     libvirt::lastError());
      // The close callback's context stays ours: a driver without close
      // callbacks (the test driver) reports success and never frees it.
      // The connection's deleter owns it and unregisters before freeing.
      std::shared_ptr<ConnectionCallbacks> close_ctx(callbacks().release());
      if (virConnectRegisterCloseCallback(raw, onClose, close_ctx.get(), nullptr) < 0)
        spdlog::warn("cannot learn when the connection to {} closes: {}", settings_.uri,
                     libvirt::lastError());
      // The deleter unsubscribes so that no callback reaches a stale `this`.
      SharedConnection conn(raw, [lifecycle_id, metadata_id, close_ctx](virConnectPtr c) {
        if (lifecycle_id >= 0) virConnectDomainEventDeregisterAny(c, lifecycle_id);
        if (metadata_id >= 0) virConnectDomainEventDeregisterAny(c, metadata_id);
        virConnectUnregisterCloseCallback(c, onClose);
        virConnectClose(c);
      });
      const char* type = virConnectGetType(raw);
      std::string driver_type = type ? type : "";
      try {
        auto inventory = libvirt::readAllDomains(raw);
        asio::post(io_, [this, alive, conn, driver_type, generation,
                         inventory = std::move(inventory)]() mutable {
          if (alive.lock() && generation == generation_)
            onConnected(std::move(conn), driver_type, std::move(inventory));
        });
      } catch (const std::runtime_error& e) {
        std::string error = "connected to " + settings_.uri + " but " + e.what();
        asio::post(io_, [this, alive, error, conn] {
          if (alive.lock()) onConnectFailed(error);
        });
      }
    });
  }

  void onConnected(SharedConnection conn, std::string driver_type,
                   std::vector<DomainInfo> inventory) {
    conn_ = std::move(conn);
    driver_type_ = std::move(driver_type);
    backoff_ = settings_.reconnect_min;
    inventory_.clear();
    for (auto& info : inventory) inventory_.emplace(info.uuid, std::move(info));
    spdlog::info("connected to {} ({} domains)", settings_.uri, inventory_.size());
    setState(ConnectionState::connected, "");
    if (observer_) observer_->onInventoryRefreshed();
  }

  void onConnectFailed(const std::string& error) {
    spdlog::warn("{}; retrying in {} ms", error, backoff_.count());
    setState(ConnectionState::disconnected, error);
    scheduleReconnect();
  }

  void scheduleReconnect() {
    reconnect_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, settings_.reconnect_max);
    reconnect_timer_.async_wait([this, alive = weakSelf()](const boost::system::error_code& ec) {
      if (!ec && alive.lock()) connect();
    });
  }

  void onClosed(virConnectPtr closed, int reason, unsigned generation) {
    if (generation != generation_ || !conn_ || conn_.get() != closed) return;
    // Keep the inventory: while disconnected it is the last known state.
    conn_.reset();
    const std::string why = closeReason(reason);
    spdlog::warn("{} ({}); reconnecting", why, settings_.uri);
    setState(ConnectionState::disconnected, why);
    scheduleReconnect();
  }

  // Re-reads the domain on the reader thread (in event order), then updates
  // the inventory and tells the observer, so the observer sees the new state.
  void onDomainEvent(virConnectPtr conn, virDomainPtr dom, DomainEventKind kind,
                     unsigned generation) {
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(dom, uuid);
    const char* name = virDomainGetName(dom);
    DomainEvent event{kind, uuid, name ? name : ""};
    virConnectRef(conn);
    SharedConnection held(conn, libvirt::ConnectionCloser{});
    reader_.post([this, alive = weakSelf(), held, event, generation] {
      std::optional<DomainInfo> info;
      bool known = true;
      try {
        info = libvirt::readDomainByUuid(held.get(), event.uuid);
      } catch (const std::runtime_error& e) {
        spdlog::warn("after event {} of domain '{}': {}", toString(event.kind), event.name,
                     e.what());
        known = false;
      }
      asio::post(io_, [this, alive, event, info = std::move(info), known, generation] {
        if (!alive.lock()) return;
        if (generation != generation_) {
          spdlog::debug("ignoring event {} of domain '{}' from a replaced connection",
                        toString(event.kind), event.name);
          return;
        }
        if (info)
          inventory_[event.uuid] = *info;
        else if (known)
          inventory_.erase(event.uuid);
        if (observer_) observer_->onDomainEvent(event);
      });
    });
  }

  // Domain events arrive on the io thread (libvirt's event loop runs there).
  static int onLifecycleEvent(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                              void* opaque) {
    const auto* ctx = static_cast<const ConnectionCallbacks*>(opaque);
    if (!ctx->alive.lock()) return 0;
    if (event == VIR_DOMAIN_EVENT_SUSPENDED && detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
      ctx->self->onSwitchover(dom, ctx->generation);
    ctx->self->onDomainEvent(conn, dom, mapLifecycle(event, detail), ctx->generation);
    return 0;
  }

  // On the io thread (libvirt's events run on it): the scheduler hears of
  // a switch-over at once, not after the re-read that waits for the end.
  void onSwitchover(virDomainPtr dom, unsigned generation) {
    if (generation != generation_ || !observer_) return;
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom, uuid) < 0) return;
    if (steer_cells_.contains(uuid)) observer_->onMigrationSwitchover(uuid);
  }

  static void onMetadataEvent(virConnectPtr conn, virDomainPtr dom, int, const char*,
                              void* opaque) {
    const auto* ctx = static_cast<const ConnectionCallbacks*>(opaque);
    if (ctx->alive.lock())
      ctx->self->onDomainEvent(conn, dom, DomainEventKind::changed, ctx->generation);
  }

  // libvirt may report the close from any thread that notices it, even while
  // the hypervisor is being destroyed: only the context is read here.
  static void onClose(virConnectPtr conn, int reason, void* opaque) {
    const auto* ctx = static_cast<const ConnectionCallbacks*>(opaque);
    asio::post(ctx->io, [self = ctx->self, alive = ctx->alive, generation = ctx->generation,
                         conn, reason] {
      if (alive.lock()) self->onClosed(conn, reason, generation);
    });
  }

  asio::io_context& io_;
  LibvirtSettings settings_;
  HypervisorObserver* observer_ = nullptr;
  ConnectionState state_ = ConnectionState::connecting;
  std::string state_detail_;
  SharedConnection conn_;
  std::string driver_type_;
  std::map<std::string, DomainInfo> inventory_;  // by UUID
  asio::steady_timer reconnect_timer_;
  std::chrono::milliseconds backoff_;
  unsigned generation_ = 0;  // of the newest connection attempt; io thread only
  std::atomic<bool> stopping_{false};
  // Posted handlers hold a weak_ptr to this and skip their work once the
  // hypervisor is gone.
  std::shared_ptr<int> lifetime_ = std::make_shared<int>(0);
  // Threads only while there is work (lazy_thread_pool.hpp): an idle daemon
  // keeps none of them.
  // Live migrations running, by domain: what steerMigration() reaches. The
  // worker's context holds the cell; an expired entry is a migration that
  // ended (pruned when steered, or replaced by the domain's next one).
  std::unordered_map<std::string, std::weak_ptr<libvirt::SteerCell>> steer_cells_;
  libvirt::LazyThreadPool reader_{1};
  libvirt::LazyThreadPool workers_;
};

}  // namespace

std::unique_ptr<Hypervisor> makeLibvirtHypervisor(asio::io_context& io, LibvirtSettings settings) {
  return std::make_unique<LibvirtHypervisor>(io, std::move(settings));
}

}  // namespace hostmaint::hv
