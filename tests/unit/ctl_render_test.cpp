// hostmaintctl's rendering of the status document for people.
#include "render.hpp"
#include "exit_status.hpp"
#include "when.hpp"

#include <gtest/gtest.h>

namespace hostmaint::ctl {
namespace {

using namespace std::chrono;
using nlohmann::json;

// 2026-11-25T10:05:00Z: five minutes into the sample window.
const TimePoint kNow = TimePoint(sys_days(year{2026} / 11 / 25).time_since_epoch() + hours(10) + minutes(5));

const RenderOptions kUtc{kNow, false};

json sampleStatus() {
  return json::parse(R"({
    "schema_version": 1, "generation": 42, "updated_at": "2026-11-25T10:04:58Z",
    "host": "hv-07", "phase": "draining", "ready": false, "session_id": "mw-1234",
    "window": {"start": "2026-11-25T10:00:00Z", "end": "2026-11-25T12:00:00Z",
               "removal": false, "reason": "kernel update"},
    "blockers": [
      {"subject": "domain vm-broken", "reason": "policy: unknown action 'teleport'"},
      {"subject": "domain vm-acked", "reason": "waiting for the owner's ack"}
    ],
    "evidence": [
      {"check": "no-active-domains", "ok": false, "detail": "3 active"},
      {"check": "hugepages-free", "ok": true, "detail": "0 of 0 in use"}
    ],
    "hypervisor": {"uri": "test:///default", "connection": "connected", "detail": ""},
    "counts": {"acting": 1, "done": 1, "blocked": 1, "awaiting-ack": 1},
    "domains": [
      {"name": "vm-web", "uuid": "u-1", "state": "acting", "run_state": "running",
       "action": "live-migrate", "fallback_used": false, "result": "", "detail": "",
       "destination": "hv-08",
       "progress": {"percent": 52.4, "data_remaining_bytes": 1288490189, "throughput_bps": 115343360}},
      {"name": "vm-db", "uuid": "u-2", "state": "done", "run_state": "shutoff",
       "action": "suspend", "fallback_used": true, "result": "suspended", "detail": "cannot live-migrate: unsupported",
       "progress": null},
      {"name": "vm-broken", "uuid": "u-3", "state": "blocked", "run_state": "running",
       "action": null, "result": "", "detail": "", "policy_error": "unknown action 'teleport'"},
      {"name": "vm-acked", "uuid": "u-4", "state": "awaiting-ack", "run_state": "running",
       "action": "shutdown", "ack_required": true, "ack": null, "ack_deadline": "2026-11-25T10:30:00Z"}
    ]
  })");
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string lineWith(const std::string& text, const std::string& needle) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (contains(line, needle)) return line;
  return {};
}

TEST(CtlRender, ProgressBarFillsInProportionAndClamps) {
  EXPECT_EQ(renderProgressBar(50, 12), "[#####.....]");
  EXPECT_EQ(renderProgressBar(0, 6), "[....]");
  EXPECT_EQ(renderProgressBar(100, 6), "[####]");
  EXPECT_EQ(renderProgressBar(150, 6), "[####]");
  EXPECT_EQ(renderProgressBar(-5, 6), "[....]");
  EXPECT_EQ(renderProgressBar(std::nan(""), 6), "[....]");
  EXPECT_EQ(renderProgressBar(52.4, 22).size(), 22u);
}

TEST(CtlRender, MigrationProgressShowsTheEscalationReached) {
  json status = sampleStatus();
  json& progress = status["domains"][0]["progress"];
  progress["downtime_limit_ms"] = 400;
  EXPECT_TRUE(contains(lineWith(renderStatus(status, kUtc), "vm-web"), "downtime 400 ms"));
  progress["post_copy"] = true;
  const std::string line = lineWith(renderStatus(status, kUtc), "vm-web");
  EXPECT_TRUE(contains(line, "post-copy")) << line;
  EXPECT_FALSE(contains(line, "downtime 400 ms")) << line;
}

TEST(CtlRender, MigrationProgressShowsPercentThroughputRemainingAndTimeLeft) {
  const std::string line = lineWith(renderStatus(sampleStatus(), kUtc), "vm-web");
  // 1.2 GiB left at 110 MiB/s: 11.2 s, shown rounded up.
  EXPECT_TRUE(contains(line, "[##########..........]  52% 1.2 GiB left at 110 MiB/s, ~12s to hv-08"))
      << line;
}

TEST(CtlRender, MigrationProgressNamesEscalationsBeyondTheDowntimeLadder) {
  json status = sampleStatus();
  json& progress = status["domains"][0]["progress"];
  progress["downtime_limit_ms"] = 800;
  progress["escalation"] = "downtime 800ms";  // already said by the limit
  std::string line = lineWith(renderStatus(status, kUtc), "vm-web");
  EXPECT_TRUE(contains(line, ", downtime 800 ms to hv-08")) << line;
  progress["escalation"] = "auto-converge";
  line = lineWith(renderStatus(status, kUtc), "vm-web");
  EXPECT_TRUE(contains(line, ", downtime 800 ms, auto-converge to hv-08")) << line;
}

TEST(CtlRender, BytesInBinaryUnits) {
  EXPECT_EQ(formatBytes(0), "0 B");
  EXPECT_EQ(formatBytes(1023), "1023 B");
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(formatBytes(300ull << 20), "300 MiB");
  EXPECT_EQ(formatBytes(1288490189), "1.2 GiB");
}

TEST(CtlRender, StatusShowsHostPhaseWindowAndHypervisor) {
  const std::string out = renderStatus(sampleStatus(), kUtc);
  EXPECT_TRUE(contains(lineWith(out, "host"), "hv-07")) << out;
  EXPECT_TRUE(contains(lineWith(out, "phase"), "draining (session mw-1234)")) << out;
  EXPECT_TRUE(contains(lineWith(out, "ready"), "no")) << out;
  const std::string window = lineWith(out, "window");
  EXPECT_TRUE(contains(window, "2026-11-25 10:00:00 UTC to 2026-11-25 12:00:00 UTC")) << out;
  EXPECT_TRUE(contains(window, "started 5m ago, ends in 1h55m")) << out;
  EXPECT_TRUE(contains(lineWith(out, "reason"), "kernel update")) << out;
  EXPECT_TRUE(contains(lineWith(out, "hypervisor"), "test:///default (connected)")) << out;
}

TEST(CtlRender, StatusShowsAnOverrunOnlyWhenThereIsOne) {
  EXPECT_EQ(lineWith(renderStatus(sampleStatus(), kUtc), "overrun"), "");
  json status = sampleStatus();
  status["window"]["end"] = "2026-11-25T10:03:00Z";
  status["overrun"] = true;
  status["overrun_since"] = "2026-11-25T10:03:00Z";
  const std::string out = renderStatus(status, kUtc);
  const std::string line = lineWith(out, "overrun");
  EXPECT_TRUE(contains(line, "yes: the window ended with the host still draining")) << out;
  EXPECT_TRUE(contains(line, "2026-11-25 10:03:00 UTC (2m ago)")) << out;
}

TEST(CtlRender, StatusNamesEveryBlockerWithItsReason) {
  const std::string out = renderStatus(sampleStatus(), kUtc);
  EXPECT_TRUE(contains(out, "blockers (2):")) << out;
  EXPECT_TRUE(contains(out, "domain vm-broken: policy: unknown action 'teleport'")) << out;
  EXPECT_TRUE(contains(out, "domain vm-acked: waiting for the owner's ack")) << out;
  EXPECT_TRUE(contains(lineWith(out, "no-active-domains"), "NOT OK")) << out;
}

TEST(CtlRender, StatusTableShowsEachDomainsStageActionAndOutcome) {
  const std::string out = renderStatus(sampleStatus(), kUtc);
  EXPECT_TRUE(contains(out, "domains (4): 1 blocked, 1 awaiting-ack, 1 acting, 1 done")) << out;
  const std::string web = lineWith(out, "vm-web");
  EXPECT_TRUE(contains(web, "running")) << web;
  EXPECT_TRUE(contains(web, "acting")) << web;
  EXPECT_TRUE(contains(web, "live-migrate")) << web;
  EXPECT_TRUE(contains(web, "[##########..........]")) << web;
  EXPECT_TRUE(contains(web, " 52% 1.2 GiB left at 110 MiB/s, ~12s to hv-08")) << web;
  const std::string db = lineWith(out, "vm-db");
  EXPECT_TRUE(contains(db, "suspend (fallback)")) << db;
  EXPECT_TRUE(contains(db, "suspended; cannot live-migrate: unsupported")) << db;
  const std::string broken = lineWith(out, "vm-broken  ");
  EXPECT_TRUE(contains(broken, "blocked")) << out;
  EXPECT_TRUE(contains(broken, "policy: unknown action 'teleport'")) << broken;
  EXPECT_TRUE(contains(lineWith(out, "vm-acked  "), "ack due in 25m")) << out;
}

TEST(CtlRender, MissingAndMistypedFieldsReadAsAbsent) {
  const std::string idle = renderStatus(json::parse(R"({"phase": "idle"})"), kUtc);
  EXPECT_TRUE(contains(lineWith(idle, "window"), "none scheduled")) << idle;
  EXPECT_TRUE(contains(idle, "domains (0)")) << idle;
  EXPECT_FALSE(contains(idle, "blockers")) << idle;

  const std::string odd = renderStatus(
      json::parse(R"({"ready": "yes", "domains": [{"name": "x", "progress": 7}], "blockers": {}})"), kUtc);
  EXPECT_TRUE(contains(lineWith(odd, "ready"), "no")) << odd;
  EXPECT_TRUE(contains(odd, "domains (1): 1 unknown")) << odd;
  EXPECT_NO_THROW(renderStatus(json::array(), kUtc));
  EXPECT_NO_THROW(renderWaitFrame(json(), kUtc, seconds(0), 80, 24));
}

TEST(CtlRender, PlanSummaryCountsActions) {
  EXPECT_EQ(renderPlanSummary(sampleStatus()),
            "4 domains: 1 live-migrate, 1 shutdown, 1 suspend, 1 without an action");
  EXPECT_EQ(renderPlanSummary(json::parse(R"({"domains": []})")), "0 domains");
}

TEST(CtlRender, WaitFrameFitsTheTerminal) {
  json status = sampleStatus();
  for (int i = 0; i < 40; ++i)
    status["domains"].push_back({{"name", "vm-filler-with-a-long-name-" + std::to_string(i)},
                                 {"state", "done"}, {"action", "suspend"}, {"result", "suspended"}});
  const auto lines = renderWaitFrame(status, kUtc, seconds(12), 40, 15);
  ASSERT_EQ(lines.size(), 15u);
  for (const auto& line : lines) EXPECT_LE(line.size(), 40u) << line;
  EXPECT_TRUE(contains(lines[0], "phase draining, ready no, 41/44")) << lines[0];
  // What needs attention comes first; the settled rest is summarised.
  std::string frame;
  for (const auto& line : lines) frame += line + "\n";
  EXPECT_TRUE(contains(frame, "vm-broken")) << frame;
  EXPECT_TRUE(contains(frame, "more")) << frame;
  EXPECT_TRUE(contains(frame, "blockers:")) << frame;
  EXPECT_TRUE(contains(frame, "domain vm-acked")) << frame;
}

TEST(CtlRender, WaitLinesReportOnlyWhatChanged) {
  const json before = sampleStatus();
  const auto first = renderWaitLines(before, json(), kUtc);
  ASSERT_EQ(first.size(), 5u);  // summary and every domain
  EXPECT_EQ(first[0], "10:05:00 phase draining, ready no, 1/4 done, 2 blockers");

  json after = before;
  after["domains"][0]["state"] = "done";
  after["domains"][0]["progress"] = nullptr;
  after["domains"][0]["result"] = "migrated to hv-08";
  const auto next = renderWaitLines(after, before, kUtc);
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[1], "  vm-web: acting -> done [live-migrate] migrated to hv-08");
}

