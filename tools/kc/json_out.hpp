// The JSON output of the kc tool's commands (kc dlq inspect --json, kc lag
// --json, kc config check --json): one object a line, no spaces, members in
// the order they are added.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kc::tool {

/// `s` (any bytes: names and messages come from peers) as a JSON string,
/// quotes included: detail::append_json_escaped_lossy (src/text), so each
/// invalid UTF-8 sequence is \ufffd and the output parses whatever the input.
std::string json_string(std::string_view s);

/// Builds one JSON object. Not thread-safe (one builder, one thread); throws
/// only std::bad_alloc.
class JsonObject {
 public:
  /// A member whose value is JSON already (a number, an array, ...).
  JsonObject& raw(std::string_view name, std::string_view json);
  /// A string member; null when `v` is nullopt.
  JsonObject& str(std::string_view name, std::optional<std::string_view> v);
  /// An integer member; null when `v` is nullopt.
  JsonObject& num(std::string_view name, std::optional<std::int64_t> v);
  /// The object; the builder is empty afterwards.
  std::string done();

 private:
  std::string out_ = "{";
};

/// Builds one JSON array of elements that are JSON already. Not thread-safe;
/// throws only std::bad_alloc.
class JsonArray {
 public:
  JsonArray& raw(std::string_view json);
  /// The array; the builder is empty afterwards.
  std::string done();

 private:
  std::string out_ = "[";
};

}  // namespace kc::tool
