// Avro binary encoding from JSON (the rendering decode_json produces, plus
// Avro's JSON union encoding {"type": value}), over simdjson's DOM. Not on a
// hot path: clarity and precise error paths over speed.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kc/error.hpp"
#include "schema/avro/internal.hpp"
#include "text/text.hpp"

namespace kc::schema::detail::avro {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr std::size_t kMaxDecimalDigits = 1000;
constexpr int kMaxDepth = 256;

void write_long(std::string& out, std::int64_t v) {
  std::uint64_t u = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
  char buf[10];
  std::size_t n = 0;
  while (u >= 0x80) {
    buf[n++] = static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  buf[n++] = static_cast<char>(u);
  out.append(buf, n);
}

// Standard base64; the padding may be omitted.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return false;
  }
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const int v = kc::detail::base64_digit(c);
    if (v < 0) {
      return false;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

// Avro default values for bytes/fixed: code points 0-255, one byte each.
bool latin1_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && i + 1 < in.size()) {
      out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<unsigned char>(in[++i]) & 0x3f));
    } else {
      return false;
    }
  }
  return true;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, unsigned& v) {
  if (at + n > s.size()) {
    return false;
  }
  v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

bool parse_date(std::string_view s, std::int64_t& days) {
  unsigned y = 0;
  unsigned m = 0;
  unsigned d = 0;
  if (s.size() != 10 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, m) || s[7] != '-' ||
      !digits(s, 8, 2, d) || m < 1 || m > 12 || d < 1) {
    return false;
  }
  constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[m - 1] + (m == 2 && leap ? 1 : 0)) {
    return false;
  }
  days = days_from_civil(y, m, d);
  return true;
}

// "HH:MM:SS[.f...]" in units of 1/per_second.
bool parse_time(std::string_view s, std::int64_t per_second, std::int64_t& v) {
  unsigned h = 0;
  unsigned mi = 0;
  unsigned se = 0;
  if (s.size() < 8 || !digits(s, 0, 2, h) || s[2] != ':' || !digits(s, 3, 2, mi) || s[5] != ':' ||
      !digits(s, 6, 2, se) || h > 23 || mi > 59 || se > 59) {
    return false;
  }
  std::int64_t frac = 0;
  if (s.size() > 8) {
    if (s[8] != '.' || s.size() == 9) {
      return false;
    }
    std::int64_t scale = per_second;
    for (std::size_t i = 9; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') {
        return false;
      }
      scale /= 10;
      if (scale == 0) {
        if (s[i] != '0') {
          return false;  // finer than the type's unit
        }
        continue;
      }
      frac += (s[i] - '0') * scale;
    }
  }
  v = (static_cast<std::int64_t>(h) * 3600 + mi * 60 + se) * per_second + frac;
  return true;
}

bool parse_logical(Logical l, std::string_view s, std::int64_t& v) {
  switch (l) {
    case Logical::date: return parse_date(s, v);
    case Logical::time_millis: return parse_time(s, 1000, v);
    case Logical::time_micros: return parse_time(s, 1000000, v);
    case Logical::timestamp_millis:
    case Logical::timestamp_micros:
    case Logical::local_timestamp_millis:
    case Logical::local_timestamp_micros: {
      const bool millis = l == Logical::timestamp_millis || l == Logical::local_timestamp_millis;
      if (!s.empty() && s.back() == 'Z') {
        s.remove_suffix(1);
      }
      std::int64_t days = 0;
      std::int64_t t = 0;
      if (s.size() < 11 || (s[10] != 'T' && s[10] != ' ') || !parse_date(s.substr(0, 10), days) ||
          !parse_time(s.substr(11), millis ? 1000 : 1000000, t)) {
        return false;
      }
      v = days * (millis ? 86400000LL : 86400000000LL) + t;
      return true;
    }
    default: return false;
  }
}

