#include "cordon.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace hostmaint::hook {
namespace {

using nlohmann::json;

std::string typeName(const json& value) {
  return value.is_number() ? "number" : std::string(value.type_name());
}

// A key's value, or nullptr when it is absent or null (the daemon may write
// null for what it does not know; that is the same as leaving it out).
const json* member(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Reads the optional string `key` of `object` into `out`; returns the
// problem, or empty.
std::string readString(const json& object, const char* key, const std::string& where,
                       std::string& out) {
  const json* value = member(object, key);
  if (value == nullptr) return {};
  if (!value->is_string()) return where + "'" + key + "' must be a string, not " + typeName(*value);
  out = value->get<std::string>();
  return {};
}

std::string readExceptions(const json& document, const char* key, const char* name_key,
                           std::vector<CordonException>& out) {
  const json* list = member(document, key);
  if (list == nullptr) return {};
  if (!list->is_array())
    return std::string("'") + key + "' must be an array, not " + typeName(*list);
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    const std::string where = std::string(key) + "[" + std::to_string(i) + "]: ";
    if (!entry.is_object()) return where + "must be an object, not " + typeName(entry);
    CordonException exception;
    if (auto problem = readString(entry, name_key, where, exception.name); !problem.empty())
      return problem;
    if (auto problem = readString(entry, "uuid", where, exception.uuid); !problem.empty())
      return problem;
    out.push_back(std::move(exception));
  }
  return {};
}

// nlohmann's messages start with "[json.exception.parse_error.101] ": the
// admin needs the position and the cause, not the library's error number.
std::string parseErrorText(const std::string& what) {
  const auto end = what.find("] ");
  return what.starts_with("[json.exception.") && end != std::string::npos ? what.substr(end + 2)
                                                                          : what;
}

bool sameUuid(std::string_view a, std::string_view b) {
  return !a.empty() && a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool listed(const std::vector<CordonException>& list, const HookDomain& domain) {
  return std::any_of(list.begin(), list.end(), [&](const CordonException& entry) {
    return (!entry.name.empty() && entry.name == domain.name) || sameUuid(entry.uuid, domain.uuid);
  });
}

std::string whatIsRefused(GuardedOperation operation, const HookDomain& domain) {
  const std::string name = "'" + withoutControlCharacters(domain.name) + "'";
  return operation == GuardedOperation::start ? "starting domain " + name + " here"
                                              : "migrating domain " + name + " into this host";
}

// The domain's name as one shell word, for the command the message suggests.
std::string shellWord(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("._+:@%=,-").find(c) != std::string_view::npos;
  });
  if (plain && text.front() != '-') return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// "2026-12-01T10:00:00Z – 12:00:00Z": the end's date is left out when it is
// the start's.
std::string windowText(const std::string& start, const std::string& end) {
  if (start.empty()) return end.empty() ? "" : "window until " + end;
  if (end.empty()) return "window from " + start;
  const auto t = start.find('T');
  const bool same_day =
      t != std::string::npos && end.size() > t && end.compare(0, t + 1, start, 0, t + 1) == 0;
  return "window " + start + " \u2013 " + (same_day ? end.substr(t + 1) : end);
}

std::string cordonedMessage(const Cordon& cordon, GuardedOperation operation,
                            const HookDomain& domain) {
  const auto clean = [](const std::string& text) { return withoutControlCharacters(text); };
  std::string details;
  const auto add = [&details](const std::string& part) {
    if (!part.empty()) details += (details.empty() ? "" : ", ") + part;
  };
  if (!cordon.session_id.empty()) add("session " + clean(cordon.session_id));
  if (!cordon.phase.empty()) add("phase " + clean(cordon.phase));
  add(windowText(clean(cordon.window_start), clean(cordon.window_end)));
  if (!cordon.reason.empty()) details += (details.empty() ? "" : ": ") + clean(cordon.reason);

  std::string message = "hostmaint: ";
  message += cordon.host.empty() ? "this host" : "host " + clean(cordon.host);
  message += " is cordoned for maintenance";
  if (!details.empty()) message += " (" + details + ")";
  message += "; " + whatIsRefused(operation, domain) +
             " is refused. To allow this domain anyway: " + "hostmaintctl allow " +
             shellWord(clean(domain.name)) + " --reason TEXT (as root)";
  return message;
}

std::string unusableFileMessage(std::string_view path, const std::string& error,
                                GuardedOperation operation, const HookDomain& domain) {
  const std::string file = withoutControlCharacters(path);
  return "hostmaint: cannot use the cordon file " + file + " (" + withoutControlCharacters(error) +
         "); " + whatIsRefused(operation, domain) +
         " is refused, since this host may be in maintenance. Check with hostmaintctl status; "
         "if hostmaint is no longer used on this host, remove " +
         file;
}

}  // namespace

