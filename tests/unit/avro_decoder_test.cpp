#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <limits>
#include <string>

#include "kc/error.hpp"
#include "schema/avro/avro.hpp"
#include "unit/avro_test_helpers.hpp"

namespace avro = kc::schema::detail::avro;
using namespace avro_test;

namespace {

std::string decode(const std::string& schema, const std::string& payload, kc::DecodeLimits limits = {}) {
  const auto s = avro::parse(schema);
  std::string out;
  std::string err;
  if (!avro::decode_json(*s, nullptr, bytes(payload), limits, out, err)) {
    return "ERROR: " + err;
  }
  return out;
}

std::string error_of(const std::string& schema, const std::string& payload, kc::DecodeLimits limits = {}) {
  const auto s = avro::parse(schema);
  std::string out = "keep";
  std::string err;
  EXPECT_FALSE(avro::decode_json(*s, nullptr, bytes(payload), limits, out, err)) << out;
  EXPECT_EQ(out, "keep");
  EXPECT_EQ(err.find('\n'), std::string::npos);
  return err;
}

void expect_schema_invalid(const std::string& schema, const std::string& fragment) {
  try {
    avro::parse(schema);
    ADD_FAILURE() << "parsed: " << schema;
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::schema_invalid);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(AvroDecoder, DecodesPrimitives) {
  EXPECT_EQ(decode(R"("null")", ""), "null");
  EXPECT_EQ(decode(R"("boolean")", raw({1})), "true");
  EXPECT_EQ(decode(R"("boolean")", raw({0})), "false");
  EXPECT_EQ(decode(R"("int")", zz(-3)), "-3");
  EXPECT_EQ(decode(R"("long")", zz(1234567890123)), "1234567890123");
  EXPECT_EQ(decode(R"("string")", str("héllo")), "\"héllo\"");
  EXPECT_EQ(decode(R"("bytes")", str(std::string("\x00\xff\x10", 3))), "\"AP8Q\"");
  EXPECT_EQ(decode(R"("bytes")", str("ab")), "\"YWI=\"");
  EXPECT_EQ(decode(R"("bytes")", str("a")), "\"YQ==\"");
  EXPECT_EQ(decode(R"({"type":"fixed","name":"F","size":3})", "abc"), "\"YWJj\"");
}

TEST(AvroDecoder, ZigzagEdgeValuesRoundTheFullRange) {
  EXPECT_EQ(decode(R"("int")", raw({0})), "0");
  EXPECT_EQ(decode(R"("int")", raw({1})), "-1");
  EXPECT_EQ(decode(R"("int")", raw({2})), "1");
  EXPECT_EQ(decode(R"("int")", raw({0xfe, 0xff, 0xff, 0xff, 0x0f})), "2147483647");
  EXPECT_EQ(decode(R"("int")", raw({0xff, 0xff, 0xff, 0xff, 0x0f})), "-2147483648");
  EXPECT_EQ(decode(R"("long")", zz(std::numeric_limits<std::int64_t>::max())), "9223372036854775807");
  EXPECT_EQ(decode(R"("long")", zz(std::numeric_limits<std::int64_t>::min())), "-9223372036854775808");
  EXPECT_EQ(zz(std::numeric_limits<std::int64_t>::min()).size(), 10u);
}

TEST(AvroDecoder, FloatsPrintShortestRoundTripTextAndNonFiniteAsStrings) {
  EXPECT_EQ(decode(R"("float")", f32(0.1f)), "0.1");  // not 0.10000000149011612
  EXPECT_EQ(decode(R"("double")", f64(0.1)), "0.1");
  EXPECT_EQ(decode(R"("double")", f64(1.0)), "1");
  EXPECT_EQ(decode(R"("double")", f64(-2.5e-300)), "-2.5e-300");
  EXPECT_EQ(decode(R"("double")", f64(-0.0)), "-0.0");            // "-0" would read back as the integer 0
  EXPECT_EQ(decode(R"("double")", f64(36893488147419103232.0)), "3.6893488147419103e+19");  // not a 20-digit integer
  EXPECT_EQ(decode(R"("double")", f64(1e15)), "1e+15");  // shortest form
  EXPECT_EQ(decode(R"("double")", f64(std::numeric_limits<double>::quiet_NaN())), "\"NaN\"");
  EXPECT_EQ(decode(R"("float")", f32(std::numeric_limits<float>::infinity())), "\"Infinity\"");
  EXPECT_EQ(decode(R"("double")", f64(-std::numeric_limits<double>::infinity())), "\"-Infinity\"");
}

TEST(AvroDecoder, StringsAreEscapedForJson) {
  EXPECT_EQ(decode(R"("string")", str("a\"b\\c\nd\x01\te")), R"("a\"b\\c\nd\u0001\te")");
}

TEST(AvroDecoder, RejectsInvalidUtf8Strings) {
  EXPECT_NE(error_of(R"("string")", str("\xff\xfe")).find("UTF-8"), std::string::npos);
}

TEST(AvroDecoder, DecodesRecordsEnumsArraysMapsAndUnions) {
  const std::string schema = R"({"type":"record","name":"R","fields":[
    {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
    {"name":"a","type":{"type":"array","items":"int"}},
    {"name":"m","type":{"type":"map","values":"long"}},
    {"name":"u","type":["null","string"]},
    {"name":"v","type":["null","string"]}]})";
  const std::string payload = zz(1) + zz(2) + zz(1) + zz(2) + zz(0) + zz(1) + str("k") + zz(7) + zz(0) + zz(0) +
                              zz(1) + str("x");
  EXPECT_EQ(decode(schema, payload), R"({"e":"GREEN","a":[1,2],"m":{"k":7},"u":null,"v":"x"})");
}