// Two's-complement big-endian bytes of a decimal text at `scale`.
bool decimal_bytes(std::string_view s, std::int32_t scale, std::string& out, std::string& why) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  const auto dot = s.find('.');
  std::string_view ip = s.substr(0, dot);
  std::string_view fp = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (ip.empty() && fp.empty()) {
    why = "not a decimal number";
    return false;
  }
  const auto all_digits = [](std::string_view x) {
    return std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!all_digits(ip) || !all_digits(fp)) {
    why = "not a decimal number";
    return false;
  }
  const auto sc = static_cast<std::size_t>(scale);
  if (fp.size() > sc) {
    if (!std::all_of(fp.begin() + static_cast<std::ptrdiff_t>(sc), fp.end(), [](char c) { return c == '0'; })) {
      why = "has more than " + std::to_string(scale) + " digits after the point";
      return false;
    }
    fp = fp.substr(0, sc);
  }
  std::string d(ip);
  d += fp;
  d.append(sc - fp.size(), '0');
  const auto nz = d.find_first_not_of('0');
  d = nz == std::string::npos ? std::string() : d.substr(nz);
  if (d.size() > kMaxDecimalDigits) {
    why = "more than " + std::to_string(kMaxDecimalDigits) + " digits";
    return false;
  }
  // Magnitude, little-endian bytes.
  std::vector<std::uint8_t> mag;
  for (const char c : d) {
    unsigned carry = static_cast<unsigned>(c - '0');
    for (auto& b : mag) {
      const unsigned x = b * 10u + carry;
      b = static_cast<std::uint8_t>(x);
      carry = x >> 8;
    }
    while (carry != 0) {
      mag.push_back(static_cast<std::uint8_t>(carry));
      carry >>= 8;
    }
  }
  mag.push_back(0);  // room for the sign bit
  if (negative) {
    unsigned carry = 1;
    for (auto& b : mag) {
      const unsigned x = static_cast<std::uint8_t>(~b) + carry;
      b = static_cast<std::uint8_t>(x);
      carry = x >> 8;
    }
  }
  // Minimal length: drop redundant sign bytes from the top.
  while (mag.size() > 1 && ((mag.back() == 0x00 && (mag[mag.size() - 2] & 0x80) == 0) ||
                            (mag.back() == 0xff && (mag[mag.size() - 2] & 0x80) != 0))) {
    mag.pop_back();
  }
  out.assign(mag.rbegin(), mag.rend());
  return true;
}

class Encoder {
 public:
  Encoder(const Schema& s, std::string& out, bool defaults) : s_(s), out_(out), defaults_(defaults) {}

