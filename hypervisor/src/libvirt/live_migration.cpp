#include "libvirt/live_migration.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace hostmaint::hv::libvirt {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kPollInterval = 500ms;
constexpr auto kReadErrorWarnAfter = 5s;

// What libvirt's QEMU driver takes as "no limit" (QEMU_DOMAIN_MIG_BANDWIDTH_MAX).
constexpr unsigned long kUnlimitedBandwidthMiBs = 8796093022207UL;

struct TypedParams {
  virTypedParameterPtr params = nullptr;
  int count = 0;
  int capacity = 0;
  TypedParams() = default;
  TypedParams(const TypedParams&) = delete;
  TypedParams& operator=(const TypedParams&) = delete;
  TypedParams(TypedParams&& other) noexcept
      : params(std::exchange(other.params, nullptr)),
        count(std::exchange(other.count, 0)),
        capacity(std::exchange(other.capacity, 0)) {}
  TypedParams& operator=(TypedParams&&) = delete;
  ~TypedParams() { virTypedParamsFree(params, count); }
};

// virDomainMigrateToURI3 on its own thread, and what it returned.
struct BlockingMigrateCall {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int rc = 0;
  std::string error;
  int error_code = VIR_ERR_OK;
  int error_domain = VIR_FROM_NONE;
};

// Job statistics as one snapshot; `active` false when no job runs.
struct JobSnapshot {
  bool active = false;
  ActionProgress progress;
  std::optional<std::string> error;  // the job could not be read
};

