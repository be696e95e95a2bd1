// src/text/text.hpp: the one JSON escaper and base64 writer every part of kc
// uses. Escaped strings are parsed back by simdjson (not by our own reader),
// so "it parses and means the same" is checked against a real parser.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <random>
#include <string>
#include <string_view>

#include "text/text.hpp"

namespace kc::detail {
namespace {

// `body` inside quotes, parsed by simdjson; nullopt when it does not parse.
std::optional<std::string> parse_string(const std::string& body) {
  simdjson::dom::parser parser;
  const std::string doc = "\"" + body + "\"";
  std::string_view v;
  if (parser.parse(doc).get(v) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return std::string(v);
}

std::string escaped(std::string_view s) {
  std::string out;
  append_json_escaped(out, s);
  return out;
}

std::string escaped_lossy(std::string_view s) {
  std::string out;
  append_json_escaped_lossy(out, s);
  return out;
}

TEST(Text, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(escaped("plain"), "plain");
  EXPECT_EQ(escaped("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(escaped("\n\r\t\b\f"), "\\n\\r\\t\\b\\f");
  EXPECT_EQ(escaped(std::string_view("\x01\x1f\0", 3)), "\\u0001\\u001f\\u0000");
  EXPECT_EQ(escaped("caf\xc3\xa9 \x7f"), "caf\xc3\xa9 \x7f");  // UTF-8 and DEL as they are
}

TEST(Text, EveryEscapedStringParsesBackToItself) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 127);
  for (int round = 0; round < 2000; ++round) {
    std::string s(static_cast<std::size_t>(round % 40), '\0');
    for (auto& c : s) {
      c = static_cast<char>(byte(rng));
    }
    const auto back = parse_string(escaped(s));
    ASSERT_TRUE(back.has_value()) << escaped(s);
    EXPECT_EQ(*back, s);
  }
}

TEST(Text, LossyReplacesEachInvalidSequenceAndEscapesDel) {
  EXPECT_EQ(escaped_lossy("ok \xc3\xa9"), "ok \xc3\xa9");
  EXPECT_EQ(escaped_lossy("a\xff\x62"), "a\\ufffdb");                 // \x62: 'b'
  EXPECT_EQ(escaped_lossy("\xe2\x82"), "\\ufffd");                    // truncated: one maximal subpart
  EXPECT_EQ(escaped_lossy("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // a surrogate: not UTF-8
  EXPECT_EQ(escaped_lossy("x\x7fy\"\n"), "x\\u007fy\\\"\\n");
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 2000; ++round) {
    std::string s(static_cast<std::size_t>(round % 40), '\0');
    for (auto& c : s) {
      c = static_cast<char>(byte(rng));
    }
    ASSERT_TRUE(parse_string(escaped_lossy(s)).has_value()) << escaped_lossy(s);
  }
}

TEST(Text, EscapesIntoFmtBuffers) {
  fmt::memory_buffer buf;
  append_json_escaped(buf, "a\"b");
  append_json_escaped_lossy(buf, "\xff");
  EXPECT_EQ(std::string(buf.data(), buf.size()), "a\\\"b\\ufffd");
}

TEST(Text, Base64MatchesRfc4648AndDecodesBack) {
  const std::pair<std::string_view, std::string_view> vectors[] = {{"", ""},
                                                                   {"f", "Zg=="},
                                                                   {"fo", "Zm8="},
                                                                   {"foo", "Zm9v"},
                                                                   {"foob", "Zm9vYg=="},
                                                                   {"fooba", "Zm9vYmE="},
                                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [in, want] : vectors) {
    std::string out = "prefix:";
    append_base64(out, in);
    EXPECT_EQ(out, "prefix:" + std::string(want));
  }
  std::string all;
  for (int c = 0; c < 256; ++c) {
    all += static_cast<char>(c);
  }
  std::string enc;
  append_base64(enc, all);
  std::string dec;
  for (std::size_t i = 0; i + 4 <= enc.size(); i += 4) {
    std::uint32_t n = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const int d = base64_digit(enc[i + k]);
      pad += d < 0 ? 1 : 0;
      n = (n << 6) | static_cast<std::uint32_t>(d < 0 ? 0 : d);
    }
    for (int k = 0; k < 3 - pad; ++k) {
      dec += static_cast<char>((n >> (16 - 8 * k)) & 0xff);
    }
  }
  EXPECT_EQ(dec, all);
}

TEST(Text, Iso8601UtcWithMilliseconds) {
  EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_utc(1'764'018'605'123), "2025-11-24T21:10:05.123Z");
  EXPECT_EQ(iso8601_utc(-1), "?");
}

}  // namespace
}  // namespace kc::detail
