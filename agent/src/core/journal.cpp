// Atomic, durable file replacement and the state journal built on it: a
// snapshot replaced atomically and a log of updates appended after it.
#include "hostmaint/agent/journal.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_set>
#include <utility>

#include "hostmaint/file_descriptor.hpp"

namespace hostmaint::agent {
namespace {

[[noreturn]] void fail(std::string_view what, const std::filesystem::path& path, int error) {
  throw JournalError("cannot " + std::string(what) + " '" + path.string() +
                     "': " + std::strerror(error));
}

// Removes the temporary file unless the rename consumed it.
class TemporaryFile {
 public:
  explicit TemporaryFile(std::filesystem::path path) : path_(std::move(path)) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::filesystem::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

std::string randomSuffix() {
  std::random_device source;
  std::uniform_int_distribution<unsigned> digit(0, 35);
  std::string suffix;
  for (int i = 0; i < 8; ++i) {
    unsigned d = digit(source);
    suffix += static_cast<char>(d < 10 ? '0' + d : 'a' + (d - 10));
  }
  return suffix;
}

}  // namespace

void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         unsigned mode, FileSync sync) {
  std::filesystem::path directory = path.parent_path();
  if (directory.empty()) directory = ".";

  // Same directory, so the rename never crosses a file system. The leading
  // dot keeps readers globbing the directory from seeing half a file.
  std::filesystem::path temp_path;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temp_path = directory / ("." + path.filename().string() + ".tmp-" + randomSuffix());
    fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) fail("create a temporary file to replace", path, errno);
  }
  if (fd < 0) fail("create a temporary file to replace", path, EEXIST);
  FileDescriptor file(fd);
  TemporaryFile temp(temp_path);

  const char* data = content.data();
  std::size_t remaining = content.size();
  while (remaining > 0) {
    ssize_t written = ::write(file.get(), data, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("write", temp.path(), errno);
    }
    data += written;
    remaining -= static_cast<std::size_t>(written);
  }
  // Mode set explicitly: the umask must not decide who can read state.
  if (::fchmod(file.get(), static_cast<mode_t>(mode)) != 0) fail("set mode of", temp.path(), errno);
  const bool durable = sync == FileSync::durable;
  if (durable && ::fsync(file.get()) != 0) fail("sync", temp.path(), errno);
  if (file.close() != 0) fail("close", temp.path(), errno);

  if (::rename(temp.path().c_str(), path.c_str()) != 0) fail("replace", path, errno);
  temp.release();
  if (!durable) return;

  // The rename is durable only once the directory entry is on disk.
  FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail("open directory", directory, errno);
  if (::fsync(dir.get()) != 0 && errno != EINVAL) fail("sync directory", directory, errno);
}

// ---- the document as parts -------------------------------------------------------

namespace {

using json = nlohmann::json;

// The snapshot's header member that names the generation of the log
// records that follow it.
constexpr std::string_view kGenerationKey = "journal_generation";

std::pair<std::string, std::string> recordOf(const json& record, const std::string& where) {
  if (!record.is_object()) throw JournalError(where + " is not an object");
  const auto uuid = record.find("uuid");
  if (uuid == record.end() || !uuid->is_string()) throw JournalError(where + " has no uuid");
  return {uuid->get<std::string>(), record.dump()};
}

// Reads a whole file; nullopt when it does not exist.
std::optional<std::string> readFile(const std::filesystem::path& path, std::string_view what) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    if (errno == ENOENT) return std::nullopt;
    fail(what, path, errno);
  }
  std::string content;
  char buffer[65536];
  for (;;) {
    ssize_t count = ::read(file.get(), buffer, sizeof buffer);
    if (count < 0) {
      if (errno == EINTR) continue;
      fail(what, path, errno);
    }
    if (count == 0) break;
    content.append(buffer, static_cast<std::size_t>(count));
  }
  return content;
}

void syncDirectory(const std::filesystem::path& directory) {
  FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail("open directory", directory, errno);
  if (::fsync(dir.get()) != 0 && errno != EINVAL) fail("sync directory", directory, errno);
}

// One log line: the generation, then what the update carries.
std::string logRecord(std::uint64_t generation, const JournalUpdate& update) {
  std::string line = "{\"generation\":" + std::to_string(generation);
  if (update.header) line += ",\"header\":" + *update.header;
  line += ",\"records\":[";
  for (std::size_t i = 0; i < update.records.size(); ++i) {
    if (i > 0) line += ',';
    line += update.records[i].second;
  }
  line += ']';
  if (update.order) line += ",\"order\":" + json(*update.order).dump();
  line += "}\n";
  return line;
}

