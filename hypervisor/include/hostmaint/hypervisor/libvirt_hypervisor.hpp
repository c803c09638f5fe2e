// The libvirt implementation of the hypervisor seam, and the host scans the
// emptiness evidence needs. No libvirt type appears here: the daemon wires
// these together without including libvirt.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "hostmaint/hypervisor/hypervisor.hpp"

namespace hostmaint::hv {

struct LibvirtSettings {
  std::string uri = "qemu:///system";
  std::chrono::seconds keepalive_interval{5};
  unsigned keepalive_count = 3;
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{30000};
  // Which QEMU processes count against emptiness: "all" of them, or only
  // those whose -uuid is one of EmptinessQuery::known_uuids ("known-domains").
  std::string qemu_process_scope = "all";
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path sysfs_root = "/sys";
  unsigned worker_threads = 8;  // threads running blocking libvirt actions and probes
};

// Keeps libvirt's event loop (virEventRegisterImpl) running on an Asio
// io_context: every fd watch and timeout callback runs on the thread that
// runs the io_context.
//
// libvirt cannot unregister an event implementation: once installed it stays
// for the life of the process. Destroying this object cancels every watch and
// timer and makes later registrations by libvirt fail; it does not give
// libvirt its own loop back. Destroy it only after every connection is closed.
class AsioEventLoopRegistration {
 public:
  class Loop;  // defined in the implementation
  // Shared: libvirt's calls from other threads hold the loop while they run.
  explicit AsioEventLoopRegistration(std::shared_ptr<Loop> loop);
  ~AsioEventLoopRegistration();
  AsioEventLoopRegistration(const AsioEventLoopRegistration&) = delete;
  AsioEventLoopRegistration& operator=(const AsioEventLoopRegistration&) = delete;

 private:
  std::shared_ptr<Loop> loop_;
};

// Installs the Asio-backed event loop. Call once per process, before the
// first connection is opened; a second call throws std::logic_error.
std::unique_ptr<AsioEventLoopRegistration> installAsioEventLoop(boost::asio::io_context& io);

// A Hypervisor on a libvirt connection. It connects asynchronously once `io`
// runs (the observer hears connected, or disconnected with libvirt's error),
// reconnects with backoff, and delivers every callback on the io thread.
std::unique_ptr<Hypervisor> makeLibvirtHypervisor(boost::asio::io_context& io,
                                                  LibvirtSettings settings);

// ---------------------------------------------------------------------------
// Host scans behind the emptiness evidence. Plain file reading, no libvirt:
// tests point them at a fake /proc or /sys tree.

// A QEMU process found in /proc, identified by its command line only (reading
// /proc/<pid>/exe needs privileges the daemon does not keep).
struct QemuProcess {
  int pid = 0;
  std::string uuid;  // from -uuid, empty when absent
  std::string name;  // from -name guest=NAME,... or -name NAME, empty when absent
  // Set when the command line could not be read (other than the process being
  // gone): such a process may be a QEMU, so it still blocks emptiness.
  std::string unreadable;
};

// Every process under `proc_root` whose argv[0] is a qemu-system-* or
// qemu-kvm binary, by pid. Processes that vanish while scanning are skipped;
// one whose command line cannot be read for another reason is listed with
// `unreadable` set.
std::vector<QemuProcess> scanQemuProcesses(const std::filesystem::path& proc_root);

// One huge page pool: sysfs_root/kernel/mm/hugepages/hugepages-<size>/.
struct HugePagePool {
  std::string size;         // "2048kB"
  std::uint64_t total = 0;  // nr_hugepages
  std::uint64_t free = 0;   // free_hugepages
  std::uint64_t inUse() const { return total > free ? total - free : 0; }
};

// The huge page pools of the host; empty when none are configured (or the
// directory does not exist). Throws std::runtime_error naming the file when a
// pool's counters cannot be read.
std::vector<HugePagePool> readHugePagePools(const std::filesystem::path& sysfs_root);

// Where the emptiness probe looks outside libvirt.
struct HostScanSettings {
  std::string qemu_process_scope = "all";  // or "known-domains"
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path sysfs_root = "/sys";
};

// Builds the evidence from an inventory and the host scans. Check names:
// no-active-domains, no-paused-domains, no-running-jobs, no-qemu-processes,
// hugepages-free and, for removal, no-managed-save-images,
// no-autostart-domains, no-defined-domains.
EmptinessReport probeHostEmptiness(const std::vector<DomainInfo>& domains,
                                   const EmptinessQuery& query, const HostScanSettings& scan);

}  // namespace hostmaint::hv
