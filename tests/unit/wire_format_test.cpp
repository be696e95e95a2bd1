// Confluent's wire format: magic byte, big-endian id, Protobuf index paths.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "schema/wire.hpp"

namespace kc::schema::detail {
namespace {

Bytes bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string from(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) {
    s.push_back(static_cast<char>(b));
  }
  return s;
}

// Parses and expects failure; returns the error.
std::string parse_error(const std::string& in, bool protobuf) {
  WireHeader h;
  h.schema_id = 77;
  std::string error;
  EXPECT_FALSE(parse_wire_header(bytes(in), protobuf, h, error));
  EXPECT_EQ(h.schema_id, 77) << "output touched on failure";
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

TEST(WireFormat, HeaderIsMagicZeroAndBigEndianId) {
  std::string out;
  append_wire_header(out, 0x01020304);
  EXPECT_EQ(out, from({0, 1, 2, 3, 4}));
}

TEST(WireFormat, RoundTripsIdAndPayload) {
  for (std::int32_t id : {0, 1, 255, 256, 65536, 0x7fffffff}) {
    std::string framed;
    append_wire_header(framed, id);
    framed += "payload";
    WireHeader h;
    std::string error;
    ASSERT_TRUE(parse_wire_header(bytes(framed), false, h, error)) << error;
    EXPECT_EQ(h.schema_id, id);
    EXPECT_TRUE(h.message_indexes.empty());
    EXPECT_EQ(as_text(h.payload), "payload");
    EXPECT_EQ(h.payload.data(), bytes(framed).data() + 5) << "payload is a view into the input";
  }
}

TEST(WireFormat, EmptyPayloadIsFine) {
  WireHeader h;
  std::string error;
  ASSERT_TRUE(parse_wire_header(bytes(from({0, 0, 0, 0, 9})), false, h, error)) << error;
  EXPECT_EQ(h.schema_id, 9);
  EXPECT_TRUE(h.payload.empty());
}

TEST(WireFormat, FirstMessageIsTheSingleByteZero) {
  std::string out;
  append_message_indexes(out, {0});
  EXPECT_EQ(out, from({0}));
  out.clear();
  append_message_indexes(out, {});
  EXPECT_EQ(out, from({0})) << "an empty path cannot be written: it is [0]";

  WireHeader h;
  std::string error;
  const auto in = from({0, 0, 0, 0, 1, 0, 'x'});
  ASSERT_TRUE(parse_wire_header(bytes(in), true, h, error)) << error;
  EXPECT_EQ(h.message_indexes, std::vector<int>{0});
  EXPECT_EQ(as_text(h.payload), "x");
}

TEST(WireFormat, IndexesAreZigzagVarints) {
  std::string out;
  append_message_indexes(out, {1, 0});
  EXPECT_EQ(out, from({4, 2, 0}));  // count 2 -> 4, 1 -> 2, 0 -> 0
  out.clear();
  append_message_indexes(out, {64});
  EXPECT_EQ(out, from({2, 0x80, 0x01}));  // 64 -> zigzag 128 -> two bytes
}

TEST(WireFormat, IndexPathsRoundTrip) {
  const std::vector<std::vector<int>> paths = {
      {0}, {1}, {3, 2, 1}, {0, 0}, {63}, {64}, {1000000}, {0x7fffffff}, std::vector<int>(kMaxMessageIndexes, 5)};
  for (const auto& path : paths) {
    std::string framed;
    append_wire_header(framed, 42);
    append_message_indexes(framed, path);
    framed += "pb";
    WireHeader h;
    std::string error;
    ASSERT_TRUE(parse_wire_header(bytes(framed), true, h, error)) << error;
    EXPECT_EQ(h.schema_id, 42);
    EXPECT_EQ(h.message_indexes, path);
    EXPECT_EQ(as_text(h.payload), "pb");
  }
}

TEST(WireFormat, NonMinimalVarintsAreAccepted) {
  // count 1 written in two bytes (0x82 0x00), index 3 (zigzag 6).
  WireHeader h;
  std::string error;
  ASSERT_TRUE(parse_wire_header(bytes(from({0, 0, 0, 0, 1, 0x82, 0x00, 6})), true, h, error)) << error;
  EXPECT_EQ(h.message_indexes, std::vector<int>{3});
}

TEST(WireFormat, ShortInputIsAnError) {
  EXPECT_EQ(parse_error("", false), "not Confluent wire format: 0 bytes, expected at least 5 (magic byte and schema id)");
  EXPECT_NE(parse_error(from({0}), false).find("1 byte,"), std::string::npos);
  EXPECT_NE(parse_error(from({0, 0, 0, 1}), true).find("4 bytes"), std::string::npos);
}

TEST(WireFormat, WrongMagicByteIsAnError) {
  EXPECT_EQ(parse_error("{\"a\":1}", false), "not Confluent wire format: magic byte 0x7b, expected 0x00");
  EXPECT_EQ(parse_error(from({1, 0, 0, 0, 1}), true), "not Confluent wire format: magic byte 0x01, expected 0x00");
}

TEST(WireFormat, NegativeIdIsAnError) {
  EXPECT_EQ(parse_error(from({0, 0xff, 0xff, 0xff, 0xfe}), false), "not Confluent wire format: negative schema id -2");
}

TEST(WireFormat, MissingIndexListIsAnError) {
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1}), true).find("truncated varint (count)"), std::string::npos);
}

TEST(WireFormat, TruncatedVarintIsAnError) {
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 0x80}), true).find("truncated varint (count) at byte 5"),
            std::string::npos);
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 4, 2}), true).find("truncated varint (index) at byte 7"),
            std::string::npos);
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 2, 0x81}), true).find("truncated varint (index)"), std::string::npos);
}

TEST(WireFormat, OverlongVarintIsAnError) {
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), true).find("longer than 5 bytes"),
            std::string::npos);
  // Five bytes, but bits above 32.
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0x1f}), true).find("over 32 bits"),
            std::string::npos);
}

TEST(WireFormat, NegativeCountIsAnError) {
  EXPECT_EQ(parse_error(from({0, 0, 0, 0, 1, 1}), true), "bad Protobuf message indexes: negative count -1");
}

TEST(WireFormat, NegativeIndexIsAnError) {
  EXPECT_EQ(parse_error(from({0, 0, 0, 0, 1, 4, 0, 5}), true),
            "bad Protobuf message indexes: negative index -3 at position 1");
}

TEST(WireFormat, TooManyIndexesIsAnError) {
  std::string framed;
  append_wire_header(framed, 1);
  append_message_indexes(framed, std::vector<int>(kMaxMessageIndexes + 1, 1));
  EXPECT_EQ(parse_error(framed, true), "bad Protobuf message indexes: count 65 over the limit of 64");
  // A huge count fails at once, before reading (or allocating for) indexes.
  EXPECT_NE(parse_error(from({0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f}), true).find("count 2147483647"),
            std::string::npos);
}

TEST(WireFormat, ProtobufModeOffReadsNoIndexes) {
  WireHeader h;
  std::string error;
  const auto in = from({0, 0, 0, 0, 1, 0x80});
  ASSERT_TRUE(parse_wire_header(bytes(in), false, h, error)) << error;
  EXPECT_EQ(as_text(h.payload), "\x80");
}

}  // namespace
}  // namespace kc::schema::detail