TEST(CtlRender, WaitLinesFollowAMigrationByQuartersAndEscalations) {
  const json start = sampleStatus();  // vm-web at 52.4 %
  json moved = start;
  moved["domains"][0]["progress"]["percent"] = 60.0;
  moved["generation"] = 43;
  EXPECT_TRUE(renderWaitLines(moved, start, kUtc).empty())
      << "a few percent more is not worth a line in a log";

  json quarter = start;
  quarter["domains"][0]["progress"]["percent"] = 77.0;
  auto lines = renderWaitLines(quarter, start, kUtc);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(contains(lines[1], "  vm-web: acting [live-migrate] [")) << lines[1];
  EXPECT_TRUE(contains(lines[1], " 77% ")) << lines[1];

  json escalated = start;
  escalated["domains"][0]["progress"]["post_copy"] = true;
  lines = renderWaitLines(escalated, start, kUtc);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(contains(lines[1], "post-copy")) << lines[1];
}

TEST(CtlRender, RedrawWritesNothingForTheSameFrame) {
  const std::vector<std::string> frame{"host: phase draining", "  vm-web [###...]"};
  EXPECT_EQ(renderRedraw(frame, frame), "");
}

TEST(CtlRender, RedrawOverwritesChangedLinesInPlaceWithoutClearingFirst) {
  const std::vector<std::string> drawn{"head 1s", "  vm-a [#...]", "  vm-b done"};
  const std::vector<std::string> next{"head 2s", "  vm-a [##..]", "  vm-b done"};
  const std::string out = renderRedraw(drawn, next);
  // Back to the first line, rewrite the two changed lines, step over the third.
  EXPECT_EQ(out, "\x1b[?25l\x1b[3F" "head 2s\x1b[K\n" "  vm-a [##..]\x1b[K\n" "\n" "\x1b[?25h");
  EXPECT_FALSE(contains(out, "\x1b[J")) << "no clear of the screen when the frame keeps its size";
  EXPECT_FALSE(contains(out, "\x1b[2J"));
}

