#include "libvirt/domain_actions.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hostmaint::hv::libvirt {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct TypedParams {
  virTypedParameterPtr params = nullptr;
  int count = 0;
  int capacity = 0;
  TypedParams() = default;
  TypedParams(const TypedParams&) = delete;
  TypedParams& operator=(const TypedParams&) = delete;
  ~TypedParams() { virTypedParamsFree(params, count); }
};

class ActionRun {
 public:
  ActionRun(virConnectPtr conn, const ActionRequest& request, const ActionContext& ctx)
      : conn_(conn), request_(request), ctx_(ctx) {}

  ActionResult run() {
    dom_ = Domain(virDomainLookupByUUIDString(conn_, request_.uuid.c_str()));
    if (!dom_) return fail("domain " + request_.uuid + " not found: " + lastError());
    switch (request_.kind) {
      case ActionKind::managed_save: return managedSave();
      case ActionKind::shutdown: return shutdown();
      case ActionKind::start: return start();
      case ActionKind::live_migrate: return liveMigrate();
      case ActionKind::cold_migrate: return coldMigrate();
      case ActionKind::adopt_migration: return adoptMigration();
    }
    return fail("unknown action");
  }

 private:
  std::string subject() const {
    return actionVerb(request_.kind) + " of domain '" + request_.name + "'";
  }
  ActionResult fail(const std::string& why, FailureKind kind = FailureKind::other) const {
    ActionResult result;
    result.message = subject() + " failed: " + why;
    result.failure = kind;
    return result;
  }
  ActionResult succeed(std::string message = {}, bool forced = false) const {
    ActionResult result;
    result.ok = true;
    result.message = message.empty() ? subject() + " done" : std::move(message);
    result.forced = forced;
    return result;
  }
  bool stopping() const { return ctx_.stopping && ctx_.stopping->load(); }

  ActionResult managedSave() {
    if (virDomainManagedSave(dom_.get(), 0) < 0) return fail(lastError());
    return succeed();
  }

  // A migration started by an earlier hostmaintd runs on in libvirtd: wait
  // for its job to end, then see whether the domain is still here.
  ActionResult adoptMigration() {
    while (!stopping()) {
      virDomainJobInfo info{};
      if (virDomainGetJobInfo(dom_.get(), &info) < 0 || info.type == VIR_DOMAIN_JOB_NONE) break;
      std::this_thread::sleep_for(200ms);
    }
    if (stopping()) return fail("interrupted because hostmaintd is stopping");
    Domain still_here(virDomainLookupByUUIDString(conn_, request_.uuid.c_str()));
    if (!still_here || virDomainIsActive(still_here.get()) == 0) {
      return succeed("the migration of '" + request_.name + "' started earlier finished");
    }
    return fail("the migration started earlier ended and the domain is still running here",
                FailureKind::not_converged);
  }

  ActionResult start() {
    if (virDomainCreate(dom_.get()) < 0) return fail(lastError());
    return succeed();
  }

  bool isShutOff() {
    int state = 0, reason = 0;
    return virDomainGetState(dom_.get(), &state, &reason, 0) == 0 && state == VIR_DOMAIN_SHUTOFF;
  }

