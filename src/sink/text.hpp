// Text helpers shared by the sinks, the dead-letter writer and the tool:
// JSON string escaping and UTC timestamps. Private to kc.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <fmt/format.h>
#include <string>
#include <string_view>

namespace kc::detail {

/// Appends `s` (valid UTF-8) as the body of a JSON string: quotes,
/// backslashes and control characters escaped, everything else as is.
inline void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') {
      continue;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
}

/// `ms` since the epoch as ISO 8601 UTC with milliseconds
/// ("2026-11-24T21:10:05.123Z"); "?" for a negative or unrepresentable time.
inline std::string iso8601_utc(std::int64_t ms) {
  const auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (ms < 0 || gmtime_r(&secs, &tm) == nullptr) {
    return "?";
  }
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, ms % 1000);
}

inline std::int64_t epoch_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace kc::detail
