#include "when.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <ctime>
#include <optional>
#include <string>

#include "exit_status.hpp"

namespace hostmaint::ctl {
namespace {

constexpr std::string_view kAcceptedForms =
    "expected 'now', a relative time such as +30m, +2h, +1h30m, +90s, +1d, "
    "or an ISO 8601 time such as 2026-11-25T10:00:00Z (UTC when no offset is given)";

constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2199;

// Reads exactly `digits` decimal digits at `pos`.
std::optional<int> readFixed(std::string_view text, std::size_t& pos, std::size_t digits) {
  if (pos + digits > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = text[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  pos += digits;
  return value;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

std::optional<std::chrono::seconds> parseRelative(std::string_view body, std::string& why) {
  using namespace std::chrono;
  if (body.empty()) {
    why = "nothing after '+'";
    return std::nullopt;
  }
  seconds total{0};
  std::string seen_units;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t digits_end = pos;
    while (digits_end < body.size() && std::isdigit(static_cast<unsigned char>(body[digits_end])))
      ++digits_end;
    if (digits_end == pos) {
      why = "expected a number at '" + std::string(body.substr(pos)) + "'";
      return std::nullopt;
    }
    // Nine digits are far beyond any sensible window and keep the sum from overflowing.
    if (digits_end - pos > 9) {
      why = "number too large";
      return std::nullopt;
    }
    long long count = 0;
    std::from_chars(body.data() + pos, body.data() + digits_end, count);
    if (digits_end == body.size()) {
      why = "missing unit after " + std::string(body.substr(pos)) + " (use d, h, m or s)";
      return std::nullopt;
    }
    const char unit = body[digits_end];
    long long unit_seconds = 0;
    switch (unit) {
      case 'd': unit_seconds = 86400; break;
      case 'h': unit_seconds = 3600; break;
      case 'm': unit_seconds = 60; break;
      case 's': unit_seconds = 1; break;
      default:
        why = std::string("unknown unit '") + unit + "' (use d, h, m or s)";
        return std::nullopt;
    }
    if (seen_units.find(unit) != std::string::npos) {
      why = std::string("unit '") + unit + "' given twice";
      return std::nullopt;
    }
    seen_units += unit;
    total += seconds(count * unit_seconds);
    pos = digits_end + 1;
  }
  // A window more than ten years out is a typo, not a plan.
  if (total > hours(24 * 366 * 10)) {
    why = "more than ten years ahead";
    return std::nullopt;
  }
  return total;
}

constexpr int kFirstYearRefused = 2200;

bool parseIso(std::string_view text, TimePoint& out) {
  using namespace std::chrono;
  std::size_t pos = 0;
  const auto y = readFixed(text, pos, 4);
  if (!y || !expect(text, pos, '-')) return false;
  // The daemon's range (kMinTimeYear..kMaxTimeYear in status_json.hpp): a
  // TimePoint counts nanoseconds and ends in 2262, and the distance from now
  // to the time, shown as "in 25m", must fit as well.
  if (*y < kMinYear || *y > kMaxYear) return false;
  const auto mo = readFixed(text, pos, 2);
  if (!mo || !expect(text, pos, '-')) return false;
  const auto d = readFixed(text, pos, 2);
  if (!d) return false;
  if (!expect(text, pos, 'T') && !expect(text, pos, 't') && !expect(text, pos, ' ')) return false;
  const auto h = readFixed(text, pos, 2);
  if (!h || !expect(text, pos, ':')) return false;
  const auto mi = readFixed(text, pos, 2);
  if (!mi) return false;
  int s = 0;
  if (expect(text, pos, ':')) {
    const auto sec = readFixed(text, pos, 2);
    if (!sec) return false;
    s = *sec;
    // Fractions of a second are accepted and dropped: windows are planned in seconds.
    if (expect(text, pos, '.') || expect(text, pos, ',')) {
      const std::size_t start = pos;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
      if (pos == start) return false;
    }
  }
  seconds offset{0};
  if (pos < text.size()) {
    const char sign = text[pos];
    if ((sign == 'Z' || sign == 'z') && pos + 1 == text.size()) {
      ++pos;
    } else if (sign == '+' || sign == '-') {
      ++pos;
      const auto oh = readFixed(text, pos, 2);
      if (!oh) return false;
      expect(text, pos, ':');
      const auto om = readFixed(text, pos, 2);
      if (!om || *oh > 23 || *om > 59) return false;
      offset = hours(*oh) + minutes(*om);
      if (sign == '-') offset = -offset;
    } else {
      return false;
    }
  }
  if (pos != text.size()) return false;
  // The clock counts nanoseconds in 64 bits, which ends in 2262; hostmaintd
  // takes times before 2200 (docs/dbus-api.md).
  if (*y >= kFirstYearRefused) return false;
  const year_month_day date{year{*y}, month{static_cast<unsigned>(*mo)},
                            day{static_cast<unsigned>(*d)}};
  if (!date.ok() || *h > 23 || *mi > 59 || s > 59) return false;
  out = TimePoint(sys_days(date).time_since_epoch() + hours(*h) + minutes(*mi) + seconds(s) -
                  offset);
  return true;
}

}  // namespace

TimePoint parseWhen(std::string_view text, TimePoint now) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text == "now") return now;
  if (!text.empty() && text.front() == '+') {
    std::string why;
    const auto offset = parseRelative(text.substr(1), why);
    if (!offset)
      throw CtlError(ExitStatus::usage, "invalid time " + quoted + ": " + why + "; " +
                                            std::string(kAcceptedForms));
    return now + *offset;
  }
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front()))) {
    TimePoint parsed;
    if (parseIso(text, parsed)) return parsed;
    std::size_t pos = 0;
    if (const auto year = readFixed(text, pos, 4); year && (*year < kMinYear || *year > kMaxYear))
      throw CtlError(ExitStatus::usage, "invalid time " + quoted + ": the year must be between " +
                                            std::to_string(kMinYear) + " and " +
                                            std::to_string(kMaxYear));
    // "30m" is a common slip for "+30m": say so rather than only listing forms.
    std::string why;
    if (parseRelative(text, why))
      throw CtlError(ExitStatus::usage, "invalid time " + quoted + ": did you mean '+" +
                                            std::string(text) + "'?");
    throw CtlError(ExitStatus::usage, "invalid time " + quoted + ": not a valid ISO 8601 time; " +
                                          std::string(kAcceptedForms));
  }
  throw CtlError(ExitStatus::usage, "invalid time " + quoted + ": " + std::string(kAcceptedForms));
}

