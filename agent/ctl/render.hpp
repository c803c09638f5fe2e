// Text for people, rendered from the status document (docs/status-json.md)
// and nothing else, so what hostmaintctl shows cannot disagree with
// status.json or the D-Bus properties. Fields missing from the document
// (older or newer daemons) are shown as absent, never fail the rendering.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "when.hpp"

namespace hostmaint::ctl {

struct RenderOptions {
  TimePoint now;
  bool local_time = true;  // false: UTC, for reproducible output (tests, logs)
};

// Text that came from outside (reasons, names, details, the daemon's error
// messages) made safe to print: control characters are shown escaped
// ("\n", "\t", "\x1b", "\u0085") and bytes that are not UTF-8 as "\xHH",
// so nothing printed can move the cursor, ring the bell or fake a line.
std::string printable(std::string_view text);

// "[#######.......]": `width` characters including the brackets; percent is
// clamped to 0..100.
std::string renderProgressBar(double percent, int width);

// "512 B", "1.5 KiB", "300 MiB", "1.2 GiB".
std::string formatBytes(std::uint64_t bytes);

// `hostmaintctl status`: host, phase, window, hypervisor, blockers,
// evidence and a table of domains.
std::string renderStatus(const nlohmann::json& status, const RenderOptions& options);

// `hostmaintctl notices`: one row per domain with a notice (revision,
// status, action, expected downtime, ack state, deadline), then each
// notice's message. "no notices" when there are none.
std::string renderNotices(const nlohmann::json& status, const RenderOptions& options);

// The notices line of `status`: "3 issued (latest revision 42): 1 awaiting
// an ack (next due in 2h), 1 acknowledged", with the webhook's trouble when
// it has any; "none" when no domain has a notice.
std::string renderNoticeSummary(const nlohmann::json& status, const RenderOptions& options);

// `hostmaintctl notices --json`: [{"uuid", "name", "notice"}] for every
// domain with a notice, the notice as in the status document.
nlohmann::json noticesJson(const nlohmann::json& status);

// After `schedule`: "10 domains: 4 live-migrate, 3 suspend, ...".
std::string renderPlanSummary(const nlohmann::json& status);

// "vm-broken: policy: unknown action 'teleport'" lines, one per blocker.
std::vector<std::string> renderBlockers(const nlohmann::json& status);

// `wait` on a terminal: the whole screen, redrawn on each change. At most
// `max_lines` lines, each cut to `columns` characters so the redraw can count
// the lines it printed.
std::vector<std::string> renderWaitFrame(const nlohmann::json& status, const RenderOptions& options,
                                         std::chrono::seconds elapsed, std::size_t columns,
                                         std::size_t max_lines);

// `wait` into a pipe or a log: one summary line, then one line per domain
// whose stage or result changed since `previous` (null on the first call),
// or whose migration passed a quarter (25, 50, 75 %) or escalated (allowed
// downtime raised, post-copy). Empty when nothing of that changed, so a log
// is not flooded by progress updates.
std::vector<std::string> renderWaitLines(const nlohmann::json& status,
                                         const nlohmann::json& previous,
                                         const RenderOptions& options);

// The terminal output that turns the frame `drawn` (already on screen, the
// cursor on the line below it) into `lines`, in place and without
// flicker: lines are overwritten, not cleared first, unchanged ones are
// skipped, and nothing is written when the frame did not change.
std::string renderRedraw(const std::vector<std::string>& drawn, const std::vector<std::string>& lines);

}  // namespace hostmaint::ctl
