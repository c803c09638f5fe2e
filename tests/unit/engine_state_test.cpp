// The engine's typed state without an engine: transitions, admission rules
// (pure functions over the state), the status projection's words, and the
// journal round trip of every stage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../../agent/src/core/admission.hpp"
#include "../../agent/src/core/engine_state.hpp"
#include "../../agent/src/core/status_projection.hpp"

using namespace hostmaint::agent;
using namespace std::chrono_literals;
using testing::HasSubstr;
namespace hv = hostmaint::hv;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'800'000'000));

DomainRecord record(std::string name, DomainState state, int priority = 0,
                    std::string group = "") {
  DomainRecord r;
  r.uuid = "uuid-" + name;
  r.name = std::move(name);
  r.state = std::move(state);
  r.policy.priority = priority;
  r.policy.group = std::move(group);
  r.action = MaintenanceAction::live_migrate;
  return r;
}

stage::Acting migrating() { return stage::Acting{hv::ActionKind::live_migrate, running::Launched{}}; }

TEST(EngineStateTest, LeavingARunningActionDropsItsProgressAndPendingCompletion) {
  DomainRecord r = record("web1", migrating());
  r.completion_pending = true;
  r.progress = MigrationProgress{};
  transition(r, stage::Done{"migrated to b"});
  EXPECT_FALSE(r.completion_pending);
  EXPECT_FALSE(r.progress.has_value());
  EXPECT_EQ(r.stage(), DomainStage::done);
}

TEST(EngineStateTest, ChangingHowAnActionIsKnownKeepsItsPendingCompletion) {
  DomainRecord r = record("web1", migrating());
  r.completion_pending = true;
  stage::Acting adopted = migrating();
  adopted.how = running::Adopted{};
  transition(r, adopted);
  EXPECT_TRUE(r.completion_pending);
}

TEST(EngineStateTest, RunningKindCoversDrainActionsAndStartedRestoresOnly) {
  EXPECT_EQ(record("a", migrating()).runningKind(), hv::ActionKind::live_migrate);
  EXPECT_EQ(record("b", stage::Acting{std::nullopt, running::OwnerActs{kT0}}).runningKind(),
            std::nullopt);
  stage::Restoring restoring{"suspended"};
  EXPECT_EQ(record("c", restoring).runningKind(), std::nullopt);
  restoring.started = true;
  EXPECT_EQ(record("d", restoring).runningKind(), hv::ActionKind::start);
}

TEST(AdmissionTest, SlotsWaitNamesTheLimitThatIsFull) {
  EngineState state;
  state.domains = {record("a", migrating()), record("b", migrating()),
                   record("c", stage::Waiting{})};
  LimitsConfig limits;
  limits.max_parallel_actions = 4;
  limits.max_parallel_migrations = 2;
  auto wait = slotsWait(state, state.domains[2], limits);
  ASSERT_TRUE(wait.has_value());
  const auto* slots = std::get_if<wait::MigrationSlots>(&*wait);
  ASSERT_NE(slots, nullptr);
  EXPECT_EQ(slots->running, 2u);
  EXPECT_EQ(describeWait(*wait), "waiting: 2 of max 2 migrations running");

  state.domains[2].action = MaintenanceAction::suspend;  // not a migration
  EXPECT_FALSE(slotsWait(state, state.domains[2], limits).has_value());
  limits.max_parallel_actions = 2;
  wait = slotsWait(state, state.domains[2], limits);
  ASSERT_TRUE(wait.has_value());
  EXPECT_TRUE(std::holds_alternative<wait::ActionSlots>(*wait));
}

TEST(AdmissionTest, GroupWaitIsStalledOnlyWhenNoImpactRecoversDuringTheDrain) {
  EngineState state;
  DomainRecord suspended = record("a", stage::Done{"suspended"}, 0, "db");
  suspended.needs_restore = true;
  DomainRecord next = record("b", stage::Waiting{}, 0, "db");
  state.domains = {suspended, next};
  auto wait = groupWait(state, state.domains[1], kT0);
  ASSERT_TRUE(wait.has_value());
  EXPECT_TRUE(wait->stalled);
  EXPECT_THAT(describeWait(*wait), HasSubstr("stay down until the maintenance ends"));

  // A member that moved recovers after recovery_time: not stalled, and free after it.
  DomainRecord moved = record("a", stage::Done{"migrated"}, 0, "db");
  moved.finished_at = kT0;
  moved.policy.recovery_time = 60s;
  state.domains = {moved, next};
  wait = groupWait(state, state.domains[1], kT0 + 10s);
  ASSERT_TRUE(wait.has_value());
  EXPECT_FALSE(wait->stalled);
  EXPECT_FALSE(groupWait(state, state.domains[1], kT0 + 61s).has_value());
}

TEST(AdmissionTest, DrainOrderIsPriorityThenBiggestFirstThenName) {
  EngineState state;
  state.domains = {record("small", stage::Waiting{}), record("big", stage::Waiting{}),
                   record("urgent", stage::Waiting{}, 10), record("busy", migrating())};
  auto memory = [](const DomainRecord& r) -> std::uint64_t { return r.name == "big" ? 4096 : 512; };
  EXPECT_EQ(drainOrder(state, DomainStage::waiting, memory),
            (std::vector<std::string>{"uuid-urgent", "uuid-big", "uuid-small"}));
}

