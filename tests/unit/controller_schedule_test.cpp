// Poll timing and newest-status-wins delivery, with an injected random
// source and a fake transport: no clock, no network.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>

#include "hostmaint/agent/controller/poll_schedule.hpp"
#include "hostmaint/agent/controller/status_reporter.hpp"

namespace hostmaint::agent::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

PollScheduleOptions options30s() {
  PollScheduleOptions options;
  options.interval = 30s;
  options.jitter = 0.10;
  options.max_backoff = 300s;
  return options;
}

PollSchedule::UniformSource fixed(double value) {
  return [value] { return value; };
}

TEST(PollSchedule, JitterSpreadsTheIntervalByTenPercent) {
  EXPECT_EQ(PollSchedule(options30s(), fixed(0.5)).afterSuccess(), 30s);
  EXPECT_EQ(PollSchedule(options30s(), fixed(0.0)).afterSuccess(), 27s);
  EXPECT_EQ(PollSchedule(options30s(), fixed(0.75)).afterSuccess(), 31500ms);
  EXPECT_EQ(PollSchedule(options30s(), fixed(0.999999)).afterSuccess().count(), 32999);
}

TEST(PollSchedule, DefaultRandomSourceStaysWithinTheJitter) {
  PollSchedule schedule(options30s());
  for (int i = 0; i < 200; ++i) {
    const auto delay = schedule.afterSuccess();
    EXPECT_GE(delay, 27s);
    EXPECT_LE(delay, 33s);
  }
}

TEST(PollSchedule, BacksOffByDoublingUpToTheCeilingAndResetsOnSuccess) {
  PollSchedule schedule(options30s(), fixed(0.5));
  EXPECT_EQ(schedule.afterFailure(), 60s);
  EXPECT_EQ(schedule.afterFailure(), 120s);
  EXPECT_EQ(schedule.afterFailure(), 240s);
  EXPECT_EQ(schedule.afterFailure(), 300s);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(schedule.afterFailure(), 300s);
  EXPECT_EQ(schedule.consecutiveFailures(), 62);
  EXPECT_EQ(schedule.afterSuccess(), 30s);
  EXPECT_EQ(schedule.consecutiveFailures(), 0);
  EXPECT_EQ(schedule.afterFailure(), 60s);
}

TEST(PollSchedule, BackoffIsJitteredToo) {
  PollSchedule schedule(options30s(), fixed(0.0));
  EXPECT_EQ(schedule.afterFailure(), 54s);
}

TEST(PollSchedule, ALongPollThatWasHeldCountsTowardTheInterval) {
  PollSchedule schedule(options30s(), fixed(0.5));
  EXPECT_EQ(schedule.afterSuccess(20s), 10s);
  EXPECT_EQ(schedule.afterSuccess(45s), 0s);
}

TEST(PollSchedule, RefusesNonsenseOptions) {
  PollScheduleOptions options = options30s();
  options.interval = 0s;
  EXPECT_THROW(PollSchedule(options, fixed(0.5)), std::invalid_argument);
  options = options30s();
  options.jitter = 1.5;
  EXPECT_THROW(PollSchedule(options, fixed(0.5)), std::invalid_argument);
}

// Records bodies; fails while `fail` is set; `during_send` runs inside the
// "request", standing in for the engine offering a newer status meanwhile.
class FakeTransport final : public StatusTransport {
 public:
  void putStatus(const std::string& body) override {
    sent.push_back(json::parse(body));
    if (during_send) std::exchange(during_send, nullptr)();
    if (fail) throw std::runtime_error("PUT http://controller/status: HTTP status 503");
  }
  std::vector<json> sent;
  bool fail = false;
  std::function<void()> during_send;
};

json statusDocument(const std::string& phase) { return {{"phase", phase}}; }

