// Desired-state parsing and validation: every hostile document named in the
// controller protocol (garbage, huge, deep, wrong types, unknown state,
// window end before start, missing fields) is refused with a message naming
// the field; plus the session pinning while draining and the report body.
#include "hostmaint/agent/controller/protocol.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent::controller {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

json validScheduled() {
  return json::parse(R"({
    "session_id": "mw-42",
    "state": "scheduled",
    "window": {"start": "2026-11-25T04:00:00Z", "end": "2026-11-25T08:00:00Z"},
    "removal": true,
    "reason": "kernel update",
    "destinations": ["host-b", "host-c"],
    "acks": {"web1": "move", "db1": "keep"}
  })");
}

// The message of the ProtocolError `body` is refused with.
std::string refusal(std::string_view body) {
  try {
    parseDesiredState(body);
  } catch (const ProtocolError& error) {
    return error.what();
  }
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

std::string refusalOf(const json& document) { return refusal(document.dump()); }

TEST(ControllerProtocol, ParsesACompleteScheduledDocument) {
  const DesiredState desired = parseDesiredState(validScheduled().dump());
  EXPECT_EQ(desired.state, SessionState::scheduled);
  EXPECT_EQ(desired.session_id, "mw-42");
  ASSERT_TRUE(desired.window);
  EXPECT_EQ(formatTime(desired.window->start), "2026-11-25T04:00:00Z");
  EXPECT_EQ(formatTime(desired.window->end), "2026-11-25T08:00:00Z");
  EXPECT_TRUE(desired.window->removal);
  EXPECT_EQ(desired.window->reason, "kernel update");
  EXPECT_EQ(desired.destinations, (std::vector<std::string>{"host-b", "host-c"}));
  EXPECT_EQ(desired.acks.at("web1"), AckChoice::move);
  EXPECT_EQ(desired.acks.at("db1"), AckChoice::keep);
}

TEST(ControllerProtocol, RoundTripsThroughItsJsonForm) {
  const DesiredState desired = parseDesiredState(validScheduled().dump());
  EXPECT_EQ(parseDesiredState(desiredStateToJson(desired).dump()), desired);
}

TEST(ControllerProtocol, NoneNeedsOnlyTheState) {
  const DesiredState desired = parseDesiredState(R"({"state": "none"})");
  EXPECT_EQ(desired.state, SessionState::none);
  EXPECT_FALSE(desired.session_id);
  EXPECT_FALSE(desired.window);
  // null reads as absent.
  EXPECT_EQ(parseDesiredState(R"({"state":"none","session_id":null,"window":null})").state,
            SessionState::none);
}

TEST(ControllerProtocol, CompleteAndCancelledNeedASessionButNoWindow) {
  EXPECT_EQ(parseDesiredState(R"({"state":"complete","session_id":"s"})").state,
            SessionState::complete);
  EXPECT_EQ(parseDesiredState(R"({"state":"cancelled","session_id":"s"})").state,
            SessionState::cancelled);
  EXPECT_THAT(refusal(R"({"state":"cancelled"})"),
              HasSubstr("field 'session_id' is missing (required when state is 'cancelled')"));
}

TEST(ControllerProtocol, IgnoresUnknownFieldsForForwardCompatibility) {
  json document = validScheduled();
  document["future_field"] = {{"anything", 1}};
  EXPECT_NO_THROW(parseDesiredState(document.dump()));
}

TEST(ControllerProtocol, RefusesGarbage) {
  EXPECT_THAT(refusal("<html>502 Bad Gateway</html>"), HasSubstr("desired state: not valid JSON"));
  EXPECT_THAT(refusal(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(refusal(R"({"state": "none")"), HasSubstr("not valid JSON"));
  EXPECT_THAT(refusal("[1, 2]"), HasSubstr("must be a JSON object, got array"));
  EXPECT_THAT(refusal("\"none\""), HasSubstr("must be a JSON object, got string"));
}

TEST(ControllerProtocol, RefusesANumberBeyondADoubleAsInvalidJson) {
  // Found by fuzz/desired_state: nlohmann throws out_of_range, not
  // parse_error, for it, and that escaped as a non-ProtocolError.
  EXPECT_THAT(refusal(R"({"state": "none", "x": 22000000000000000000000.0E7880})"),
              HasSubstr("desired state: not valid JSON"));
}

TEST(ControllerProtocol, RefusesWindowTimesOutsideTheYearsTheAgentHandles) {
  // Found by fuzz/desired_state: the year 1013 overflowed the conversion to
  // nanoseconds (undefined behaviour) instead of being refused.
  EXPECT_THAT(refusal(R"({"state": "scheduled", "session_id": "s1", "window":
                          {"start": "2026-11-25T08:00:00Z", "end": "1013-11-25T04:00:00Z"}})"),
              HasSubstr("field 'window.end' is not an RFC 3339 time: '1013-11-25T04:00:00Z'"));
  EXPECT_THAT(refusal(R"({"state": "scheduled", "session_id": "s1", "window":
                          {"start": "2026-11-25T08:00:00Z", "end": "2263-01-01T00:00:00Z"}})"),
              HasSubstr("field 'window.end' is not an RFC 3339 time"));
}

TEST(ControllerProtocol, RefusesAHugeDocumentBeforeParsingIt) {
  std::string huge = R"({"state":"none","reason":")" + std::string(2 * 1024 * 1024, 'x') + "\"}";
  EXPECT_THAT(refusal(huge), HasSubstr("more than the 1048576 byte limit"));
  EXPECT_THAT(
      [] {
        try {
          parseDesiredState(R"({"state":"none"})", 8);
        } catch (const ProtocolError& error) {
          return std::string(error.what());
        }
        return std::string();
      }(),
      HasSubstr("16 bytes, more than the 8 byte limit"));
}