// The update one log line carries; nullopt when it is not a log record at all.
std::optional<std::pair<std::uint64_t, JournalUpdate>> parseLogRecord(std::string_view line,
                                                                      const std::string& where) {
  json in = json::parse(line, nullptr, false);
  if (in.is_discarded() || !in.is_object()) return std::nullopt;
  const auto generation = in.find("generation");
  const auto records = in.find("records");
  if (generation == in.end() || !generation->is_number_unsigned() || records == in.end() ||
      !records->is_array())
    return std::nullopt;
  JournalUpdate update;
  if (const auto header = in.find("header"); header != in.end()) {
    if (!header->is_object()) throw JournalError(where + ": header is not an object");
    update.header = header->dump();
  }
  for (std::size_t i = 0; i < records->size(); ++i)
    update.records.push_back(recordOf((*records)[i], where + ": records[" + std::to_string(i) + "]"));
  if (const auto order = in.find("order"); order != in.end()) {
    if (!order->is_array()) throw JournalError(where + ": order is not an array");
    std::vector<std::string> uuids;
    for (const json& uuid : *order) {
      if (!uuid.is_string()) throw JournalError(where + ": order holds a non-string");
      uuids.push_back(uuid.get<std::string>());
    }
    update.order = std::move(uuids);
  }
  return std::make_pair(generation->get<std::uint64_t>(), std::move(update));
}

}  // namespace

std::string renderJournalDocument(std::string_view header,
                                  const std::vector<std::string_view>& records) {
  std::size_t size = header.size() + 16;
  for (std::string_view record : records) size += record.size() + 2;
  std::string out;
  out.reserve(size);
  // The header is an object: its members, then the domains, one per line.
  const std::string_view members =
      header.size() >= 2 ? header.substr(1, header.size() - 2) : std::string_view();
  out += '{';
  out += members;
  if (!members.empty()) out += ',';
  out += "\n\"domains\":[";
  for (std::size_t i = 0; i < records.size(); ++i) {
    out += i == 0 ? "\n" : ",\n";
    out += records[i];
  }
  out += "\n]}\n";
  return out;
}

JournalDocument JournalDocument::parse(std::string_view document, const std::string& source) {
  json in = json::parse(document, nullptr, false);
  if (in.is_discarded()) throw JournalError(source + " is not valid JSON");
  if (!in.is_object()) throw JournalError(source + " is not a JSON object");
  const auto domains = in.find("domains");
  if (domains == in.end() || !domains->is_array())
    throw JournalError(source + " has no \"domains\" array");
  JournalDocument out;
  for (std::size_t i = 0; i < domains->size(); ++i) {
    const std::string where = source + ": domains[" + std::to_string(i) + "]";
    auto [uuid, record] = recordOf((*domains)[i], where);
    if (!out.records_.emplace(uuid, std::move(record)).second)
      throw JournalError(where + ": uuid '" + uuid + "' is listed twice");
    out.order_.push_back(std::move(uuid));
  }
  in.erase(domains);
  out.header_ = in.dump();
  return out;
}

void JournalDocument::check(const JournalUpdate& update) const {
  if (!update.order) return;
  std::unordered_set<std::string_view> updated;
  for (const auto& [uuid, record] : update.records) updated.insert(uuid);
  for (const std::string& uuid : *update.order) {
    if (!records_.contains(uuid) && !updated.contains(uuid))
      throw JournalError("journal update lists domain '" + uuid + "' without its record");
  }
}

void JournalDocument::apply(const JournalUpdate& update) {
  check(update);
  if (update.header) header_ = *update.header;
  for (const auto& [uuid, record] : update.records) {
    if (records_.insert_or_assign(uuid, record).second && !update.order) order_.push_back(uuid);
  }
  if (!update.order) return;
  order_ = *update.order;
  if (records_.size() == order_.size()) return;
  const std::unordered_set<std::string_view> kept(order_.begin(), order_.end());
  std::erase_if(records_, [&](const auto& entry) { return !kept.contains(entry.first); });
}

std::string JournalDocument::render() const {
  std::vector<std::string_view> records;
  records.reserve(order_.size());
  for (const std::string& uuid : order_) records.push_back(records_.at(uuid));
  return renderJournalDocument(header_, records);
}

std::string JournalDocument::takeHeaderMember(std::string_view key) {
  json header = json::parse(header_, nullptr, false);
  if (!header.is_object()) return {};
  const auto member = header.find(key);
  if (member == header.end()) return {};
  std::string value = member->dump();
  header.erase(member);
  header_ = header.dump();
  return value;
}

// ---- the file journal -------------------------------------------------------------

FileJournal::FileJournal(std::filesystem::path state_dir)
    : dir_(std::move(state_dir)), path_(dir_ / "state.json"), log_path_(dir_ / "state.log") {}

FileJournal::~FileJournal() {
  // A clean stop leaves one self-contained snapshot behind.
  if (exists_ && log_bytes_ > 0) {
    try {
      writeSnapshot(document_);
    } catch (const JournalError& error) {
      spdlog::warn("cannot fold the journal log into its snapshot at exit: {}", error.what());
    }
  }
  closeLog();
}

void FileJournal::closeLog() {
  if (log_fd_ >= 0) ::close(std::exchange(log_fd_, -1));
}

