#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "schema/jsonschema/jsonschema.hpp"

namespace {

namespace js = kc::schema::detail::jsonschema;

constexpr const char* kOrderSchema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Order",
  "type": "object",
  "properties": {
    "id": {"type": "string", "pattern": "^ord-[0-9]+$"},
    "status": {"enum": ["new", "paid", "shipped"]},
    "qty": {"type": "integer", "minimum": 1},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}},
              "required": ["sku"]}}
  },
  "required": ["id", "status", "qty"],
  "additionalProperties": false
})";

std::shared_ptr<const js::Schema> order_schema() {
  return js::parse(kOrderSchema);
}

kc::errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kc::Error& e) {
    return static_cast<kc::errc>(e.code().value());
  }
  return kc::errc{};
}

TEST(JsonSchemaValidator, AcceptsAValidOrder) {
  const auto s = order_schema();
  std::string error = "untouched";
  EXPECT_TRUE(js::validate(*s, R"({"id":"ord-1","status":"new","qty":2,"lines":[{"sku":"a"}]})", error));
}

struct BadOrder {
  const char* name;
  const char* json;
  const char* expect;  // a part of the error text
};

class JsonSchemaValidatorRejects : public ::testing::TestWithParam<BadOrder> {};

TEST_P(JsonSchemaValidatorRejects, NamesTheViolation) {
  const auto s = order_schema();
  std::string error;
  EXPECT_FALSE(js::validate(*s, GetParam().json, error));
  EXPECT_NE(error.find(GetParam().expect), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    Orders, JsonSchemaValidatorRejects,
    ::testing::Values(
        BadOrder{"RequiredMissing", R"({"id":"ord-1","status":"new"})", "(root): Missing required property 'qty'"},
        BadOrder{"WrongType", R"({"id":"ord-1","status":"new","qty":"2"})", "/qty: Value type not permitted"},
        BadOrder{"NotInEnum", R"({"id":"ord-1","status":"lost","qty":2})",
                 "/status: Failed to match against any enum values"},
        BadOrder{"BelowMinimum", R"({"id":"ord-1","status":"new","qty":0})",
                 "/qty: Expected number greater than or equal to 1"},
        BadOrder{"PatternMismatch", R"({"id":"order-1","status":"new","qty":1})", "/id: Failed to match regex"},
        BadOrder{"AdditionalProperty", R"({"id":"ord-1","status":"new","qty":1,"x":1})",
                 "property that could not be validated"},
        BadOrder{"NestedItem", R"({"id":"ord-1","status":"new","qty":1,"lines":[{"sku":"a"},{}]})",
                 "/lines/1: Missing required property 'sku'"},
        BadOrder{"NotJson", R"({"id":)", "(root): not JSON"},
        BadOrder{"NotAnObject", R"([1,2])", "(root): Value type not permitted"}),
    [](const ::testing::TestParamInfo<BadOrder>& p) { return std::string(p.param.name); });

TEST(JsonSchemaValidator, ReportsAtMostThreeViolationsOnOneLine) {
  const auto s = order_schema();
  std::string error;
  ASSERT_FALSE(js::validate(*s, R"({"id":"x","status":"lost","qty":0,"a":1,"b":2})", error));
  // Three leaf violations, separated by "; ", no summaries of the parents.
  EXPECT_EQ(std::count(error.begin(), error.end(), ';'), 2) << error;
  EXPECT_EQ(error.find("Failed to validate against schema associated"), std::string::npos) << error;
}

TEST(JsonSchemaValidator, KeepsHostilePropertyNamesOnOneLine) {
  const auto s = js::parse(R"({"additionalProperties": {"type": "string"}})");
  std::string error;
  ASSERT_FALSE(js::validate(*s, "{\"a/b~\\n\": 1}", error));
  EXPECT_NE(error.find("/a~1b~0\\u000a:"), std::string::npos) << error;
}

TEST(JsonSchemaValidator, ResolvesReferencesByName) {
  const std::vector<js::NamedSchema> refs = {
      {"customer.json", R"({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]})"},
      {"https://example.com/schemas/money.json",
       R"({"type":"object","properties":{"cents":{"type":"integer"}},"required":["cents"]})"},
  };
  const auto s = js::parse(R"({
    "$id": "https://example.com/schemas/order.json",
    "type": "object",
    "properties": {
      "customer": {"$ref": "customer.json"},
      "total": {"$ref": "money.json"}
    }
  })",
                           refs);
  std::string error;
  EXPECT_TRUE(js::validate(*s, R"({"customer":{"name":"x"},"total":{"cents":1}})", error)) << error;
  EXPECT_FALSE(js::validate(*s, R"({"customer":{},"total":{"cents":1}})", error));
  EXPECT_NE(error.find("/customer: Missing required property 'name'"), std::string::npos) << error;
  EXPECT_FALSE(js::validate(*s, R"({"customer":{"name":"x"},"total":{}})", error));
  EXPECT_NE(error.find("/total: Missing required property 'cents'"), std::string::npos) << error;
}

TEST(JsonSchemaValidator, TwoReferencesFromASchemaWithoutIdStayApart) {
  const std::vector<js::NamedSchema> refs = {
      {"a.json", R"({"type":"string"})"},
      {"b.json", R"({"type":"integer"})"},
  };
  const auto s = js::parse(R"({"properties":{"a":{"$ref":"a.json"},"b":{"$ref":"b.json#"}}})", refs);
  std::string error;
  EXPECT_TRUE(js::validate(*s, R"({"a":"x","b":1})", error)) << error;
  EXPECT_FALSE(js::validate(*s, R"({"a":"x","b":"y"})", error));
  EXPECT_FALSE(js::validate(*s, R"({"a":1,"b":1})", error));
}

TEST(JsonSchemaValidator, UnknownReferenceIsAnInvalidSchema) {
  try {
    js::parse(R"({"properties":{"c":{"$ref":"customer.json"}}})", {{"other.json", "{}"}});
    FAIL() << "no exception";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::schema_invalid);
    EXPECT_NE(std::string(e.what()).find("customer.json"), std::string::npos) << e.what();
  }
}

