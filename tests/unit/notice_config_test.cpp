// [notices] in hostmaintd.conf: values, defaults and the errors that name
// the file and key.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/notice.hpp"

using namespace std::chrono_literals;

namespace hostmaint::agent {
namespace {

class NoticeConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "notice-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Config load(const std::string& text) {
    std::ofstream(dir_ / "hostmaintd.conf") << text;
    return loadConfig(dir_ / "hostmaintd.conf", true);
  }
  std::string errorOf(const std::string& text) {
    try {
      load(text);
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "(accepted)";
  }

  std::filesystem::path dir_;
};

TEST_F(NoticeConfig, ValuesAreReadAndTurnedIntoEstimates) {
  Config config = load(R"([notices]
webhook_url = "https://hooks.example/notices"
webhook_token_file = "/etc/hostmaint/notices.token"
webhook_ca_file = "/etc/hostmaint/ca.pem"
webhook_connect_timeout = "3s"
webhook_timeout = "20s"
webhook_attempts = 7
webhook_retry_min = "500ms"
webhook_retry_max = "1m"
assumed_migration_throughput_mib_s = 250
min_expected_downtime = "45s"
boot_estimate = "90s"
)");
  const NoticesConfig& n = config.notices;
  EXPECT_EQ(n.webhook_url, "https://hooks.example/notices");
  EXPECT_EQ(n.webhook_token_file, std::filesystem::path("/etc/hostmaint/notices.token"));
  EXPECT_EQ(n.webhook_ca_file, std::filesystem::path("/etc/hostmaint/ca.pem"));
  EXPECT_EQ(n.webhook_connect_timeout, 3s);
  EXPECT_EQ(n.webhook_timeout, 20s);
  EXPECT_EQ(n.webhook_attempts, 7u);
  EXPECT_EQ(n.webhook_retry_min, 500ms);
  EXPECT_EQ(n.webhook_retry_max, 1min);
  NoticeSettings estimates = noticeSettingsFrom(n);
  EXPECT_EQ(estimates.assumed_throughput_bps, 250ull * 1024 * 1024);
  EXPECT_EQ(estimates.min_expected_downtime, 45s);
  EXPECT_EQ(estimates.boot_estimate, 90s);
}

TEST_F(NoticeConfig, DefaultsHaveNoWebhook) {
  Config config = load("");
  EXPECT_TRUE(config.notices.webhook_url.empty());
  EXPECT_EQ(config.notices.webhook_attempts, 5u);
  EXPECT_EQ(noticeSettingsFrom(config.notices).min_expected_downtime, 30s);
}

TEST_F(NoticeConfig, ErrorsNameTheKeyAndWhy) {
  EXPECT_NE(errorOf("[notices]\nwebhook_url = \"ftp://x\"\n")
                .find("key 'notices.webhook_url': must start with http:// or https://"),
            std::string::npos);
  EXPECT_NE(errorOf("[notices]\nwebhook_url = \"http://x/\"\nwebhook_token_file = \"/t\"\n")
                .find("must be https:// when notices.webhook_token_file is set"),
            std::string::npos);
  EXPECT_NE(errorOf("[notices]\nwebhook_retry_min = \"10m\"\nwebhook_retry_max = \"1m\"\n")
                .find("key 'notices.webhook_retry_min': must not be larger than"),
            std::string::npos);
  EXPECT_NE(errorOf("[notices]\nwebhook_attempts = 0\n").find("must be between 1 and 100, got 0"),
            std::string::npos);
  EXPECT_NE(errorOf("[notices]\nwebhook_token_file = \"relative\"\n").find("absolute path"),
            std::string::npos);
  EXPECT_NE(errorOf("[notices]\nwebhok_url = \"x\"\n").find("did you mean 'webhook_url'?"),
            std::string::npos);
}

}  // namespace
}  // namespace hostmaint::agent
