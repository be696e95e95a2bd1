// Validates arbitrary bytes (JSON or not, any depth) against a fixed schema
// that uses most keywords: validate() must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "schema/jsonschema/jsonschema.hpp"

namespace js = kc::schema::detail::jsonschema;

namespace {

constexpr const char* kSchema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "$id": "https://example.com/order.json",
  "definitions": {
    "line": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 32},
             "qty": {"type": "integer", "minimum": 1, "multipleOf": 1}}, "required": ["sku"]},
    "tree": {"type": ["object", "null"], "properties": {"child": {"$ref": "#/definitions/tree"}}}
  },
  "type": "object",
  "properties": {
    "id": {"type": "string", "pattern": "^ord-[0-9]{1,12}$"},
    "status": {"enum": ["new", "paid", "shipped", null, 1.5, {"a": [1]}]},
    "at": {"type": "string", "format": "date-time"},
    "day": {"format": "date"},
    "total": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
    "lines": {"type": "array", "items": {"$ref": "#/definitions/line"}, "minItems": 1, "uniqueItems": true,
              "contains": {"required": ["qty"]}},
    "tags": {"type": "array", "items": [{"const": "first"}], "additionalItems": {"type": "string"}},
    "customer": {"$ref": "customer.json"},
    "tree": {"$ref": "#/definitions/tree"},
    "choice": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 2}], "not": {"const": 7}},
    "cond": {"if": {"type": "integer"}, "then": {"maximum": 10}, "else": {"type": "string"}}
  },
  "patternProperties": {"^x-": {"type": "string"}},
  "propertyNames": {"maxLength": 64},
  "dependencies": {"total": ["lines"], "day": {"required": ["at"]}},
  "required": ["id", "status"],
  "additionalProperties": false,
  "maxProperties": 20
})";

constexpr const char* kCustomer = R"({"type": "object", "properties": {"name": {"type": "string"}},
  "required": ["name"], "anyOf": [{"required": ["email"]}, {"required": ["phone"]}]})";

const js::Schema& schema() {
  static const auto s = js::parse(kSchema, {{"customer.json", kCustomer}});
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string error;
  const bool ok = js::validate(schema(), std::string_view(reinterpret_cast<const char*>(data), size), error);
  if (!ok && error.empty()) __builtin_trap();                   // a failure always says why
  if (error.find('\n') != std::string::npos) __builtin_trap();  // and on one line
  return 0;
}
