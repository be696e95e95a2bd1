// Deserializer and Serializer (src/schema/serde.cpp) against
// tests/support/fake_registry.py: round trips in the three formats, the
// per-id schema cache and the failure cache (counted with the fake's
// /_admin/stats), registry outages, JSON Schema validation, Avro reader
// schemas, limits, and auto_register=false.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/error.hpp"
#include "kc/schema.hpp"
#include "support/common.hpp"
#include "support/registry.hpp"

namespace kc::schema {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- fixtures

/// The fake registry with its admin hooks.
class Registry {
 public:
  const std::string& url() const { return fake_.url(); }

  /// The next `count` API requests fail with `status`.
  void fail(int status, int count) {
    test::registry_admin(url(), "POST", "/_admin/fail",
                         "{\"status\":" + std::to_string(status) + ",\"count\":" + std::to_string(count) + "}");
  }
  /// Zeroes the statistics and cancels pending faults.
  void reset() { test::registry_admin(url(), "POST", "/_admin/reset", "{}"); }

  /// API requests seen whose path starts with `prefix` (all when empty).
  std::int64_t seen(std::string_view prefix = {}) {
    const auto stats = test::registry_stats(url());
    return prefix.empty() ? stats.requests : stats.starting_with(prefix);
  }
  /// GET /schemas/ids/{id} requests (the deserializer's only kind).
  std::int64_t id_requests() { return seen("/schemas/ids/"); }

 private:
  test::FakeRegistry fake_;
};

/// A client that retries fast. `cache_capacity` 0 turns the client's own
/// schema cache off, so that only the Deserializer's cache can spare
/// requests.
std::shared_ptr<SchemaRegistry> client(const std::string& url, std::size_t cache_capacity = 1000) {
  RegistryConfig c;
  c.url = url;
  c.timeout = 5000ms;
  c.max_retries = 2;
  c.retry_backoff = 1ms;
  c.retry_backoff_max = 4ms;
  c.cache_capacity = cache_capacity;
  return std::make_shared<SchemaRegistry>(c);
}

RegisteredSchema schema(Format f, std::string text) {
  RegisteredSchema s;
  s.format = f;
  s.text = std::move(text);
  return s;
}

SerializerOptions subject(std::string name) {
  SerializerOptions o;
  o.subject = std::move(name);
  return o;
}

Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Confluent framing by hand: magic 0, big-endian id, then `rest`.
std::string frame(std::int32_t id, std::string_view rest) {
  std::string out(1, '\0');
  const auto u = static_cast<std::uint32_t>(id);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((u >> shift) & 0xff));
  }
  out.append(rest);
  return out;
}

// A canonical text of a JSON document: object keys sorted, numbers as
// simdjson reads them (so 1.50 and 1.5 are equal, 1 and 1.0 are not).
void canonical(simdjson::dom::element e, std::string& out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::vector<std::pair<std::string, std::string>> fields;
      for (auto [k, v] : e.get_object()) {
        std::string text;
        canonical(v, text);
        fields.emplace_back(std::string(k), std::move(text));
      }
      std::sort(fields.begin(), fields.end());
      out += '{';
      for (const auto& [k, v] : fields) {
        out += '"' + k + "\":" + v + ',';
      }
      out += '}';
      return;
    }
    case simdjson::dom::element_type::ARRAY:
      out += '[';
      for (auto v : e.get_array()) {
        canonical(v, out);
        out += ',';
      }
      out += ']';
      return;
    case simdjson::dom::element_type::STRING: out += '"' + std::string(std::string_view(e.get_string())) + '"'; return;
    case simdjson::dom::element_type::INT64: out += "i" + std::to_string(std::int64_t(e.get_int64())); return;
    case simdjson::dom::element_type::UINT64: out += "u" + std::to_string(std::uint64_t(e.get_uint64())); return;
    case simdjson::dom::element_type::DOUBLE: out += "d" + std::to_string(double(e.get_double())); return;
    case simdjson::dom::element_type::BOOL: out += bool(e.get_bool()) ? "true" : "false"; return;
    case simdjson::dom::element_type::NULL_VALUE: out += "null"; return;
  }
}

std::string canonical(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (const auto rc = parser.parse(simdjson::padded_string(json)).get(doc); rc != simdjson::SUCCESS) {
    ADD_FAILURE() << "not JSON (" << simdjson::error_message(rc) << "): " << json;
    return "<invalid>";
  }
  std::string out;
  canonical(doc, out);
  return out;
}

