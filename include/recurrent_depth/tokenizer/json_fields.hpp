// Typed fields of tokenizer.json's objects: each reader checks the JSON type and names the field
// (`where`.key) in its error, so that a wrong type is an Error, never nlohmann's type_error.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"

namespace recurrent_depth::tokenizer {

using Json = nlohmann::json;

// The value at `key` of an object that must have it.
inline const Json& json_field(const Json& object, std::string_view key, const std::string& where) {
  require(object.is_object(), where, ": expected a JSON object");
  const auto it = object.find(key);
  require(it != object.end(), where, ": missing field \"", key, "\"");
  return *it;
}

// The string at `key`, which must be there.
inline std::string json_string(const Json& object, std::string_view key, const std::string& where) {
  const Json& value = json_field(object, key, where);
  require(value.is_string(), where, ".", key, ": expected a string");
  return value.get<std::string>();
}

// The boolean at `key`, or `fallback` where the key is absent or null.
inline bool json_bool(const Json& object, std::string_view key, bool fallback,
                      const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  require(it->is_boolean(), where, ".", key, ": expected true or false");
  return it->get<bool>();
}

// The string at `key`, or `fallback` where the key is absent or null.
inline std::string json_string_or(const Json& object, std::string_view key, std::string fallback,
                                  const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  require(it->is_string(), where, ".", key, ": expected a string");
  return it->get<std::string>();
}

}  // namespace recurrent_depth::tokenizer
