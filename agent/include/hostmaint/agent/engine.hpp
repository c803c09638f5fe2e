// MaintenanceEngine: the state machine that plans and drives one host's
// maintenance. Single-threaded: every entry point is called on the daemon's
// event-loop thread, and hypervisor callbacks arrive there too.
//
// The engine owns no timers. It tells its listener whenever the time it next
// needs tick() changes (onWakeupChanged); the owner arms one timer from that
// and calls tick() when it fires. Tests drive a fake clock and call tick()
// directly.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

// Settings the engine takes from the config; replaced on reload.
struct EngineSettings {
  DomainPolicy default_policy;
  LimitsConfig limits;
  MigrationConfig migration;  // candidate destinations and their limits
  std::string host_name;
  NoticeSettings notices;  // the owners' notices' downtime estimates
  HostShutdownConfig host_shutdown;
  // This boot's id (/proc/sys/kernel/random/boot_id): tells a reboot from a
  // restart of hostmaintd alone in the host-shutdown record.
  std::string boot_id;
};

EngineSettings engineSettingsFrom(const Config& config, std::string host_name);

// A member of a group about to be impacted by its drain action: what the
// engine asks a fleet before it starts (docs/fleet.md, "Groups across hosts").
struct GroupMemberAction {
  std::string group;
  std::string uuid;
  std::string name;
  unsigned max_impacted_members = 1;  // the member's policy
};

// A migration about to start to a destination the fleet offered as a peer
// (EngineListener::peerDestinations): what the engine asks before it starts
// (docs/fleet.md, "Peers as destinations").
struct PeerMigration {
  std::string uuid;
  std::string name;
  std::string destination_uri;
};

class EngineListener {
 public:
  virtual ~EngineListener() = default;
  // The status snapshot changed (generation bumped).
  virtual void onStatusChanged(const HostStatus& status) = 0;
  // nextWakeup() changed: tick() is due at `when` (nullopt: no deadline
  // pending). Told after the status of the same entry point is published,
  // only when the time differs from the last one told.
  virtual void onWakeupChanged(std::optional<TimePoint> when) = 0;
  // The cordon changed (it began or ended, an override, a restore about to
  // start). Called synchronously, before the start it allows is launched:
  // the hook that libvirt runs must already see it.
  virtual void onCordonChanged(const CordonStatus& /*cordon*/) {}
  // Whether the drain of `session_id` may go on: asked when the window's
  // start would turn a scheduled maintenance into a drain, and before drain
  // actions start. A fleet (docs/fleet.md) answers no until this host holds
  // a slot, and again once it may have lost it; the owner calls tick() when
  // the answer turns yes. Actions already running and restores go on.
  // Answered from the loop's own state, at once, without calling the engine.
  virtual bool mayDrain(const std::string& /*session_id*/) { return true; }
  // Whether `member` may be impacted now, asked before its drain action
  // starts, once this host's own group limit allows it: nullopt for yes,
  // else why not (the domain waits, and is asked again at the next pump; the
  // owner ticks when the answer may have changed). A fleet answers yes only
  // while it holds one of the group's impacts across the fleet for it.
  // Answered at once, without calling the engine; no fleet: always yes.
  virtual std::optional<std::string> mayImpactGroupMember(const GroupMemberAction& /*member*/) {
    return std::nullopt;
  }
  // Migration destinations offered by the fleet's peers, for a session with
  // none of its own (no [migration] destinations, none requested); probed
  // and chosen among like configured ones. Answered at once.
  virtual std::vector<DestinationConfig> peerDestinations() { return {}; }
  // Whether a migration to a peer offered above may start now, asked last
  // before it does: nullopt for yes, else why not (the domain waits for a
  // destination and is asked again; the owner ticks when the answer may have
  // changed). A fleet answers yes only while it holds a claim on one of the
  // peer's incoming slots for it. Answered at once; no fleet: always yes.
  virtual std::optional<std::string> mayMigrateToPeer(const PeerMigration& /*migration*/) {
    return std::nullopt;
  }
};

class MaintenanceEngine final : public hv::HypervisorObserver {
 public:
  MaintenanceEngine(hv::Hypervisor& hypervisor, const WallClock& clock, Journal& journal,
                    EngineSettings settings, EngineListener& listener);
  ~MaintenanceEngine() override;
  MaintenanceEngine(const MaintenanceEngine&) = delete;
  MaintenanceEngine& operator=(const MaintenanceEngine&) = delete;

  // Loads the journal and reconciles it with the hypervisor's inventory:
  // a restarted daemon continues where it was, repeating no done action.
  // Call once, before serving any interface.
  void recover();

  // Commands. Each throws CommandError with an actionable reason when refused.
  std::string schedule(const ScheduleRequest& request);  // returns the session id
  // Moves the window of the scheduled maintenance (or adds/removes removal)
  // and replans, keeping session and acks; owners get new notices. Once the
  // drain has started only the end and the reason may change.
  void reschedule(const MaintenanceWindow& window);
  void cancel();
  // `domain` is a name or a UUID; `reason` (may be empty) is kept with the
  // ack and shown in the status and the owner's notice.
  void acknowledge(const std::string& domain, AckChoice choice, std::string reason = {});
  // The admin starts work on the evidenced-empty host: empty → in-maintenance.
  void begin();
  void finish();

  // The host is shutting down (hostmaint-shutdown.service): every domain
  // still running gets its host_shutdown_action, in parallel; a drain in
  // progress stops starting actions. Returns at once; the status'
  // host_shutdown says when everything is done. Asked again, it continues
  // the same shutdown and takes in what runs now.
  void hostShutdown(const std::string& requested_by);
  // Cordon overrides: `domain` (name or UUID, need not be defined here yet)
  // may start on or migrate into this host while it is cordoned.
  void allowDomain(const std::string& domain, std::string reason, const std::string& by);
  void disallowDomain(const std::string& domain);

  void updateSettings(EngineSettings settings);

  // Re-evaluates time-based transitions (window start, ack deadlines, lead
  // and recovery times, shutdown escalation).
  void tick();
  std::optional<TimePoint> nextWakeup() const;

  const HostStatus& status() const;

  // hv::HypervisorObserver
  void onDomainEvent(const hv::DomainEvent& event) override;
  void onInventoryRefreshed() override;
  void onConnectionStateChanged(hv::ConnectionState state, const std::string& detail) override;
  void onMigrationSwitchover(const std::string& uuid) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hostmaint::agent
