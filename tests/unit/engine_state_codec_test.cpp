// The journal's encoding read back as a restarted hostmaintd reads it: a
// document the engine wrote round-trips, and an edited or corrupted one is
// refused with a message naming the field (inputs the fuzzer found, see
// fuzz/corpus/engine_state/regress-*), never undefined behaviour.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "engine_state.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using nlohmann::json;

// 2026-11-25T04:00:00Z
const TimePoint kStart{std::chrono::seconds(1795579200)};

EngineState drainingState() {
  EngineState state;
  state.phase = HostPhase::draining;
  state.session_id = "mw-1";
  state.window = MaintenanceWindow{kStart, kStart + 4h, false, "kernel update"};
  state.destinations = {"qemu+tls://host-b/system"};
  state.scheduled_at = kStart - 24h;
  DomainRecord record;
  record.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  record.name = "web1";
  record.action = MaintenanceAction::live_migrate;
  record.state = stage::Acting{hv::ActionKind::live_migrate, running::Launched{}};
  record.started_at = kStart + 100s;
  record.memory_kib = 2 * 1024 * 1024;
  state.domains.push_back(record);
  state.migration_throughput_bps = 100 * 1024 * 1024;
  return state;
}

json encoded() { return json::parse(encodeEngineState(drainingState())); }

// The message decodeEngineState refuses `document` with.
std::string refusal(const json& document) {
  try {
    decodeEngineState(document.dump());
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  ADD_FAILURE() << "accepted: " << document.dump();
  return {};
}

TEST(EngineStateCodec, RoundTrips) {
  const std::string text = encodeEngineState(drainingState());
  const EngineState decoded = decodeEngineState(text);
  EXPECT_EQ(decoded.window->start, kStart);
  EXPECT_EQ(decoded.domains.at(0).started_at, kStart + 100s);
  // A running action comes back as found running (its outcome is read from
  // libvirt after a restart); from then on the document is stable.
  const std::string again = encodeEngineState(decoded);
  EXPECT_EQ(encodeEngineState(decodeEngineState(again)), again);
  EXPECT_EQ(decoded.domains.at(0).runningKind(), hv::ActionKind::live_migrate);
}

// Records are written without building nlohmann values: each must read as
// nlohmann renders it (sorted keys, compact), as journals were written
// before, or a journal written by an older hostmaintd would be rewritten.
TEST(EngineStateCodec, RecordsAreWhatNlohmannWouldWrite) {
  EngineState state = drainingState();
  DomainRecord retried = state.domains.front();
  retried.uuid = "0000eb01-f6a4-8304-79aa-97f2502e193f";
  retried.name = "w\u00e9b \"2\"\n";
  retried.destination_failures = 2;
  retried.failed_destinations = {"qemu+tls://host-b/system", "qemu+tls://host-c/system"};
  retried.retry_at = kStart + 200s;
  retried.retry_reason = "destination\tfailed";
  retried.policy.group = "web";
  retried.policy.priority = -2;
  retried.ack = AckChoice::keep;
  retried.fallback = MaintenanceAction::suspend;
  state.domains.push_back(retried);
  for (const DomainRecord& record : state.domains) {
    const std::string text = encodeDomainRecord(record);
    EXPECT_EQ(text, json::parse(text).dump()) << record.name;
  }
  EXPECT_EQ(decodeEngineState(encodeEngineState(state)).domains.back().failed_destinations,
            retried.failed_destinations);
}

TEST(EngineStateCodec, LeftoverChecksRoundTripAndAreOptionalForOlderJournals) {
  EngineState state = drainingState();
  LeftoverCheck check;
  check.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  check.name = "web1";
  check.destination = "qemu+tls://host-b/system";
  check.since = kStart + 200s;
  check.attempts = 2;
  check.error = "cannot connect to qemu+tls://host-b/system";
  check.next_attempt = kStart + 220s;
  state.leftovers.push_back(check);
  const EngineState decoded = decodeEngineState(encodeEngineState(state));
  ASSERT_EQ(decoded.leftovers.size(), 1u);
  EXPECT_EQ(decoded.leftovers[0], check);

  json older = encoded();
  ASSERT_FALSE(older.contains("leftovers")) << "not written when there are none";
  EXPECT_TRUE(decodeEngineState(older.dump()).leftovers.empty());

  json twice = json::parse(encodeEngineState(state));
  twice["leftovers"].push_back(twice["leftovers"][0]);
  EXPECT_THAT(refusal(twice), HasSubstr("leftovers[1]"));
  json nameless = json::parse(encodeEngineState(state));
  nameless["leftovers"][0]["destination"] = "";
  EXPECT_THAT(refusal(nameless), HasSubstr("leftovers[0].destination"));
}

TEST(EngineStateCodec, RefusesATimeTooLargeForAnInteger) {
  // Found by fuzz/engine_state: more digits than 64 bits hold parse as a
  // float, whose conversion to an integer was undefined behaviour.
  json document = encoded();
  document["domains"][0]["started_at"] = json::parse("1795579300005579250000000");
  EXPECT_THAT(refusal(document), HasSubstr("started_at: expected an integer"));
}

TEST(EngineStateCodec, RefusesTimesBeyondWhatATimePointHolds) {
  json document = encoded();
  document["scheduled_at"] = std::int64_t{9'000'000'000'000'000'000};
  EXPECT_THAT(refusal(document), HasSubstr("field 'scheduled_at': 9000000000000000000 microseconds is out of range"));
  document = encoded();
  document["window"]["end"] = std::int64_t{-9'000'000'000'000'000'000};
  EXPECT_THAT(refusal(document), HasSubstr("field 'window.end': -9000000000000000000 microseconds is out of range"));
}

TEST(EngineStateCodec, RefusesAWindowWithoutItsTimes) {
  // Dereferencing the empty time was undefined behaviour (found by fuzz/engine_state).
  json document = encoded();
  document["window"]["start"] = nullptr;
  EXPECT_THAT(refusal(document), HasSubstr("field 'window.start': is null"));
}

TEST(EngineStateCodec, RefusesNumbersOutOfRangeForTheirField) {
  json document = encoded();
  document["domains"][0]["policy"]["priority"] = 1e300;
  EXPECT_THAT(refusal(document), HasSubstr("priority: expected an integer"));
  document = encoded();
  document["domains"][0]["memory_kib"] = -1;
  EXPECT_THAT(refusal(document), HasSubstr("memory_kib: -1 is out of range"));
  document = encoded();
  document["version"] = std::uint64_t{1} << 40;
  EXPECT_THAT(refusal(document), HasSubstr("version: 1099511627776 is out of range"));
}

TEST(EngineStateCodec, RefusesAPolicyThatFailsValidation) {
  // An ack timeout of ~292 years would overflow every deadline computed from it.
  json document = encoded();
  document["domains"][0]["policy"]["ack_timeout_s"] = std::int64_t{9'000'000'000};
  EXPECT_THAT(refusal(document), HasSubstr("policy: ack_timeout"));
}

}  // namespace
}  // namespace hostmaint::agent
