#include "hostmaint/agent/service/journald_log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace hostmaint::service {
namespace {

bool isSet(const char* name) {
  const char* value = std::getenv(name);
  return value && *value;
}

// The %P flag: "<N>", the syslog priority prefix journald strips and stores.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& destination) override {
    const std::string prefix = "<" + std::to_string(syslogPriority(message.level)) + ">";
    destination.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

}  // namespace

bool runningUnderJournal() { return isSet("JOURNAL_STREAM") || isSet("INVOCATION_ID"); }

int syslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;  // SD_DEBUG
    case spdlog::level::info:
      return 6;  // SD_INFO
    case spdlog::level::warn:
      return 4;  // SD_WARNING
    case spdlog::level::err:
      return 3;  // SD_ERR
    case spdlog::level::critical:
      return 2;  // SD_CRIT
    case spdlog::level::off:
    case spdlog::level::n_levels:
      break;
  }
  return 6;
}

std::unique_ptr<spdlog::formatter> makeLogFormatter(bool journal) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (journal) {
    formatter->add_flag<SyslogPriorityFlag>('P').set_pattern("%P%v");
  } else {
    formatter->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  }
  return formatter;
}

void setUpLogging(bool journal, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_logger_mt("hostmaintd");
  logger->set_formatter(makeLogFormatter(journal));
  logger->set_level(level);
  // Errors must reach the journal even if the daemon dies right after.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace hostmaint::service
