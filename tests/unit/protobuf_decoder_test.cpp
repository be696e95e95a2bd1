#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "kc/decode.hpp"
#include "kc/error.hpp"
#include "schema/protobuf/protobuf.hpp"

namespace pb = kc::schema::detail::protobuf;

namespace {

kc::Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(n >> k) & 63u];
  }
  if (i + 1 == in.size()) {
    const unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63u];
    out += kAlphabet[(n >> 12) & 63u];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63u];
    out += kAlphabet[(n >> 12) & 63u];
    out += kAlphabet[(n >> 6) & 63u];
    out += '=';
  }
  return out;
}

void put_varint(std::string& s, std::uint64_t v) {
  while (v >= 0x80) {
    s += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  s += static_cast<char>(v);
}

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// shop.proto imports a reference that imports another, and a well-known type.
constexpr std::string_view kShop = R"(syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "common/money.proto";

message Order {
  enum Status { STATUS_UNKNOWN = 0; NEW = 1; SHIPPED = 2; }
  message Line { string sku = 1; uint32 qty = 2; }
  string id = 1;
  int64 quantity = 2;
  common.Money price = 3;
  google.protobuf.Timestamp created_at = 4;
  Status status = 5;
  repeated string tags = 6;
  map<string, int32> counts = 7;
  oneof payment { string card = 8; string iban = 9; }
  bytes blob = 10;
  repeated Line lines = 11;
  repeated int32 nums = 12;
}
message Customer {
  message Address { string city = 1; string zip = 2; }
  string name = 1;
  Address address = 2;
}
message Refund { string order_id = 1; double amount = 2; }
message Node { Node child = 1; int32 v = 2; }
)";

constexpr std::string_view kMoney = R"(syntax = "proto3";
package common;
import "common/currency.proto";
message Money { int64 units = 1; int32 nanos = 2; Currency currency = 3; }
)";

constexpr std::string_view kCurrency = R"(syntax = "proto3";
package common;
enum Currency { CURRENCY_UNSPECIFIED = 0; EUR = 1; USD = 2; }
)";

std::shared_ptr<const pb::Schema> shop() {
  // Dependents before their dependencies, on purpose.
  return pb::parse(kShop,
                   {{"common/money.proto", std::string(kMoney)}, {"common/currency.proto", std::string(kCurrency)}});
}

std::string encode(const pb::Schema& s, const std::vector<int>& path, std::string_view json) {
  std::string out;
  pb::encode_json(s, path, json, out);
  return out;
}

std::string decode_ok(const pb::Schema& s, const std::vector<int>& path, std::string_view payload,
                      kc::DecodeLimits limits = {}) {
  std::string out;
  std::string err;
  EXPECT_TRUE(pb::decode_json(s, path, bytes(payload), limits, out, err)) << err;
  return out;
}

std::string decode_error(const pb::Schema& s, const std::vector<int>& path, std::string_view payload,
                         kc::DecodeLimits limits = {}) {
  std::string out = "keep";
  std::string err;
  EXPECT_FALSE(pb::decode_json(s, path, bytes(payload), limits, out, err));
  EXPECT_EQ(out, "keep");
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  return err;
}

template <class F>
std::string schema_error(F&& f) {
  try {
    f();
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::schema_invalid);
    return e.what();
  }
  ADD_FAILURE() << "no kc::Error";
  return {};
}

}  // namespace

TEST(ProtobufSchema, ProtoTextWithOutOfOrderReferencesRendersEveryFieldKind) {
  auto s = shop();
  const std::string json =
      R"({"id":"o-1","quantity":"9007199254740993",)"
      R"("price":{"units":"12","nanos":500000000,"currency":"EUR"},)"
      R"("createdAt":"2024-01-02T03:04:05Z","status":"SHIPPED","tags":["a","b"],)"
      R"("counts":{"x":1},"card":"4111","blob":"AAH/","lines":[{"sku":"s","qty":2}],"nums":[1,-2]})";
  const std::string payload = encode(*s, {0}, json);
  EXPECT_EQ(decode_ok(*s, {0}, payload), json);
}

