// Text helpers shared by the sinks, the dead-letter writer, the tool and the
// schema modules: JSON string escaping, hex, base64 and UTC timestamps.
// Private to kc.
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

/// Appends `in` as lowercase hex, two digits a byte.
inline void append_hex(std::string& out, std::string_view in) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + 2 * in.size());
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
}

// Base64 by hand rather than OpenSSL's EVP_EncodeBlock: the schema modules
// (kc_base, kc_schema_*) link no OpenSSL.
inline constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends `in` as standard base64 (RFC 4648 alphabet, '=' padding, no line
/// breaks).
inline void append_base64(std::string& out, std::string_view in) {
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                   std::uint8_t(in[i + 2]);
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += kBase64Alphabet[(n >> 6) & 63];
    out += kBase64Alphabet[n & 63];
  }
  if (const auto rest = in.size() - i; rest > 0) {
    auto n = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) {
      n |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    }
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
}

/// The value (0-63) of one standard base64 digit; -1 for any other
/// character, '=' included.
constexpr int base64_digit(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
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
