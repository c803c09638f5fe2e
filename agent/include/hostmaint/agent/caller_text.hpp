// Text that callers hand to hostmaintd and that others are shown later
// (maintenance and ack reasons): bounded and free of control characters, so
// a reason can neither drive the terminal of whoever reads it (ESC, BEL)
// nor fake extra lines in a log or a table (newlines). Refused, not
// rewritten: the caller learns at once, and what is stored is what was sent.
// docs/dbus-api.md ("Text arguments").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hostmaint::agent {

// The longest reason accepted, in bytes (the controller protocol's limit too).
inline constexpr std::size_t kMaxReasonBytes = 1024;

// Why `text` may not be stored, or nullopt when it may: longer than
// `max_bytes`, not UTF-8, or holding a control character (C0 including tab
// and newline, DEL, or C1). "contains the control character U+001B at byte 4".
std::optional<std::string> callerTextProblem(std::string_view text, std::size_t max_bytes);

// One character of UTF-8 text: its length in bytes and its code point.
// length 0: the bytes at that place are not a whole, valid sequence
// (a stray continuation byte, a cut sequence, an overlong form, a
// surrogate, a value past U+10FFFF).
struct Utf8Char {
  std::size_t length = 0;
  std::uint32_t value = 0;
};
Utf8Char decodeUtf8At(std::string_view text, std::size_t at);

// `text` for quoting in an error message or a log line: control bytes
// masked as '?', cut after 64 bytes ("...").
std::string printableExcerpt(std::string_view text);

}  // namespace hostmaint::agent
