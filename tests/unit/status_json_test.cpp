// The status document's shape (docs/status-json.md) and RFC 3339 times.
#include "hostmaint/agent/status_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hostmaint/agent/notice.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono;
using nlohmann::json;

TimePoint at(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return sys_days(year(y) / month(mo) / day(d)) + hours(h) + minutes(mi) + seconds(s);
}

// The status document as nlohmann renders it, its domains from fields
// listed here again (the production code lists them once, in
// json_text::domainText): what StatusRenderer writes must read the same.
template <typename T, typename Render>
json orNull(const std::optional<T>& value, Render render) {
  return value ? json(render(*value)) : json(nullptr);
}

json referenceDomain(const DomainStatus& domain) {
  auto text = [](const std::string& value) { return value; };
  auto time = [](TimePoint value) { return formatTime(value); };
  auto progress = [](const MigrationProgress& p) {
    return json{
        {"data_total_bytes", p.data_total_bytes},
        {"data_processed_bytes", p.data_processed_bytes},
        {"data_remaining_bytes", p.data_remaining_bytes},
        {"memory_dirty_rate_bps", p.memory_dirty_rate_bps},
        {"throughput_bps", p.throughput_bps},
        {"percent", p.percent},
        {"downtime_limit_ms", p.downtime_limit_ms},
        {"iteration", p.iteration},
        {"post_copy", p.post_copy},
        {"escalation", p.escalation.empty() ? json(nullptr) : json(p.escalation)},
        {"started_at", p.started_at ? json(formatTime(*p.started_at)) : json(nullptr)},
        {"held", p.held},
        {"hurried", p.hurried},
    };
  };
  auto timeline = [](const MigrationTimeline& t) {
    auto stamp = [](const std::optional<TimePoint>& at) {
      return at ? json(formatTimeMs(*at)) : json(nullptr);
    };
    return json{
        {"queued_at", stamp(t.queued_at)},       {"probed_at", stamp(t.probed_at)},
        {"started_at", stamp(t.started_at)},     {"converged_at", stamp(t.converged_at)},
        {"finished_at", stamp(t.finished_at)},
    };
  };
  return {
      {"name", domain.name},
      {"uuid", domain.uuid},
      {"state", toString(domain.stage)},
      {"run_state", hv::toString(domain.run_state)},
      {"action", orNull(domain.action, [](MaintenanceAction a) { return toString(a); })},
      {"fallback_used", domain.fallback_used},
      {"result", domain.result},
      {"detail", domain.detail},
      {"group", domain.group.empty() ? json(nullptr) : json(domain.group)},
      {"priority", domain.priority},
      {"owner", orNull(domain.owner, text)},
      {"project", orNull(domain.project, text)},
      {"ack_required", domain.ack_required},
      {"ack", orNull(domain.ack, [](AckChoice c) { return toString(c); })},
      {"ack_reason",
       domain.ack && !domain.ack_reason.empty() ? json(domain.ack_reason) : json(nullptr)},
      {"ack_deadline", orNull(domain.ack_deadline, time)},
      {"earliest_start", orNull(domain.earliest_start, time)},
      {"destination", orNull(domain.destination, text)},
      {"progress", orNull(domain.progress, progress)},
      {"action_started_at", orNull(domain.action_started_at, time)},
      {"action_finished_at", orNull(domain.action_finished_at, time)},
      {"policy_error", domain.policy_error.empty() ? json(nullptr) : json(domain.policy_error)},
      {"memory_mib", domain.memory_kib / 1024},
      {"notice", orNull(domain.notice, noticeToJson)},
      {"timeline", orNull(domain.timeline, timeline)},
      {"predicted_duration_s",
       orNull(domain.predicted_duration_s, [](double seconds) { return seconds; })},
      {"dirty_rate_bps", orNull(domain.dirty_rate_bps, [](std::uint64_t bps) { return bps; })},
  };
}