TEST(ProtobufSchema, Int64RendersAsStringAndDefaultsAreOmitted) {
  auto s = shop();
  std::string payload;
  payload += '\x10';  // quantity (2), varint
  put_varint(payload, 1ull << 62);
  payload += std::string("\x28\x00", 2);  // status = STATUS_UNKNOWN: the default, omitted
  EXPECT_EQ(decode_ok(*s, {0}, payload), R"({"quantity":"4611686018427387904"})");
  EXPECT_EQ(decode_ok(*s, {0}, ""), "{}");
}

TEST(ProtobufSchema, AppendsToOutputWithoutLineBreaks) {
  auto s = shop();
  std::string out = "prefix ";
  std::string err;
  const std::string payload = encode(*s, {2}, R"({"orderId":"line1\nline2"})");
  ASSERT_TRUE(pb::decode_json(*s, {2}, bytes(payload), {}, out, err)) << err;
  EXPECT_EQ(out, R"(prefix {"orderId":"line1\nline2"})");
}

TEST(ProtobufSchema, NestedMessageByIndexPathAndNonFirstTopLevelMessage) {
  auto s = shop();
  EXPECT_EQ(pb::message_indexes(*s, "shop.Customer.Address"), (std::vector<int>{1, 0}));
  EXPECT_EQ(pb::message_indexes(*s, ".shop.Refund"), (std::vector<int>{2}));
  EXPECT_EQ(pb::message_indexes(*s, "shop.Order.Line"), (std::vector<int>{0, 0}));
  EXPECT_EQ(pb::message_indexes(*s), (std::vector<int>{0}));

  const std::string address =
      "\x0a\x05Paris\x12\x03"
      "750";
  EXPECT_EQ(decode_ok(*s, {1, 0}, address), R"({"city":"Paris","zip":"750"})");
  const std::string refund = encode(*s, {2}, R"({"orderId":"o-1","amount":2.5})");
  EXPECT_EQ(decode_ok(*s, {2}, refund), R"({"orderId":"o-1","amount":2.5})");
  // An empty path means the first message, like the wire format's single 0.
  EXPECT_EQ(decode_ok(*s, {}, "\x0a\x01x"), R"({"id":"x"})");
}

TEST(ProtobufSchema, MessageIndexesRejectsUnknownOrForeignMessages) {
  auto s = shop();
  EXPECT_NE(schema_error([&] { pb::message_indexes(*s, "shop.Nope"); }).find("shop.Nope"), std::string::npos);
  EXPECT_NE(schema_error([&] { pb::message_indexes(*s, "common.Money"); }).find("common/money.proto"),
            std::string::npos);
  auto enums_only = pb::parse("syntax = \"proto3\"; enum E { A = 0; }");
  schema_error([&] { pb::message_indexes(*enums_only); });
  std::string out, err;
  EXPECT_FALSE(pb::decode_json(*enums_only, {}, bytes(""), {}, out, err));
}

TEST(ProtobufSchema, EnumsMapsRepeatedOneofAndBytes) {
  auto s = shop();
  // Enum by number, a map with two entries, packed repeated, the second oneof
  // member, bytes with every value.
  std::string payload;
  payload += "\x28\x01";                   // status = NEW
  payload += "\x3a\x05\x0a\x01k\x10\x07";  // counts {k: 7}
  payload += "\x3a\x05\x0a\x01j\x10\x08";  // counts {j: 8}
  payload += "\x62\x03\x01\x02\x03";       // nums packed [1,2,3]
  payload +=
      "\x42\x01"
      "c\x4a\x02"
      "DE";                                           // card then iban: the last oneof member wins
  payload += std::string("\x52\x03\x00\xff\x10", 5);  // blob
  EXPECT_EQ(decode_ok(*s, {0}, payload),
            R"({"status":"NEW","counts":{"k":7,"j":8},"iban":"DE","blob":"AP8Q","nums":[1,2,3]})");
}