  void node(std::uint32_t idx, element e) {
    if (++depth_ > kMaxDepth) {
      fail("nested deeper than " + std::to_string(kMaxDepth));
    }
    const Node& n = s_.nodes[idx];
    switch (n.kind) {
      case Kind::null_:
        if (!e.is_null()) {
          mismatch(n, e);
        }
        break;
      case Kind::boolean: {
        bool b = false;
        if (e.get_bool().get(b) != simdjson::SUCCESS) {
          mismatch(n, e);
        }
        out_ += static_cast<char>(b ? 1 : 0);
        break;
      }
      case Kind::int_:
      case Kind::long_: write_long(out_, integer(n, e)); break;
      case Kind::float_: {
        const double d = real(n, e);
        // Doubles up to FLT_MAX plus half a float ulp there (2^103) round to
        // FLT_MAX: the decoder's shortest rendering of FLT_MAX
        // ("3.4028235e+38") reads back as one of them.
        constexpr double kFloatLimit = static_cast<double>(std::numeric_limits<float>::max()) + 0x1p103;
        if (std::isfinite(d) && std::fabs(d) >= kFloatLimit) {
          fail(describe(e) + " is out of the float range");
        }
        const auto f = static_cast<float>(d);
        char buf[4];
        std::memcpy(buf, &f, 4);
        out_.append(buf, 4);
        break;
      }
      case Kind::double_: {
        const double d = real(n, e);
        char buf[8];
        std::memcpy(buf, &d, 8);
        out_.append(buf, 8);
        break;
      }
      case Kind::string: {
        std::string_view sv;
        if (e.get_string().get(sv) != simdjson::SUCCESS) {
          mismatch(n, e);
        }
        write_long(out_, static_cast<std::int64_t>(sv.size()));
        out_.append(sv);
        break;
      }
      case Kind::bytes: {
        const std::string b = bytes(n, e);
        write_long(out_, static_cast<std::int64_t>(b.size()));
        out_.append(b);
        break;
      }
      case Kind::fixed: {
        const std::string b = bytes(n, e);
        if (b.size() != n.size) {
          fail(n.name + " needs " + std::to_string(n.size) + " bytes, got " + std::to_string(b.size()));
        }
        out_.append(b);
        break;
      }
      case Kind::enum_: {
        std::string_view sv;
        if (e.get_string().get(sv) != simdjson::SUCCESS) {
          mismatch(n, e);
        }
        const auto it = std::find(n.symbols.begin(), n.symbols.end(), sv);
        if (it == n.symbols.end()) {
          fail("\"" + std::string(sv) + "\" is not a symbol of " + n.name);
        }
        write_long(out_, it - n.symbols.begin());
        break;
      }
      case Kind::record: record(n, e); break;
      case Kind::array: {
        simdjson::dom::array arr;
        if (e.get_array().get(arr) != simdjson::SUCCESS) {
          mismatch(n, e);
        }
        if (arr.size() > 0) {
          write_long(out_, static_cast<std::int64_t>(arr.size()));
          std::size_t i = 0;
          for (element x : arr) {
            path_.push_back("[" + std::to_string(i++) + "]");
            node(n.items, x);
            path_.pop_back();
          }
        }
        write_long(out_, 0);
        break;
      }
      case Kind::map: {
        simdjson::dom::object obj;
        if (e.get_object().get(obj) != simdjson::SUCCESS) {
          mismatch(n, e);
        }
        if (obj.size() > 0) {
          write_long(out_, static_cast<std::int64_t>(obj.size()));
          for (auto [k, v] : obj) {
            write_long(out_, static_cast<std::int64_t>(k.size()));
            out_.append(k);
            path_.push_back("[\"" + std::string(k) + "\"]");
            node(n.items, v);
            path_.pop_back();
          }
        }
        write_long(out_, 0);
        break;
      }
      case Kind::union_: union_(n, e); break;
    }
    --depth_;
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string p;
    for (const auto& c : path_) {
      p += c;
    }
    throw Error(errc::encode_failed, "Avro encode" + (p.empty() ? std::string() : " at " + p) + ": " + what);
  }

 private:
  static std::string describe(element e) {
    std::string s = simdjson::to_string(e);
    if (s.size() > 40) {
      s.resize(37);
      s += "...";
    }
    return s;
  }

  [[noreturn]] void mismatch(const Node& n, element e) const {
    fail("expected " + std::string(type_name(n)) + ", got " + describe(e));
  }

  std::int64_t integer(const Node& n, element e) const {
    std::int64_t v = 0;
    std::string_view sv;
    if (e.get_int64().get(v) == simdjson::SUCCESS) {
      // as is
    } else if (n.logical != Logical::none && e.get_string().get(sv) == simdjson::SUCCESS) {
      if (!parse_logical(n.logical, sv, v)) {
        fail("\"" + std::string(sv) + "\" is not a valid " + logical_name(n.logical));
      }
    } else {
      mismatch(n, e);
    }
    if (n.kind == Kind::int_ && (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())) {
      fail(std::to_string(v) + " is out of the int range");
    }
    return v;
  }

  static const char* logical_name(Logical l) {
    switch (l) {
      case Logical::date: return "date (YYYY-MM-DD)";
      case Logical::time_millis: return "time-millis (HH:MM:SS.mmm)";
      case Logical::time_micros: return "time-micros (HH:MM:SS.uuuuuu)";
      case Logical::timestamp_millis: return "timestamp-millis (YYYY-MM-DDTHH:MM:SS.mmmZ)";
      case Logical::timestamp_micros: return "timestamp-micros (YYYY-MM-DDTHH:MM:SS.uuuuuuZ)";
      case Logical::local_timestamp_millis: return "local-timestamp-millis (YYYY-MM-DDTHH:MM:SS.mmm)";
      case Logical::local_timestamp_micros: return "local-timestamp-micros (YYYY-MM-DDTHH:MM:SS.uuuuuu)";
      default: return "value";
    }
  }