TEST(JsonSchemaValidator, InvalidSchemaTextIsAnInvalidSchema) {
  try {
    js::parse(R"({"type": "object",)");
    FAIL() << "no exception";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::schema_invalid);
    EXPECT_NE(std::string(e.what()).find("column"), std::string::npos) << e.what();
  }
  EXPECT_EQ(code_of([] { js::parse(R"({"minimum": "one"})"); }), kc::errc::schema_invalid);
  EXPECT_EQ(code_of([] { js::parse(R"({"pattern": "("})"); }), kc::errc::schema_invalid);
  EXPECT_EQ(code_of([] { js::parse(R"({"patternProperties": {"[": {}}})"); }), kc::errc::schema_invalid);
  EXPECT_EQ(code_of([] { js::parse(R"({"$schema": "http://json-schema.org/draft-03/schema#"})"); }),
            kc::errc::schema_invalid);
  EXPECT_EQ(code_of([] { js::parse(std::string(100000, '[')); }), kc::errc::schema_invalid);
  EXPECT_EQ(code_of([] {
              js::parse(R"({"properties":{"a":{"$ref":"referenced.json"}}})", {{"referenced.json", "{"}});
            }),
            kc::errc::schema_invalid);
}

TEST(JsonSchemaValidator, PicksTheDraftFromDollarSchema) {
  // Draft 4: exclusiveMaximum is a boolean next to maximum; draft 6/7: a number.
  const auto d4 =
      js::parse(R"({"$schema":"http://json-schema.org/draft-04/schema#","maximum":3,"exclusiveMaximum":true})");
  const auto d7 = js::parse(R"({"$schema":"http://json-schema.org/draft-07/schema#","exclusiveMaximum":3})");
  std::string error;
  EXPECT_FALSE(js::validate(*d4, "3", error));
  EXPECT_TRUE(js::validate(*d4, "2", error)) << error;
  EXPECT_FALSE(js::validate(*d7, "3", error));
  EXPECT_EQ(code_of([] { js::parse(R"({"$schema":"http://json-schema.org/draft-04/schema#","exclusiveMaximum":3})"); }),
            kc::errc::schema_invalid);
}

TEST(JsonSchemaValidator, AssertsDateTimeFormatsOnly) {
  // valijson 1.0 checks "date", "time" and "date-time"; other formats pass.
  const auto s = js::parse(R"({"properties":{"at":{"format":"date-time"},"mail":{"format":"email"}}})");
  std::string error;
  EXPECT_TRUE(js::validate(*s, R"({"at":"2024-05-01T10:00:00Z","mail":"not an address"})", error)) << error;
  EXPECT_FALSE(js::validate(*s, R"({"at":"yesterday"})", error));
  EXPECT_NE(error.find("/at: String should be a valid date-time"), std::string::npos) << error;
}

TEST(JsonSchemaValidator, NeverThrowsOnHostileDocuments) {
  const auto s = order_schema();
  std::string error;
  EXPECT_FALSE(js::validate(*s, std::string(100000, '['), error));
  EXPECT_NE(error.find("deeper"), std::string::npos) << error;
  EXPECT_FALSE(js::validate(*s, "", error));
  EXPECT_FALSE(js::validate(*s, std::string("\xff\xfe", 2), error));
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

TEST(JsonSchemaValidator, BoundsStringsBeforeRegexMatching) {
  // libstdc++'s std::regex recurses per character: unbounded, a long string
  // would overflow the stack (about 30,000 characters on 8 MiB).
  std::string error;
  const auto pattern = js::parse(R"({"pattern": "^[a-z]+$"})");
  EXPECT_TRUE(js::validate(*pattern, "\"" + std::string(4000, 'a') + "\"", error)) << error;
  EXPECT_FALSE(js::validate(*pattern, "\"" + std::string(200000, 'a') + "\"", error));
  EXPECT_NE(error.find("longer than kc matches against 'pattern'"), std::string::npos) << error;

  const auto date = js::parse(R"({"format": "date-time"})");
  EXPECT_FALSE(js::validate(*date, "\"" + std::string(200000, '1') + "-01-01T00:00:00Z\"", error));
  EXPECT_NE(error.find("valid date-time"), std::string::npos) << error;
  EXPECT_TRUE(js::validate(*date, "12", error)) << error;  // not a string: format does not apply

  const auto keys = js::parse(R"({"patternProperties": {"^x-.*": {"type": "string"}}})");
  EXPECT_TRUE(js::validate(*keys, R"({"x-a": "s", "y": 1})", error)) << error;
  EXPECT_FALSE(js::validate(*keys, "{\"a\":[{\"x-" + std::string(200000, 'k') + "\": \"s\"}]}", error));
  EXPECT_NE(error.find("/a/0/x-kkk"), std::string::npos) << error.substr(0, 300);
  EXPECT_NE(error.find("longer than kc matches against 'patternProperties'"), std::string::npos);
}

TEST(JsonSchemaValidator, OneSchemaValidatesFromFourThreads) {
  const auto s = order_schema();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, &wrong, t] {
      std::string error;
      for (int i = 0; i < 500; ++i) {
        const bool good = (i + t) % 2 == 0;
        const std::string doc = good ? R"({"id":"ord-)" + std::to_string(i) + R"(","status":"paid","qty":1})"
                                     : R"({"id":"bad","status":"paid","qty":1})";
        if (js::validate(*s, doc, error) != good) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
