// Guarding the host around the drain: the host-shutdown path and its
// restore at the next start, and the cordon the engine tells its listener.
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::CommandError;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::agent::HostShutdownPhase;
using hostmaint::agent::HostShutdownResult;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

// Records every cordon it is told, and how many actions the hypervisor had
// been asked for at that moment.
class CordonListener final : public agent::EngineListener {
 public:
  explicit CordonListener(const FakeHypervisor& hypervisor) : hypervisor_(hypervisor) {}
  void onStatusChanged(const agent::HostStatus&) override {}
  void onWakeupChanged(std::optional<agent::TimePoint>) override {}
  void onCordonChanged(const agent::CordonStatus& cordon) override {
    told.push_back({cordon, hypervisor_.requests().size()});
  }
  struct Told {
    agent::CordonStatus cordon;
    std::size_t requests_before;
  };
  std::vector<Told> told;

 private:
  const FakeHypervisor& hypervisor_;
};

class EngineGuard : public EngineTest {
 protected:
  EngineGuard() { settings.boot_id = "boot-1"; }

  const agent::HostShutdownRecord& shutdown() const {
    EXPECT_TRUE(status().host_shutdown.has_value());
    return *status().host_shutdown;
  }

  const agent::HostShutdownDomain& shutdownOf(const std::string& name) const {
    for (const auto& domain : shutdown().domains) {
      if (domain.name == name) return domain;
    }
    throw std::out_of_range("no domain " + name + " in the host shutdown");
  }

  int requestsOf(ActionKind kind) const {
    return static_cast<int>(std::count_if(hypervisor.requests().begin(), hypervisor.requests().end(),
                                          [&](const hv::ActionRequest& r) { return r.kind == kind; }));
  }
};

TEST_F(EngineGuard, HostShutdownActsOnEveryRunningDomainAtOnceAndRestoresAtTheNextStart) {
  settings.limits.max_parallel_actions = 1;  // the drain's limit does not apply here
  add("web1");
  add("web2", {{"priority", "5"}});
  add("db", {{"host_shutdown_action", "shutdown"}});
  add("off", {}, hv::DomainRunState::shutoff);
  start();
  engine->hostShutdown("uid 0");

  EXPECT_EQ(shutdown().phase, HostShutdownPhase::in_progress);
  EXPECT_EQ(shutdown().requested_by, "uid 0");
  EXPECT_EQ(shutdown().boot_id, "boot-1");
  ASSERT_EQ(hypervisor.pending().size(), 3u) << "every running domain at once";
  EXPECT_EQ(requestsOf(ActionKind::managed_save), 2);
  EXPECT_EQ(requestsOf(ActionKind::shutdown), 1);
  EXPECT_EQ(shutdown().domains.size(), 3u) << "the shut-off domain is not touched";
  EXPECT_EQ(shutdownOf("web1").result, HostShutdownResult::acting);

  hypervisor.completeAll();
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::done);
  EXPECT_TRUE(shutdown().finished_at.has_value());
  EXPECT_EQ(shutdownOf("web1").result, HostShutdownResult::suspended);
  EXPECT_EQ(shutdownOf("db").result, HostShutdownResult::shut_down);

  // The host goes down; hostmaintd starts again on the next boot.
  crash();
  settings.boot_id = "boot-2";
  hypervisor.setAutoComplete(false);
  const std::size_t before = hypervisor.requests().size();
  start();
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::restoring);
  EXPECT_TRUE(shutdown().rebooted);
  EXPECT_TRUE(shutdown().came_back_at.has_value());
  ASSERT_EQ(hypervisor.requests().size(), before + 3);
  EXPECT_EQ(hypervisor.requests()[before].name, "web2") << "highest priority first";
  for (std::size_t i = before; i < hypervisor.requests().size(); ++i)
    EXPECT_EQ(hypervisor.requests()[i].kind, ActionKind::start);
  hypervisor.completeAll();
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::restored);
  EXPECT_EQ(shutdownOf("web1").result, HostShutdownResult::restored);
  EXPECT_EQ(shutdownOf("web1").message, "restored from managed-save");
  EXPECT_EQ(shutdownOf("db").message, "started");
  EXPECT_EQ(hypervisor.domain(hypervisor.uuidOf("web1"))->state, hv::DomainRunState::running);
}

TEST_F(EngineGuard, APlainRestartSuspendsNothing) {
  add("web1");
  start();
  crash();
  start();
  crash();
  start();
  EXPECT_TRUE(hypervisor.requests().empty());
  EXPECT_FALSE(status().host_shutdown.has_value());
}

