// A wall clock the test moves by hand: deadlines are tested without sleeping.
#pragma once

#include <chrono>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::fake {

class FakeClock final : public agent::WallClock {
 public:
  // 2030-01-01T00:00:00Z: far from the epoch, whole seconds.
  FakeClock() : now_(agent::TimePoint(std::chrono::seconds(1893456000))) {}
  agent::TimePoint now() const override { return now_; }
  void set(agent::TimePoint time) { now_ = time; }
  void advance(agent::Clock::duration by) { now_ += by; }

 private:
  agent::TimePoint now_;
};

}  // namespace hostmaint::fake
