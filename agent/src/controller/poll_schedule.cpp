#include "hostmaint/agent/controller/poll_schedule.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace hostmaint::agent::controller {

namespace {

PollSchedule::UniformSource seededUniform() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace

PollSchedule::PollSchedule(PollScheduleOptions options)
    : PollSchedule(options, seededUniform()) {}

PollSchedule::PollSchedule(PollScheduleOptions options, UniformSource uniform)
    : options_(options), uniform_(std::move(uniform)) {
  if (options_.interval <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("controller poll interval must be positive");
  }
  if (options_.jitter < 0.0 || options_.jitter >= 1.0) {
    throw std::invalid_argument("controller poll jitter must be in [0, 1)");
  }
  options_.max_backoff = std::max(options_.max_backoff, options_.interval);
}

std::chrono::milliseconds PollSchedule::jittered(std::chrono::milliseconds base) {
  const double factor = 1.0 + options_.jitter * (2.0 * uniform_() - 1.0);
  return std::chrono::milliseconds(
      static_cast<std::chrono::milliseconds::rep>(static_cast<double>(base.count()) * factor));
}

std::chrono::milliseconds PollSchedule::afterSuccess(std::chrono::milliseconds elapsed) {
  failures_ = 0;
  return std::max(jittered(options_.interval) - elapsed, std::chrono::milliseconds::zero());
}

std::chrono::milliseconds PollSchedule::afterFailure() {
  failures_ = std::min(failures_ + 1, 62);
  auto base = options_.interval;
  // Double until the ceiling; stop early so the multiplication cannot overflow.
  for (int i = 0; i < failures_ && base < options_.max_backoff; ++i) base *= 2;
  return jittered(std::min(base, options_.max_backoff));
}

}  // namespace hostmaint::agent::controller