TEST(ProtobufSchema, RepeatedMapKeyKeepsTheLastValueOnce) {
  auto s = shop();
  std::string payload;
  payload += "\x3a\x05\x0a\x01k\x10\x01";  // counts {k: 1}
  payload += "\x3a\x05\x0a\x01j\x10\x02";  // counts {j: 2}
  payload += "\x3a\x05\x0a\x01k\x10\x03";  // counts {k: 3}: replaces k: 1
  payload += std::string("\x3a\x00", 2);   // {"": 0}
  payload += "\x3a\x02\x10\x04";           // {"": 4}: replaces it
  EXPECT_EQ(decode_ok(*s, {0}, payload), R"({"counts":{"j":2,"k":3,"":4}})");

  // Inside maps of maps too (Struct is map<string, Value>).
  auto st = pb::parse(R"(syntax = "proto3"; import "google/protobuf/struct.proto";
    message M { map<string, google.protobuf.Struct> by = 1; })");
  const std::string inner = encode(*st, {0}, R"({"by":{"a":{"x":1}}})");
  const std::string dup = encode(*st, {0}, R"({"by":{"a":{"x":2}}})");
  EXPECT_EQ(decode_ok(*st, {0}, inner + dup), R"({"by":{"a":{"x":2}}})");
}

TEST(ProtobufSchema, JsonPrinterStopsAtSixtyFourLevels) {
  // protobuf's JSON printer has its own fixed limit of 64 nested messages,
  // below the default max_depth: deeper records parse but have no JSON form.
  auto s = shop();
  auto nested = [](int depth) {
    std::string p;
    for (int i = 0; i < depth; ++i) {
      std::string head = "\x0a";
      put_varint(head, p.size());
      p = head + p;
    }
    return p;
  };
  decode_ok(*s, {3}, nested(64));
  EXPECT_NE(decode_error(*s, {3}, nested(65)).find("too deep"), std::string::npos);
}

TEST(ProtobufSchema, UnknownEnumNumberRendersAsNumber) {
  auto s = shop();
  EXPECT_EQ(decode_ok(*s, {0}, "\x28\x63"), R"({"status":99})");
}

TEST(ProtobufSchema, UnknownFieldsAndMismatchedWireTypesAreDropped) {
  auto s = shop();
  // Field 99 (unknown) and field 1 (a string) sent as a varint: both are
  // unknown fields to protobuf and leave no trace in JSON.
  std::string payload = "\x98\x06\x01\x08\x01\x0a\x01y";
  EXPECT_EQ(decode_ok(*s, {0}, payload), R"({"id":"y"})");
}

TEST(ProtobufSchema, WellKnownTypesResolveWithoutReferences) {
  auto s = pb::parse(R"(syntax = "proto3";
    import "google/protobuf/timestamp.proto";
    import "google/protobuf/struct.proto";
    import "google/protobuf/wrappers.proto";
    import "google/protobuf/duration.proto";
    import "google/protobuf/any.proto";
    import "google/protobuf/empty.proto";
    message Event {
      google.protobuf.Timestamp at = 1;
      google.protobuf.Struct attrs = 2;
      google.protobuf.Int64Value count = 3;
      google.protobuf.Duration took = 4;
      google.protobuf.Any extra = 5;
      google.protobuf.Empty nothing = 6;
    })");
  const std::string json = R"({"at":"2024-05-06T07:08:09.123Z","attrs":{"k":[1,"v",null,true]},)"
                           R"("count":"5","took":"1.500s","extra":{"@type":"type.googleapis.com/Event","count":"1"}})";
  const std::string payload = encode(*s, {0}, json);
  EXPECT_EQ(decode_ok(*s, {0}, payload), json);

  google::protobuf::Timestamp ts;
  ts.set_seconds(1700000000);
  const std::string at = "\x0a" + std::string(1, static_cast<char>(ts.ByteSizeLong())) + ts.SerializeAsString();
  EXPECT_EQ(decode_ok(*s, {0}, at), R"({"at":"2023-11-14T22:13:20Z"})");
}

