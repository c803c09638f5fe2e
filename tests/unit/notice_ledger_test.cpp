// The notice ledger: which snapshots issue a notice (new, changed,
// cancelled), revisions, what is shown, and persistence across restarts.
#include <gtest/gtest.h>

#include "support/notice_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::HostStatus;
using hostmaint::agent::NoticeLedger;

namespace hostmaint::fake {
namespace {

TEST_F(NoticeLedgerTest, ScheduleIssuesOneNoticePerDomainWithGrowingRevisions) {
  add("a", {{"maintenance_action", "suspend"}});
  add("b", {{"maintenance_action", "suspend"}});
  add("off", {}, hv::DomainRunState::shutoff);
  start();
  EXPECT_TRUE(observe().empty()) << "idle: nothing to tell";
  engine->schedule(window(1h));
  auto issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(issued[0].notice.revision, 1001u);
  EXPECT_EQ(issued[1].notice.revision, 1002u);
  EXPECT_EQ(issued[0].notice.issued_at, clock.now());
  EXPECT_EQ(shownNotice("a").revision, 1001u);
  // The same plan again: nothing new.
  clock.advance(1min);
  engine->tick();
  EXPECT_TRUE(observe().empty());
  EXPECT_EQ(shownNotice("a").issued_at, clock.now() - 1min);
}

TEST_F(NoticeLedgerTest, AckIssuesANewRevisionForThatDomainOnly) {
  add("a", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  add("b", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  engine->schedule(window(1h));
  observe();
  const auto before = shownNotice("a").revision;
  engine->acknowledge("a", AckChoice::keep);
  auto issued = observe();
  ASSERT_EQ(names(issued), std::vector<std::string>{"a"});
  EXPECT_GT(issued[0].notice.revision, before);
  EXPECT_EQ(issued[0].notice.ack, AckChoice::keep);
}

TEST_F(NoticeLedgerTest, AChangedEstimateAloneIsNotANewNoticeAndTheSentOneStaysShown) {
  add("a");
  start();
  engine->schedule(window(1h));
  observe();
  const auto sent = shownNotice("a");
  settings.notices.min_expected_downtime = 1h;
  engine->updateSettings(settings);
  ASSERT_NE(status().domains.front().notice->expected_downtime, sent.expected_downtime)
      << "the engine's estimate changed";
  EXPECT_TRUE(observe().empty());
  EXPECT_EQ(shownNotice("a"), sent);
}

TEST_F(NoticeLedgerTest, FallbackChosenIsANewNotice) {
  const std::string uuid = add("a");  // live-migrate, fallback suspend
  start();
  hypervisor.failNext(uuid, hv::ActionKind::live_migrate, "destination refused");
  scheduleNow();
  observe();
  hypervisor.completeNext();
  auto issued = observe();
  ASSERT_EQ(names(issued), std::vector<std::string>{"a"});
  EXPECT_EQ(issued[0].notice.action, agent::MaintenanceAction::suspend);
  EXPECT_TRUE(issued[0].notice.fallback_used);
}

TEST_F(NoticeLedgerTest, CancelBeforeTheWindowSendsCancelledNoticesThenIdleShowsNone) {
  add("a", {{"maintenance_action", "suspend"}});
  add("b", {{"maintenance_action", "suspend"}});
  start();
  engine->schedule(window(1h));
  observe();
  engine->cancel();  // nothing to restore: straight to idle
  ASSERT_EQ(status().phase, agent::HostPhase::idle);
  auto issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(issued[0].notice.cancelled);
  EXPECT_NE(issued[0].notice.message.find("cancelled"), std::string::npos);
  EXPECT_FALSE(shown.domains.front().notice.has_value());
  EXPECT_TRUE(observe().empty());
}

TEST_F(NoticeLedgerTest, CancelWhileDrainingShowsCancelledNoticesWhileRestoring) {
  add("a", {{"maintenance_action", "suspend"}});
  add("b", {{"maintenance_action", "suspend"}});
  settings.limits.max_parallel_actions = 1;
  start();
  scheduleNow();
  hypervisor.completeNext();  // one suspended, the other acting
  observe();
  engine->cancel();
  ASSERT_EQ(status().phase, agent::HostPhase::restoring);
  auto issued = observe();
  EXPECT_EQ(issued.size(), 2u);
  EXPECT_TRUE(shownNotice("a").cancelled);
  EXPECT_TRUE(shownNotice("b").cancelled);
}

TEST_F(NoticeLedgerTest, FinishIsNotACancel) {
  add("a", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.completeAll();
  observe();
  ASSERT_EQ(status().phase, agent::HostPhase::empty);
  engine->finish();
  EXPECT_TRUE(observe().empty());
}

TEST_F(NoticeLedgerTest, ANewSessionStartsAfreshWithHigherRevisions) {
  add("a", {{"maintenance_action", "suspend"}});
  start();
  engine->schedule(window(1h));
  observe();
  engine->cancel();
  observe();
  const auto last = ledger.lastRevision();
  engine->schedule(window(2h));
  auto issued = observe();
  ASSERT_EQ(issued.size(), 1u);
  EXPECT_FALSE(issued[0].notice.cancelled);
  EXPECT_GT(issued[0].notice.revision, last);
}

TEST_F(NoticeLedgerTest, PersistedLedgerNeitherResendsNorRenumbers) {
  add("a", {{"maintenance_action", "suspend"}});
  start();
  engine->schedule(window(1h));
  observe();
  const auto sent = shownNotice("a");
  NoticeLedger restored = NoticeLedger::decode(ledger.encode());
  HostStatus again = status();
  EXPECT_TRUE(restored.observe(again, clock.now() + 1min).empty());
  EXPECT_EQ(again.domains.front().notice, sent);
  // A cancel after the restart is still seen as one.
  engine->cancel();
  HostStatus after = status();
  auto issued = restored.observe(after, clock.now());
  ASSERT_EQ(issued.size(), 1u);
  EXPECT_TRUE(issued[0].notice.cancelled);
  EXPECT_EQ(issued[0].notice.revision, sent.revision + 1);
}

// encode() keeps each entry's text while it is unchanged: the ledger must
// still read as the whole document rendered at once (as ledgers were
// written before), after a change of one notice and after a cancel.
TEST_F(NoticeLedgerTest, EncodingReusesEntriesButWritesTheSameDocument) {
  add("a", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  add("b", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  auto canonical = [](const std::string& text) {
    return nlohmann::json::parse(text).dump(2) + "\n";
  };
  EXPECT_EQ(ledger.encode(), canonical(ledger.encode())) << "no notices";
  engine->schedule(window(1h));
  observe();
  const std::string first = ledger.encode();
  EXPECT_EQ(first, canonical(first));
  EXPECT_EQ(ledger.encode(), first);
  engine->acknowledge("b", AckChoice::keep);
  observe();
  const std::string second = ledger.encode();
  EXPECT_NE(second, first);
  EXPECT_EQ(second, canonical(second));
  EXPECT_EQ(NoticeLedger::decode(second).encode(), second);
  engine->cancel();
  observe();
  EXPECT_EQ(ledger.encode(), canonical(ledger.encode()));
}

TEST_F(NoticeLedgerTest, SubSecondTimesDoNotReissueAfterARestart) {
  add("a", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  clock.advance(250ms);  // the real clock is rarely on a whole second
  start();
  engine->schedule(window(1h));
  observe();
  NoticeLedger restored = NoticeLedger::decode(ledger.encode());
  HostStatus again = status();
  EXPECT_TRUE(restored.observe(again, clock.now()).empty());
}

TEST_F(NoticeLedgerTest, CorruptedTimesAndNumbersAreErrorsNotUndefinedBehaviour) {
  add("a", {{"maintenance_action", "suspend"}});
  start();
  engine->schedule(window(1h));
  observe();
  const nlohmann::json good = nlohmann::json::parse(ledger.encode());
  const std::string uuid = good["notices"].begin().key();
  auto refusal = [](const nlohmann::json& document) -> std::string {
    try {
      NoticeLedger::decode(document.dump());
    } catch (const agent::NoticeLedgerError& error) {
      return error.what();
    }
    ADD_FAILURE() << "accepted: " << document.dump();
    return {};
  };
  // Found by fuzz/notice_ledger: the year 5736 overflowed the conversion to
  // nanoseconds; a null window_start was dereferenced; a float revision was
  // converted to an integer (all undefined behaviour).
  nlohmann::json bad = good;
  bad["notices"][uuid]["notice"]["window_start"] = "5736-11-25T04:00:00Z";
  EXPECT_NE(refusal(bad).find("'window_start' is not a time"), std::string::npos);
  bad = good;
  bad["notices"][uuid]["notice"]["window_end"] = nullptr;
  EXPECT_NE(refusal(bad).find("'window_end' is null"), std::string::npos);
  bad = good;
  bad["notices"][uuid]["notice"]["revision"] = 1.8e24;
  EXPECT_NE(refusal(bad).find("'revision': expected an integer"), std::string::npos);
  bad = good;
  bad["last_revision"] = -1;
  EXPECT_NE(refusal(bad).find("last_revision: -1 is out of range"), std::string::npos);
  EXPECT_EQ(NoticeLedger::decode(good.dump()).encode(), ledger.encode());
}

TEST_F(NoticeLedgerTest, MalformedLedgerIsAnErrorThatSaysWhat) {
  EXPECT_THROW(NoticeLedger::decode("not json"), agent::NoticeLedgerError);
  try {
    NoticeLedger::decode(R"({"version": 7})");
    FAIL() << "version 7 accepted";
  } catch (const agent::NoticeLedgerError& error) {
    EXPECT_NE(std::string(error.what()).find("version 7"), std::string::npos) << error.what();
  }
}

TEST_F(NoticeLedgerTest, AHostShutdownTellsOwnersWhatWasDoneAndWhenItIsBack) {
  add("web1");
  add("broken");
  start();
  EXPECT_TRUE(observe().empty());
  hypervisor.failNext(hypervisor.uuidOf("broken"), hv::ActionKind::managed_save, "no space");
  engine->hostShutdown("uid 0");
  auto issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"web1", "broken"}));
  EXPECT_EQ(issued[0].notice.action, agent::MaintenanceAction::suspend);
  EXPECT_EQ(issued[0].notice.downtime_basis, "host-shutdown");
  EXPECT_NE(issued[0].notice.message.find("went down outside a planned maintenance"),
            std::string::npos)
      << issued[0].notice.message;
  hypervisor.completeAll();
  issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"web1", "broken"})) << "each step is told";
  EXPECT_NE(issued[0].notice.message.find("web1 was suspended"), std::string::npos);
  EXPECT_NE(issued[1].notice.message.find("could not be suspended (no space)"), std::string::npos)
      << issued[1].notice.message;
  EXPECT_TRUE(observe().empty()) << "nothing new";

  crash();
  start();
  hypervisor.completeAll();
  issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"web1"}));
  EXPECT_NE(issued[0].notice.message.find("running again"), std::string::npos)
      << issued[0].notice.message;
  EXPECT_NE(shownNotice("broken").message.find("could not be suspended"), std::string::npos)
      << "still shown";

  // A maintenance scheduled afterwards replaces them with its own.
  engine->schedule(window(1h));
  issued = observe();
  ASSERT_EQ(names(issued), (std::vector<std::string>{"broken", "web1"}));
  EXPECT_NE(issued[0].notice.downtime_basis, "host-shutdown");
}

}  // namespace
}  // namespace hostmaint::fake