TEST(CtlRender, RedrawOfAShorterFrameClearsOnlyWhatIsLeftBelow) {
  const std::vector<std::string> drawn{"head", "  vm-a", "  vm-b"};
  const std::vector<std::string> next{"head", "  vm-b"};
  const std::string out = renderRedraw(drawn, next);
  EXPECT_EQ(out, "\x1b[?25l\x1b[3F" "\n" "  vm-b\x1b[K\n" "\x1b[J" "\x1b[?25h");
}

TEST(CtlRender, FirstRedrawJustDraws) {
  EXPECT_EQ(renderRedraw({}, {"a", "b"}), "\x1b[?25la\x1b[K\nb\x1b[K\n\x1b[?25h");
}


// Text from outside can carry terminal controls: shown escaped, never raw.
TEST(CtlRender, PrintableEscapesControlCharactersAndBrokenUtf8) {
  EXPECT_EQ(printable("kernel update"), "kernel update");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");  // UTF-8 stays
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable("bell\x07"), "bell\\x07");
  EXPECT_EQ(printable("two\nlines\r\ttab"), "two\\nlines\\r\\ttab");
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
  EXPECT_EQ(printable("c1\xc2\x85next"), "c1\\u0085next");       // NEL, a C1 control
  EXPECT_EQ(printable("c1\xc2\x9b" "31m"), "c1\\u009b31m");       // CSI, a C1 control
  EXPECT_EQ(printable("cut\xe2\x9c"), "cut\\xe2\\x9c");            // a cut sequence
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                  // overlong '/'
}

