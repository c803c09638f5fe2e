#include "render.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

#include "fleet_render.hpp"
#include "hostmaint/agent/caller_text.hpp"
#include "render_json.hpp"

namespace hostmaint::ctl {
namespace {

using nlohmann::json;

using doc::flag;
using doc::instantText;
using doc::member;
using doc::number;
using doc::text;

const json& domainsOf(const json& status) {
  static const json kNone = json::array();
  const json& domains = member(status, "domains");
  return domains.is_array() ? domains : kNone;
}

// Stages in the order an operator reads them: what needs attention first.
constexpr std::array<std::string_view, 11> kStageOrder{
    "failed", "blocked", "awaiting-ack", "acting", "waiting", "planned",
    "restoring", "restore-failed", "done", "left", "restored"};

std::size_t stageRank(const std::string& stage) {
  const auto found = std::find(kStageOrder.begin(), kStageOrder.end(), stage);
  return static_cast<std::size_t>(found - kStageOrder.begin());
}

// Stage counts: from the document's `counts` when present, else counted.
std::vector<std::pair<std::string, long long>> stageCounts(const json& status) {
  std::map<std::string, long long> counts;
  const json& given = member(status, "counts");
  if (given.is_object() && !given.empty()) {
    for (const auto& [stage, count] : given.items())
      if (count.is_number_integer() && count.get<long long>() > 0) counts[stage] = count.get<long long>();
  } else {
    for (const auto& domain : domainsOf(status)) ++counts[text(domain, "state", "unknown")];
  }
  std::vector<std::pair<std::string, long long>> ordered(counts.begin(), counts.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return stageRank(a.first) < stageRank(b.first);
  });
  return ordered;
}

std::string joinCounts(const std::vector<std::pair<std::string, long long>>& counts) {
  std::string joined;
  for (const auto& [stage, count] : counts) {
    if (!joined.empty()) joined += ", ";
    joined += std::to_string(count) + " " + printable(stage);
  }
  return joined;
}

// Domains off the host during a drain, or back during a restore.
std::string settledSummary(const json& status) {
  const json& domains = domainsOf(status);
  const std::string phase = text(status, "phase");
  long long settled = 0;
  for (const auto& domain : domains) {
    const std::string stage = text(domain, "state");
    if (phase == "restoring" || phase == "idle") {
      settled += stage == "restored" || stage == "left" ? 1 : 0;
    } else {
      settled += stage == "done" || stage == "left" ? 1 : 0;
    }
  }
  const char* verb = phase == "restoring" ? "restored" : "done";
  return std::to_string(settled) + "/" + std::to_string(domains.size()) + " " + verb;
}

std::string actionText(const json& domain) {
  std::string action = text(domain, "action", "-");
  if (flag(domain, "fallback_used")) action += " (fallback)";
  return action;
}

// The escalation a migration reached, as shown after its progress: an admin
// watching a stuck migration sees what hostmaintd is doing about it.
std::string escalationText(const json& progress) {
  if (flag(progress, "post_copy")) return "post-copy";
  std::string shown;
  if (const double downtime = number(progress, "downtime_limit_ms"); downtime > 0) {
    char allowed[48];
    std::snprintf(allowed, sizeof allowed, "downtime %.0f ms", downtime);
    shown = allowed;
  }
  // Steps other than the downtime ladder (auto-converge, ...) are named as
  // the hypervisor layer names them; a downtime step is already shown above.
  const std::string step = text(progress, "escalation");
  if (!step.empty() && !step.starts_with("downtime")) shown += (shown.empty() ? "" : ", ") + step;
  return shown;
}

std::string progressText(const json& progress) {
  const double percent = number(progress, "percent");
  std::string line = renderProgressBar(percent, 22);
  char shown_percent[16];
  std::snprintf(shown_percent, sizeof shown_percent, " %3.0f%%",
                std::isfinite(percent) ? std::clamp(percent, 0.0, 100.0) : 0.0);
  line += shown_percent;
  const double remaining = number(progress, "data_remaining_bytes");
  const double throughput = number(progress, "throughput_bps");
  if (remaining > 0) line += " " + formatBytes(static_cast<std::uint64_t>(remaining)) + " left";
  if (throughput > 0) {
    line += " at " + formatBytes(static_cast<std::uint64_t>(throughput)) + "/s";
    // Remaining over current throughput: a lower bound while the guest keeps
    // dirtying memory, and said so with the tilde.
    if (remaining > 0) {
      const auto eta = std::chrono::seconds(static_cast<long long>(std::ceil(remaining / throughput)));
      line += ", ~" + formatDuration(eta);
    }
  }
  const std::string escalation = escalationText(progress);
  if (!escalation.empty()) line += ", " + escalation;
  // The scheduler's doing, not the migration's: said so the admin does not
  // take a held migration for a stuck one.
  if (flag(progress, "held")) line += ", held while others converge";
  if (flag(progress, "hurried")) line += ", hurried (cannot converge at its share)";
  return line;
}

// What to say about a domain after its stage and action: its progress while
// migrating, else its result and why it waits, blocks or failed.
std::string outcomeText(const json& domain, const RenderOptions& options) {
  const json& progress = member(domain, "progress");
  const std::string stage = text(domain, "state");
  if (stage == "acting" && progress.is_object()) {
    std::string line = progressText(progress);
    const std::string destination = text(domain, "destination");
    if (!destination.empty()) line += " to " + destination;
    return line;
  }
  std::vector<std::string> parts;
  for (const char* key : {"result", "detail"}) {
    const std::string part = text(domain, key);
    if (!part.empty()) parts.push_back(part);
  }
  const std::string policy_error = text(domain, "policy_error");
  if (!policy_error.empty() && text(domain, "detail").find(policy_error) == std::string::npos)
    parts.push_back("policy: " + policy_error);
  if (stage == "awaiting-ack") {
    TimePoint deadline;
    if (parseTimestamp(text(domain, "ack_deadline"), deadline))
      parts.push_back("ack due " + formatRelative(deadline, options.now));
  }
  std::string joined;
  for (const auto& part : parts) joined += (joined.empty() ? "" : "; ") + part;
  return joined;
}

// Pads columns to the widest cell; the last column is never padded.
std::string renderTable(const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string windowText(const json& window, const RenderOptions& options) {
  TimePoint start;
  TimePoint end;
  const bool has_start = parseTimestamp(text(window, "start"), start);
  const bool has_end = parseTimestamp(text(window, "end"), end);
  if (!has_start || !has_end) return text(window, "start", "?") + " to " + text(window, "end", "?");
  std::string line = formatInstant(start, options.local_time) + " to " +
                     formatInstant(end, options.local_time) + " (";
  line += start > options.now ? "starts " + formatRelative(start, options.now)
                              : "started " + formatRelative(start, options.now);
  line += end > options.now ? ", ends " + formatRelative(end, options.now)
                            : ", ended " + formatRelative(end, options.now);
  return line + ")";
}

// Cuts to `columns` characters, not splitting a UTF-8 sequence.
std::string fitWidth(std::string line, std::size_t columns) {
  if (columns == 0 || line.size() <= columns) return line;
  std::size_t cut = columns;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  line.resize(cut);
  return line;
}

// The notices of the domains that have one, in the document's order.
std::vector<const json*> domainsWithNotices(const json& status) {
  std::vector<const json*> found;
  for (const auto& domain : domainsOf(status))
    if (member(domain, "notice").is_object()) found.push_back(&domain);
  return found;
}

// "move", "keep (owner asked: stays up)", "awaiting", "not required".
std::string ackText(const json& notice) {
  const std::string ack = text(notice, "ack");
  if (!ack.empty()) {
    const std::string reason = text(notice, "ack_reason");
    return reason.empty() ? ack : ack + ": " + reason;
  }
  if (flag(notice, "ack_required")) return "awaiting";
  return "not required";
}

// What the owner must do by when: their ack, or (action `owner`) leave.
std::string deadlineText(const json& notice, const RenderOptions& options) {
  if (const std::string ack_by = instantText(notice, "ack_deadline", options); !ack_by.empty())
    return "ack by " + ack_by;
  if (const std::string leave_by = instantText(notice, "owner_deadline", options); !leave_by.empty())
    return "leave by " + leave_by;
  return "-";
}

std::string downtimeText(const json& notice) {
  const json& seconds = member(notice, "expected_downtime_s");
  if (!seconds.is_number_integer()) return "-";
  return "~" + formatDuration(std::chrono::seconds(seconds.get<long long>()));
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto hex = [&out](unsigned value, int digits, const char* prefix) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%s%0*x", prefix, digits, value);
    out += buffer;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      switch (lead) {
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
          if (lead < 0x20 || lead == 0x7f) {
            hex(lead, 2, "\\x");
          } else {
            out += static_cast<char>(lead);
          }
      }
      ++i;
      continue;
    }
    // A whole, valid UTF-8 sequence is copied; anything else is escaped
    // byte by byte, so a cut sequence cannot swallow what follows it.
    const hostmaint::agent::Utf8Char c = hostmaint::agent::decodeUtf8At(text, i);
    const std::size_t length = c.length;
    const std::uint32_t value = c.value;
    if (length == 0) {
      hex(lead, 2, "\\x");
      ++i;
      continue;
    }
    if (value <= 0x9F) {
      hex(value, 4, "\\u");  // C1 control (0x80-0x9F)
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  return out;
}

std::string renderNotices(const json& status, const RenderOptions& options) {
  const auto domains = domainsWithNotices(status);
  if (domains.empty()) {
    const std::string phase = text(status, "phase", "?");
    return "no notices" + std::string(phase == "idle" ? " (no maintenance scheduled)" : "") + "\n";
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"DOMAIN", "REVISION", "STATUS", "ACTION", "DOWNTIME", "ACK", "DEADLINE"});
  for (const json* domain : domains) {
    const json& notice = member(*domain, "notice");
    std::string action = text(notice, "action", "none");
    if (flag(notice, "fallback_used")) action += " (fallback)";
    rows.push_back({text(*domain, "name", text(*domain, "uuid", "?")), text(notice, "revision", "?"),
                    text(notice, "status", "?"), action, downtimeText(notice), ackText(notice),
                    deadlineText(notice, options)});
  }
  std::string out = renderTable(rows, "");
  out += "\n";
  for (const json* domain : domains) {
    const json& notice = member(*domain, "notice");
    out += text(*domain, "name", "?") + ": revision " + text(notice, "revision", "?");
    const std::string issued = instantText(notice, "issued_at", options);
    if (!issued.empty()) out += ", issued " + issued;
    out += "\n  " + text(notice, "message") + "\n";
  }
  return out;
}

std::string renderNoticeSummary(const json& status, const RenderOptions& options) {
  const auto domains = domainsWithNotices(status);
  std::string line;
  if (domains.empty()) {
    line = "none";
  } else {
    std::uint64_t latest = 0;
    long long awaiting = 0, acknowledged = 0, cancelled = 0;
    std::optional<TimePoint> next_due;
    for (const json* domain : domains) {
      const json& notice = member(*domain, "notice");
      const json& revision = member(notice, "revision");
      if (revision.is_number_unsigned()) latest = std::max(latest, revision.get<std::uint64_t>());
      if (text(notice, "status") == "cancelled") {
        ++cancelled;
        continue;
      }
      if (!text(notice, "ack").empty()) {
        ++acknowledged;
      } else if (flag(notice, "ack_required")) {
        ++awaiting;
        TimePoint due;
        if (parseTimestamp(text(notice, "ack_deadline"), due) && (!next_due || due < *next_due))
          next_due = due;
      }
    }
    line = std::to_string(domains.size()) + " issued (latest revision " + std::to_string(latest) +
           ")";
    std::vector<std::string> parts;
    if (awaiting > 0)
      parts.push_back(std::to_string(awaiting) + " awaiting an ack" +
                      (next_due ? " (next due " + formatRelative(*next_due, options.now) + ")" : ""));
    if (acknowledged > 0) parts.push_back(std::to_string(acknowledged) + " acknowledged");
    if (cancelled > 0) parts.push_back(std::to_string(cancelled) + " cancelled");
    for (std::size_t i = 0; i < parts.size(); ++i) line += (i == 0 ? ": " : ", ") + parts[i];
  }
  const json& webhook = member(status, "notice_webhook");
  if (webhook.is_object()) {
    std::vector<std::string> trouble;
    if (number(webhook, "pending") > 0) trouble.push_back(text(webhook, "pending") + " pending");
    if (number(webhook, "dropped") > 0) trouble.push_back(text(webhook, "dropped") + " dropped");
    if (text(webhook, "state") == "failing") trouble.insert(trouble.begin(), "failing");
    if (!trouble.empty()) {
      line += "; webhook";
      for (std::size_t i = 0; i < trouble.size(); ++i) line += (i == 0 ? " " : ", ") + trouble[i];
    }
  }
  return line;
}

json noticesJson(const json& status) {
  json out = json::array();
  for (const json* domain : domainsWithNotices(status))
    out.push_back({{"uuid", member(*domain, "uuid")},
                   {"name", member(*domain, "name")},
                   {"notice", member(*domain, "notice")}});
  return out;
}

std::string renderProgressBar(double percent, int width) {
  const int inner = std::max(width - 2, 1);
  const double clamped = std::isfinite(percent) ? std::clamp(percent, 0.0, 100.0) : 0.0;
  const int filled = static_cast<int>(std::lround(clamped / 100.0 * inner));
  return "[" + std::string(filled, '#') + std::string(inner - filled, '.') + "]";
}

std::string formatBytes(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> units{"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  if (unit == 0 || value >= 100) {
    std::snprintf(buffer, sizeof buffer, "%.0f %s", value, units[unit]);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f %s", value, units[unit]);
  }
  return buffer;
}

std::vector<std::string> renderBlockers(const json& status) {
  std::vector<std::string> lines;
  const json& blockers = member(status, "blockers");
  if (!blockers.is_array()) return lines;
  for (const auto& blocker : blockers)
    lines.push_back(text(blocker, "subject", "?") + ": " + text(blocker, "reason", "(no reason given)"));
  return lines;
}

std::string renderStatus(const json& status, const RenderOptions& options) {
  std::vector<std::vector<std::string>> head;
  head.push_back({"host", text(status, "host", "(unknown)")});
  std::string phase = text(status, "phase", "(unknown)");
  const std::string session = text(status, "session_id");
  if (!session.empty()) phase += " (session " + session + ")";
  head.push_back({"phase", phase});
  head.push_back({"ready", flag(status, "ready") ? "yes" : "no"});
  const json& window = member(status, "window");
  if (window.is_object()) {
    head.push_back({"window", windowText(window, options)});
    head.push_back({"removal", flag(window, "removal") ? "yes: the host leaves for good" : "no"});
    const std::string reason = text(window, "reason");
    if (!reason.empty()) head.push_back({"reason", reason});
    if (flag(status, "overrun"))
      head.push_back({"overrun", "yes: the window ended with the host still draining (since " +
                                     instantText(status, "overrun_since", options) +
                                     "); nothing is forced, the drain continues"});
  } else {
    head.push_back({"window", "none scheduled"});
  }
  const json& hypervisor = member(status, "hypervisor");
  std::string hv = text(hypervisor, "uri", "?") + " (" + text(hypervisor, "connection", "unknown") + ")";
  const std::string hv_detail = text(hypervisor, "detail");
  if (!hv_detail.empty()) hv += ": " + hv_detail;
  head.push_back({"hypervisor", hv});
  // [fleet] (docs/fleet.md), so that a fleet unreachable is said even while
  // nothing waits for it.
  const json& fleet = member(status, "fleet");
  if (fleet.is_object()) head.push_back({"fleet", renderFleetLine(fleet, options)});
  // How the drain paces its live migrations, while it has run any.
  const json& scheduler = member(status, "scheduler");
  if (scheduler.is_object() && number(scheduler, "running") + number(scheduler, "capacity_bps") > 0) {
    std::string line = flag(scheduler, "adaptive") ? "adaptive, " : "fixed limits, ";
    line += std::to_string(static_cast<long long>(number(scheduler, "limit"))) + " at once";
    const double held = number(scheduler, "held");
    if (held > 0) line += ", " + std::to_string(static_cast<long long>(held)) + " held";
    const double capacity = number(scheduler, "capacity_bps");
    if (capacity > 0) line += "; link carried up to " + formatBytes(static_cast<std::uint64_t>(capacity)) + "/s";
    const std::string reason = text(scheduler, "reason");
    if (!reason.empty()) line += " (" + reason + ")";
    head.push_back({"migrations", line});
  }
  // While a maintenance is on, or notices are still shown from one.
  if (window.is_object() || !domainsWithNotices(status).empty())
    head.push_back({"notices", renderNoticeSummary(status, options)});
  const json& cordon = member(status, "cordon");
  if (cordon.is_object() && (flag(cordon, "active") || !member(cordon, "commands").empty())) {
    std::string line = flag(cordon, "active")
                           ? "yes: new domains are refused here (since " +
                                 instantText(cordon, "since", options) + ")"
                           : "no";
    const json& allowed = member(cordon, "allowed");
    if (allowed.is_array() && !allowed.empty()) {
      line += "; allowed:";
      for (const auto& entry : allowed) line += " " + text(entry, "domain", "?");
    }
    const json& commands = member(cordon, "commands");
    if (commands.is_array()) {
      for (const auto& run : commands)
        line += "; " + text(run, "which", "?") + " command " + text(run, "state", "?");
    }
    head.push_back({"cordoned", line});
  }
  const json& shutdown = member(status, "host_shutdown");
  if (shutdown.is_object()) {
    std::size_t total = 0, failed = 0;
    const json& entries = member(shutdown, "domains");
    if (entries.is_array()) {
      for (const auto& entry : entries) {
        ++total;
        const std::string result = text(entry, "result");
        if (result == "failed" || result == "restore-failed") ++failed;
      }
    }
    std::string line = text(shutdown, "state", "?") + " (started " +
                       instantText(shutdown, "started_at", options) + ", " + std::to_string(total) +
                       " domains" + (failed > 0 ? ", " + std::to_string(failed) + " failed" : "") +
                       ")";
    if (!member(shutdown, "came_back_at").is_null())
      line += "; came back " + instantText(shutdown, "came_back_at", options) +
              (flag(shutdown, "rebooted") ? " after a reboot" : " (hostmaintd restarted)");
    head.push_back({"host shutdown", line});
  }
  std::string out = renderTable(head, "");

  const auto blockers = renderBlockers(status);
  if (!blockers.empty()) {
    out += "\nblockers (" + std::to_string(blockers.size()) + "):\n";
    for (const auto& line : blockers) out += "  " + line + "\n";
  }

  const json& evidence = member(status, "evidence");
  if (evidence.is_array() && !evidence.empty()) {
    out += "\nevidence:\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& check : evidence)
      rows.push_back({flag(check, "ok") ? "ok" : "NOT OK", text(check, "check", "?"), text(check, "detail")});
    out += renderTable(rows, "  ");
  }

  const json& domains = domainsOf(status);
  out += "\ndomains (" + std::to_string(domains.size()) + ")";
  const auto counts = stageCounts(status);
  if (!counts.empty()) out += ": " + joinCounts(counts);
  out += "\n";
  if (!domains.empty()) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"NAME", "RUN STATE", "STAGE", "ACTION", "RESULT / DETAIL"});
    for (const auto& domain : domains)
      rows.push_back({text(domain, "name", text(domain, "uuid", "?")), text(domain, "run_state", "?"),
                      text(domain, "state", "?"), actionText(domain), outcomeText(domain, options)});
    out += renderTable(rows, "  ");
  }
  if (shutdown.is_object() && member(shutdown, "domains").is_array() &&
      !member(shutdown, "domains").empty()) {
    out += "\nhost shutdown:\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& entry : member(shutdown, "domains"))
      rows.push_back({text(entry, "name", "?"), text(entry, "action", "?"), text(entry, "result", "?"),
                      text(entry, "message")});
    out += renderTable(rows, "  ");
  }
  return out;
}

