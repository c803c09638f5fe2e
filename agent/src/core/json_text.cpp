#include "json_text.hpp"

#include <nlohmann/json.hpp>

namespace hostmaint::agent::json_text {

std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Most text needs no escape: copied in one piece.
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
  });
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  if (plain) {
    out += text;
    out += '"';
    return out;
  }
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) return nlohmann::json(std::string(text)).dump();
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (byte < 0x20) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string number(double value) { return nlohmann::json(value).dump(); }

namespace {

void newline(std::string& out, Layout layout) {
  out += '\n';
  out.append(static_cast<std::size_t>(layout.indent * layout.level), ' ');
}

}  // namespace

std::string Object::text() {
  if (members_.empty()) return "{}";
  std::sort(members_.begin(), members_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::size_t size = 2;
  for (const auto& [key, value] : members_) size += key.size() + value.size() + 8;
  const bool pretty = layout_.indent >= 0;
  if (pretty) size += members_.size() * static_cast<std::size_t>(layout_.indent * (layout_.level + 1) + 2);
  std::string out;
  out.reserve(size);
  out += '{';
  bool first = true;
  for (const auto& [key, value] : members_) {
    if (!first) out += ',';
    first = false;
    if (pretty) newline(out, inner());
    // Keys are this program's own names, which need no escape.
    out += '"';
    out += key;
    out += pretty ? "\": " : "\":";
    out += value;
  }
  if (pretty) newline(out, layout_);
  out += '}';
  return out;
}

std::string compacted(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      out += c;
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c != ' ' && c != '\n') {
      out += c;
      in_string = c == '"';
    }
  }
  return out;
}

std::string array(const std::vector<std::string>& values, Layout layout) {
  if (values.empty()) return "[]";
  const bool pretty = layout.indent >= 0;
  std::string out = "[";
  bool first = true;
  for (const std::string& value : values) {
    if (!first) out += ',';
    first = false;
    if (pretty) newline(out, layout.deeper());
    out += value;
  }
  if (pretty) newline(out, layout);
  out += ']';
  return out;
}

}  // namespace hostmaint::agent::json_text