// Runs `f`, which must throw kc::Error with `code`; returns it.
template <class F>
std::optional<Error> expect_error(F&& f, errc code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), make_error_code(code)) << e.what();
    return e;
  }
  ADD_FAILURE() << "no kc::Error thrown";
  return std::nullopt;
}

// Decodes `record` to JSON text, which must succeed and equal `doc` up to key
// order and number spelling (see canonical()).
void expect_decodes_to(Deserializer& de, const std::string& record, std::string_view doc) {
  std::string out;
  std::string error;
  ASSERT_TRUE(de.decode(bytes(record), out, error)) << error;
  EXPECT_EQ(canonical(out), canonical(doc)) << out;
}

// Decodes `record` to a Value, which must succeed.
Value decode_value(Deserializer& de, const std::string& record) {
  Value v;
  std::string error;
  EXPECT_TRUE(de.decode(bytes(record), v, error)) << error;
  return v;
}

// ---------------------------------------------------------------- schemas

const std::string kAvroOrder = R"({"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},
  {"name":"customer","type":"string"},
  {"name":"payload","type":"bytes"},
  {"name":"price","type":"double"},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"note","type":["null","string"],"default":null}]})";
// payload: base64 of 00 01 02 ff.
const std::string kAvroOrderDoc =
    R"({"id":42,"customer":"ann","payload":"AAEC/w==","price":12.5,"tags":["a","b"],"note":"rush"})";

const std::string kAvroV1 =
    R"({"type":"record","name":"Payment","namespace":"shop","fields":[{"name":"id","type":"long"}]})";
const std::string kAvroV2 = R"({"type":"record","name":"Payment","namespace":"shop","fields":[
  {"name":"id","type":"long"},
  {"name":"currency","type":"string","default":"EUR"}]})";

const std::string kProto = R"(syntax = "proto3";
package shop;
message Order {
  int32 id = 1;
  string customer = 2;
}
message Refund {
  message Reason {
    string code = 1;
  }
  int32 order_id = 1;
  string reason_text = 2;
  Reason reason = 3;
}
)";

const std::string kJsonSchema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "id": {"type": "integer"},
    "name": {"type": "string", "minLength": 1}
  },
  "required": ["id", "name"],
  "additionalProperties": false
})";

// kAvroOrderDoc encoded by a Serializer that registers kAvroOrder under
// "orders-value": a framed record.
std::string avro_order_record(const std::shared_ptr<SchemaRegistry>& reg) {
  Serializer ser(Format::avro, reg, schema(Format::avro, kAvroOrder), subject("orders-value"));
  std::string record;
  ser.encode(kAvroOrderDoc, record);
  return record;
}

// ---------------------------------------------------------------- round trips

TEST(Serde, AvroRoundTripsAJsonDocument) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer ser(Format::avro, reg, schema(Format::avro, kAvroOrder), subject("orders-value"));
  EXPECT_GT(ser.schema_id(), 0);

  std::string record = "keep";
  ser.encode(kAvroOrderDoc, record);
  ASSERT_GT(record.size(), 4u + 5u);
  EXPECT_EQ(record.substr(0, 4), "keep");  // appended
  record.erase(0, 4);
  EXPECT_EQ(record, frame(ser.schema_id(), record.substr(5)));

  Deserializer de(Format::avro, reg);
  expect_decodes_to(de, record, kAvroOrderDoc);
}

TEST(Serde, AvroDecodesToValueWithBlobsAndFieldsInSchemaOrder) {
  Registry fake;
  const auto reg = client(fake.url());
  const std::string record = avro_order_record(reg);

  Deserializer de(Format::avro, reg);
  const Value v = decode_value(de, record);
  const auto* obj = std::get_if<Value::Object>(&v.variant());
  ASSERT_NE(obj, nullptr) << v.to_json();
  std::vector<std::string> names;
  for (const auto& [k, x] : *obj) {
    names.push_back(k);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"id", "customer", "payload", "price", "tags", "note"}));

  ASSERT_NE(v.find("payload"), nullptr);
  EXPECT_EQ(*v.find("payload"), Value(Value::Blob{std::string("\x00\x01\x02\xff", 4)}));
  EXPECT_EQ(*v.find("id"), Value(std::int64_t{42}));
  EXPECT_EQ(*v.find("customer"), Value(std::string("ann")));
  EXPECT_EQ(*v.find("price"), Value(12.5));
  EXPECT_EQ(*v.find("tags"), Value(Value::Array{Value(std::string("a")), Value(std::string("b"))}));
  EXPECT_EQ(*v.find("note"), Value(std::string("rush")));
}

