// Journal replay, crash in the middle of a drain, libvirt disconnection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::DomainStage;
using hostmaint::agent::HostPhase;
using hostmaint::hv::ActionKind;

namespace hostmaint::fake {
namespace {

class EngineRecovery : public EngineTest {};

TEST_F(EngineRecovery, NoJournalMeansIdle) {
  add("web1");
  start();
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_FALSE(journal.document().has_value() && journal.document()->empty());
}

TEST_F(EngineRecovery, JournalIsVersionedJsonWrittenBeforeEachAction) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  // The action was requested; the journal already says so.
  ASSERT_TRUE(hypervisor.isPending(uuid));
  auto saved = nlohmann::json::parse(*journal.document());
  EXPECT_EQ(saved["version"], 1);
  EXPECT_EQ(saved["phase"], "draining");
  EXPECT_EQ(saved["domains"][0]["stage"], "acting");
  EXPECT_EQ(saved["domains"][0]["acting_kind"], "managed-save");
  hypervisor.completeNext();
  saved = nlohmann::json::parse(*journal.document());
  EXPECT_EQ(saved["phase"], "empty");
  EXPECT_EQ(saved["domains"][0]["result"], "suspended");
  EXPECT_EQ(saved["domains"][0]["needs_restore"], true);
}

TEST_F(EngineRecovery, ScheduledSessionSurvivesARestartWithAcks) {
  add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  add("web2", {{"maintenance_action", "suspend"}});
  start();
  agent::ScheduleRequest request = window(1h);
  request.window.reason = "bios";
  const std::string session = engine->schedule(request);
  engine->acknowledge("web1", AckChoice::keep);
  crash();
  start();
  EXPECT_EQ(status().phase, HostPhase::scheduled);
  EXPECT_EQ(status().session_id, session);
  ASSERT_TRUE(status().window.has_value());
  EXPECT_EQ(status().window->reason, "bios");
  EXPECT_EQ(status().window->start, clock.now() + 1h);
  EXPECT_EQ(domain("web1").ack, AckChoice::keep);
  EXPECT_EQ(stage("web1"), DomainStage::planned);
  EXPECT_TRUE(advanceToWakeup());
  hypervisor.completeAll();
  EXPECT_TRUE(status().ready);
}

TEST_F(EngineRecovery, EventsBeforeRecoverDoNotOverwriteTheJournal) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  const std::string session = engine->schedule(window(1h));
  crash();
  // The daemon connects to libvirt (and gets its inventory) before it
  // recovers: that must not save an idle state over the maintenance.
  engine =
      std::make_unique<agent::MaintenanceEngine>(hypervisor, clock, journal, settings, listener);
  hypervisor.setObserver(engine.get());
  const int saves_before = journal.saves();
  hypervisor.refreshInventory();
  EXPECT_EQ(journal.saves(), saves_before);
  engine->recover();
  EXPECT_EQ(status().phase, HostPhase::scheduled);
  EXPECT_EQ(status().session_id, session);
}

TEST_F(EngineRecovery, CrashMidDrainRepeatsNoActionWhoseEffectIsVisible) {
  settings.limits.max_parallel_actions = 6;
  const std::string saved = add("saved", {{"maintenance_action", "suspend"}});
  const std::string stopped = add("stopped", {{"maintenance_action", "shutdown"}});
  const std::string migrated = add("migrated");
  const std::string lost = add("lost", {{"maintenance_action", "suspend"}});
  const std::string later = add("later", {{"maintenance_action", "suspend"}, {"priority", "-1"}});
  const std::string finished =
      add("finished", {{"maintenance_action", "suspend"}, {"priority", "9"}});
  start();
  scheduleNow();
  hypervisor.complete(finished);  // done before the crash
  ASSERT_TRUE(hypervisor.isPending(saved));
  ASSERT_TRUE(hypervisor.isPending(stopped));
  ASSERT_TRUE(hypervisor.isPending(migrated));
  ASSERT_TRUE(hypervisor.isPending(lost));
  ASSERT_TRUE(hypervisor.isPending(later));

  crash();
  // While the daemon was down: some actions took effect, one never did, one
  // is still running.
  hypervisor.takeEffectWithoutReply(saved);
  hypervisor.takeEffectWithoutReply(stopped);
  hypervisor.takeEffectWithoutReply(migrated);
  hypervisor.abandon(lost);
  ASSERT_TRUE(hypervisor.isPending(later));  // still running, job active

  start();
  EXPECT_EQ(stage("saved"), DomainStage::done);
  EXPECT_EQ(domain("saved").result, "suspended (confirmed after restart)");
  EXPECT_EQ(stage("stopped"), DomainStage::done);
  EXPECT_EQ(stage("migrated"), DomainStage::done);
  EXPECT_EQ(domain("migrated").result,
            "migrated to qemu+tls://host-b/system (confirmed after restart)");
  EXPECT_EQ(stage("later"), DomainStage::acting) << "its job is still running";
  EXPECT_EQ(hypervisor.requestCount(lost), 2) << "no effect visible: redone";

  hypervisor.complete(lost);
  hypervisor.takeEffectWithoutReply(later);  // reported by its event only
  EXPECT_EQ(stage("later"), DomainStage::done);
  EXPECT_EQ(status().phase, HostPhase::empty);
  EXPECT_TRUE(status().ready);
  for (const std::string& uuid : {saved, stopped, migrated, later, finished}) {
    EXPECT_EQ(hypervisor.requestCount(uuid), 1) << uuid;
  }

  // The restart also remembers what must be restored.
  engine->finish();
  hypervisor.completeAll();
  EXPECT_EQ(status().phase, HostPhase::idle);
  EXPECT_EQ(hypervisor.requestCount(saved, ActionKind::start), 1);
  EXPECT_EQ(hypervisor.requestCount(stopped, ActionKind::start), 1);
  EXPECT_EQ(hypervisor.requestCount(migrated, ActionKind::start), 0);
}