TEST(CtlRender, StatusShowsOutsideTextEscaped) {
  json status = sampleStatus();
  status["window"]["reason"] = "upgrade\x1b]0;pwned\x07\nfake line";
  status["blockers"][0]["reason"] = "bad\x1b[31m";
  status["domains"][0]["name"] = "vm\x1b[2K";
  const std::string out = renderStatus(status, kUtc);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_EQ(out.find('\x07'), std::string::npos) << out;
  EXPECT_TRUE(contains(lineWith(out, "reason"), "upgrade\\x1b]0;pwned\\x07\\nfake line")) << out;
  EXPECT_TRUE(contains(out, "bad\\x1b[31m")) << out;
  EXPECT_TRUE(contains(out, "vm\\x1b[2K")) << out;
  EXPECT_EQ(lineWith(out, "fake line"), lineWith(out, "reason")) << out;
}

json withNotices() {
  json status = sampleStatus();
  status["domains"][3]["notice"] = json::parse(R"({
    "revision": 17, "issued_at": "2026-11-25T09:00:00Z", "session_id": "mw-1234",
    "status": "active", "action": "shutdown", "fallback_used": false,
    "window_start": "2026-11-25T10:00:00Z", "window_end": "2026-11-25T12:00:00Z",
    "removal": false, "earliest_start": null, "expected_downtime_s": 7200,
    "downtime_basis": "window", "ack_required": true, "ack": null, "ack_reason": null,
    "ack_deadline": "2026-11-25T10:30:00Z", "ack_timeout_action": "proceed",
    "keep_allowed": false, "keep_action": null, "owner_deadline": null,
    "message": "vm-acked will be shut down."})");
  status["domains"][1]["notice"] = json::parse(R"({
    "revision": 21, "issued_at": "2026-11-25T09:30:00Z", "session_id": "mw-1234",
    "status": "active", "action": "suspend", "fallback_used": true,
    "window_start": "2026-11-25T10:00:00Z", "window_end": "2026-11-25T12:00:00Z",
    "removal": false, "earliest_start": null, "expected_downtime_s": 90,
    "downtime_basis": "window", "ack_required": true, "ack": "keep",
    "ack_reason": "db stays\u001b[5m", "ack_deadline": null, "ack_timeout_action": null,
    "keep_allowed": true, "keep_action": "suspend", "owner_deadline": null,
    "message": "vm-db will be suspended. Acknowledged: keep."})");
  return status;
}

