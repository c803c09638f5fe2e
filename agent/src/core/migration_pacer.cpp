#include "migration_pacer.hpp"

#include <algorithm>
#include <cstdio>

namespace hostmaint::agent {

namespace {

using namespace std::chrono_literals;

// A migration that dirties memory at least this fraction as fast as it
// sends it does not converge at its share of the link.
constexpr double kStarvedDirtyShare = 0.8;
// Migrations kept on the link together dirty at most this fraction of the
// capacity: the rest of it moves their memory.
constexpr double kDirtyBudgetShare = 0.5;
// Hurried even with others on the link: it dirties nearly all of it.
constexpr double kHopelessShare = 0.9;
// Another migration at once is worth it while it adds a tenth; fewer at
// once lose nothing while they keep nine tenths.
constexpr double kGrowthGain = 1.1;
constexpr double kTrialKeeps = 0.9;
// What is left must take at least this long at the measured rate for a
// trial of fewer at once to be worth its cost (1.5 s or more of half the
// link if parallelism helped after all).
constexpr auto kWorthTrying = 20s;
// Measurements settle for this long before they decide anything.
constexpr auto kSettle = 1500ms;
constexpr auto kGrowthPeriod = 1s;
// Remaining data that has not reached a new low for this long, after the
// first pass, is not converging whatever the rates say.
constexpr auto kNoNewLow = 4s;
// Within this much of its throughput from the end: its last pass (a new
// migration may start beside it: its setup takes about that long) ...
constexpr auto kFinishingWithin = 1s;
// ... and switching over (a held one may go: it is set up already).
constexpr auto kSwitchingOverWithin = 250ms;
// A migration's throughput is measured over this much of its samples, and
// known once they span at least the second.
constexpr auto kRateWindow = 2s;
constexpr auto kRateSpan = 1s;
// A trial of fewer at once waits until the number at once has not changed
// for this long: at the start the sockets' buffers fill, and the first
// seconds carry more than the link does.
constexpr auto kTrialAfter = 5s;
// Kept migrations that took at least this share of the freed bandwidth
// show the link is the limit (ideally 2x for half as many).
constexpr double kTookFreedShare = 1.5;
// ... and judges the kept ones this long after the holds took effect.
constexpr auto kTrialSettle = 3s;
// Parallelism was found to help: tried again after this long, then after
// twice as long, and so on (a trial costs seconds of half the migrations).
constexpr std::chrono::seconds kRetrialDelay{20};
// What a held migration still sends (the hypervisor's least bandwidth,
// libvirt::kHeldBandwidthMiBs): a trial counts it as carried.
constexpr double kHeldBps = 1024.0 * 1024.0;

template <class Rep, class Period>
double seconds(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration<double>(d).count();
}

std::string mbps(double bytes_per_second) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB/s", bytes_per_second / 1e6);
  return text;
}

}  // namespace

MigrationPacer::MigrationPacer(PacerSettings settings) { reset(settings); }

void MigrationPacer::reset(PacerSettings settings) {
  settings_ = settings;
  settings_.cap = std::max(1u, settings_.cap);
  settings_.initial = std::clamp(settings_.initial, 1u, settings_.cap);
  flights_.clear();
  probed_.clear();
  limit_ = settings_.adaptive ? settings_.initial : settings_.cap;
  capacity_bps_ = 0;
  level_bps_.clear();
  level_ = 0;
  level_since_ = {};
  last_change_ = {};
  trial_.reset();
  verdict_ = Verdict::unknown;
  retrial_delay_ = std::chrono::seconds{0};
  next_trial_ = {};
  any_starved_ = false;
  reason_ = settings_.adaptive ? "nothing measured yet: " + std::to_string(limit_) + " at once"
                               : "fixed limits (adaptive scheduling is off)";
}

void MigrationPacer::probed(const std::string& uuid, std::optional<std::uint64_t> dirty_rate_bps) {
  probed_[uuid] = dirty_rate_bps;
}

bool MigrationPacer::wasProbed(const std::string& uuid) const { return probed_.contains(uuid); }

