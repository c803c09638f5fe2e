// hostmaintd's log format. Under systemd, stderr goes to the journal, which
// reads a "<N>" syslog priority prefix on each line (sd-daemon.h) and adds
// its own timestamp; anywhere else, lines carry a timestamp and level.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include <memory>

namespace hostmaint::service {

// True when stderr is (likely) connected to the journal: systemd sets
// JOURNAL_STREAM for that, and INVOCATION_ID for every service it runs.
bool runningUnderJournal();

// The sd-daemon.h priority of a spdlog level: trace/debug → 7, info → 6,
// warn → 4, error → 3, critical → 2.
int syslogPriority(spdlog::level::level_enum level);

// "<6>message" per line under the journal, "[2026-11-25 04:00:00.123] [info] message"
// otherwise.
std::unique_ptr<spdlog::formatter> makeLogFormatter(bool journal);

// Installs the default logger: stderr with makeLogFormatter(journal), at `level`.
void setUpLogging(bool journal, spdlog::level::level_enum level);

}  // namespace hostmaint::service
