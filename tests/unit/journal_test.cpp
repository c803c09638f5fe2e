// The journal's atomic, durable replace and its error reporting.
#include "hostmaint/agent/journal.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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

TEST_F(JournalTest, UnwritableDirectoryNamesThePathAndLeavesNoTemp) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes regardless of permissions";
  writeFileAtomically(dir_ / "status.json", "old");
  std::filesystem::permissions(
      dir_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  try {
    writeFileAtomically(dir_ / "status.json", "new");
    FAIL() << "expected a JournalError";
  } catch (const JournalError& error) {
    EXPECT_THAT(error.what(), HasSubstr(dir_.string()));
    EXPECT_THAT(error.what(), HasSubstr("Permission denied"));
  }
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
