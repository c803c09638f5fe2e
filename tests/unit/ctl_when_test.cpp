// hostmaintctl's WHEN parsing and duration/instant formatting.

#include "exit_status.hpp"
#include "when.hpp"

#include <gtest/gtest.h>

namespace hostmaint::ctl {
namespace {

using namespace std::chrono;

// 2026-11-25T10:00:00Z
const TimePoint kNow = TimePoint(sys_days(year{2026} / 11 / 25).time_since_epoch() + hours(10));

TimePoint utc(int y, unsigned mo, unsigned d, int h, int mi, int s = 0) {
  return TimePoint(sys_days(year{y} / mo / d).time_since_epoch() + hours(h) + minutes(mi) + seconds(s));
}

std::string rejection(const std::string& text) {
  try {
    parseWhen(text, kNow);
  } catch (const CtlError& error) {
    EXPECT_EQ(error.status(), ExitStatus::usage) << text;
    return error.what();
  }
  ADD_FAILURE() << "'" << text << "' was accepted";
  return {};
}

TEST(CtlWhen, NowIsNow) { EXPECT_EQ(parseWhen("now", kNow), kNow); }

TEST(CtlWhen, RelativeTimesAddToNow) {
  EXPECT_EQ(parseWhen("+30m", kNow), kNow + minutes(30));
  EXPECT_EQ(parseWhen("+2h", kNow), kNow + hours(2));
  EXPECT_EQ(parseWhen("+1h30m", kNow), kNow + minutes(90));
  EXPECT_EQ(parseWhen("+90s", kNow), kNow + seconds(90));
  EXPECT_EQ(parseWhen("+1d", kNow), kNow + hours(24));
  EXPECT_EQ(parseWhen("+1d2h3m4s", kNow), kNow + hours(26) + minutes(3) + seconds(4));
}

TEST(CtlWhen, IsoTimesWithoutOffsetAreUtc) {
  EXPECT_EQ(parseWhen("2026-11-25T12:30:00Z", kNow), utc(2026, 11, 25, 12, 30));
  EXPECT_EQ(parseWhen("2026-11-25T12:30:00", kNow), utc(2026, 11, 25, 12, 30));
  EXPECT_EQ(parseWhen("2026-11-25 12:30", kNow), utc(2026, 11, 25, 12, 30));
  EXPECT_EQ(parseWhen("2026-11-25t12:30:15z", kNow), utc(2026, 11, 25, 12, 30, 15));
  EXPECT_EQ(parseWhen("2026-11-25T12:30:15.250Z", kNow), utc(2026, 11, 25, 12, 30, 15));
}

TEST(CtlWhen, IsoOffsetsAreAppliedToReachUtc) {
  EXPECT_EQ(parseWhen("2026-11-25T11:00:00+01:00", kNow), utc(2026, 11, 25, 10, 0));
  EXPECT_EQ(parseWhen("2026-11-25T04:30-0530", kNow), utc(2026, 11, 25, 10, 0));
  // Across midnight and a leap day.
  EXPECT_EQ(parseWhen("2028-02-29T23:30:00-01:00", kNow), utc(2028, 3, 1, 0, 30));
}

TEST(CtlWhen, GarbageIsRejectedWithTheTextAndTheAcceptedForms) {
  const std::string message = rejection("tomorrow");
  EXPECT_NE(message.find("'tomorrow'"), std::string::npos) << message;
  EXPECT_NE(message.find("+30m"), std::string::npos) << message;
  EXPECT_NE(message.find("UTC"), std::string::npos) << message;
  EXPECT_NE(rejection("").find("invalid time ''"), std::string::npos);
}

TEST(CtlWhen, RelativeMistakesSayWhatIsWrong) {
  EXPECT_NE(rejection("+").find("nothing after '+'"), std::string::npos);
  EXPECT_NE(rejection("+30").find("missing unit"), std::string::npos);
  EXPECT_NE(rejection("+5x").find("unknown unit 'x'"), std::string::npos);
  EXPECT_NE(rejection("+1h1h").find("given twice"), std::string::npos);
  EXPECT_NE(rejection("+h").find("expected a number"), std::string::npos);
  EXPECT_NE(rejection("+9999999999h").find("too large"), std::string::npos);
  EXPECT_NE(rejection("+5000d").find("ten years"), std::string::npos);
  EXPECT_NE(rejection("-30m").find("'-30m'"), std::string::npos);
  EXPECT_NE(rejection("30m").find("did you mean '+30m'?"), std::string::npos);
}

TEST(CtlWhen, ImpossibleOrIncompleteIsoTimesAreRejected) {
  for (const char* text : {"2026-02-30T00:00Z", "2026-13-01T00:00Z", "2026-11-25T24:00Z",
                           "2026-11-25T10:60Z", "2026-11-25T10:00:60Z", "2026-11-25",
                           "2026-11-25T10", "2026-11-25T10:00:00Zjunk", "2026-11-25T10:00+25:00",
                           "2026-11-25T10:00:00.Z", "26-11-25T10:00Z"}) {
    EXPECT_NE(rejection(text).find("not a valid ISO 8601 time"), std::string::npos) << text;
  }
}

// Year 9999 in nanoseconds does not fit 64 bits: it once wrapped around to
// another century instead of being refused.
TEST(CtlWhen, YearsFromTwoThousandTwoHundredAreRefusedNotWrapped) {
  EXPECT_NE(rejection("9999-12-31T00:00:00Z").find("the year must be between 1970 and 2199"),
            std::string::npos);
  EXPECT_NE(rejection("2200-01-01T00:00Z").find("the year must be between 1970 and 2199"), std::string::npos);
  EXPECT_EQ(parseWhen("2199-12-31T23:59:59Z", kNow),
            TimePoint(sys_days(year{2199} / 12 / 31).time_since_epoch() + hours(23) + minutes(59) +
                      seconds(59)));
  TimePoint parsed;
  EXPECT_FALSE(parseTimestamp("75000-01-01T00:00:00Z", parsed));
  EXPECT_FALSE(parseTimestamp("9999-01-01T00:00:00Z", parsed));
}

TEST(CtlWhen, YearsOutsideTheDaemonsRangeAreRejected) {
  // Found by fuzz/ctl_when: the year 6448 overflowed the conversion to
  // nanoseconds (undefined behaviour) and scheduled a window in the past.
  for (const char* text : {"6448-02-25 10:00", "2263-01-01T00:00Z", "1969-12-31T23:59Z"}) {
    EXPECT_NE(rejection(text).find("the year must be between 1970 and 2199"), std::string::npos)
        << text;
  }
  TimePoint parsed;
  EXPECT_FALSE(parseTimestamp("9999-12-31T23:59:59Z", parsed));
  EXPECT_TRUE(parseTimestamp("2199-12-31T23:59:59Z", parsed));
}

TEST(CtlWhen, TimestampsFromTheDaemonParse) {
  TimePoint parsed;
  EXPECT_TRUE(parseTimestamp("2026-11-25T10:00:00Z", parsed));
  EXPECT_EQ(parsed, kNow);
  EXPECT_FALSE(parseTimestamp("", parsed));
  EXPECT_FALSE(parseTimestamp("+30m", parsed));
}

TEST(CtlDuration, ShowsTheTwoLargestAdjacentUnits) {
  EXPECT_EQ(formatDuration(seconds(0)), "0s");
  EXPECT_EQ(formatDuration(seconds(45)), "45s");
  EXPECT_EQ(formatDuration(seconds(90)), "1m30s");
  EXPECT_EQ(formatDuration(minutes(25)), "25m");
  EXPECT_EQ(formatDuration(minutes(25) + seconds(30)), "25m30s");
  EXPECT_EQ(formatDuration(hours(1)), "1h");
  EXPECT_EQ(formatDuration(minutes(90)), "1h30m");
  EXPECT_EQ(formatDuration(hours(1) + minutes(30) + seconds(59)), "1h30m");
  EXPECT_EQ(formatDuration(hours(25) + seconds(61)), "1d1h");
  // A unit that is not adjacent to the largest is dropped, not shown skipped.
  EXPECT_EQ(formatDuration(hours(24) + minutes(5)), "1d");
  EXPECT_EQ(formatDuration(-minutes(5)), "-5m");
}

TEST(CtlDuration, RelativeToNow) {
  EXPECT_EQ(formatRelative(kNow + minutes(25), kNow), "in 25m");
  EXPECT_EQ(formatRelative(kNow - minutes(5), kNow), "5m ago");
  EXPECT_EQ(formatRelative(kNow + milliseconds(400), kNow), "now");
}

TEST(CtlDuration, InstantsInUtc) {
  EXPECT_EQ(formatInstant(kNow + seconds(7), false), "2026-11-25 10:00:07 UTC");
}

}  // namespace
}  // namespace hostmaint::ctl
