#include "libvirt/dirty_rate.hpp"

#include <chrono>
#include <optional>
#include <thread>

namespace hostmaint::hv::libvirt {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// QEMU samples for whole seconds; one is the least and enough to tell a
// guest that rewrites its memory from one that does not.
constexpr int kSamplingSeconds = 1;
constexpr auto kPollInterval = 200ms;
constexpr auto kGiveUpAfter = 5s;

struct DirtyRateStats {
  int status = VIR_DOMAIN_DIRTYRATE_UNSTARTED;
  long long start_time = -1;
  std::optional<long long> mib_per_second;
};

std::optional<DirtyRateStats> readStats(virDomainPtr dom) {
  virDomainPtr doms[] = {dom, nullptr};
  virDomainStatsRecordPtr* records = nullptr;
  const int count = virDomainListGetStats(doms, VIR_DOMAIN_STATS_DIRTYRATE, &records, 0);
  if (count < 0) return std::nullopt;
  DirtyRateStats stats;
  if (count > 0) {
    const virDomainStatsRecordPtr record = records[0];
    int status = 0;
    long long value = 0;
    if (virTypedParamsGetInt(record->params, record->nparams, "dirtyrate.calc_status", &status) == 1)
      stats.status = status;
    if (virTypedParamsGetLLong(record->params, record->nparams, "dirtyrate.calc_start_time",
                               &value) == 1)
      stats.start_time = value;
    if (virTypedParamsGetLLong(record->params, record->nparams, "dirtyrate.megabytes_per_second",
                               &value) == 1)
      stats.mib_per_second = value;
  }
  virDomainStatsRecordListFree(records);
  return stats;
}

}  // namespace

DirtyRateReport measureDirtyRate(virConnectPtr conn, const std::string& uuid,
                                 const std::atomic<bool>& stopping) {
  DirtyRateReport report;
  Domain dom(virDomainLookupByUUIDString(conn, uuid.c_str()));
  if (!dom) {
    report.error = "domain " + uuid + " not found: " + lastError();
    return report;
  }
  const std::string name = virDomainGetName(dom.get()) ? virDomainGetName(dom.get()) : uuid;
  auto fail = [&](const std::string& why) {
    report.error = "cannot measure the dirty rate of '" + name + "': " + why;
    return report;
  };
  // A measurement left from an earlier call must not be taken for this one.
  const std::optional<DirtyRateStats> before = readStats(dom.get());
  if (virDomainStartDirtyRateCalc(dom.get(), kSamplingSeconds,
                                  VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING) < 0)
    return fail(lastError());
  const auto started = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(kSamplingSeconds));
  while (!stopping.load()) {
    const std::optional<DirtyRateStats> now = readStats(dom.get());
    if (!now) return fail(lastError());
    const bool fresh = !before || before->status != VIR_DOMAIN_DIRTYRATE_MEASURED ||
                       now->start_time != before->start_time;
    if (now->status == VIR_DOMAIN_DIRTYRATE_MEASURED && fresh && now->mib_per_second) {
      report.bytes_per_second = static_cast<std::uint64_t>(std::max(0LL, *now->mib_per_second))
                                << 20;
      return report;
    }
    if (Clock::now() - started > kGiveUpAfter)
      return fail("no measurement after " + std::to_string(kGiveUpAfter.count()) + " s");
    std::this_thread::sleep_for(kPollInterval);
  }
  return fail("hostmaintd is stopping");
}

}  // namespace hostmaint::hv::libvirt