std::string renderPlanSummary(const json& status) {
  std::map<std::string, long long> by_action;
  long long without_action = 0;
  const json& domains = domainsOf(status);
  for (const auto& domain : domains) {
    const std::string action = text(domain, "action");
    if (action.empty()) {
      ++without_action;
    } else {
      ++by_action[action];
    }
  }
  std::string line = std::to_string(domains.size()) + " domain" + (domains.size() == 1 ? "" : "s");
  std::string parts;
  for (const auto& [action, count] : by_action)
    parts += (parts.empty() ? "" : ", ") + std::to_string(count) + " " + action;
  if (without_action > 0)
    parts += (parts.empty() ? "" : ", ") + std::to_string(without_action) + " without an action";
  if (!parts.empty()) line += ": " + parts;
  return line;
}

std::vector<std::string> renderWaitFrame(const json& status, const RenderOptions& options,
                                         std::chrono::seconds elapsed, std::size_t columns,
                                         std::size_t max_lines) {
  std::vector<std::string> lines;
  lines.push_back(text(status, "host", "host") + ": phase " + text(status, "phase", "?") +
                  ", ready " + (flag(status, "ready") ? "yes" : "no") + ", " +
                  settledSummary(status) + ", waiting " + formatDuration(elapsed));
  const auto counts = stageCounts(status);
  if (!counts.empty()) lines.push_back("  " + joinCounts(counts));

  const auto blockers = renderBlockers(status);
  // Blockers are what the operator acts on: they get their room first.
  const std::size_t blocker_room = blockers.empty() ? 0 : std::min(blockers.size(), std::size_t{8}) + 1;
  const std::size_t used = lines.size() + blocker_room;
  const std::size_t domain_room = max_lines > used ? max_lines - used : 0;

  std::vector<const json*> domains;
  for (const auto& domain : domainsOf(status)) domains.push_back(&domain);
  std::stable_sort(domains.begin(), domains.end(), [](const json* a, const json* b) {
    return stageRank(text(*a, "state")) < stageRank(text(*b, "state"));
  });
  std::vector<std::vector<std::string>> rows;
  for (const json* domain : domains)
    rows.push_back({text(*domain, "name", "?"), text(*domain, "state", "?"), actionText(*domain),
                    outcomeText(*domain, options)});
  if (rows.size() > domain_room) {
    const std::size_t shown = domain_room > 0 ? domain_room - 1 : 0;
    const std::size_t hidden = rows.size() - shown;
    rows.resize(shown);
    std::istringstream table(renderTable(rows, "  "));
    for (std::string line; std::getline(table, line);) lines.push_back(line);
    if (domain_room > 0) lines.push_back("  ... and " + std::to_string(hidden) + " more");
  } else {
    std::istringstream table(renderTable(rows, "  "));
    for (std::string line; std::getline(table, line);) lines.push_back(line);
  }

  if (!blockers.empty()) {
    lines.push_back("blockers:");
    const std::size_t shown = std::min(blockers.size(), std::size_t{8});
    for (std::size_t i = 0; i < shown; ++i) lines.push_back("  " + blockers[i]);
    if (blockers.size() > shown) lines.back() += " (+" + std::to_string(blockers.size() - shown) + " more)";
  }
  if (lines.size() > max_lines) lines.resize(max_lines);
  for (auto& line : lines) line = fitWidth(std::move(line), columns);
  return lines;
}

