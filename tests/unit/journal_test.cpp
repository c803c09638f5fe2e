// The journal: atomic, durable replace, the snapshot and its log (round trip,
// torn and stale records, compaction, a full disk, older journals), and the
// error reporting.
#include "hostmaint/agent/journal.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace hostmaint::agent {
namespace {

using ::testing::HasSubstr;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "journal-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> entries(const std::filesystem::path& dir) const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::string contents(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  static unsigned modeOf(const std::filesystem::path& path) {
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
  }

  std::filesystem::path dir_;
};

// An update that sets the header and records (uuid → record text) and,
// when given, the order.
JournalUpdate update(std::optional<std::string> header,
                     std::vector<std::pair<std::string, std::string>> records = {},
                     std::optional<std::vector<std::string>> order = std::nullopt) {
  JournalUpdate out;
  out.header = std::move(header);
  out.records = std::move(records);
  out.order = std::move(order);
  return out;
}

std::pair<std::string, std::string> record(const std::string& uuid, const std::string& value) {
  return {uuid, R"({"uuid":")" + uuid + R"(","value":")" + value + R"("})"};
}

// The document as JSON, without the snapshot's generation: what the engine sees.
nlohmann::json parsed(const std::optional<std::string>& document) {
  EXPECT_TRUE(document.has_value());
  nlohmann::json out = nlohmann::json::parse(document.value_or("null"));
  out.erase("journal_generation");
  return out;
}

nlohmann::json expected(const std::string& header, std::vector<std::pair<std::string, std::string>> records) {
  nlohmann::json out = nlohmann::json::parse(header);
  out["domains"] = nlohmann::json::array();
  for (const auto& [uuid, text] : records) out["domains"].push_back(nlohmann::json::parse(text));
  return out;
}

std::size_t sizeOf(const std::filesystem::path& path) {
  return static_cast<std::size_t>(std::filesystem::file_size(path));
}

TEST_F(JournalTest, LoadWithoutSaveIsNothing) {
  FileJournal journal(dir_ / "state");
  EXPECT_EQ(journal.load(), std::nullopt);
}

TEST_F(JournalTest, SaveThenLoadRoundTrips) {
  FileJournal journal(dir_ / "state");
  const std::string header = R"({"version":1,"phase":"draining","note":"bytes \u0000 and more"})";
  // More than one read() buffer.
  const auto big = record("u1", std::string(100000, 'x'));
  journal.save(update(header, {big, record("u2", "b")}, std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(journal.path(), dir_ / "state" / "state.json");
  EXPECT_EQ(parsed(journal.load()), expected(header, {big, record("u2", "b")}));
  // A fresh journal on the same directory (a restarted daemon) sees it too.
  EXPECT_EQ(parsed(FileJournal(dir_ / "state").load()), expected(header, {big, record("u2", "b")}));
}

TEST_F(JournalTest, SaveCreatesAPrivateStateDirectoryAndFiles) {
  FileJournal journal(dir_ / "var" / "lib" / "hostmaint");
  journal.save(update("{}"));
  EXPECT_EQ(modeOf(dir_ / "var" / "lib" / "hostmaint"), 0700u);
  EXPECT_EQ(modeOf(journal.path()), 0600u);
  EXPECT_EQ(modeOf(journal.logPath()), 0600u);
}

TEST_F(JournalTest, AnUpdateIsAppendedNotTheWholeStateRewritten) {
  FileJournal journal(dir_);
  std::vector<std::pair<std::string, std::string>> records;
  std::vector<std::string> order;
  for (int i = 0; i < 100; ++i) {
    records.push_back(record("u" + std::to_string(i), std::string(500, 'a')));
    order.push_back("u" + std::to_string(i));
  }
  journal.save(update(R"({"phase":"draining"})", records, order));  // the first: a snapshot
  const std::string snapshot = contents(journal.path());
  EXPECT_EQ(sizeOf(journal.logPath()), 0u);

  journal.save(update(std::nullopt, {record("u42", "suspended")}));
  EXPECT_EQ(contents(journal.path()), snapshot) << "the snapshot is not rewritten";
  EXPECT_LT(sizeOf(journal.logPath()), 200u) << "one record, not the host";
  records[42] = record("u42", "suspended");
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected(R"({"phase":"draining"})", records));
  EXPECT_EQ(entries(dir_), (std::vector<std::string>{"state.json", "state.log"}));
}

TEST_F(JournalTest, OrderRemovesAndReordersDomainsAndNewOnesAreAdded) {
  FileJournal journal(dir_);
  journal.save(update("{}", {record("a", "1"), record("b", "2"), record("c", "3")},
                      std::vector<std::string>{"a", "b", "c"}));
  journal.save(update(R"({"phase":"idle"})", {record("d", "4")},
                      std::vector<std::string>{"d", "c", "a"}));
  EXPECT_EQ(parsed(FileJournal(dir_).load()),
            expected(R"({"phase":"idle"})", {record("d", "4"), record("c", "3"), record("a", "1")}));
  // An order naming a domain without a record is refused, and nothing kept.
  EXPECT_THROW(journal.save(update(std::nullopt, {}, std::vector<std::string>{"a", "zz"})),
               JournalError);
  EXPECT_EQ(parsed(FileJournal(dir_).load()),
            expected(R"({"phase":"idle"})", {record("d", "4"), record("c", "3"), record("a", "1")}));
}

TEST_F(JournalTest, ATornLastRecordIsLeftOutAndTheNextSaveStartsAFreshLog) {
  std::string snapshot;
  std::string log;
  {
    FileJournal journal(dir_);
    journal.save(update("{}", {record("a", "1")}, std::vector<std::string>{"a"}));
    journal.save(update(std::nullopt, {record("a", "2")}));
    journal.save(update(std::nullopt, {record("a", "3")}));
    snapshot = contents(journal.path());
    log = contents(journal.logPath());
  }
  // A crash, not the clean stop above: the files as they were, the log cut
  // in the middle of its last record, as a crash during its write leaves it.
  const std::size_t last = log.rfind('\n', log.size() - 2);
  ASSERT_NE(last, std::string::npos);
  std::ofstream(dir_ / "state.json", std::ios::binary) << snapshot;
  std::ofstream(dir_ / "state.log", std::ios::binary) << log.substr(0, last + 1 + 20);
  FileJournal restarted(dir_);
  EXPECT_EQ(parsed(restarted.load()), expected("{}", {record("a", "2")}));
  // After a torn record nothing is appended behind it: a new snapshot.
  restarted.save(update(std::nullopt, {record("a", "4")}));
  EXPECT_EQ(sizeOf(restarted.logPath()), 0u);
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected("{}", {record("a", "4")}));
}