TEST(Serde, ProtobufRoundTripsTheFirstMessage) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer ser(Format::protobuf, reg, schema(Format::protobuf, kProto), subject("orders-value"));
  const std::string doc = R"({"id":7,"customer":"ann"})";
  std::string record;
  ser.encode(doc, record);
  ASSERT_GT(record.size(), 6u);
  EXPECT_EQ(record.substr(0, 5), frame(ser.schema_id(), ""));
  EXPECT_EQ(record[5], '\0') << "the first message is written as the single index byte 0";

  Deserializer de(Format::protobuf, reg);
  expect_decodes_to(de, record, doc);

  const Value v = decode_value(de, record);
  ASSERT_NE(v.find("customer"), nullptr) << v.to_json();
  EXPECT_EQ(*v.find("customer"), Value(std::string("ann")));
}

TEST(Serde, ProtobufNonFirstMessageCarriesItsIndexPathAndDecodes) {
  Registry fake;
  const auto reg = client(fake.url());
  Deserializer de(Format::protobuf, reg);

  struct Case {
    std::string message;
    std::string indexes;  // zigzag varints: count, then each index
    std::string doc;
  };
  const std::vector<Case> cases = {
      {"shop.Refund", std::string("\x02\x02", 2), R"({"orderId":7,"reasonText":"late","reason":{"code":"L1"}})"},
      {"shop.Refund.Reason", std::string("\x04\x02\x00", 3), R"({"code":"L2"})"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message);
    auto opts = subject("refunds-value");
    opts.protobuf_message = c.message;
    Serializer ser(Format::protobuf, reg, schema(Format::protobuf, kProto), opts);
    std::string record;
    ser.encode(c.doc, record);
    ASSERT_GE(record.size(), 5 + c.indexes.size());
    EXPECT_EQ(record.substr(0, 5), frame(ser.schema_id(), ""));
    EXPECT_EQ(record.substr(5, c.indexes.size()), c.indexes);
    expect_decodes_to(de, record, c.doc);
  }
}

TEST(Serde, JsonSchemaRoundTripsAJsonDocument) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer ser(Format::json, reg, schema(Format::json, kJsonSchema), subject("users-value"));
  const std::string doc = R"({ "id": 3, "name": "zoe" })";
  std::string record;
  ser.encode(doc, record);
  EXPECT_EQ(record.substr(0, 5), frame(ser.schema_id(), ""));

  Deserializer de(Format::json, reg);
  expect_decodes_to(de, record, doc);

  const Value v = decode_value(de, record);
  ASSERT_NE(v.find("id"), nullptr) << v.to_json();
  EXPECT_EQ(*v.find("id"), Value(std::int64_t{3}));
}

// ---------------------------------------------------------------- schema cache

TEST(Serde, AsksTheRegistryOncePerSchemaId) {
  Registry fake;
  // The client's own cache is off: only the Deserializer's may spare requests.
  const auto reg = client(fake.url(), 0);
  Serializer a(Format::avro, reg, schema(Format::avro, kAvroOrder), subject("orders-value"));
  Serializer b(Format::avro, reg, schema(Format::avro, kAvroV1), subject("payments-value"));
  ASSERT_NE(a.schema_id(), b.schema_id());
  std::string ra;
  std::string rb;
  a.encode(kAvroOrderDoc, ra);
  b.encode(R"({"id":1})", rb);

  Deserializer de(Format::avro, reg);
  EXPECT_EQ(de.cached_schemas(), 0u);
  EXPECT_EQ(fake.id_requests(), 0);
  std::string out;
  std::string error;
  for (int i = 0; i < 1000; ++i) {
    out.clear();
    ASSERT_TRUE(de.decode(bytes(ra), out, error)) << error;
  }
  EXPECT_EQ(fake.id_requests(), 1);
  EXPECT_EQ(fake.seen("/schemas/ids/" + std::to_string(a.schema_id())), 1);
  EXPECT_EQ(de.cached_schemas(), 1u);

  Value v;
  for (int i = 0; i < 1000; ++i) {
    out.clear();
    ASSERT_TRUE(de.decode(bytes(i % 2 == 0 ? rb : ra), out, error)) << error;
    ASSERT_TRUE(de.decode(bytes(i % 2 == 0 ? ra : rb), v, error)) << error;
  }
  EXPECT_EQ(fake.id_requests(), 2);
  EXPECT_EQ(fake.seen("/schemas/ids/" + std::to_string(b.schema_id())), 1);
  EXPECT_EQ(de.cached_schemas(), 2u);
}

// ---------------------------------------------------------------- failures