TEST(StatusReporter, SendsTheDocumentWithItsReportSeq) {
  FakeTransport transport;
  StatusReporter reporter(transport, 100);
  EXPECT_EQ(reporter.deliver().outcome, StatusReporter::Outcome::nothing_pending);
  EXPECT_EQ(reporter.offer(statusDocument("idle")), 100u);
  const auto delivery = reporter.deliver();
  EXPECT_EQ(delivery.outcome, StatusReporter::Outcome::delivered);
  EXPECT_EQ(delivery.report_seq, 100u);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.sent[0], (json{{"phase", "idle"}, {"report_seq", 100}}));
  EXPECT_FALSE(reporter.hasPending());
  EXPECT_EQ(reporter.lastDeliveredSeq(), 100u);
}

TEST(StatusReporter, HoldsOnlyTheNewestUndeliveredDocument) {
  FakeTransport transport;
  StatusReporter reporter(transport, 1);
  reporter.offer(statusDocument("scheduled"));
  reporter.offer(statusDocument("draining"));
  reporter.deliver();
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.sent[0]["phase"], "draining");
  EXPECT_EQ(transport.sent[0]["report_seq"], 2);
}

TEST(StatusReporter, ARetryAfterANewerStatusSendsTheNewerOne) {
  FakeTransport transport;
  StatusReporter reporter(transport, 1);
  reporter.offer(statusDocument("draining"));
  transport.fail = true;
  transport.during_send = [&] { reporter.offer(statusDocument("empty")); };
  const auto failed = reporter.deliver();
  EXPECT_EQ(failed.outcome, StatusReporter::Outcome::failed);
  EXPECT_EQ(failed.report_seq, 1u);
  EXPECT_EQ(failed.error, "PUT http://controller/status: HTTP status 503");
  EXPECT_TRUE(reporter.hasPending());

  transport.fail = false;
  EXPECT_EQ(reporter.deliver().outcome, StatusReporter::Outcome::delivered);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1]["phase"], "empty");
  EXPECT_EQ(transport.sent[1]["report_seq"], 2);
  EXPECT_FALSE(reporter.hasPending());
}

TEST(StatusReporter, ASuccessDoesNotClearANewerStatusOfferedDuringTheRequest) {
  FakeTransport transport;
  StatusReporter reporter(transport, 1);
  reporter.offer(statusDocument("draining"));
  transport.during_send = [&] { reporter.offer(statusDocument("empty")); };
  EXPECT_EQ(reporter.deliver().outcome, StatusReporter::Outcome::delivered);
  EXPECT_TRUE(reporter.hasPending());
  EXPECT_EQ(reporter.lastDeliveredSeq(), 1u);
  reporter.deliver();
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1]["phase"], "empty");
  EXPECT_EQ(reporter.lastDeliveredSeq(), 2u);
}

TEST(StatusReporter, AFailedReportStaysPendingForTheRetry) {
  FakeTransport transport;
  StatusReporter reporter(transport, 1);
  reporter.offer(statusDocument("draining"));
  transport.fail = true;
  reporter.deliver();
  reporter.deliver();
  transport.fail = false;
  reporter.deliver();
  ASSERT_EQ(transport.sent.size(), 3u);
  for (const auto& body : transport.sent) EXPECT_EQ(body["report_seq"], 1);
  EXPECT_FALSE(reporter.hasPending());
}

TEST(StatusReporter, HeartbeatResendsTheLastDeliveredDocumentWithANewSeq) {
  FakeTransport transport;
  StatusReporter reporter(transport, 1);
  reporter.heartbeat();
  EXPECT_FALSE(reporter.hasPending());  // nothing delivered yet: nothing to repeat
  reporter.offer(statusDocument("idle"));
  reporter.deliver();
  reporter.heartbeat();
  reporter.deliver();
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1], (json{{"phase", "idle"}, {"report_seq", 2}}));
  // A heartbeat never replaces a newer pending document.
  reporter.offer(statusDocument("scheduled"));
  reporter.heartbeat();
  reporter.deliver();
  EXPECT_EQ(transport.sent[2]["phase"], "scheduled");
}

TEST(StatusReporter, InitialSeqGrowsWithTheClock) {
  const auto t = Clock::time_point(std::chrono::seconds(1'700'000'000));
  EXPECT_EQ(initialReportSeq(t), 1'700'000'000'000'000u);
  EXPECT_LT(initialReportSeq(t), initialReportSeq(t + 1us));
}

}  // namespace
}  // namespace hostmaint::agent::controller
