#include "hostmaint/agent/fleet/fleet.hpp"

#include <algorithm>

#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::agent::fleet {
namespace {

using nlohmann::json;

json parseObject(const std::string& text, const char* what) {
  json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    throw EtcdFormatError(std::string(what) + " is not a JSON object");
  }
  return parsed;
}

std::optional<TimePoint> timeField(const json& object, const char* name) {
  const auto found = object.find(name);
  if (found == object.end() || found->is_null()) return std::nullopt;
  if (!found->is_string()) throw EtcdFormatError(std::string("'") + name + "' is not a time");
  auto parsed = parseTime(found->get<std::string>());
  if (!parsed) throw EtcdFormatError(std::string("'") + name + "' is not a time");
  return parsed;
}

json timeOrNull(const std::optional<TimePoint>& time) {
  return time ? json(formatTime(*time)) : json(nullptr);
}

template <typename T>
T field(const json& object, const char* name, T fallback) {
  const auto found = object.find(name);
  if (found == object.end() || found->is_null()) return fallback;
  try {
    return found->get<T>();
  } catch (const json::exception&) {
    throw EtcdFormatError(std::string("'") + name + "' has the wrong type");
  }
}

std::optional<unsigned> optionalIndex(const json& object, const char* name) {
  const auto found = object.find(name);
  if (found == object.end() || found->is_null()) return std::nullopt;
  if (!found->is_number_unsigned()) throw EtcdFormatError(std::string("'") + name + "' is not an index");
  return found->get<unsigned>();
}

std::optional<unsigned> parseIndex(std::string_view text) {
  if (text.empty() || text.size() > 6) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

json groupsJson(const std::map<std::string, GroupMembers>& groups) {
  json out = json::object();
  for (const auto& [name, members] : groups) {
    out[name] = {{"members", members.members},
                 {"impacted", members.impacted},
                 {"max_impacted_members", members.max_impacted}};
  }
  return out;
}

bool settled(DomainStage stage) {
  return stage == DomainStage::done || stage == DomainStage::left ||
         stage == DomainStage::restored;
}

}  // namespace

FleetKeys::FleetKeys(const std::string& prefix, const std::string& name)
    : base_(prefix + "/" + name + "/") {}
std::string FleetKeys::slot(unsigned index) const {
  return base_ + "slots/all/" + std::to_string(index);
}
std::string FleetKeys::domainSlot(const std::string& label, unsigned index) const {
  return base_ + "slots/domain/" + label + "/" + std::to_string(index);
}
std::string FleetKeys::holder(const std::string& host) const { return base_ + "holders/" + host; }
std::string FleetKeys::hostRecord(const std::string& host) const { return base_ + "hosts/" + host; }
std::string FleetKeys::schedule() const { return base_ + "schedule"; }
std::string FleetKeys::done(const std::string& schedule_id, const std::string& host) const {
  return base_ + "done/" + schedule_id + "/" + host;
}
std::string FleetKeys::groupImpact(const std::string& group, unsigned index) const {
  return base_ + "groups/" + group + "/impact/" + std::to_string(index);
}
std::string FleetKeys::incoming(const std::string& destination, const std::string& source,
                                const std::string& uuid) const {
  return incomingPrefix(destination) + source + "/" + uuid;
}
std::string FleetKeys::incomingPrefix(const std::string& destination) const {
  return base_ + "incoming/" + destination + "/";
}
std::string FleetKeys::incomingGuard(const std::string& destination) const {
  return base_ + "incoming_guard/" + destination;
}
std::string FleetKeys::incomingQueue(const std::string& destination, const std::string& source,
                                     const std::string& uuid) const {
  return incomingQueuePrefix(destination) + source + "/" + uuid;
}
std::string FleetKeys::incomingQueuePrefix(const std::string& destination) const {
  return base_ + "incoming_queue/" + destination + "/";
}

std::string encodeHostRecord(const HostRecord& record) {
  return json{{"host", record.host},
              {"phase", record.phase},
              {"ready", record.ready},
              {"session_id", record.session_id ? json(*record.session_id) : json(nullptr)},
              {"slot", record.slot ? json(*record.slot) : json(nullptr)},
              {"waiting_for_slot", record.waiting_for_slot},
              {"cordoned", record.cordoned},
              {"failure_domain", record.failure_domain},
              {"domains", record.domains},
              {"domains_settled", record.domains_settled},
              {"blockers", record.blockers},
              {"schedule_id", record.schedule_id ? json(*record.schedule_id) : json(nullptr)},
              {"updated_at", formatTime(record.updated_at)},
              {"groups", groupsJson(record.groups)},
              {"migration_uri", record.migration_uri},
              {"migrate_uri", record.migrate_uri},
              {"free_memory_bytes",
               record.free_memory_bytes ? json(*record.free_memory_bytes) : json(nullptr)},
              {"incoming", record.incoming},
              {"max_incoming", record.max_incoming}}
      .dump();
}

