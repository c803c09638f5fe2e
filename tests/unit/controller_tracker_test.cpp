// The last good desired state survives failures and refusals; health shows
// what went wrong until the next success.
#include "hostmaint/agent/controller/desired_state_tracker.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hostmaint::agent::controller {
namespace {

using ::testing::HasSubstr;
using Update = DesiredStateTracker::Update;

const TimePoint t0 = TimePoint(std::chrono::seconds(1'764'000'000));

DesiredStateFetch fetched(const std::string& session, SessionState state, const std::string& etag) {
  DesiredState desired;
  desired.state = state;
  desired.session_id = session;
  return {.not_modified = false, .desired = desired, .etag = etag};
}

TEST(DesiredStateTracker, TakesANewStateAndItsEtag) {
  DesiredStateTracker tracker;
  EXPECT_EQ(tracker.accept(fetched("mw-1", SessionState::maintenance, "\"a\""), false, t0),
            Update::changed);
  EXPECT_EQ(tracker.lastGood()->session_id, "mw-1");
  EXPECT_EQ(tracker.etag(), "\"a\"");
  EXPECT_EQ(tracker.health().last_success, t0);
}

TEST(DesiredStateTracker, NotModifiedAndEqualDocumentsAreUnchanged) {
  DesiredStateTracker tracker;
  tracker.accept(fetched("mw-1", SessionState::maintenance, "\"a\""), false, t0);
  EXPECT_EQ(tracker.accept({.not_modified = true, .desired = {}, .etag = "\"a\""}, false, t0),
            Update::unchanged);
  EXPECT_EQ(tracker.accept(fetched("mw-1", SessionState::maintenance, "\"b\""), false, t0),
            Update::unchanged);
  EXPECT_EQ(tracker.etag(), "\"b\"");
}

TEST(DesiredStateTracker, FailuresKeepTheLastGoodStateAndShowTheError) {
  DesiredStateTracker tracker;
  tracker.accept(fetched("mw-1", SessionState::maintenance, "\"a\""), false, t0);
  tracker.recordFailure("GET https://ctl/v1/hosts/h/maintenance: HTTP status 503", t0);
  tracker.recordFailure("desired state: field 'state' has unknown value 'x'", t0);
  EXPECT_EQ(tracker.lastGood()->session_id, "mw-1");
  EXPECT_EQ(tracker.etag(), "\"a\"");
  EXPECT_EQ(tracker.health().consecutive_failures, 2);
  EXPECT_THAT(*tracker.health().last_error, HasSubstr("unknown value 'x'"));
  tracker.accept({.not_modified = true, .desired = {}, .etag = "\"a\""}, false, t0);
  EXPECT_EQ(tracker.health().consecutive_failures, 0);
  EXPECT_FALSE(tracker.health().last_error);
}

TEST(DesiredStateTracker, RefusesASessionSwapWhileDrainingAndKeepsTheOldEtag) {
  DesiredStateTracker tracker;
  tracker.accept(fetched("mw-1", SessionState::maintenance, "\"a\""), false, t0);
  EXPECT_EQ(tracker.accept(fetched("mw-2", SessionState::maintenance, "\"b\""), true, t0),
            Update::refused);
  EXPECT_EQ(tracker.lastGood()->session_id, "mw-1");
  EXPECT_EQ(tracker.etag(), "\"a\"");  // so the refused document is fetched again
  EXPECT_THAT(*tracker.health().last_error, HasSubstr("from 'mw-1' to 'mw-2'"));
  EXPECT_EQ(tracker.health().consecutive_failures, 1);
  // The controller ends the session properly: accepted.
  EXPECT_EQ(tracker.accept(fetched("mw-1", SessionState::cancelled, "\"c\""), true, t0),
            Update::changed);
}

}  // namespace
}  // namespace hostmaint::agent::controller
