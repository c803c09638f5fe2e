// The libvirt Hypervisor against libvirt's test driver (real API, no daemon),
// with a node definition from tests/unit/data/libvirt/node.xml.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace {

using namespace std::chrono_literals;
namespace hv = hostmaint::hv;

constexpr const char* kWeb1 = "5a1c0000-0000-4000-8000-000000000001";
constexpr const char* kShopDb = "5a1c0000-0000-4000-8000-000000000002";
constexpr const char* kCold = "5a1c0000-0000-4000-8000-000000000003";
constexpr const char* kPlain = "5a1c0000-0000-4000-8000-000000000004";

// libvirt keeps its event implementation for the whole process: one
// io_context for the whole test binary.
boost::asio::io_context& libvirtIo() {
  static boost::asio::io_context io;
  static auto registration = hv::installAsioEventLoop(io);
  return io;
}

bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  auto& io = libvirtIo();
  auto guard = boost::asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(5ms);
  }
  return true;
}

struct RecordingObserver : hv::HypervisorObserver {
  std::vector<hv::DomainEvent> events;
  std::vector<std::pair<hv::ConnectionState, std::string>> states;
  int refreshes = 0;
  void onDomainEvent(const hv::DomainEvent& e) override { events.push_back(e); }
  void onInventoryRefreshed() override { ++refreshes; }
  void onMigrationSwitchover(const std::string&) override {}  // the test driver cannot migrate
  void onConnectionStateChanged(hv::ConnectionState s, const std::string& d) override {
    states.emplace_back(s, d);
  }
  bool saw(hv::DomainEventKind kind, const std::string& uuid) const {
    for (const auto& e : events)
      if (e.kind == kind && e.uuid == uuid) return true;
    return false;
  }
};

std::string nodeUri() {
  return std::string("test://") + HOSTMAINT_SOURCE_DIR + "/tests/unit/data/libvirt/node.xml";
}

class LibvirtHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hv::LibvirtSettings settings;
    settings.uri = nodeUri();
    settings.worker_threads = 2;
    hypervisor = hv::makeLibvirtHypervisor(libvirtIo(), settings);
    hypervisor->setObserver(&observer);
    ASSERT_TRUE(runUntil([&] { return observer.refreshes > 0; }))
        << (observer.states.empty() ? "no state" : observer.states.back().second);
  }
  void TearDown() override { hypervisor.reset(); }

  hv::ActionResult act(hv::ActionRequest request) {
    std::optional<hv::ActionResult> result;
    int calls = 0;
    hypervisor->startAction(request, [&](const hv::ActionResult& r) {
      result = r;
      ++calls;
    });
    EXPECT_TRUE(runUntil([&] { return result.has_value(); }));
    EXPECT_EQ(calls, 1);
    if (result) return *result;
    hv::ActionResult missing;
    missing.message = "no result";
    return missing;
  }

  hv::ActionRequest request(hv::ActionKind kind, const std::string& uuid, const std::string& name) {
    hv::ActionRequest r;
    r.kind = kind;
    r.uuid = uuid;
    r.name = name;
    return r;
  }

  RecordingObserver observer;
  std::unique_ptr<hv::Hypervisor> hypervisor;
};

TEST_F(LibvirtHypervisorTest, ConnectsAndReadsTheInventory) {
  EXPECT_EQ(hypervisor->connectionState(), hv::ConnectionState::connected);
  ASSERT_FALSE(observer.states.empty());
  EXPECT_EQ(observer.states.back().first, hv::ConnectionState::connected);
  EXPECT_EQ(hypervisor->description(), nodeUri());
  ASSERT_EQ(hypervisor->domains().size(), 4u);

  auto web1 = hypervisor->domain(kWeb1);
  ASSERT_TRUE(web1);
  EXPECT_EQ(web1->name, "web1");
  EXPECT_EQ(web1->state, hv::DomainRunState::running);
  EXPECT_EQ(web1->max_memory_kib, 1024u * 1024u);
  EXPECT_EQ(web1->vcpus, 2u);
  EXPECT_TRUE(web1->persistent);
  EXPECT_FALSE(web1->has_managed_save);
  EXPECT_FALSE(web1->job_active);
  ASSERT_TRUE(web1->policy_xml);
  EXPECT_NE(web1->policy_xml->find("suspend"), std::string::npos) << *web1->policy_xml;
  EXPECT_FALSE(web1->owner);

  auto shop = hypervisor->domain(kShopDb);
  ASSERT_TRUE(shop);
  EXPECT_EQ(shop->owner, "alice");
  EXPECT_EQ(shop->project, "shop");
  EXPECT_FALSE(shop->policy_xml);

  auto cold = hypervisor->domain(kCold);
  ASSERT_TRUE(cold);
  EXPECT_EQ(cold->state, hv::DomainRunState::shutoff);
  EXPECT_FALSE(hypervisor->domain("00000000-0000-4000-8000-00000000dead"));
}

TEST_F(LibvirtHypervisorTest, TheTestDriverCannotMigrate) {
  const auto caps = hypervisor->capabilities();
  EXPECT_FALSE(caps.live_migration);
  EXPECT_FALSE(caps.cold_migration);
  EXPECT_TRUE(caps.managed_save);
  EXPECT_EQ(caps.why_no_migration, "the libvirt test driver cannot migrate");
}

