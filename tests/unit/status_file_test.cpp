// {runtime_dir}/status.json: the status document, replaced atomically.
#include "hostmaint/agent/service/status_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "hostmaint/agent/journal.hpp"
#include "hostmaint/agent/status_json.hpp"

namespace hostmaint::service {
namespace {

namespace fs = std::filesystem;

std::string slurp(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class StatusFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "hostmaint-status-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir = pattern;
  }
  void TearDown() override { fs::remove_all(dir); }

  agent::HostStatus status(std::uint64_t generation, agent::HostPhase phase) {
    agent::HostStatus s;
    s.generation = generation;
    s.host = "hv-test";
    s.phase = phase;
    agent::DomainStatus web;
    web.uuid = "6f2d3c8e-0000-4000-8000-000000000001";
    web.name = "web1";
    web.stage = agent::DomainStage::acting;
    s.domains.push_back(web);
    return s;
  }

  fs::path dir;
};

TEST_F(StatusFileTest, WritesTheStatusDocument) {
  StatusFile file(dir);
  const agent::HostStatus snapshot = status(3, agent::HostPhase::draining);
  file.write(snapshot);
  EXPECT_EQ(file.path(), dir / "status.json");
  std::ifstream in(file.path());
  const nlohmann::json written = nlohmann::json::parse(in);
  EXPECT_EQ(written, agent::statusToJson(snapshot));
  EXPECT_EQ(written["phase"], "draining");
  EXPECT_EQ(written["domains"][0]["name"], "web1");
  struct stat info {};
  ASSERT_EQ(stat(file.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u) << "anyone may read the status";
}

// A reader that opened the old file keeps reading the whole old document;
// the next reader gets the whole new one. Nothing else is left behind.
TEST_F(StatusFileTest, ReplacesTheFileAtomically) {
  StatusFile file(dir);
  file.write(status(1, agent::HostPhase::scheduled));
  std::ifstream old_reader(file.path());
  ASSERT_TRUE(old_reader);

  file.write(status(2, agent::HostPhase::draining));

  const nlohmann::json old_document = nlohmann::json::parse(slurp(old_reader));
  EXPECT_EQ(old_document["generation"], 1);
  EXPECT_EQ(old_document["phase"], "scheduled");
  std::ifstream new_reader(file.path());
  const nlohmann::json new_document = nlohmann::json::parse(slurp(new_reader));
  EXPECT_EQ(new_document["generation"], 2);
  EXPECT_EQ(new_document["phase"], "draining");

  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(entry.path().filename(), "status.json") << "left behind: " << entry.path();
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(StatusFileTest, FailureNamesTheFile) {
  StatusFile file(dir / "missing-runtime-dir");
  try {
    file.write(status(1, agent::HostPhase::idle));
    FAIL() << "wrote into a directory that does not exist";
  } catch (const agent::JournalError& error) {
    EXPECT_NE(std::string(error.what()).find("missing-runtime-dir"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace hostmaint::service
