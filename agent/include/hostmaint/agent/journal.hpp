// Durable storage of the engine's state, written before each action so a
// restarted daemon continues the maintenance where it was.
//
// The engine serializes its own versioned state: one JSON document whose
// "domains" member is an array of records, each with its "uuid"; the rest of
// the object is the document's header. A save hands the journal only what
// changed since the last one (JournalUpdate), so what is written follows what
// changed, not the size of the host. The file journal appends each update to
// a log and folds the log into a snapshot now and then (docs/engine.md,
// "The journal"); a save returns only once it is durable, and a crash leaves
// either the state before a save or the state after it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hostmaint::agent {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What changed in the document since the last save. Records and the header
// are compact JSON objects (no newline); a record is keyed by its uuid.
struct JournalUpdate {
  std::optional<std::string> header;  // the document without "domains", when it changed
  std::vector<std::pair<std::string, std::string>> records;  // added or changed: (uuid, record)
  // Every uuid in document order, when the order or the set changed (a
  // record not listed is removed; a listed one must have a record).
  std::optional<std::vector<std::string>> order;

  bool empty() const { return !header && records.empty() && !order; }
};

// The whole document as its parts: header, order, records by uuid.
class JournalDocument {
 public:
  JournalDocument() = default;
  // Splits a whole document. Throws JournalError naming `source` when it is
  // not a JSON object whose "domains" is an array of objects, each with a
  // distinct string "uuid".
  static JournalDocument parse(std::string_view document, const std::string& source);
  // Throws JournalError when `update.order` names a uuid that has no record
  // (check() alone tells); the document is then unchanged.
  void check(const JournalUpdate& update) const;
  void apply(const JournalUpdate& update);
  // Removes the header's member `key`; returns its JSON text, "" when absent.
  std::string takeHeaderMember(std::string_view key);
  // The whole document (renderJournalDocument).
  std::string render() const;
  const std::string& header() const { return header_; }
  std::size_t size() const { return order_.size(); }

 private:
  std::string header_ = "{}";
  std::vector<std::string> order_;
  std::unordered_map<std::string, std::string> records_;
};

// The whole document from its header (a JSON object) and its records, in
// order: the header's members, then "domains" with one record per line.
std::string renderJournalDocument(std::string_view header, const std::vector<std::string_view>& records);

class Journal {
 public:
  virtual ~Journal() = default;
  // The last saved document (whole), or nullopt when nothing was ever saved.
  virtual std::optional<std::string> load() = 0;
  // Makes `update` durable on top of the last save, or throws JournalError
  // (with the path and errno text) and keeps nothing of it: the next save
  // then carries these changes again.
  virtual void save(const JournalUpdate& update) = 0;
};

// Journal in `<state_dir>`: the snapshot `state.json` (the whole document
// and the generation of its log) and the log `state.log`, one update per
// line, each written with its generation and synced before save() returns.
// The log is folded into a new snapshot (atomic replace, then a new empty
// log) at the first save of a process, after a failed or torn write, when
// it has grown larger than the snapshot (at least kMinLogBytes) and when
// the journal is destroyed (a clean stop): the bytes written stay
// proportional to what changed.
class FileJournal final : public Journal {
 public:
  static constexpr std::size_t kMinLogBytes = 256 * 1024;

  explicit FileJournal(std::filesystem::path state_dir);
  ~FileJournal() override;
  FileJournal(const FileJournal&) = delete;
  FileJournal& operator=(const FileJournal&) = delete;

  // Reads the snapshot and the log records of its generation after it; a
  // torn last record (a crash during its write) is left out; a record that
  // cannot be read before other records is corruption (JournalError).
  std::optional<std::string> load() override;
  void save(const JournalUpdate& update) override;
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& logPath() const { return log_path_; }

 private:
  void loadOnce();
  void writeSnapshot(const JournalDocument& document);
  void append(const JournalUpdate& update);
  void closeLog();

  std::filesystem::path dir_;
  std::filesystem::path path_;
  std::filesystem::path log_path_;
  bool loaded_ = false;
  bool exists_ = false;        // a snapshot was read or written
  JournalDocument document_;  // what is on disk: the snapshot with the log applied
  std::uint64_t generation_ = 0;
  int log_fd_ = -1;            // open for appending after a snapshot
  std::size_t log_bytes_ = 0;
  std::size_t snapshot_bytes_ = 0;
  bool snapshot_due_ = true;
};

// Whether writeFileAtomically() makes the new content durable (the file and
// its directory synced) or only visible whole to readers (the rename).
enum class FileSync { durable, visible_only };

// Atomically replaces `path` with `content` (used by the journal and by the
// status file). Throws JournalError on failure.
void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         unsigned mode = 0644, FileSync sync = FileSync::durable);

}  // namespace hostmaint::agent