TEST(CtlRender, NoticesTableShowsRevisionAckStateAndDeadline) {
  const std::string out = renderNotices(withNotices(), kUtc);
  const std::string header = lineWith(out, "DOMAIN");
  for (const char* column : {"REVISION", "STATUS", "ACTION", "DOWNTIME", "ACK", "DEADLINE"})
    EXPECT_TRUE(contains(header, column)) << out;
  const std::string acked = lineWith(out, "vm-db ");
  EXPECT_TRUE(contains(acked, "21")) << out;
  EXPECT_TRUE(contains(acked, "suspend (fallback)")) << out;
  EXPECT_TRUE(contains(acked, "keep: db stays\\x1b[5m")) << out;
  const std::string waiting = lineWith(out, "vm-acked ");
  EXPECT_TRUE(contains(waiting, "17")) << out;
  EXPECT_TRUE(contains(waiting, "awaiting")) << out;
  EXPECT_TRUE(contains(waiting, "ack by 2026-11-25 10:30:00 UTC (in 25m)")) << out;
  EXPECT_TRUE(contains(waiting, "~2h")) << out;
  // Domains without a notice are not rows; each notice's words follow the table.
  EXPECT_TRUE(lineWith(out, "vm-web").empty()) << out;
  EXPECT_TRUE(contains(out, "vm-acked will be shut down.")) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
}

TEST(CtlRender, NoticesSayWhenThereAreNone) {
  json idle = sampleStatus();
  idle["phase"] = "idle";
  EXPECT_EQ(renderNotices(idle, kUtc), "no notices (no maintenance scheduled)\n");
  EXPECT_EQ(renderNoticeSummary(idle, kUtc), "none");
}

TEST(CtlRender, StatusSummarisesTheNotices) {
  const std::string out = renderStatus(withNotices(), kUtc);
  EXPECT_EQ(lineWith(out, "notices"),
            "notices     2 issued (latest revision 21): 1 awaiting an ack (next due in 25m), "
            "1 acknowledged")
      << out;
  json failing = withNotices();
  failing["notice_webhook"] = {{"url", "https://n"}, {"state", "failing"}, {"pending", 2},
                               {"dropped", 1}};
  EXPECT_TRUE(contains(renderNoticeSummary(failing, kUtc), "; webhook failing, 2 pending, 1 dropped"));
}

TEST(CtlRender, NoticesJsonListsEachDomainsNoticeAsPublished) {
  const json status = withNotices();
  const json out = noticesJson(status);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["name"], "vm-db");
  EXPECT_EQ(out[0]["uuid"], "u-2");
  EXPECT_EQ(out[0]["notice"], status["domains"][1]["notice"]);
  EXPECT_EQ(out[1]["notice"]["revision"], 17);
}

}  // namespace
}  // namespace hostmaint::ctl
