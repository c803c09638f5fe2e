// Shared set-up of the engine tests: a MaintenanceEngine on a fake
// hypervisor, a fake clock and an in-memory journal.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "hostmaint/agent/engine.hpp"
#include "support/fake_clock.hpp"
#include "support/fake_hypervisor.hpp"
#include "support/memory_journal.hpp"

namespace hostmaint::fake {

class RecordingListener final : public agent::EngineListener {
 public:
  void onStatusChanged(const agent::HostStatus& status) override {
    ++changes;
    last_generation = status.generation;
  }
  void onWakeupChanged(std::optional<agent::TimePoint> when) override {
    ++wakeup_changes;
    wakeup = when;
  }
  int changes = 0;
  std::uint64_t last_generation = 0;
  int wakeup_changes = 0;
  std::optional<agent::TimePoint> wakeup;  // as last told
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    settings.host_name = "hv-test";
    settings.migration.destinations = {agent::DestinationConfig{"qemu+tls://host-b/system", "", {}, {}}};
    settings.limits.max_parallel_actions = 4;
    settings.limits.max_parallel_migrations = 2;
  }

  // Builds the engine (after the test has set up the hypervisor) and recovers.
  void start() {
    engine =
        std::make_unique<agent::MaintenanceEngine>(hypervisor, clock, journal, settings, listener);
    hypervisor.setObserver(engine.get());
    engine->recover();
  }

  // Drops the engine without any goodbye, as a killed daemon would.
  void crash() {
    hypervisor.setObserver(nullptr);
    engine.reset();
  }

  std::string add(const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& policy = {},
                  hv::DomainRunState state = hv::DomainRunState::running) {
    hv::DomainInfo info = makeDomain(name, state);
    if (!policy.empty()) info.policy_xml = policyXml(policy);
    hypervisor.addDomain(info);
    return info.uuid;
  }

  agent::ScheduleRequest window(agent::Clock::duration starts_in = std::chrono::seconds(0),
                                agent::Clock::duration lasts = std::chrono::hours(2),
                                bool removal = false) {
    agent::ScheduleRequest request;
    request.window.start = clock.now() + starts_in;
    request.window.end = request.window.start + lasts;
    request.window.removal = removal;
    request.window.reason = "test";
    return request;
  }

  std::string scheduleNow(bool removal = false) {
    return engine->schedule(window(std::chrono::seconds(0), std::chrono::hours(2), removal));
  }

  const agent::HostStatus& status() const { return engine->status(); }

  const agent::DomainStatus& domain(const std::string& name) const {
    const auto& domains = engine->status().domains;
    auto found = std::find_if(domains.begin(), domains.end(),
                              [&](const agent::DomainStatus& d) { return d.name == name; });
    if (found == domains.end()) throw std::out_of_range("no domain " + name + " in the status");
    return *found;
  }

  agent::DomainStage stage(const std::string& name) const { return domain(name).stage; }

  int acting() const {
    return static_cast<int>(std::count_if(
        engine->status().domains.begin(), engine->status().domains.end(),
        [](const agent::DomainStatus& d) { return d.stage == agent::DomainStage::acting; }));
  }

  bool hasBlocker(const std::string& subject, const std::string& reason_part = {}) const {
    const auto& blockers = engine->status().blockers;
    return std::any_of(blockers.begin(), blockers.end(), [&](const agent::Blocker& b) {
      return b.subject == subject && b.reason.find(reason_part) != std::string::npos;
    });
  }

  // Moves the clock to the engine's next wakeup and ticks; false when none.
  bool advanceToWakeup() {
    auto next = engine->nextWakeup();
    if (!next) return false;
    clock.set(*next);
    engine->tick();
    // The owner's timer is armed from what it was told: it must be the truth.
    EXPECT_EQ(listener.wakeup, engine->nextWakeup()) << "onWakeupChanged missed a change";
    return true;
  }

  FakeHypervisor hypervisor;
  FakeClock clock;
  MemoryJournal journal;
  RecordingListener listener;
  agent::EngineSettings settings;
  std::unique_ptr<agent::MaintenanceEngine> engine;
};

}  // namespace hostmaint::fake
