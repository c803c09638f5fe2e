// What a candidate migration destination offers, read over its own libvirt
// connection. Blocking: runs on a worker thread.
#pragma once

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// The <host><uuid> of a capabilities document, or "" when absent.
std::string hostUuidFromCapabilities(const std::string& capabilities_xml);

// Connects to `uri` and reads its host name, free and total memory. A
// destination that is the source itself (same host UUID, or same host name
// when a UUID is missing) is reported unreachable, with that reason.
DestinationReport probeDestination(const std::string& uri, virConnectPtr source);

}  // namespace hostmaint::hv::libvirt
