// Reads one domain's DomainInfo from libvirt (any thread).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

DomainRunState mapState(int libvirt_state);

// Owner and project from Nova's <instance> metadata as libvirt returns it
// (namespace prefixes stripped). Empty optionals when absent or unparsable.
struct NovaOwner {
  std::optional<std::string> owner;
  std::optional<std::string> project;
};
NovaOwner parseNovaOwner(const std::string& instance_xml);

// Everything the inventory holds about `dom`. Fields libvirt cannot report
// keep their defaults; a warning is logged for unexpected errors.
DomainInfo readDomain(virDomainPtr dom);

// The domain with this UUID, or nullopt when libvirt no longer knows it.
// Throws std::runtime_error when the lookup fails for another reason (a
// broken connection must not make a domain look gone).
std::optional<DomainInfo> readDomainByUuid(virConnectPtr conn, const std::string& uuid);

// Every domain on the connection. Throws std::runtime_error with libvirt's
// message when the list cannot be read.
std::vector<DomainInfo> readAllDomains(virConnectPtr conn);

}  // namespace hostmaint::hv::libvirt
