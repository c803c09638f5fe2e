// Where a domain is defined after its migration failed or was interrupted,
// and making it one place. Blocking: runs on a worker thread.
#pragma once

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// Looks the domain up by UUID here (`source`) and on `destination_uri`
// (a connection of its own) and settles it (DefinitionOutcome): a shut-off
// definition there goes when the domain is still defined here; a definition
// here goes when it runs there. Nothing running is ever touched.
DefinitionSettled settleDefinition(virConnectPtr source, const std::string& uuid,
                                   const std::string& destination_uri);

}  // namespace hostmaint::hv::libvirt
