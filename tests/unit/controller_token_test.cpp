// The bearer token file must be private to its owner: 0644 is refused with
// the path and mode in the message, 0600 and 0400 are read, a missing file
// is named. Plus the HttpClient/ControllerClient setup checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "hostmaint/agent/controller/controller_client.hpp"
#include "hostmaint/agent/controller/http_client.hpp"

namespace hostmaint::agent::controller {
namespace {

using ::testing::HasSubstr;

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "controller-token-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path writeToken(const std::string& content, mode_t mode) {
    const auto path = dir_ / "token";
    std::ofstream(path) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string refusal(const std::filesystem::path& path) {
    try {
      readBearerToken(path);
    } catch (const TokenFileError& error) {
      return error.what();
    }
    ADD_FAILURE() << "token file accepted: " << path;
    return {};
  }

  std::filesystem::path dir_;
};

TEST_F(TokenFileTest, ReadsAPrivateFileAndStripsTheNewline) {
  EXPECT_EQ(readBearerToken(writeToken("s3cret-token\n", 0600)), "s3cret-token");
  EXPECT_EQ(readBearerToken(writeToken("  s3cret-token \r\n", 0400)), "s3cret-token");
}

TEST_F(TokenFileTest, RefusesAFileOthersCanReadNamingPathAndMode) {
  const auto path = writeToken("s3cret-token\n", 0644);
  EXPECT_THAT(refusal(path), HasSubstr("bearer token file " + path.string() +
                                       " has mode 0644: it must not be accessible by group or "
                                       "others (use 0600 or 0400)"));
  EXPECT_THAT(refusal(writeToken("t", 0640)), HasSubstr("has mode 0640"));
  EXPECT_THAT(refusal(writeToken("t", 0602)), HasSubstr("has mode 0602"));
  EXPECT_THAT(refusal(writeToken("t", 0620)), HasSubstr("has mode 0620"));
}

TEST_F(TokenFileTest, RefusesAMissingFileNamingIt) {
  const auto path = dir_ / "absent";
  EXPECT_THAT(refusal(path), HasSubstr("cannot open bearer token file " + path.string() +
                                       ": No such file or directory"));
}

TEST_F(TokenFileTest, RefusesAFileOwnedBySomeoneElse) {
  const auto path = writeToken("t", 0600);
  const unsigned other_uid = ::geteuid() + 4242;
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path.c_str(), other_uid, static_cast<gid_t>(-1)), 0);
    EXPECT_THAT(refusal(path), HasSubstr("is owned by uid " + std::to_string(other_uid) +
                                         ": it must be owned by root or uid 0"));
  } else {
    // Without root the file is ours; ask for another owner instead.
    try {
      readBearerToken(path, other_uid);
      ADD_FAILURE() << "accepted a token file owned by another uid";
    } catch (const TokenFileError& error) {
      EXPECT_THAT(error.what(), HasSubstr("must be owned by root or uid " +
                                          std::to_string(other_uid)));
    }
  }
}

TEST_F(TokenFileTest, RefusesEmptyTokensDirectoriesAndMultiLineContent) {
  EXPECT_THAT(refusal(writeToken("\n", 0600)), HasSubstr("is empty"));
  EXPECT_THAT(refusal(writeToken("a\nb\n", 0600)), HasSubstr("contains control characters"));
  const auto sub = dir_ / "sub";
  std::filesystem::create_directory(sub);
  ::chmod(sub.c_str(), 0700);
  EXPECT_THAT(refusal(sub), HasSubstr("is not a regular file"));
  // A FIFO must be refused, not block the daemon's start on open().
  const auto fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(refusal(fifo), HasSubstr("is not a regular file"));
}

std::string setupRefusal(const std::string& base_url, const std::string& host,
                         HttpClientOptions options = {}) {
  try {
    ControllerClient client(base_url, host, HttpClient(std::move(options)));
  } catch (const HttpError& error) {
    EXPECT_EQ(error.failure(), HttpFailure::setup);
    return error.what();
  }
  ADD_FAILURE() << "accepted " << base_url;
  return {};
}

TEST(ControllerClientSetup, BuildsTheEndpointUrlsWithAnEncodedHostId) {
  ControllerClient client("https://ctl.example/api/", "host a/../x", HttpClient({}));
  EXPECT_EQ(client.maintenanceUrl(), "https://ctl.example/api/v1/hosts/host%20a%2F..%2Fx/maintenance");
  EXPECT_EQ(client.statusUrl(), "https://ctl.example/api/v1/hosts/host%20a%2F..%2Fx/status");
}

TEST(ControllerClientSetup, RefusesBadConfiguration) {
  EXPECT_THAT(setupRefusal("ftp://ctl.example", "h"), HasSubstr("must start with https://"));
  EXPECT_THAT(setupRefusal("https://ctl.example", ""), HasSubstr("host id is empty"));
  HttpClientOptions with_token;
  with_token.bearer_token = "t";
  EXPECT_THAT(setupRefusal("http://ctl.example", "h", with_token),
              HasSubstr("plain http: refusing to send the bearer token in clear"));
  HttpClientOptions key_only;
  key_only.client_key = "/etc/hostmaint/client.key";
  EXPECT_THAT(setupRefusal("https://ctl.example", "h", key_only),
              HasSubstr("client key /etc/hostmaint/client.key is set without a client certificate"));
}

}  // namespace
}  // namespace hostmaint::agent::controller