TEST(ProtobufSchema, Base64FileDescriptorProtoAsPythonRegistersIt) {
  // What confluent-kafka Python registers: base64(serialized_pb) for the
  // file and for each import, references named by import path.
  google::protobuf::FileDescriptorProto dep;
  dep.set_name("geo/point.proto");
  dep.set_package("geo");
  dep.set_syntax("proto3");
  auto* point = dep.add_message_type();
  point->set_name("Point");
  for (auto [name, number] : {std::pair{"x", 1}, std::pair{"y", 2}}) {
    auto* f = point->add_field();
    f->set_name(name);
    f->set_number(number);
    f->set_type(google::protobuf::FieldDescriptorProto::TYPE_SINT32);
    f->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);
  }

  google::protobuf::FileDescriptorProto main;
  main.set_name("place.proto");
  main.set_package("app");
  main.set_syntax("proto3");
  main.add_dependency("geo/point.proto");
  main.add_dependency("google/protobuf/timestamp.proto");
  auto* place = main.add_message_type();
  place->set_name("Place");
  auto* where = place->add_field();
  where->set_name("where_is");
  where->set_number(1);
  where->set_type(google::protobuf::FieldDescriptorProto::TYPE_MESSAGE);
  where->set_type_name(".geo.Point");
  where->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);
  auto* seen = place->add_field();
  seen->set_name("seen");
  seen->set_number(2);
  seen->set_type(google::protobuf::FieldDescriptorProto::TYPE_MESSAGE);
  seen->set_type_name(".google.protobuf.Timestamp");
  seen->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);

  auto s = pb::parse(base64(main.SerializeAsString()), {{"geo/point.proto", base64(dep.SerializeAsString())}});
  EXPECT_EQ(pb::message_indexes(*s, "app.Place"), (std::vector<int>{0}));
  // where_is {x: -1 (zigzag 1), y: 3 (zigzag 6)}
  EXPECT_EQ(decode_ok(*s, {0}, "\x0a\x04\x08\x01\x10\x06"), R"({"whereIs":{"x":-1,"y":3}})");

  // A base64 main file with a .proto text reference works too.
  auto mixed = pb::parse(
      base64(main.SerializeAsString()),
      {{"geo/point.proto", "syntax = \"proto3\"; package geo; message Point { sint32 x = 1; sint32 y = 2; }"}});
  EXPECT_EQ(decode_ok(*mixed, {0}, "\x0a\x02\x08\x01"), R"({"whereIs":{"x":-1}})");
}

TEST(ProtobufSchema, ConfluentMetaAndDecimalImportsResolveWithoutReferences) {
  auto s = pb::parse(R"(syntax = "proto3";
    package pay;
    import "confluent/meta.proto";
    import "confluent/type/decimal.proto";
    message Payment {
      option (confluent.message_meta).doc = "a payment";
      confluent.type.Decimal amount = 1 [(confluent.field_meta).params = { key: "precision" value: "8" }];
    })");
  EXPECT_EQ(decode_ok(*s, {0}, "\x0a\x04\x0a\x02\x01\x02"), R"({"amount":{"value":"AQI="}})");
}

TEST(ProtobufSchema, EncodeDecodeRoundTripIsByteStable) {
  auto s = shop();
  const std::string json = R"({"name":"Ada","address":{"city":"London"}})";
  const std::string payload = encode(*s, {1}, json);
  EXPECT_EQ(payload, std::string("\x0a\x03"
                                 "Ada\x12\x08\x0a\x06London"));
  EXPECT_EQ(decode_ok(*s, {1}, payload), json);
  // Fields come out in field-number order whatever the JSON order.
  EXPECT_EQ(encode(*s, {1}, R"({"address":{"city":"London"},"name":"Ada"})"), payload);
  std::string out = "keep";
  pb::encode_json(*s, {1}, R"({"name":"Ada"})", out);
  EXPECT_EQ(out,
            "keep\x0a\x03"
            "Ada");
}

