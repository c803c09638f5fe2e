// Integers read back from our own JSON files (journal, notice ledger), which
// may have been edited or corrupted. nlohmann's get<T>() converts a float or
// an out-of-range number without a word (undefined behaviour for a float too
// large for T), so such a value is refused here instead.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace hostmaint::agent {

// Throws std::runtime_error naming `what` when `value` is not an integer
// that fits T.
template <typename T>
T jsonInteger(const nlohmann::json& value, std::string_view what) {
  bool fits = false;
  if (value.is_number_unsigned()) {
    fits = std::in_range<T>(value.get<std::uint64_t>());
  } else if (value.is_number_integer()) {
    fits = std::in_range<T>(value.get<std::int64_t>());
  } else {
    throw std::runtime_error(std::string(what) + ": expected an integer, got " + value.type_name());
  }
  if (!fits) throw std::runtime_error(std::string(what) + ": " + value.dump() + " is out of range");
  return value.get<T>();
}

// An optional integer field: `absent` when the object does not have it.
template <typename T>
T jsonInteger(const nlohmann::json& object, const char* key, T absent) {
  const auto found = object.find(key);
  return found == object.end() ? absent : jsonInteger<T>(*found, key);
}

}  // namespace hostmaint::agent
