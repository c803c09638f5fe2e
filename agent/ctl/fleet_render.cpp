#include "fleet_render.hpp"

#include <iomanip>
#include <sstream>

#include "hostmaint/agent/status_json.hpp"
#include "render_json.hpp"

namespace hostmaint::ctl {
namespace {

namespace fl = agent::fleet;
using nlohmann::json;

// Cells padded to `widths` (the last cell runs on), trailing blanks cut.
std::string row(const std::vector<int>& widths, const std::vector<std::string>& cells) {
  std::ostringstream out;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i < widths.size()) {
      out << std::left << std::setw(widths[i]) << printable(cells[i]) << ' ';
    } else {
      out << printable(cells[i]);
    }
  }
  std::string line = out.str();
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

void hostLines(const fl::FleetView& view, TimePoint now, std::vector<std::string>& lines) {
  static const std::vector<int> kWidths{16, 15, 5, 6, 9, 10};
  lines.push_back(row(kWidths, {"HOST", "PHASE", "SLOT", "READY", "PROGRESS", "DOMAIN", "NOTE"}));
  for (const auto& [name, record] : view.hosts) {
    std::string slot = "-";
    if (const auto held = view.holders.find(name); held != view.holders.end())
      slot = std::to_string(held->second.slot);
    std::string progress = record.phase == "idle" ? "-"
                                                  : std::to_string(record.domains_settled) + "/" +
                                                        std::to_string(record.domains);
    std::string note;
    if (record.waiting_for_slot) note = "waiting for a slot";
    if (!record.blockers.empty()) {
      if (!note.empty()) note += "; ";
      note += record.blockers.front();
    }
    if (record.updated_at != TimePoint{}) {
      if (!note.empty()) note += "; ";
      note += "updated " + formatRelative(record.updated_at, now);
    }
    lines.push_back(row(kWidths, {name, record.phase, slot, record.ready ? "yes" : "no", progress,
                                  record.failure_domain.empty() ? "-" : record.failure_domain,
                                  note}));
  }
  if (view.hosts.empty()) lines.push_back("(no host publishes a record)");
  // Slots whose holder publishes no record (its agent is gone; the lease
  // has not yet expired).
  for (const auto& [host, hold] : view.holders) {
    if (!view.hosts.contains(host))
      lines.push_back("slot " + std::to_string(hold.slot) + " held by " + printable(host) +
                      ", which publishes no record (its lease has not expired yet)");
  }
  lines.push_back("in maintenance: " + std::to_string(view.holders.size()) + " host(s)");
}

void scheduleLine(const fl::FleetView& view, std::vector<std::string>& lines) {
  if (!view.schedule) {
    lines.push_back("no rolling schedule");
    return;
  }
  const fl::RollingSchedule& schedule = *view.schedule;
  std::size_t done = 0;
  if (auto found = view.done.find(schedule.id); found != view.done.end()) done = found->second.size();
  std::string hosts = schedule.all ? "all hosts" : "";
  for (const std::string& host : schedule.hosts) hosts += (hosts.empty() ? "" : ",") + host;
  std::size_t total = schedule.all ? view.hosts.size() : schedule.hosts.size();
  lines.push_back("rolling schedule " + printable(schedule.id) + ": " + printable(hosts) +
                  ", at most " + std::to_string(schedule.max_concurrent) + " at once, " +
                  std::to_string(done) + "/" + std::to_string(total) + " done");
}

// Groups across hosts: impacted members against the limit, and where.
void groupLines(const fl::FleetView& view, std::vector<std::string>& lines) {
  const std::vector<agent::FleetGroup> groups = fl::groupsAcrossFleet(view);
  if (groups.empty()) {
    lines.push_back("no group has members in the fleet");
    return;
  }
  static const std::vector<int> kWidths{16, 9, 8, 8};
  lines.push_back(row(kWidths, {"GROUP", "IMPACTED", "MEMBERS", "IMPACTS", "WHERE"}));
  for (const agent::FleetGroup& group : groups) {
    std::string where;
    for (const agent::FleetGroupMember& member : group.impacted)
      where += (where.empty() ? "" : ", ") + member.host + ": " + member.domain;
    const std::string max =
        group.max_impacted_members > 0 ? std::to_string(group.max_impacted_members) : "?";
    lines.push_back(row(kWidths, {group.group, std::to_string(group.impacted.size()) + "/" + max,
                                  std::to_string(group.members),
                                  std::to_string(group.impacts_held),
                                  where.empty() ? "-" : where}));
  }
}

// The hosts offering themselves as migration destinations, and whether
// they take one now (the incoming count is every source's).
void peerLines(const fl::FleetView& view, std::vector<std::string>& lines) {
  std::vector<fl::PeerDestination> peers = fl::peerDestinations(view, "");
  std::erase_if(peers, [](const fl::PeerDestination& peer) { return peer.uri.empty(); });
  if (peers.empty()) {
    lines.push_back("no host offers itself as a migration destination");
    return;
  }
  static const std::vector<int> kWidths{16, 11, 9, 9, 15};
  lines.push_back(row(kWidths, {"PEER", "FREE", "INCOMING", "CORDONED", "PHASE", "NOTE"}));
  for (const fl::PeerDestination& peer : peers) {
    std::string note = peer.usable ? "takes migrations" : peer.why_not;
    if (peer.queued > 0) note += ", " + std::to_string(peer.queued) + " waiting in its queue";
    lines.push_back(row(kWidths, {peer.host,
                                  peer.free_memory_bytes ? formatBytes(*peer.free_memory_bytes)
                                                         : "-",
                                  std::to_string(peer.incoming) + "/" +
                                      std::to_string(peer.max_incoming),
                                  peer.cordoned ? "yes" : "no", peer.phase, note}));
  }
}

}  // namespace

