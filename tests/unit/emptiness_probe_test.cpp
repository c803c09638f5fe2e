// Emptiness evidence from an inventory plus fake /proc and sysfs trees.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace {

namespace fs = std::filesystem;
namespace hv = hostmaint::hv;

class FakeHostTree {
 public:
  FakeHostTree() {
    std::string tmpl = (fs::temp_directory_path() / "hostmaint-probe-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    root_ = tmpl;
    fs::create_directories(proc());
    fs::create_directories(sys());
  }
  ~FakeHostTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path proc() const { return root_ / "proc"; }
  fs::path sys() const { return root_ / "sys"; }

  void process(const std::string& pid, const std::vector<std::string>& argv) {
    fs::create_directories(proc() / pid);
    std::ofstream out(proc() / pid / "cmdline", std::ios::binary);
    for (const auto& arg : argv) out << arg << '\0';
  }
  void hugePages(const std::string& size, unsigned total, unsigned free) {
    const fs::path dir = sys() / "kernel/mm/hugepages" / ("hugepages-" + size);
    fs::create_directories(dir);
    std::ofstream(dir / "nr_hugepages") << total << "\n";
    std::ofstream(dir / "free_hugepages") << free << "\n";
  }
  hv::HostScanSettings scan(const std::string& scope) const { return {scope, proc(), sys()}; }

 private:
  fs::path root_;
};

const hv::EvidenceCheck& find(const hv::EmptinessReport& report, const std::string& name) {
  for (const auto& c : report.checks)
    if (c.name == name) return c;
  throw std::runtime_error("no check named " + name);
}

hv::DomainInfo domain(const std::string& name, hv::DomainRunState state) {
  hv::DomainInfo d;
  d.uuid = "uuid-" + name;
  d.name = name;
  d.state = state;
  d.persistent = true;
  return d;
}

class EmptinessProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree.process("100", {"/usr/bin/qemu-system-x86_64", "-name", "guest=web1,debug-threads=on",
                         "-uuid", "uuid-web1", "-m", "1024"});
    tree.process("200", {"/usr/libexec/qemu-kvm", "-uuid", "uuid-stray", "-name", "stray"});
    tree.process("300", {"/bin/bash", "-c", "qemu-system-x86_64 -uuid uuid-web1"});
    tree.process("400", {});  // a kernel thread: empty cmdline
    fs::create_directories(tree.proc() / "self");
  }
  FakeHostTree tree;
};

TEST_F(EmptinessProbeTest, ScanFindsQemuProcessesByArgvZeroOnly) {
  const auto found = hv::scanQemuProcesses(tree.proc());
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].pid, 100);
  EXPECT_EQ(found[0].uuid, "uuid-web1");
  EXPECT_EQ(found[0].name, "web1");
  EXPECT_EQ(found[1].pid, 200);
  EXPECT_EQ(found[1].name, "stray");
}

TEST_F(EmptinessProbeTest, KnownDomainsScopeCountsOnlyKnownUuids) {
  hv::EmptinessQuery query;
  query.known_uuids = {"uuid-web1"};
  auto report = hv::probeHostEmptiness({}, query, tree.scan("known-domains"));
  const auto& qemu = find(report, "no-qemu-processes");
  EXPECT_FALSE(qemu.ok);
  EXPECT_EQ(qemu.detail, "pid 100 (guest web1)");

  query.known_uuids = {"uuid-other"};
  report = hv::probeHostEmptiness({}, query, tree.scan("known-domains"));
  EXPECT_TRUE(find(report, "no-qemu-processes").ok);
}

TEST_F(EmptinessProbeTest, AllScopeCountsEveryQemu) {
  auto report = hv::probeHostEmptiness({}, {}, tree.scan("all"));
  EXPECT_EQ(find(report, "no-qemu-processes").detail, "pid 100 (guest web1), pid 200 (guest stray)");
  EXPECT_FALSE(report.empty());
}

