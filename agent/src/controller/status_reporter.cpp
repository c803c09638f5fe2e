#include "hostmaint/agent/controller/status_reporter.hpp"

#include <chrono>
#include <exception>

namespace hostmaint::agent::controller {

std::uint64_t initialReportSeq(TimePoint now) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  return micros > 0 ? static_cast<std::uint64_t>(micros) : 1;
}

StatusReporter::StatusReporter(StatusTransport& transport, std::uint64_t first_seq)
    : transport_(transport), next_seq_(first_seq) {}

std::uint64_t StatusReporter::offer(nlohmann::json status_document) {
  std::lock_guard lock(mutex_);
  const std::uint64_t seq = next_seq_++;
  pending_ = Report{seq, std::move(status_document)};
  return seq;
}

void StatusReporter::heartbeat() {
  std::lock_guard lock(mutex_);
  if (pending_ || !delivered_) return;
  pending_ = Report{next_seq_++, delivered_->document};
}

StatusReporter::Delivery StatusReporter::deliver() {
  Report report;
  {
    std::lock_guard lock(mutex_);
    if (!pending_) return {};
    report = *pending_;
  }
  nlohmann::json body = report.document;
  body["report_seq"] = report.seq;

  Delivery delivery;
  delivery.report_seq = report.seq;
  try {
    transport_.putStatus(body.dump());
    delivery.outcome = Outcome::delivered;
  } catch (const std::exception& error) {
    delivery.outcome = Outcome::failed;
    delivery.error = error.what();
  }

  std::lock_guard lock(mutex_);
  if (delivery.outcome == Outcome::delivered) {
    // Clear only if nothing newer arrived while the request was in flight.
    if (pending_ && pending_->seq == report.seq) pending_.reset();
    if (!delivered_ || delivered_->seq < report.seq) delivered_ = std::move(report);
  }
  // On failure pending_ still holds this report or a newer one: either way
  // the next deliver() sends the newest.
  return delivery;
}

bool StatusReporter::hasPending() const {
  std::lock_guard lock(mutex_);
  return pending_.has_value();
}

std::optional<std::uint64_t> StatusReporter::lastDeliveredSeq() const {
  std::lock_guard lock(mutex_);
  if (!delivered_) return std::nullopt;
  return delivered_->seq;
}

}  // namespace hostmaint::agent::controller
