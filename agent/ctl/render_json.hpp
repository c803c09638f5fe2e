// Reading the status document defensively, for the renderers (render.cpp,
// fleet_render.cpp): a missing key, a null or a value of another type reads
// as absent, so a document from an older or newer daemon never fails the
// rendering. Internal to hostmaint_ctl.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "render.hpp"

namespace hostmaint::ctl::doc {

// The member as printable text (strings escaped, booleans "yes"/"no",
// numbers as written); `fallback` when absent.
std::string text(const nlohmann::json& object, const char* key, std::string fallback = "");
bool flag(const nlohmann::json& object, const char* key);
double number(const nlohmann::json& object, const char* key);
// The member, or a shared null when absent.
const nlohmann::json& member(const nlohmann::json& object, const char* key);
// A time member as "2026-12-01 10:15:00 (in 3m)"; "" when absent.
std::string instantText(const nlohmann::json& object, const char* key,
                        const RenderOptions& options);

}  // namespace hostmaint::ctl::doc