void MigrationPacer::started(const std::string& uuid, TimePoint at) {
  Flight flight;
  flight.started = flight.steered = flight.least_remaining_at = at;
  flights_[uuid] = flight;
}

void MigrationPacer::sampled(const std::string& uuid, const PacerSample& sample) {
  auto it = flights_.find(uuid);
  if (it == flights_.end()) return;
  Flight& flight = it->second;
  const double t = sample.elapsed.count() > 0
                       ? static_cast<double>(sample.elapsed.count()) / 1000.0
                       : seconds(sample.at.time_since_epoch());
  const double processed = static_cast<double>(sample.processed_bytes);
  // A held migration's trickle says nothing about the link, and neither
  // does the interval in which it was held or released, nor the one in
  // which it was still being set up (nothing sent yet).
  if (sample.held || (flight.last && flight.last->held != sample.held)) {
    restartRate(flight);
  } else if (sample.processed_bytes > 0) {
    if (!flight.window.empty() &&
        (t <= flight.window.back().t || processed < flight.window.back().processed))
      restartRate(flight);
    flight.window.push_back({sample.at, t, processed});
    while (flight.window.size() > 2 && flight.window.back().t - flight.window[1].t >= seconds(kRateWindow))
      flight.window.pop_front();
    const double span = flight.window.back().t - flight.window.front().t;
    if (span >= seconds(kRateSpan)) {
      flight.rate_bps = (flight.window.back().processed - flight.window.front().processed) / span;
      flight.has_rate = true;
    }
  }
  if (sample.remaining_bytes < flight.least_remaining) {
    flight.least_remaining = sample.remaining_bytes;
    flight.least_remaining_at = sample.at;
  }
  if (sample.dirty_rate_bps > 0) flight.qemu_dirty_bps = sample.dirty_rate_bps;
  flight.last = sample;
  if (!flight.converged_at && finishing(flight)) flight.converged_at = sample.at;
}

void MigrationPacer::restartRate(Flight& flight) {
  flight.window.clear();
  flight.has_rate = false;
  flight.rate_bps = 0;
}

void MigrationPacer::switchingOver(const std::string& uuid) {
  auto it = flights_.find(uuid);
  if (it != flights_.end()) it->second.switching_over = true;
}

void MigrationPacer::finished(const std::string& uuid) {
  flights_.erase(uuid);
  if (trial_) std::erase(trial_->held, uuid);
}

std::uint64_t MigrationPacer::dirtyOf(const std::string& uuid, const Flight& flight) const {
  if (flight.qemu_dirty_bps > 0) return flight.qemu_dirty_bps;
  auto probe = probed_.find(uuid);
  return probe != probed_.end() && probe->second ? *probe->second : 0;
}

// Its rate reflects only what happened since `since`.
bool MigrationPacer::settled(const Flight& flight, TimePoint since, TimePoint now) const {
  return flight.has_rate && !flight.window.empty() && flight.window.front().at >= since &&
         now - since >= kSettle;
}

bool MigrationPacer::starved(const std::string& uuid, const Flight& flight, TimePoint now) const {
  if (flight.held || !flight.has_rate || now - flight.steered < kSettle) return false;
  if (finishing(flight)) return false;
  const double dirty = static_cast<double>(dirtyOf(uuid, flight));
  if (dirty > 0 && dirty >= kStarvedDirtyShare * flight.rate_bps) return true;
  const bool past_first_pass = flight.last && flight.last->iteration >= 2;
  return past_first_pass && now - std::max(flight.least_remaining_at, flight.steered) >= kNoNewLow;
}

bool MigrationPacer::finishing(const Flight& flight) const {
  if (flight.switching_over) return true;
  if (!flight.last || !flight.has_rate || flight.rate_bps <= 0 || flight.held) return false;
  return static_cast<double>(flight.last->remaining_bytes) <=
         flight.rate_bps * seconds(kFinishingWithin);
}

// Its last pass is on the wire: what is left goes within the allowed
// downtime (or nothing is left and the job is being confirmed).
bool MigrationPacer::switchingOver(const Flight& flight) const {
  if (flight.switching_over) return true;
  if (!flight.last || flight.held) return false;
  if (flight.last->remaining_bytes == 0 && flight.last->processed_bytes > 0) return true;
  return flight.has_rate && static_cast<double>(flight.last->remaining_bytes) <=
                                flight.rate_bps * seconds(kSwitchingOverWithin);
}

