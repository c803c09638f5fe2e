// JSON text written directly, byte for byte as nlohmann::json's dump() (and
// dump(indent)) renders the same value, without building a json value
// first: the status, the owners' notices and the journal render hundreds of
// domains, and building nlohmann's maps for each was most of their cost.
// Tests compare every renderer built on this with an nlohmann twin.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent::json_text {

// A string as a JSON string literal, escaped as nlohmann escapes it. Text
// that is not ASCII goes through nlohmann itself (which also refuses
// invalid UTF-8, as it always did).
std::string quote(std::string_view text);
// A double as nlohmann renders it (its own shortest round-trip form).
std::string number(double value);
inline std::string number(std::int64_t value) { return std::to_string(value); }
inline std::string number(std::uint64_t value) { return std::to_string(value); }
inline std::string boolean(bool value) { return value ? "true" : "false"; }
inline std::string null() { return "null"; }

// How the text is laid out: compact (dump()), or indented by `indent`
// spaces per level (dump(indent)) with the value at `level`.
struct Layout {
  int indent = -1;  // < 0: compact
  int level = 0;
  Layout deeper() const { return {indent, level + 1}; }
};

// An object's members, given in any order; text() writes them in key
// order, as nlohmann's std::map-backed objects do. Each value is already
// rendered for layout.deeper(). Keys are written as given: this program's
// own names, which need no escape.
class Object {
 public:
  explicit Object(Layout layout) : layout_(layout) {}
  Object& add(std::string_view key, std::string value) {
    members_.emplace_back(key, std::move(value));
    return *this;
  }
  Layout inner() const { return layout_.deeper(); }
  std::string text();

 private:
  Layout layout_;
  std::vector<std::pair<std::string_view, std::string>> members_;
};

// `text` (rendered with an indent) as compact: nlohmann's indented and
// compact renderings differ only in the spaces and newlines between tokens.
std::string compacted(std::string_view text);

// An array of values already rendered for layout.deeper().
std::string array(const std::vector<std::string>& values, Layout layout);

template <typename T, typename Render>
std::string orNull(const std::optional<T>& value, Render render) {
  return value ? render(*value) : null();
}

// Renderers built on this: noticeText, the twin of noticeToJson(notice)
// (notice.cpp), and domainText, the only list of a domain entry's fields
// (statusToJson() parses it; the unit tests keep an nlohmann twin).
std::string noticeText(const DomainNotice& notice, Layout layout);
// `notice_text`, when given, is domain.notice already rendered for
// layout.deeper() (NoticeTexts::indented at {2, 2}).
std::string domainText(const DomainStatus& domain, Layout layout,
                       const std::string* notice_text = nullptr);

}  // namespace hostmaint::agent::json_text
