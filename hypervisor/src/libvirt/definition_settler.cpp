#include "libvirt/definition_settler.hpp"

namespace hostmaint::hv::libvirt {

namespace {

// Removes only the definition: the disks are shared with the other host's
// copy, so storage, and the NVRAM file the other host may use, stay.
constexpr unsigned kUndefineFlags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                    VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                                    VIR_DOMAIN_UNDEFINE_KEEP_NVRAM;

struct Lookup {
  Domain domain;    // null when not defined
  bool active = false;
  std::string error;  // set when the host could not say
};

Lookup lookUp(virConnectPtr conn, const std::string& uuid, const std::string& where) {
  Lookup found;
  found.domain = Domain(virDomainLookupByUUIDString(conn, uuid.c_str()));
  if (!found.domain) {
    if (lastErrorCode() != VIR_ERR_NO_DOMAIN)
      found.error = "cannot look it up on " + where + ": " + lastError();
    return found;
  }
  const int active = virDomainIsActive(found.domain.get());
  if (active < 0) {
    found.error = "cannot read its state on " + where + ": " + lastError();
    return found;
  }
  found.active = active == 1;
  return found;
}

DefinitionSettled settled(DefinitionOutcome outcome, std::string message) {
  return DefinitionSettled{outcome, std::move(message)};
}

}  // namespace

DefinitionSettled settleDefinition(virConnectPtr source, const std::string& uuid,
                                   const std::string& destination_uri) {
  if (!source) return settled(DefinitionOutcome::failed, "not connected to this host's libvirt");
  Connection dest(virConnectOpen(destination_uri.c_str()));
  if (!dest)
    return settled(DefinitionOutcome::failed,
                   "cannot connect to " + destination_uri + ": " + lastError());
  Lookup there = lookUp(dest.get(), uuid, destination_uri);
  if (!there.error.empty()) return settled(DefinitionOutcome::failed, there.error);
  if (!there.domain) return settled(DefinitionOutcome::not_there, "not defined on " + destination_uri);
  Lookup here = lookUp(source, uuid, "this host");
  if (!here.error.empty()) return settled(DefinitionOutcome::failed, here.error);

  if (there.active) {
    if (here.domain && here.active)
      return settled(DefinitionOutcome::runs_on_both,
                     "running on " + destination_uri + " and on this host; neither is touched");
    if (!here.domain)
      return settled(DefinitionOutcome::runs_there, "running on " + destination_uri);
    if (virDomainUndefineFlags(here.domain.get(), kUndefineFlags) < 0)
      return settled(DefinitionOutcome::failed,
                     "running on " + destination_uri +
                         "; cannot remove its shut-off definition here: " + lastError());
    return settled(DefinitionOutcome::runs_there,
                   "running on " + destination_uri + "; its shut-off definition here was removed");
  }
  if (!here.domain)
    return settled(DefinitionOutcome::only_there,
                   "defined (shut off) only on " + destination_uri + "; left there");
  if (virDomainUndefineFlags(there.domain.get(), kUndefineFlags) < 0)
    return settled(DefinitionOutcome::failed,
                   "cannot remove its shut-off definition from " + destination_uri + ": " +
                       lastError());
  return settled(DefinitionOutcome::removed_there,
                 "its shut-off definition on " + destination_uri + " was removed");
}

}  // namespace hostmaint::hv::libvirt