TEST(AvroDecoder, ReadsNegativeCountBlocksWithByteSizes) {
  // Two blocks: -2 items (byte size 2), then 1 item, then the end.
  EXPECT_EQ(decode(R"({"type":"array","items":"int"})", zz(-2) + zz(2) + zz(3) + zz(4) + zz(1) + zz(5) + zz(0)),
            "[3,4,5]");
}

TEST(AvroDecoder, DecodesRecursiveTypes) {
  const std::string schema = R"({"type":"record","name":"Node","fields":[
    {"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]})";
  EXPECT_EQ(decode(schema, zz(1) + zz(1) + zz(2) + zz(0)), R"({"v":1,"next":{"v":2,"next":null}})");
}

TEST(AvroDecoder, ResolvesNamesThroughNamespaces) {
  const std::string schema = R"({"type":"record","name":"Outer","namespace":"com.acme","fields":[
    {"name":"a","type":{"type":"fixed","name":"Id","size":2}},
    {"name":"b","type":"Id"},
    {"name":"c","type":"com.acme.Id"},
    {"name":"d","type":{"type":"enum","name":"other.E","symbols":["X"]}},
    {"name":"e","type":"other.E"},
    {"name":"f","type":{"type":"record","name":"In","namespace":"","fields":[{"name":"z","type":"com.acme.Id"}]}},
    {"name":"g","type":"In"}]})";
  EXPECT_EQ(decode(schema, "ab" + std::string("cd") + "ef" + zz(0) + zz(0) + "gh" + "ij"),
            R"({"a":"YWI=","b":"Y2Q=","c":"ZWY=","d":"X","e":"X","f":{"z":"Z2g="},"g":{"z":"aWo="}})");
  // "E" alone is not visible from namespace com.acme (it lives in "other").
  expect_schema_invalid(R"({"type":"record","name":"R","namespace":"com.acme","fields":[
    {"name":"d","type":{"type":"enum","name":"other.E","symbols":["X"]}},{"name":"e","type":"E"}]})",
                        "unknown type \"E\"");
}

