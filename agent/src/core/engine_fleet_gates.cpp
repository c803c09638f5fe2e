// What a fleet (docs/fleet.md) adds to the drain, asked of the listener and
// answered at once from the fleet link's state: one impact of a group across
// all hosts per impacted member, and the peers as destinations of a session
// that has none of its own, each migration to one only with a claim on one
// of the peer's incoming slots. Without a fleet the listener's defaults answer
// yes and offer nothing, so the drain is what it was.
#include "engine_impl.hpp"

namespace hostmaint::agent {

std::optional<WaitReason> MaintenanceEngine::Impl::fleetGroupWait(const DomainRecord& record) {
  if (record.policy.group.empty()) return std::nullopt;
  const std::optional<std::string> why = listener.mayImpactGroupMember(GroupMemberAction{
      record.policy.group, record.uuid, record.name, record.policy.max_impacted_members});
  if (!why) return std::nullopt;
  const GroupImpact here = groupImpact(state, record.policy.group, record.uuid, now());
  return wait::GroupLimit{record.policy.group, here.impacted, record.policy.max_impacted_members,
                          false, *why};
}

std::vector<std::string> MaintenanceEngine::Impl::destinationUris() const {
  if (!usesPeers()) return state.destinations;
  std::vector<std::string> uris;
  for (const DestinationConfig& peer : listener.peerDestinations()) uris.push_back(peer.uri);
  return uris;
}

bool MaintenanceEngine::Impl::usesPeers() const {
  return state.destinations.empty() && settings.migration.destinations.empty();
}

std::optional<WaitReason> MaintenanceEngine::Impl::fleetPeerWait(
    const DomainRecord& record, const DestinationConfig& destination) {
  if (!usesPeers()) return std::nullopt;
  const std::optional<std::string> why =
      listener.mayMigrateToPeer(PeerMigration{record.uuid, record.name, destination.uri});
  if (!why) return std::nullopt;
  return wait::Destination{*why};
}

MigrationConfig MaintenanceEngine::Impl::migrationWithPeers() const {
  MigrationConfig migration = settings.migration;
  if (usesPeers()) migration.destinations = listener.peerDestinations();
  return migration;
}

}  // namespace hostmaint::agent