  // Graceful shutdown; there is no "shut off" event wait here because the
  // worker owns no event loop: it polls the state every 100 ms.
  ActionResult shutdown() {
    if (isShutOff()) return succeed(subject() + ": already shut off");
    if (virDomainShutdown(dom_.get()) < 0) return fail(lastError());
    const auto timeout = request_.shutdown_timeout;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline && !stopping()) {
      if (isShutOff()) return succeed();
      std::this_thread::sleep_for(100ms);
    }
    if (isShutOff()) return succeed();
    // Stopping the daemon is no timeout: forcing the guest off now would cut
    // short the grace period it was promised.
    if (stopping())
      return fail("interrupted because hostmaintd is stopping; the guest was asked to shut down "
                  "and may still be shutting down");
    const std::string after = std::to_string(timeout.count()) + "s";
    if (!request_.force_after_timeout) return fail("did not shut down within " + after);
    if (virDomainDestroy(dom_.get()) < 0)
      return fail("did not shut down within " + after + " and could not be stopped: " + lastError());
    return succeed("shut down forcibly after " + after, true);
  }

  ActionResult liveMigrate() {
    const auto& tuning = request_.tuning;
    unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
                         VIR_MIGRATE_UNDEFINE_SOURCE;
    if (tuning.auto_converge) flags |= VIR_MIGRATE_AUTO_CONVERGE;
    if (tuning.post_copy_allowed) flags |= VIR_MIGRATE_POSTCOPY;
    TypedParams params;
    if (tuning.bandwidth_mib_s &&
        virTypedParamsAddULLong(&params.params, &params.count, &params.capacity,
                                VIR_MIGRATE_PARAM_BANDWIDTH, *tuning.bandwidth_mib_s) < 0)
      return fail("cannot set the bandwidth: " + lastError());
    if (tuning.parallel_connections) {
      flags |= VIR_MIGRATE_PARALLEL;
      if (virTypedParamsAddInt(&params.params, &params.count, &params.capacity,
                               VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
                               static_cast<int>(*tuning.parallel_connections)) < 0)
        return fail("cannot set the parallel connections: " + lastError());
    }

    auto monitor = std::make_shared<MigrationMonitor>();
    if (ctx_.spawn) {
      // The monitor needs its own reference: the domain outlives this call.
      virDomainRef(dom_.get());
      auto dom = std::shared_ptr<virDomain>(dom_.get(), DomainFreer{});
      ctx_.spawn([monitor, dom, tuning, progress = ctx_.progress, name = request_.name] {
        monitor->watch(dom.get(), tuning, progress, name);
      });
    }
    const int rc = virDomainMigrateToURI3(dom_.get(), request_.destination_uri.c_str(),
                                          params.params, params.count, flags);
    const std::string error = rc < 0 ? lastError() : std::string();
    const bool aborted_for_time = monitor->finish();
    if (rc < 0) {
      if (aborted_for_time)
        return fail("did not complete within " + std::to_string(tuning.completion_timeout.count()) +
                    "s and was aborted (" + error + ")");
      return fail("to " + request_.destination_uri + ": " + error);
    }
    return succeed();
  }

  // Reports job statistics every 500 ms while a migration runs, applies the
  // maximum downtime once the job exists, and aborts it after its timeout.
  class MigrationMonitor {
   public:
    void watch(virDomainPtr dom, const MigrationTuning& tuning,
               const std::function<void(const ActionProgress&)>& progress, const std::string& name) {
      const auto started = Clock::now();
      bool downtime_set = !tuning.max_downtime;
      std::unique_lock lock(mutex_);
      while (!cv_.wait_for(lock, 500ms, [this] { return finished_; })) {
        lock.unlock();
        int type = VIR_DOMAIN_JOB_NONE;
        virTypedParameterPtr params = nullptr;
        int n = 0;
        if (virDomainGetJobStats(dom, &type, &params, &n, 0) == 0 && type != VIR_DOMAIN_JOB_NONE) {
          if (!downtime_set) {
            downtime_set = true;
            if (virDomainMigrateSetMaxDowntime(dom, tuning.max_downtime->count(), 0) < 0)
              spdlog::warn("cannot set the maximum downtime of migrating domain '{}': {}", name,
                           lastError());
          }
          if (progress) progress(toProgress(params, n));
        }
        virTypedParamsFree(params, n);
        if (tuning.completion_timeout.count() > 0 &&
            Clock::now() - started > tuning.completion_timeout) {
          if (virDomainAbortJob(dom) == 0) {
            lock.lock();
            aborted_ = true;
            cv_.wait(lock, [this] { return finished_; });
            return;
          }
        }
        lock.lock();
      }
    }

    // Stops the monitor; true when it aborted the migration for its timeout.
    bool finish() {
      std::lock_guard lock(mutex_);
      finished_ = true;
      cv_.notify_all();
      return aborted_;
    }

   private:
    static ActionProgress toProgress(virTypedParameterPtr params, int n) {
      ActionProgress p;
      auto get = [&](const char* field) {
        unsigned long long v = 0;
        virTypedParamsGetULLong(params, n, field, &v);
        return static_cast<std::uint64_t>(v);
      };
      p.data_total_bytes = get(VIR_DOMAIN_JOB_DATA_TOTAL);
      p.data_processed_bytes = get(VIR_DOMAIN_JOB_DATA_PROCESSED);
      p.data_remaining_bytes = get(VIR_DOMAIN_JOB_DATA_REMAINING);
      // The dirty rate is in pages per second.
      const auto page = get(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
      p.memory_dirty_rate_bps = get(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE) * (page ? page : 4096);
      p.memory_bps = get(VIR_DOMAIN_JOB_MEMORY_BPS);
      p.elapsed = std::chrono::milliseconds(get(VIR_DOMAIN_JOB_TIME_ELAPSED));
      return p;
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    bool finished_ = false;
    bool aborted_ = false;
  };

  // Shut down here, define and start there, and only then undefine here: at
  // every step the domain is defined on at least one host.
  ActionResult coldMigrate() {
    CString xml(virDomainGetXMLDesc(dom_.get(), VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE));
    if (!xml) return fail("cannot read its definition: " + lastError());
    const bool persistent = virDomainIsPersistent(dom_.get()) == 1;
    bool forced = false;
    if (!isShutOff()) {
      ActionRequest stop = request_;
      stop.kind = ActionKind::shutdown;
      ActionResult stopped = ActionRun(conn_, stop, ctx_).shutdownOf(dom_.get());
      if (!stopped.ok) return fail(stopped.message);
      forced = stopped.forced;
    }
    Connection dest(virConnectOpen(request_.destination_uri.c_str()));
    if (!dest)
      return fail("cannot connect to " + request_.destination_uri + " (the domain is shut off here): " +
                  lastError());
    Domain defined(virDomainDefineXML(dest.get(), xml.get()));
    if (!defined)
      return fail("cannot define it on " + request_.destination_uri +
                  " (the domain is shut off here): " + lastError());
    if (virDomainCreate(defined.get()) < 0) {
      const std::string error = lastError();
      if (virDomainUndefine(defined.get()) < 0)
        spdlog::warn("cannot remove the failed definition of '{}' from {}: {}", request_.name,
                     request_.destination_uri, lastError());
      return fail("cannot start it on " + request_.destination_uri +
                  " (the domain is shut off here): " + error);
    }
    if (persistent && virDomainUndefineFlags(dom_.get(), VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) < 0)
      return succeed(subject() + " done, but its definition stays on this host: " + lastError(),
                     forced);
    return succeed({}, forced);
  }

  ActionResult shutdownOf(virDomainPtr dom) {
    virDomainRef(dom);
    dom_ = Domain(dom);
    return shutdown();
  }

  virConnectPtr conn_;
  ActionRequest request_;
  const ActionContext& ctx_;
  Domain dom_;
};

}  // namespace

std::string actionVerb(ActionKind kind) {
  switch (kind) {
    case ActionKind::managed_save: return "managed-save";
    case ActionKind::shutdown: return "shutdown";
    case ActionKind::start: return "start";
    case ActionKind::live_migrate: return "live migration";
    case ActionKind::cold_migrate: return "cold migration";
    case ActionKind::adopt_migration: return "migration started earlier";
  }
  return "action";
}

ActionResult runAction(virConnectPtr conn, const ActionRequest& request, const ActionContext& ctx) {
  if (!conn) {
    ActionResult result;
    result.message =
        actionVerb(request.kind) + " of domain '" + request.name + "' failed: not connected to libvirt";
    result.failure = FailureKind::connection_lost;
    return result;
  }
  return ActionRun(conn, request, ctx).run();
}

}  // namespace hostmaint::hv::libvirt