TEST(Serde, UnknownSchemaIdIsADecodeErrorNamingTheId) {
  Registry fake;
  Deserializer de(Format::avro, client(fake.url()));
  const std::string record = frame(4242, std::string("\x02", 1));
  std::string out = "keep";
  std::string error;
  bool ok = true;
  EXPECT_NO_THROW(ok = de.decode(bytes(record), out, error));
  EXPECT_FALSE(ok);
  EXPECT_NE(error.find("4242"), std::string::npos) << error;
  EXPECT_EQ(out, "keep");
  EXPECT_EQ(de.cached_schemas(), 0u);

  Value v = std::string("keep");
  error.clear();
  EXPECT_NO_THROW(ok = de.decode(bytes(record), v, error));
  EXPECT_FALSE(ok);
  EXPECT_NE(error.find("4242"), std::string::npos) << error;
  EXPECT_EQ(v, Value(std::string("keep")));
}

TEST(Serde, UnknownSchemaIdIsNotRequestedForEveryRecord) {
  Registry fake;
  // No client cache: the Deserializer's failure cache is what is tested.
  Deserializer de(Format::avro, client(fake.url(), 0));
  const std::string record = frame(777, std::string("\x02", 1));
  for (int i = 0; i < 100; ++i) {
    std::string out;
    std::string error;
    ASSERT_FALSE(de.decode(bytes(record), out, error));
    ASSERT_NE(error.find("777"), std::string::npos) << error;
  }
  const auto n = fake.id_requests();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, 2) << "a failed schema id was requested again for the records after it";
}

TEST(Serde, SchemaIdOfAnotherFormatIsADecodeErrorNamingBothTypes) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer ser(Format::json, reg, schema(Format::json, kJsonSchema), subject("users-value"));
  std::string record;
  ser.encode(R"({"id":1,"name":"a"})", record);

  Deserializer de(Format::avro, reg);
  std::string out;
  std::string error;
  bool ok = true;
  EXPECT_NO_THROW(ok = de.decode(bytes(record), out, error));
  EXPECT_FALSE(ok);
  EXPECT_NE(error.find("JSON"), std::string::npos) << error;
  EXPECT_NE(error.find("AVRO"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(ser.schema_id())), std::string::npos) << error;
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(de.cached_schemas(), 0u);
}

TEST(Serde, RegistryDownThrowsRetriableAndLeavesOutUnchanged) {
  Registry fake;
  const auto reg = client(fake.url());
  const std::string record = avro_order_record(reg);

  Deserializer de(Format::avro, reg);
  fake.fail(503, 1000);
  std::string out = "keep";
  std::string error;
  const auto e = expect_error([&] { de.decode(bytes(record), out, error); }, errc::registry_unavailable);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->retriable());
  EXPECT_EQ(out, "keep");
  EXPECT_EQ(fake.id_requests(), 3) << "first try + max_retries (2)";

  Value v = std::string("keep");
  const auto ev = expect_error([&] { de.decode(bytes(record), v, error); }, errc::registry_unavailable);
  ASSERT_TRUE(ev);
  EXPECT_TRUE(ev->retriable());
  EXPECT_EQ(v, Value(std::string("keep")));

  // An outage is not the record's fault and is not remembered as a failure:
  // once the registry is back, the same record decodes.
  fake.reset();
  error.clear();
  ASSERT_TRUE(de.decode(bytes(record), out, error)) << error;
  EXPECT_EQ(out.substr(0, 4), "keep");
  EXPECT_EQ(canonical(out.substr(4)), canonical(kAvroOrderDoc));
}

// ---------------------------------------------------------------- JSON Schema

TEST(Serde, JsonSchemaInvalidDocumentFailsToDecodeOnlyWhenValidating) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer ser(Format::json, reg, schema(Format::json, kJsonSchema), subject("users-value"));
  // Framed by hand: the serializer would refuse it.
  const std::string invalid = R"({"id":"seven","name":"a"})";
  const std::string record = frame(ser.schema_id(), invalid);

  Deserializer strict(Format::json, reg);
  std::string out = "keep";
  std::string error;
  EXPECT_FALSE(strict.decode(bytes(record), out, error));
  EXPECT_EQ(out, "keep");
  // Names the property and the keyword it violates.
  EXPECT_NE(error.find("/id"), std::string::npos) << error;
  EXPECT_NE(error.find("type"), std::string::npos) << error;

  DeserializerOptions lax_options;
  lax_options.validate_json = false;
  Deserializer lax(Format::json, reg, lax_options);
  out.clear();
  error.clear();
  ASSERT_TRUE(lax.decode(bytes(record), out, error)) << error;
  EXPECT_EQ(canonical(out), canonical(invalid));
}