TEST_F(EngineGuard, ARestartWithoutRebootStillRestoresAndSaysSo) {
  add("web1");
  start();
  engine->hostShutdown("uid 0");
  hypervisor.completeAll();
  crash();
  start();  // the same boot id: hostmaintd alone restarted
  hypervisor.completeAll();
  EXPECT_FALSE(shutdown().rebooted);
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::restored);
  EXPECT_EQ(hypervisor.domain(hypervisor.uuidOf("web1"))->state, hv::DomainRunState::running);
}

TEST_F(EngineGuard, MaxParallelBoundsTheShutdownAndTheRestore) {
  settings.host_shutdown.max_parallel = 2;
  for (int i = 0; i < 5; ++i) add("vm" + std::to_string(i));
  start();
  engine->hostShutdown("uid 0");
  std::size_t most = 0;
  while (!hypervisor.pending().empty()) {
    most = std::max(most, hypervisor.pending().size());
    hypervisor.completeNext();
  }
  EXPECT_EQ(most, 2u);
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::done);
  crash();
  start();
  most = 0;
  while (!hypervisor.pending().empty()) {
    most = std::max(most, hypervisor.pending().size());
    hypervisor.completeNext();
  }
  EXPECT_EQ(most, 2u);
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::restored);
}

TEST_F(EngineGuard, AFailedSuspendIsReportedAndNotRestored) {
  add("web1");
  add("stuck");
  start();
  hypervisor.failNext(hypervisor.uuidOf("stuck"), ActionKind::managed_save, "disk full");
  engine->hostShutdown("uid 0");
  hypervisor.completeAll();
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::done);
  EXPECT_EQ(shutdownOf("stuck").result, HostShutdownResult::failed);
  EXPECT_EQ(shutdownOf("stuck").message, "disk full");
  crash();
  const std::size_t before = hypervisor.requests().size();
  start();
  EXPECT_EQ(hypervisor.requests().size(), before + 1) << "only what was suspended comes back";
}

// libvirt keeps no managed save of a transient domain: suspending it would
// fail and leave it to be killed with the host, so it is shut down cleanly.
TEST_F(EngineGuard, ATransientDomainIsShutDownInsteadOfSuspended) {
  add("web1");
  add("scratch");
  hypervisor.mutableDomain(hypervisor.uuidOf("scratch")).persistent = false;
  start();
  engine->hostShutdown("uid 0");
  EXPECT_EQ(shutdownOf("web1").action, agent::HostShutdownAction::suspend);
  EXPECT_EQ(shutdownOf("scratch").action, agent::HostShutdownAction::shutdown);
  EXPECT_EQ(requestsOf(ActionKind::managed_save), 1);
  EXPECT_EQ(requestsOf(ActionKind::shutdown), 1);
  hypervisor.completeAll();
  EXPECT_EQ(shutdownOf("scratch").result, HostShutdownResult::shut_down);
}

TEST_F(EngineGuard, DuringADrainNothingNewStartsAndWhatIsLeftIsHandedToTheFinish) {
  settings.limits.max_parallel_actions = 1;
  add("moving");
  add("waiting");
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  const std::string moving = hypervisor.pending().front().request.name;
  const std::string waiting = moving == "moving" ? "waiting" : "moving";
  EXPECT_EQ(stage(waiting), DomainStage::waiting);

  engine->hostShutdown("uid 0");
  // The migration in flight goes on; the waiting domain is suspended at once.
  ASSERT_EQ(hypervisor.pending().size(), 2u);
  EXPECT_EQ(hypervisor.pending().back().request.kind, ActionKind::managed_save);
  EXPECT_EQ(hypervisor.pending().back().request.name, waiting);
  hypervisor.complete(hypervisor.uuidOf(waiting));
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::in_progress) << "the migration still runs";
  EXPECT_EQ(shutdownOf(waiting).result, HostShutdownResult::handed_over);
  EXPECT_EQ(stage(waiting), DomainStage::done);
  EXPECT_NE(domain(waiting).result.find("when the host shut down"), std::string::npos)
      << domain(waiting).result;
  hypervisor.complete(hypervisor.uuidOf(moving));
  EXPECT_EQ(stage(moving), DomainStage::done);
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::done);
  EXPECT_EQ(requestsOf(ActionKind::live_migrate), 1) << "no new migration once going down";

  // Next boot: the maintenance goes on; finish restores the handed-over domain.
  crash();
  start();
  EXPECT_EQ(shutdown().phase, HostShutdownPhase::restored) << "nothing of its own to restore";
  EXPECT_EQ(requestsOf(ActionKind::start), 0);
  ASSERT_EQ(status().phase, HostPhase::empty);
  engine->finish();
  hypervisor.completeAll();
  EXPECT_EQ(requestsOf(ActionKind::start), 1);
  EXPECT_EQ(status().phase, HostPhase::idle);
}

