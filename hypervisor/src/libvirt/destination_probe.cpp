#include "libvirt/destination_probe.hpp"

namespace hostmaint::hv::libvirt {

namespace {

std::string hostnameOf(virConnectPtr conn) {
  CString name{virConnectGetHostname(conn)};
  return name ? std::string(name.get()) : std::string();
}

std::string hostUuidOf(virConnectPtr conn) {
  CString caps{virConnectGetCapabilities(conn)};
  return caps ? hostUuidFromCapabilities(caps.get()) : std::string();
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

bool sameHost(const std::string& hostname_a, const std::function<std::string()>& uuid_a,
              const std::string& hostname_b, const std::function<std::string()>& uuid_b) {
  if (!hostname_a.empty() && !hostname_b.empty() && hostname_a != hostname_b) return false;
  const std::string a = uuid_a();
  const std::string b = a.empty() ? std::string() : uuid_b();
  if (!a.empty() && !b.empty()) return a == b;
  return !hostname_a.empty() && hostname_a == hostname_b;
}

DestinationReport probeDestination(const std::string& uri, virConnectPtr source) {
  DestinationReport report;
  report.uri = uri;
  Connection dest(virConnectOpen(uri.c_str()));
  if (!dest) {
    report.error = "cannot connect: " + lastError();
    return report;
  }
  report.hostname = hostnameOf(dest.get());
  if (source) {
    std::string uuid_there;
    const bool same = sameHost(
        report.hostname, [&] { return uuid_there = hostUuidOf(dest.get()); }, hostnameOf(source),
        [&] { return hostUuidOf(source); });
    if (same) {
      report.error = "it is this host (" + (report.hostname.empty() ? uuid_there : report.hostname) +
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