TEST(AvroDecoder, ReferencesAreParsedFirstAndVisibleInOrder) {
  const std::vector<std::string> refs = {
      R"({"type":"enum","name":"Status","namespace":"shop","symbols":["NEW","PAID"]})",
      R"({"type":"record","name":"Line","namespace":"shop","fields":[{"name":"s","type":"Status"}]})"};
  const auto s = avro::parse(R"({"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"line","type":"Line"},{"name":"status","type":"shop.Status"}]})",
                             refs);
  std::string out;
  std::string err;
  ASSERT_TRUE(avro::decode_json(*s, nullptr, bytes(zz(1) + zz(0)), {}, out, err)) << err;
  EXPECT_EQ(out, R"({"line":{"s":"PAID"},"status":"NEW"})");
  // Order matters: a reference may not use one that follows it.
  EXPECT_THROW(avro::parse(R"("shop.Line")", {refs[1], refs[0]}), kc::Error);
}

TEST(AvroDecoder, RejectsInvalidSchemasNamingTheProblem) {
  expect_schema_invalid(R"({"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]})", "unknown type \"Nope\"");
  expect_schema_invalid(R"({"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]})",
                        "defined twice");
  expect_schema_invalid(R"([{"type":"fixed","name":"F","size":1},{"type":"fixed","name":"F","size":1}])", "defined twice");
  expect_schema_invalid(R"({"type":"enum","name":"E","symbols":["A"],"default":"B"})", "default B is not a symbol");
  expect_schema_invalid(R"({"type":"enum","name":"E","symbols":["A","A"]})", "appears twice");
  expect_schema_invalid(R"(["null",["int"]])", "union may not directly contain a union");
  expect_schema_invalid(R"(["string","string"])", "two branches");
  expect_schema_invalid(R"({"type":"record","name":"1bad","fields":[]})", "not a valid record name");
  expect_schema_invalid(R"({"type":"record","name":"R"})", "\"fields\"");
  expect_schema_invalid(R"({"type":"fixed","name":"F","size":-1})", "size");
  expect_schema_invalid(R"({"type":"array"})", "items");
  expect_schema_invalid(R"({"type":"record","name":"R",)", "not JSON");
  expect_schema_invalid(R"(42)", "a schema must be");
  expect_schema_invalid(R"({"type":"record","name":"int","fields":[]})", "may not be named");
}

TEST(AvroDecoder, RendersDecimalsExactly) {
  const std::string dec = R"({"type":"bytes","logicalType":"decimal","precision":10,"scale":3})";
  EXPECT_EQ(decode(dec, str(raw({0xcf, 0xc7}))), "\"-12.345\"");  // -12345
  EXPECT_EQ(decode(dec, str(raw({0x30, 0x39}))), "\"12.345\"");
  EXPECT_EQ(decode(dec, str(raw({0x05}))), "\"0.005\"");
  EXPECT_EQ(decode(dec, str(raw({0xff}))), "\"-0.001\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":4,"scale":2})", str(raw({0x05}))), "\"0.05\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":4})", str(raw({0x64}))), "\"100\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":4})", str(raw({0x00, 0x00, 0x64}))), "\"100\"");
  EXPECT_EQ(decode(R"({"type":"fixed","name":"D","size":4,"logicalType":"decimal","precision":9,"scale":2})",
                   raw({0xff, 0xff, 0xff, 0x9c})),
            "\"-1.00\"");
  // Longer than 8 bytes: 2^64 and -2^64.
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":30})",
                   str(raw({0x01, 0, 0, 0, 0, 0, 0, 0, 0}))),
            "\"18446744073709551616\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":30,"scale":2})",
                   str(raw({0xff, 0, 0, 0, 0, 0, 0, 0, 0}))),
            "\"-184467440737095516.16\"");
  // 10^20 = 0x56BC75E2D63100000
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":30})",
                   str(raw({0x05, 0x6b, 0xc7, 0x5e, 0x2d, 0x63, 0x10, 0x00, 0x00}))),
            "\"100000000000000000000\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":19})", str(raw({0x80, 0, 0, 0, 0, 0, 0, 0}))),
            "\"-9223372036854775808\"");
}

