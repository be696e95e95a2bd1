// The JSON output of the kc tool's commands (kc dlq inspect --json, kc lag
// --json, kc config check --json): one object a line, no spaces, members in
// the order they are added.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kc::tool {

/// How a string is escaped.
enum class JsonText {
  /// Text known to be UTF-8 (detail::append_json_escaped, src/text):
  /// quotes, backslashes and control characters escaped, other bytes as they are.
  utf8,
  /// Any bytes (detail::append_json_escaped_lossy, src/text): also each
  /// invalid UTF-8 sequence as \ufffd and DEL as \u007f, so the output is
  /// valid JSON whatever the input.
  any_bytes,
};

/// `s` as a JSON string, quotes included.
std::string json_string(std::string_view s, JsonText text = JsonText::utf8);

/// Builds one JSON object. Not thread-safe (one builder, one thread); throws
/// only std::bad_alloc.
class JsonObject {
 public:
  /// `text` escapes the member names and the str() values.
  explicit JsonObject(JsonText text = JsonText::utf8) : text_(text) {}

  /// A member whose value is JSON already (a number, an array, ...).
  JsonObject& raw(std::string_view name, std::string_view json);
  /// A string member; null when `v` is nullopt.
  JsonObject& str(std::string_view name, std::optional<std::string_view> v);
  /// An integer member; null when `v` is nullopt.
  JsonObject& num(std::string_view name, std::optional<std::int64_t> v);
  /// The object; the builder is empty afterwards.
  std::string done();

 private:
  JsonText text_;
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