HostRecord decodeHostRecord(const std::string& text) {
  const json object = parseObject(text, "host record");
  HostRecord record;
  record.host = field<std::string>(object, "host", "");
  record.phase = field<std::string>(object, "phase", "idle");
  record.ready = field<bool>(object, "ready", false);
  if (auto session = field<std::string>(object, "session_id", ""); !session.empty())
    record.session_id = session;
  record.slot = optionalIndex(object, "slot");
  record.waiting_for_slot = field<bool>(object, "waiting_for_slot", false);
  record.cordoned = field<bool>(object, "cordoned", false);
  record.failure_domain = field<std::string>(object, "failure_domain", "");
  record.domains = field<unsigned>(object, "domains", 0);
  record.domains_settled = field<unsigned>(object, "domains_settled", 0);
  record.blockers = field<std::vector<std::string>>(object, "blockers", {});
  if (auto id = field<std::string>(object, "schedule_id", ""); !id.empty()) record.schedule_id = id;
  record.updated_at = timeField(object, "updated_at").value_or(TimePoint{});
  // Absent in the records of hosts that do not publish them yet.
  if (const auto groups = object.find("groups"); groups != object.end() && !groups->is_null()) {
    if (!groups->is_object()) throw EtcdFormatError("'groups' is not an object");
    for (const auto& [name, entry] : groups->items()) {
      if (!entry.is_object()) throw EtcdFormatError("group '" + name + "' is not an object");
      record.groups[name] = GroupMembers{field<std::vector<std::string>>(entry, "members", {}),
                                         field<std::vector<std::string>>(entry, "impacted", {}),
                                         field<unsigned>(entry, "max_impacted_members", 0)};
    }
  }
  record.migration_uri = field<std::string>(object, "migration_uri", "");
  record.migrate_uri = field<std::string>(object, "migrate_uri", "");
  if (const auto free = object.find("free_memory_bytes");
      free != object.end() && !free->is_null()) {
    if (!free->is_number_unsigned()) throw EtcdFormatError("'free_memory_bytes' is not a size");
    record.free_memory_bytes = free->get<std::uint64_t>();
  }
  record.incoming = field<unsigned>(object, "incoming", 0);
  record.max_incoming = field<unsigned>(object, "max_incoming", 0);
  return record;
}

HostRecord hostRecordFrom(const HostStatus& status, const std::string& host,
                          const std::string& failure_domain) {
  HostRecord record;
  record.host = host;
  record.phase = std::string(toString(status.phase));
  record.ready = status.ready;
  record.session_id = status.session_id;
  record.cordoned = status.cordon.active;
  record.failure_domain = failure_domain;
  if (status.phase != HostPhase::idle) {
    record.domains = static_cast<unsigned>(status.domains.size());
    record.domains_settled = static_cast<unsigned>(std::count_if(
        status.domains.begin(), status.domains.end(),
        [](const DomainStatus& domain) { return settled(domain.stage); }));
  }
  for (const Blocker& blocker : status.blockers) {
    if (record.blockers.size() == 5) break;
    record.blockers.push_back(blocker.subject + ": " + blocker.reason);
  }
  for (const DomainStatus& domain : status.domains) {
    if (domain.group.empty()) continue;
    GroupMembers& members = record.groups[domain.group];
    members.members.push_back(domain.name);
    if (domain.group_impacted) members.impacted.push_back(domain.name);
    if (domain.group_max_impacted > 0 &&
        (members.max_impacted == 0 || domain.group_max_impacted < members.max_impacted))
      members.max_impacted = domain.group_max_impacted;
  }
  if (status.fleet) {
    record.slot = status.fleet->slot;
    record.waiting_for_slot = status.fleet->waiting_for_slot;
    record.schedule_id = status.fleet->schedule_id;
  }
  record.updated_at = status.updated_at;
  return record;
}