TEST(AvroDecoder, RendersDatesAndTimesIncludingBefore1970) {
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(0)), "\"1970-01-01\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(19782)), "\"2024-02-29\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(-1)), "\"1969-12-31\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(-719528)), "\"0000-01-01\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(2932896)), "\"9999-12-31\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"date"})", zz(2932897)), "2932897");  // year 10000: the number
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"time-millis"})", zz(45296789)), "\"12:34:56.789\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"time-micros"})", zz(45296000001)), "\"12:34:56.000001\"");
  EXPECT_EQ(decode(R"({"type":"int","logicalType":"time-millis"})", zz(-1)), "-1");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"timestamp-millis"})", zz(1700000000123)),
            "\"2023-11-14T22:13:20.123Z\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"timestamp-millis"})", zz(-1)), "\"1969-12-31T23:59:59.999Z\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"timestamp-micros"})", zz(-86400000001)),
            "\"1969-12-30T23:59:59.999999Z\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"local-timestamp-millis"})", zz(0)), "\"1970-01-01T00:00:00.000\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"local-timestamp-micros"})", zz(1)), "\"1970-01-01T00:00:00.000001\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"timestamp-millis"})", zz(std::numeric_limits<std::int64_t>::min())),
            "-9223372036854775808");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"timestamp-micros"})", zz(std::numeric_limits<std::int64_t>::min())),
            "-9223372036854775808");
}

TEST(AvroDecoder, UuidIsAStringAndUnknownOrMisplacedLogicalTypesAreIgnored) {
  EXPECT_EQ(decode(R"({"type":"string","logicalType":"uuid"})", str("6f1c2a4e-0000-4000-8000-000000000001")),
            "\"6f1c2a4e-0000-4000-8000-000000000001\"");
  EXPECT_EQ(decode(R"({"type":"long","logicalType":"fancy-time"})", zz(5)), "5");
  EXPECT_EQ(decode(R"({"type":"string","logicalType":"date"})", str("x")), "\"x\"");
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal"})", str("a")), "\"YQ==\"");  // no precision
  EXPECT_EQ(decode(R"({"type":"bytes","logicalType":"decimal","precision":2,"scale":3})", str("a")), "\"YQ==\"");
}

