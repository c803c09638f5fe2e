// Delivery of owner notices (docs/notices.md).
//
// NoticeBoard lives on the io_context: it takes every status snapshot the
// engine publishes, lets its NoticeLedger decide which notices are new,
// changed or cancelled, persists the ledger (so a restart neither re-sends
// nor renumbers what was sent), puts the issued notices into the snapshot,
// and hands each new one to the D-Bus signal and to the webhook.
//
// NoticeWebhook POSTs notices to [notices] webhook_url from a worker thread
// with retries and backoff; the loop never waits on the network. Its health
// is posted back to the io_context and shown in status.json.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/notice.hpp"
#include "hostmaint/agent/service/status_change_log.hpp"

namespace hostmaint::agent::controller {
class HttpClient;
}

namespace hostmaint::service {

// The body POSTed for one notice (also what tests compare against).
nlohmann::json webhookBody(const std::string& host, const agent::NoticeLedger::Issued& issued);

// The delay before attempt `attempt` (2 = the first retry): retry_min
// doubled per attempt, at most retry_max.
std::chrono::milliseconds webhookRetryDelay(unsigned attempt, std::chrono::milliseconds retry_min,
                                            std::chrono::milliseconds retry_max);

class NoticeWebhook {
 public:
  // Reads the token file with the controller's checks (throws
  // controller::TokenFileError naming it) and builds the HTTP client; the
  // worker starts at once. `on_health` runs on the io_context.
  NoticeWebhook(boost::asio::io_context& io, const agent::NoticesConfig& config,
                const agent::WallClock& clock,
                std::function<void(const agent::NoticeWebhookHealth&)> on_health);
  // Wakes and joins the worker; a request in flight ends within its timeout.
  ~NoticeWebhook();
  NoticeWebhook(const NoticeWebhook&) = delete;

  // What the constructor checks (token file, client settings), without a
  // worker: for --check-config. Throws what the constructor would.
  static void checkSettings(const agent::NoticesConfig& config);
  NoticeWebhook& operator=(const NoticeWebhook&) = delete;

  // Queues a notice; a newer revision for the same domain replaces one not
  // yet delivered (the owner needs the current notice, not the history).
  void enqueue(const std::string& uuid, std::uint64_t revision, nlohmann::json body);

  const std::string& url() const { return config_.webhook_url; }

 private:
  struct Pending {
    std::uint64_t revision = 0;
    std::string body;
    unsigned attempts = 0;
    std::chrono::steady_clock::time_point due;
  };

  void run();
  void publishHealth();  // with mutex_ held

  boost::asio::io_context& io_;
  agent::NoticesConfig config_;
  const agent::WallClock& clock_;
  std::function<void(const agent::NoticeWebhookHealth&)> on_health_;
  std::unique_ptr<agent::controller::HttpClient> client_;  // worker thread only

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::map<std::string, Pending> queue_;  // by domain uuid
  agent::NoticeWebhookHealth health_;
  std::optional<std::string> last_logged_error_;
  std::thread worker_;
};

class NoticeBoard {
 public:
  // Loads `<state_dir>/notices.json` when present. A malformed ledger is
  // logged and replaced (notices are then issued again with new revisions):
  // losing the numbering must not stop the daemon. `webhook` may be nullptr
  // (no [notices] webhook_url).
  NoticeBoard(std::filesystem::path state_dir, std::string host, const agent::WallClock& clock,
              std::unique_ptr<NoticeWebhook> webhook);

  // From the webhook's health reports (io_context).
  void setWebhookHealth(agent::NoticeWebhookHealth health) { webhook_health_ = std::move(health); }

  // Puts the issued notices (and the webhook's health) into `status`,
  // issuing what is new: persisted and queued for the webhook before this
  // returns them (the caller emits them as the D-Bus signal and logs each,
  // noticeLogLine()).
  std::vector<agent::NoticeLedger::Issued> apply(agent::HostStatus& status);

  const std::filesystem::path& path() const { return path_; }
  // The ledger takes its notices' texts from `texts` (NoticeTexts).
  void shareNoticeTexts(std::shared_ptr<agent::NoticeTexts> texts) {
    ledger_.shareNoticeTexts(std::move(texts));
  }

 private:
  void save();

  std::filesystem::path path_;
  std::string host_;
  const agent::WallClock& clock_;
  agent::NoticeLedger ledger_;
  std::unique_ptr<NoticeWebhook> webhook_;
  std::optional<agent::NoticeWebhookHealth> webhook_health_;
  std::string last_save_error_;
};

// The log line of an issued notice ("notice revision N for domain X: ...").
StatusLogLine noticeLogLine(const agent::NoticeLedger::Issued& notice);

}  // namespace hostmaint::service