TEST_F(EngineRecovery, RecoveryWhileDisconnectedWaitsForTheInventory) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  crash();
  hypervisor.takeEffectWithoutReply(uuid);
  hypervisor.setConnectionState(hv::ConnectionState::connecting);
  start();
  EXPECT_EQ(stage("web1"), DomainStage::acting);
  EXPECT_TRUE(hasBlocker("libvirt"));
  hypervisor.setConnectionState(hv::ConnectionState::connected);
  hypervisor.refreshInventory();
  EXPECT_EQ(stage("web1"), DomainStage::done);
  EXPECT_TRUE(status().ready);
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineRecovery, DisconnectBlocksNewActionsAndReconnectResumes) {
  settings.limits.max_parallel_actions = 1;
  const std::string a = add("a", {{"maintenance_action", "suspend"}, {"priority", "2"}});
  const std::string b = add("b", {{"maintenance_action", "suspend"}});
  start();
  scheduleNow();
  hypervisor.setConnectionState(hv::ConnectionState::disconnected, "keepalive timeout");
  EXPECT_TRUE(hasBlocker("libvirt", "keepalive timeout"));
  hypervisor.completeNext();  // `a` finished just before the connection dropped
  EXPECT_EQ(stage("a"), DomainStage::done);
  EXPECT_EQ(stage("b"), DomainStage::waiting);
  EXPECT_NE(domain("b").detail.find("disconnected"), std::string::npos);
  EXPECT_EQ(hypervisor.requestCount(b), 0);
  EXPECT_FALSE(status().ready);

  hypervisor.setConnectionState(hv::ConnectionState::connected);
  hypervisor.refreshInventory();
  EXPECT_FALSE(hasBlocker("libvirt"));
  EXPECT_EQ(hypervisor.requestCount(b), 1);
  hypervisor.completeNext();
  EXPECT_TRUE(status().ready);
  EXPECT_EQ(hypervisor.requestCount(a), 1);
}

TEST_F(EngineRecovery, JournalFailureStopsNewActionsVisibly) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"}, {"lead_time", "10m"}});
  start();
  scheduleNow();
  journal.setFailing(true);
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_EQ(hypervisor.requestCount(uuid), 0) << "no action without its journal entry";
  EXPECT_TRUE(hasBlocker("journal", "No space left"));
  journal.setFailing(false);
  engine->tick();
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineRecovery, JournalIsRetriedByItselfOnceSpaceIsBack) {
  const std::string uuid = add("web1", {{"maintenance_action", "suspend"}, {"lead_time", "10m"}});
  start();
  scheduleNow();
  journal.setFailing(true);
  EXPECT_TRUE(advanceToWakeup());
  EXPECT_TRUE(hasBlocker("journal", "No space left"));
  journal.setFailing(false);
  // No command, no SIGHUP: the engine's own wake-up retries the journal.
  ASSERT_TRUE(advanceToWakeup());
  EXPECT_FALSE(hasBlocker("journal"));
  EXPECT_EQ(hypervisor.requestCount(uuid), 1);
}

TEST_F(EngineRecovery, CommandsThatCannotBeSavedAreRefusedAndChangeNothing) {
  add("web1", {{"maintenance_action", "suspend"}});
  start();
  journal.setFailing(true);
  try {
    scheduleNow();
    FAIL() << "schedule was accepted without being saved";
  } catch (const agent::CommandError& error) {
    EXPECT_THAT(error.what(), testing::HasSubstr("cannot schedule"));
    EXPECT_THAT(error.what(), testing::HasSubstr("No space left"));
  }
  EXPECT_EQ(status().phase, agent::HostPhase::idle);
  EXPECT_FALSE(status().session_id.has_value());
  journal.setFailing(false);
  // After a restart there is nothing the caller was told about and lost.
  start();
  EXPECT_EQ(status().phase, agent::HostPhase::idle);

  const std::string session = scheduleNow();
  journal.setFailing(true);
  EXPECT_THROW(engine->cancel(), agent::CommandError);
  journal.setFailing(false);
  start();
  EXPECT_EQ(status().session_id, session) << "the refused cancel left the maintenance as it was";
  EXPECT_NE(status().phase, agent::HostPhase::restoring);
}