// statusToJson(status).dump(2) with the reference domains.
std::string reference(const HostStatus& status) {
  json document = statusToJson(status);
  document["domains"] = json::array();
  for (const DomainStatus& domain : status.domains)
    document["domains"].push_back(referenceDomain(domain));
  return document.dump(2);
}

HostStatus emptyStatus() {
  HostStatus status;
  status.generation = 3;
  status.updated_at = at(2026, 11, 25, 4, 0, 0);
  status.host = "host-a";
  status.hypervisor = "test:///default";
  return status;
}

DomainStatus fullDomain() {
  DomainStatus domain;
  domain.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  domain.name = "web1";
  domain.run_state = hv::DomainRunState::running;
  domain.memory_kib = 4 * 1024 * 1024;
  domain.owner = "alice";
  domain.project = "shop";
  domain.stage = DomainStage::acting;
  domain.action = MaintenanceAction::live_migrate;
  domain.result = "";
  domain.detail = "migrating to host-b";
  domain.group = "web";
  domain.priority = 10;
  domain.ack_required = true;
  domain.ack = AckChoice::move;
  domain.ack_deadline = at(2026, 11, 25, 8, 0, 0);
  domain.earliest_start = at(2026, 11, 25, 3, 30, 0);
  domain.destination = "qemu+ssh://host-b/system";
  MigrationProgress progress;
  progress.data_total_bytes = 100;
  progress.data_processed_bytes = 40;
  progress.data_remaining_bytes = 60;
  progress.memory_dirty_rate_bps = 5;
  progress.throughput_bps = 20;
  progress.percent = 40.0;
  progress.downtime_limit_ms = 300;
  progress.escalation = "downtime 300ms";
  progress.started_at = at(2026, 11, 25, 4, 1, 0);
  domain.progress = progress;
  return domain;
}

TEST(StatusJson, IdleHostHasEveryTopLevelFieldWithNulls) {
  json doc = statusToJson(emptyStatus());
  EXPECT_EQ(doc["schema_version"], kStatusSchemaVersion);
  EXPECT_EQ(doc["generation"], 3);
  EXPECT_EQ(doc["updated_at"], "2026-11-25T04:00:00Z");
  EXPECT_EQ(doc["host"], "host-a");
  EXPECT_EQ(doc["phase"], "idle");
  EXPECT_EQ(doc["ready"], false);
  EXPECT_TRUE(doc["session_id"].is_null());
  EXPECT_TRUE(doc["window"].is_null());
  EXPECT_TRUE(doc["blockers"].is_array() && doc["blockers"].empty());
  EXPECT_TRUE(doc["evidence"].is_array() && doc["evidence"].empty());
  EXPECT_TRUE(doc["domains"].is_array() && doc["domains"].empty());
  EXPECT_EQ(doc["hypervisor"],
            (json{{"uri", "test:///default"}, {"connection", "connecting"}, {"detail", ""}}));
  EXPECT_EQ(doc["counts"].size(), 11u);
  EXPECT_EQ(doc["counts"]["awaiting-ack"], 0);
  EXPECT_EQ(doc["overrun"], false);
  EXPECT_TRUE(doc.contains("overrun_since") && doc["overrun_since"].is_null());
  EXPECT_FALSE(doc.contains("dbus")) << "the engine's own status has no bus";
}

TEST(StatusJson, AnOverrunSaysSinceWhenAndItsBlocker) {
  HostStatus status = emptyStatus();
  status.phase = HostPhase::draining;
  status.window =
      MaintenanceWindow{at(2026, 11, 25, 4, 0, 0), at(2026, 11, 25, 6, 0, 0), false, "BIOS"};
  status.overrun = true;
  status.overrun_since = at(2026, 11, 25, 6, 0, 0);
  status.blockers = {{"window", "the window ended at 2026-11-25T06:00:00Z; still draining: "
                                "1 domain (web1)"}};
  json doc = statusToJson(status);
  EXPECT_EQ(doc["schema_version"], 1) << "an added field, not a new version";
  EXPECT_EQ(doc["overrun"], true);
  EXPECT_EQ(doc["overrun_since"], "2026-11-25T06:00:00Z");
  EXPECT_EQ(doc["blockers"][0]["subject"], "window");
}