bool RollingSchedule::includes(const std::string& host) const {
  return all || std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

std::string encodeSchedule(const RollingSchedule& schedule) {
  return json{{"id", schedule.id},
              {"all", schedule.all},
              {"hosts", schedule.hosts},
              {"max_concurrent", schedule.max_concurrent},
              {"window_start", timeOrNull(schedule.window_start)},
              {"window_end", timeOrNull(schedule.window_end)},
              {"reason", schedule.reason},
              {"created_by", schedule.created_by},
              {"created_at", formatTime(schedule.created_at)}}
      .dump();
}

RollingSchedule decodeSchedule(const std::string& text) {
  const json object = parseObject(text, "rolling schedule");
  RollingSchedule schedule;
  schedule.id = field<std::string>(object, "id", "");
  if (schedule.id.empty()) throw EtcdFormatError("rolling schedule has no id");
  schedule.all = field<bool>(object, "all", false);
  schedule.hosts = field<std::vector<std::string>>(object, "hosts", {});
  schedule.max_concurrent = field<unsigned>(object, "max_concurrent", 1);
  if (schedule.max_concurrent == 0) throw EtcdFormatError("rolling schedule allows 0 hosts at once");
  schedule.window_start = timeField(object, "window_start");
  schedule.window_end = timeField(object, "window_end");
  schedule.reason = field<std::string>(object, "reason", "");
  schedule.created_by = field<std::string>(object, "created_by", "");
  schedule.created_at = timeField(object, "created_at").value_or(TimePoint{});
  return schedule;
}

std::string encodeHold(const SlotHold& hold) {
  return json{{"slot", hold.slot},
              {"domain_slot", hold.domain_slot ? json(*hold.domain_slot) : json(nullptr)},
              {"failure_domain", hold.failure_domain},
              {"session_id", hold.session_id}}
      .dump();
}

SlotHold decodeHold(const std::string& text, std::int64_t lease) {
  const json object = parseObject(text, "slot holder");
  SlotHold hold;
  const std::optional<unsigned> slot = optionalIndex(object, "slot");
  if (!slot) throw EtcdFormatError("slot holder names no slot");
  hold.slot = *slot;
  hold.domain_slot = optionalIndex(object, "domain_slot");
  hold.failure_domain = field<std::string>(object, "failure_domain", "");
  hold.session_id = field<std::string>(object, "session_id", "");
  hold.lease = lease;
  return hold;
}

namespace {

struct PeerKey {
  std::string destination;
  std::string source;
  std::string uuid;
};

// {destination}/{source}/{uuid} (of incoming/ and incoming_queue/): host
// names have no '/'.
PeerKey parsePeerKey(std::string_view tail) {
  const std::size_t first = tail.find('/');
  const std::size_t second = first == std::string_view::npos ? first : tail.find('/', first + 1);
  if (second == std::string_view::npos) throw EtcdFormatError("not destination/source/uuid");
  return PeerKey{std::string(tail.substr(0, first)),
                 std::string(tail.substr(first + 1, second - first - 1)),
                 std::string(tail.substr(second + 1))};
}

}  // namespace

FleetView parseFleetView(const std::vector<KeyValue>& kvs, const FleetKeys& keys) {
  FleetView view;
  for (const KeyValue& kv : kvs) {
    if (!kv.key.starts_with(keys.base())) continue;
    const std::string_view rest = std::string_view(kv.key).substr(keys.base().size());
    try {
      if (rest.starts_with("hosts/")) {
        HostRecord record = decodeHostRecord(kv.value);
        record.host = std::string(rest.substr(6));
        view.hosts[record.host] = std::move(record);
      } else if (rest.starts_with("slots/all/")) {
        if (auto index = parseIndex(rest.substr(10))) view.slots[*index] = kv.value;
      } else if (rest.starts_with("slots/domain/")) {
        const std::string_view tail = rest.substr(13);
        const std::size_t slash = tail.rfind('/');
        if (slash == std::string_view::npos) throw EtcdFormatError("no slot index");
        if (auto index = parseIndex(tail.substr(slash + 1)))
          view.domain_slots[std::string(tail.substr(0, slash))][*index] = kv.value;
      } else if (rest.starts_with("holders/")) {
        view.holders[std::string(rest.substr(8))] = decodeHold(kv.value, kv.lease);
      } else if (rest == "schedule") {
        view.schedule = decodeSchedule(kv.value);
      } else if (rest.starts_with("groups/")) {
        const std::string_view tail = rest.substr(7);
        const std::size_t marker = tail.rfind("/impact/");
        if (marker == std::string_view::npos) throw EtcdFormatError("no impact index");
        const auto index = parseIndex(tail.substr(marker + 8));
        if (!index) throw EtcdFormatError("bad impact index");
        ImpactHold impact = decodeImpact(kv.value, kv.lease);
        impact.group = std::string(tail.substr(0, marker));
        impact.index = *index;
        view.impacts[impact.group][*index] = std::move(impact);
      } else if (rest.starts_with("incoming/")) {
        const PeerKey key = parsePeerKey(rest.substr(9));
        view.incoming.push_back(
            IncomingMigration{key.destination, key.source, key.uuid, kv.value, kv.lease});
      } else if (rest.starts_with("incoming_queue/")) {
        const PeerKey key = parsePeerKey(rest.substr(15));
        view.queued.push_back(QueuedMigration{key.destination, key.source, key.uuid, kv.value,
                                              kv.lease, kv.create_revision});
      } else if (rest.starts_with("done/")) {
        const std::string_view tail = rest.substr(5);
        const std::size_t slash = tail.find('/');
        if (slash == std::string_view::npos) throw EtcdFormatError("no host");
        view.done[std::string(tail.substr(0, slash))].insert(std::string(tail.substr(slash + 1)));
      }
    } catch (const EtcdFormatError& error) {
      view.malformed.push_back(kv.key + ": " + error.what());
    }
  }
  return view;
}

FleetView readFleetView(EtcdClient& etcd, const FleetKeys& keys) {
  return parseFleetView(etcd.range(keys.base(), true), keys);
}

namespace {

std::string holderList(const std::map<unsigned, std::string>& slots) {
  std::string out;
  for (const auto& [index, host] : slots) {
    if (!out.empty()) out += ", ";
    out += host;
  }
  return out;
}

std::optional<unsigned> firstFree(const std::map<unsigned, std::string>& taken, unsigned limit) {
  for (unsigned i = 0; i < limit; ++i) {
    if (!taken.contains(i)) return i;
  }
  return std::nullopt;
}

}  // namespace

ClaimOutcome claimSlot(EtcdClient& etcd, const FleetKeys& keys, const std::string& host,
                       const std::string& failure_domain, const std::string& session_id,
                       const SlotLimits& limits, std::int64_t lease) {
  constexpr int kAttempts = 3;
  ClaimOutcome outcome;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const FleetView view = readFleetView(etcd, keys);
    if (const auto held = view.holders.find(host); held != view.holders.end()) {
      outcome.hold = held->second;
      return outcome;
    }
    // Slots below the limit only: a host with a smaller limit than another's
    // counts every slot it may use, never more.
    std::map<unsigned, std::string> taken;
    for (const auto& [index, holder] : view.slots) {
      if (index < limits.max_concurrent) taken[index] = holder;
    }
    // Both limits are judged, and every one that is reached is named: the
    // failure domain's is the one an admin acts on when both are.
    std::vector<std::string> reached;
    const std::optional<unsigned> slot = firstFree(taken, limits.max_concurrent);
    if (!slot) {
      reached.push_back("all " + std::to_string(limits.max_concurrent) +
                        " maintenance slots of the fleet are held (by " + holderList(taken) + ")");
    }
    std::optional<unsigned> domain_slot;
    if (limits.max_per_domain > 0 && !failure_domain.empty()) {
      std::map<unsigned, std::string> domain_taken;
      if (auto found = view.domain_slots.find(failure_domain); found != view.domain_slots.end()) {
        for (const auto& [index, holder] : found->second) {
          if (index < limits.max_per_domain) domain_taken[index] = holder;
        }
      }
      domain_slot = firstFree(domain_taken, limits.max_per_domain);
      if (!domain_slot) {
        reached.push_back("all " + std::to_string(limits.max_per_domain) +
                          " maintenance slots of failure domain '" + failure_domain +
                          "' are held (by " + holderList(domain_taken) + ")");
      }
    }
    if (!reached.empty()) {
      outcome.why_not = reached.front();
      for (std::size_t i = 1; i < reached.size(); ++i) outcome.why_not += "; " + reached[i];
      return outcome;
    }
    SlotHold hold;
    hold.slot = *slot;
    hold.domain_slot = domain_slot;
    hold.failure_domain = domain_slot ? failure_domain : std::string();
    hold.session_id = session_id;
    hold.lease = lease;
    std::vector<Compare> compares{Compare::absent(keys.holder(host)),
                                  Compare::absent(keys.slot(*slot))};
    std::vector<Operation> puts{Put{keys.holder(host), encodeHold(hold), lease},
                                Put{keys.slot(*slot), host, lease}};
    if (domain_slot) {
      compares.push_back(Compare::absent(keys.domainSlot(failure_domain, *domain_slot)));
      puts.push_back(Put{keys.domainSlot(failure_domain, *domain_slot), host, lease});
    }
    if (etcd.txn(compares, puts, {}).succeeded) {
      outcome.hold = hold;
      return outcome;
    }
    outcome.why_not = "another host took the free slot first";
  }
  return outcome;
}

