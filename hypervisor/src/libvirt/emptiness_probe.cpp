// Emptiness evidence: the inventory's view plus what /proc and sysfs show,
// because a QEMU process or a pinned huge page can outlive libvirt's record.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "hostmaint/file_descriptor.hpp"
#include "hostmaint/hypervisor/libvirt_hypervisor.hpp"

namespace hostmaint::hv {
namespace fs = std::filesystem;

namespace {

bool isNumber(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

struct Cmdline {
  std::vector<std::string> argv;
  int error = 0;  // errno of a failed open or read; 0 when read
};

// With read(2), not a stream: libstdc++'s filebuf throws when a read fails,
// and reading a process's cmdline fails with ESRCH once the process is gone.
Cmdline readCmdline(const fs::path& file) {
  Cmdline result;
  const FileDescriptor in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) {
    result.error = errno;
    return result;
  }
  std::string raw;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(in.get(), buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = errno;
      return result;
    }
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  std::string::size_type start = 0;
  while (start < raw.size()) {
    auto end = raw.find('\0', start);
    if (end == std::string::npos) end = raw.size();
    result.argv.push_back(raw.substr(start, end - start));
    start = end + 1;
  }
  return result;
}

// The process exited between the listing and the read.
bool vanished(int error) { return error == ENOENT || error == ESRCH; }

bool isQemuBinary(const std::string& argv0) {
  const std::string base = fs::path(argv0).filename().string();
  return base.rfind("qemu-system-", 0) == 0 || base == "qemu-kvm";
}

// "-name guest=web1,debug-threads=on" or "-name web1"; QEMU escapes a comma
// in a value by doubling it.
std::string guestName(const std::string& value) {
  std::string text = value;
  if (text.rfind("guest=", 0) == 0) text = text.substr(6);
  std::string name;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ',') {
      if (i + 1 < text.size() && text[i + 1] == ',') {
        name += ',';
        ++i;
        continue;
      }
      break;
    }
    name += text[i];
  }
  return name;
}

std::uint64_t readCounter(const fs::path& file) {
  std::ifstream in(file);
  std::uint64_t value = 0;
  if (!(in >> value)) throw std::runtime_error("cannot read huge page counter " + file.string());
  return value;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

EvidenceCheck check(std::string name, const std::vector<std::string>& blockers,
                    std::string when_clear) {
  EvidenceCheck c;
  c.name = std::move(name);
  c.ok = blockers.empty();
  c.detail = c.ok ? std::move(when_clear) : joined(blockers);
  return c;
}

}  // namespace

std::vector<QemuProcess> scanQemuProcesses(const fs::path& proc_root) {
  std::vector<QemuProcess> found;
  std::error_code ec;
  for (fs::directory_iterator it(proc_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string pid = it->path().filename().string();
    if (!isNumber(pid)) continue;
    const auto cmdline = readCmdline(it->path() / "cmdline");
    if (cmdline.error != 0 && !vanished(cmdline.error)) {
      // Whatever it runs, it might be a QEMU: it cannot count as evidence.
      QemuProcess process;
      process.pid = std::stoi(pid);
      process.unreadable = std::error_code(cmdline.error, std::generic_category()).message();
      found.push_back(std::move(process));
      continue;
    }
    const auto& argv = cmdline.argv;
    if (argv.empty() || !isQemuBinary(argv[0])) continue;  // a kernel thread, a zombie, gone
    QemuProcess process;
    process.pid = std::stoi(pid);
    for (std::size_t i = 1; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-uuid") process.uuid = argv[i + 1];
      if (argv[i] == "-name") process.name = guestName(argv[i + 1]);
    }
    found.push_back(std::move(process));
  }
  std::sort(found.begin(), found.end(),
            [](const QemuProcess& a, const QemuProcess& b) { return a.pid < b.pid; });
  return found;
}

std::vector<HugePagePool> readHugePagePools(const fs::path& sysfs_root) {
  const fs::path dir = sysfs_root / "kernel" / "mm" / "hugepages";
  std::vector<HugePagePool> pools;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry.rfind("hugepages-", 0) != 0) continue;
    HugePagePool pool;
    pool.size = entry.substr(std::string("hugepages-").size());
    pool.total = readCounter(it->path() / "nr_hugepages");
    pool.free = readCounter(it->path() / "free_hugepages");
    pools.push_back(std::move(pool));
  }
  std::sort(pools.begin(), pools.end(),
            [](const HugePagePool& a, const HugePagePool& b) { return a.size < b.size; });
  return pools;
}