JobSnapshot readJob(virDomainPtr dom, unsigned int flags) {
  JobSnapshot snapshot;
  int type = VIR_DOMAIN_JOB_NONE;
  virTypedParameterPtr params = nullptr;
  int n = 0;
  if (virDomainGetJobStats(dom, &type, &params, &n, flags) < 0) {
    snapshot.error = lastError();
    return snapshot;
  }
  auto get = [&](const char* field) {
    unsigned long long value = 0;
    virTypedParamsGetULLong(params, n, field, &value);
    return static_cast<std::uint64_t>(value);
  };
  snapshot.active = type != VIR_DOMAIN_JOB_NONE;
  ActionProgress& p = snapshot.progress;
  p.data_total_bytes = get(VIR_DOMAIN_JOB_DATA_TOTAL);
  p.data_processed_bytes = get(VIR_DOMAIN_JOB_DATA_PROCESSED);
  p.data_remaining_bytes = get(VIR_DOMAIN_JOB_DATA_REMAINING);
  // The dirty rate is in pages per second.
  const std::uint64_t page = get(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
  p.memory_dirty_rate_bps = get(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE) * (page ? page : 4096);
  p.memory_bps = get(VIR_DOMAIN_JOB_MEMORY_BPS);
  p.elapsed = std::chrono::milliseconds(get(VIR_DOMAIN_JOB_TIME_ELAPSED));
  p.iteration = static_cast<unsigned>(get(VIR_DOMAIN_JOB_MEMORY_ITERATION));
  virTypedParamsFree(params, n);
  return snapshot;
}

std::string formatMs(std::chrono::milliseconds value) { return std::to_string(value.count()) + "ms"; }

// Where a monitor picks up a migration an earlier hostmaintd started,
// `already_running` ago, whose allowed downtime is now `downtime`: the
// ladder and the completion timeout continue from there.
struct MonitorResume {
  Clock::duration already_running{0};
  std::chrono::milliseconds downtime{0};
};

// Watches one migration from its own thread. The migrating call blocks the
// worker, so the ladder has to run beside it.
class MigrationMonitor {
 public:
  MigrationMonitor(virDomainPtr dom, const ActionRequest& request, const LiveMigrationContext& ctx,
                   MonitorResume resume = MonitorResume())
      : dom_(dom), request_(request), ctx_(ctx), resume_(resume) {}

  void run() {
    const MigrationTuning& tuning = request_.tuning;
    // Moved forward by the time the migration is held for others: its
    // completion timeout counts only the time it had bandwidth.
    auto started = Clock::now() - resume_.already_running;
    auto last_step = Clock::now();
    auto last_progress = Clock::now();
    auto last_transfer = Clock::now();
    auto last_poll = Clock::now();
    // The least data left seen since the last hold (none yet: the maximum).
    std::uint64_t least_remaining = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t most_processed = 0;
    unsigned step = resumedStep();
    bool read_error_logged = false;
    bool read_failing = false;
    Clock::time_point first_read_error{};
    // Nothing moved at all: not a guest that dirties memory faster than the
    // link, but a link that carries nothing (cut, or the destination stopped
    // reading). Post-copy over it would freeze the guest; the destination is
    // at fault, so the engine retries.
    auto abortIfStalled = [&](Clock::time_point now, std::uint64_t remaining) {
      if (tuning.stall_timeout.count() <= 0 || now - last_transfer <= tuning.stall_timeout)
        return false;
      abort("moved no data for " + std::to_string(tuning.stall_timeout.count()) +
            "s: the link to " + request_.destination_uri + " is cut or stalled (" +
            std::to_string(remaining >> 20) + " MiB left)");
      std::lock_guard stalled_lock(mutex_);
      stalled_ = abort_reason_.has_value();
      return true;
    };
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, kPollInterval, [this] { return finished_; })) {
      lock.unlock();
      JobSnapshot job = readJob(dom_, 0);
      const auto now = Clock::now();
      const auto since_last_poll = now - last_poll;
      last_poll = now;
      if (job.error && !held_ && !post_copy_) {
        // A job that cannot be read shows no data moving either: the stall
        // deadline keeps running, or a cut link that also upsets the job
        // query would never be noticed.
        // The read fails for a moment at every successful end too (the
        // source domain stops before the call returns): only a failure that
        // lasts is worth a warning.
        if (!read_failing) {
          read_failing = true;
          first_read_error = now;
          spdlog::debug("cannot read the migration job of '{}': {}", request_.name, *job.error);
        } else if (!read_error_logged && now - first_read_error >= kReadErrorWarnAfter) {
          spdlog::warn("cannot read the migration job of '{}' for {} s: {}", request_.name,
                       std::chrono::duration_cast<std::chrono::seconds>(now - first_read_error)
                           .count(),
                       *job.error);
          read_error_logged = true;
        }
        // Once aborted, a job that still cannot be read is not aborted (and
        // logged) again at every poll; a failed abort is not recorded, so it
        // is tried again.
        if (!abortReason()) abortIfStalled(now, last_seen_ ? last_seen_->data_remaining_bytes : 0);
      } else if (!job.error) {
        read_failing = false;
      }
      if (job.active) applySteer();
      if (job.active && held_) {
        // Held so that others converge: it is expected to make no progress,
        // so no escalation step, timeout or stall counts meanwhile.
        started += since_last_poll;
        last_step = last_progress = last_transfer = now;
        least_remaining = std::numeric_limits<std::uint64_t>::max();
        job.progress.downtime_limit = downtime_;
        job.progress.held = true;
        last_seen_ = job.progress;
        if (ctx_.progress) ctx_.progress(job.progress);
      } else if (job.active) {
        // Hurried: it cannot converge at the bandwidth it gets, so waiting
        // between the steps only wastes the link.
        const bool hurry = ctx_.steer && ctx_.steer->hurry.load();
        const Clock::duration step_delay =
            hurry ? Clock::duration::zero() : Clock::duration(tuning.downtime_step_delay);
        if (tuning.max_downtime && step == 0) {
          step = 1;
          setDowntime(downtimeAtStep(*tuning.max_downtime, 1, tuning.downtime_steps), false);
          last_step = now;
        } else if (tuning.max_downtime && step < std::max(1u, tuning.downtime_steps) &&
                   now - last_step >= step_delay && now - last_progress >= step_delay) {
          ++step;
          setDowntime(downtimeAtStep(*tuning.max_downtime, step, tuning.downtime_steps), true);
          last_step = now;
        } else if (tuning.post_copy_allowed && !post_copy_ &&
                   step >= std::max(1u, tuning.downtime_steps) &&
                   now - last_step >= step_delay && now - last_progress >= step_delay) {
          switchToPostCopy();
          last_step = now;
        }
        const std::uint64_t remaining = job.progress.data_remaining_bytes;
        if (remaining < least_remaining) {
          least_remaining = remaining;
          last_progress = now;
        }
        if (job.progress.data_processed_bytes > most_processed) {
          most_processed = job.progress.data_processed_bytes;
          last_transfer = now;
        }
        job.progress.downtime_limit = downtime_;
        job.progress.post_copy = post_copy_;
        job.progress.escalation = escalations_.empty() ? std::string() : escalations_.back();
        last_seen_ = job.progress;
        if (ctx_.progress) ctx_.progress(job.progress);
        // Post-copy cannot be aborted without losing the guest: from there
        // it can only finish.
        if (!post_copy_) {
          std::optional<std::string> timed_out;
          if (abortIfStalled(now, remaining)) {
            // A destination failure: the engine retries, no timeout applies.
          } else if (tuning.completion_timeout.count() > 0 && now - started > tuning.completion_timeout) {
            timed_out = "did not complete within " +
                        std::to_string(tuning.completion_timeout.count()) + "s";
          } else if (tuning.progress_timeout.count() > 0 &&
                     now - last_progress > tuning.progress_timeout) {
            timed_out = "made no progress for " + std::to_string(tuning.progress_timeout.count()) +
                        "s (" + std::to_string(remaining >> 20) + " MiB left)";
          }
          // Post-copy, when allowed, is the last resort before giving up (as
          // KubeVirt does at its completion timeout).
          if (timed_out && tuning.post_copy_allowed) {
            spdlog::warn("migration of '{}' {}: switching to post-copy", request_.name, *timed_out);
            switchToPostCopy();
            if (!post_copy_) abort(*timed_out);
          } else if (timed_out) {
            abort(*timed_out);
          }
        }
      }
      if (ctx_.stopping && ctx_.stopping->load()) {
        // hostmaintd is stopping (a restart or an upgrade): the migration
        // goes on in libvirtd, and the next hostmaintd adopts it with this
        // ladder and these timeouts. Aborting would throw away its progress.
        spdlog::info("hostmaintd is stopping: the migration of '{}' goes on in libvirtd",
                     request_.name);
        // Left on its own it gets the link back: nobody would release it if
        // hostmaintd stayed down.
        if (held_) releaseHold();
        lock.lock();
        cv_.wait(lock, [this] { return finished_; });
        return;
      }
      lock.lock();
      if (abort_reason_) {
        cv_.wait(lock, [this] { return finished_; });
        return;
      }
    }
  }

  void finish() {
    std::lock_guard lock(mutex_);
    finished_ = true;
    cv_.notify_all();
  }

  // Valid after finish() and the monitor thread joined.
  const std::optional<std::string>& abortReason() const { return abort_reason_; }
  // The abort was for a link that carried nothing (a destination failure).
  bool stalled() const { return stalled_; }
  const std::vector<std::string>& escalations() const { return escalations_; }
  const std::optional<ActionProgress>& lastSeen() const { return last_seen_; }

 private:
  // The ladder step whose downtime the resumed migration already has (0:
  // not started, or not resumed).
  unsigned resumedStep() const {
    const MigrationTuning& tuning = request_.tuning;
    if (!tuning.max_downtime || resume_.downtime.count() == 0) return 0;
    const unsigned steps = std::max(1u, tuning.downtime_steps);
    unsigned step = 0;
    while (step < steps &&
           downtimeAtStep(*tuning.max_downtime, step + 1, tuning.downtime_steps) <= resume_.downtime)
      ++step;
    return step;
  }

  // Applies the scheduler's hold: the least bandwidth while held, what it
  // had before when released. Post-copy is never held: the guest runs on
  // the destination and waits for every page it touches.
  void applySteer() {
    const bool want = ctx_.steer && ctx_.steer->hold.load() && !post_copy_;
    if (want == held_) return;
    if (want) {
      unsigned long bandwidth = 0;
      if (!bandwidth_before_hold_ && virDomainMigrateGetMaxSpeed(dom_, &bandwidth, 0) == 0)
        bandwidth_before_hold_ = bandwidth;
      if (virDomainMigrateSetMaxSpeed(dom_, kHeldBandwidthMiBs, 0) < 0) {
        spdlog::warn("cannot hold the migration of '{}' (bandwidth {} MiB/s): {}", request_.name,
                     kHeldBandwidthMiBs, lastError());
        return;
      }
      held_ = true;
      spdlog::info("migration of '{}' held at {} MiB/s while others converge", request_.name,
                   kHeldBandwidthMiBs);
      return;
    }
    releaseHold();
  }

  void releaseHold() {
    const unsigned long bandwidth = bandwidth_before_hold_.value_or(
        request_.tuning.bandwidth_mib_s ? *request_.tuning.bandwidth_mib_s : kUnlimitedBandwidthMiBs);
    if (virDomainMigrateSetMaxSpeed(dom_, bandwidth, 0) < 0) {
      spdlog::warn("cannot release the held migration of '{}': {}", request_.name, lastError());
      return;
    }
    held_ = false;
    spdlog::info("migration of '{}' released: it has the link again", request_.name);
  }

  void setDowntime(std::chrono::milliseconds downtime, bool escalation) {
    if (virDomainMigrateSetMaxDowntime(dom_, static_cast<unsigned long long>(downtime.count()), 0) <
        0) {
      spdlog::warn("cannot set the allowed downtime of migrating domain '{}' to {}: {}",
                   request_.name, formatMs(downtime), lastError());
      return;
    }
    downtime_ = downtime;
    if (escalation) {
      note("downtime " + formatMs(downtime));
    } else {
      spdlog::info("migration of '{}': allowed downtime {}", request_.name, formatMs(downtime));
    }
  }

  void switchToPostCopy() {
    if (virDomainMigrateStartPostCopy(dom_, 0) == 0) {
      post_copy_ = true;
      note("post-copy");
    } else {
      spdlog::warn("cannot switch the migration of '{}' to post-copy: {}", request_.name,
                   lastError());
    }
  }

  void note(const std::string& step) {
    escalations_.push_back(step);
    spdlog::info("migration of '{}' to {} does not converge yet: escalated to {}", request_.name,
                 request_.destination_uri, step);
  }

  void abort(const std::string& why) {
    spdlog::warn("aborting the migration of '{}': {}", request_.name, why);
    if (virDomainAbortJob(dom_) < 0) {
      spdlog::warn("cannot abort the migration of '{}': {}", request_.name, lastError());
      return;
    }
    std::lock_guard lock(mutex_);
    abort_reason_ = why;
  }

  virDomainPtr dom_;
  const ActionRequest& request_;
  const LiveMigrationContext& ctx_;
  const MonitorResume resume_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::optional<std::string> abort_reason_;
  bool stalled_ = false;
  std::vector<std::string> escalations_;
  std::chrono::milliseconds downtime_{0};
  bool post_copy_ = false;
  bool held_ = false;
  std::optional<unsigned long> bandwidth_before_hold_;
  std::optional<ActionProgress> last_seen_;
};

}  // namespace