bool parseTimestamp(std::string_view text, TimePoint& out) { return parseIso(text, out); }

std::string formatDuration(std::chrono::seconds duration) {
  if (duration.count() < 0) return "-" + formatDuration(-duration);
  if (duration.count() == 0) return "0s";
  constexpr std::array<std::pair<long long, char>, 4> units{
      {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}};
  std::array<long long, units.size()> counts{};
  long long rest = duration.count();
  for (std::size_t i = 0; i < units.size(); ++i) {
    counts[i] = rest / units[i].first;
    rest %= units[i].first;
  }
  // The largest unit and the one right below it say enough: "1d2h", not "1d2h3m4s".
  std::size_t first = 0;
  while (counts[first] == 0) ++first;
  std::string text = std::to_string(counts[first]) + units[first].second;
  if (first + 1 < units.size() && counts[first + 1] > 0)
    text += std::to_string(counts[first + 1]) + units[first + 1].second;
  return text;
}

std::string formatRelative(TimePoint when, TimePoint now) {
  const auto delta = std::chrono::duration_cast<std::chrono::seconds>(when - now);
  if (delta.count() == 0) return "now";
  if (delta.count() > 0) return "in " + formatDuration(delta);
  return formatDuration(-delta) + " ago";
}

std::string formatInstant(TimePoint when, bool local) {
  const std::time_t seconds = Clock::to_time_t(when);
  std::tm parts{};
  if (local) {
    localtime_r(&seconds, &parts);
  } else {
    gmtime_r(&seconds, &parts);
  }
  std::array<char, 64> buffer{};
  const std::size_t length =
      std::strftime(buffer.data(), buffer.size(), local ? "%Y-%m-%d %H:%M:%S %Z" : "%Y-%m-%d %H:%M:%S UTC", &parts);
  return std::string(buffer.data(), length);
}

}  // namespace hostmaint::ctl
