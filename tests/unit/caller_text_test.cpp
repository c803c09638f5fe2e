// Reasons and other text callers hand to hostmaintd: bounded, UTF-8, no
// control characters (docs/dbus-api.md, "Text arguments").
#include "hostmaint/agent/caller_text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace hostmaint::agent {
namespace {

std::string problem(std::string_view text, std::size_t max = kMaxReasonBytes) {
  return callerTextProblem(text, max).value_or("");
}

TEST(CallerText, PlainTextAndUnicodeAreAccepted) {
  EXPECT_EQ(problem(""), "");
  EXPECT_EQ(problem("BIOS update (CHG-1234)"), "");
  EXPECT_EQ(problem("Wartung f\xc3\xbcr den Kernel \xe2\x9c\x93 \xf0\x9f\x94\xa7"), "");
  EXPECT_EQ(problem(std::string(kMaxReasonBytes, 'x')), "");
}

TEST(CallerText, ControlCharactersAreNamedWithTheirPlace) {
  EXPECT_EQ(problem("ok\x1b[2J"), "contains the control character U+001B at byte 2");
  EXPECT_EQ(problem("ring\x07"), "contains the control character U+0007 at byte 4");
  EXPECT_EQ(problem("two\nlines"), "contains the control character U+000A at byte 3");
  EXPECT_EQ(problem("tab\there"), "contains the control character U+0009 at byte 3");
  EXPECT_EQ(problem("del\x7f"), "contains the control character U+007F at byte 3");
  EXPECT_EQ(problem("csi\xc2\x9b"), "contains the control character U+009B at byte 3");
  EXPECT_EQ(problem(std::string("nul\0x", 5)), "contains the control character U+0000 at byte 3");
}

TEST(CallerText, LengthIsBoundedInBytes) {
  EXPECT_EQ(problem(std::string(kMaxReasonBytes + 1, 'x')), "is 1025 bytes long (at most 1024)");
  // Counted in bytes, not characters: 512 two-byte characters fit, 513 do not.
  std::string wide;
  for (int i = 0; i < 513; ++i) wide += "\xc3\xa9";
  EXPECT_EQ(problem(wide), "is 1026 bytes long (at most 1024)");
}

TEST(CallerText, BrokenUtf8IsRefused) {
  EXPECT_EQ(problem("cut \xe2\x9c"), "is not UTF-8 (byte 4)");
  EXPECT_EQ(problem("\xff"), "is not UTF-8 (byte 0)");
  EXPECT_EQ(problem("\xc0\xaf"), "is not UTF-8 (byte 0)");      // overlong '/'
  EXPECT_EQ(problem("\xed\xa0\x80"), "is not UTF-8 (byte 0)");  // a surrogate
}

TEST(CallerText, ExcerptsMaskControlBytesAndStayShort) {
  EXPECT_EQ(printableExcerpt("web\x1b[31m"), "web?[31m");
  EXPECT_EQ(printableExcerpt(std::string(100, 'a')), std::string(64, 'a') + "...");
}

}  // namespace
}  // namespace hostmaint::agent
