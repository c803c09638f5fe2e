#include "hostmaint/agent/caller_text.hpp"

#include <cstdint>
#include <cstdio>

namespace hostmaint::agent {
namespace {

std::string codePoint(std::uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "U+%04X", static_cast<unsigned>(value));
  return buffer;
}

}  // namespace

Utf8Char decodeUtf8At(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return {1, lead};
  std::size_t length = 0;
  std::uint32_t value = 0;
  if ((lead & 0xE0) == 0xC0 && lead >= 0xC2) {
    length = 2;
    value = lead & 0x1Fu;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    value = lead & 0x0Fu;
  } else if ((lead & 0xF8) == 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07u;
  } else {
    return {};
  }
  if (at + length > text.size()) return {};
  for (std::size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[at + k]);
    if ((next & 0xC0) != 0x80) return {};
    value = (value << 6) | (next & 0x3Fu);
  }
  // Overlong forms, surrogates and values past Unicode are not UTF-8 either.
  const bool overlong = (length == 3 && value < 0x800) || (length == 4 && value < 0x10000);
  if (overlong || (value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) return {};
  return {length, value};
}

std::optional<std::string> callerTextProblem(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    return "is " + std::to_string(text.size()) + " bytes long (at most " +
           std::to_string(max_bytes) + ")";
  }
  std::size_t i = 0;
  while (i < text.size()) {
    const Utf8Char c = decodeUtf8At(text, i);
    if (c.length == 0) return "is not UTF-8 (byte " + std::to_string(i) + ")";
    if (c.value < 0x20 || c.value == 0x7F || (c.value >= 0x80 && c.value <= 0x9F)) {
      return "contains the control character " + codePoint(c.value) + " at byte " +
             std::to_string(i);
    }
    i += c.length;
  }
  return std::nullopt;
}

std::string printableExcerpt(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (char c : text.substr(0, kMax))
    out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  if (text.size() > kMax) out += "...";
  return out;
}

}  // namespace hostmaint::agent
