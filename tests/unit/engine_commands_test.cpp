// Commands: schedule refusals, acks (move/keep, deadlines), removal, cancel,
// begin and finish with restore.
#include <gtest/gtest.h>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::CommandError;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::agent::MaintenanceAction;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

class EngineCommands : public EngineTest {};

std::string refusal(const std::function<void()>& command) {
  try {
    command();
  } catch (const CommandError& error) {
    return error.what();
  }
  return "(not refused)";
}

TEST_F(EngineCommands, ScheduleRefusalsSayWhy) {
  add("web1");
  start();
  EXPECT_NE(refusal([&] { engine->schedule(window(2h, -1h)); }).find("ends"), std::string::npos);
  auto past = window(-3h, 1h);
  EXPECT_NE(refusal([&] { engine->schedule(past); }).find("in the past"), std::string::npos);
  agent::ScheduleRequest request = window(1h);
  request.session_id = "session-42";
  EXPECT_EQ(engine->schedule(request), "session-42");
  EXPECT_EQ(refusal([&] { engine->schedule(window(1h)); }),
            "maintenance already scheduled (session session-42, phase scheduled); cancel it first");
}

TEST_F(EngineCommands, RescheduleMovesTheWindowAndReplansKeepingSessionAndAcks) {
  add("db", {{"ack_required", "true"}, {"ack_timeout", "30m"}, {"lead_time", "10m"}});
  add("web", {{"maintenance_action", "suspend"}});
  start();
  const std::string session = engine->schedule(window(1h));
  engine->acknowledge("db", AckChoice::move);
  const auto later = window(3h, 2h);
  engine->reschedule(later.window);
  EXPECT_EQ(status().session_id, session);
  ASSERT_TRUE(status().window.has_value());
  EXPECT_EQ(status().window->start, clock.now() + 3h);
  EXPECT_EQ(domain("web").earliest_start, clock.now() + 3h);
  EXPECT_EQ(domain("db").ack, AckChoice::move) << "the owner's answer stands";
  EXPECT_EQ(status().phase, HostPhase::scheduled);
  EXPECT_TRUE(hypervisor.requests().empty());

  // Removal added: suspending in place is no longer possible for web.
  auto removal = later.window;
  removal.removal = true;
  engine->reschedule(removal);
  EXPECT_TRUE(status().window->removal);
  EXPECT_NE(domain("web").action, MaintenanceAction::suspend);
}

TEST_F(EngineCommands, RescheduleWhileDrainingMayOnlyMoveTheEnd) {
  add("web", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  ASSERT_EQ(status().phase, HostPhase::draining);
  auto moved = *status().window;
  moved.start += 1h;
  EXPECT_NE(refusal([&] { engine->reschedule(moved); }).find("only its end and reason"),
            std::string::npos);
  auto longer = *status().window;
  longer.end += 1h;
  engine->reschedule(longer);
  EXPECT_EQ(status().window->end, longer.end);
  auto backwards = *status().window;
  backwards.end = backwards.start;
  EXPECT_NE(refusal([&] { engine->reschedule(backwards); }).find("before or when it starts"),
            std::string::npos);
}

TEST_F(EngineCommands, GeneratedSessionIdsAreUuidLikeAndDistinct) {
  start();
  const std::string first = engine->schedule(window(1h));
  engine->cancel();
  const std::string second = engine->schedule(window(1h));
  EXPECT_EQ(first.size(), 36u);
  EXPECT_NE(first, second);
  EXPECT_EQ(status().session_id, second);
}

TEST_F(EngineCommands, AckRequiredWaitsForTheAck) {
  const std::string uuid = add(
      "web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}, {"ack_timeout", "1h"}});
  start();
  scheduleNow();
  EXPECT_EQ(stage("web1"), DomainStage::awaiting_ack);
  EXPECT_EQ(domain("web1").ack_deadline, clock.now() + 1h);
  EXPECT_TRUE(hasBlocker("domain web1", "acknowledgement"));
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  engine->acknowledge("web1", AckChoice::keep);
  EXPECT_EQ(domain("web1").ack, AckChoice::keep);
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::managed_save), 1);
  EXPECT_FALSE(hasBlocker("domain web1"));
}

TEST_F(EngineCommands, AckMoveChoosesMigrationAndAckByUuidWorks) {
  const std::string uuid =
      add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  scheduleNow();
  engine->acknowledge(uuid, AckChoice::move);
  EXPECT_EQ(domain("web1").action, MaintenanceAction::live_migrate);
  EXPECT_EQ(hypervisor.requestCount(uuid, ActionKind::live_migrate), 1);
}

