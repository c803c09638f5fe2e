// What a candidate migration destination offers, read over its own libvirt
// connection. Blocking: runs on a worker thread.
#pragma once

#include <functional>
#include <string>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// The <host><uuid> of a capabilities document, or "" when absent.
std::string hostUuidFromCapabilities(const std::string& capabilities_xml);

// Whether two libvirt hosts are one, from their host names and, only when the
// names are equal or missing, their host UUIDs (read through `uuid_a` and
// `uuid_b`, "" when unknown). One host answers one name on every connection,
// so different names settle it; the UUID is what tells apart two hosts that
// share a name, and it is read last because reading it costs
// (see probeDestination).
bool sameHost(const std::string& hostname_a, const std::function<std::string()>& uuid_a,
              const std::string& hostname_b, const std::function<std::string()>& uuid_b);

// Connects to `uri` and reads its host name, free and total memory. A
// destination that is the source itself (sameHost) is reported unreachable,
// with that reason. The host UUID is read (virConnectGetCapabilities) only
// when the host names do not settle it: on a libvirtd whose QEMU capability
// cache is cold that call probes every installed emulator, 8.5 s on the lab,
// and the drain waits for the probe.
DestinationReport probeDestination(const std::string& uri, virConnectPtr source);

}  // namespace hostmaint::hv::libvirt