TEST(StatusProjectionTest, WaitReasonsBecomeWordsInOnePlace) {
  EXPECT_EQ(describeWait(wait::ToStart{}), "waiting to start");
  EXPECT_EQ(describeWait(wait::LibvirtDown{hv::ConnectionState::disconnected}),
            "waiting: libvirt is disconnected");
  EXPECT_THAT(describeWait(wait::NotBefore{kT0, true}), HasSubstr("(lead time)"));
  EXPECT_EQ(describeWait(wait::Destination{"b: no room"}), "waiting for a destination: b: no room");
  EXPECT_EQ(describeRestoreWait(wait::ActionSlots{2, 2}),
            "waiting to be restored: 2 of max 2 actions running");
  EXPECT_EQ(describeRestoreWait(wait::ToStart{}), "waiting to be restored");
}

TEST(StatusProjectionTest, StalledGroupsAndFailuresAreBlockersOthersAreNot) {
  EngineState state;
  state.phase = HostPhase::draining;
  state.domains = {record("stalled", stage::Waiting{wait::GroupLimit{"db", 1, 1, true, {}}}),
                   record("recovering", stage::Waiting{wait::GroupLimit{"db", 1, 1, false, {}}}),
                   record("broken", stage::Failed{"live-migrate failed: boom"}),
                   record("busy", migrating())};
  const std::optional<std::vector<hv::EvidenceCheck>> evidence;
  const std::optional<std::string> journal_error;
  DomainPolicy defaults;
  NoticeSettings notices;
  HostStatus status = projectStatus(StatusInputs{state, "h", hv::ConnectionState::connected, "",
                                                 "test:///", {}, evidence, false, journal_error,
                                                 defaults, notices, {}, kT0});
  std::vector<std::string> subjects;
  for (const Blocker& blocker : status.blockers) subjects.push_back(blocker.subject);
  EXPECT_EQ(subjects, (std::vector<std::string>{"domain stalled", "domain broken"}));
  ASSERT_EQ(status.domains.size(), 4u);
  EXPECT_EQ(status.domains[2].result, "live-migrate failed");
  EXPECT_EQ(status.domains[2].detail, "live-migrate failed: boom");
  EXPECT_EQ(status.domains[3].detail, "migrating to ");
}

TEST(EngineStateCodecTest, EveryStageSurvivesTheJournal) {
  EngineState state;
  state.phase = HostPhase::draining;
  state.session_id = "s";
  state.window = MaintenanceWindow{kT0, kT0 + 2h, false, "kernel"};
  state.scheduled_at = kT0 - 1h;
  DomainRecord awaiting = record("awaiting", stage::AwaitingAck{kT0 + 1h});
  awaiting.ack_deadline = kT0 + 1h;
  DomainRecord owner = record("owner", stage::Acting{std::nullopt, running::OwnerActs{}});
  owner.action = MaintenanceAction::owner;
  owner.policy.ack_timeout = 30min;
  stage::Restoring restoring{"suspended"};
  restoring.started = true;
  state.domains = {awaiting,
                   record("acting", migrating()),
                   owner,
                   record("done", stage::Done{"migrated to b"}),
                   record("failed", stage::Failed{"boom"}),
                   record("blocked", stage::Blocked{"malformed"}),
                   record("left", stage::Left{"moved by its owner"}),
                   record("restoring", restoring),
                   record("restored", stage::Restored{"started", "why"}),
                   record("restore-failed", stage::RestoreFailed{"gone"})};
  EngineState back = decodeEngineState(encodeEngineState(state));
  ASSERT_EQ(back.domains.size(), state.domains.size());
  for (std::size_t i = 0; i < state.domains.size(); ++i) {
    SCOPED_TRACE(state.domains[i].name);
    EXPECT_EQ(back.domains[i].stage(), state.domains[i].stage());
    if (i != 1 && i != 2) {  // running actions are re-evaluated after a restart
      EXPECT_EQ(describeDomain(back.domains[i]).detail, describeDomain(state.domains[i]).detail);
      EXPECT_EQ(describeDomain(back.domains[i]).result, describeDomain(state.domains[i]).result);
    }
  }
  const auto& acting = std::get<stage::Acting>(back.domains[1].state);
  EXPECT_EQ(acting.kind, hv::ActionKind::live_migrate);
  EXPECT_TRUE(holds<running::FoundRunning>(acting.how));
  // The owner's deadline is rebuilt from the window and its policy.
  const auto& owner_acting = std::get<stage::Acting>(back.domains[2].state);
  EXPECT_EQ(std::get<running::OwnerActs>(owner_acting.how).deadline, kT0 + 30min);
  EXPECT_EQ(back.domains[7].runningKind(), hv::ActionKind::start);
}

TEST(EngineStateCodecTest, AwaitingAnAckWithoutADeadlineIsRefusedByName) {
  EngineState state;
  state.phase = HostPhase::scheduled;
  state.window = MaintenanceWindow{kT0, kT0 + 2h, false, ""};
  DomainRecord awaiting = record("web7", stage::AwaitingAck{kT0});
  state.domains = {awaiting};
  std::string document = encodeEngineState(state);
  try {
    decodeEngineState(document);
    FAIL() << "accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("web7"));
    EXPECT_THAT(error.what(), HasSubstr("ack_deadline"));
  }
}

}  // namespace