  double real(const Node& n, element e) const {
    double d = 0;
    std::string_view sv;
    if (e.get_double().get(d) == simdjson::SUCCESS) {
      return d;
    }
    if (e.get_string().get(sv) == simdjson::SUCCESS) {
      if (sv == "NaN") return std::numeric_limits<double>::quiet_NaN();
      if (sv == "Infinity") return std::numeric_limits<double>::infinity();
      if (sv == "-Infinity") return -std::numeric_limits<double>::infinity();
    }
    mismatch(n, e);
    return d;
  }

  std::string bytes(const Node& n, element e) const {
    std::string out;
    std::string_view sv;
    if (n.logical == Logical::decimal && !defaults_) {
      std::string text;
      std::int64_t i = 0;
      if (e.get_int64().get(i) == simdjson::SUCCESS) {
        text = std::to_string(i);
      } else if (double d = 0; e.get_double().get(d) == simdjson::SUCCESS) {
        char buf[400];
        const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
        if (r.ec != std::errc()) {
          fail(describe(e) + " is not a decimal number");
        }
        text.assign(buf, r.ptr);
      } else if (e.get_string().get(sv) == simdjson::SUCCESS) {
        text = sv;
      } else {
        mismatch(n, e);
      }
      std::string why;
      if (!decimal_bytes(text, n.scale, out, why)) {
        fail("decimal \"" + text + "\" (scale " + std::to_string(n.scale) + "): " + why);
      }
      if (n.kind == Kind::fixed) {
        if (out.size() > n.size) {
          fail("decimal \"" + text + "\" does not fit in " + std::to_string(n.size) + " bytes");
        }
        const char fill = (static_cast<unsigned char>(out[0]) & 0x80) != 0 ? '\xff' : '\0';
        out.insert(0, n.size - out.size(), fill);
      }
      return out;
    }
    if (e.get_string().get(sv) != simdjson::SUCCESS) {
      mismatch(n, e);
    }
    if (!(defaults_ ? latin1_decode(sv, out) : base64_decode(sv, out))) {
      fail("\"" + std::string(sv.substr(0, 40)) + "\" is not " +
           (defaults_ ? "a string of code points 0-255" : "base64"));
    }
    return out;
  }

  void record(const Node& n, element e) {
    simdjson::dom::object obj;
    if (e.get_object().get(obj) != simdjson::SUCCESS) {
      mismatch(n, e);
    }
    for (const auto kv : obj) {
      const std::string_view k = kv.key;
      if (std::none_of(n.fields.begin(), n.fields.end(), [k](const Field& f) { return f.name == k; })) {
        fail("field \"" + std::string(k) + "\" is not in record " + n.name);
      }
    }
    for (const Field& f : n.fields) {
      path_.push_back("." + f.name);
      element v;
      if (obj.at_key(f.name).get(v) == simdjson::SUCCESS) {
        node(f.type, v);
      } else if (f.has_default) {
        out_.append(f.default_bin);
      } else if (defaults_ && !f.default_json.empty()) {
        // A default inside a default (whose own default is encoded later or
        // does not fit): encoded here, on this encoder, so depth still counts.
        simdjson::dom::parser parser;
        element d;
        if (parser.parse(f.default_json).get(d) != simdjson::SUCCESS) {
          fail("default is not JSON");
        }
        node(f.type, d);
      } else {
        fail(f.default_json.empty() ? "missing, and the field has no default" : "missing, and the default does not fit: " + f.default_error);
      }
      path_.pop_back();
    }
  }

