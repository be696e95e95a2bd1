// Text encodings every part of kc writes: JSON string escaping, base64 and
// UTC timestamps. Private to kc; header-only, so kc_base, the schema modules,
// the sinks and the tool share one copy without a link dependency.
#pragma once

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace kc::detail {

// The bytes a JSON string cannot hold as they are.
inline constexpr std::array<bool, 256> kJsonNeedsEscape = [] {
  std::array<bool, 256> t{};
  for (std::size_t i = 0; i < 0x20; ++i) {
    t[i] = true;
  }
  t['"'] = true;
  t['\\'] = true;
  return t;
}();

/// Appends `s` (valid UTF-8) to `out` as the body of a JSON string: quotes
/// and backslashes escaped, control characters as \n, \r, \t, \b, \f or
/// \u00XX, everything else as is. `Out` is anything with
/// `append(const char*, const char*)` (std::string, fmt's memory buffers).
template <class Out>
void append_json_escaped(Out& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* const p = s.data();
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (!kJsonNeedsEscape[c]) {
      continue;
    }
    out.append(p + run, p + i);
    run = i + 1;
    const char* esc = nullptr;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default: {
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(u, u + sizeof u);
        continue;
      }
    }
    out.append(esc, esc + 2);
  }
  out.append(p + run, p + s.size());
}

/// The number of bytes of the valid UTF-8 sequence starting at s[i], or 0
/// when it is not one; `bad` is then the length of its maximal invalid
/// subpart (Unicode's "substitution of maximal subparts": one U+FFFD each).
constexpr std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2;
    lo = 0xA0;  // no overlong forms
  } else if (c == 0xED) {
    need = 2;
    hi = 0x9F;  // no surrogates
  } else if (c >= 0xE1 && c <= 0xEF) {
    need = 2;
  } else if (c == 0xF0) {
    need = 3;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3;
    hi = 0x8F;  // nothing above U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) {
      bad = k;
      return 0;
    }
    const unsigned char b = byte(i + k);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      bad = k;
      return 0;
    }
  }
  return need + 1;
}

/// As append_json_escaped(), for bytes that need not be UTF-8 (log lines,
/// what a user typed): each maximal invalid UTF-8 sequence becomes \ufffd
/// and DEL \u007f, so the result always parses and prints safely.
template <class Out>
void append_json_escaped_lossy(Out& out, std::string_view s) {
  std::size_t run = 0;
  std::size_t i = 0;
  const auto replace = [&](std::string_view with, std::size_t skip) {
    append_json_escaped(out, s.substr(run, i - run));
    out.append(with.data(), with.data() + with.size());
    i += skip;
    run = i;
  };
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x7F) {
      ++i;
    } else if (c == 0x7F) {
      replace("\\u007f", 1);
    } else {
      std::size_t bad = 0;
      if (const auto n = utf8_sequence(s, i, bad); n > 0) {
        i += n;
      } else {
        replace("\\ufffd", bad);
      }
    }
  }
  append_json_escaped(out, s.substr(run));
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
/// breaks). The output is sized once and written in place (the Avro decoder
/// writes every `bytes` field through here).
inline void append_base64(std::string& out, std::string_view in) {
  const std::size_t at = out.size();
  out.resize(at + (in.size() + 2) / 3 * 4);
  char* o = out.data() + at;
  const auto u = [&](std::size_t k) { return std::uint32_t(static_cast<std::uint8_t>(in[k])); };
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
    *o++ = kBase64Alphabet[(n >> 18) & 63];
    *o++ = kBase64Alphabet[(n >> 12) & 63];
    *o++ = kBase64Alphabet[(n >> 6) & 63];
    *o++ = kBase64Alphabet[n & 63];
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t n = u(i) << 16;
    if (rest == 2) {
      n |= u(i + 1) << 8;
    }
    *o++ = kBase64Alphabet[(n >> 18) & 63];
    *o++ = kBase64Alphabet[(n >> 12) & 63];
    *o++ = rest == 2 ? kBase64Alphabet[(n >> 6) & 63] : '=';
    *o++ = '=';
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
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace kc::detail