TEST_F(JournalTest, AnUnreadableRecordWithRecordsAfterItIsCorruption) {
  std::string snapshot;
  std::string log;
  {
    FileJournal journal(dir_);
    journal.save(update("{}", {record("a", "1")}, std::vector<std::string>{"a"}));
    journal.save(update(std::nullopt, {record("a", "2")}));
    journal.save(update(std::nullopt, {record("a", "3")}));
    snapshot = contents(journal.path());
    log = contents(journal.logPath());
  }
  log[5] = '#';
  std::ofstream(dir_ / "state.json", std::ios::binary) << snapshot;
  std::ofstream(dir_ / "state.log", std::ios::binary) << log;
  try {
    FileJournal(dir_).load();
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(), HasSubstr((dir_ / "state.log").string() + "' line 1"));
    EXPECT_THAT(error.what(), HasSubstr("records follow it"));
  }
}

// A crash after a new snapshot replaced the old one but before the log was
// emptied leaves the old log: its records are already in the snapshot and
// must not be applied again over newer state.
TEST_F(JournalTest, RecordsOfAnEarlierGenerationAreSkipped) {
  std::string old_log;
  {
    FileJournal journal(dir_);
    journal.save(update("{}", {record("a", "1")}, std::vector<std::string>{"a"}));
    journal.save(update(std::nullopt, {record("a", "2")}));
    old_log = contents(journal.logPath());
    journal.save(update(std::nullopt, {record("a", "3")}));
  }  // a clean stop: the log is folded into a new snapshot
  EXPECT_EQ(sizeOf(dir_ / "state.log"), 0u);
  std::ofstream(dir_ / "state.log", std::ios::binary) << old_log;
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected("{}", {record("a", "3")}));
}

TEST_F(JournalTest, TheLogIsFoldedIntoASnapshotWhenItOutgrowsIt) {
  FileJournal journal(dir_);
  journal.save(update(R"({"phase":"draining"})", {record("a", "0"), record("b", "x")},
                      std::vector<std::string>{"a", "b"}));
  const std::string first_snapshot = contents(journal.path());
  const std::string value(1000, 'v');
  std::size_t written = 0;
  for (int i = 1; i <= 600; ++i) {
    journal.save(update(std::nullopt, {record("a", value + std::to_string(i))}));
    written += 1100;
    // Never more log than the limit and one record.
    EXPECT_LT(sizeOf(journal.logPath()), FileJournal::kMinLogBytes + 1200) << i;
  }
  EXPECT_NE(contents(journal.path()), first_snapshot) << "600 kB of updates were folded";
  EXPECT_EQ(parsed(FileJournal(dir_).load()),
            expected(R"({"phase":"draining"})",
                     {record("a", value + "600"), record("b", "x")}));
  const nlohmann::json snapshot = nlohmann::json::parse(contents(journal.path()));
  EXPECT_GT(snapshot.at("journal_generation").get<std::uint64_t>(), 1u);
  EXPECT_EQ(entries(dir_), (std::vector<std::string>{"state.json", "state.log"}));
}

