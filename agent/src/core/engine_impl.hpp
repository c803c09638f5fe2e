// MaintenanceEngine's private half, shared by the files that implement it:
//   engine.cpp           commands, entry points, the pump, time
//   engine_planning.cpp  planning a domain and admitting it to its stage
//   engine_drain.cpp     starting drain and restore actions, their results
//   engine_recovery.cpp  continuing after a restart or a reconnection
//   engine_leftovers.cpp definitions failed migrations left on destinations
//   engine_fleet_gates.cpp what the fleet adds: group impacts across hosts,
//                        peers as destinations (docs/fleet.md)
// Admission rules are pure functions in admission.cpp; what interfaces show
// is projected in status_projection.cpp; the state types live in
// engine_state.hpp.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "admission.hpp"
#include "drain_plan.hpp"
#include "migration_pacer.hpp"
#include "engine_state.hpp"
#include "status_projection.hpp"
#include "hostmaint/agent/engine.hpp"

namespace hostmaint::agent {

struct MaintenanceEngine::Impl {
  Impl(hv::Hypervisor& hypervisor_in, const WallClock& clock_in, Journal& journal_in,
       EngineSettings settings_in, EngineListener& listener_in);

  hv::Hypervisor& hypervisor;
  const WallClock& clock;
  Journal& journal;
  EngineSettings settings;
  EngineListener& listener;

  EngineState state;
  HostStatus status;

  // Completions and progress reports hold a weak reference: the hypervisor
  // may outlive the engine (and does, in the crash tests).
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  std::uint64_t next_token = 0;

  int depth = 0;  // nesting of entry points; the outermost one publishes
  bool pumping = false;
  bool pump_again = false;

  hv::ConnectionState connection;
  std::string connection_detail;
  bool reconcile_pending = false;  // recovered while not connected
  // Until recover() has read the journal, nothing may be saved: hypervisor
  // events that arrive first would otherwise overwrite the saved maintenance
  // with an idle state.
  bool recovered = false;

  std::optional<std::vector<hv::EvidenceCheck>> evidence;
  ProjectionCache projection_cache;  // projectStatus()'s, always into `status`
  std::optional<TimePoint> probed_at;  // when `evidence` was read
  std::optional<TimePoint> qemu_grace_until;
  std::optional<TimePoint> reprobe_at;

  std::optional<std::string> journal_error;
  // The journal as of the last successful save: its header, the domains'
  // order and each record as it was then, with its encoding. A save encodes
  // only the records that differ from theirs and writes only those whose
  // encoding changed (docs/engine.md, "The journal").
  struct SavedRecord {
    DomainRecord record;
    std::string encoded;
  };
  std::string saved_header;
  // In the journal's order of domains, which is mostly the state's: a save
  // then finds each record's saved copy at the same place, without a lookup.
  std::vector<SavedRecord> saved_records;
  std::unordered_map<std::string, std::size_t> saved_index;  // by UUID, into saved_records
  bool save_everything = false;  // the loaded document is not what the engine would write
  std::optional<TimePoint> notified_wakeup;  // the listener's last onWakeupChanged
  DestinationProbes destination_probes;
  // The cordon the listener was last told (onCordonChanged).
  std::optional<CordonStatus> told_cordon;
  // Host-shutdown actions and restores in flight: domain UUID → token.
  std::map<std::string, std::uint64_t> shutdown_tokens;
  // Where each domain was last found in state.domains (find()): checked on
  // every use, rebuilt when it is wrong.
  std::unordered_map<std::string, std::size_t> domain_index;
  // Leftover checks asked of the hypervisor and not answered: uuid + " " + destination.
  std::set<std::string> leftovers_in_flight;
  // Inventory refreshes so far: each follows a (re)connection to libvirt.
  std::uint64_t inventory_refreshes = 0;

  // engine_pacing.cpp: the adaptive live-migration scheduler and what it
  // shows (runtime only: a restarted daemon measures anew).
  MigrationPacer pacer;
  std::map<std::string, hv::MigrationSteer> applied_steers;  // as last sent
  std::unordered_map<std::string, MigrationTimeline> timelines;
  std::unordered_map<std::string, double> predicted_seconds;
  std::set<std::string> dirty_probes_in_flight;

  // Every public entry point holds one: when the outermost ends, the journal
  // and the published snapshot are brought up to date (once). Not when it
  // ends by an exception: a refused command changed nothing.
  class Entry {
   public:
    explicit Entry(Impl& impl);
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

   private:
    Impl& impl_;
    int exceptions_;
  };

  TimePoint now() const { return clock.now(); }
  bool connected() const { return connection == hv::ConnectionState::connected; }
  HostPhase phase() const { return state.phase; }
  bool inMaintenance() const;
  // The listener lets this session drain (a fleet slot is held, docs/fleet.md).
  bool mayDrain() const;
  PlanContext planContext() const;
  DomainRecord* find(const std::string& uuid);
  DomainRecord* findByNameOrUuid(const std::string& key);
  std::uint64_t memoryBytesOf(const DomainRecord& record) const;
  MemoryOf memoryOf() const;