unsigned MigrationPacer::contending() const {
  return static_cast<unsigned>(std::count_if(flights_.begin(), flights_.end(), [this](const auto& e) {
    return !e.second.held && !finishing(e.second);
  }));
}

double MigrationPacer::aggregate() const {
  double sum = 0;
  for (const auto& [uuid, flight] : flights_) {
    if (!flight.held && flight.has_rate) sum += flight.rate_bps;
  }
  return sum;
}

double MigrationPacer::budget() const { return kDirtyBudgetShare * capacity_bps_; }

// Closest to done first: they free the link soonest.
std::vector<std::string> MigrationPacer::byRemaining(bool held) const {
  std::vector<std::string> order;
  for (const auto& [uuid, flight] : flights_) {
    if (flight.held == held) order.push_back(uuid);
  }
  std::sort(order.begin(), order.end(), [this](const std::string& a, const std::string& b) {
    const Flight& fa = flights_.at(a);
    const Flight& fb = flights_.at(b);
    const std::uint64_t ra = fa.last ? fa.last->remaining_bytes : UINT64_MAX;
    const std::uint64_t rb = fb.last ? fb.last->remaining_bytes : UINT64_MAX;
    return ra != rb ? ra < rb : a < b;
  });
  return order;
}

void MigrationPacer::hold(const std::string& uuid, TimePoint now) {
  Flight& flight = flights_.at(uuid);
  flight.held = true;
  restartRate(flight);
  flight.steered = now;
}

void MigrationPacer::release(const std::string& uuid, TimePoint now) {
  Flight& flight = flights_.at(uuid);
  flight.held = false;
  restartRate(flight);
  flight.steered = now;
}

bool MigrationPacer::evaluate(TimePoint now, std::uint64_t waiting_bytes) {
  if (!settings_.adaptive) return false;

  // What the link carries, overall and per number at once.
  const double carried = aggregate();
  capacity_bps_ = std::max(capacity_bps_, carried);
  unsigned unheld = 0;
  bool all_measured = true;
  for (const auto& [uuid, flight] : flights_) {
    if (flight.held) continue;
    ++unheld;
    all_measured = all_measured && settled(flight, level_since_, now);
  }
  if (unheld != level_) {
    level_ = unheld;
    level_since_ = now;
  } else if (unheld > 0 && all_measured) {
    double& best = level_bps_[unheld];
    best = std::max(best, carried);
  }

  std::vector<std::string> starving;
  for (const auto& [uuid, flight] : flights_) {
    if (starved(uuid, flight, now)) starving.push_back(uuid);
  }
  any_starved_ = !starving.empty();

  bool changed = judgeTrial(now);
  if (any_starved_) {
    changed = focusOnConverging(now, starving) || changed;
  } else if (!trial_) {
    changed = startTrial(now, waiting_bytes) || changed;
  }
  if (!trial_) changed = releaseHeld(now) || changed;

  // Hurried: starved alone, or dirtying nearly the whole link.
  for (const std::string& uuid : starving) {
    Flight& flight = flights_.at(uuid);
    if (flight.held || flight.hurry || now - flight.steered < kSettle) continue;
    const double dirty = static_cast<double>(dirtyOf(uuid, flight));
    if (contending() <= 1 || (capacity_bps_ > 0 && dirty >= kHopelessShare * capacity_bps_)) {
      flight.hurry = true;
      changed = true;
    }
  }

  changed = grow(now, waiting_bytes > 0) || changed;
  return changed;
}