TEST(AvroDecoder, FailsFastOnAStringClaimingAGigabyte) {
  const std::string payload = zz(1'000'000'000) + "ab";  // 5 + 2 = 7 bytes
  ASSERT_EQ(payload.size(), 7u);
  EXPECT_EQ(error_of(R"("string")", payload), "string length 1000000000 exceeds the 2 bytes left");
}

TEST(AvroDecoder, FailsFastOnAZeroByteArrayClaimingHundredsOfMillionsOfItems) {
  const std::string payload = zz(200'000'000) + zz(0);
  EXPECT_LE(payload.size(), 6u);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(error_of(R"({"type":"array","items":"null"})", payload).find("exceeds the limit of 1048576 items"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

TEST(AvroDecoder, ChecksABlockCountAgainstTheBytesLeft) {
  kc::DecodeLimits big;
  big.max_items = std::size_t{1} << 40;
  EXPECT_NE(error_of(R"({"type":"array","items":"int"})", zz(200'000'000) + "abcd", big)
                .find("block of 200000000 items needs at least 200000000 bytes but 4 are left"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"type":"map","values":"null"})", zz(10) + "abc", big).find("needs at least"), std::string::npos);
}

TEST(AvroDecoder, CountsItemsAcrossAllCollectionsOfADatum) {
  kc::DecodeLimits lim;
  lim.max_items = 3;
  const std::string schema = R"({"type":"array","items":{"type":"array","items":"null"}})";
  EXPECT_EQ(decode(schema, zz(1) + zz(2) + zz(0) + zz(0), lim), "[[null,null]]");
  EXPECT_NE(decode(schema, zz(2) + zz(2) + zz(0) + zz(1) + zz(0) + zz(0), lim).find("limit of 3 items"), std::string::npos);
}

TEST(AvroDecoder, RejectsOutOfRangeUnionAndEnumIndexes) {
  EXPECT_EQ(error_of(R"(["null","int"])", zz(2)), "union index 2 out of range (2 branches)");
  EXPECT_EQ(error_of(R"(["null","int"])", zz(-1)), "union index -1 out of range (2 branches)");
  EXPECT_EQ(error_of(R"({"type":"enum","name":"E","symbols":["A"]})", zz(1)), "enum index 1 out of range for E (1 symbols)");
}

TEST(AvroDecoder, RejectsTruncatedAndOverlongVarints) {
  EXPECT_EQ(error_of(R"("long")", raw({0x80, 0x80})), "truncated varint");
  EXPECT_EQ(error_of(R"("long")", ""), "truncated varint");
  EXPECT_NE(error_of(R"("long")", raw({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})).find("10 bytes"),
            std::string::npos);
  EXPECT_NE(error_of(R"("long")", raw({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})).find("64 bits"),
            std::string::npos);
  EXPECT_NE(error_of(R"("int")", raw({0x80, 0x80, 0x80, 0x80, 0x80, 0x00})).find("5 bytes"), std::string::npos);
  EXPECT_NE(error_of(R"("int")", raw({0xff, 0xff, 0xff, 0xff, 0x1f})).find("32 bits"), std::string::npos);
}

TEST(AvroDecoder, RejectsTruncatedFixedWidthValuesAndBadBooleans) {
  EXPECT_EQ(error_of(R"("double")", "1234567"), "truncated double");
  EXPECT_EQ(error_of(R"("float")", "123"), "truncated float");
  EXPECT_NE(error_of(R"({"type":"fixed","name":"F","size":4})", "abc").find("exceeds the 3 bytes left"), std::string::npos);
  EXPECT_EQ(error_of(R"("boolean")", raw({2})), "boolean byte 2 is neither 0 nor 1");
}

TEST(AvroDecoder, StopsARecursiveSchemaDepthBomb) {
  const std::string schema = R"({"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]})";
  std::string payload;
  for (int i = 0; i < 100000; ++i) {
    payload += zz(1);
  }
  payload += zz(0);
  EXPECT_NE(error_of(schema, payload).find("nesting deeper than the limit of 128"), std::string::npos);
  kc::DecodeLimits lim;
  lim.max_depth = 8;  // 4 records and the 4 unions around them
  EXPECT_EQ(decode(schema, zz(1) + zz(1) + zz(1) + zz(0), lim), R"({"next":{"next":{"next":{"next":null}}}})");
  EXPECT_NE(decode(schema, zz(1) + zz(1) + zz(1) + zz(1) + zz(0), lim).find("nesting deeper"), std::string::npos);
}

TEST(AvroDecoder, RejectsTrailingBytesAndOversizedPayloads) {
  EXPECT_EQ(error_of(R"("int")", zz(1) + "xy"), "2 trailing bytes after the datum");
  kc::DecodeLimits lim;
  lim.max_bytes = 4;
  EXPECT_NE(error_of(R"("string")", str("hello"), lim).find("exceeds the decode limit of 4"), std::string::npos);
}

TEST(AvroDecoder, ErrorsNameThePathAndLeaveOutputUnchanged) {
  const std::string schema = R"({"type":"record","name":"Order","fields":[
    {"name":"id","type":"string"},
    {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
       {"name":"sku","type":"string"},{"name":"price","type":"string"}]}}},
    {"name":"tags","type":{"type":"map","values":"int"}}]})";
  std::string payload = str("o1") + zz(4);
  for (int i = 0; i < 3; ++i) {
    payload += str("s") + str("1.0");
  }
  payload += str("s") + zz(1000000) + std::string(12, 'x');
  EXPECT_EQ(error_of(schema, payload), "at .items[3].price: string length 1000000 exceeds the 12 bytes left");
  EXPECT_EQ(error_of(schema, str("o1") + zz(0) + zz(1) + str("k") + raw({0x80})), "at .tags[\"k\"]: truncated varint");
}

TEST(AvroDecoder, AppendsToExistingOutput) {
  const auto s = avro::parse(R"("int")");
  std::string out = "x:";
  std::string err;
  ASSERT_TRUE(avro::decode_json(*s, nullptr, bytes(zz(5)), {}, out, err));
  EXPECT_EQ(out, "x:5");
}

