#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "kc/error.hpp"
#include "schema/avro/avro.hpp"
#include "unit/avro_test_helpers.hpp"

namespace avro = kc::schema::detail::avro;
using namespace avro_test;

namespace {

std::string read(const std::string& writer, const std::string& reader, const std::string& payload,
                 kc::DecodeLimits limits = {}) {
  const auto w = avro::parse(writer);
  const auto r = avro::parse(reader);
  const auto res = avro::resolve(w, r);
  std::string out;
  std::string err;
  if (!avro::decode_json(*w, res.get(), bytes(payload), limits, out, err)) {
    return "ERROR: " + err;
  }
  return out;
}

std::string resolve_error(const std::string& writer, const std::string& reader) {
  try {
    avro::resolve(avro::parse(writer), avro::parse(reader));
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::schema_invalid);
    return e.what();
  }
  ADD_FAILURE() << "resolved";
  return {};
}

const std::string kWriterV1 = R"({"type":"record","name":"Order","namespace":"v1","fields":[
  {"name":"id","type":"string"},
  {"name":"qty","type":"int"},
  {"name":"legacy","type":{"type":"array","items":"string"}},
  {"name":"price","type":"float"}]})";

}  // namespace

TEST(AvroResolution, OutputsTheReadersFieldOrderSkipsWriterOnlyFieldsAndFillsDefaults) {
  const std::string reader = R"({"type":"record","name":"Order","namespace":"v2","fields":[
    {"name":"price","type":"double"},
    {"name":"currency","type":"string","default":"EUR"},
    {"name":"id","type":"string"},
    {"name":"qty","type":"long"},
    {"name":"tags","type":{"type":"map","values":"int"},"default":{"a":1}},
    {"name":"note","type":["null","string"],"default":null}]})";
  const std::string payload = str("o-1") + zz(3) + zz(2) + str("x") + str("y") + zz(0) + f32(2.5f);
  EXPECT_EQ(read(kWriterV1, reader, payload),
            R"({"price":2.5,"currency":"EUR","id":"o-1","qty":3,"tags":{"a":1},"note":null})");
  // The same through decode_value.
  const auto w = avro::parse(kWriterV1);
  const auto res = avro::resolve(w, avro::parse(reader));
  kc::Value v;
  std::string err;
  ASSERT_TRUE(avro::decode_value(*w, res.get(), bytes(payload), {}, v, err)) << err;
  EXPECT_EQ(v.to_json(), R"({"price":2.5,"currency":"EUR","id":"o-1","qty":3,"tags":{"a":1},"note":null})");
}

TEST(AvroResolution, KeepsWriterOrderWhenTheReaderAgrees) {
  const std::string reader = R"({"type":"record","name":"Order","fields":[
    {"name":"id","type":"string"},{"name":"price","type":"float"},{"name":"extra","type":"int","default":7}]})";
  EXPECT_EQ(read(kWriterV1, reader, str("a") + zz(1) + zz(0) + f32(1.5f)), R"({"id":"a","price":1.5,"extra":7})");
}

TEST(AvroResolution, ReaderOnlyFieldWithoutDefaultIsSchemaInvalid) {
  const std::string reader = R"({"type":"record","name":"Order","fields":[{"name":"id","type":"string"},
    {"name":"customer","type":"string"}]})";
  EXPECT_NE(resolve_error(kWriterV1, reader).find("at .customer: the reader's field has no default"), std::string::npos);
  const std::string bad_default = R"({"type":"record","name":"Order","fields":[{"name":"customer","type":"int","default":"x"}]})";
  EXPECT_NE(resolve_error(kWriterV1, bad_default).find("default does not fit"), std::string::npos);
}

