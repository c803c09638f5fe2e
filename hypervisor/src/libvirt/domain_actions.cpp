#include "libvirt/domain_actions.hpp"

#include "libvirt/live_migration.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hostmaint::hv::libvirt {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;


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

  // A migration started by an earlier hostmaintd runs on in libvirtd: watch
  // it to its end with the ladder and timeouts continuing, then see whether
  // the domain is still here. The source undefines the domain a moment after
  // the job ends, hence the grace.
  ActionResult adoptMigration() {
    LiveMigrationContext migration{ctx_.progress, ctx_.stopping, ctx_.steer};
    AdoptedMigrationEnd end = watchAdoptedMigration(dom_.get(), request_, migration);
    if (end.stopping) {
      return fail("left running in libvirtd because hostmaintd is stopping",
                  FailureKind::connection_lost);
    }
    const auto grace_end = Clock::now() + 5s;
    while (!stopping()) {
      Domain here(virDomainLookupByUUIDString(conn_, request_.uuid.c_str()));
      const int active = here ? virDomainIsActive(here.get()) : -1;
      if (!here || active == 0 || (active < 0 && lastErrorCode() == VIR_ERR_NO_DOMAIN)) {
        ActionResult done = succeed("the migration of '" + request_.name + "' started earlier finished");
        done.escalations = end.escalations;
        return done;
      }
      if (Clock::now() >= grace_end) break;
      std::this_thread::sleep_for(200ms);
    }
    if (stopping()) return fail("interrupted because hostmaintd is stopping");
    if (end.abort_reason && end.stalled) {
      ActionResult failed = fail(*end.abort_reason + "; aborted", FailureKind::destination);
      failed.escalations = end.escalations;
      return failed;
    }
    if (end.abort_reason) {
      ActionResult failed = fail("did not converge: " + *end.abort_reason + "; aborted",
                                 FailureKind::not_converged);
      failed.escalations = end.escalations;
      return failed;
    }
    return fail("the migration started earlier ended and the domain is still running here");
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
    LiveMigrationContext migration{ctx_.progress, ctx_.stopping, ctx_.steer};
    return migrateLive(conn_, dom_.get(), request_, migration);
  }

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
      return fail("cannot connect to " + request_.destination_uri +
                      " (the domain is shut off here): " + lastError(),
                  FailureKind::destination);
    Domain defined(virDomainDefineXML(dest.get(), xml.get()));
    if (!defined)
      return fail("cannot define it on " + request_.destination_uri +
                      " (the domain is shut off here): " + lastError(),
                  FailureKind::destination);
    if (virDomainCreate(defined.get()) < 0) {
      const std::string error = lastError();
      if (virDomainUndefine(defined.get()) < 0)
        spdlog::warn("cannot remove the failed definition of '{}' from {}: {}", request_.name,
                     request_.destination_uri, lastError());
      return fail("cannot start it on " + request_.destination_uri +
                      " (the domain is shut off here): " + error,
                  FailureKind::destination);
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
