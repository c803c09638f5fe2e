// Owner notices (docs/notices.md): what the owner of each domain is told
// about a maintenance, and when a notice counts as new.
//
// Two halves, both pure:
// - computeNotice() turns a domain's plan and policy into the notice's
//   content; the engine calls it when it builds a status snapshot, so every
//   rendering of the status (status.json, D-Bus, controller report,
//   hostmaintctl) carries the same notice.
// - NoticeLedger remembers what was issued per domain and decides, snapshot
//   by snapshot, which notices are new or changed (a new revision) and which
//   are cancelled. The service keeps one, persists it, and delivers what it
//   issues (D-Bus signal, webhook).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/policy.hpp"

namespace hostmaint::agent {

// The estimates behind `expected_downtime` ([notices] in the config).
struct NoticeSettings {
  // Used for live migration until a migration on this host has measured one.
  std::uint64_t assumed_throughput_bps = 100ull * 1024 * 1024;
  // No migration estimate is shorter than this.
  std::chrono::seconds min_expected_downtime{30};
  // How long a domain takes to start on its destination (cold migration).
  std::chrono::seconds boot_estimate{120};

  bool operator==(const NoticeSettings&) const = default;
};

NoticeSettings noticeSettingsFrom(const NoticesConfig& config);

struct NoticeInput {
  const DomainStatus& domain;
  // The policy the engine acts on for this domain (the host's defaults when
  // its own is malformed).
  const DomainPolicy& policy;
  const MaintenanceWindow& window;
  std::string session_id;
  TimePoint noticed_at{};  // when the maintenance was scheduled
  // Measured on earlier migrations from this host; 0: none measured yet.
  std::uint64_t measured_throughput_bps = 0;
  // The window ended before this domain's action was done (and it is still
  // pending, or finished only after the end).
  bool overrun = false;
};

// `downtime_basis` of the notices a host shutdown issues (docs/notices.md).
inline constexpr std::string_view kHostShutdownNoticeBasis = "host-shutdown";

// What the owner of a domain is told about a host shutdown outside a
// maintenance: what was done and whether it is back. nullopt for a domain
// handed over to a maintenance (its maintenance notice says it).
std::optional<DomainNotice> hostShutdownNotice(const HostShutdownRecord& record,
                                               const HostShutdownDomain& domain,
                                               const std::string& host);

// The notice for one domain of a maintenance, or nullopt when the
// maintenance does not concern it (it does not run and need not leave).
// revision and issued_at are left for the ledger.
std::optional<DomainNotice> computeNotice(const NoticeInput& input,
                                          const NoticeSettings& settings);

// True when the two notices tell the owner something different. The
// downtime estimate and the wording do not count: a new throughput
// measurement alone does not re-notify every owner.
bool materiallyDifferent(const DomainNotice& a, const DomainNotice& b);

nlohmann::json noticeToJson(const DomainNotice& notice);
// noticeToJson(notice).dump(), written directly (much cheaper).
std::string noticeToText(const DomainNotice& notice);
// Throws std::runtime_error naming the field when `value` is not a notice.
DomainNotice noticeFromJson(const nlohmann::json& value);

// Each domain's notice rendered once for all who show it, while it is the
// same: the status document (status.json, StatusJSON) and the ledger
// (notices.json) lay it out alike, indented by 2 at three levels deep; D-Bus
// (the Notices property, the Notice signal) takes it compact, which is that
// text without the layout's whitespace. A schedule issues a notice for
// every domain, and rendering each three times was a third of its cost.
class NoticeTexts {
 public:
  // noticeToJson(notice).dump(2) as a member value three levels deep.
  const std::string& indented(const std::string& uuid, const DomainNotice& notice);
  // noticeToJson(notice).dump().
  const std::string& compact(const std::string& uuid, const DomainNotice& notice);

 private:
  struct Texts {
    DomainNotice notice;
    std::string indented;
    std::string compact;  // empty until asked for
  };
  Texts& of(const std::string& uuid, const DomainNotice& notice);
  std::unordered_map<std::string, Texts> texts_;  // by UUID
};

class NoticeLedgerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NoticeLedger {
 public:
  struct Issued {
    std::string uuid;
    std::string name;
    DomainNotice notice;
  };

  // `first_revision_base`: revisions start above it when nothing was
  // persisted (the service seeds it from the clock so revisions keep growing
  // even if the ledger file is lost).
  explicit NoticeLedger(std::uint64_t first_revision_base = 0);

  // Takes a snapshot as the engine published it: replaces each domain's
  // computed notice by the one issued for it (so what is shown is what was
  // sent), issues a new revision for each new or materially changed notice,
  // and a cancelled notice for each domain when the maintenance is
  // cancelled. Returns what was issued, in domain order.
  std::vector<Issued> observe(HostStatus& status, TimePoint now);

  std::uint64_t lastRevision() const { return last_revision_; }

  // Versioned JSON; decode throws NoticeLedgerError saying what is wrong.
  std::string encode() const;
  // encode() takes each notice's text from `texts`, shared with the status
  // renderer (which then renders none of them again).
  void shareNoticeTexts(std::shared_ptr<NoticeTexts> texts) { texts_ = std::move(texts); }
  static NoticeLedger decode(std::string_view document);

 private:
  struct Entry {
    std::string name;
    DomainNotice notice;
  };
  std::uint64_t last_revision_ = 0;
  std::optional<std::string> session_id_;
  HostPhase last_phase_ = HostPhase::idle;
  std::map<std::string, Entry> issued_;  // by uuid
  // encode()'s rendering of each entry, reused while the entry is the same.
  struct EncodedEntry {
    Entry entry;
    std::string text;
  };
  mutable std::map<std::string, EncodedEntry> encoded_;  // by uuid
  std::shared_ptr<NoticeTexts> texts_ = std::make_shared<NoticeTexts>();
};

}  // namespace hostmaint::agent
