// Live migration of one domain, peer-to-peer, with the escalation ladder of
// MigrationTuning: a monitor thread reads the job statistics, raises the
// allowed downtime step by step, switches to post-copy when allowed, and
// aborts at the completion or progress timeout.
#pragma once

#include <chrono>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"

namespace hostmaint::hv::libvirt {

// QEMU's own default downtime limit: what every unmanaged `virsh migrate`
// gets, so the ladder starts there.
inline constexpr std::chrono::milliseconds kQemuDefaultDowntime{300};

// The allowed downtime at ladder step `step` (1..steps): from QEMU's default
// (or `max` when that is lower) up to `max` in even steps. Starting lower, as
// Nova does (max / steps), makes every migration iterate longer than an
// unmanaged one; the ladder is for the ones that do not converge.
std::chrono::milliseconds downtimeAtStep(std::chrono::milliseconds max, unsigned step,
                                         unsigned steps);

// Why a migration failed, from libvirt's error and whether our own
// connection to the source libvirtd is still alive.
FailureKind classifyMigrationFailure(int error_code, int error_domain, bool connection_alive);

// The scheduler's wishes for one migration (MigrationSteer), set on the
// owning thread and read by the migration's monitor thread.
struct SteerCell {
  std::atomic<bool> hold{false};
  std::atomic<bool> hurry{false};
};

// The bandwidth a held migration keeps (MiB/s): libvirt's smallest
// non-zero value, so it still moves and its stall timeout stays meaningful.
inline constexpr unsigned long kHeldBandwidthMiBs = 1;

struct LiveMigrationContext {
  std::function<void(const ActionProgress&)> progress;  // thread-safe; may be empty
  const std::atomic<bool>* stopping = nullptr;
  std::shared_ptr<const SteerCell> steer;  // may be null: never steered
};

// Runs to completion on the calling thread; the result names the domain.
ActionResult migrateLive(virConnectPtr conn, virDomainPtr dom, const ActionRequest& request,
                         const LiveMigrationContext& ctx);

// Watches a migration an earlier hostmaintd started (request.kind
// adopt_migration, with the tuning and request.already_running) until its
// job ends, continuing the ladder and the timeouts where they were.
struct AdoptedMigrationEnd {
  bool stopping = false;  // hostmaintd stops: the job still runs
  std::optional<std::string> abort_reason;  // aborted at a timeout
  bool stalled = false;                     // ... because no data moved (the link)
  std::vector<std::string> escalations;     // steps taken while watched here
};
AdoptedMigrationEnd watchAdoptedMigration(virDomainPtr dom, const ActionRequest& request,
                                          const LiveMigrationContext& ctx);

}  // namespace hostmaint::hv::libvirt
