// When to poll the controller next: the configured interval spread by
// jitter (so a fleet of agents does not poll in lockstep), doubling backoff
// after errors up to a ceiling, back to the interval after a success.
// Pure: no clock, no sleeping; the random source is injectable.
#pragma once

#include <chrono>
#include <functional>
#include <random>

namespace hostmaint::agent::controller {

struct PollScheduleOptions {
  std::chrono::milliseconds interval{std::chrono::seconds(30)};
  // Each delay is multiplied by a factor drawn from [1 - jitter, 1 + jitter].
  double jitter = 0.10;
  // Ceiling of the backoff before jitter.
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
};

class PollSchedule {
 public:
  // Returns a number uniformly drawn from [0, 1).
  using UniformSource = std::function<double()>;

  // Uses its own seeded std::mt19937_64.
  explicit PollSchedule(PollScheduleOptions options);
  PollSchedule(PollScheduleOptions options, UniformSource uniform);

  // Delay until the next poll after a successful one (200 or 304) that took
  // `elapsed`: a long-poll the server held for a while counts toward the
  // interval. Resets the backoff.
  std::chrono::milliseconds afterSuccess(std::chrono::milliseconds elapsed = {});
  // Delay until the next poll after a failed one: interval * 2^failures,
  // capped at max_backoff, with jitter.
  std::chrono::milliseconds afterFailure();

  int consecutiveFailures() const { return failures_; }
  const PollScheduleOptions& options() const { return options_; }

 private:
  std::chrono::milliseconds jittered(std::chrono::milliseconds base);

  PollScheduleOptions options_;
  UniformSource uniform_;
  int failures_ = 0;
};

}  // namespace hostmaint::agent::controller