TEST(ControllerProtocol, RefusesDeepNesting) {
  const std::string deep = R"({"state":"none","x":)" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  EXPECT_THAT(refusal(deep), HasSubstr("nests deeper than 16 levels"));
}

TEST(ControllerProtocol, RefusesWrongTypesNamingTheField) {
  struct Case {
    const char* field;
    json value;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"state", 3, "field 'state' must be a string, got number"},
      {"session_id", 42, "field 'session_id' must be a string, got number"},
      {"removal", "yes", "field 'removal' must be a boolean, got string"},
      {"reason", json::array(), "field 'reason' must be a string, got array"},
      {"window", "tomorrow", "field 'window' must be an object, got string"},
      {"destinations", "host-b", "field 'destinations' must be an array of strings, got string"},
      {"destinations", json::array({"host-b", 7}),
       "field 'destinations[1]' must be a string, got number"},
      {"acks", json::array({"web1"}), "field 'acks' must be an object"},
      {"acks", json{{"web1", true}}, "field 'acks.web1' must be a string, got boolean"},
  };
  for (const auto& c : cases) {
    json document = validScheduled();
    document[c.field] = c.value;
    EXPECT_THAT(refusalOf(document), HasSubstr(c.expected)) << c.field;
  }
  json document = validScheduled();
  document["window"]["start"] = 1764043200;
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'window.start' must be a string, got number"));
}

TEST(ControllerProtocol, RefusesUnknownEnumValues) {
  json document = validScheduled();
  document["state"] = "paused";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'state' has unknown value 'paused' (expected none, scheduled, "
                        "maintenance, complete or cancelled)"));
  document = validScheduled();
  document["acks"]["web1"] = "stay";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'acks.web1' has unknown value 'stay' (expected move or keep)"));
}

TEST(ControllerProtocol, RefusesAWindowThatEndsBeforeItStarts) {
  json document = validScheduled();
  document["window"]["end"] = "2026-11-25T03:00:00Z";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'window.end' (2026-11-25T03:00:00Z) is not after field "
                        "'window.start' (2026-11-25T04:00:00Z)"));
  document["window"]["end"] = "2026-11-25T04:00:00Z";
  EXPECT_THAT(refusalOf(document), HasSubstr("is not after"));
}

