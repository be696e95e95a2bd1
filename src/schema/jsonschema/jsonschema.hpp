// JSON Schema: validation of JSON documents against a registered schema
// (valijson; drafts 4, 6 and 7).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kc/decode.hpp"

namespace kc::schema::detail::jsonschema {

struct NamedSchema {
  std::string name;  ///< the URI other schemas use in "$ref"
  std::string text;
};

/// A parsed schema. Immutable; shared between threads (validate() is const
/// and keeps no state).
class Schema;

/// Parses `text`; `references` are the schemas it reaches by "$ref" to their
/// names (see README: drafts, reference matching, limits). CPU only; any
/// thread. Throws kc::Error(errc::schema_invalid).
std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<NamedSchema>& references = {});

/// True when `json` (already known to be well-formed, depth-bounded JSON)
/// satisfies the schema; otherwise false with the first few violations in
/// `error` (one line, JSON pointers). Any input is handled (not JSON, too
/// deep: a failure). Strings over 4096 bytes checked by "pattern" (and keys,
/// when the schema has "patternProperties") fail: std::regex would overflow
/// the stack. CPU only; any thread, concurrently on one Schema. Never throws
/// but std::bad_alloc.
bool validate(const Schema& schema, std::string_view json, std::string& error);

}  // namespace kc::schema::detail::jsonschema