// The owner arms its timer only from onWakeupChanged: every change of
// nextWakeup() is told, once, after the status it belongs to.
TEST_F(EngineCommands, TheListenerIsToldEachNewWakeupOnce) {
  add("web1");
  start();
  EXPECT_EQ(listener.wakeup_changes, 0) << "an idle host has no deadline to tell";
  const int before = listener.wakeup_changes;
  engine->schedule(window(1h));
  EXPECT_EQ(listener.wakeup, clock.now() + 1h);
  EXPECT_EQ(listener.wakeup_changes, before + 1);
  engine->tick();
  engine->tick();
  EXPECT_EQ(listener.wakeup_changes, before + 1) << "an unchanged wakeup is not told again";
  agent::MaintenanceWindow later = status().window.value();
  later.start += 1h;
  later.end += 1h;
  engine->reschedule(later);
  EXPECT_EQ(listener.wakeup, clock.now() + 2h);
  EXPECT_EQ(listener.wakeup_changes, before + 2);
  engine->cancel();
  EXPECT_EQ(listener.wakeup, std::nullopt);
  EXPECT_EQ(listener.wakeup, engine->nextWakeup());
}

TEST_F(EngineCommands, AckDeadlineWithProceedActs) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"},
                                        {"ack_required", "true"},
                                        {"ack_timeout", "1h"},
                                        {"ack_timeout_action", "proceed"}});
  start();
  scheduleNow();
  EXPECT_EQ(engine->nextWakeup(), clock.now() + 1h);
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(stage("web1"), DomainStage::acting);
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineCommands, AckDeadlineWithBlockLeavesItAloneUntilAcked) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"},
                                        {"ack_required", "true"},
                                        {"ack_timeout", "1h"},
                                        {"ack_timeout_action", "block"}});
  start();
  scheduleNow();
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(stage("web1"), DomainStage::blocked);
  EXPECT_TRUE(hasBlocker("domain web1", "no acknowledgement by"));
  EXPECT_EQ(hypervisor.requestCount(uuid), 0);
  engine->acknowledge("web1", AckChoice::keep);
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineCommands, AckRefusals) {
  add("web1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "owner"}});
  start();
  EXPECT_NE(refusal([&] { engine->acknowledge("web1", AckChoice::move); }).find("idle"),
            std::string::npos);
  engine->schedule(window(1h));
  EXPECT_NE(refusal([&] { engine->acknowledge("nope", AckChoice::move); }).find("'nope'"),
            std::string::npos);
  EXPECT_NE(
      refusal([&] {
        engine->acknowledge("web1", AckChoice::keep);
      }).find("neither its maintenance_action (live-migrate) nor its fallback_action (owner)"),
      std::string::npos);
}

TEST_F(EngineCommands, RemovalRefusesKeepAndUsesRemovalActions) {
  add("web1", {{"maintenance_action", "suspend"}});
  add("db", {{"removal_action", "owner"}});
  add("stopped", {}, hv::DomainRunState::shutoff);
  start();
  engine->schedule(window(1h, 2h, /*removal=*/true));
  EXPECT_EQ(domain("web1").action, MaintenanceAction::live_migrate);
  EXPECT_EQ(domain("db").action, MaintenanceAction::owner);
  // A stopped domain defined here would come back: it leaves offline.
  EXPECT_EQ(domain("stopped").action, MaintenanceAction::cold_migrate);
  EXPECT_NE(refusal([&] { engine->acknowledge("web1", AckChoice::keep); }).find("removed"),
            std::string::npos);
}

TEST_F(EngineCommands, RemovalWithoutMigrationBlocksStoppedDefinedDomains) {
  hypervisor.setCapabilities({false, false, true, "cannot migrate here"});
  add("stopped", {{"removal_fallback_action", "cold-migrate"}}, hv::DomainRunState::shutoff);
  start();
  scheduleNow(true);
  EXPECT_EQ(stage("stopped"), DomainStage::blocked);
  EXPECT_TRUE(hasBlocker("domain stopped",
                         "defined here and the host is being removed: move or undefine it"));
}

TEST_F(EngineCommands, CancelBeforeWindowTouchesNothing) {
  add("web1");
  start();
  engine->schedule(window(1h));
  engine->cancel();
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_FALSE(status().session_id.has_value());
  EXPECT_TRUE(hypervisor.requests().empty());
  EXPECT_NE(refusal([&] { engine->cancel(); }).find("no maintenance"), std::string::npos);
}

TEST_F(EngineCommands, CancelWhileDrainingRestoresOnlyWhatWasDone) {
  settings.limits.max_parallel_actions = 2;
  const std::string saved = add("saved", {{"maintenance_action", "suspend"}, {"priority", "9"}});
  const std::string moved = add("moved", {{"priority", "8"}});
  const std::string inflight =
      add("inflight", {{"maintenance_action", "shutdown"}, {"priority", "7"}});
  const std::string untouched =
      add("untouched", {{"maintenance_action", "suspend"}, {"lead_time", "1h"}});
  start();
  scheduleNow();
  hypervisor.complete(saved);
  hypervisor.complete(moved);
  ASSERT_TRUE(hypervisor.isPending(inflight));
  ASSERT_FALSE(hypervisor.isPending(untouched));
  hypervisor.setAutoComplete(false);
  engine->cancel();
  EXPECT_EQ(status().phase, HostPhase::restoring);
  EXPECT_EQ(hypervisor.requestCount(saved, ActionKind::start), 1);
  hypervisor.completeAll();  // the shutdown, the restore of `saved`, then `inflight`'s restore
  hypervisor.completeAll();
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_EQ(stage("saved"), DomainStage::restored);
  EXPECT_EQ(stage("inflight"), DomainStage::restored);
  EXPECT_EQ(hypervisor.requestCount(inflight, ActionKind::start), 1);
  EXPECT_EQ(stage("moved"), DomainStage::done) << "migrated domains stay away";
  EXPECT_EQ(hypervisor.requestCount(moved, ActionKind::start), 0);
  EXPECT_EQ(hypervisor.requestCount(untouched), 0);
  EXPECT_EQ(domain("untouched").result, "not touched: maintenance cancelled");
}

TEST_F(EngineCommands, BeginOnlyFromEmptyThenFinishRestoresInPriorityOrder) {
  settings.limits.max_parallel_actions = 1;
  add("low", {{"maintenance_action", "suspend"}, {"priority", "1"}});
  add("high", {{"maintenance_action", "shutdown"}, {"priority", "5"}});
  const std::string broken_restore =
      add("mid", {{"maintenance_action", "suspend"}, {"priority", "3"}});
  start();
  EXPECT_NE(refusal([&] { engine->begin(); }).find("'idle'"), std::string::npos);
  EXPECT_NE(refusal([&] { engine->finish(); }).find("idle"), std::string::npos);
  scheduleNow();
  EXPECT_NE(refusal([&] { engine->begin(); }).find("'draining'"), std::string::npos);
  hypervisor.completeAll();
  ASSERT_EQ(status().phase, HostPhase::empty);
  engine->begin();
  EXPECT_EQ(status().phase, HostPhase::in_maintenance);
  EXPECT_TRUE(status().ready);

  const std::size_t drained = hypervisor.requests().size();
  hypervisor.failNext(broken_restore, ActionKind::start, "cannot restore 'mid': image corrupt");
  engine->finish();
  EXPECT_EQ(status().phase, HostPhase::restoring);
  EXPECT_FALSE(status().ready);
  hypervisor.completeAll();
  ASSERT_EQ(hypervisor.requests().size(), drained + 3);
  EXPECT_EQ(hypervisor.requests()[drained].name, "high");
  EXPECT_EQ(hypervisor.requests()[drained + 1].name, "mid");
  EXPECT_EQ(hypervisor.requests()[drained + 2].name, "low");
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_EQ(stage("high"), DomainStage::restored);
  EXPECT_EQ(stage("low"), DomainStage::restored);
  EXPECT_EQ(domain("low").result, "restored from managed-save");
  EXPECT_EQ(stage("mid"), DomainStage::restore_failed);
  EXPECT_EQ(domain("mid").detail, "cannot restore 'mid': image corrupt");
  EXPECT_TRUE(hasBlocker("domain mid", "image corrupt"));
}

TEST_F(EngineCommands, CancelRefusedOnceEmpty) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeAll();
  EXPECT_EQ(refusal([&] { engine->cancel(); }),
            "cannot cancel: maintenance is in phase 'empty'; use finish");
}

TEST_F(EngineCommands, IdleStatusListsTheInventory) {
  add("web1");
  add("broken", {{"priority", "high"}});
  start();
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_EQ(status().domains.size(), 2u);
  EXPECT_FALSE(domain("broken").policy_error.empty());
  hypervisor.addDomainWithEvent(makeDomain("late"));
  EXPECT_EQ(status().domains.size(), 3u);
  EXPECT_EQ(status().host, "hv-test");
  EXPECT_EQ(status().hypervisor, "fake:///test");
}

}  // namespace
}  // namespace hostmaint::fake