TEST(ControllerProtocol, RefusesMissingOrMalformedWindowFields) {
  json document = validScheduled();
  document.erase("window");
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'window' is missing (required when state is 'scheduled')"));
  document["state"] = "maintenance";
  EXPECT_THAT(refusalOf(document), HasSubstr("required when state is 'maintenance'"));

  document = validScheduled();
  document["window"].erase("end");
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'window.end' is missing"));
  document = validScheduled();
  document["window"]["start"] = "next tuesday";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'window.start' is not an RFC 3339 time: 'next tuesday'"));
  // Nanoseconds would wrap after 2262: a window in year 9999 is no time at all.
  document = validScheduled();
  document["window"]["end"] = "9999-12-31T00:00:00Z";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'window.end' is not an RFC 3339 time: '9999-12-31T00:00:00Z'"));
  document = validScheduled();
  document.erase("state");
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'state' is missing"));
  document = validScheduled();
  document.erase("session_id");
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'session_id' is missing"));
}

TEST(ControllerProtocol, RefusesHostileStrings) {
  json document = validScheduled();
  document["session_id"] = std::string(129, 's');
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'session_id' is 129 characters long"));
  document = validScheduled();
  document["session_id"] = "";
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'session_id' must not be empty"));
  document = validScheduled();
  document["reason"] = "line\nbreak\x1b[31m";
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'reason' contains control characters"));
  // C1 controls (here CSI, U+009B) drive terminals too: refused like on D-Bus.
  document = validScheduled();
  document["reason"] = "csi\xc2\x9b" "31m";
  EXPECT_THAT(refusalOf(document),
              HasSubstr("field 'reason' contains the control character U+009B at byte 3"));
  document = validScheduled();
  document["destinations"] = {"host-b", "host-b"};
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'destinations' lists 'host-b' twice"));
  document = validScheduled();
  document["destinations"] = {""};
  EXPECT_THAT(refusalOf(document), HasSubstr("field 'destinations[0]' must not be empty"));
}

DesiredState session(std::string id, SessionState state = SessionState::maintenance) {
  DesiredState desired;
  desired.state = state;
  desired.session_id = std::move(id);
  return desired;
}

TEST(ControllerProtocolTransition, RefusesASessionIdChangeWhileDraining) {
  const auto error = checkTransition(session("mw-1"), session("mw-2"), /*draining=*/true);
  ASSERT_TRUE(error);
  EXPECT_THAT(*error, HasSubstr("changed the session id from 'mw-1' to 'mw-2' while the host is "
                                "draining; keeping session 'mw-1'"));
}

TEST(ControllerProtocolTransition, RefusesTheSessionVanishingWhileDraining) {
  DesiredState none;
  const auto error = checkTransition(session("mw-1"), none, /*draining=*/true);
  ASSERT_TRUE(error);
  EXPECT_THAT(*error, HasSubstr("dropped session 'mw-1' (state 'none') while the host is draining"));
}

TEST(ControllerProtocolTransition, AllowsSameSessionAndAnyChangeWhenNotDraining) {
  EXPECT_FALSE(checkTransition(session("mw-1"), session("mw-1", SessionState::cancelled), true));
  EXPECT_FALSE(checkTransition(session("mw-1"), session("mw-2"), false));
  EXPECT_FALSE(checkTransition(DesiredState{}, session("mw-2"), true));
}

TEST(ControllerProtocol, StatusReportIsTheStatusDocumentWithReportSeq) {
  HostStatus status;
  status.host = "host-a";
  status.phase = HostPhase::draining;
  status.session_id = "mw-1";
  const json report = makeStatusReport(status, 17);
  EXPECT_EQ(report["report_seq"], 17);
  json without_seq = report;
  without_seq.erase("report_seq");
  EXPECT_EQ(without_seq, statusToJson(status));
}

}  // namespace
}  // namespace hostmaint::agent::controller