TEST_F(EmptinessProbeTest, HugePagesInUseBlock) {
  tree.hugePages("2048kB", 1024, 512);
  tree.hugePages("1048576kB", 4, 4);
  auto report = hv::probeHostEmptiness({}, {}, tree.scan("all"));
  const auto& huge = find(report, "hugepages-free");
  EXPECT_FALSE(huge.ok);
  EXPECT_EQ(huge.detail, "2048kB: 512 of 1024 in use");
}

TEST_F(EmptinessProbeTest, NoHugePagesConfiguredIsFine) {
  auto report = hv::probeHostEmptiness({}, {}, tree.scan("all"));
  const auto& huge = find(report, "hugepages-free");
  EXPECT_TRUE(huge.ok);
  EXPECT_EQ(huge.detail, "no huge pages configured");
}

TEST_F(EmptinessProbeTest, UnreadableHugePageCounterIsNotEvidence) {
  fs::create_directories(tree.sys() / "kernel/mm/hugepages/hugepages-2048kB");
  auto report = hv::probeHostEmptiness({}, {}, tree.scan("all"));
  const auto& huge = find(report, "hugepages-free");
  EXPECT_FALSE(huge.ok);
  EXPECT_NE(huge.detail.find("nr_hugepages"), std::string::npos) << huge.detail;
}

TEST(EmptinessProbe, DomainChecksNameWhatBlocks) {
  FakeHostTree tree;
  auto paused = domain("db", hv::DomainRunState::paused);
  auto saved = domain("web1", hv::DomainRunState::shutoff);
  saved.has_managed_save = true;
  saved.autostart = true;
  auto busy = domain("batch", hv::DomainRunState::running);
  busy.job_active = true;

  hv::EmptinessQuery query;
  auto report = hv::probeHostEmptiness({paused, saved, busy}, query, tree.scan("all"));
  ASSERT_EQ(report.checks.size(), 5u) << "removal checks only when asked";
  EXPECT_EQ(find(report, "no-active-domains").detail, "'db' (paused), 'batch' (running)");
  EXPECT_EQ(find(report, "no-paused-domains").detail, "'db'");
  EXPECT_EQ(find(report, "no-running-jobs").detail, "'batch'");

  query.removal = true;
  report = hv::probeHostEmptiness({saved}, query, tree.scan("all"));
  ASSERT_EQ(report.checks.size(), 8u);
  EXPECT_TRUE(find(report, "no-active-domains").ok);
  EXPECT_EQ(find(report, "no-active-domains").detail, "no domain is running");
  EXPECT_EQ(find(report, "no-managed-save-images").detail, "'web1'");
  EXPECT_EQ(find(report, "no-autostart-domains").detail, "'web1'");
  EXPECT_FALSE(find(report, "no-defined-domains").ok);
  EXPECT_FALSE(report.empty());

  report = hv::probeHostEmptiness({}, query, tree.scan("all"));
  EXPECT_TRUE(report.empty());
}

}  // namespace

TEST_F(EmptinessProbeTest, AProcessGoneBeforeItsCommandLineIsReadIsSkipped) {
  fs::create_directories(tree.proc() / "500");  // listed, but no cmdline any more
  const auto found = hv::scanQemuProcesses(tree.proc());
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].pid, 100);
  EXPECT_EQ(found[1].pid, 200);
}

// A read that fails (a process exiting mid-read fails with ESRCH; here a
// directory fails with EISDIR) must not throw out of the scan, and what could
// not be read cannot count as evidence of an empty host, in either scope.
TEST_F(EmptinessProbeTest, ACommandLineThatCannotBeReadBlocksAndIsNamed) {
  fs::create_directories(tree.proc() / "600" / "cmdline");
  const auto found = hv::scanQemuProcesses(tree.proc());
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[2].pid, 600);
  EXPECT_NE(found[2].unreadable, "");
  for (const char* scope : {"known-domains", "all"}) {
    hv::EmptinessQuery query;
    query.known_uuids = {"uuid-web1"};
    const auto report = hv::probeHostEmptiness({}, query, tree.scan(scope));
    const auto& qemu = find(report, "no-qemu-processes");
    EXPECT_FALSE(qemu.ok) << scope;
    EXPECT_NE(qemu.detail.find("pid 600 (command line unreadable: "), std::string::npos)
        << scope << ": " << qemu.detail;
  }
}
