// The end of the window: when it passes with the host still draining, the
// engine forces nothing and makes the overrun loud (status, blocker, the
// owners' notices once); a later end or an empty host ends it.
#include <gtest/gtest.h>

#include "support/notice_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::agent::NoticeLedger;

namespace hostmaint::fake {
namespace {

class EngineOverrun : public NoticeLedgerTest {
 protected:
  // The suspends here run for hours on purpose; their own deadline
  // (engine_deadlines_test) would be one more wake-up in every assertion.
  EngineOverrun() { settings.limits.save_timeout = 24h; }
};

const std::vector<std::pair<std::string, std::string>> kSuspend{{"maintenance_action", "suspend"}};

TEST_F(EngineOverrun, TheWindowEndingMidDrainIsAnOverrunThatForcesNothing) {
  add("quick", kSuspend);
  add("slow", kSuspend);
  start();
  engine->schedule(window(0s, 1h));
  const agent::TimePoint end = clock.now() + 1h;
  hypervisor.complete(hypervisor.uuidOf("quick"));
  EXPECT_FALSE(status().overrun);
  EXPECT_EQ(engine->nextWakeup(), end) << "the engine wakes at the end with no other event";
  EXPECT_EQ(listener.wakeup, end);

  clock.set(end - 1s);
  engine->tick();
  EXPECT_FALSE(status().overrun);
  EXPECT_FALSE(status().overrun_since);
  EXPECT_FALSE(hasBlocker("window"));

  const std::size_t requests = hypervisor.requests().size();
  ASSERT_TRUE(advanceToWakeup());
  EXPECT_EQ(clock.now(), end);
  EXPECT_EQ(status().phase, HostPhase::draining);
  EXPECT_TRUE(status().overrun);
  EXPECT_EQ(status().overrun_since, end);
  EXPECT_TRUE(hasBlocker("window",
                         "the window ended at 2030-01-01T01:00:00Z; still draining: 1 domain (slow)"));
  EXPECT_FALSE(status().ready);
  // Nothing is forced, aborted or started at the end: the action runs on.
  EXPECT_EQ(hypervisor.requests().size(), requests);
  EXPECT_TRUE(hypervisor.isPending(hypervisor.uuidOf("slow")));
  EXPECT_EQ(stage("slow"), DomainStage::acting);
  EXPECT_EQ(engine->nextWakeup(), end - 1h + 24h)
      << "only the slow save's own deadline: the end is not woken for again";

  // The drain completing after the end: the host is empty, the overrun over.
  clock.advance(10min);
  ASSERT_TRUE(hypervisor.complete(hypervisor.uuidOf("slow")));
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
  EXPECT_FALSE(status().overrun);
  EXPECT_FALSE(status().overrun_since);
  EXPECT_FALSE(hasBlocker("window"));
}

TEST_F(EngineOverrun, TheBlockerNamesEveryDomainLeftBlockedOrWaitingIncluded) {
  settings.limits.max_parallel_actions = 1;
  add("a", kSuspend);
  add("b", kSuspend);
  add("broken", {{"maintenance_action", "teleport"}});
  add("c", kSuspend);
  start();
  engine->schedule(window(0s, 1h));
  // One action at a time, by name: "a" runs, "b" and "c" wait.
  ASSERT_EQ(hypervisor.pending().size(), 1u);
  hypervisor.completeNext();  // a
  EXPECT_EQ(stage("a"), DomainStage::done);
  clock.advance(1h);
  engine->tick();
  EXPECT_TRUE(status().overrun);
  EXPECT_TRUE(hasBlocker(
      "window",
      "the window ended at 2030-01-01T01:00:00Z; still draining: 3 domains (b, broken, c)"))
      << status().blockers.size();
  EXPECT_TRUE(hasBlocker("domain broken")) << "its own blocker stays";
}

TEST_F(EngineOverrun, EachPendingOwnerIsToldOnceAndALateFinishIsNoSecondNotice) {
  add("quick", kSuspend);
  add("slow", kSuspend);
  start();
  engine->schedule(window(0s, 1h));
  ASSERT_EQ(names(observe()), (std::vector<std::string>{"quick", "slow"}));
  hypervisor.complete(hypervisor.uuidOf("quick"));
  EXPECT_TRUE(observe().empty());
  EXPECT_FALSE(shownNotice("slow").overrun);

  ASSERT_TRUE(advanceToWakeup());
  ASSERT_TRUE(status().overrun);
  auto issued = observe();
  ASSERT_EQ(names(issued), std::vector<std::string>{"slow"})
      << "quick was done before the end: nothing new to tell its owner";
  EXPECT_TRUE(issued[0].notice.overrun);
  EXPECT_NE(issued[0].notice.message.find(
                "The maintenance window ended at 2030-01-01T01:00:00Z before this was done; "
                "nothing is forced at its end"),
            std::string::npos)
      << issued[0].notice.message;
  EXPECT_EQ(agent::noticeToJson(issued[0].notice)["overrun"], true);
  EXPECT_FALSE(shownNotice("quick").overrun);

  clock.advance(1min);
  engine->tick();
  EXPECT_TRUE(observe().empty()) << "the overrun is told once, not at every tick";

  // Finished after the end: the notice already said so; no second revision.
  hypervisor.complete(hypervisor.uuidOf("slow"));
  ASSERT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(observe().empty());
  EXPECT_TRUE(shownNotice("slow").overrun);

  // A restarted daemon reads the flag back and sends nothing again.
  NoticeLedger restored = NoticeLedger::decode(ledger.encode());
  agent::HostStatus again = status();
  EXPECT_TRUE(restored.observe(again, clock.now()).empty());
}

TEST_F(EngineOverrun, ALaterEndEndsTheOverrunAndTellsTheOwnersAgain) {
  add("slow", kSuspend);
  start();
  agent::ScheduleRequest request = window(0s, 1h);
  engine->schedule(request);
  observe();
  ASSERT_TRUE(advanceToWakeup());
  ASSERT_TRUE(status().overrun);
  ASSERT_EQ(names(observe()), std::vector<std::string>{"slow"});

  agent::MaintenanceWindow later = request.window;
  later.end = clock.now() + 30min;
  engine->reschedule(later);
  EXPECT_FALSE(status().overrun);
  EXPECT_FALSE(status().overrun_since);
  EXPECT_FALSE(hasBlocker("window"));
  EXPECT_EQ(engine->nextWakeup(), later.end);
  EXPECT_EQ(listener.wakeup, later.end);
  auto issued = observe();
  ASSERT_EQ(names(issued), std::vector<std::string>{"slow"});
  EXPECT_FALSE(issued[0].notice.overrun);
  EXPECT_EQ(issued[0].notice.window_end, later.end);
  EXPECT_EQ(issued[0].notice.message.find("window ended"), std::string::npos);

  // And the new end passing is an overrun again, told again.
  ASSERT_TRUE(advanceToWakeup());
  EXPECT_TRUE(status().overrun);
  EXPECT_EQ(status().overrun_since, later.end);
  issued = observe();
  ASSERT_EQ(names(issued), std::vector<std::string>{"slow"});
  EXPECT_TRUE(issued[0].notice.overrun);
}

TEST_F(EngineOverrun, AStartGivenInWholeSecondsAsShownIsTheSameStart) {
  add("slow", kSuspend);
  clock.advance(250ms);  // "now" from hostmaintctl has a fraction
  start();
  agent::ScheduleRequest request = window(0s, 1h);
  engine->schedule(request);
  ASSERT_TRUE(advanceToWakeup());
  ASSERT_TRUE(status().overrun);
  agent::MaintenanceWindow as_shown = request.window;
  as_shown.start = std::chrono::floor<std::chrono::seconds>(request.window.start);
  as_shown.end = clock.now() + 1h;
  engine->reschedule(as_shown);
  EXPECT_FALSE(status().overrun);
  EXPECT_EQ(status().window->start, request.window.start) << "the start is kept as it was";
  EXPECT_EQ(status().window->end, as_shown.end);
  as_shown.start += 1s;
  EXPECT_THROW(engine->reschedule(as_shown), agent::CommandError) << "another second is a move";
}

TEST_F(EngineOverrun, CancelEndsTheOverrun) {
  add("slow", kSuspend);
  start();
  engine->schedule(window(0s, 1h));
  ASSERT_TRUE(advanceToWakeup());
  ASSERT_TRUE(status().overrun);
  engine->cancel();
  EXPECT_EQ(status().phase, HostPhase::restoring);
  EXPECT_FALSE(status().overrun);
  EXPECT_FALSE(hasBlocker("window"));
}

TEST_F(EngineOverrun, AHostEmptiedInTimeIsNoOverrunWhenTheWindowEnds) {
  add("a", kSuspend);
  start();
  engine->schedule(window(0s, 1h));
  hypervisor.completeAll();
  ASSERT_EQ(status().phase, HostPhase::empty);
  EXPECT_EQ(engine->nextWakeup(), std::nullopt) << "no reason to wake at the end";
  observe();
  clock.advance(2h);
  engine->tick();
  EXPECT_EQ(status().phase, HostPhase::empty) << "finish stays the admin's";
  EXPECT_FALSE(status().overrun);
  EXPECT_FALSE(hasBlocker("window"));
  EXPECT_TRUE(observe().empty()) << "done in time: the owner hears nothing new";
  engine->begin();
  EXPECT_FALSE(status().overrun);
}

TEST_F(EngineOverrun, ARestartAfterTheWholeWindowPassedDrainsLateAndSaysSo) {
  add("a", kSuspend);
  start();
  agent::ScheduleRequest request = window(1h, 1h);
  engine->schedule(request);
  crash();
  clock.advance(3h);
  start();
  EXPECT_EQ(status().phase, HostPhase::draining);
  EXPECT_TRUE(status().overrun);
  EXPECT_EQ(status().overrun_since, request.window.end);
  EXPECT_TRUE(hasBlocker("window", "still draining: 1 domain (a)"));
  EXPECT_EQ(stage("a"), DomainStage::acting);
}

}  // namespace
}  // namespace hostmaint::fake
