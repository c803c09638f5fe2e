#include "libvirt/domain_reader.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <pugixml.hpp>
#include <stdexcept>

namespace hostmaint::hv::libvirt {

namespace {

constexpr std::array kNovaNamespaces = {
    "http://openstack.org/xmlns/libvirt/nova/1.1",
    "http://openstack.org/xmlns/libvirt/nova/1.0",
    "http://openstack.org/xmlns/libvirt/nova/1.2",
};

// Metadata element in `ns`, or nullopt when the domain has none. libvirt
// returns it with the namespace prefix stripped.
std::optional<std::string> metadata(virDomainPtr dom, const char* ns, const char* domain_name) {
  CString xml(virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, ns, VIR_DOMAIN_AFFECT_CURRENT));
  if (xml) return std::string(xml.get());
  // A domain that just migrated away or was undefined is not worth a
  // warning: the caller finds it gone.
  const int code = lastErrorCode();
  if (code != VIR_ERR_NO_DOMAIN_METADATA && code != VIR_ERR_NO_DOMAIN)
    spdlog::warn("cannot read metadata {} of domain '{}': {}", ns, domain_name, lastError());
  return std::nullopt;
}

}  // namespace

DomainRunState mapState(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
      return DomainRunState::running;
    case VIR_DOMAIN_PAUSED: return DomainRunState::paused;
    case VIR_DOMAIN_SHUTDOWN: return DomainRunState::shutting_down;
    case VIR_DOMAIN_SHUTOFF: return DomainRunState::shutoff;
    case VIR_DOMAIN_CRASHED: return DomainRunState::crashed;
    case VIR_DOMAIN_PMSUSPENDED: return DomainRunState::pmsuspended;
    default: return DomainRunState::unknown;
  }
}

NovaOwner parseNovaOwner(const std::string& instance_xml) {
  NovaOwner out;
  pugi::xml_document doc;
  if (!doc.load_string(instance_xml.c_str())) return out;
  const pugi::xml_node owner = doc.child("instance").child("owner");
  if (auto user = owner.child("user"); user && *user.child_value())
    out.owner = user.child_value();
  if (auto project = owner.child("project"); project && *project.child_value())
    out.project = project.child_value();
  return out;
}

DomainInfo readDomain(virDomainPtr dom) {
  DomainInfo info;
  std::array<char, VIR_UUID_STRING_BUFLEN> uuid{};
  if (virDomainGetUUIDString(dom, uuid.data()) == 0) info.uuid = uuid.data();
  if (const char* name = virDomainGetName(dom)) info.name = name;

  int state = 0, reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) == 0)
    info.state = mapState(state);
  else if (lastErrorCode() != VIR_ERR_NO_DOMAIN)
    spdlog::warn("cannot read the state of domain '{}': {}", info.name, lastError());

  virDomainInfo basic{};
  if (virDomainGetInfo(dom, &basic) == 0) {
    info.memory_kib = basic.memory;
    info.max_memory_kib = basic.maxMem;
    info.vcpus = basic.nrVirtCpu;
  }
  info.persistent = virDomainIsPersistent(dom) == 1;
  int autostart = 0;
  info.autostart = virDomainGetAutostart(dom, &autostart) == 0 && autostart != 0;
  info.has_managed_save = virDomainHasManagedSaveImage(dom, 0) == 1;
  virDomainJobInfo job{};
  info.job_active = virDomainGetJobInfo(dom, &job) == 0 && job.type != VIR_DOMAIN_JOB_NONE;

  for (const char* ns : kNovaNamespaces) {
    if (auto xml = metadata(dom, ns, info.name.c_str())) {
      auto nova = parseNovaOwner(*xml);
      info.owner = std::move(nova.owner);
      info.project = std::move(nova.project);
      break;
    }
  }
  info.policy_xml = metadata(dom, std::string(kPolicyNamespace).c_str(), info.name.c_str());
  return info;
}

std::optional<DomainInfo> readDomainByUuid(virConnectPtr conn, const std::string& uuid) {
  Domain dom(virDomainLookupByUUIDString(conn, uuid.c_str()));
  if (!dom) {
    if (lastErrorCode() == VIR_ERR_NO_DOMAIN) return std::nullopt;
    throw std::runtime_error("cannot look up domain " + uuid + ": " + lastError());
  }
  DomainInfo info = readDomain(dom.get());
  // A domain that migrates away or is undefined while it is read gives a
  // state from before and errors after: what was read is stale, not news.
  int state = 0, reason = 0;
  if (virDomainGetState(dom.get(), &state, &reason, 0) < 0 && lastErrorCode() == VIR_ERR_NO_DOMAIN)
    return std::nullopt;
  return info;
}

std::vector<DomainInfo> readAllDomains(virConnectPtr conn) {
  virDomainPtr* list = nullptr;
  const int n = virConnectListAllDomains(conn, &list, 0);
  if (n < 0) throw std::runtime_error("cannot list domains: " + lastError());
  std::vector<Domain> owned;
  for (int i = 0; i < n; ++i) owned.emplace_back(list[i]);
  free(list);  // NOLINT: the array is malloc'ed by libvirt; its entries are owned above
  std::vector<DomainInfo> out;
  out.reserve(owned.size());
  for (const auto& dom : owned) out.push_back(readDomain(dom.get()));
  return out;
}

}  // namespace hostmaint::hv::libvirt