std::chrono::milliseconds downtimeAtStep(std::chrono::milliseconds max, unsigned step,
                                         unsigned steps) {
  if (steps == 0) return max;
  step = std::clamp(step, 1u, steps);
  const std::chrono::milliseconds start = std::min(kQemuDefaultDowntime, max);
  if (steps == 1) return max;
  return start + (max - start) * (step - 1) / (steps - 1);
}

FailureKind classifyMigrationFailure(int error_code, int error_domain, bool connection_alive) {
  if (!connection_alive) return FailureKind::connection_lost;
  // The source libvirtd could not reach or use the destination.
  if (error_domain == VIR_FROM_RPC || error_code == VIR_ERR_NO_CONNECT ||
      error_code == VIR_ERR_AUTH_FAILED || error_code == VIR_ERR_SYSTEM_ERROR ||
      error_code == VIR_ERR_OPERATION_TIMEOUT || error_code == VIR_ERR_NO_SUPPORT) {
    return FailureKind::destination;
  }
  return FailureKind::other;
}

ActionResult migrateLive(virConnectPtr conn, virDomainPtr dom, const ActionRequest& request,
                         const LiveMigrationContext& ctx) {
  const std::string subject = "live migration of domain '" + request.name + "'";
  ActionResult result;
  auto fail = [&](const std::string& why, FailureKind kind) {
    result.ok = false;
    result.message = subject + " failed: " + why;
    result.failure = kind;
    return result;
  };
  const MigrationTuning& tuning = request.tuning;
  unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
  // A persistent domain is defined there and undefined here; a transient one
  // stays transient (libvirt would otherwise define it on the destination).
  if (virDomainIsPersistent(dom) != 0)
    flags |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
  if (tuning.auto_converge) flags |= VIR_MIGRATE_AUTO_CONVERGE;
  if (tuning.post_copy_allowed) flags |= VIR_MIGRATE_POSTCOPY;
  TypedParams params;
  if (!request.migrate_uri.empty() &&
      virTypedParamsAddString(&params.params, &params.count, &params.capacity, VIR_MIGRATE_PARAM_URI,
                              request.migrate_uri.c_str()) < 0)
    return fail("cannot set the migration URI: " + lastError(), FailureKind::other);
  if (tuning.bandwidth_mib_s &&
      virTypedParamsAddULLong(&params.params, &params.count, &params.capacity,
                              VIR_MIGRATE_PARAM_BANDWIDTH, *tuning.bandwidth_mib_s) < 0)
    return fail("cannot set the bandwidth: " + lastError(), FailureKind::other);
  if (tuning.parallel_connections) {
    flags |= VIR_MIGRATE_PARALLEL;
    if (virTypedParamsAddInt(&params.params, &params.count, &params.capacity,
                             VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
                             static_cast<int>(*tuning.parallel_connections)) < 0)
      return fail("cannot set the parallel connections: " + lastError(), FailureKind::other);
  }

  // The call blocks until the migration ends, on a thread of its own that
  // holds its own references: when hostmaintd stops, this worker returns
  // and the migration goes on in libvirtd (peer-to-peer, the source libvirtd
  // drives it), to be adopted by the next hostmaintd. The thread ends with
  // the call, or with the process.
  auto call = std::make_shared<BlockingMigrateCall>();
  virConnectRef(conn);
  virDomainRef(dom);
  std::thread([call, conn, dom, uri = request.destination_uri, params = std::move(params),
               flags]() mutable {
    Connection own_conn(conn);
    Domain own_dom(dom);
    const int rc = virDomainMigrateToURI3(dom, uri.c_str(), params.params, params.count, flags);
    // Captured before any other libvirt call replaces the thread's error.
    const std::string error = rc < 0 ? lastError() : std::string();
    virErrorPtr last = rc < 0 ? virGetLastError() : nullptr;
    std::lock_guard lock(call->mutex);
    call->rc = rc;
    call->error = error;
    call->error_code = last ? last->code : VIR_ERR_OK;
    call->error_domain = last ? last->domain : VIR_FROM_NONE;
    call->done = true;
    call->cv.notify_all();
  }).detach();

  MigrationMonitor monitor(dom, request, ctx);
  std::thread watcher([&monitor] { monitor.run(); });
  const auto started = Clock::now();
  bool left_running = false;
  {
    std::unique_lock lock(call->mutex);
    while (!call->cv.wait_for(lock, 100ms, [&] { return call->done; })) {
      if (ctx.stopping && ctx.stopping->load()) {
        left_running = true;
        break;
      }
    }
  }
  spdlog::debug(
      "live migration of '{}': call returned after {} ms", request.name,
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  monitor.finish();
  watcher.join();
  if (left_running) {
    spdlog::info("hostmaintd is stopping: the live migration of '{}' to {} goes on in libvirtd; "
                 "the next hostmaintd adopts it",
                 request.name, request.destination_uri);
    return fail("left running in libvirtd because hostmaintd is stopping; the next hostmaintd "
                "adopts it",
                FailureKind::connection_lost);
  }
  const int rc = call->rc;
  const std::string error = call->error;
  const int error_code = call->error_code;
  const int error_domain = call->error_domain;
  result.escalations = monitor.escalations();
  if (rc < 0) {
    if (monitor.abortReason() && monitor.stalled()) {
      return fail(*monitor.abortReason() + "; aborted (" + error + ")", FailureKind::destination);
    }
    if (monitor.abortReason()) {
      return fail("did not converge: " + *monitor.abortReason() + "; aborted (" + error + ")",
                  FailureKind::not_converged);
    }
    const bool alive = virConnectIsAlive(conn) == 1;
    return fail("to " + request.destination_uri + ": " + error,
                classifyMigrationFailure(error_code, error_domain, alive));
  }
  // The completed job's statistics give the achieved throughput; when the
  // source no longer has them, the last snapshot and the wall time do.
  JobSnapshot completed = readJob(dom, VIR_DOMAIN_JOB_STATS_COMPLETED);
  ActionProgress final_progress = completed.progress;
  if (final_progress.data_processed_bytes == 0 && monitor.lastSeen()) {
    final_progress = *monitor.lastSeen();
    final_progress.elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  }
  if (final_progress.memory_bps == 0 && final_progress.elapsed.count() > 0) {
    final_progress.memory_bps = final_progress.data_processed_bytes * 1000 /
                                static_cast<std::uint64_t>(final_progress.elapsed.count());
  }
  if (final_progress.data_processed_bytes > 0) result.final_progress = final_progress;
  result.ok = true;
  result.message = subject + " to " + request.destination_uri + " done" +
                   (result.escalations.empty() ? std::string()
                                               : " after " + std::to_string(result.escalations.size()) +
                                                     " escalation step(s)");
  return result;
}

AdoptedMigrationEnd watchAdoptedMigration(virDomainPtr dom, const ActionRequest& request,
                                          const LiveMigrationContext& ctx) {
  unsigned long long downtime_ms = 0;
  if (virDomainMigrateGetMaxDowntime(dom, &downtime_ms, 0) < 0) downtime_ms = 0;
  // An earlier hostmaintd may have stopped while it held this migration:
  // the new one starts it unheld (its scheduler holds it again if need be).
  unsigned long bandwidth = 0;
  const unsigned long policy_bandwidth =
      request.tuning.bandwidth_mib_s ? *request.tuning.bandwidth_mib_s : kUnlimitedBandwidthMiBs;
  if (virDomainMigrateGetMaxSpeed(dom, &bandwidth, 0) == 0 && bandwidth == kHeldBandwidthMiBs &&
      policy_bandwidth != kHeldBandwidthMiBs) {
    if (virDomainMigrateSetMaxSpeed(dom, policy_bandwidth, 0) == 0) {
      spdlog::info("adopted migration of '{}' was held by the previous hostmaintd: released",
                   request.name);
    } else {
      spdlog::warn("cannot release the adopted migration of '{}' held at {} MiB/s: {}", request.name,
                   kHeldBandwidthMiBs, lastError());
    }
  }
  MonitorResume resume{request.already_running, std::chrono::milliseconds(downtime_ms)};
  MigrationMonitor monitor(dom, request, ctx, resume);
  std::thread watcher([&monitor] { monitor.run(); });
  AdoptedMigrationEnd end;
  while (true) {
    if (ctx.stopping && ctx.stopping->load()) {
      end.stopping = true;
      break;
    }
    virDomainJobInfo info{};
    if (virDomainGetJobInfo(dom, &info) < 0 || info.type == VIR_DOMAIN_JOB_NONE) break;
    std::this_thread::sleep_for(200ms);
  }
  monitor.finish();
  watcher.join();
  end.abort_reason = monitor.abortReason();
  end.stalled = monitor.stalled();
  end.escalations = monitor.escalations();
  return end;
}

}  // namespace hostmaint::hv::libvirt
