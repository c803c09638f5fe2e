// The journal's atomic, durable replace and its error reporting.
#include "hostmaint/agent/journal.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
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

TEST_F(JournalTest, LoadWithoutSaveIsNothing) {
  FileJournal journal(dir_ / "state");
  EXPECT_EQ(journal.load(), std::nullopt);
}

TEST_F(JournalTest, SaveThenLoadRoundTrips) {
  FileJournal journal(dir_ / "state");
  std::string document = R"({"version":1,"phase":"draining","note":"bytes \u0000 and more"})";
  document += std::string(100000, 'x');  // more than one read() buffer
  journal.save(document);
  EXPECT_EQ(journal.path(), dir_ / "state" / "state.json");
  EXPECT_EQ(journal.load(), document);
  // A fresh journal on the same directory (a restarted daemon) sees it too.
  EXPECT_EQ(FileJournal(dir_ / "state").load(), document);
}

TEST_F(JournalTest, SaveCreatesAPrivateStateDirectoryAndFile) {
  FileJournal journal(dir_ / "var" / "lib" / "hostmaint");
  journal.save("{}");
  EXPECT_EQ(modeOf(dir_ / "var" / "lib" / "hostmaint"), 0700u);
  EXPECT_EQ(modeOf(journal.path()), 0600u);
}

TEST_F(JournalTest, ReplaceLeavesOnlyTheNewFile) {
  FileJournal journal(dir_);
  journal.save("first");
  journal.save("second, longer than the first");
  journal.save("3");
  EXPECT_EQ(journal.load(), "3");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"state.json"});
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
    journal.save("{}");
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
