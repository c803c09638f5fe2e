// The [http] section: values read, defaults, and errors naming file, line and key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "hostmaint/agent/config.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class HttpConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "http-config-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Config load(const std::string& text) {
    std::ofstream(path()) << text;
    return loadConfig(path(), true);
  }
  std::string errorOf(const std::string& text) {
    try {
      load(text);
    } catch (const ConfigError& error) {
      return error.what();
    }
    ADD_FAILURE() << "expected a ConfigError for: " << text;
    return {};
  }
  std::filesystem::path path() const { return dir_ / "hostmaintd.conf"; }

  std::filesystem::path dir_;
};

TEST_F(HttpConfigTest, OffAndLocalByDefault) {
  Config config = load("");
  EXPECT_FALSE(config.http.enabled);
  EXPECT_EQ(config.http.listen_address, "127.0.0.1");
  EXPECT_EQ(config.http.port, 9465);
  EXPECT_EQ(config.http.max_connections, 64u);
  EXPECT_EQ(config.http.request_timeout, 5s);
}

TEST_F(HttpConfigTest, ReadsEveryKey) {
  Config config = load(
      "[http]\nenabled = true\nlisten_address = \"::1\"\nport = 8080\n"
      "max_connections = 10\nrequest_timeout = \"300ms\"\n");
  EXPECT_TRUE(config.http.enabled);
  EXPECT_EQ(config.http.listen_address, "::1");
  EXPECT_EQ(config.http.port, 8080);
  EXPECT_EQ(config.http.max_connections, 10u);
  EXPECT_EQ(config.http.request_timeout, 300ms);
}

TEST_F(HttpConfigTest, BadValuesNameFileLineAndKey) {
  EXPECT_THAT(errorOf("[http]\n\nlisten_address = \"localhost\"\n"),
              HasSubstr(path().string() + ":3: key 'http.listen_address': 'localhost' is not an "
                                          "IPv4 or IPv6 address"));
  EXPECT_THAT(errorOf("[http]\nport = 0\n"),
              HasSubstr(":2: key 'http.port': must be between 1 and 65535, got 0"));
  EXPECT_THAT(errorOf("[http]\nport = 70000\n"), HasSubstr("key 'http.port'"));
  EXPECT_THAT(errorOf("[http]\nenabled = \"yes\"\n"),
              HasSubstr("key 'http.enabled': expected a boolean"));
  EXPECT_THAT(errorOf("[http]\nmax_connections = 0\n"), HasSubstr("key 'http.max_connections'"));
  EXPECT_THAT(errorOf("[http]\nrequest_timeout = \"10ms\"\n"),
              HasSubstr("key 'http.request_timeout'"));
}

}  // namespace
}  // namespace hostmaint::agent