EmptinessReport probeHostEmptiness(const std::vector<DomainInfo>& domains,
                                   const EmptinessQuery& query, const HostScanSettings& scan) {
  std::vector<std::string> active, paused, jobs, saved, autostart, defined;
  for (const auto& d : domains) {
    const std::string label = "'" + d.name + "'";
    switch (d.state) {
      case DomainRunState::running:
      case DomainRunState::shutting_down:
      case DomainRunState::pmsuspended:
        active.push_back(label + " (" + std::string(toString(d.state)) + ")");
        break;
      case DomainRunState::paused:
        active.push_back(label + " (paused)");
        paused.push_back(label);
        break;
      case DomainRunState::unknown:
        active.push_back(label + " (state unknown)");
        break;
      case DomainRunState::shutoff:
      case DomainRunState::crashed:
        break;
    }
    if (d.job_active) jobs.push_back(label);
    if (d.has_managed_save) saved.push_back(label);
    if (d.autostart) autostart.push_back(label);
    if (d.persistent) defined.push_back(label);
  }

  EmptinessReport report;
  report.checks.push_back(check("no-active-domains", active, "no domain is running"));
  report.checks.push_back(check("no-paused-domains", paused, "no domain is paused"));
  report.checks.push_back(check("no-running-jobs", jobs, "no libvirt job is running"));

  std::vector<std::string> qemu;
  const bool known_only = scan.qemu_process_scope == "known-domains";
  for (const auto& p : scanQemuProcesses(scan.proc_root)) {
    const bool known = std::find(query.known_uuids.begin(), query.known_uuids.end(), p.uuid) !=
                       query.known_uuids.end();
    if (known_only && p.unreadable.empty() && !known) continue;
    std::string item = "pid " + std::to_string(p.pid);
    if (!p.name.empty()) item += " (guest " + p.name + ")";
    if (!p.unreadable.empty()) item += " (command line unreadable: " + p.unreadable + ")";
    qemu.push_back(std::move(item));
  }
  report.checks.push_back(check("no-qemu-processes", qemu,
                                known_only ? "no QEMU process of a known domain"
                                           : "no QEMU process"));

  EvidenceCheck huge{"hugepages-free", false, ""};
  try {
    const auto pools = readHugePagePools(scan.sysfs_root);
    std::vector<std::string> busy;
    for (const auto& p : pools)
      if (p.inUse() > 0)
        busy.push_back(p.size + ": " + std::to_string(p.inUse()) + " of " +
                       std::to_string(p.total) + " in use");
    huge.ok = busy.empty();
    huge.detail = pools.empty()  ? "no huge pages configured"
                  : busy.empty() ? "all huge pages free"
                                 : joined(busy);
  } catch (const std::runtime_error& e) {
    huge.detail = e.what();  // unreadable counters prove nothing: not ok
  }
  report.checks.push_back(std::move(huge));

  if (query.removal) {
    report.checks.push_back(
        check("no-managed-save-images", saved, "no domain has a managed-save image"));
    report.checks.push_back(check("no-autostart-domains", autostart, "no domain autostarts"));
    report.checks.push_back(check("no-defined-domains", defined, "no domain is defined"));
  }
  return report;
}

}  // namespace hostmaint::hv
