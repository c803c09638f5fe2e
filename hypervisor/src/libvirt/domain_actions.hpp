// The blocking bodies of the actions, run on worker threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "hostmaint/hypervisor/hypervisor.hpp"
#include "libvirt/libvirt_handles.hpp"
#include "libvirt/live_migration.hpp"

namespace hostmaint::hv::libvirt {

struct ActionContext {
  // Thread-safe: delivers progress to the owner's thread.
  std::function<void(const ActionProgress&)> progress;
  // Set when the hypervisor is being destroyed: polling loops give up.
  const std::atomic<bool>* stopping = nullptr;
  // Live migrations (and adopted ones): the scheduler's hold and hurry.
  std::shared_ptr<const SteerCell> steer;
};

// "managed-save", "shutdown", ... as used in messages.
std::string actionVerb(ActionKind kind);

// Runs the request to completion on the calling thread. Every failure comes
// back as a result whose message names the action, the domain and the cause.
ActionResult runAction(virConnectPtr conn, const ActionRequest& request, const ActionContext& ctx);

}  // namespace hostmaint::hv::libvirt