  // engine.cpp: journal, publication, the pump, time.
  bool persist();
  // After recover() decoded `document`: what the journal holds.
  void rememberSaved(const std::string& document);
  // Saves a command's changes, or puts `before` back and refuses the
  // command (CommandError naming the journal's error).
  void commit(const std::string& verb, EngineState before);
  void settle() noexcept;
  // Projects the state into `status` in place: true when it changed (the
  // caller stamps and publishes it).
  bool projectStatus();
  void pump();
  void applyDeadlines();
  void evaluateEmptiness();
  std::optional<TimePoint> nextWakeup() const;

  // engine_planning.cpp
  void planRecord(DomainRecord& record, const hv::DomainInfo& info);
  void admit(DomainRecord& record);
  void addPlanned(const hv::DomainInfo& info);
  void occupiedAgain(DomainRecord& record);
  void syncIdleInventory();

  // engine_drain.cpp
  void refreshDestinationProbes();
  void startDrainActions();
  void startDrainAction(DomainRecord& record, const std::optional<DestinationConfig>& destination);
  void launch(DomainRecord& record, const hv::ActionRequest& request);
  void onActionProgress(const std::string& uuid, std::uint64_t token,
                        const hv::ActionProgress& progress);
  void onActionDone(const std::string& uuid, std::uint64_t token, const hv::ActionResult& result);
  void learnThroughput(const hv::ActionResult& result);
  void completeDrain(DomainRecord& record, std::string outcome, bool needs_restore);
  void failDrain(DomainRecord& record, const std::string& message);
  bool retryElsewhereOrLater(DomainRecord& record, const std::string& message);
  void blockOwnerMissedDeadline(DomainRecord& record, TimePoint deadline);
  void startRestoreActions();
  void finishRestore(DomainRecord& record, bool ok, const std::string& message);
  void endRestoringWhenSettled();

  // engine_pacing.cpp
  PacerSettings pacerSettings() const;
  void beginPacing();
  std::uint64_t waitingMigrationBytes() const;
  // For a live migration about to be considered: marks it queued and has
  // its dirty rate measured; the reason it may not start now, if any.
  std::optional<std::string> pacingWait(DomainRecord& record);
  void pacingStarted(const DomainRecord& record, hv::ActionKind kind);
  void pacingSampled(const DomainRecord& record, const hv::ActionProgress& progress);
  void pacingFinished(const DomainRecord& record, hv::ActionKind kind);
  void pacingSwitchover(const std::string& uuid);
  void reevaluatePacing();
  // Re-evaluates the pacer and sends the holds and hurries that changed;
  // true when the pacer's decisions changed.
  bool steerMigrations();
  void probeDirtyRate(const DomainRecord& record);
  PacingInputs pacingView() const;

  // engine_leftovers.cpp
  void checkLeftover(const std::string& uuid, const std::string& name,
                     const std::string& destination);
  bool leftoverUnchecked(const std::string& uuid) const;
  void settleLeftovers();
  void onLeftoverSettled(const std::string& uuid, const std::string& destination,
                         const hv::DefinitionSettled& result);

  // engine_fleet_gates.cpp: the listener's fleet questions
  // The wait when the fleet has no impact of the record's group for it.
  std::optional<WaitReason> fleetGroupWait(const DomainRecord& record);
  // The session's candidate destinations: its own, else the fleet's peers.
  std::vector<std::string> destinationUris() const;
  // settings.migration with the peers' entries (their migrate URI and
  // incoming limit) when the session uses them.
  MigrationConfig migrationWithPeers() const;
  // The session has no destinations of its own: the fleet's peers are its.
  bool usesPeers() const;
  // The wait when the fleet holds no claim on the chosen peer's incoming
  // slots for the record (nullopt: go, or not a peer).
  std::optional<WaitReason> fleetPeerWait(const DomainRecord& record,
                                          const DestinationConfig& destination);

  // engine_guard.cpp: the cordon and the host-shutdown path
  bool hostGoingDown() const;
  CordonStatus cordonOf() const;
  void followCordon();
  void tellCordon();
  DomainPolicy shutdownPolicyOf(const hv::DomainInfo& info);
  HostShutdownDomain* shutdownEntry(const std::string& uuid);
  void sweepHostShutdown();
  void startHostShutdownActions();
  void onHostShutdownDone(const std::string& uuid, std::uint64_t token,
                          const hv::ActionResult& result);
  void comeBackAfterHostShutdown();
  void startHostShutdownRestores();

  // engine_recovery.cpp
  void recover();
  void markLeft(DomainRecord& record, std::string how);
  void reconcile(DomainRecord& record, const std::optional<hv::DomainInfo>& info);
  void reconcileInterrupted(DomainRecord& record, const std::optional<hv::DomainInfo>& info);
  void redoInterrupted(DomainRecord& record, const std::string& why);
  hv::ActionRequest adopt(DomainRecord& record, hv::ActionKind kind);
  void adoptMigration(DomainRecord& record);
  void adoptShutdown(DomainRecord& record);
  void reconcileAll();
};

}  // namespace hostmaint::agent