TEST_F(EngineRecovery, CorruptJournalIsReportedNotIgnored) {
  journal.setDocument("{\"version\": 7}");
  engine =
      std::make_unique<agent::MaintenanceEngine>(hypervisor, clock, journal, settings, listener);
  EXPECT_THROW(engine->recover(), agent::JournalError);
}

// What the journal is given follows what changed, not the host: a
// completed action is one record, and a domain that did not change is not
// encoded again.
TEST_F(EngineRecovery, ASaveCarriesOnlyTheDomainsThatChanged) {
  std::vector<std::string> uuids;
  for (int i = 0; i < 20; ++i)
    uuids.push_back(add("vm" + std::to_string(i), {{"maintenance_action", "suspend"}}));
  start();
  scheduleNow();
  const int saves = journal.saves();
  const std::size_t records = journal.recordsSaved();
  ASSERT_TRUE(hypervisor.completeNext());
  EXPECT_GT(journal.saves(), saves);
  // The one that finished and the one started in its slot.
  EXPECT_EQ(journal.recordsSaved() - records, 2u);
  EXPECT_FALSE(journal.lastUpdate().order.has_value());
  hypervisor.completeAll();
  while (hypervisor.completeNext()) {
  }
  EXPECT_TRUE(status().ready);
  // The whole document still says everything: a restart continues from it.
  const auto saved = nlohmann::json::parse(*journal.document());
  EXPECT_EQ(saved["phase"], "empty");
  ASSERT_EQ(saved["domains"].size(), 20u);
  for (const auto& domain : saved["domains"]) EXPECT_EQ(domain["stage"], "done");
}

// A journal written before the log existed (state.json alone, indented) is
// continued, and written again whole, as this version encodes it, once.
TEST_F(EngineRecovery, AJournalOfAnOlderVersionIsContinuedAndRewrittenOnce) {
  add("web1", {{"maintenance_action", "suspend"}});
  add("web2", {{"maintenance_action", "suspend"}});
  start();
  const std::string session = engine->schedule(window(1h));
  crash();
  journal.setDocument(nlohmann::json::parse(*journal.document()).dump(1));
  const int saves = journal.saves();
  start();
  EXPECT_EQ(status().phase, HostPhase::scheduled);
  EXPECT_EQ(status().session_id, session);
  ASSERT_EQ(journal.saves(), saves + 1);
  EXPECT_TRUE(journal.lastUpdate().header.has_value());
  EXPECT_EQ(journal.lastUpdate().records.size(), 2u);
  // Written as this version writes it: a restart now changes nothing.
  crash();
  start();
  EXPECT_EQ(journal.saves(), saves + 1);
  EXPECT_EQ(status().session_id, session);
}

// The engine finds each record's last saved copy at the record's own place
// while the order of domains is the same, and saves only what differs: when
// a domain comes or goes mid-maintenance the order changes, and what the
// journal holds afterwards, through further changes, must still be the
// whole state as a restart reads it.
TEST_F(EngineRecovery, WhatIsSavedAcrossAChangeOfTheDomainsOrderIsTheWholeState) {
  const std::vector<std::pair<std::string, std::string>> suspend = {
      {"maintenance_action", "suspend"}, {"ack_required", "true"}};
  add("web1", suspend);
  add("web2", suspend);
  add("web3", suspend);
  start();
  engine->schedule(window(1h));
  engine->acknowledge("web1", AckChoice::keep);
  auto shown = [&] {
    std::vector<std::tuple<std::string, DomainStage, std::string, std::optional<AckChoice>>> out;
    for (const agent::DomainStatus& d : status().domains)
      out.emplace_back(d.name, d.stage, d.detail, d.ack);
    return out;
  };
  hv::DomainInfo web0 = makeDomain("web0");
  web0.policy_xml = policyXml(suspend);
  hypervisor.addDomainWithEvent(web0);
  hypervisor.removeDomainWithEvent(domain("web2").uuid);
  engine->acknowledge("web3", AckChoice::move);  // after the reorder, in place
  ASSERT_EQ(journal.lastUpdate().records.size(), 1u) << "only what changed is saved";
  EXPECT_EQ(journal.lastUpdate().records[0].first, domain("web3").uuid);
  const auto before = shown();
  ASSERT_EQ(before.size(), 4u);  // web2 stays, as gone
  crash();
  start();
  EXPECT_EQ(shown(), before);
  engine->acknowledge("web0", AckChoice::move);
  ASSERT_EQ(journal.lastUpdate().records.size(), 1u);
  EXPECT_EQ(journal.lastUpdate().records[0].first, domain("web0").uuid);
  const auto later = shown();
  crash();
  start();
  EXPECT_EQ(shown(), later);
  EXPECT_EQ(domain("web0").ack, AckChoice::move);
  EXPECT_EQ(domain("web3").ack, AckChoice::move);
  EXPECT_EQ(domain("web1").ack, AckChoice::keep);
}

}  // namespace
}  // namespace hostmaint::fake
