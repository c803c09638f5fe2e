// The adaptive half of the drain scheduler (docs/policy.md, "Adaptive
// migration scheduling"): how many live migrations may run at once, and
// which of the running ones get the link, from what they measure while they
// run. Pure logic over samples and times: the engine feeds it and acts on
// its answers; tests drive it with made-up links.
//
// In short, each decision taken on measurements that settled for 1.5 s:
// - start `initial` at once; one more each second while the aggregate
//   throughput grows by a tenth with each one added;
// - when what is left would take long (over 20 s at the measured rate), try
//   half as many: hold the others at the least bandwidth. If the aggregate
//   stays within a tenth, the link is the limit and fewer at once only
//   re-send less (halve again); if it drops, parallelism helps: release;
// - a migration that dirties memory at least 0.8x as fast as it sends it,
//   or whose remaining data stopped reaching new lows after its first pass,
//   does not converge at its share: keep the link for the half closest to
//   done (fewer when their dirty rates exceed half of the capacity), hold
//   the rest; one that does not converge even alone is hurried up its
//   escalation ladder;
// - a held migration is released when those on the link switch over, or
//   when the link has room for it again.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hostmaint/agent/model.hpp"
#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::agent {

struct PacerSettings {
  bool adaptive = true;
  unsigned initial = 4;  // at once before anything is measured
  unsigned cap = 8;      // never more (limits.max_parallel_migrations)
};

// One progress report of a running live migration.
struct PacerSample {
  TimePoint at{};
  std::uint64_t processed_bytes = 0;
  std::uint64_t remaining_bytes = 0;
  std::uint64_t dirty_rate_bps = 0;  // QEMU's, known after its first pass
  // The job's own clock (libvirt's time elapsed): rates from it do not
  // depend on when the report reached the engine. 0: use `at`.
  std::chrono::milliseconds elapsed{0};
  unsigned iteration = 0;
  bool held = false;  // the hypervisor holds it (as steered)
};

class MigrationPacer {
 public:
  explicit MigrationPacer(PacerSettings settings = {});

  // A new maintenance: forget what the last one measured.
  void reset(PacerSettings settings);

  // A domain's dirty rate measured before its migration.
  void probed(const std::string& uuid, std::optional<std::uint64_t> dirty_rate_bps);
  bool wasProbed(const std::string& uuid) const;
  void started(const std::string& uuid, TimePoint at);
  void sampled(const std::string& uuid, const PacerSample& sample);
  void finished(const std::string& uuid);
  // It paused its guest for the switch-over: its last data is on the wire.
  void switchingOver(const std::string& uuid);

  // Recomputes the limit, the holds and the hurries, given the memory of
  // the live migrations still waiting to start; true when something changed
  // that may let a waiting migration start or needs steering.
  bool evaluate(TimePoint now, std::uint64_t waiting_bytes);

  // Why a live migration of `candidate` may not start now; nullopt: it may.
  std::optional<std::string> admit(const std::string& candidate) const;

  // What each running migration should do (held, hurried).
  std::map<std::string, hv::MigrationSteer> steering() const;

  SchedulerStatus status() const;
  std::optional<TimePoint> convergedAt(const std::string& uuid) const;
  std::optional<std::uint64_t> dirtyRate(const std::string& uuid) const;

  // The expected duration of a migration of `memory_bytes` that starts now,
  // from the per-migration throughput measured so far (`learned_bps`, the
  // host's moving average of finished migrations, else the running ones'
  // share of the capacity) and its dirty rate; nullopt without a basis.
  std::optional<double> predictSeconds(const std::string& uuid, std::uint64_t memory_bytes,
                                       std::uint64_t learned_bps) const;

 private:
  struct Flight {
    TimePoint started{};
    TimePoint steered{};  // started, or last held or released
    std::optional<PacerSample> last;
    // Its throughput over the last two seconds of samples (on the job's
    // clock), since it last started moving, was held or released: a
    // window, not a smoothed average, so that a change shows fully once
    // the window has passed it.
    struct Point {
      TimePoint at;
      double t;  // seconds on the job's clock (or the engine's)
      double processed;
    };
    std::deque<Point> window;
    double rate_bps = 0;
    bool has_rate = false;
    std::uint64_t least_remaining = UINT64_MAX;
    TimePoint least_remaining_at{};
    std::uint64_t qemu_dirty_bps = 0;
    bool held = false;
    bool hurry = false;
    bool switching_over = false;  // told by the hypervisor
    std::optional<TimePoint> converged_at;
  };

  // A trial of fewer migrations at once: who was held for it, and the
  // aggregate throughput before.
  struct Trial {
    TimePoint since{};
    // When every migration held for it reported being held: the kept ones'
    // rates are measured from then.
    std::optional<TimePoint> effective;
    unsigned before = 0;
    double before_bps = 0;       // all of them
    double kept_before_bps = 0;  // those it keeps on the link
    std::vector<std::string> held;
  };

  enum class Verdict { unknown, link_bound, parallel_helps };

  std::uint64_t dirtyOf(const std::string& uuid, const Flight& flight) const;
  bool starved(const std::string& uuid, const Flight& flight, TimePoint now) const;
  bool finishing(const Flight& flight) const;
  bool switchingOver(const Flight& flight) const;
  bool settled(const Flight& flight, TimePoint since, TimePoint now) const;
  unsigned contending() const;  // unheld and not in their last pass
  double aggregate() const;     // what the unheld ones move now
  std::vector<std::string> byRemaining(bool held) const;
  static void restartRate(Flight& flight);
  void hold(const std::string& uuid, TimePoint now);
  void release(const std::string& uuid, TimePoint now);
  bool judgeTrial(TimePoint now);
  bool startTrial(TimePoint now, std::uint64_t waiting_bytes);
  bool focusOnConverging(TimePoint now, const std::vector<std::string>& starving);
  bool releaseHeld(TimePoint now);
  bool grow(TimePoint now, bool migrations_waiting);
  double budget() const;

  PacerSettings settings_;
  std::map<std::string, Flight> flights_;
  std::map<std::string, std::optional<std::uint64_t>> probed_;
  unsigned limit_ = 0;
  double capacity_bps_ = 0;               // most aggregate throughput measured
  std::map<unsigned, double> level_bps_;  // most aggregate with N unheld at once
  unsigned level_ = 0;                    // unheld running now, and since when
  TimePoint level_since_{};
  TimePoint last_change_{};
  std::optional<Trial> trial_;
  Verdict verdict_ = Verdict::unknown;
  // A verdict that parallelism helps is tried again after this long
  // (doubling each time): one trial can be misled by a burst.
  std::chrono::seconds retrial_delay_{0};
  TimePoint next_trial_{};
  bool any_starved_ = false;
  std::string reason_;
};

}  // namespace hostmaint::agent
