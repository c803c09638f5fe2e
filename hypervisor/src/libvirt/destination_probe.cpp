#include "libvirt/destination_probe.hpp"

namespace hostmaint::hv::libvirt {

namespace {

struct HostIdentity {
  std::string hostname;
  std::string uuid;
};

HostIdentity identityOf(virConnectPtr conn) {
  HostIdentity identity;
  if (CString name{virConnectGetHostname(conn)}) identity.hostname = name.get();
  if (CString caps{virConnectGetCapabilities(conn)}) {
    identity.uuid = hostUuidFromCapabilities(caps.get());
  }
  return identity;
}

}  // namespace

std::string hostUuidFromCapabilities(const std::string& capabilities_xml) {
  const auto host = capabilities_xml.find("<host>");
  if (host == std::string::npos) return {};
  const auto open = capabilities_xml.find("<uuid>", host);
  const auto host_end = capabilities_xml.find("</host>", host);
  if (open == std::string::npos || (host_end != std::string::npos && open > host_end)) return {};
  const auto begin = open + std::string_view("<uuid>").size();
  const auto close = capabilities_xml.find("</uuid>", begin);
  if (close == std::string::npos) return {};
  return capabilities_xml.substr(begin, close - begin);
}

DestinationReport probeDestination(const std::string& uri, virConnectPtr source) {
  DestinationReport report;
  report.uri = uri;
  Connection dest(virConnectOpen(uri.c_str()));
  if (!dest) {
    report.error = "cannot connect: " + lastError();
    return report;
  }
  const HostIdentity there = identityOf(dest.get());
  report.hostname = there.hostname;
  if (source) {
    const HostIdentity here = identityOf(source);
    const bool same = !there.uuid.empty() && !here.uuid.empty()
                          ? there.uuid == here.uuid
                          : !there.hostname.empty() && there.hostname == here.hostname;
    if (same) {
      report.error = "it is this host (" + (there.hostname.empty() ? there.uuid : there.hostname) +
                     "); a host cannot be drained onto itself";
      return report;
    }
  }
  const unsigned long long free_bytes = virNodeGetFreeMemory(dest.get());
  virNodeInfo info{};
  if (free_bytes == 0 || virNodeGetInfo(dest.get(), &info) < 0) {
    report.error = "cannot read its memory: " + lastError();
    return report;
  }
  report.free_memory_bytes = free_bytes;
  report.total_memory_bytes = static_cast<std::uint64_t>(info.memory) * 1024;
  report.reachable = true;
  return report;
}

}  // namespace hostmaint::hv::libvirt
