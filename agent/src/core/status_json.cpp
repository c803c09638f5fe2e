// The status document (docs/status-json.md) and the RFC 3339 times in it.
#include "hostmaint/agent/status_json.hpp"

#include <array>
#include <cstdio>
#include <string_view>

#include "hostmaint/agent/notice.hpp"
#include "json_text.hpp"

namespace hostmaint::agent {
namespace {

using nlohmann::json;

template <typename T, typename Render>
json orNull(const std::optional<T>& value, Render render) {
  return value ? json(render(*value)) : json(nullptr);
}

json windowToJson(const MaintenanceWindow& window) {
  return {
      {"start", formatTime(window.start)},
      {"end", formatTime(window.end)},
      {"removal", window.removal},
      {"reason", window.reason},
  };
}

json schedulerToJson(const SchedulerStatus& scheduler) {
  return {
      {"adaptive", scheduler.adaptive},
      {"limit", scheduler.limit},
      {"running", scheduler.running},
      {"held", scheduler.held},
      {"capacity_bps", scheduler.capacity_bps},
      {"reason", scheduler.reason},
  };
}

}  // namespace

namespace json_text {

// The one field list of a domain's entry: status.json and StatusJSON use
// the text, statusToJson() parses it (the tests compare it with an
// independent nlohmann rendering).
std::string domainText(const DomainStatus& domain, Layout layout, const std::string* notice_text) {
  auto time = [](TimePoint value) { return quote(formatTime(value)); };
  auto text = [](const std::string& value) { return quote(value); };
  auto textOrNull = [](const std::string& value) { return value.empty() ? null() : quote(value); };
  Object out(layout);
  auto progress = [&](const MigrationProgress& p) {
    return Object(out.inner())
        .add("data_total_bytes", number(p.data_total_bytes))
        .add("data_processed_bytes", number(p.data_processed_bytes))
        .add("data_remaining_bytes", number(p.data_remaining_bytes))
        .add("memory_dirty_rate_bps", number(p.memory_dirty_rate_bps))
        .add("throughput_bps", number(p.throughput_bps))
        .add("percent", number(p.percent))
        .add("downtime_limit_ms", number(p.downtime_limit_ms))
        .add("iteration", number(std::uint64_t{p.iteration}))
        .add("post_copy", boolean(p.post_copy))
        .add("escalation", textOrNull(p.escalation))
        .add("started_at", orNull(p.started_at, time))
        .add("held", boolean(p.held))
        .add("hurried", boolean(p.hurried))
        .text();
  };
  auto timeline = [&](const MigrationTimeline& t) {
    auto stamp = [](const std::optional<TimePoint>& at) {
      return at ? quote(formatTimeMs(*at)) : null();
    };
    return Object(out.inner())
        .add("queued_at", stamp(t.queued_at))
        .add("probed_at", stamp(t.probed_at))
        .add("started_at", stamp(t.started_at))
        .add("converged_at", stamp(t.converged_at))
        .add("finished_at", stamp(t.finished_at))
        .text();
  };
  return out.add("name", quote(domain.name))
      .add("uuid", quote(domain.uuid))
      .add("state", quote(toString(domain.stage)))
      .add("run_state", quote(hv::toString(domain.run_state)))
      .add("action", orNull(domain.action, [](MaintenanceAction a) { return quote(toString(a)); }))
      .add("fallback_used", boolean(domain.fallback_used))
      .add("result", quote(domain.result))
      .add("detail", quote(domain.detail))
      .add("group", textOrNull(domain.group))
      .add("priority", number(std::int64_t{domain.priority}))
      .add("owner", orNull(domain.owner, text))
      .add("project", orNull(domain.project, text))
      .add("ack_required", boolean(domain.ack_required))
      .add("ack", orNull(domain.ack, [](AckChoice c) { return quote(toString(c)); }))
      .add("ack_reason",
           domain.ack && !domain.ack_reason.empty() ? quote(domain.ack_reason) : null())
      .add("ack_deadline", orNull(domain.ack_deadline, time))
      .add("earliest_start", orNull(domain.earliest_start, time))
      .add("destination", orNull(domain.destination, text))
      .add("progress", orNull(domain.progress, progress))
      .add("action_started_at", orNull(domain.action_started_at, time))
      .add("action_finished_at", orNull(domain.action_finished_at, time))
      .add("policy_error", textOrNull(domain.policy_error))
      .add("memory_mib", number(std::uint64_t{domain.memory_kib / 1024}))
      .add("notice", orNull(domain.notice, [&](const DomainNotice& n) {
             return notice_text ? *notice_text : noticeText(n, out.inner());
           }))
      .add("timeline", orNull(domain.timeline, timeline))
      .add("predicted_duration_s",
           orNull(domain.predicted_duration_s, [](double seconds) { return number(seconds); }))
      .add("dirty_rate_bps",
           orNull(domain.dirty_rate_bps, [](std::uint64_t bps) { return number(bps); }))
      .text();
}

}  // namespace json_text

namespace {

json cordonToJson(const CordonStatus& cordon) {
  auto time = [](TimePoint t) { return formatTime(t); };
  auto text = [](const std::string& value) { return value; };
  json allowed = json::array();
  for (const CordonOverride& entry : cordon.allowed) {
    allowed.push_back({{"domain", entry.domain},
                       {"name", entry.name.empty() ? json(nullptr) : json(entry.name)},
                       {"uuid", entry.uuid.empty() ? json(nullptr) : json(entry.uuid)},
                       {"reason", entry.reason},
                       {"by", entry.by},
                       {"at", formatTime(entry.at)}});
  }
  json restoring = json::array();
  for (const auto& [name, uuid] : cordon.restoring) {
    restoring.push_back({{"name", name}, {"uuid", uuid}});
  }
  json commands = json::array();
  for (const CordonCommandStatus& run : cordon.commands) {
    commands.push_back({
        {"which", run.which},
        {"command", run.command},
        {"state", run.running ? "running" : run.ok() ? "ok" : "failed"},
        {"started_at", orNull(run.started_at, time)},
        {"finished_at", orNull(run.finished_at, time)},
        {"exit_status", orNull(run.exit_status, [](int v) { return v; })},
        {"signal", orNull(run.signal, [](int v) { return v; })},
        {"timed_out", run.timed_out},
        {"output", run.output},
        {"error", run.error.empty() ? json(nullptr) : json(run.error)},
    });
  }
  return {
      {"active", cordon.active},
      {"since", orNull(cordon.since, time)},
      {"allowed", std::move(allowed)},
      {"restoring", std::move(restoring)},
      {"file", cordon.file},
      {"file_error", orNull(cordon.file_error, text)},
      {"commands", std::move(commands)},
  };
}

json leftoversToJson(const std::vector<LeftoverCheck>& leftovers) {
  json out = json::array();
  for (const LeftoverCheck& check : leftovers) {
    out.push_back({{"name", check.name},
                   {"uuid", check.uuid},
                   {"destination", check.destination},
                   {"since", formatTime(check.since)},
                   {"attempts", check.attempts},
                   {"error", check.error.empty() ? json(nullptr) : json(check.error)},
                   {"next_attempt", check.next_attempt ? json(formatTime(*check.next_attempt))
                                                       : json(nullptr)}});
  }
  return out;
}

json hostShutdownToJson(const HostShutdownRecord& record) {
  auto time = [](TimePoint t) { return formatTime(t); };
  json domains = json::array();
  for (const HostShutdownDomain& domain : record.domains) {
    domains.push_back({{"name", domain.name},
                       {"uuid", domain.uuid},
                       {"action", toString(domain.action)},
                       {"priority", domain.priority},
                       {"result", toString(domain.result)},
                       {"message", domain.message},
                       {"acted_at", orNull(domain.acted_at, time)},
                       {"restored_at", orNull(domain.restored_at, time)}});
  }
  return {
      {"state", toString(record.phase)},
      {"requested_by", record.requested_by},
      {"started_at", formatTime(record.started_at)},
      {"finished_at", orNull(record.finished_at, time)},
      {"boot_id", record.boot_id},
      {"came_back_at", orNull(record.came_back_at, time)},
      {"rebooted", record.rebooted},
      {"restored_at", orNull(record.restored_at, time)},
      {"domains", std::move(domains)},
  };
}

constexpr std::array kAllStages{
    DomainStage::planned,  DomainStage::awaiting_ack,   DomainStage::waiting,
    DomainStage::acting,   DomainStage::done,           DomainStage::failed,
    DomainStage::blocked,  DomainStage::left,           DomainStage::restoring,
    DomainStage::restored, DomainStage::restore_failed,
};

// Reads exactly `width` digits at `pos`.
std::optional<int> digits(std::string_view text, std::size_t& pos, std::size_t width) {
  if (pos + width > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < width; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  pos += width;
  return value;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

nlohmann::json fleetToJson(const FleetStatus& fleet) {
  auto time = [](TimePoint t) { return formatTime(t); };
  json impacts = json::array();
  for (const FleetImpact& impact : fleet.impacts) {
    impacts.push_back(
        {{"group", impact.group}, {"index", impact.index}, {"domain", impact.domain}});
  }
  json peers = json::array();
  for (const FleetPeer& peer : fleet.peers) {
    peers.push_back({{"host", peer.host},
                     {"uri", peer.uri},
                     {"free_memory_bytes",
                      orNull(peer.free_memory_bytes, [](std::uint64_t b) { return b; })},
                     {"incoming", peer.incoming},
                     {"max_incoming", peer.max_incoming},
                     {"queued", peer.queued},
                     {"usable", peer.usable},
                     {"why_not", peer.usable ? json(nullptr) : json(peer.why_not)},
                     {"cordoned", peer.cordoned},
                     {"phase", peer.phase}});
  }
  json groups = json::array();
  for (const FleetGroup& group : fleet.groups) {
    json impacted = json::array();
    for (const FleetGroupMember& member : group.impacted)
      impacted.push_back({{"host", member.host}, {"domain", member.domain}});
    groups.push_back({{"group", group.group},
                      {"members", group.members},
                      {"max_impacted_members", group.max_impacted_members > 0
                                                   ? json(group.max_impacted_members)
                                                   : json(nullptr)},
                      {"impacted", impacted},
                      {"impacts_held", group.impacts_held}});
  }
  return {
      {"name", fleet.name},
      {"host", fleet.host},
      {"state", fleet.reachable ? "ok" : "unreachable"},
      {"endpoint", fleet.endpoint},
      {"since", orNull(fleet.since, time)},
      {"last_error", orNull(fleet.last_error, [](const std::string& e) { return e; })},
      {"slot", orNull(fleet.slot, [](unsigned slot) { return slot; })},
      {"waiting_for_slot", fleet.waiting_for_slot},
      {"max_concurrent", fleet.max_concurrent},
      {"hosts", fleet.hosts},
      {"hosts_in_maintenance", fleet.hosts_in_maintenance},
      {"schedule_id", orNull(fleet.schedule_id, [](const std::string& id) { return id; })},
      {"impacts", impacts},
      {"peers", peers},
      {"groups", groups},
  };
}

namespace {

// The document without its domains ("domains" is an empty array) but with
// their counts: statusToJson() adds the domains, StatusRenderer splices in
// their cached renderings.
json statusDocument(const HostStatus& status) {
  json blockers = json::array();
  for (const Blocker& blocker : status.blockers) {
    blockers.push_back({{"subject", blocker.subject}, {"reason", blocker.reason}});
  }
  json evidence = json::array();
  for (const hv::EvidenceCheck& check : status.evidence) {
    evidence.push_back({{"check", check.name}, {"ok", check.ok}, {"detail", check.detail}});
  }
  std::array<int, kAllStages.size()> stage_counts{};
  for (const DomainStatus& domain : status.domains) {
    for (std::size_t i = 0; i < kAllStages.size(); ++i) {
      if (kAllStages[i] == domain.stage) ++stage_counts[i];
    }
  }
  json counts = json::object();
  for (std::size_t i = 0; i < kAllStages.size(); ++i)
    counts[std::string(toString(kAllStages[i]))] = stage_counts[i];
  json domains = json::array();
  json document = {
      {"schema_version", kStatusSchemaVersion},
      {"generation", status.generation},
      {"updated_at", formatTime(status.updated_at)},
      {"host", status.host},
      {"phase", toString(status.phase)},
      {"ready", status.ready},
      {"session_id", orNull(status.session_id, [](const std::string& id) { return id; })},
      {"window", orNull(status.window, windowToJson)},
      {"overrun", status.overrun},
      {"overrun_since", orNull(status.overrun_since, [](TimePoint t) { return formatTime(t); })},
      {"blockers", std::move(blockers)},
      {"evidence", std::move(evidence)},
      {"hypervisor",
       {
           {"uri", status.hypervisor},
           {"connection", hv::toString(status.hypervisor_connection)},
           {"detail", status.hypervisor_detail},
       }},
      {"counts", std::move(counts)},
      {"domains", std::move(domains)},
      {"migration_throughput_bps", status.migration_throughput_bps},
      {"cordon", cordonToJson(status.cordon)},
      {"host_shutdown", orNull(status.host_shutdown, hostShutdownToJson)},
      {"leftovers", leftoversToJson(status.leftovers)},
      {"scheduler", orNull(status.scheduler, schedulerToJson)},
  };
  if (status.dbus) {
    const BusHealth& bus = *status.dbus;
    document["dbus"] = {
        {"connected", bus.connected},
        {"since", orNull(bus.since, [](TimePoint t) { return formatTime(t); })},
        {"last_error", orNull(bus.last_error, [](const std::string& e) { return e; })},
    };
  }
  if (status.controller) {
    const ControllerHealth& health = *status.controller;
    auto time = [](TimePoint t) { return formatTime(t); };
    document["controller"] = {
        {"state", health.consecutive_failures == 0 ? "ok" : "failing"},
        {"consecutive_failures", health.consecutive_failures},
        {"last_success", orNull(health.last_success, time)},
        {"last_failure", orNull(health.last_failure, time)},
        {"last_error", orNull(health.last_error, [](const std::string& e) { return e; })},
    };
  }
  if (status.fleet) document["fleet"] = fleetToJson(*status.fleet);
  if (status.notice_webhook) {
    const NoticeWebhookHealth& webhook = *status.notice_webhook;
    auto time = [](TimePoint t) { return formatTime(t); };
    document["notice_webhook"] = {
        {"url", webhook.url},
        {"state", webhook.consecutive_failures == 0 ? "ok" : "failing"},
        {"pending", webhook.pending},
        {"delivered", webhook.delivered},
        {"dropped", webhook.dropped},
        {"consecutive_failures", webhook.consecutive_failures},
        {"last_success", orNull(webhook.last_success, time)},
        {"last_failure", orNull(webhook.last_failure, time)},
        {"last_error", orNull(webhook.last_error, [](const std::string& e) { return e; })},
    };
  }
  return document;
}

// Where a top-level key's value starts in a document dumped with indent 2:
// a newline, two spaces and the quoted key. A string value cannot hold a
// raw newline (it is escaped), so this is the key and nothing else.
constexpr std::string_view kEmptyDomains = "\n  \"domains\": []";
constexpr std::string_view kElementIndent = "    ";  // an element of a top-level array

}  // namespace

json statusToJson(const HostStatus& status) {
  json document = statusDocument(status);
  json& domains = document["domains"];
  for (const DomainStatus& domain : status.domains)
    domains.push_back(json::parse(json_text::domainText(domain, {})));
  return document;
}

std::string StatusRenderer::render(const HostStatus& status) {
  std::string text = statusDocument(status).dump(2);
  if (status.domains.empty()) {
    domains_.clear();
    return text;
  }
  const std::size_t at = text.find(kEmptyDomains);
  if (at == std::string::npos) return statusToJson(status).dump(2);  // cannot happen
  std::unordered_map<std::string, Domain> kept;
  kept.reserve(status.domains.size());
  std::size_t size = 0;
  std::vector<const std::string*> parts;
  parts.reserve(status.domains.size());
  for (const DomainStatus& domain : status.domains) {
    auto cached = domains_.find(domain.uuid);
    Domain entry;
    if (cached != domains_.end() && cached->second.status == domain) {
      entry = std::move(cached->second);
    } else {
      entry.status = domain;
      // An element of the top-level "domains": two levels deep, its notice
      // three, as the ledger lays it out.
      const std::string* notice =
          domain.notice ? &notices_->indented(domain.uuid, *domain.notice) : nullptr;
      entry.text = std::string(kElementIndent) + json_text::domainText(domain, {2, 2}, notice);
    }
    auto [placed, fresh] = kept.insert_or_assign(domain.uuid, std::move(entry));
    // Two domains with one UUID (never from the engine): each is rendered.
    if (!fresh) return statusToJson(status).dump(2);
    parts.push_back(&placed->second.text);
    size += placed->second.text.size() + 2;
  }
  domains_ = std::move(kept);
  const std::size_t brackets = at + kEmptyDomains.size() - 2;  // the "[]"
  std::string out;
  out.reserve(text.size() + size + 8);
  out.append(text, 0, brackets);
  out += "[\n";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += ",\n";
    out += *parts[i];
  }
  out += "\n  ]";
  out.append(text, brackets + 2, std::string::npos);
  return out;
}

std::string formatTimeMs(TimePoint time) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(time.time_since_epoch()).count() % 1000;
  std::string text = formatTime(time);  // ...SSZ
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(ms < 0 ? ms + 1000 : ms));
  text.pop_back();
  return text + fraction;
}

std::string formatTime(TimePoint time) {
  using namespace std::chrono;
  auto seconds_since_epoch = floor<seconds>(time);
  auto day = floor<days>(seconds_since_epoch);
  year_month_day date{day};
  hh_mm_ss clock{seconds_since_epoch - day};
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02dZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(clock.hours().count()),
                static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()));
  return buffer;
}

