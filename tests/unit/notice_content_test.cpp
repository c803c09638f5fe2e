// The content of owner notices as the engine computes them from each
// domain's plan and policy: action, earliest start, expected downtime,
// removal, ack deadline and what happens without an ack, keep.
#include <gtest/gtest.h>

#include "hostmaint/agent/controller/protocol.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/agent/status_json.hpp"
#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::AckTimeoutAction;
using hostmaint::agent::DomainNotice;
using hostmaint::agent::MaintenanceAction;

namespace hostmaint::fake {
namespace {

class NoticeContent : public EngineTest {
 protected:
  const DomainNotice& notice(const std::string& name) {
    const auto& shown = domain(name).notice;
    if (!shown) throw std::logic_error("no notice for " + name);
    return *shown;
  }
};

TEST_F(NoticeContent, IdleHostHasNoNotices) {
  add("web1");
  start();
  EXPECT_FALSE(domain("web1").notice.has_value());
}

TEST_F(NoticeContent, LiveMigrationEstimateUsesAssumedThroughputWithAFloor) {
  settings.notices.assumed_throughput_bps = 64ull * 1024 * 1024;  // 64 MiB/s
  settings.notices.min_expected_downtime = 5s;
  add("big");    // 1 GiB (the fake's default): 16 s at 64 MiB/s
  start();
  engine->schedule(window(1h));
  const DomainNotice& n = notice("big");
  EXPECT_EQ(n.action, MaintenanceAction::live_migrate);
  EXPECT_EQ(n.expected_downtime, 16s);
  EXPECT_EQ(n.downtime_basis, "assumed-throughput");
  EXPECT_EQ(n.earliest_start, clock.now() + 1h);
  EXPECT_EQ(n.window_start, clock.now() + 1h);
  EXPECT_FALSE(n.removal);
  EXPECT_EQ(n.session_id, status().session_id.value());

  // The floor wins over a short estimate.
  settings.notices.min_expected_downtime = 1min;
  engine->updateSettings(settings);
  EXPECT_EQ(notice("big").expected_downtime, 1min);
}

TEST_F(NoticeContent, MeasuredThroughputIsPreferredOverTheAssumption) {
  agent::DomainStatus view;
  view.name = "web1";
  view.memory_kib = 4 * 1024 * 1024;  // 4 GiB
  view.action = MaintenanceAction::live_migrate;
  agent::DomainPolicy policy;
  agent::MaintenanceWindow window{clock.now(), clock.now() + 2h, false, "test"};
  agent::NoticeSettings estimates;
  estimates.min_expected_downtime = 1s;
  agent::NoticeInput input{view, policy, window, "s1", clock.now(), 512ull * 1024 * 1024};
  auto measured = agent::computeNotice(input, estimates);
  ASSERT_TRUE(measured);
  EXPECT_EQ(measured->expected_downtime, 8s);
  EXPECT_EQ(measured->downtime_basis, "measured-throughput");
}

TEST_F(NoticeContent, SuspendAndShutdownAreDownForTheWindow) {
  add("s", {{"maintenance_action", "suspend"}});
  add("d", {{"maintenance_action", "shutdown"}});
  start();
  engine->schedule(window(1h, 3h));
  EXPECT_EQ(notice("s").expected_downtime, 3h);
  EXPECT_EQ(notice("s").downtime_basis, "window");
  EXPECT_EQ(notice("d").expected_downtime, 3h);
  // Suspend stays on the host, so keep is what it already does.
  EXPECT_TRUE(notice("s").keep_allowed);
  EXPECT_EQ(notice("s").keep_action, MaintenanceAction::suspend);
}

TEST_F(NoticeContent, ColdMigrationIsShutdownPlusStart) {
  settings.notices.boot_estimate = 90s;
  add("c", {{"maintenance_action", "cold-migrate"}, {"shutdown_timeout", "3m"}});
  start();
  engine->schedule(window(1h));
  EXPECT_EQ(notice("c").expected_downtime, 3min + 90s);
  EXPECT_EQ(notice("c").downtime_basis, "shutdown-and-start");
}

TEST_F(NoticeContent, OwnerActionHasADeadlineAndNoEstimate) {
  add("db", {{"maintenance_action", "owner"}, {"ack_timeout", "2h"}});
  start();
  engine->schedule(window(1h));
  const DomainNotice& n = notice("db");
  EXPECT_EQ(n.action, MaintenanceAction::owner);
  EXPECT_FALSE(n.expected_downtime.has_value());
  EXPECT_EQ(n.downtime_basis, "owner");
  EXPECT_EQ(n.owner_deadline, clock.now() + 1h + 2h);
  EXPECT_NE(n.message.find("must be moved or deleted by its owner by"), std::string::npos)
      << n.message;
}

TEST_F(NoticeContent, AckRequiredSaysTheDeadlineAndWhatHappensWithoutAck) {
  add("p", {{"ack_required", "true"}, {"ack_timeout", "30m"}, {"ack_timeout_action", "proceed"}});
  add("b", {{"ack_required", "true"}, {"ack_timeout", "30m"}, {"ack_timeout_action", "block"}});
  start();
  engine->schedule(window(1h));
  EXPECT_EQ(notice("p").ack_deadline, clock.now() + 30min);
  EXPECT_EQ(notice("p").ack_timeout_action, AckTimeoutAction::proceed);
  EXPECT_NE(notice("p").message.find("the planned action proceeds"), std::string::npos);
  EXPECT_EQ(notice("b").ack_timeout_action, AckTimeoutAction::block);
  EXPECT_NE(notice("b").message.find("blocks the maintenance until acknowledged"),
            std::string::npos);
}

TEST_F(NoticeContent, AckChangesTheNoticeAndLeadTimeCountsFromTheAck) {
  add("web1", {{"maintenance_action", "suspend"},
               {"ack_required", "true"},
               {"ack_timeout", "1h"},
               {"lead_time", "20m"}});
  start();
  engine->schedule(window(10min));
  EXPECT_EQ(notice("web1").earliest_start, clock.now() + 20min);
  clock.advance(15min);
  engine->acknowledge("web1", AckChoice::move);
  const DomainNotice& n = notice("web1");
  EXPECT_EQ(n.ack, AckChoice::move);
  EXPECT_FALSE(n.ack_deadline.has_value());
  EXPECT_EQ(n.action, MaintenanceAction::live_migrate);
  EXPECT_EQ(n.earliest_start, clock.now() + 20min);
}

TEST_F(NoticeContent, RemovalSaysNothingMayStayAndKeepIsNotAllowed) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  engine->schedule(window(1h, 2h, /*removal=*/true));
  const DomainNotice& n = notice("web1");
  EXPECT_TRUE(n.removal);
  EXPECT_FALSE(n.keep_allowed);
  EXPECT_EQ(n.action, MaintenanceAction::live_migrate);
  EXPECT_NE(n.message.find("removed for good"), std::string::npos);
}

TEST_F(NoticeContent, PolicyThatCannotStayDoesNotAllowKeep) {
  add("web1", {{"maintenance_action", "live-migrate"}, {"fallback_action", "owner"}});
  start();
  engine->schedule(window(1h));
  EXPECT_FALSE(notice("web1").keep_allowed);
  EXPECT_FALSE(notice("web1").keep_action.has_value());
}

TEST_F(NoticeContent, NothingToDoMeansNoNotice) {
  add("off", {}, hv::DomainRunState::shutoff);
  start();
  engine->schedule(window(1h));
  EXPECT_FALSE(domain("off").notice.has_value());
}

TEST_F(NoticeContent, MalformedPolicyNoticeAsksForAnAck) {
  add("broken", {{"maintenance_action", "teleport"}});
  start();
  engine->schedule(window(1h));
  const DomainNotice& n = notice("broken");
  EXPECT_FALSE(n.action.has_value());
  EXPECT_NE(n.message.find("malformed"), std::string::npos) << n.message;
  EXPECT_NE(n.message.find("an ack 'move' or 'keep'"), std::string::npos) << n.message;
}

TEST_F(NoticeContent, StatusJsonCarriesTheNotice) {
  add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  engine->schedule(window(1h, 2h));
  const auto json = agent::statusToJson(status());
  const auto& shown = json.at("domains").at(0).at("notice");
  EXPECT_EQ(shown.at("action"), "suspend");
  EXPECT_EQ(shown.at("status"), "active");
  EXPECT_EQ(shown.at("expected_downtime_s"), 7200);
  EXPECT_EQ(shown.at("ack_timeout_action"), "proceed");
  EXPECT_EQ(shown.at("earliest_start"), agent::formatTime(clock.now() + 1h));
  // Round trip: what the ledger persists reads back the same.
  EXPECT_EQ(agent::noticeFromJson(shown), *domain("web1").notice);
  // The controller's status report is the same document.
  EXPECT_EQ(agent::controller::makeStatusReport(status(), 1).at("domains").at(0).at("notice"),
            shown);
}

}  // namespace
}  // namespace hostmaint::fake
