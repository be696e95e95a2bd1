// Comparing JSON documents in tests, and base64 for expected values. Own
// code over simdjson, independent of kc's.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

namespace kc::test {

/// JSON values equal: objects regardless of member order, numbers by value
/// (with a relative tolerance of 1e-6 when either is a floating-point
/// number, for float32 fields), strings exactly. On a difference, `why` names
/// its path (starting at `path`) and both sides.
bool same_json(simdjson::dom::element a, simdjson::dom::element b, const std::string& path, std::string& why);

/// The same for two JSON texts; a text that does not parse is never equal.
bool json_equal(const std::string& a, const std::string& b, std::string* why = nullptr);

/// Standard base64 with padding.
std::string base64(std::string_view in);

}  // namespace kc::test