  // Whether a JSON value can be the plain value of a union branch (shallow:
  // a record or map branch takes any object).
  bool matches(const Node& n, element e) const {
    std::string_view sv;
    std::int64_t i = 0;
    std::string tmp;
    switch (n.kind) {
      case Kind::null_: return e.is_null();
      case Kind::boolean: return e.is_bool();
      case Kind::int_:
      case Kind::long_:
        if (e.get_int64().get(i) == simdjson::SUCCESS) {
          return n.kind == Kind::long_ || (i >= std::numeric_limits<std::int32_t>::min() && i <= std::numeric_limits<std::int32_t>::max());
        }
        return n.logical != Logical::none && e.get_string().get(sv) == simdjson::SUCCESS && parse_logical(n.logical, sv, i);
      case Kind::float_:
      case Kind::double_:
        return e.is_number() ||
               (e.get_string().get(sv) == simdjson::SUCCESS && (sv == "NaN" || sv == "Infinity" || sv == "-Infinity"));
      case Kind::string: return e.is_string();
      case Kind::bytes:
      case Kind::fixed:
        if (n.logical == Logical::decimal && !defaults_) {
          std::string why;
          if (e.is_number()) {
            return true;
          }
          return e.get_string().get(sv) == simdjson::SUCCESS && decimal_bytes(sv, n.scale, tmp, why) &&
                 (n.kind == Kind::bytes || tmp.size() <= n.size);
        }
        if (e.get_string().get(sv) != simdjson::SUCCESS) {
          return false;
        }
        if (!(defaults_ ? latin1_decode(sv, tmp) : base64_decode(sv, tmp))) {
          return false;
        }
        return n.kind == Kind::bytes || tmp.size() == n.size;
      case Kind::enum_:
        return e.get_string().get(sv) == simdjson::SUCCESS &&
               std::find(n.symbols.begin(), n.symbols.end(), sv) != n.symbols.end();
      case Kind::record:
      case Kind::map: return e.is_object();
      case Kind::array: return e.is_array();
      case Kind::union_: return false;
    }
    return false;
  }

  void union_(const Node& n, element e) {
    // Avro's JSON encoding: {"<branch type name>": value}.
    simdjson::dom::object obj;
    if (!defaults_ && e.get_object().get(obj) == simdjson::SUCCESS && obj.size() == 1) {
      const auto kv = *obj.begin();
      for (std::size_t i = 0; i < n.branches.size(); ++i) {
        const Node& b = s_.nodes[n.branches[i]];
        const std::string_view name = type_name(b);
        const bool named = b.kind == Kind::record || b.kind == Kind::enum_ || b.kind == Kind::fixed;
        const auto short_name = named ? name.substr(name.rfind('.') == std::string_view::npos ? 0 : name.rfind('.') + 1) : name;
        if (kv.key == name || kv.key == short_name) {
          write_long(out_, static_cast<std::int64_t>(i));
          node(n.branches[i], kv.value);
          return;
        }
      }
    }
    for (std::size_t i = 0; i < n.branches.size(); ++i) {
      if (matches(s_.nodes[n.branches[i]], e)) {
        write_long(out_, static_cast<std::int64_t>(i));
        node(n.branches[i], e);
        return;
      }
    }
    std::string names;
    for (const auto b : n.branches) {
      names += names.empty() ? "" : ", ";
      names += type_name(s_.nodes[b]);
    }
    fail(describe(e) + " matches no branch of the union [" + names + "]");
  }

  const Schema& s_;
  std::string& out_;
  bool defaults_;
  int depth_ = 0;
  std::vector<std::string> path_;
};

thread_local simdjson::dom::parser tl_parser;

}  // namespace

std::string encode_default(const Schema& s, std::uint32_t type, std::string_view json) {
  simdjson::dom::parser parser;  // not tl_parser: defaults may nest inside an encode
  element doc;
  if (auto e = parser.parse(json.data(), json.size()).get(doc); e != simdjson::SUCCESS) {
    throw Error(errc::encode_failed, std::string("default is not JSON: ") + simdjson::error_message(e));
  }
  std::string out;
  Encoder enc(s, out, true);
  enc.node(type, doc);
  return out;
}

void encode_json(const Schema& schema, std::string_view json, std::string& out) {
  element doc;
  if (auto e = tl_parser.parse(json.data(), json.size()).get(doc); e != simdjson::SUCCESS) {
    throw Error(errc::encode_failed, std::string("Avro encode: invalid JSON: ") + simdjson::error_message(e));
  }
  const std::size_t at = out.size();
  try {
    Encoder enc(schema, out, false);
    enc.node(schema.root, doc);
  } catch (...) {
    out.resize(at);
    throw;
  }
}

}  // namespace kc::schema::detail::avro
