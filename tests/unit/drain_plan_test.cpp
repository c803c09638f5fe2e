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

// A transient domain shut down or suspended would be gone: only a live
// migration (or its owner) can take it off the host.
TEST(DrainPlan, TransientDomainIsNeverShutDownOrSuspended) {
  hv::DomainInfo transient = hostmaint::fake::makeDomain("t");
  transient.persistent = false;
  DomainPolicy policy;
  policy.maintenance_action = MaintenanceAction::shutdown;
  policy.fallback_action = MaintenanceAction::live_migrate;
  DomainPlan plan = planDomain(transient, policy, context(), std::nullopt, std::nullopt);
  EXPECT_EQ(plan.kind, DomainPlan::Kind::act);
  EXPECT_EQ(plan.action, MaintenanceAction::live_migrate);
  EXPECT_TRUE(plan.fallback_used);
  EXPECT_NE(plan.note.find("shutdown not possible: the domain is transient"), std::string::npos)
      << plan.note;

  // The default policy's fallback (suspend) cannot stand in for a migration
  // that is impossible: it is blocked, saying why.
  plan = planDomain(transient, DomainPolicy{}, context(false, false), std::nullopt, std::nullopt);
  EXPECT_EQ(plan.kind, DomainPlan::Kind::blocked);
  EXPECT_NE(plan.reason.find("fallback suspend not possible either: the domain is transient"),
            std::string::npos)
      << plan.reason;

  // The same policy for a persistent domain is unchanged.
  plan = planDomain(hostmaint::fake::makeDomain("p"), policy, context(), std::nullopt,
                    std::nullopt);
  EXPECT_EQ(plan.action, MaintenanceAction::shutdown);
  EXPECT_FALSE(plan.fallback_used);
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
  EXPECT_FALSE(keepDecision("a", policy, true, true).action.has_value());
  const KeepDecision transient = keepDecision("a", policy, false, false);
  EXPECT_FALSE(transient.action.has_value());
  EXPECT_NE(transient.refusal.find("it is transient"), std::string::npos) << transient.refusal;
  policy.fallback_action = MaintenanceAction::owner;
  EXPECT_FALSE(keepDecision("a", policy, false, true).action.has_value());
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
