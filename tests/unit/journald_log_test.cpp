// hostmaintd's log lines: "<N>" syslog priority prefixes and no timestamp
// under the journal; timestamped lines otherwise.
#include "hostmaint/agent/service/journald_log.hpp"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

namespace hostmaint::service {
namespace {

std::string render(bool journal, spdlog::level::level_enum level, const std::string& text) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  spdlog::logger logger("test", sink);
  logger.set_formatter(makeLogFormatter(journal));
  logger.set_level(spdlog::level::trace);
  logger.log(level, text);
  return out.str();
}

TEST(JournaldLog, PrefixesEachLevelWithItsSyslogPriority) {
  EXPECT_EQ(render(true, spdlog::level::trace, "t"), "<7>t\n");
  EXPECT_EQ(render(true, spdlog::level::debug, "d"), "<7>d\n");
  EXPECT_EQ(render(true, spdlog::level::info, "hypervisor connected"), "<6>hypervisor connected\n");
  EXPECT_EQ(render(true, spdlog::level::warn, "w"), "<4>w\n");
  EXPECT_EQ(render(true, spdlog::level::err, "e"), "<3>e\n");
  EXPECT_EQ(render(true, spdlog::level::critical, "c"), "<2>c\n");
}

TEST(JournaldLog, OutsideTheJournalLinesCarryTimeAndLevel) {
  const std::string line = render(false, spdlog::level::warn, "hypervisor disconnected");
  EXPECT_TRUE(std::regex_match(
      line,
      std::regex(
          R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[warning\] hypervisor disconnected\n)")))
      << line;
  EXPECT_EQ(line.find('<'), std::string::npos);
}

// Sets or unsets an environment variable for one test, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(JournaldLog, DetectsTheJournalFromSystemdsEnvironment) {
  {
    ScopedEnv stream("JOURNAL_STREAM", nullptr);
    ScopedEnv invocation("INVOCATION_ID", nullptr);
    EXPECT_FALSE(runningUnderJournal());
  }
  {
    ScopedEnv stream("JOURNAL_STREAM", "8:12345");
    ScopedEnv invocation("INVOCATION_ID", nullptr);
    EXPECT_TRUE(runningUnderJournal());
  }
  {
    ScopedEnv stream("JOURNAL_STREAM", nullptr);
    ScopedEnv invocation("INVOCATION_ID", "0123456789abcdef0123456789abcdef");
    EXPECT_TRUE(runningUnderJournal());
  }
}

}  // namespace
}  // namespace hostmaint::service
