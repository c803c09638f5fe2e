#include "hostmaint/agent/service/notice_board.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <fstream>
#include <sstream>

#include "hostmaint/agent/controller/http_client.hpp"
#include "hostmaint/agent/journal.hpp"

namespace hostmaint::service {
namespace {

namespace ctl = agent::controller;
using SteadyClock = std::chrono::steady_clock;

// Revisions keep growing across restarts even when the ledger is lost:
// without one, they start above the current time in microseconds.
std::uint64_t clockSeed(agent::TimePoint now) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  return micros > 0 ? static_cast<std::uint64_t>(micros) : 0;
}

agent::NoticeLedger loadLedger(const std::filesystem::path& path, agent::TimePoint now) {
  std::ifstream file(path);
  if (!file) return agent::NoticeLedger(clockSeed(now));
  std::ostringstream text;
  text << file.rdbuf();
  try {
    return agent::NoticeLedger::decode(text.str());
  } catch (const agent::NoticeLedgerError& error) {
    spdlog::error("{}: {}; starting a new notice ledger (current notices are sent again with new "
                  "revisions)",
                  path.string(), error.what());
    return agent::NoticeLedger(clockSeed(now));
  }
}

ctl::HttpClientOptions webhookOptions(const agent::NoticesConfig& config) {
  ctl::HttpClientOptions options;
  options.ca_file = config.webhook_ca_file;
  if (config.webhook_token_file) options.bearer_token = ctl::readBearerToken(*config.webhook_token_file);
  options.connect_timeout = config.webhook_connect_timeout;
  options.request_timeout = config.webhook_timeout;
  // The answer is not read; a small limit keeps a hostile server from
  // making us buffer much.
  options.max_response_bytes = 64 * 1024;
  return options;
}

}  // namespace

nlohmann::json webhookBody(const std::string& host, const agent::NoticeLedger::Issued& issued) {
  return {
      {"type", "hostmaint.notice"},
      {"host", host},
      {"domain", {{"uuid", issued.uuid}, {"name", issued.name}}},
      {"notice", agent::noticeToJson(issued.notice)},
  };
}

std::chrono::milliseconds webhookRetryDelay(unsigned attempt, std::chrono::milliseconds retry_min,
                                            std::chrono::milliseconds retry_max) {
  std::chrono::milliseconds delay = retry_min;
  for (unsigned i = 2; i < attempt && delay < retry_max; ++i) delay *= 2;
  return std::min(delay, retry_max);
}

NoticeWebhook::NoticeWebhook(boost::asio::io_context& io, const agent::NoticesConfig& config,
                             const agent::WallClock& clock,
                             std::function<void(const agent::NoticeWebhookHealth&)> on_health)
    : io_(io),
      config_(config),
      clock_(clock),
      on_health_(std::move(on_health)),
      client_(std::make_unique<ctl::HttpClient>(webhookOptions(config))) {
  health_.url = config_.webhook_url;
  worker_ = std::thread([this] { run(); });
}

void NoticeWebhook::checkSettings(const agent::NoticesConfig& config) {
  ctl::HttpClient client(webhookOptions(config));
}

NoticeWebhook::~NoticeWebhook() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void NoticeWebhook::enqueue(const std::string& uuid, std::uint64_t revision, nlohmann::json body) {
  {
    std::lock_guard lock(mutex_);
    queue_[uuid] = Pending{revision, body.dump(), 0, SteadyClock::now()};
    health_.pending = queue_.size();
  }
  wake_.notify_all();
}

void NoticeWebhook::publishHealth() {
  health_.pending = queue_.size();
  boost::asio::post(io_, [on_health = on_health_, health = health_] {
    if (on_health) on_health(health);
  });
}