// The trial ends once the migrations kept on the link settled: the link is
// the limit when they carry as much as all did, else parallelism helps.
bool MigrationPacer::judgeTrial(TimePoint now) {
  if (!trial_) return false;
  std::vector<std::string> kept;
  for (const auto& [uuid, flight] : flights_) {
    if (!flight.held) kept.push_back(uuid);
  }
  // They finished meanwhile, or others joined (an adopted migration):
  // nothing left to compare.
  if (trial_->held.empty() || kept.empty() || kept.size() >= trial_->before) {
    trial_.reset();
    return false;
  }
  // The holds take effect at each migration's next poll: the kept ones'
  // rates count from when all did.
  if (!trial_->effective) {
    const bool all_held = std::all_of(trial_->held.begin(), trial_->held.end(), [&](const auto& uuid) {
      const Flight& flight = flights_.at(uuid);
      return flight.last && flight.last->held;
    });
    if (!all_held) return false;
    trial_->effective = now;
    for (const std::string& uuid : kept) restartRate(flights_.at(uuid));
    return false;
  }
  // What the held ones had in their sockets' buffers still drains first.
  const bool measured =
      now - *trial_->effective >= kTrialSettle &&
      std::all_of(kept.begin(), kept.end(), [&](const std::string& uuid) {
        return settled(flights_.at(uuid), *trial_->effective, now);
      });
  if (!measured) return false;
  const unsigned n = static_cast<unsigned>(kept.size());
  const double trickle = kHeldBps * static_cast<double>(flights_.size() - n);
  const double carried = aggregate();
  if (carried + trickle >= kTrialKeeps * trial_->before_bps ||
      carried >= kTookFreedShare * trial_->kept_before_bps) {
    verdict_ = Verdict::link_bound;
    limit_ = std::max(1u, n);
    last_change_ = now;
    reason_ = std::to_string(n) + " at once carry " + mbps(carried) + " as " +
              std::to_string(trial_->before) + " carried " + mbps(trial_->before_bps) +
              ": the link is the limit, fewer at once re-send less";
    trial_.reset();
    return true;
  }
  verdict_ = Verdict::parallel_helps;
  retrial_delay_ = retrial_delay_.count() == 0 ? kRetrialDelay : 2 * retrial_delay_;
  next_trial_ = now + retrial_delay_;
  limit_ = std::max(limit_, trial_->before);
  reason_ = std::to_string(n) + " at once carried " + mbps(carried) + " against " +
            mbps(trial_->before_bps) + " for " + std::to_string(trial_->before) +
            ": parallelism helps, " + std::to_string(limit_) + " at once";
  for (const std::string& uuid : trial_->held) release(uuid, now);
  trial_.reset();
  last_change_ = now;
  return true;
}

// Fewer at once, when what is left would take long enough for re-sent
// memory to matter and nobody has shown yet that parallelism helps.
bool MigrationPacer::startTrial(TimePoint now, std::uint64_t waiting_bytes) {
  if (verdict_ == Verdict::parallel_helps && now < next_trial_) return false;
  const unsigned n = contending();
  if (n < 2 || now - level_since_ < kTrialAfter || now - last_change_ < kSettle) return false;
  std::vector<std::string> running = byRemaining(false);
  double left = static_cast<double>(waiting_bytes);
  for (const auto& [uuid, flight] : flights_) {
    if (!flight.last) continue;
    if (!flight.held && !settled(flight, level_since_, now)) return false;
    left += static_cast<double>(flight.last->remaining_bytes);
  }
  const double carried = aggregate();
  if (carried <= 0 || left / carried < seconds(kWorthTrying)) return false;
  Trial trial;
  trial.since = now;
  trial.before = n;
  trial.before_bps = carried;
  // Keep the half closest to done, hold the rest.
  const unsigned keep = (n + 1) / 2;
  unsigned kept = 0;
  for (const std::string& uuid : running) {
    if (finishing(flights_.at(uuid))) continue;
    if (kept < keep) {
      ++kept;
      flights_.at(uuid).steered = now;
      trial.kept_before_bps += flights_.at(uuid).rate_bps;
      restartRate(flights_.at(uuid));
      continue;
    }
    hold(uuid, now);
    trial.held.push_back(uuid);
  }
  if (trial.held.empty()) return false;
  reason_ = "trying " + std::to_string(keep) + " at once instead of " + std::to_string(n) +
            " (they carry " + mbps(carried) + "; what is left takes " +
            std::to_string(static_cast<long>(left / carried)) + " s at that rate)";
  trial_ = std::move(trial);
  last_change_ = now;
  return true;
}