std::string encodeImpact(const ImpactHold& impact) {
  return json{{"host", impact.host}, {"uuid", impact.uuid}, {"name", impact.name}}.dump();
}

ImpactHold decodeImpact(const std::string& text, std::int64_t lease) {
  const json object = parseObject(text, "group impact");
  ImpactHold impact;
  impact.host = field<std::string>(object, "host", "");
  if (impact.host.empty()) throw EtcdFormatError("group impact names no host");
  impact.uuid = field<std::string>(object, "uuid", "");
  impact.name = field<std::string>(object, "name", "");
  impact.lease = lease;
  return impact;
}

std::optional<unsigned> freeImpactIndex(const FleetView& view, const std::string& group,
                                        unsigned limit) {
  const auto found = view.impacts.find(group);
  for (unsigned i = 0; i < limit; ++i) {
    if (found == view.impacts.end() || !found->second.contains(i)) return i;
  }
  return std::nullopt;
}

std::string impactsHeldText(const FleetView& view, const std::string& group, unsigned limit) {
  std::string holders;
  if (const auto found = view.impacts.find(group); found != view.impacts.end()) {
    for (const auto& [index, impact] : found->second) {
      if (index >= limit) continue;
      if (!holders.empty()) holders += ", ";
      holders += impact.host + " (" + (impact.name.empty() ? impact.uuid : impact.name) + ")";
    }
  }
  return "at most " + std::to_string(limit) + " member" + (limit == 1 ? "" : "s") + " of group '" +
         group + "' impacted across the fleet" +
         (holders.empty() ? std::string() : ", held by " + holders);
}