TEST_F(EngineGuard, CordonFollowsTheMaintenanceAndKnowsRestoresBeforeTheyStart) {
  CordonListener cordons(hypervisor);
  add("db", {{"maintenance_action", "suspend"}});
  engine = std::make_unique<agent::MaintenanceEngine>(hypervisor, clock, journal, settings, cordons);
  hypervisor.setObserver(engine.get());
  engine->recover();
  ASSERT_FALSE(cordons.told.empty());
  EXPECT_FALSE(cordons.told.back().cordon.active);

  engine->schedule(window(1h));
  EXPECT_FALSE(cordons.told.back().cordon.active) << "not before the drain starts";
  EXPECT_THROW(engine->disallowDomain("nobody"), CommandError);
  engine->allowDomain("incoming-vm", "rebuild", "uid 0");
  clock.advance(1h);
  engine->tick();
  const agent::CordonStatus& draining = cordons.told.back().cordon;
  EXPECT_TRUE(draining.active);
  EXPECT_EQ(draining.since, clock.now());
  EXPECT_EQ(draining.phase, HostPhase::draining);
  ASSERT_EQ(draining.allowed.size(), 1u);
  EXPECT_EQ(draining.allowed[0].domain, "incoming-vm");
  EXPECT_EQ(draining.allowed[0].by, "uid 0");
  EXPECT_EQ(draining.allowed[0].reason, "rebuild");

  hypervisor.completeAll();
  ASSERT_EQ(engine->status().phase, HostPhase::empty);
  hypervisor.setAutoComplete(false);
  const std::size_t before_finish = hypervisor.requests().size();
  engine->finish();
  ASSERT_EQ(hypervisor.requests().size(), before_finish + 1);
  ASSERT_EQ(hypervisor.requests().back().kind, ActionKind::start);
  // The hook must have seen the restore before libvirt was asked for it.
  const auto told_restore =
      std::find_if(cordons.told.begin(), cordons.told.end(), [&](const CordonListener::Told& t) {
        return !t.cordon.restoring.empty() && t.cordon.restoring[0].first == "db";
      });
  ASSERT_NE(told_restore, cordons.told.end());
  EXPECT_LE(told_restore->requests_before, before_finish);
  EXPECT_TRUE(told_restore->cordon.active);

  hypervisor.completeAll();
  EXPECT_EQ(engine->status().phase, HostPhase::idle);
  EXPECT_FALSE(cordons.told.back().cordon.active);
  EXPECT_TRUE(cordons.told.back().cordon.allowed.empty()) << "overrides end with the maintenance";
}

TEST_F(EngineGuard, OverridesNeedAMaintenanceAndSurviveARestart) {
  add("web1");
  start();
  EXPECT_THROW(engine->allowDomain("web1", "", "uid 0"), CommandError);
  scheduleNow();
  engine->allowDomain("web1", "debugging", "uid 0");
  EXPECT_EQ(status().cordon.allowed.size(), 1u);
  EXPECT_EQ(status().cordon.allowed[0].uuid, hypervisor.uuidOf("web1"));
  crash();
  start();
  ASSERT_EQ(status().cordon.allowed.size(), 1u);
  EXPECT_EQ(status().cordon.allowed[0].reason, "debugging");
  engine->disallowDomain(hypervisor.uuidOf("web1"));  // by UUID too
  EXPECT_TRUE(status().cordon.allowed.empty());
}

TEST_F(EngineGuard, AShutdownInterruptedByARestartKeepsTheRestOfItsTimeout) {
  add("batch", {{"maintenance_action", "shutdown"}, {"shutdown_timeout", "120s"}});
  start();
  scheduleNow();
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  // hostmaintd stops (SIGTERM: the worker gives up); the guest is still
  // shutting down, which libvirt shows as running.
  hypervisor.abandon(hypervisor.uuidOf("batch"));
  crash();
  clock.advance(50s);
  start();
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  const hv::ActionRequest& again = hypervisor.pending().front().request;
  EXPECT_EQ(again.kind, ActionKind::shutdown);
  EXPECT_EQ(again.shutdown_timeout, 70s) << "the rest of its timeout, not a new one";
  EXPECT_NE(domain("batch").detail.find("found in progress"), std::string::npos)
      << domain("batch").detail;
  hypervisor.completeAll();
  EXPECT_EQ(stage("batch"), DomainStage::done);
  EXPECT_EQ(hypervisor.requestCount(hypervisor.uuidOf("batch"), ActionKind::shutdown), 2);
}

}  // namespace
}  // namespace hostmaint::fake
