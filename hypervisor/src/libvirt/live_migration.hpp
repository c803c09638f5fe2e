// Live migration of one domain, peer-to-peer, with the escalation ladder of
// MigrationTuning: a monitor thread reads the job statistics, raises the
// allowed downtime step by step, switches to post-copy when allowed, and
// aborts at the completion or progress timeout.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// The allowed downtime at ladder step `step` (1..steps): max × step / steps,
// so the first step asks for a short pause and the last allows the most
// (Nova's ladder, without its per-GiB delay scaling: the delay is per step).
std::chrono::milliseconds downtimeAtStep(std::chrono::milliseconds max, unsigned step,
                                         unsigned steps);

// Why a migration failed, from libvirt's error and whether our own
// connection to the source libvirtd is still alive.
FailureKind classifyMigrationFailure(int error_code, int error_domain, bool connection_alive);

struct LiveMigrationContext {
  std::function<void(const ActionProgress&)> progress;  // thread-safe; may be empty
  const std::atomic<bool>* stopping = nullptr;
};

// Runs to completion on the calling thread; the result names the domain.
ActionResult migrateLive(virConnectPtr conn, virDomainPtr dom, const ActionRequest& request,
                         const LiveMigrationContext& ctx);

}  // namespace hostmaint::hv::libvirt
