#include "render_json.hpp"

#include "when.hpp"

namespace hostmaint::ctl::doc {

using nlohmann::json;

std::string text(const json& object, const char* key, std::string fallback) {
  if (!object.is_object()) return fallback;
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  if (found->is_string()) return printable(found->get<std::string>());
  if (found->is_boolean()) return found->get<bool>() ? "yes" : "no";
  if (found->is_number()) return found->dump();
  return fallback;
}

bool flag(const json& object, const char* key) {
  if (!object.is_object()) return false;
  const auto found = object.find(key);
  return found != object.end() && found->is_boolean() && found->get<bool>();
}

double number(const json& object, const char* key) {
  if (!object.is_object()) return 0;
  const auto found = object.find(key);
  return found != object.end() && found->is_number() ? found->get<double>() : 0;
}

const json& member(const json& object, const char* key) {
  static const json kAbsent;  // immutable: shared null for absent members
  if (!object.is_object()) return kAbsent;
  const auto found = object.find(key);
  return found == object.end() ? kAbsent : *found;
}

std::string instantText(const json& object, const char* key, const RenderOptions& options) {
  TimePoint when;
  if (!parseTimestamp(text(object, key), when)) return {};
  return formatInstant(when, options.local_time) + " (" + formatRelative(when, options.now) + ")";
}

}  // namespace hostmaint::ctl::doc
