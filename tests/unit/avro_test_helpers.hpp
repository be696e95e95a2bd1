#pragma once
// Hand-built binary Avro datums, shared by the decoder, encoder and
// resolution tests.

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include "kc/message.hpp"  // kc::Bytes

namespace avro_test {

inline kc::Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// Zigzag varint of a long.
inline std::string zz(std::int64_t v) {
  std::uint64_t u = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
  std::string out;
  while (u >= 0x80) {
    out += static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  out += static_cast<char>(u);
  return out;
}

/// Length-prefixed string/bytes.
inline std::string str(std::string_view s) {
  return zz(static_cast<std::int64_t>(s.size())) + std::string(s);
}

inline std::string f32(float f) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &f, 4);
  return s;
}

inline std::string f64(double d) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &d, 8);
  return s;
}

inline std::string raw(std::initializer_list<unsigned> bs) {
  std::string s;
  for (const unsigned b : bs) {
    s += static_cast<char>(b);
  }
  return s;
}

}  // namespace avro_test
