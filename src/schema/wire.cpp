// Confluent's wire format. The index list uses zigzag varints (Confluent's
// ByteUtils.writeVarint), at most 5 bytes each since the values are 32-bit;
// non-minimal encodings are accepted as Confluent's reader accepts them.
#include "schema/wire.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>

namespace kc::schema::detail {
namespace {

constexpr std::byte kMagic{0};
constexpr std::size_t kHeaderSize = 5;
constexpr std::size_t kMaxVarintBytes = 5;

std::uint32_t zigzag(std::int32_t v) noexcept {
  return (static_cast<std::uint32_t>(v) << 1U) ^ static_cast<std::uint32_t>(v >> 31);
}

std::int32_t unzigzag(std::uint32_t v) noexcept {
  return static_cast<std::int32_t>((v >> 1U) ^ (~(v & 1U) + 1U));
}

void append_varint(std::string& out, std::int32_t v) {
  std::uint32_t u = zigzag(v);
  while (u >= 0x80U) {
    out.push_back(static_cast<char>((u & 0x7fU) | 0x80U));
    u >>= 7U;
  }
  out.push_back(static_cast<char>(u));
}

// Reads one zigzag varint at `pos` (advanced past it). `what` names the value
// for the error message.
bool read_varint(Bytes in, std::size_t& pos, const char* what, std::int32_t& value, std::string& error) {
  const std::size_t start = pos;
  std::uint32_t u = 0;
  for (std::size_t i = 0; i < kMaxVarintBytes; ++i) {
    if (pos >= in.size()) {
      error = fmt::format("bad Protobuf message indexes: truncated varint ({}) at byte {}", what, start);
      return false;
    }
    const auto b = std::to_integer<std::uint32_t>(in[pos++]);
    if (i == kMaxVarintBytes - 1 && (b & 0xf0U) != 0) {
      error = fmt::format("bad Protobuf message indexes: varint ({}) at byte {} longer than 5 bytes or over 32 bits",
                          what, start);
      return false;
    }
    u |= (b & 0x7fU) << (7U * static_cast<unsigned>(i));
    if ((b & 0x80U) == 0) {
      value = unzigzag(u);
      return true;
    }
  }
  // Unreachable: the fifth byte either ends the varint or fails the check above.
  error = fmt::format("bad Protobuf message indexes: varint ({}) at byte {} longer than 5 bytes", what, start);
  return false;
}

}  // namespace

bool parse_wire_header(Bytes in, bool protobuf, WireHeader& out, std::string& error) {
  if (in.size() < kHeaderSize) {
    error = fmt::format("not Confluent wire format: {} byte{}, expected at least 5 (magic byte and schema id)",
                        in.size(), in.size() == 1 ? "" : "s");
    return false;
  }
  if (in[0] != kMagic) {
    error = fmt::format("not Confluent wire format: magic byte {:#04x}, expected 0x00", std::to_integer<unsigned>(in[0]));
    return false;
  }
  const std::uint32_t raw = (std::to_integer<std::uint32_t>(in[1]) << 24U) |
                            (std::to_integer<std::uint32_t>(in[2]) << 16U) |
                            (std::to_integer<std::uint32_t>(in[3]) << 8U) | std::to_integer<std::uint32_t>(in[4]);
  const auto id = static_cast<std::int32_t>(raw);
  if (id < 0) {
    error = fmt::format("not Confluent wire format: negative schema id {}", id);
    return false;
  }
  std::size_t pos = kHeaderSize;
  std::vector<int> indexes;
  if (protobuf) {
    std::int32_t count = 0;
    if (!read_varint(in, pos, "count", count, error)) {
      return false;
    }
    if (count < 0) {
      error = fmt::format("bad Protobuf message indexes: negative count {}", count);
      return false;
    }
    if (static_cast<std::size_t>(count) > kMaxMessageIndexes) {
      error = fmt::format("bad Protobuf message indexes: count {} over the limit of {}", count, kMaxMessageIndexes);
      return false;
    }
    if (count == 0) {
      indexes.push_back(0);  // the single byte 0 stands for [0]
    } else {
      indexes.reserve(static_cast<std::size_t>(count));
      for (std::int32_t i = 0; i < count; ++i) {
        std::int32_t index = 0;
        if (!read_varint(in, pos, "index", index, error)) {
          return false;
        }
        if (index < 0) {
          error = fmt::format("bad Protobuf message indexes: negative index {} at position {}", index, i);
          return false;
        }
        indexes.push_back(index);
      }
    }
  }
  out.schema_id = id;
  out.message_indexes = std::move(indexes);
  out.payload = in.subspan(pos);
  return true;
}

void append_wire_header(std::string& out, std::int32_t schema_id) {
  const auto u = static_cast<std::uint32_t>(schema_id);
  out.push_back('\0');
  out.push_back(static_cast<char>((u >> 24U) & 0xffU));
  out.push_back(static_cast<char>((u >> 16U) & 0xffU));
  out.push_back(static_cast<char>((u >> 8U) & 0xffU));
  out.push_back(static_cast<char>(u & 0xffU));
}

void append_message_indexes(std::string& out, const std::vector<int>& indexes) {
  // [0] (and, since the format cannot say "none", an empty list) is the
  // single byte 0, as Confluent's serializers write it.
  if (indexes.empty() || (indexes.size() == 1 && indexes[0] == 0)) {
    out.push_back('\0');
    return;
  }
  append_varint(out, static_cast<std::int32_t>(indexes.size()));
  for (const int i : indexes) {
    append_varint(out, i);
  }
}

}  // namespace kc::schema::detail