std::variant<Cordon, std::string> parseCordon(std::string_view text) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& error) {
    return "invalid JSON: " + parseErrorText(error.what());
  }
  if (!document.is_object()) return "the document must be an object, not " + typeName(document);

  const json* format = member(document, "format");
  if (format == nullptr) return std::string("'format' is missing");
  if (!format->is_number_integer()) return "'format' must be an integer, not " + typeName(*format);
  if (format->get<long long>() != kCordonFormat) {
    const auto number = std::to_string(format->get<long long>());
    return format->get<long long>() > kCordonFormat
               ? "format " + number + " is newer than this hook understands (" +
                     std::to_string(kCordonFormat) + "): update hostmaint"
               : "format " + number + " is not a known format";
  }

  Cordon cordon;
  const json* cordoned = member(document, "cordoned");
  if (cordoned == nullptr) return std::string("'cordoned' is missing");
  if (!cordoned->is_boolean()) return "'cordoned' must be a boolean, not " + typeName(*cordoned);
  cordon.cordoned = cordoned->get<bool>();

  const std::pair<const char*, std::string*> strings[] = {
      {"host", &cordon.host},
      {"session_id", &cordon.session_id},
      {"phase", &cordon.phase},
      {"window_start", &cordon.window_start},
      {"window_end", &cordon.window_end},
      {"reason", &cordon.reason},
  };
  for (const auto& [key, out] : strings) {
    if (auto problem = readString(document, key, "", *out); !problem.empty()) return problem;
  }
  if (auto problem = readExceptions(document, "allowed", "domain", cordon.allowed);
      !problem.empty())
    return problem;
  if (auto problem = readExceptions(document, "restoring", "name", cordon.restoring);
      !problem.empty())
    return problem;
  return cordon;
}

std::optional<GuardedOperation> guardedOperation(std::string_view operation,
                                                 std::string_view sub_operation) {
  if (sub_operation != "begin") return std::nullopt;
  if (operation == "prepare") return GuardedOperation::start;
  if (operation == "migrate") return GuardedOperation::migrate_in;
  return std::nullopt;
}

HookVerdict decide(GuardedOperation operation, const HookDomain& domain,
                   std::string_view cordon_path, const CordonFileRead& file) {
  switch (file.state) {
    case CordonFileRead::State::missing:
      return {true, {}};
    case CordonFileRead::State::unreadable:
      return {false, unusableFileMessage(cordon_path, file.error, operation, domain)};
    case CordonFileRead::State::read:
      break;
  }
  const auto parsed = parseCordon(file.contents);
  if (const auto* problem = std::get_if<std::string>(&parsed))
    return {false, unusableFileMessage(cordon_path, *problem, operation, domain)};
  const Cordon& cordon = std::get<Cordon>(parsed);
  if (!cordon.cordoned || listed(cordon.restoring, domain) || listed(cordon.allowed, domain))
    return {true, {}};
  return {false, cordonedMessage(cordon, operation, domain)};
}

std::string domainUuidFromXml(std::string_view xml, std::size_t limit) {
  xml = xml.substr(0, limit);
  const auto npos = std::string_view::npos;
  int depth = 0;  // 1 inside <domain>
  std::size_t i = 0;
  while ((i = xml.find('<', i)) != npos) {
    const std::string_view rest = xml.substr(i);
    // Comments, CDATA, processing instructions and declarations open no element.
    const std::pair<std::string_view, std::string_view> skipped[] = {
        {"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}, {"<!", ">"}};
    bool skip = false;
    for (const auto& [open, close] : skipped) {
      if (!rest.starts_with(open)) continue;
      const auto end = xml.find(close, i + open.size());
      if (end == npos) return {};
      i = end + close.size();
      skip = true;
      break;
    }
    if (skip) continue;

    // The tag ends at the first '>' outside a quoted attribute value.
    std::size_t end = i + 1;
    char quote = 0;
    for (; end < xml.size(); ++end) {
      const char c = xml[end];
      if (quote != 0) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      }
    }
    if (end >= xml.size()) return {};
    if (rest.starts_with("</")) {
      if (--depth <= 0) return {};  // <domain> closed without a <uuid>
      i = end + 1;
      continue;
    }
    const bool empty_element = xml[end - 1] == '/';
    const std::string_view tag = xml.substr(i + 1, end - i - 1);
    const std::string_view name = tag.substr(0, tag.find_first_of(" \t\r\n/"));
    if (depth == 0 && name != "domain") return {};
    if (depth == 1 && name == "uuid" && !empty_element) {
      const auto text_end = xml.find('<', end + 1);
      if (text_end == npos) return {};
      std::string_view uuid = xml.substr(end + 1, text_end - end - 1);
      const auto first = uuid.find_first_not_of(" \t\r\n");
      if (first == npos) return {};
      uuid = uuid.substr(first, uuid.find_last_not_of(" \t\r\n") - first + 1);
      const bool plausible = uuid.size() >= 32 && uuid.size() <= 36 &&
                             std::all_of(uuid.begin(), uuid.end(), [](char c) {
                               return std::isxdigit(static_cast<unsigned char>(c)) || c == '-';
                             });
      return plausible ? std::string(uuid) : std::string();
    }
    if (!empty_element) ++depth;
    i = end + 1;
  }
  return {};
}

std::string withoutControlCharacters(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) continue;
    // C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8.
    if (byte == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      ++i;
      continue;
    }
    out += static_cast<char>(byte);
  }
  return out;
}

}  // namespace hostmaint::hook