TEST(Serde, JsonSchemaEncodeRefusesAnInvalidDocumentAndLeavesOutUnchanged) {
  Registry fake;
  Serializer ser(Format::json, client(fake.url()), schema(Format::json, kJsonSchema), subject("users-value"));
  std::string out = "keep";
  const auto e = expect_error([&] { ser.encode(R"({"id":1,"name":"a","extra":true})", out); },
                              errc::encode_failed);
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("extra"), std::string::npos) << e->what();
  EXPECT_EQ(out, "keep");
  // Not JSON at all: the same.
  expect_error([&] { ser.encode(R"({"id":1,)", out); }, errc::encode_failed);
  EXPECT_EQ(out, "keep");
  // A valid one still encodes after the failures.
  ser.encode(R"({"id":1,"name":"a"})", out);
  EXPECT_EQ(out.substr(0, 4 + 5), "keep" + frame(ser.schema_id(), ""));
}

// ---------------------------------------------------------------- Avro evolution

TEST(Serde, AvroReaderSchemaAddsAFieldWithItsDefault) {
  Registry fake;
  const auto reg = client(fake.url());
  Serializer v1(Format::avro, reg, schema(Format::avro, kAvroV1), subject("payments-value"));
  std::string record;
  v1.encode(R"({"id":5})", record);

  DeserializerOptions options;
  options.avro_reader_schema = kAvroV2;
  Deserializer de(Format::avro, reg, options);
  expect_decodes_to(de, record, R"({"id":5,"currency":"EUR"})");

  const Value v = decode_value(de, record);
  EXPECT_EQ(v, Value(Value::Object{{"id", Value(std::int64_t{5})}, {"currency", Value(std::string("EUR"))}}))
      << v.to_json();

  // Without the reader schema the record keeps its writer's shape.
  Deserializer plain(Format::avro, reg);
  expect_decodes_to(plain, record, R"({"id":5})");
}

// ---------------------------------------------------------------- limits

TEST(Serde, PayloadOverMaxBytesIsRefusedBeforeAnyRegistryRequest) {
  Registry fake;
  const auto reg = client(fake.url());
  const std::string record = avro_order_record(reg);
  fake.reset();

  for (const auto format : {Format::avro, Format::protobuf, Format::json}) {
    SCOPED_TRACE(std::string(schema_type(format)));
    DeserializerOptions options;
    options.limits.max_bytes = record.size() - 1;
    Deserializer de(format, reg, options);
    std::string out = "keep";
    std::string error;
    EXPECT_FALSE(de.decode(bytes(record), out, error));
    EXPECT_NE(error.find("limit"), std::string::npos) << error;
    EXPECT_EQ(out, "keep");
    Value v;
    error.clear();
    EXPECT_FALSE(de.decode(bytes(record), v, error));
    EXPECT_NE(error.find("limit"), std::string::npos) << error;
    EXPECT_EQ(de.cached_schemas(), 0u);
  }
  EXPECT_EQ(fake.seen(), 0);

  // At the limit it decodes (and asks the registry).
  DeserializerOptions options;
  options.limits.max_bytes = record.size();
  Deserializer de(Format::avro, reg, options);
  std::string out;
  std::string error;
  EXPECT_TRUE(de.decode(bytes(record), out, error)) << error;
  EXPECT_EQ(fake.id_requests(), 1);
}

// ---------------------------------------------------------------- auto_register

TEST(Serde, WithoutAutoRegisterAnUnregisteredSchemaIsNotFoundThenLookedUp) {
  Registry fake;
  const auto reg = client(fake.url());
  auto options = subject("orders-value");
  options.auto_register = false;
  expect_error([&] { Serializer(Format::avro, reg, schema(Format::avro, kAvroOrder), options); },
               errc::registry_not_found);
  EXPECT_EQ(fake.seen("/subjects/orders-value/versions"), 0) << "it registered the schema";

  // Registered by someone else (another client), then found by lookup.
  const auto id = client(fake.url())->register_schema("orders-value", schema(Format::avro, kAvroOrder));
  const auto lookups = fake.seen("/subjects/orders-value");
  Serializer ser(Format::avro, reg, schema(Format::avro, kAvroOrder), options);
  EXPECT_EQ(ser.schema_id(), id);
  EXPECT_GT(fake.seen("/subjects/orders-value"), lookups);
  EXPECT_EQ(fake.seen("/subjects/orders-value/versions"), 1) << "only the other client's registration";

  std::string record;
  ser.encode(kAvroOrderDoc, record);
  EXPECT_EQ(record.substr(0, 5), frame(id, ""));
}

}  // namespace
}  // namespace kc::schema