TEST(StatusJson, BusHealthIsShownWithTimeAndLastError) {
  HostStatus status = emptyStatus();
  status.dbus = BusHealth{true, status.updated_at, std::nullopt};
  EXPECT_EQ(statusToJson(status)["dbus"], (json{{"connected", true},
                                                {"since", "2026-11-25T04:00:00Z"},
                                                {"last_error", nullptr}}));
  status.dbus = BusHealth{false, std::nullopt, "lost the connection to the D-Bus system bus"};
  EXPECT_EQ(statusToJson(status)["dbus"],
            (json{{"connected", false},
                  {"since", nullptr},
                  {"last_error", "lost the connection to the D-Bus system bus"}}));
}

TEST(StatusJson, ScheduledHostRendersWindowBlockersAndEvidence) {
  HostStatus status = emptyStatus();
  status.phase = HostPhase::in_maintenance;
  status.ready = true;
  status.session_id = "s-42";
  status.window =
      MaintenanceWindow{at(2026, 11, 25, 4, 0, 0), at(2026, 11, 25, 6, 0, 0), true, "BIOS update"};
  status.blockers = {{"domain db1", "policy metadata is malformed"}};
  status.evidence = {{"no-active-domains", false, "db1 is running"}};
  status.hypervisor_connection = hv::ConnectionState::disconnected;
  status.hypervisor_detail = "libvirtd went away";
  json doc = statusToJson(status);
  EXPECT_EQ(doc["phase"], "in-maintenance");
  EXPECT_EQ(doc["ready"], true);
  EXPECT_EQ(doc["session_id"], "s-42");
  EXPECT_EQ(doc["window"], (json{{"start", "2026-11-25T04:00:00Z"},
                                 {"end", "2026-11-25T06:00:00Z"},
                                 {"removal", true},
                                 {"reason", "BIOS update"}}));
  EXPECT_EQ(doc["blockers"],
            json::parse(R"([{"subject":"domain db1","reason":"policy metadata is malformed"}])"));
  EXPECT_EQ(doc["evidence"],
            json::parse(R"([{"check":"no-active-domains","ok":false,"detail":"db1 is running"}])"));
  EXPECT_EQ(doc["hypervisor"]["connection"], "disconnected");
  EXPECT_EQ(doc["hypervisor"]["detail"], "libvirtd went away");
}

TEST(StatusJson, DomainEntryCarriesStageRunStateAndPlan) {
  HostStatus status = emptyStatus();
  status.domains = {fullDomain()};
  json entry = statusToJson(status)["domains"][0];
  EXPECT_EQ(entry["name"], "web1");
  EXPECT_EQ(entry["uuid"], "6695eb01-f6a4-8304-79aa-97f2502e193f");
  EXPECT_EQ(entry["state"], "acting");
  EXPECT_EQ(entry["run_state"], "running");
  EXPECT_EQ(entry["action"], "live-migrate");
  EXPECT_EQ(entry["fallback_used"], false);
  EXPECT_EQ(entry["result"], "");
  EXPECT_EQ(entry["detail"], "migrating to host-b");
  EXPECT_EQ(entry["group"], "web");
  EXPECT_EQ(entry["priority"], 10);
  EXPECT_EQ(entry["owner"], "alice");
  EXPECT_EQ(entry["project"], "shop");
  EXPECT_EQ(entry["ack_required"], true);
  EXPECT_EQ(entry["ack"], "move");
  EXPECT_EQ(entry["ack_deadline"], "2026-11-25T08:00:00Z");
  EXPECT_EQ(entry["earliest_start"], "2026-11-25T03:30:00Z");
  EXPECT_EQ(entry["destination"], "qemu+ssh://host-b/system");
  EXPECT_EQ(entry["progress"]["data_remaining_bytes"], 60);
  EXPECT_DOUBLE_EQ(entry["progress"]["percent"].get<double>(), 40.0);
  EXPECT_EQ(entry["progress"]["downtime_limit_ms"], 300);
  EXPECT_EQ(entry["progress"]["escalation"], "downtime 300ms");
  EXPECT_EQ(entry["progress"]["post_copy"], false);
  EXPECT_EQ(entry["progress"]["started_at"], "2026-11-25T04:01:00Z");
  EXPECT_TRUE(entry["action_started_at"].is_null());
  EXPECT_TRUE(entry["policy_error"].is_null());
  EXPECT_EQ(entry["memory_mib"], 4096);
}