// Keep the link for those closest to done whose dirtying fits in the
// budget; hold the others.
bool MigrationPacer::focusOnConverging(TimePoint now, const std::vector<std::string>& starving) {
  const unsigned n = contending();
  if (n < 2) return false;
  // Half of them at most: a guest that rewrites a hot set shows a low dirty
  // rate (QEMU averages it over a whole pass) and still cannot converge.
  const unsigned keep_at_most = std::max(1u, n / 2);
  double dirty_sum = 0;
  unsigned kept = 0;
  std::vector<std::string> kept_now;
  std::vector<std::string> held_now;
  for (const std::string& uuid : byRemaining(false)) {
    Flight& flight = flights_.at(uuid);
    if (finishing(flight)) continue;
    const double dirty = static_cast<double>(dirtyOf(uuid, flight));
    if (kept == 0 || (kept < keep_at_most && dirty_sum + dirty <= budget())) {
      dirty_sum += dirty;
      ++kept;
      kept_now.push_back(uuid);
      continue;
    }
    hold(uuid, now);
    held_now.push_back(uuid);
  }
  if (held_now.empty()) return false;
  // Their share changes: judged again once it settled.
  for (const std::string& uuid : kept_now) {
    flights_.at(uuid).steered = now;
    restartRate(flights_.at(uuid));
  }
  if (trial_) {
    trial_->held.insert(trial_->held.end(), held_now.begin(), held_now.end());
  }
  limit_ = std::max(1u, kept);
  last_change_ = now;
  reason_ = std::to_string(starving.size()) + " did not converge at their share of the link (" +
            mbps(capacity_bps_) + "): " + std::to_string(held_now.size()) + " held, " +
            std::to_string(kept) + " at once";
  return true;
}

// A held migration goes back on the link when the ones on it are switching
// over (the link would idle; earlier, it would slow their last passes, which
// a guest rewriting a hot set needs the whole link for), or when the link has room for it:
// its dirtying fits beside theirs and, unless the link is known to be the
// limit, below the number at once.
bool MigrationPacer::releaseHeld(TimePoint now) {
  std::vector<std::string> held = byRemaining(true);
  if (held.empty() || any_starved_) return false;
  const std::string& next = held.front();
  const bool switching_over = std::all_of(flights_.begin(), flights_.end(), [this](const auto& e) {
    return e.second.held || switchingOver(e.second);
  });
  // Those in their last pass still count: a released one would slow it.
  const auto unheld = static_cast<unsigned>(std::count_if(
      flights_.begin(), flights_.end(), [](const auto& e) { return !e.second.held; }));
  bool room = switching_over;
  if (!room && verdict_ != Verdict::link_bound && now - last_change_ >= kSettle && unheld < limit_) {
    double dirty_sum = 0;
    for (const auto& [uuid, flight] : flights_) {
      if (!flight.held && !finishing(flight)) dirty_sum += static_cast<double>(dirtyOf(uuid, flight));
    }
    room = capacity_bps_ <= 0 ||
           dirty_sum + static_cast<double>(dirtyOf(next, flights_.at(next))) <= budget();
  }
  if (!room) return false;
  release(next, now);
  last_change_ = now;
  reason_ = switching_over ? "released a held migration: the others are switching over"
                           : "released a held migration: the link has room for it";
  return true;
}

// More at once while the aggregate grows with each one added.
bool MigrationPacer::grow(TimePoint now, bool migrations_waiting) {
  const bool none_held = std::none_of(flights_.begin(), flights_.end(),
                                      [](const auto& entry) { return entry.second.held; });
  if (any_starved_ || trial_ || !none_held || !migrations_waiting || limit_ >= settings_.cap ||
      verdict_ == Verdict::link_bound || contending() < limit_ || now - last_change_ < kGrowthPeriod)
    return false;
  auto at_limit = level_bps_.find(limit_);
  if (at_limit == level_bps_.end()) return false;
  auto below = level_bps_.find(limit_ - 1);
  if (below != level_bps_.end() && at_limit->second < kGrowthGain * below->second) {
    reason_ = std::to_string(limit_) + " at once moved " + mbps(at_limit->second) + ", " +
              std::to_string(limit_ - 1) + " moved " + mbps(below->second) +
              ": more would only share the link";
    return false;
  }
  reason_ = std::to_string(limit_) + " at once moved " + mbps(at_limit->second) +
            (below == level_bps_.end()
                 ? std::string()
                 : " (" + std::to_string(limit_ - 1) + ": " + mbps(below->second) + ")") +
            ": trying " + std::to_string(limit_ + 1);
  ++limit_;
  last_change_ = now;
  return true;
}

