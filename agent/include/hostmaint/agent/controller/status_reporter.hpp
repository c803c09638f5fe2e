// Delivers status reports to the controller so that the newest status wins:
// the reporter holds only the latest document, and a retry after a failure
// sends whatever is newest at that moment, never a stale one over a newer.
//
// Thread-safe: the engine offers documents from the event loop while a
// worker thread calls deliver(); the transport runs outside the lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent::controller {

// Sends one report body; throws (HttpError in production) when it was not
// accepted.
class StatusTransport {
 public:
  virtual ~StatusTransport() = default;
  virtual void putStatus(const std::string& body) = 0;
};

// A report_seq seed that keeps growing across daemon restarts: microseconds
// since the epoch at start, then +1 per report. (The controller drops
// reports whose report_seq is not above the last it accepted.)
std::uint64_t initialReportSeq(TimePoint now);

class StatusReporter {
 public:
  StatusReporter(StatusTransport& transport, std::uint64_t first_seq);

  // Makes `status_document` (statusToJson output) the one to send, replacing
  // any that has not been delivered yet. Returns the report_seq given to it.
  std::uint64_t offer(nlohmann::json status_document);
  // Queues the last delivered document again with a new report_seq, when
  // nothing newer is waiting (the periodic heartbeat).
  void heartbeat();

  enum class Outcome { delivered, nothing_pending, failed };
  struct Delivery {
    Outcome outcome = Outcome::nothing_pending;
    std::uint64_t report_seq = 0;
    std::string error;  // what the transport threw, when failed
  };
  // Sends the newest pending report once. On failure the report stays
  // pending unless a newer one was offered meanwhile; the caller backs off
  // and calls deliver() again.
  Delivery deliver();

  bool hasPending() const;
  std::optional<std::uint64_t> lastDeliveredSeq() const;

 private:
  struct Report {
    std::uint64_t seq = 0;
    nlohmann::json document;
  };

  StatusTransport& transport_;
  mutable std::mutex mutex_;
  std::uint64_t next_seq_;
  std::optional<Report> pending_;
  std::optional<Report> delivered_;
};

}  // namespace hostmaint::agent::controller