TEST(StatusJson, UnsetOptionalDomainFieldsAreNull) {
  DomainStatus domain;
  domain.name = "broken";
  domain.uuid = "u";
  domain.stage = DomainStage::blocked;
  domain.policy_error = "maintenance_action: 'teleport' is not one of ...";
  HostStatus status = emptyStatus();
  status.domains = {domain, fullDomain()};
  json doc = statusToJson(status);
  json entry = doc["domains"][0];
  for (const char* field : {"action", "group", "owner", "project", "ack", "ack_deadline",
                            "earliest_start", "destination", "progress"}) {
    EXPECT_TRUE(entry.contains(field)) << field;
    EXPECT_TRUE(entry[field].is_null()) << field;
  }
  EXPECT_EQ(entry["state"], "blocked");
  EXPECT_EQ(entry["run_state"], "unknown");
  EXPECT_EQ(entry["policy_error"], "maintenance_action: 'teleport' is not one of ...");
  EXPECT_EQ(doc["counts"]["blocked"], 1);
  EXPECT_EQ(doc["counts"]["acting"], 1);
  EXPECT_EQ(doc["counts"]["done"], 0);
}

// The scheduler's fields, rendered directly, as nlohmann renders them.
TEST(StatusRenderer, RendersTheSchedulersFieldsByteForByte) {
  StatusRenderer renderer;
  HostStatus status = emptyStatus();
  DomainStatus domain = fullDomain();
  ASSERT_TRUE(domain.progress);
  domain.progress->held = true;
  domain.progress->hurried = true;
  MigrationTimeline timeline;
  timeline.queued_at = TimePoint{} + std::chrono::milliseconds(1764594301123);
  timeline.started_at = *timeline.queued_at + std::chrono::milliseconds(7);
  domain.timeline = timeline;
  domain.predicted_duration_s = 12.345;
  domain.dirty_rate_bps = 8388608;
  status.domains = {domain};
  status.scheduler = SchedulerStatus{true, 2, 4, 2, 25000000, "the link is the limit"};
  const std::string rendered = renderer.render(status);
  EXPECT_EQ(rendered, reference(status));
  const auto doc = nlohmann::json::parse(rendered);
  EXPECT_EQ(doc["domains"][0]["timeline"]["queued_at"], "2025-12-01T13:05:01.123Z");
  EXPECT_EQ(doc["domains"][0]["timeline"]["started_at"], "2025-12-01T13:05:01.130Z");
  EXPECT_TRUE(doc["domains"][0]["timeline"]["converged_at"].is_null());
  EXPECT_EQ(doc["domains"][0]["progress"]["held"], true);
  EXPECT_EQ(doc["scheduler"]["limit"], 2);
  EXPECT_EQ(doc["scheduler"]["reason"], "the link is the limit");
}