std::optional<std::string> MigrationPacer::admit(const std::string& candidate) const {
  if (!settings_.adaptive) return std::nullopt;
  unsigned held = 0;
  double dirty_sum = 0;
  for (const auto& [uuid, flight] : flights_) {
    if (flight.held) {
      ++held;
    } else if (!finishing(flight)) {
      dirty_sum += static_cast<double>(dirtyOf(uuid, flight));
    }
  }
  if (held > 0) {
    return std::to_string(held) + " started migration(s) held go first (adaptive: " + reason_ + ")";
  }
  if (any_starved_) return "running migrations do not converge at their share of the link";
  const unsigned n = contending();
  if (n >= limit_) {
    return std::to_string(n) + " of " + std::to_string(limit_) +
           " migrations at once (adaptive: " + reason_ + ")";
  }
  auto probe = probed_.find(candidate);
  const double dirty =
      probe != probed_.end() && probe->second ? static_cast<double>(*probe->second) : 0;
  if (n > 0 && capacity_bps_ > 0 && dirty_sum + dirty > budget()) {
    return "the link carries " + mbps(capacity_bps_) + " and the running migrations dirty " +
           mbps(dirty_sum) + "; with this one (" + mbps(dirty) + ") they would not converge";
  }
  return std::nullopt;
}

std::map<std::string, hv::MigrationSteer> MigrationPacer::steering() const {
  std::map<std::string, hv::MigrationSteer> out;
  for (const auto& [uuid, flight] : flights_) out[uuid] = {flight.held, flight.hurry};
  return out;
}

SchedulerStatus MigrationPacer::status() const {
  SchedulerStatus status;
  status.adaptive = settings_.adaptive;
  status.limit = limit_;
  for (const auto& [uuid, flight] : flights_) {
    ++status.running;
    if (flight.held) ++status.held;
  }
  status.capacity_bps = static_cast<std::uint64_t>(capacity_bps_);
  status.reason = reason_;
  return status;
}

std::optional<TimePoint> MigrationPacer::convergedAt(const std::string& uuid) const {
  auto it = flights_.find(uuid);
  return it == flights_.end() ? std::nullopt : it->second.converged_at;
}

std::optional<std::uint64_t> MigrationPacer::dirtyRate(const std::string& uuid) const {
  auto flight = flights_.find(uuid);
  if (flight != flights_.end() && flight->second.qemu_dirty_bps > 0)
    return flight->second.qemu_dirty_bps;
  auto probe = probed_.find(uuid);
  return probe != probed_.end() ? probe->second : std::nullopt;
}

std::optional<double> MigrationPacer::predictSeconds(const std::string& uuid,
                                                     std::uint64_t memory_bytes,
                                                     std::uint64_t learned_bps) const {
  double share = static_cast<double>(learned_bps);
  if (share <= 0 && capacity_bps_ > 0) {
    unsigned sharing = 1;  // this one
    for (const auto& [other, flight] : flights_) {
      if (other != uuid && !flight.held && !finishing(flight)) ++sharing;
    }
    share = capacity_bps_ / sharing;
  }
  if (share <= 0) return std::nullopt;
  auto probe = probed_.find(uuid);
  const double dirty =
      probe != probed_.end() && probe->second ? static_cast<double>(*probe->second) : 0;
  // What it dirties while it sends is sent again: the share left for new
  // data is what it sends minus what it dirties (at least a tenth).
  const double effective = std::max(share - dirty, 0.1 * share);
  return static_cast<double>(memory_bytes) / effective;
}

}  // namespace hostmaint::agent
