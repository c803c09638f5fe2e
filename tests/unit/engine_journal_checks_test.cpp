// The journal decoder refuses documents that decode but describe no state
// the engine can be in, naming the field; recover() then refuses to start
// rather than run a maintenance without a window.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/engine_fixture.hpp"

using namespace std::chrono_literals;
using hostmaint::agent::AckChoice;
using hostmaint::agent::HostPhase;
using nlohmann::json;

namespace hostmaint::fake {
namespace {

class EngineJournalChecks : public EngineTest {
 protected:
  // A real journal of a scheduled maintenance with two domains.
  json scheduledJournal() {
    add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
    add("web2", {{"maintenance_action", "suspend"}});
    start();
    engine->schedule(window(1h));
    crash();
    return json::parse(*journal.document());
  }

  // The message recover() refuses `document` with ("" when it accepts it).
  std::string refusalOf(const json& document) {
    journal.setDocument(document.dump());
    try {
      start();
    } catch (const agent::JournalError& error) {
      return error.what();
    }
    return {};
  }
};

TEST_F(EngineJournalChecks, TheUnchangedJournalIsAccepted) {
  EXPECT_EQ(refusalOf(scheduledJournal()), "");
  EXPECT_EQ(status().phase, HostPhase::scheduled);
}

TEST_F(EngineJournalChecks, ScheduledWithoutAWindowIsRefused) {
  json document = scheduledJournal();
  document["window"] = nullptr;
  EXPECT_EQ(refusalOf(document),
            "cannot continue from the saved maintenance state: engine state field 'window': is "
            "null in phase 'scheduled', which needs one");
}

TEST_F(EngineJournalChecks, DrainingWithoutASessionIsRefused) {
  json document = scheduledJournal();
  document["phase"] = "draining";
  document["session_id"] = nullptr;
  EXPECT_NE(refusalOf(document).find("field 'session_id': is empty in phase 'draining'"),
            std::string::npos);
}

TEST_F(EngineJournalChecks, WindowWithoutAStartIsRefused) {
  json document = scheduledJournal();
  document["window"]["start"] = nullptr;
  EXPECT_NE(refusalOf(document).find("field 'window.start': is null; a time is required"),
            std::string::npos);
}

TEST_F(EngineJournalChecks, WindowEndingBeforeItStartsIsRefused) {
  json document = scheduledJournal();
  document["window"]["end"] = document["window"]["start"].get<std::int64_t>() - 1'000'000;
  EXPECT_NE(refusalOf(document).find("field 'window.end'"), std::string::npos);
}

TEST_F(EngineJournalChecks, TimesThatWouldOverflowAreRefused) {
  json document = scheduledJournal();
  // Year ~75000 in microseconds: times 1000 wraps a 64-bit nanosecond count.
  document["window"]["end"] = std::int64_t{2'305'000'000'000'000'000};
  EXPECT_NE(refusalOf(document).find("field 'window.end': 2305000000000000000 microseconds is "
                                     "out of range"),
            std::string::npos);
}

TEST_F(EngineJournalChecks, ADomainListedTwiceIsRefused) {
  json document = scheduledJournal();
  document["domains"][1]["uuid"] = document["domains"][0]["uuid"];
  EXPECT_NE(refusalOf(document).find("field 'domains[1].uuid'"), std::string::npos);
}

TEST_F(EngineJournalChecks, ADomainActingWithoutAnActionIsRefused) {
  json document = scheduledJournal();
  document["domains"][0]["stage"] = "acting";
  document["domains"][0]["action"] = nullptr;
  EXPECT_NE(refusalOf(document).find("field 'domains[0].action': is null while the domain is acting"),
            std::string::npos);
}

TEST_F(EngineJournalChecks, AMalformedDomainIsNamedByItsPlace) {
  json document = scheduledJournal();
  document["domains"][1]["stage"] = "teleporting";
  EXPECT_NE(refusalOf(document).find("domains[1]: stage: unknown value 'teleporting'"),
            std::string::npos);
}

// The reason given with an ack is journaled and comes back after a restart.
TEST_F(EngineJournalChecks, AckReasonSurvivesARestart) {
  add("web1", {{"maintenance_action", "suspend"}, {"ack_required", "true"}});
  start();
  engine->schedule(window(1h));
  engine->acknowledge("web1", AckChoice::keep, "database must stay on this host");
  EXPECT_EQ(json::parse(*journal.document())["domains"][0]["ack_reason"],
            "database must stay on this host");
  crash();
  start();
  EXPECT_EQ(domain("web1").ack, AckChoice::keep);
  EXPECT_EQ(domain("web1").ack_reason, "database must stay on this host");
  ASSERT_TRUE(domain("web1").notice.has_value());
  EXPECT_EQ(domain("web1").notice->ack_reason, "database must stay on this host");
}

// Journals written before acks carried a reason are read as "no reason".
TEST_F(EngineJournalChecks, JournalWithoutAckReasonIsRead) {
  json document = scheduledJournal();
  for (json& domain : document["domains"]) domain.erase("ack_reason");
  EXPECT_EQ(refusalOf(document), "");
  EXPECT_EQ(domain("web1").ack_reason, "");
}

}  // namespace
}  // namespace hostmaint::fake