// The renderer reuses each unchanged domain's text: what it writes must
// stay the whole document as statusToJson renders it, through changes,
// additions, removals and reorderings of domains.
TEST(StatusRenderer, RendersTheDocumentByteForByteAcrossChanges) {
  StatusRenderer renderer;
  HostStatus status = emptyStatus();
  EXPECT_EQ(renderer.render(status), reference(status));
  DomainStatus first = fullDomain();
  DomainNotice notice;
  notice.revision = 7;
  notice.session_id = "s-1";
  notice.message = "web1 \"moves\"\nat four";
  first.notice = notice;
  DomainStatus second = fullDomain();
  second.uuid = "0000eb01-f6a4-8304-79aa-97f2502e193f";
  second.name = "db1";
  second.progress.reset();
  second.stage = DomainStage::waiting;
  status.domains = {first, second};
  status.blockers.push_back({"domain db1", "waiting: 2 of max 2 actions running"});
  EXPECT_EQ(renderer.render(status), reference(status));
  status.domains[1].stage = DomainStage::done;
  status.domains[1].result = "suspended";
  status.generation = 4;
  EXPECT_EQ(renderer.render(status), reference(status));
  std::swap(status.domains[0], status.domains[1]);
  EXPECT_EQ(renderer.render(status), reference(status));
  status.domains.pop_back();
  EXPECT_EQ(renderer.render(status), reference(status));
  status.domains.clear();
  EXPECT_EQ(renderer.render(status), reference(status));
  status.domains = {second};
  const std::string rendered = renderer.render(status);
  EXPECT_EQ(rendered, reference(status));
  EXPECT_EQ(json::parse(rendered)["domains"][0]["name"], "db1");
}

// The status and the notices are written without building nlohmann values:
// the text must be what nlohmann renders, escapes and all.
TEST(StatusRenderer, WritesWhatNlohmannWritesForEveryFieldAndString) {
  DomainNotice notice;
  notice.revision = 18446744073709551615u;
  notice.issued_at = at(2026, 11, 25, 4, 0, 0);
  notice.session_id = "s";
  notice.action = MaintenanceAction::suspend;
  notice.window_start = at(2026, 11, 25, 5, 0, 0);
  notice.window_end = at(2026, 11, 25, 6, 0, 0);
  notice.earliest_start = at(2026, 11, 25, 5, 30, 0);
  notice.expected_downtime = seconds(-5);
  notice.downtime_basis = "window";
  notice.ack = AckChoice::keep;
  notice.ack_reason = "tab\there, \x01 and \x1f, del \x7f, back\\slash";
  notice.ack_deadline = at(2026, 11, 25, 4, 30, 0);
  notice.ack_timeout_action = AckTimeoutAction::proceed;
  notice.keep_action = MaintenanceAction::shutdown;
  notice.owner_deadline = at(2026, 11, 25, 4, 45, 0);
  notice.message = "r\u00e9sum\u00e9 \u2014 \"quoted\"\r\n\b\f";
  EXPECT_EQ(noticeToText(notice), noticeToJson(notice).dump());
  EXPECT_EQ(noticeToText(DomainNotice{}), noticeToJson(DomainNotice{}).dump());
  HostStatus status = emptyStatus();
  DomainStatus full = fullDomain();
  full.notice = notice;
  full.progress->percent = 33.333333333333336;
  full.ack_reason = "because";
  full.policy_error = "bad \"x\"";
  full.action_started_at = at(2026, 11, 25, 4, 1, 0);
  full.action_finished_at = at(2026, 11, 25, 4, 2, 0);
  full.priority = -3;
  DomainStatus bare;
  bare.uuid = "u";
  status.domains = {full, bare};
  StatusRenderer renderer;
  EXPECT_EQ(renderer.render(status), reference(status));
}

// One rendering of each notice serves the status document, the ledger and
// D-Bus: the compact text is the indented one without its layout, which must
// be nlohmann's compact rendering whatever the strings hold.
TEST(NoticeTexts, IndentedAndCompactAreNlohmannsAndFollowChanges) {
  DomainNotice notice;
  notice.revision = 3;
  notice.issued_at = at(2026, 11, 25, 4, 0, 0);
  notice.session_id = "s 1";
  notice.action = MaintenanceAction::live_migrate;
  notice.expected_downtime = seconds(30);
  notice.ack_reason = "a \"quoted\" reason:  {with} [layout]\n, characters";
  notice.message = "web1: \\\" spaced  out \" \t r\u00e9sum\u00e9";
  NoticeTexts texts;
  // A member's value three levels deep, as in status.json and notices.json.
  auto indented = [](const DomainNotice& n) {
    std::string text = json{{"a", {{"b", {{"c", noticeToJson(n)}}}}}}.dump(2);
    const std::string key = "\"c\": ";
    text = text.substr(text.find(key) + key.size());
    return text.substr(0, text.rfind("}\n    }") + 1);
  };
  EXPECT_EQ(texts.indented("u1", notice), indented(notice));
  EXPECT_EQ(texts.compact("u1", notice), noticeToJson(notice).dump());
  EXPECT_EQ(texts.compact("u2", DomainNotice{}), noticeToJson(DomainNotice{}).dump());
  notice.revision = 4;
  notice.message = "changed";
  EXPECT_EQ(texts.compact("u1", notice), noticeToJson(notice).dump());
  EXPECT_EQ(texts.indented("u1", notice), indented(notice));
}