bool takeImpact(EtcdClient& etcd, const FleetKeys& keys, const ImpactHold& impact,
                std::int64_t lease) {
  const std::string key = keys.groupImpact(impact.group, impact.index);
  return etcd.txn({Compare::absent(key)}, {Put{key, encodeImpact(impact), lease}}, {}).succeeded;
}

void releaseImpact(EtcdClient& etcd, const FleetKeys& keys, const ImpactHold& impact) {
  const std::string key = keys.groupImpact(impact.group, impact.index);
  etcd.txn({Compare::valueIs(key, encodeImpact(impact))}, {Delete{key}}, {});
}

std::vector<FleetGroup> groupsAcrossFleet(const FleetView& view) {
  std::map<std::string, FleetGroup> groups;
  auto entry = [&](const std::string& name) -> FleetGroup& {
    FleetGroup& group = groups[name];
    group.group = name;
    return group;
  };
  for (const auto& [host, record] : view.hosts) {
    for (const auto& [name, members] : record.groups) {
      FleetGroup& group = entry(name);
      group.members += static_cast<unsigned>(members.members.size());
      for (const std::string& member : members.impacted)
        group.impacted.push_back(FleetGroupMember{host, member});
      if (members.max_impacted > 0 &&
          (group.max_impacted_members == 0 || members.max_impacted < group.max_impacted_members))
        group.max_impacted_members = members.max_impacted;
    }
  }
  for (const auto& [name, held] : view.impacts)
    entry(name).impacts_held = static_cast<unsigned>(held.size());
  std::vector<FleetGroup> out;
  for (auto& [name, group] : groups) out.push_back(std::move(group));
  return out;
}

std::optional<std::uint64_t> memAvailableBytes(std::string_view meminfo) {
  constexpr std::string_view kField = "MemAvailable:";
  std::size_t at = 0;
  while (at < meminfo.size()) {
    const std::size_t end = std::min(meminfo.find('\n', at), meminfo.size());
    std::string_view line = meminfo.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with(kField)) continue;
    line.remove_prefix(kField.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    std::uint64_t kib = 0;
    std::size_t digits = 0;
    while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9' && digits < 15) {
      kib = kib * 10 + static_cast<std::uint64_t>(line[digits] - '0');
      ++digits;
    }
    if (digits == 0 || line.substr(digits) != " kB") return std::nullopt;
    return kib * 1024;
  }
  return std::nullopt;
}

EtcdSettings etcdSettingsFrom(const FleetConfig& config) {
  EtcdSettings settings;
  settings.endpoints = config.endpoints;
  settings.ca_file = config.ca_file;
  settings.client_cert = config.client_cert;
  settings.client_key = config.client_key;
  settings.user = config.user;
  settings.password_file = config.password_file;
  settings.connect_timeout = config.connect_timeout;
  settings.request_timeout = config.request_timeout;
  return settings;
}

}  // namespace hostmaint::agent::fleet