TEST(AvroDecodeValue, BuildsValuesWithBlobsAndRenderedLogicalTypes) {
  const auto s = avro::parse(R"({"type":"record","name":"R","fields":[
    {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
    {"name":"f","type":"float"},{"name":"raw","type":"bytes"},
    {"name":"fx","type":{"type":"fixed","name":"F","size":2}},
    {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
    {"name":"a","type":{"type":"array","items":["null","string"]}},
    {"name":"m","type":{"type":"map","values":"double"}}]})");
  const std::string payload = raw({1}) + zz(-7) + f32(0.5f) + str(std::string("\x00\x01", 2)) + "xy" + str(raw({0x04, 0xd2})) +
                              zz(0) + zz(1) + zz(2) + zz(0) + zz(1) + str("s") + zz(0) + zz(1) + str("k") + f64(2.5) +
                              zz(0);
  kc::Value v;
  std::string err;
  ASSERT_TRUE(avro::decode_value(*s, nullptr, bytes(payload), {}, v, err)) << err;
  using O = kc::Value::Object;
  using A = kc::Value::Array;
  const kc::Value expected = O{{"n", nullptr},
                               {"b", true},
                               {"i", std::int64_t{-7}},
                               {"f", 0.5},
                               {"raw", kc::Value::Blob{std::string("\x00\x01", 2)}},
                               {"fx", kc::Value::Blob{"xy"}},
                               {"d", std::string("12.34")},
                               {"ts", std::string("1970-01-01T00:00:00.000Z")},
                               {"e", std::string("B")},
                               {"a", A{nullptr, std::string("s")}},
                               {"m", O{{"k", 2.5}}}};
  EXPECT_EQ(v, expected);
  ASSERT_NE(v.find("e"), nullptr);

  kc::Value keep = std::int64_t{42};
  EXPECT_FALSE(avro::decode_value(*s, nullptr, bytes(payload.substr(0, 10)), {}, keep, err));
  EXPECT_EQ(keep, kc::Value(std::int64_t{42}));
}

TEST(AvroDecoder, MeasuresThroughputOfARealisticOrderRecord) {
  const auto s = avro::parse(R"({"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"order_id","type":"string"},
    {"name":"customer_id","type":"string"},
    {"name":"created_at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"updated_at","type":"long"},
    {"name":"amount","type":"double"},
    {"name":"tax","type":"double"},
    {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED","CANCELLED"]}},
    {"name":"items","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
       {"name":"sku","type":"string"},{"name":"quantity","type":"int"},{"name":"price","type":"double"}]}}},
    {"name":"note","type":["null","string"]}]})");
  std::string payload = str("ord-2024-000000123456") + str("cust-00000000789") + zz(1700000000123) + zz(1700000000999) +
                        f64(129.95) + f64(10.4) + zz(1) + zz(3);
  for (int i = 0; i < 3; ++i) {
    payload += str("SKU-ABCDEFGH-" + std::to_string(i)) + zz(i + 1) + f64(19.99 + i);
  }
  payload += zz(0);
  payload += zz(1) + str("leave at the door, ring twice please");
  std::string out;
  std::string err;
  ASSERT_TRUE(avro::decode_json(*s, nullptr, bytes(payload), {}, out, err)) << err;
  const std::size_t line = out.size();
  constexpr int kIterations = 500000;
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int i = 0; i < kIterations; ++i) {
    out.clear();
    if (!avro::decode_json(*s, nullptr, bytes(payload), {}, out, err)) {
      FAIL() << err;
    }
  }
  const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("avro decode_json: %zu-byte record -> %zu bytes of JSON: %.2f M records/s wall, %.2f M records/s of CPU "
              "time (%.0f MB/s in)\n",
              payload.size(), line, kIterations / secs / 1e6, kIterations / cpu / 1e6,
              kIterations * static_cast<double>(payload.size()) / cpu / 1e6);
  std::printf("%s\n", out.c_str());
}
