// The planning rules, without an engine.
#include "../../agent/src/core/drain_plan.hpp"

#include <gtest/gtest.h>

#include "support/fake_hypervisor.hpp"

using namespace std::chrono_literals;
using namespace hostmaint::agent;
namespace hv = hostmaint::hv;

namespace {

PlanContext context(bool removal = false, bool migration = true) {
  PlanContext c;
  c.removal = removal;
  c.noticed_at = TimePoint(std::chrono::seconds(1000));
  c.window_start = c.noticed_at + 1h;
  hv::Capabilities caps{migration, migration, true, migration ? "" : "test driver"};
  c.ability = abilityFrom(caps, true);
  return c;
}

TEST(DrainPlan, PrimaryActionWithItsFallbackKept) {
  DomainPlan plan = planDomain(hostmaint::fake::makeDomain("a"), DomainPolicy{}, context(),
                               std::nullopt, std::nullopt);
  EXPECT_EQ(plan.kind, DomainPlan::Kind::act);
  EXPECT_EQ(plan.action, MaintenanceAction::live_migrate);
  EXPECT_EQ(plan.fallback, MaintenanceAction::suspend);
  EXPECT_FALSE(plan.fallback_used);
  EXPECT_EQ(plan.earliest_start, context().window_start);
  EXPECT_FALSE(plan.ack_deadline.has_value());
}

TEST(DrainPlan, FallbackWhenMigrationImpossible) {
  DomainPlan plan = planDomain(hostmaint::fake::makeDomain("a"), DomainPolicy{},
                               context(false, false), std::nullopt, std::nullopt);
  EXPECT_EQ(plan.action, MaintenanceAction::suspend);
  EXPECT_TRUE(plan.fallback_used);
  EXPECT_EQ(plan.note, "live-migrate not possible: test driver; falling back to suspend");
}

TEST(DrainPlan, BlockedWhenFallbackImpossibleToo) {
  DomainPolicy policy;
  policy.fallback_action = MaintenanceAction::cold_migrate;
  DomainPlan plan = planDomain(hostmaint::fake::makeDomain("a"), policy, context(false, false),
                               std::nullopt, std::nullopt);
  EXPECT_EQ(plan.kind, DomainPlan::Kind::blocked);
  EXPECT_NE(plan.reason.find("fallback cold-migrate not possible either"), std::string::npos);
}

TEST(DrainPlan, LeadTimeCountsFromNoticeOrAck) {
  DomainPolicy policy;
  policy.lead_time = 2h;
  const PlanContext c = context();
  DomainPlan plan =
      planDomain(hostmaint::fake::makeDomain("a"), policy, c, std::nullopt, std::nullopt);
  EXPECT_EQ(plan.earliest_start, c.noticed_at + 2h);
  plan = planDomain(hostmaint::fake::makeDomain("a"), policy, c, AckChoice::move,
                    c.noticed_at + 30min);
  EXPECT_EQ(plan.earliest_start, c.noticed_at + 2h + 30min);
}

TEST(DrainPlan, AckDeadlineFromNotice) {
  DomainPolicy policy;
  policy.ack_required = true;
  policy.ack_timeout = 3h;
  DomainPlan plan =
      planDomain(hostmaint::fake::makeDomain("a"), policy, context(), std::nullopt, std::nullopt);
  EXPECT_EQ(plan.ack_deadline, context().noticed_at + 3h);
}

TEST(DrainPlan, KeepSelectsTheKeepInPlaceAction) {
  DomainPolicy policy;  // live-migrate, fallback suspend
  DomainPlan plan = planDomain(hostmaint::fake::makeDomain("a"), policy, context(), AckChoice::keep,
                               std::nullopt);
  EXPECT_EQ(plan.action, MaintenanceAction::suspend);
  EXPECT_FALSE(plan.fallback_used);
  EXPECT_FALSE(keepDecision("a", policy, true).action.has_value());
  policy.fallback_action = MaintenanceAction::owner;
  EXPECT_FALSE(keepDecision("a", policy, false).action.has_value());
}

TEST(DrainPlan, MoveSelectsMigration) {
  DomainPolicy policy;
  policy.maintenance_action = MaintenanceAction::shutdown;
  DomainPlan plan = planDomain(hostmaint::fake::makeDomain("a"), policy, context(), AckChoice::move,
                               std::nullopt);
  EXPECT_EQ(plan.action, MaintenanceAction::live_migrate);
}

TEST(DrainPlan, StoppedDomains) {
  auto off = hostmaint::fake::makeDomain("a", hv::DomainRunState::shutoff);
  EXPECT_EQ(planDomain(off, DomainPolicy{}, context(), std::nullopt, std::nullopt).kind,
            DomainPlan::Kind::nothing_to_do);
  DomainPlan removal = planDomain(off, DomainPolicy{}, context(true), std::nullopt, std::nullopt);
  EXPECT_EQ(removal.action, MaintenanceAction::cold_migrate);
  DomainPlan stuck =
      planDomain(off, DomainPolicy{}, context(true, false), std::nullopt, std::nullopt);
  EXPECT_EQ(stuck.action, MaintenanceAction::owner);  // removal_fallback_action owner
  EXPECT_NE(stuck.note.find("move or undefine it"), std::string::npos);
}

TEST(DrainPlan, MalformedPolicyIsAnErrorNotADefault) {
  auto domain = hostmaint::fake::makeDomain("a");
  domain.policy_xml = hostmaint::fake::policyXml({{"maintenance_action", "teleport"}});
  PolicyResult result = policyFor(domain, DomainPolicy{});
  ASSERT_TRUE(std::holds_alternative<PolicyError>(result));
  EXPECT_NE(std::get<PolicyError>(result).message.find("teleport"), std::string::npos);
}

}  // namespace
