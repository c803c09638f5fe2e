// A deadline on the waits no action enforces itself (docs/engine.md,
// "Deadlines"): a managed-save or a restore running past [limits]
// save_timeout / restore_timeout is a blocker naming its deadline, at that
// time (the engine wakes for it), and is not aborted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hostmaint/agent/status_json.hpp"
#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DomainStage;
using hostmaint::agent::formatTime;
using hostmaint::hv::ActionKind;
using testing::HasSubstr;

namespace hostmaint::fake {
namespace {

class EngineDeadlines : public EngineTest {
 protected:
  EngineDeadlines() {
    settings.limits.save_timeout = 60s;
    settings.limits.restore_timeout = 30s;
  }
};

TEST_F(EngineDeadlines, AManagedSavePastItsDeadlineIsABlockerNamingItAndGoesOn) {
  const std::string uuid = add("db", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  ASSERT_TRUE(hypervisor.isPending(uuid));
  const auto deadline = clock.now() + 60s;
  EXPECT_EQ(engine->nextWakeup(), deadline) << "the engine wakes for it";
  clock.advance(59s);
  engine->tick();
  EXPECT_FALSE(hasBlocker("domain db"));

  ASSERT_TRUE(advanceToWakeup());
  EXPECT_TRUE(hasBlocker("domain db", "managed-save running since"));
  EXPECT_TRUE(hasBlocker("domain db", "past its deadline " + formatTime(deadline)));
  EXPECT_TRUE(hasBlocker("domain db", "save_timeout"));
  EXPECT_TRUE(hypervisor.isPending(uuid)) << "not aborted";
  EXPECT_EQ(stage("db"), DomainStage::acting);

  hypervisor.completeNext();
  EXPECT_FALSE(hasBlocker("domain db"));
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineDeadlines, ARestorePastItsDeadlineIsABlocker) {
  const std::string uuid = add("db", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeNext();
  engine->finish();
  ASSERT_EQ(hypervisor.requestCount(uuid, ActionKind::start), 1);
  clock.advance(31s);
  engine->tick();
  EXPECT_TRUE(hasBlocker("domain db", "restore running since"));
  EXPECT_TRUE(hasBlocker("domain db", "restore_timeout"));
  hypervisor.completeNext();
  EXPECT_FALSE(hasBlocker("domain db"));
  EXPECT_EQ(stage("db"), DomainStage::restored);
}

TEST_F(EngineDeadlines, MigrationsAndShutdownsKeepTheirOwnTimeouts) {
  const std::string uuid = add("db");
  start();
  scheduleNow();
  ASSERT_TRUE(hypervisor.isPending(uuid));
  clock.advance(2h);
  engine->tick();
  EXPECT_FALSE(hasBlocker("domain db", "past its deadline"))
      << "a live migration's ladder and completion timeout end it";
}

}  // namespace
}  // namespace hostmaint::fake