TEST(AvroResolution, SkippingAWriterOnlyFieldIsBoundedToo) {
  const std::string reader = R"({"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]})";
  EXPECT_NE(read(kWriterV1, reader, str("a") + zz(1) + zz(200'000'000) + "ab").find("at .legacy: array block of 200000000"),
            std::string::npos);
  EXPECT_NE(read(kWriterV1, reader, str("a") + zz(1) + zz(1) + zz(1'000'000'000)).find("string length 1000000000"),
            std::string::npos);
}

TEST(AvroResolution, PromotesNumbersAndConvertsStringsAndBytes) {
  EXPECT_EQ(read(R"("int")", R"("long")", zz(-5)), "-5");
  EXPECT_EQ(read(R"("int")", R"("float")", zz(16777217)), "16777216");
  EXPECT_EQ(read(R"("int")", R"("double")", zz(3)), "3");
  EXPECT_EQ(read(R"("long")", R"("double")", zz(1LL << 53)), "9007199254740992");
  EXPECT_EQ(read(R"("long")", R"("float")", zz(2)), "2");
  EXPECT_EQ(read(R"("float")", R"("double")", f32(0.5f)), "0.5");
  EXPECT_EQ(read(R"("string")", R"("bytes")", str("hi")), "\"aGk=\"");
  EXPECT_EQ(read(R"("bytes")", R"("string")", str("hi")), "\"hi\"");
  EXPECT_NE(read(R"("bytes")", R"("string")", str("\xff")).find("UTF-8"), std::string::npos);
  EXPECT_EQ(read(R"("long")", R"({"type":"long","logicalType":"timestamp-millis"})", zz(0)), "\"1970-01-01T00:00:00.000Z\"");
  EXPECT_NE(resolve_error(R"("long")", R"("int")").find("cannot be read as the reader's int"), std::string::npos);
  EXPECT_NE(resolve_error(R"("double")", R"("float")").find("cannot be read"), std::string::npos);
}

TEST(AvroResolution, MapsEnumSymbolsByNameWithTheReadersDefault) {
  const std::string writer = R"({"type":"enum","name":"Status","symbols":["NEW","PAID","LOST"]})";
  const std::string with_default = R"({"type":"enum","name":"Status","symbols":["UNKNOWN","PAID","NEW"],"default":"UNKNOWN"})";
  const std::string without = R"({"type":"enum","name":"Status","symbols":["PAID","NEW"]})";
  EXPECT_EQ(read(writer, with_default, zz(0)), "\"NEW\"");
  EXPECT_EQ(read(writer, with_default, zz(1)), "\"PAID\"");
  EXPECT_EQ(read(writer, with_default, zz(2)), "\"UNKNOWN\"");
  EXPECT_EQ(read(writer, without, zz(0)), "\"NEW\"");
  EXPECT_EQ(read(writer, without, zz(2)), "ERROR: enum symbol LOST is not in the reader's Status and it has no default");
  EXPECT_EQ(read(writer, without, zz(3)), "ERROR: enum index 3 out of range for Status (3 symbols)");
}

TEST(AvroResolution, ReadsANonUnionAsAUnionAndBack) {
  EXPECT_EQ(read(R"("string")", R"(["null","string"])", str("a")), "\"a\"");
  EXPECT_EQ(read(R"("int")", R"(["null","string","long"])", zz(9)), "9");  // promotion into a branch
  EXPECT_EQ(read(R"(["null","string"])", R"("string")", zz(1) + str("a")), "\"a\"");
  EXPECT_EQ(read(R"(["null","string"])", R"("string")", zz(0)),
            "ERROR: the writer's union branch 0 (null) has no match in the reader's schema");
  EXPECT_EQ(read(R"(["null","int"])", R"(["long","null"])", zz(1) + zz(4)), "4");
  EXPECT_EQ(read(R"(["null","int"])", R"(["long","null"])", zz(0)), "null");
  EXPECT_NE(resolve_error(R"("boolean")", R"(["null","string"])").find("matches no branch"), std::string::npos);
  EXPECT_NE(resolve_error(R"(["null","boolean"])", R"("string")").find("no branch of the writer's union"), std::string::npos);
}

TEST(AvroResolution, MatchesNamedTypesByUnqualifiedNameOrAlias) {
  const std::string writer = R"({"type":"record","name":"com.a.Point","fields":[{"name":"x","type":"int"},
    {"name":"h","type":{"type":"fixed","name":"com.a.Hash","size":2}}]})";
  EXPECT_EQ(read(writer, R"({"type":"record","name":"org.b.Point","fields":[{"name":"x","type":"int"},
    {"name":"h","type":{"type":"fixed","name":"Hash","size":2}}]})",
                 zz(1) + "ab"),
            R"({"x":1,"h":"YWI="})");
  EXPECT_EQ(read(writer, R"({"type":"record","name":"Pt","aliases":["Point"],"fields":[
    {"name":"xx","aliases":["x"],"type":"long"}]})",
                 zz(1) + "ab"),
            R"({"xx":1})");
  EXPECT_NE(resolve_error(writer, R"({"type":"record","name":"Other","fields":[]})").find("cannot be read"), std::string::npos);
  EXPECT_NE(resolve_error(writer, R"({"type":"record","name":"Point","fields":[{"name":"h","type":{"type":"fixed","name":"Hash","size":3}}]})")
                .find("at .h"),
            std::string::npos);
}

TEST(AvroResolution, ResolvesRecursiveAndNestedTypes) {
  const std::string writer = R"({"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
    {"name":"kids","type":{"type":"array","items":"Node"}}]})";
  const std::string reader = R"({"type":"record","name":"Node","fields":[
    {"name":"kids","type":{"type":"array","items":"Node"}},{"name":"v","type":"double"},
    {"name":"label","type":"string","default":"-"}]})";
  const std::string payload = zz(1) + zz(2) + zz(2) + zz(0) + zz(3) + zz(0) + zz(0);
  EXPECT_EQ(read(writer, reader, payload),
            R"({"kids":[{"kids":[],"v":2,"label":"-"},{"kids":[],"v":3,"label":"-"}],"v":1,"label":"-"})");
}

TEST(AvroResolution, RendersRecordDefaultsAndBytesDefaultsAsAvroSpecifies) {
  const std::string writer = R"({"type":"record","name":"R","fields":[]})";
  const std::string reader = R"({"type":"record","name":"R","fields":[
    {"name":"inner","type":{"type":"record","name":"In","fields":[{"name":"a","type":"int","default":5},
      {"name":"b","type":"string"}]},"default":{"b":"x"}},
    {"name":"raw","type":"bytes","default":"\u00ff\u0001"},
    {"name":"when","type":{"type":"int","logicalType":"date"},"default":1},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]},"default":"B"}]})";
  EXPECT_EQ(read(writer, reader, ""), R"({"inner":{"a":5,"b":"x"},"raw":"/wE=","when":"1970-01-02","e":"B"})");
}