std::optional<TimePoint> parseTime(std::string_view text) {
  using namespace std::chrono;
  std::size_t pos = 0;
  auto year = digits(text, pos, 4);
  if (!year || !expect(text, pos, '-')) return std::nullopt;
  // Outside these years the conversion to nanoseconds below would overflow.
  if (*year < kMinTimeYear || *year > kMaxTimeYear) return std::nullopt;
  auto month = digits(text, pos, 2);
  if (!month || !expect(text, pos, '-')) return std::nullopt;
  auto day = digits(text, pos, 2);
  if (!day) return std::nullopt;
  // RFC 3339 allows a space or lowercase t for readability.
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ')) {
    return std::nullopt;
  }
  ++pos;
  auto hour = digits(text, pos, 2);
  if (!hour || !expect(text, pos, ':')) return std::nullopt;
  auto minute = digits(text, pos, 2);
  if (!minute) return std::nullopt;
  int second = 0;
  nanoseconds fraction{0};
  if (expect(text, pos, ':')) {
    auto parsed = digits(text, pos, 2);
    if (!parsed) return std::nullopt;
    second = *parsed;
    if (expect(text, pos, '.')) {
      std::size_t start = pos;
      std::int64_t nanos = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        if (pos - start < 9) nanos = nanos * 10 + (text[pos] - '0');
        ++pos;
      }
      if (pos == start) return std::nullopt;
      for (std::size_t i = pos - start; i < 9; ++i) nanos *= 10;
      fraction = nanoseconds(nanos);
    }
  }
  // Leap seconds (:60) are rejected: the clocks we compare with never show them.
  if (*hour > 23 || *minute > 59 || second > 59) return std::nullopt;
  year_month_day date{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                      std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  // Nanoseconds in 64 bits end in 2262; a later year would wrap around.
  // Times from outside end before 2200, as on D-Bus (docs/dbus-api.md).
  if (*year >= 2200) return std::nullopt;

  minutes offset{0};
  if (pos < text.size()) {
    char sign = text[pos++];
    if (sign == 'Z' || sign == 'z') {
      // UTC
    } else if (sign == '+' || sign == '-') {
      auto offset_hours = digits(text, pos, 2);
      if (!offset_hours) return std::nullopt;
      expect(text, pos, ':');  // "+0200" is common in ISO 8601
      auto offset_minutes = digits(text, pos, 2);
      if (!offset_minutes || *offset_hours > 23 || *offset_minutes > 59) return std::nullopt;
      offset = hours(*offset_hours) + minutes(*offset_minutes);
      if (sign == '-') offset = -offset;
    } else {
      return std::nullopt;
    }
    if (pos != text.size()) return std::nullopt;
  }

  auto local = sys_days(date) + hours(*hour) + minutes(*minute) + seconds(second);
  return time_point_cast<Clock::duration>(local - offset + fraction);
}

}  // namespace hostmaint::agent
