// The journal tells the maintenance's story: phases, each domain's stage,
// readiness and the libvirt connection, at a level that matches the news.
#include "hostmaint/agent/service/status_change_log.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hostmaint::service {
namespace {

using ::testing::HasSubstr;

agent::DomainStatus domain(std::string name, agent::DomainStage stage) {
  agent::DomainStatus d;
  d.uuid = "uuid-" + name;
  d.name = std::move(name);
  d.stage = stage;
  return d;
}

std::vector<std::string> texts(const std::vector<StatusLogLine>& lines) {
  std::vector<std::string> out;
  for (const auto& line : lines) out.push_back(line.text);
  return out;
}

TEST(StatusChangeLog, IdleInventoryIsNotNarrated) {
  agent::HostStatus idle;
  idle.domains = {domain("web1", agent::DomainStage::planned)};
  auto lines = describeStatusChanges(std::nullopt, idle);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "phase idle");
  EXPECT_TRUE(describeStatusChanges(idle, idle).empty());
}

TEST(StatusChangeLog, PhaseAndDomainStagesAreLoggedOncePerChange) {
  agent::HostStatus before;
  before.phase = agent::HostPhase::scheduled;
  before.session_id = "s1";
  before.domains = {domain("web1", agent::DomainStage::planned),
                    domain("db1", agent::DomainStage::planned)};
  agent::HostStatus after = before;
  after.phase = agent::HostPhase::draining;
  after.domains[0].stage = agent::DomainStage::acting;
  after.domains[0].action = agent::MaintenanceAction::suspend;
  after.domains[0].detail = "suspending to disk (managed-save)";

  EXPECT_THAT(texts(describeStatusChanges(before, after)),
              ::testing::ElementsAre(
                  "phase scheduled -> draining (session s1)",
                  "domain 'web1': planned -> acting [suspend]: suspending to disk (managed-save)"));

  agent::HostStatus done = after;
  done.domains[0].stage = agent::DomainStage::done;
  done.domains[0].result = "suspended";
  EXPECT_THAT(texts(describeStatusChanges(after, done)),
              ::testing::ElementsAre("domain 'web1': acting -> done [suspend]: suspended"));
}

TEST(StatusChangeLog, FailuresAndBlockersAreWarningsOrErrors) {
  agent::HostStatus before;
  before.phase = agent::HostPhase::draining;
  before.domains = {domain("a", agent::DomainStage::acting), domain("b", agent::DomainStage::waiting)};
  agent::HostStatus after = before;
  after.domains[0].stage = agent::DomainStage::failed;
  after.domains[0].detail = "managed-save of domain 'a' failed: disk full";
  after.domains[1].stage = agent::DomainStage::blocked;
  after.domains[1].detail = "no acknowledgement by 2026-11-25T10:00:00Z";
  auto lines = describeStatusChanges(before, after);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].level, spdlog::level::err);
  EXPECT_THAT(lines[0].text, HasSubstr("disk full"));
  EXPECT_EQ(lines[1].level, spdlog::level::warn);
  EXPECT_THAT(lines[1].text, HasSubstr("no acknowledgement"));
}

TEST(StatusChangeLog, ReadinessAndConnectionChangesAreNamed) {
  agent::HostStatus before;
  before.phase = agent::HostPhase::empty;
  before.hypervisor_connection = hv::ConnectionState::connected;
  before.evidence = {{"no-active-domains", true, ""}, {"hugepages-free", true, ""}};
  agent::HostStatus after = before;
  after.ready = true;
  EXPECT_THAT(texts(describeStatusChanges(before, after)),
              ::testing::ElementsAre("host is ready: 2 evidence checks pass"));

  agent::HostStatus lost = after;
  lost.ready = false;
  lost.hypervisor_connection = hv::ConnectionState::disconnected;
  lost.hypervisor_detail = "End of file while reading data";
  lost.blockers = {{"libvirt", "disconnected"}};
  auto lines = describeStatusChanges(after, lost);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "host is no longer ready: libvirt: disconnected");
  EXPECT_EQ(lines[1].text, "libvirt disconnected: End of file while reading data");
  EXPECT_EQ(lines[0].level, spdlog::level::warn);
  EXPECT_EQ(lines[1].level, spdlog::level::warn);

  agent::HostStatus finishing = after;
  finishing.phase = agent::HostPhase::restoring;
  finishing.ready = false;
  lines = describeStatusChanges(after, finishing);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].text, "host is no longer ready");
  EXPECT_EQ(lines[1].level, spdlog::level::info);
}

TEST(StatusChangeLog, AnOverrunIsAWarningOnceAndItsEndIsNews) {
  using std::chrono::hours;
  const agent::TimePoint start{std::chrono::seconds(1893456000)};
  agent::HostStatus draining;
  draining.phase = agent::HostPhase::draining;
  draining.window = agent::MaintenanceWindow{start, start + hours(1), false, ""};
  agent::HostStatus overrun = draining;
  overrun.overrun = true;
  overrun.overrun_since = start + hours(1);
  overrun.blockers = {{"window", "the window ended at 2030-01-01T01:00:00Z; still draining: "
                                 "1 domain (web1)"}};
  auto lines = describeStatusChanges(draining, overrun);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].level, spdlog::level::warn);
  EXPECT_EQ(lines[0].text,
            "maintenance window overrun: the window ended at 2030-01-01T01:00:00Z; still "
            "draining: 1 domain (web1); nothing is forced, the drain continues within its limits");
  EXPECT_TRUE(describeStatusChanges(overrun, overrun).empty()) << "once, not per change";
  EXPECT_EQ(describeStatusChanges(std::nullopt, overrun).size(), 2u)
      << "found at start-up: the phase and the overrun";

  agent::HostStatus later = draining;
  later.window->end = start + hours(2);
  EXPECT_THAT(texts(describeStatusChanges(overrun, later)),
              ::testing::ElementsAre("maintenance window overrun ended: phase draining, the "
                                     "window now ends at 2030-01-01T02:00:00Z"));
  agent::HostStatus empty = draining;
  empty.phase = agent::HostPhase::empty;
  EXPECT_THAT(texts(describeStatusChanges(overrun, empty)),
              ::testing::ElementsAre("phase draining -> empty",
                                     "maintenance window overrun ended: phase empty"));
}

}  // namespace
}  // namespace hostmaint::service