void FileJournal::loadOnce() {
  if (loaded_) return;
  std::optional<std::string> snapshot = readFile(path_, "read journal");
  if (!snapshot) {
    loaded_ = true;
    return;
  }
  JournalDocument document = JournalDocument::parse(*snapshot, "journal '" + path_.string() + "'");
  // An older hostmaintd wrote the snapshot alone: no generation, no log.
  std::optional<std::uint64_t> generation;
  if (const std::string value = document.takeHeaderMember(kGenerationKey); !value.empty()) {
    const json parsed = json::parse(value, nullptr, false);
    if (!parsed.is_number_unsigned())
      throw JournalError("journal '" + path_.string() + "': " + std::string(kGenerationKey) +
                         " is not a generation number");
    generation = parsed.get<std::uint64_t>();
  }
  if (generation) {
    const std::optional<std::string> log = readFile(log_path_, "read journal log");
    std::size_t position = 0;
    std::size_t line_number = 0;
    while (log && position < log->size()) {
      ++line_number;
      const std::size_t end = log->find('\n', position);
      const std::string where =
          "journal log '" + log_path_.string() + "' line " + std::to_string(line_number);
      // A record without its newline, or one that does not read as a record
      // with nothing after it, is the write a crash cut short: it was never
      // saved, and its action never started.
      const bool last = end == std::string::npos || end + 1 >= log->size();
      const std::string_view line =
          std::string_view(*log).substr(position, end == std::string::npos ? end : end - position);
      std::optional<std::pair<std::uint64_t, JournalUpdate>> record;
      if (end != std::string::npos) record = parseLogRecord(line, where);
      if (!record) {
        if (!last) throw JournalError(where + " cannot be read, and records follow it");
        spdlog::warn("{}: an incomplete last record is left out (a write cut short)", where);
        break;
      }
      position = end + 1;
      // Records of an earlier generation were folded into the snapshot.
      if (record->first != *generation) continue;
      try {
        document.apply(record->second);
      } catch (const JournalError& error) {
        throw JournalError(where + ": " + error.what());
      }
    }
    generation_ = *generation;
  }
  document_ = std::move(document);
  exists_ = true;
  loaded_ = true;
}

std::optional<std::string> FileJournal::load() {
  loadOnce();
  if (!exists_) return std::nullopt;
  return document_.render();
}

void FileJournal::writeSnapshot(const JournalDocument& document) {
  // State may name domains and owners: private to the daemon.
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    if (errno != ENOENT) fail("create state directory", dir_, errno);
    std::error_code error;
    std::filesystem::create_directories(dir_.parent_path(), error);
    if (error) fail("create state directory", dir_.parent_path(), error.value());
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      fail("create state directory", dir_, errno);
    }
  }
  closeLog();
  snapshot_due_ = true;
  const std::uint64_t generation = generation_ + 1;
  const std::string& header = document.header();
  const std::string members = header.size() > 2 ? "," + header.substr(1, header.size() - 2) : "";
  JournalDocument stamped = document;
  std::string content;
  {
    // The generation first, then the header's own members.
    JournalUpdate stamp;
    stamp.header = "{\"" + std::string(kGenerationKey) + "\":" + std::to_string(generation) +
                   members + "}";
    stamped.apply(stamp);
    content = stamped.render();
  }
  writeFileAtomically(path_, content, 0600);
  generation_ = generation;
  exists_ = true;
  snapshot_bytes_ = content.size();
  log_bytes_ = 0;
  // A new, empty log. Should a crash leave the old one, its records are of
  // the generation before and are skipped.
  const int fd =
      ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    // The snapshot holds everything: the next save writes a snapshot again.
    spdlog::warn("cannot open the journal log '{}': {}; the next save writes the whole state",
                 log_path_.string(), std::strerror(errno));
    return;
  }
  log_fd_ = fd;
  try {
    syncDirectory(dir_);
  } catch (const JournalError& error) {
    closeLog();
    spdlog::warn("{}; the next save writes the whole state", error.what());
    return;
  }
  snapshot_due_ = false;
}

void FileJournal::append(const JournalUpdate& update) {
  const std::string line = logRecord(generation_, update);
  const char* data = line.data();
  std::size_t remaining = line.size();
  auto undo = [&](std::string_view what) {
    const int error = errno;
    // Half a record must not stay in front of the next one; should even
    // this fail, the next save writes a snapshot, which starts a new log.
    if (::ftruncate(log_fd_, static_cast<off_t>(log_bytes_)) != 0) closeLog();
    snapshot_due_ = true;
    fail(what, log_path_, error);
  };
  while (remaining > 0) {
    ssize_t written = ::write(log_fd_, data, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      undo("append to");
    }
    data += written;
    remaining -= static_cast<std::size_t>(written);
  }
  if (::fdatasync(log_fd_) != 0) undo("sync");
  log_bytes_ += line.size();
}

void FileJournal::save(const JournalUpdate& update) {
  loadOnce();
  if (update.empty() && exists_) return;
  document_.check(update);
  const std::size_t limit = std::max(kMinLogBytes, snapshot_bytes_);
  if (!snapshot_due_ && log_fd_ >= 0 && log_bytes_ < limit) {
    append(update);
    document_.apply(update);
    return;
  }
  JournalDocument next = document_;
  next.apply(update);
  writeSnapshot(next);
  document_ = std::move(next);
}

}  // namespace hostmaint::agent