namespace {

std::string waitSummary(const json& status) {
  const json& blockers = member(status, "blockers");
  const std::size_t count = blockers.is_array() ? blockers.size() : 0;
  return "phase " + text(status, "phase", "?") + ", ready " + (flag(status, "ready") ? "yes" : "no") +
         ", " + settledSummary(status) + ", " + std::to_string(count) + " blocker" +
         (count == 1 ? "" : "s");
}

// What about a migration is worth a line in a log: its quarter of the way
// and its escalation. Not every percent: a log gets a handful of lines per
// migration, not hundreds.
std::string progressMilestone(const json& domain) {
  const json& progress = member(domain, "progress");
  if (!progress.is_object()) return {};
  const double percent = number(progress, "percent");
  const int quarter = std::isfinite(percent) ? static_cast<int>(std::clamp(percent, 0.0, 100.0) / 25) : 0;
  return std::to_string(quarter) + "|" + escalationText(progress);
}

}  // namespace

std::vector<std::string> renderWaitLines(const json& status, const json& previous,
                                         const RenderOptions& options) {
  std::vector<std::string> lines;
  const std::string clock = formatInstant(options.now, options.local_time).substr(11, 8);
  const std::string summary = waitSummary(status);

  std::map<std::string, const json*> before;
  for (const auto& domain : domainsOf(previous)) before[text(domain, "uuid", text(domain, "name"))] = &domain;
  for (const auto& domain : domainsOf(status)) {
    const auto found = before.find(text(domain, "uuid", text(domain, "name")));
    const std::string stage = text(domain, "state", "?");
    std::string from;
    if (found != before.end()) {
      const json& earlier = *found->second;
      const bool same_stage =
          text(earlier, "state") == stage && text(earlier, "result") == text(domain, "result");
      if (same_stage && progressMilestone(earlier) == progressMilestone(domain)) continue;
      if (!same_stage) from = text(earlier, "state", "?") + " -> ";
    } else if (!previous.is_null()) {
      from = "(new) ";
    }
    std::string line = "  " + text(domain, "name", "?") + ": " + from + stage;
    const std::string action = text(domain, "action");
    if (!action.empty()) line += " [" + actionText(domain) + "]";
    const std::string outcome = outcomeText(domain, options);
    if (!outcome.empty()) line += " " + outcome;
    lines.push_back(line);
  }
  // Nothing worth a line (a migration moved a few percent): say nothing.
  if (lines.empty() && !previous.is_null() && waitSummary(previous) == summary) return lines;
  lines.insert(lines.begin(), clock + " " + summary);
  return lines;
}

std::string renderRedraw(const std::vector<std::string>& drawn, const std::vector<std::string>& lines) {
  if (drawn == lines) return {};
  // Hide the cursor, go back to the first line drawn, overwrite each line in
  // place and erase only what is left of the old one behind it: the screen
  // is never blank between two frames, so nothing flickers.
  std::string out = "\x1b[?25l";
  if (!drawn.empty()) out += "\x1b[" + std::to_string(drawn.size()) + "F";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // A line that did not change is stepped over, not rewritten.
    if (i < drawn.size() && drawn[i] == lines[i]) {
      out += "\n";
      continue;
    }
    out += lines[i] + "\x1b[K\n";
  }
  // A shorter frame: clear the old frame's last lines.
  if (lines.size() < drawn.size()) out += "\x1b[J";
  out += "\x1b[?25h";
  return out;
}

}  // namespace hostmaint::ctl
