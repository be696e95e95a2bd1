// Private to the Avro module: the compiled schema (a flat node array), the
// compiled resolution, and the calendar arithmetic shared by the decoder and
// the encoder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/avro/avro.hpp"

namespace kc::schema::detail::avro {

enum class Kind : std::uint8_t {
  null_, boolean, int_, long_, float_, double_, bytes, string, record, enum_, array, map, union_, fixed
};

enum class Logical : std::uint8_t {
  none, decimal, date, time_millis, time_micros, timestamp_millis, timestamp_micros,
  local_timestamp_millis, local_timestamp_micros, uuid
};

inline constexpr std::uint32_t kNone = 0xffffffffu;

struct Field {
  std::string name;
  std::string key_json;  ///< ",\"name\":" (the comma is skipped for the first field)
  std::uint32_t type = 0;
  std::vector<std::string> aliases;
  std::string default_json;   ///< the default as written (minified); empty: none
  bool has_default = false;   ///< default_json encodes under `type`
  std::string default_bin;    ///< its Avro binary encoding
  std::string default_error;  ///< why default_json does not encode
};

struct Node {
  Kind kind = Kind::null_;
  Logical logical = Logical::none;
  std::int32_t precision = 0;  ///< decimal
  std::int32_t scale = 0;      ///< decimal
  std::uint32_t size = 0;      ///< fixed
  std::uint32_t items = kNone; ///< array items, map values
  std::uint32_t min_size = 0;  ///< lower bound of the bytes one datum takes
  std::string name;            ///< full name (record, enum, fixed)
  std::vector<std::string> aliases;  ///< unqualified
  std::vector<Field> fields;
  std::vector<std::uint32_t> branches;
  std::vector<std::string> symbols;
  std::vector<std::string> symbols_json;  ///< "\"SYMBOL\""
  std::int32_t enum_default = -1;
};

class Schema {
 public:
  std::vector<Node> nodes;
  std::uint32_t root = 0;
};

/// A step of a resolved record: one writer field, read into reader field
/// `reader_field` through `rnode`, or skipped (rnode == kNone).
struct RStep {
  std::uint32_t rnode = kNone;
  std::uint32_t writer_type = 0;
  std::uint32_t writer_field = 0;
  std::uint32_t reader_field = 0;
};

struct RNode {
  enum class Op : std::uint8_t { scalar, record, enum_map, array, map, writer_union };
  Op op = Op::scalar;
  std::uint32_t writer = 0;     ///< writer node
  std::uint32_t reader = 0;     ///< reader node
  std::uint32_t child = kNone;  ///< array items / map values
  std::vector<RStep> steps;     ///< record: writer fields in writer order
  std::vector<std::uint32_t> defaults;  ///< record: reader fields from their default, emitted after the steps
  bool reorder = false;               ///< record: emission order differs from the reader's order
  std::vector<std::uint32_t> inv;     ///< record: reader field -> emission index
  std::vector<std::int32_t> enum_map; ///< writer symbol -> reader symbol (-1: none)
  std::vector<std::uint32_t> branches;  ///< writer union: rnode per writer branch (kNone: no match)
};

class Resolution {
 public:
  std::shared_ptr<const Schema> writer;
  std::shared_ptr<const Schema> reader;
  std::vector<RNode> nodes;
  std::uint32_t root = 0;
};

/// Encodes a field default (Avro's default-value JSON: bytes and fixed as
/// code points 0-255) of node `type`. Throws kc::Error(encode_failed).
std::string encode_default(const Schema& s, std::uint32_t type, std::string_view json);

/// The Avro type name of a node ("int", "array", the full name, ...).
std::string_view type_name(const Node& n) noexcept;

// Calendar arithmetic (proleptic Gregorian), written here because <chrono>'s
// year_month_day is not constexpr-friendly on every library we build with
// and these are two small, well-known formulas.
inline constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/// Days since 1970-01-01 of y-m-d.
inline constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = floor_div(y, 400);
  const auto yoe = static_cast<unsigned>(y - era * 400);                    // [0, 399]
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;     // [0, 365]
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;               // [0, 146096]
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

/// y-m-d of days since 1970-01-01.
inline constexpr Civil civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = floor_div(z, 146097);
  const auto doe = static_cast<unsigned>(z - era * 146097);                      // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;    // [0, 399]
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                  // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                                       // [0, 11]
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;                               // [1, 31]
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;                                  // [1, 12]
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

}  // namespace kc::schema::detail::avro