TEST_F(LibvirtHypervisorTest, ManagedSaveThenStartRestores) {
  auto saved = act(request(hv::ActionKind::managed_save, kWeb1, "web1"));
  ASSERT_TRUE(saved.ok) << saved.message;
  auto web1 = hypervisor->domain(kWeb1);
  ASSERT_TRUE(web1);
  EXPECT_EQ(web1->state, hv::DomainRunState::shutoff) << "the inventory is current when done runs";
  ASSERT_TRUE(runUntil([&] { return observer.saw(hv::DomainEventKind::saved, kWeb1); }));
  web1 = hypervisor->domain(kWeb1);
  ASSERT_TRUE(web1);
  EXPECT_EQ(web1->state, hv::DomainRunState::shutoff);
  EXPECT_TRUE(web1->has_managed_save);

  auto started = act(request(hv::ActionKind::start, kWeb1, "web1"));
  ASSERT_TRUE(started.ok) << started.message;
  ASSERT_TRUE(runUntil([&] { return observer.saw(hv::DomainEventKind::started, kWeb1); }));
  web1 = hypervisor->domain(kWeb1);
  ASSERT_TRUE(web1);
  EXPECT_EQ(web1->state, hv::DomainRunState::running);
  EXPECT_FALSE(web1->has_managed_save);
}

TEST_F(LibvirtHypervisorTest, ShutdownStopsTheDomain) {
  auto req = request(hv::ActionKind::shutdown, kPlain, "plain");
  req.shutdown_timeout = 5s;
  auto result = act(req);
  ASSERT_TRUE(result.ok) << result.message;
  EXPECT_FALSE(result.forced);
  ASSERT_TRUE(runUntil([&] { return observer.saw(hv::DomainEventKind::stopped, kPlain); }));
  EXPECT_EQ(hypervisor->domain(kPlain)->state, hv::DomainRunState::shutoff);
}

TEST_F(LibvirtHypervisorTest, AnActionOnAnUnknownDomainNamesIt) {
  const std::string ghost = "00000000-0000-4000-8000-00000000dead";
  auto result = act(request(hv::ActionKind::managed_save, ghost, "ghost"));
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.message.find("managed-save of domain 'ghost'"), std::string::npos)
      << result.message;
  EXPECT_NE(result.message.find(ghost), std::string::npos) << result.message;
}

TEST_F(LibvirtHypervisorTest, StartingARunningDomainFailsWithLibvirtsReason) {
  auto result = act(request(hv::ActionKind::start, kShopDb, "shop-db"));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message.rfind("start of domain 'shop-db' failed: ", 0), 0u) << result.message;
}

TEST_F(LibvirtHypervisorTest, LiveMigrationOnTheTestDriverFailsWithContext) {
  auto req = request(hv::ActionKind::live_migrate, kShopDb, "shop-db");
  req.destination_uri = "test:///default";
  auto result = act(req);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message.rfind("live migration of domain 'shop-db' failed", 0), 0u)
      << result.message;
}

TEST_F(LibvirtHypervisorTest, EmptinessFollowsTheInventory) {
  hv::EmptinessQuery query;
  query.removal = true;
  auto report = hypervisor->probeEmptiness(query);
  EXPECT_FALSE(report.empty());
  const hv::EvidenceCheck* active = nullptr;
  for (const auto& c : report.checks)
    if (c.name == "no-active-domains") active = &c;
  ASSERT_TRUE(active);
  EXPECT_FALSE(active->ok);
  EXPECT_NE(active->detail.find("'web1'"), std::string::npos) << active->detail;
  EXPECT_EQ(active->detail.find("'cold'"), std::string::npos) << active->detail;
  EXPECT_EQ(report.checks.size(), 8u);
}

TEST(LibvirtHypervisorConnect, AFailedConnectReportsDisconnectedWithTheError) {
  hv::LibvirtSettings settings;
  settings.uri = "test:///nonexistent/hostmaint/node.xml";
  settings.reconnect_min = 20ms;
  settings.reconnect_max = 40ms;
  RecordingObserver observer;
  auto hypervisor = hv::makeLibvirtHypervisor(libvirtIo(), settings);
  hypervisor->setObserver(&observer);
  ASSERT_TRUE(runUntil([&] { return !observer.states.empty(); }));
  EXPECT_EQ(observer.states.front().first, hv::ConnectionState::disconnected);
  EXPECT_NE(observer.states.front().second.find("cannot connect to " + settings.uri),
            std::string::npos)
      << observer.states.front().second;
  EXPECT_EQ(hypervisor->connectionState(), hv::ConnectionState::disconnected);
  EXPECT_TRUE(hypervisor->domains().empty());

  // Without libvirt, an empty inventory proves nothing.
  const auto report = hypervisor->probeEmptiness({});
  EXPECT_FALSE(report.empty());
  for (const auto& check : report.checks)
    if (check.name == "no-active-domains") {
      EXPECT_FALSE(check.ok);
      EXPECT_EQ(check.detail.rfind("not connected to " + settings.uri, 0), 0u) << check.detail;
    }
}

}  // namespace