TEST_F(JournalTest, ACleanStopLeavesTheWholeStateInTheSnapshot) {
  {
    FileJournal journal(dir_);
    journal.save(update("{}", {record("a", "1")}, std::vector<std::string>{"a"}));
    journal.save(update(R"({"phase":"empty"})", {record("a", "2")}));
  }
  EXPECT_EQ(sizeOf(dir_ / "state.log"), 0u);
  // What an older hostmaintd (which reads state.json alone) would see.
  nlohmann::json snapshot = nlohmann::json::parse(contents(dir_ / "state.json"));
  snapshot.erase("journal_generation");
  EXPECT_EQ(snapshot, expected(R"({"phase":"empty"})", {record("a", "2")}));
}

// Written by hostmaintd before the log existed: state.json alone, indented.
TEST_F(JournalTest, AJournalOfAnOlderVersionIsReadAndContinued) {
  const std::string old = R"({
 "domains": [
  {
   "uuid": "a",
   "value": "1"
  },
  {
   "uuid": "b",
   "value": "2"
  }
 ],
 "phase": "draining",
 "version": 1
})";
  std::ofstream(dir_ / "state.json") << old;
  FileJournal journal(dir_);
  EXPECT_EQ(parsed(journal.load()), nlohmann::json::parse(old));
  journal.save(update(std::nullopt, {record("b", "3")}));
  EXPECT_EQ(parsed(FileJournal(dir_).load()),
            expected(R"({"phase":"draining","version":1})", {record("a", "1"), record("b", "3")}));
}

// Makes every file write of this process past `bytes` fail (EFBIG), as a
// full disk does, until destroyed.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = saved_;
    limit.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, previous_handler_);
  }

 private:
  struct rlimit saved_ {};
  sighandler_t previous_handler_;
};

TEST_F(JournalTest, AFullDiskKeepsTheStateBeforeTheSaveAndTheNextSaveWritesItAll) {
  FileJournal journal(dir_);
  journal.save(update("{}", {record("a", "1"), record("b", "1")}, std::vector<std::string>{"a", "b"}));
  journal.save(update(std::nullopt, {record("a", "2")}));
  const std::size_t log_before = sizeOf(journal.logPath());
  {
    // Room for part of the next record only: it is cut, then taken back.
    FileSizeLimit full(log_before + 10);
    try {
      journal.save(update(std::nullopt, {record("b", "2")}));
      FAIL() << "expected a JournalError";
    } catch (const JournalError& error) {
      EXPECT_THAT(error.what(), HasSubstr(journal.logPath().string()));
      EXPECT_THAT(error.what(), HasSubstr("File too large"));
    }
    EXPECT_EQ(sizeOf(journal.logPath()), log_before) << "no half record is left";
    // A snapshot cannot be written either: the saved state stays as it was.
    EXPECT_THROW(journal.save(update(std::nullopt, {record("b", "2")})), JournalError);
    EXPECT_EQ(entries(dir_), (std::vector<std::string>{"state.json", "state.log"}))
        << "no temporary file is left";
  }
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected("{}", {record("a", "2"), record("b", "1")}));
  // Space is back: the failed change comes again with the next save, which
  // writes a new snapshot and starts a new log.
  journal.save(update(std::nullopt, {record("b", "2"), record("a", "3")}));
  EXPECT_EQ(sizeOf(journal.logPath()), 0u);
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected("{}", {record("a", "3"), record("b", "2")}));
  journal.save(update(std::nullopt, {record("b", "4")}));
  EXPECT_GT(sizeOf(journal.logPath()), 0u) << "appending again";
  EXPECT_EQ(parsed(FileJournal(dir_).load()), expected("{}", {record("a", "3"), record("b", "4")}));
}