TEST(Time, FormatsUtcWithSeconds) {
  EXPECT_EQ(formatTime(at(2026, 11, 25, 4, 0, 0)), "2026-11-25T04:00:00Z");
  EXPECT_EQ(formatTime(at(2026, 1, 2, 3, 4, 5) + milliseconds(999)), "2026-01-02T03:04:05Z");
  EXPECT_EQ(formatTime(TimePoint{}), "1970-01-01T00:00:00Z");
}

TEST(Time, ParsesOffsetsFractionsAndBareLocalAsUtc) {
  TimePoint expected = at(2026, 11, 25, 4, 0, 0);
  EXPECT_EQ(parseTime("2026-11-25T04:00:00Z"), expected);
  EXPECT_EQ(parseTime("2026-11-25t04:00:00z"), expected);
  EXPECT_EQ(parseTime("2026-11-25 04:00:00Z"), expected);
  EXPECT_EQ(parseTime("2026-11-25T06:00:00+02:00"), expected);
  EXPECT_EQ(parseTime("2026-11-25T06:00:00+0200"), expected);
  EXPECT_EQ(parseTime("2026-11-24T23:30:00-04:30"), expected);
  EXPECT_EQ(parseTime("2026-11-25T04:00"), expected);
  EXPECT_EQ(parseTime("2026-11-25T04:00:00"), expected);
  EXPECT_EQ(parseTime("2026-11-25T04:00:00.250Z"), expected + milliseconds(250));
  EXPECT_EQ(parseTime("2026-11-25T04:00:00.1234567891Z"), expected + nanoseconds(123456789));
}

TEST(Time, RejectsGarbage) {
  for (const char* bad :
       {"", "now", "2026-11-25", "2026-13-01T00:00Z", "2026-02-30T00:00Z", "2026-11-25T24:00Z",
        "2026-11-25T04:60Z", "2026-11-25T04:00:61Z", "2026-11-25T04:00:00.Z",
        "2026-11-25T04:00:00+2", "2026-11-25T04:00:00Zjunk", "2026-11-25T04:00:00 UTC",
        "26-11-25T04:00Z", "2026/11/25T04:00Z"}) {
    EXPECT_EQ(parseTime(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(Time, AcceptsOnlyYearsATimePointHoldsWithRoomToSpare) {
  // Found by fuzz/desired_state: "1013-11-25T04:00:00Z" overflowed the
  // conversion to nanoseconds (undefined behaviour) and came out as 2597.
  for (const char* bad : {"1013-11-25T04:00:00Z", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
                          "2263-01-01T00:00:00Z", "5736-11-25T04:00:00Z", "9999-12-31T23:59:59Z"}) {
    EXPECT_EQ(parseTime(bad), std::nullopt) << "'" << bad << "'";
  }
  EXPECT_EQ(parseTime("1970-01-01T00:00:00Z"), TimePoint{});
  EXPECT_EQ(parseTime("2199-12-31T23:59:59Z"), at(2199, 12, 31, 23, 59, 59));
}

TEST(Time, RoundTrips) {
  for (TimePoint time : {at(2026, 11, 25, 4, 0, 0), at(2000, 2, 29, 23, 59, 59), TimePoint{}}) {
    EXPECT_EQ(parseTime(formatTime(time)), time);
  }
}

}  // namespace
}  // namespace hostmaint::agent
