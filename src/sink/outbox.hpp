// The kc_outbox table shared by the database sinks (kc::SqliteSink,
// kc::PostgresSink): its name and the byte-exact encoding of its `headers`
// column. Header-only, so the PostgreSQL sink uses it without linking SQLite.
//
// Why an encoding of our own: header names and values are arbitrary bytes
// (a NUL, invalid UTF-8), a null value differs from an empty one and order
// and duplicates matter; JSON or a text format would need escaping rules and
// would lose some of that. One length-prefixed BLOB/bytea is exact, compact,
// the same in both databases and read back without a parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/error.hpp"
#include "kc/exactly_once.hpp"

namespace kc::detail::outbox {

/// The outbox table's name; reserved: never a records table.
inline constexpr std::string_view kTable = "kc_outbox";

/// kc_outbox.headers, version 1:
///   0x01, then for each header in order:
///     name length (4 bytes, big-endian), the name's bytes,
///     value length (4 bytes, big-endian; 0xFFFFFFFF: a null value, no
///     bytes follow), the value's bytes.
/// No headers: the single byte 0x01.
inline constexpr unsigned char kHeadersVersion = 1;
inline constexpr std::uint32_t kNullValue = 0xFFFFFFFFu;

inline void append_u32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xFF);
  out += static_cast<char>((v >> 16) & 0xFF);
  out += static_cast<char>((v >> 8) & 0xFF);
  out += static_cast<char>(v & 0xFF);
}

/// Throws kc::Error(errc::misuse) for a name or value of 4 GiB or more
/// (no Kafka record can carry one).
inline std::string encode_headers(std::span<const ForwardedHeader> headers) {
  std::size_t size = 1;
  for (const auto& [name, value] : headers) {
    size += 8 + name.size() + (value ? value->size() : 0);
  }
  std::string out;
  out.reserve(size);
  out += static_cast<char>(kHeadersVersion);
  auto length = [](std::size_t n) {
    if (n >= kNullValue) {
      throw Error(errc::misuse, "outbox: a forwarded header name or value of 4 GiB or more");
    }
    return static_cast<std::uint32_t>(n);
  };
  for (const auto& [name, value] : headers) {
    append_u32(out, length(name.size()));
    out += name;
    if (value) {
      append_u32(out, length(value->size()));
      out += *value;
    } else {
      append_u32(out, kNullValue);
    }
  }
  return out;
}

/// The headers `encode_headers` wrote; nullopt when `bytes` is not in this
/// encoding (another version, cut short, trailing bytes).
inline std::optional<std::vector<ForwardedHeader>> decode_headers(std::string_view bytes) {
  if (bytes.empty() || static_cast<unsigned char>(bytes[0]) != kHeadersVersion) {
    return std::nullopt;
  }
  bytes.remove_prefix(1);
  auto read_u32 = [&](std::uint32_t& v) {
    if (bytes.size() < 4) {
      return false;
    }
    v = 0;
    for (int i = 0; i < 4; ++i) {
      v = (v << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
    }
    bytes.remove_prefix(4);
    return true;
  };
  std::vector<ForwardedHeader> out;
  while (!bytes.empty()) {
    std::uint32_t n = 0;
    if (!read_u32(n) || bytes.size() < n) {
      return std::nullopt;
    }
    ForwardedHeader h;
    h.first.assign(bytes.substr(0, n));
    bytes.remove_prefix(n);
    if (!read_u32(n)) {
      return std::nullopt;
    }
    if (n != kNullValue) {
      if (bytes.size() < n) {
        return std::nullopt;
      }
      h.second.emplace(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
    out.push_back(std::move(h));
  }
  return out;
}

/// A byte span as a string view (the outbox stores keys and values as is).
inline std::string_view as_chars(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace kc::detail::outbox