TEST(ProtobufSchema, EncodeRejectsJsonThatDoesNotFit) {
  auto s = shop();
  for (std::string_view bad : {R"({"nmae":"Ada"})", R"({"name":5})", R"({"address":"x"})", "not json", R"({"name":)"}) {
    std::string out = "keep";
    try {
      pb::encode_json(*s, {1}, bad, out);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const kc::Error& e) {
      EXPECT_EQ(e.code(), kc::errc::encode_failed) << bad;
      EXPECT_NE(std::string(e.what()).find("shop.Customer"), std::string::npos) << e.what();
    }
    EXPECT_EQ(out, "keep");
  }
  std::string out;
  EXPECT_THROW(pb::encode_json(*s, {7}, "{}", out), kc::Error);
}

TEST(ProtobufSchema, Proto2RequiredFieldsAreChecked) {
  auto s = pb::parse("syntax = \"proto2\"; message R { required string id = 1; optional int32 n = 2; }");
  EXPECT_NE(decode_error(*s, {0}, "\x10\x01").find("id"), std::string::npos);
  EXPECT_EQ(decode_ok(*s, {0}, "\x0a\x01z"), R"({"id":"z"})");
  std::string out;
  EXPECT_THROW(pb::encode_json(*s, {0}, R"({"n":1})", out), kc::Error);
}

TEST(ProtobufSchemaErrors, InvalidProtoTextNamesLineAndColumn) {
  const std::string what = schema_error([] { pb::parse("syntax = \"proto3\";\nmessage M {\n  string id = ;\n}\n"); });
  EXPECT_NE(what.find("main schema"), std::string::npos) << what;
  EXPECT_NE(what.find("3:"), std::string::npos) << what;
  const std::string in_ref = schema_error([] {
    pb::parse("import \"a.proto\"; message M { optional A a = 1; }", {{"a.proto", "message A {"}});
  });
  EXPECT_NE(in_ref.find("\"a.proto\""), std::string::npos) << in_ref;
}

TEST(ProtobufSchemaErrors, UnknownImportIsNamed) {
  const std::string what = schema_error([] { pb::parse("syntax = \"proto3\"; import \"x/y.proto\"; message M {}"); });
  EXPECT_NE(what.find("x/y.proto"), std::string::npos) << what;
}

TEST(ProtobufSchemaErrors, UnresolvedTypeCycleAndDuplicateReference) {
  const std::string unresolved = schema_error([] { pb::parse("syntax = \"proto3\"; message M { Nope n = 1; }"); });
  EXPECT_NE(unresolved.find("Nope"), std::string::npos) << unresolved;
  schema_error([] {
    pb::parse("import \"a.proto\"; message M {}",
              {{"a.proto", "import \"b.proto\";"}, {"b.proto", "import \"a.proto\";"}});
  });
  schema_error([] { pb::parse("message M {}", {{"a.proto", ""}, {"a.proto", ""}}); });
}

TEST(ProtobufDecodeErrors, BadIndexPathIsADecodeError) {
  auto s = shop();
  for (const auto& path :
       {std::vector<int>{9}, std::vector<int>{1, 1}, std::vector<int>{-1}, std::vector<int>{0, 0, 0}}) {
    EXPECT_NE(decode_error(*s, path, "").find("index path"), std::string::npos);
  }
}

TEST(ProtobufDecodeErrors, TruncatedPayload) {
  auto s = shop();
  const std::string full = encode(*s, {1}, R"({"name":"Ada","address":{"city":"London"}})");
  for (std::size_t n = 1; n < full.size(); ++n) {
    if (n == 5) continue;  // "name" complete, address not started: a valid message
    decode_error(*s, {1}, full.substr(0, n));
  }
}

TEST(ProtobufDecodeErrors, GarbageWireTypesAndStrayTags) {
  auto s = shop();
  decode_error(*s, {0}, "\x0e\x01");                                          // wire type 6
  decode_error(*s, {0}, "\x0f");                                              // wire type 7
  decode_error(*s, {0}, std::string("\x0a\x01x\x00\x00", 5));                 // a zero tag ends parsing early
  decode_error(*s, {0}, "\x0a\x01x\x0c");                                     // end-group tag at top level
  decode_error(*s, {0}, "\x0b\x0a\x01x");                                     // start-group never closed
  decode_error(*s, {0}, "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");  // 11-byte varint
}