std::string renderFleetLine(const json& fleet, const RenderOptions& options) {
  using doc::flag;
  using doc::member;
  using doc::text;
  std::string line = text(fleet, "name", "?") + " as " + text(fleet, "host", "?") + ": ";
  if (text(fleet, "state") == "ok") {
    line += "reachable";
  } else {
    line += "UNREACHABLE since " + doc::instantText(fleet, "since", options);
    const std::string error = text(fleet, "last_error");
    if (!error.empty()) line += " (" + error + ")";
  }
  const json& slot = member(fleet, "slot");
  if (slot.is_number_integer()) {
    line += "; holds slot " + std::to_string(slot.get<long long>());
  } else if (flag(fleet, "waiting_for_slot")) {
    line += "; waiting for a slot";
  }
  const json& hosts = member(fleet, "hosts");
  const json& busy = member(fleet, "hosts_in_maintenance");
  if (hosts.is_number_integer() && busy.is_number_integer()) {
    line += "; " + std::to_string(hosts.get<long long>()) + " hosts, " +
            std::to_string(busy.get<long long>()) + " in maintenance";
  }
  return line;
}

json fleetViewJson(const fl::FleetView& view, const std::string& fleet) {
  json hosts = json::array();
  for (const auto& [name, record] : view.hosts) {
    json entry = json::parse(fl::encodeHostRecord(record));
    entry["holds_slot"] = view.holders.contains(name);
    hosts.push_back(std::move(entry));
  }
  json slots = json::object();
  for (const auto& [index, host] : view.slots) slots[std::to_string(index)] = host;
  json schedule = view.schedule ? json::parse(fl::encodeSchedule(*view.schedule)) : json(nullptr);
  json done = json::object();
  for (const auto& [id, names] : view.done) done[id] = names;
  // The groups and peers in status.json's shape, rendered by the same code.
  agent::FleetStatus shaped;
  for (const fl::PeerDestination& peer : fl::peerDestinations(view, "")) {
    shaped.peers.push_back(fl::shownPeer(peer));
  }
  shaped.groups = fl::groupsAcrossFleet(view);
  json rendered = agent::fleetToJson(shaped);
  return json{{"fleet", fleet},
              {"hosts", hosts},
              {"slots", slots},
              {"hosts_in_maintenance", view.holders.size()},
              {"schedule", schedule},
              {"done", done},
              {"groups", std::move(rendered["groups"])},
              {"peers", std::move(rendered["peers"])},
              {"malformed", view.malformed}};
}

std::vector<std::string> renderFleetTable(const fl::FleetView& view, TimePoint now) {
  std::vector<std::string> lines;
  hostLines(view, now, lines);
  scheduleLine(view, lines);
  groupLines(view, lines);
  peerLines(view, lines);
  for (const std::string& bad : view.malformed) lines.push_back("malformed: " + printable(bad));
  return lines;
}

}  // namespace hostmaint::ctl
