// The fake hypervisor behaves like libvirt where the engine tests rely on it.
#include "support/fake_hypervisor.hpp"

#include <gtest/gtest.h>

namespace hostmaint::fake {
namespace {

hv::ActionRequest request(hv::ActionKind kind, const hv::DomainInfo& domain) {
  hv::ActionRequest out;
  out.kind = kind;
  out.uuid = domain.uuid;
  out.name = domain.name;
  return out;
}

class EventLog final : public hv::HypervisorObserver {
 public:
  void onDomainEvent(const hv::DomainEvent& event) override { events.push_back(event.kind); }
  void onInventoryRefreshed() override { ++refreshes; }
  void onMigrationSwitchover(const std::string&) override {}
  void onConnectionStateChanged(hv::ConnectionState, const std::string&) override { ++changes; }
  std::vector<hv::DomainEventKind> events;
  int refreshes = 0;
  int changes = 0;
};

TEST(FakeHypervisor, ActionsChangeDomainsLikeLibvirtAndEventsComeBeforeCompletion) {
  FakeHypervisor fake;
  EventLog log;
  fake.setObserver(&log);
  hv::DomainInfo web = makeDomain("web");
  fake.addDomain(web);
  std::vector<std::string> order;
  fake.startAction(request(hv::ActionKind::managed_save, web), [&](const hv::ActionResult& r) {
    order.push_back(r.ok ? "done" : "failed");
    order.push_back("events:" + std::to_string(log.events.size()));
  });
  EXPECT_TRUE(fake.domain(web.uuid)->job_active);
  EXPECT_TRUE(fake.completeNext());
  EXPECT_EQ(order, (std::vector<std::string>{"done", "events:1"}));
  EXPECT_EQ(fake.domain(web.uuid)->state, hv::DomainRunState::shutoff);
  EXPECT_TRUE(fake.domain(web.uuid)->has_managed_save);
  EXPECT_FALSE(fake.domain(web.uuid)->job_active);

  fake.startAction(request(hv::ActionKind::start, web), [](const hv::ActionResult&) {});
  fake.completeNext();
  EXPECT_EQ(fake.domain(web.uuid)->state, hv::DomainRunState::running);
  EXPECT_FALSE(fake.domain(web.uuid)->has_managed_save);

  hv::ActionRequest migrate = request(hv::ActionKind::live_migrate, web);
  fake.startAction(migrate, [](const hv::ActionResult&) {});
  fake.completeNext();
  EXPECT_FALSE(fake.domain(web.uuid).has_value());
  EXPECT_EQ(log.events.back(), hv::DomainEventKind::migrated_away);
  EXPECT_EQ(fake.requestCount(web.uuid), 3);
  EXPECT_FALSE(fake.completeNext());
}

TEST(FakeHypervisor, ScriptedFailureLeavesTheDomainAlone) {
  FakeHypervisor fake;
  hv::DomainInfo web = makeDomain("web");
  fake.addDomain(web);
  fake.failNext(web.uuid, hv::ActionKind::shutdown, "guest ignored ACPI");
  hv::ActionResult seen;
  fake.startAction(request(hv::ActionKind::shutdown, web),
                   [&](const hv::ActionResult& r) { seen = r; });
  fake.complete(web.uuid);
  EXPECT_FALSE(seen.ok);
  EXPECT_EQ(seen.message, "guest ignored ACPI");
  EXPECT_EQ(fake.domain(web.uuid)->state, hv::DomainRunState::running);
}

TEST(FakeHypervisor, EvidenceFollowsDomainsAndExtraChecks) {
  FakeHypervisor fake;
  fake.addDomain(makeDomain("web"));
  hv::EmptinessReport report = fake.probeEmptiness({});
  EXPECT_FALSE(report.empty());
  fake.removeDomain(makeDomain("web").uuid);
  EXPECT_TRUE(fake.probeEmptiness({}).empty());
  fake.setExtraCheck("hugepages-free", false, "in use");
  EXPECT_FALSE(fake.probeEmptiness({}).empty());
  hv::DomainInfo saved = makeDomain("saved", hv::DomainRunState::shutoff);
  saved.has_managed_save = true;
  fake.clearExtraChecks();
  fake.addDomain(saved);
  EXPECT_TRUE(fake.probeEmptiness({}).empty());
  EXPECT_FALSE(fake.probeEmptiness({true, {}}).empty()) << "removal: the image would come back";
}

TEST(FakeHypervisor, CrashHelpers) {
  FakeHypervisor fake;
  hv::DomainInfo a = makeDomain("a");
  hv::DomainInfo b = makeDomain("b");
  fake.addDomain(a);
  fake.addDomain(b);
  int replies = 0;
  fake.startAction(request(hv::ActionKind::managed_save, a),
                   [&](const hv::ActionResult&) { ++replies; });
  fake.startAction(request(hv::ActionKind::managed_save, b),
                   [&](const hv::ActionResult&) { ++replies; });
  fake.takeEffectWithoutReply(a.uuid);
  fake.abandon(b.uuid);
  EXPECT_EQ(replies, 0);
  EXPECT_EQ(fake.domain(a.uuid)->state, hv::DomainRunState::shutoff);
  EXPECT_EQ(fake.domain(b.uuid)->state, hv::DomainRunState::running);
  EXPECT_FALSE(fake.domain(b.uuid)->job_active);
  EXPECT_TRUE(fake.pending().empty());
}

}  // namespace
}  // namespace hostmaint::fake
