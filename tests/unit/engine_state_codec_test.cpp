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
  record.view.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  record.view.name = "web1";
  record.view.stage = DomainStage::acting;
  record.view.action = MaintenanceAction::live_migrate;
  record.acting_kind = hv::ActionKind::live_migrate;
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
  EXPECT_EQ(encodeEngineState(decoded), text);
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
  EXPECT_THAT(refusal(document), HasSubstr("scheduled_at: time 9000000000000000000 is out of range"));
  document = encoded();
  document["window"]["end"] = std::int64_t{-9'000'000'000'000'000'000};
  EXPECT_THAT(refusal(document), HasSubstr("end: time"));
}

TEST(EngineStateCodec, RefusesAWindowWithoutItsTimes) {
  // Dereferencing the empty time was undefined behaviour (found by fuzz/engine_state).
  json document = encoded();
  document["window"]["start"] = nullptr;
  EXPECT_THAT(refusal(document), HasSubstr("window.start must not be null"));
}

TEST(EngineStateCodec, RefusesNumbersOutOfRangeForTheirField) {
  json document = encoded();
  document["domains"][0]["priority"] = 1e300;
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
