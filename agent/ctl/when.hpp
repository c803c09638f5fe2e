// Time as an operator types and reads it: WHEN arguments (`now`, `+1h30m`,
// ISO 8601) and durations/instants rendered for people ("in 25m").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace hostmaint::ctl {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// Parses a WHEN argument relative to `now`:
//   now
//   +90s  +30m  +2h  +1d  +1h30m      (units d, h, m, s; each at most once)
//   2026-11-25T10:00:00Z  2026-11-25T11:00+01:00  2026-11-25 10:00
// A time without an offset is UTC, like every time in the daemon's documents.
// Throws CtlError(usage) naming the text and the accepted forms.
TimePoint parseWhen(std::string_view text, TimePoint now);

// "45s", "25m", "25m30s", "1h30m", "2d3h": the two most significant units,
// rounded down. Negative durations get a leading '-'.
std::string formatDuration(std::chrono::seconds duration);

// "in 25m", "5m ago", "now" (within a second).
std::string formatRelative(TimePoint when, TimePoint now);

// "2026-11-25 10:00:00 UTC" when `local` is false, else the same in the local
// time zone with its abbreviation ("2026-11-25 11:00:00 CET").
std::string formatInstant(TimePoint when, bool local);

// Parses the daemon's RFC 3339 timestamps ("2026-11-25T10:00:00Z"); false when
// the text is not one. Same grammar as parseWhen's ISO form.
bool parseTimestamp(std::string_view text, TimePoint& out);

}  // namespace hostmaint::ctl