TEST(ProtobufDecodeErrors, LengthPrefixClaimingAGigabyte) {
  auto s = shop();
  std::string payload = "\x0a";
  put_varint(payload, 1u << 30);
  payload += "abc";
  decode_error(*s, {0}, payload);
  std::string packed = "\x62";  // nums, packed
  put_varint(packed, 1u << 30);
  packed += "\x01\x02";
  decode_error(*s, {0}, packed);
}

TEST(ProtobufDecodeErrors, TenThousandDeepMessageFailsWithoutCrashing) {
  auto s = shop();
  constexpr std::size_t kDepth = 10000;
  std::vector<std::size_t> size(kDepth + 1, 0);  // size[k]: bytes of the message k levels above the innermost
  for (std::size_t k = 1; k <= kDepth; ++k) size[k] = 1 + varint_size(size[k - 1]) + size[k - 1];
  std::string payload;
  for (std::size_t k = kDepth; k >= 1; --k) {
    payload += '\x0a';
    put_varint(payload, size[k - 1]);
  }
  ASSERT_EQ(payload.size(), size[kDepth]);
  decode_error(*s, {3}, payload);

  // Unknown groups nest too: 10,000 start-group tags of an unknown field.
  decode_error(*s, {3}, std::string(kDepth, '\x7b'));
}

TEST(ProtobufDecodeErrors, DepthLimitIsConfigurable) {
  auto s = shop();
  auto nested = [](int depth) {
    std::string p;
    for (int i = 0; i < depth; ++i) p = "\x0a" + std::string(1, static_cast<char>(p.size())) + p;
    return p;
  };
  kc::DecodeLimits limits;
  limits.max_depth = 5;
  EXPECT_EQ(decode_ok(*s, {3}, nested(4), limits), R"({"child":{"child":{"child":{"child":{}}}}})");
  decode_error(*s, {3}, nested(8), limits);
}

TEST(ProtobufDecodeErrors, PayloadOverMaxBytes) {
  auto s = shop();
  kc::DecodeLimits limits;
  limits.max_bytes = 8;
  const std::string err = decode_error(*s, {2},
                                       "\x0a\x08"
                                       "12345678",
                                       limits);
  EXPECT_NE(err.find("exceeds"), std::string::npos) << err;
  EXPECT_EQ(decode_ok(*s, {2},
                      "\x0a\x06"
                      "123456",
                      limits),
            R"({"orderId":"123456"})");
}

TEST(ProtobufDecodeErrors, InvalidUtf8InProto3StringFailsCleanly) {
  auto s = shop();
  decode_error(*s, {2}, "\x0a\x02\xc3\x28");
  decode_error(*s, {2}, "\x0a\x01\xff");
}

TEST(ProtobufSchema, Proto2StringWithInvalidUtf8StillYieldsValidJson) {
  // proto2 does not validate strings on parse; whatever the JSON printer
  // does with the bytes, the line must be valid UTF-8 JSON or an error.
  auto s = pb::parse("syntax = \"proto2\"; message M { optional string s = 1; }");
  std::string out;
  std::string err;
  const std::string payload =
      "\x0a\x03"
      "a\xff"
      "b";
  if (pb::decode_json(*s, {0}, bytes(payload), {}, out, err)) {
    EXPECT_TRUE(kc::is_valid_utf8(bytes(out))) << out;
  } else {
    EXPECT_TRUE(out.empty());
  }
}

TEST(ProtobufSchema, OneSchemaDecodesFromManyThreads) {
  auto s = shop();
  const std::string json = R"({"id":"t","price":{"units":"1","currency":"USD"},"createdAt":"2024-01-02T03:04:05Z"})";
  const std::string payload = encode(*s, {0}, json);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (std::size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        std::string out;
        std::string err;
        if (!pb::decode_json(*s, {0}, bytes(payload), {}, out, err) || out != json) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}
