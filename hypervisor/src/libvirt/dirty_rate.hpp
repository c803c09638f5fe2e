// A running domain's memory dirty rate, measured by QEMU's page sampling
// (virDomainStartDirtyRateCalc), for the drain scheduler.
#pragma once

#include <atomic>
#include <string>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// Blocks about a second (the sampling period) plus libvirt's round trips.
DirtyRateReport measureDirtyRate(virConnectPtr conn, const std::string& uuid,
                                 const std::atomic<bool>& stopping);

}  // namespace hostmaint::hv::libvirt