TEST_F(JournalTest, DocumentsSplitIntoPartsRenderBackToTheSameJson) {
  const std::string text = R"({"version":1,"domains":[{"uuid":"x","n":1},{"uuid":"y","n":[2]}],"phase":"idle"})";
  const JournalDocument document = JournalDocument::parse(text, "test");
  EXPECT_EQ(document.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(document.render()), nlohmann::json::parse(text));
  EXPECT_THROW(JournalDocument::parse(R"({"domains":[{"uuid":"x"},{"uuid":"x"}]})", "test"),
               JournalError);
  EXPECT_THROW(JournalDocument::parse(R"({"domains":[{"name":"x"}]})", "test"), JournalError);
  EXPECT_THROW(JournalDocument::parse(R"({"version":1})", "test"), JournalError);
  EXPECT_THROW(JournalDocument::parse("{", "test"), JournalError);
}

TEST_F(JournalTest, WriteFileAtomicallySetsTheModeRegardlessOfUmask) {
  mode_t old_umask = ::umask(077);
  writeFileAtomically(dir_ / "status.json", "{\"ready\":true}");
  ::umask(old_umask);
  EXPECT_EQ(modeOf(dir_ / "status.json"), 0644u);
  EXPECT_EQ(contents(dir_ / "status.json"), "{\"ready\":true}");
}

// What writeFileAtomically(path, text) throws, "" when it succeeds. Permission
// bits do not stop root, so under root the call runs in a child that owns
// `dir` as the unprivileged user nobody: the owner's bits then decide, exactly
// as for a non-root run.
std::string journalErrorOfWrite(const std::filesystem::path& dir, const std::filesystem::path& path,
                                const std::string& text) {
  auto attempt = [&]() -> std::string {
    try {
      writeFileAtomically(path, text);
      return "";
    } catch (const JournalError& error) {
      return error.what();
    }
  };
  if (::geteuid() != 0) return attempt();

  const struct passwd* nobody = ::getpwnam("nobody");
  const uid_t uid = nobody ? nobody->pw_uid : 65534;
  const gid_t gid = nobody ? nobody->pw_gid : 65534;
  if (::chown(dir.c_str(), uid, gid) != 0) throw std::runtime_error("chown to nobody failed");
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(pipe_fds[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 ||
        ::geteuid() == 0) {
      ::_exit(2);
    }
    const std::string result = attempt();
    const bool written = ::write(pipe_fds[1], result.data(), result.size()) ==
                         static_cast<ssize_t>(result.size());
    ::_exit(written ? 0 : 3);
  }
  ::close(pipe_fds[1]);
  std::string result;
  char buffer[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) result.append(buffer, n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("the unprivileged child failed (status " + std::to_string(status) +
                             ")");
  return result;
}

TEST_F(JournalTest, UnwritableDirectoryNamesThePathAndLeavesNoTemp) {
  writeFileAtomically(dir_ / "status.json", "old");
  std::filesystem::permissions(
      dir_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  const std::string error = journalErrorOfWrite(dir_, dir_ / "status.json", "new");
  EXPECT_THAT(error, HasSubstr(dir_.string()));
  EXPECT_THAT(error, HasSubstr("Permission denied"));
  std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
  EXPECT_EQ(contents(dir_ / "status.json"), "old");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"status.json"});
}

// Unlike permissions, this fails for root too, so it runs everywhere.
TEST_F(JournalTest, StateDirectoryThatIsAFileNamesThePath) {
  std::ofstream(dir_ / "state") << "not a directory";
  FileJournal journal(dir_ / "state" / "hostmaint");
  try {
    journal.save(update("{}"));
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(), HasSubstr((dir_ / "state").string()));
    EXPECT_THAT(error.what(), HasSubstr("Not a directory"));
  }
}

TEST_F(JournalTest, MissingDirectoryNamesThePath) {
  try {
    writeFileAtomically(dir_ / "absent" / "status.json", "x");
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(), HasSubstr((dir_ / "absent").string()));
    EXPECT_THAT(error.what(), HasSubstr("No such file or directory"));
  }
}

TEST_F(JournalTest, FailedRenameRemovesTheTemporaryFile) {
  // A directory where the file should be: the rename fails after the temp
  // file was fully written, which is the cleanup path that matters.
  std::filesystem::create_directories(dir_ / "status.json" / "occupied");
  try {
    writeFileAtomically(dir_ / "status.json", "x");
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(),
                HasSubstr("cannot replace '" + (dir_ / "status.json").string() + "'"));
  }
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"status.json"});
}

TEST_F(JournalTest, UnreadableJournalIsAnErrorNotNothing) {
  std::filesystem::create_directories(dir_ / "state.json");  // read() gives EISDIR
  FileJournal journal(dir_);
  try {
    journal.load();
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(), HasSubstr((dir_ / "state.json").string()));
    EXPECT_THAT(error.what(), HasSubstr("Is a directory"));
  }
}

}  // namespace
}  // namespace hostmaint::agent