void NoticeWebhook::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    // The earliest due notice; domains in uuid order at equal times.
    auto next = std::min_element(queue_.begin(), queue_.end(), [](const auto& a, const auto& b) {
      return a.second.due < b.second.due;
    });
    if (next == queue_.end()) {
      wake_.wait(lock);
      continue;
    }
    if (next->second.due > SteadyClock::now()) {
      wake_.wait_until(lock, next->second.due);
      continue;
    }
    const std::string uuid = next->first;
    Pending attempt = next->second;
    ++attempt.attempts;
    lock.unlock();
    std::optional<std::string> error;
    try {
      client_->postJson(config_.webhook_url, attempt.body);
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    lock.lock();
    auto current = queue_.find(uuid);
    // A newer revision queued meanwhile stays queued, due at once.
    const bool superseded = current == queue_.end() || current->second.revision != attempt.revision;
    if (!error) {
      ++health_.delivered;
      health_.consecutive_failures = 0;
      health_.last_success = clock_.now();
      if (!superseded) queue_.erase(current);
      if (last_logged_error_) {
        spdlog::info("notice webhook {} accepts notices again", config_.webhook_url);
        last_logged_error_.reset();
      }
      spdlog::debug("notice revision {} for domain {} delivered to {}", attempt.revision, uuid,
                    config_.webhook_url);
    } else {
      ++health_.consecutive_failures;
      health_.last_failure = clock_.now();
      health_.last_error = "notice revision " + std::to_string(attempt.revision) +
                           " for domain " + uuid + ": " + *error;
      if (!superseded) {
        if (attempt.attempts >= config_.webhook_attempts) {
          ++health_.dropped;
          queue_.erase(current);
          spdlog::error("notice webhook: gave up on notice revision {} for domain {} after {} "
                        "attempts: {}",
                        attempt.revision, uuid, attempt.attempts, *error);
        } else {
          current->second.attempts = attempt.attempts;
          current->second.due =
              SteadyClock::now() + webhookRetryDelay(attempt.attempts + 1, config_.webhook_retry_min,
                                                     config_.webhook_retry_max);
        }
      }
      // Logged once per distinct error text, not on every retry.
      if (*error != last_logged_error_.value_or("")) {
        spdlog::warn("notice webhook: {} (attempt {} of {})", *health_.last_error,
                     attempt.attempts, config_.webhook_attempts);
        last_logged_error_ = *error;
      }
    }
    publishHealth();
  }
}

NoticeBoard::NoticeBoard(std::filesystem::path state_dir, std::string host,
                         const agent::WallClock& clock, std::unique_ptr<NoticeWebhook> webhook)
    : path_(std::move(state_dir) / "notices.json"),
      host_(std::move(host)),
      clock_(clock),
      ledger_(loadLedger(path_, clock.now())),
      webhook_(std::move(webhook)) {
  if (webhook_) {
    agent::NoticeWebhookHealth health;
    health.url = webhook_->url();
    webhook_health_ = health;
  }
}

std::vector<agent::NoticeLedger::Issued> NoticeBoard::apply(agent::HostStatus& status) {
  std::vector<agent::NoticeLedger::Issued> issued = ledger_.observe(status, clock_.now());
  status.notice_webhook = webhook_health_;
  if (issued.empty()) return issued;
  // Saved before it goes out: a restart must not give the same revision to
  // different content.
  save();
  if (webhook_) {
    for (const agent::NoticeLedger::Issued& notice : issued)
      webhook_->enqueue(notice.uuid, notice.notice.revision, webhookBody(host_, notice));
  }
  return issued;
}

StatusLogLine noticeLogLine(const agent::NoticeLedger::Issued& notice) {
  return {spdlog::level::info, "notice revision " + std::to_string(notice.notice.revision) +
                                   " for domain " + notice.name + ": " + notice.notice.message};
}

void NoticeBoard::save() {
  try {
    agent::writeFileAtomically(path_, ledger_.encode(), 0600);
    if (!last_save_error_.empty()) spdlog::info("{} is written again", path_.string());
    last_save_error_.clear();
  } catch (const agent::JournalError& error) {
    if (error.what() != last_save_error_) {
      spdlog::error("cannot save the notice ledger (a restart would send current notices again "
                    "with new revisions): {}",
                    error.what());
    }
    last_save_error_ = error.what();
  }
}

}  // namespace hostmaint::service
