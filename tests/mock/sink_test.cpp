// What the jsonl sink writes for awkward records: binary keys, null and
// empty values, headers with binary and null values, invalid JSON. Checked
// by parsing the file with simdjson, byte for byte after base64 decoding.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/decode.hpp"
#include "kc/embedded.hpp"
#include "kc/producer.hpp"
#include "kc/sink.hpp"
#include "mock/consumer_fixture.hpp"

namespace {

std::string unbase64(std::string_view b64) {
  std::string out(b64.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  EXPECT_GE(n, 0);
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding's zero bytes: drop one per '='.
  for (auto it = b64.rbegin(); it != b64.rend() && *it == '='; ++it) {
    --len;
  }
  out.resize(len);
  return out;
}

kc::Bytes bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

TEST(JsonLinesSink, KeepsEveryByteOfAwkwardRecords) {
  kc::EmbeddedBroker broker(1);
  broker.create_topic("odd", 1);
  const std::string binary_key("\xff\x00\xfe k", 5);
  const std::string newline_value = "{\n \"a\": \"line\\nbreak\"\n}";
  {
    kc::Producer p({broker.bootstrap_servers(), {}});
    p.produce("odd", bytes(binary_key), bytes(newline_value), 0, {{"trace", std::string("\x01\x80", 2)}, {"h", "v"}});
    p.produce("odd", std::nullopt, std::nullopt, 0);                   // tombstone
    p.produce("odd", bytes("k"), bytes(""), 0);                        // empty value: invalid JSON
    p.produce("odd", bytes("k"), bytes("{\"cut\": "), 0);              // malformed JSON
    ASSERT_TRUE(p.flush(std::chrono::seconds(10)));
  }
  const auto path = std::filesystem::temp_directory_path() / ("kc-sink-test-" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  {
    auto sink = kc::make_sink("jsonl:" + path.string(), kc::KeyFormat::string, kc::ValueFormat::json);
    kc::JsonDecoder decoder;
    std::string json;
    std::string error;
    auto cfg = kc::test::mock_consumer_config(broker, "sink", "odd");
    cfg.max_messages = 4;
    kc::ConsumerHooks hooks;
    hooks.before_commit = [&] { sink->flush(); };
    kc::Consumer c(
        cfg,
        [&](const kc::Message& m) {
          kc::DecodedValue dv;
          json.clear();
          if (m.value()) {
            if (decoder.decode(*m.value(), json, error)) {
              dv.json = json;
            } else {
              dv.error = error;
            }
          }
          sink->write(m, dv);
          return kc::Outcome::done;
        },
        hooks);
    ASSERT_EQ(c.run().stats.done, 4u);
  }

  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 4u);
  simdjson::dom::parser parser;

  // 1: binary key in base64 with a marker, JSON value minified onto one line, headers kept.
  simdjson::dom::element r = parser.parse(lines[0]);
  EXPECT_EQ(std::string_view(r["key_encoding"]), "base64");
  EXPECT_EQ(unbase64(std::string_view(r["key"])), binary_key);
  EXPECT_EQ(std::string_view(r["value"]["a"]), "line\nbreak");
  simdjson::dom::array headers = r["headers"];
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(std::string_view(headers.at(0).at(0)), "trace");
  EXPECT_EQ(unbase64(std::string_view(headers.at(0).at(1)["base64"])), std::string("\x01\x80", 2));
  EXPECT_EQ(std::string_view(headers.at(1).at(1)), "v");

  // 2: tombstone: null key and value, no error.
  r = parser.parse(lines[1]);
  EXPECT_TRUE(r["key"].is_null());
  EXPECT_TRUE(r["value"].is_null());
  EXPECT_TRUE(r["error"].error() == simdjson::NO_SUCH_FIELD);

  // 3 and 4: not JSON: an error, and the original bytes in base64.
  r = parser.parse(lines[2]);
  EXPECT_NE(std::string_view(r["error"]).find("JSON"), std::string_view::npos);
  EXPECT_EQ(unbase64(std::string_view(r["value"])), "");
  r = parser.parse(lines[3]);
  EXPECT_EQ(unbase64(std::string_view(r["value"])), "{\"cut\": ");
  EXPECT_EQ(std::int64_t(r["offset"]), 3);
  std::filesystem::remove(path);
}

}  // namespace
