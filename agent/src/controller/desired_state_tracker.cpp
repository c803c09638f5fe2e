#include "hostmaint/agent/controller/desired_state_tracker.hpp"

namespace hostmaint::agent::controller {

DesiredStateTracker::Update DesiredStateTracker::accept(const DesiredStateFetch& fetch,
                                                        bool draining, TimePoint now) {
  if (fetch.not_modified || !fetch.desired) {
    health_.consecutive_failures = 0;
    health_.last_success = now;
    health_.last_error.reset();
    return Update::unchanged;
  }
  if (last_good_) {
    if (auto refusal = checkTransition(*last_good_, *fetch.desired, draining)) {
      recordFailure(std::move(*refusal), now);
      return Update::refused;
    }
  }
  health_.consecutive_failures = 0;
  health_.last_success = now;
  health_.last_error.reset();
  etag_ = fetch.etag;
  if (last_good_ && *last_good_ == *fetch.desired) return Update::unchanged;
  last_good_ = *fetch.desired;
  return Update::changed;
}

void DesiredStateTracker::recordFailure(std::string error, TimePoint now) {
  ++health_.consecutive_failures;
  health_.last_failure = now;
  health_.last_error = std::move(error);
}

}  // namespace hostmaint::agent::controller
