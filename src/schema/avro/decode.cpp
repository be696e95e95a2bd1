// Avro binary decoding into JSON text or kc::Value. One walker, templated on
// the output builder (JSON text, Value, or nothing for skipped fields), so
// the two outputs cannot drift apart. Every length and count is checked
// against the bytes actually left before anything is allocated; paths for
// error messages are built only while unwinding from a failure, so the
// success path pays nothing for them.
#include <simdjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "schema/avro/internal.hpp"
#include "text/text.hpp"

namespace kc::schema::detail::avro {
namespace {

struct In {
  const std::uint8_t* p;
  const std::uint8_t* end;
  std::size_t left() const noexcept { return static_cast<std::size_t>(end - p); }
};

struct Ctx {
  explicit Ctx(const DecodeLimits& l) : limits(l) {}
  const DecodeLimits& limits;
  std::size_t depth = 0;
  std::size_t items = 0;
  std::string msg;
  std::vector<std::string> path_rev;  // innermost first; filled only on failure

  bool fail(std::string m) {
    msg = std::move(m);
    return false;
  }
  std::string message() const {
    if (path_rev.empty()) {
      return msg;
    }
    std::string p = "at ";
    for (auto it = path_rev.rbegin(); it != path_rev.rend(); ++it) {
      p += *it;
    }
    return p + ": " + msg;
  }
};

// --- primitive reads ---

bool read_long(In& in, Ctx& c, std::int64_t& v) {
  if (in.p != in.end && *in.p < 0x80) {  // one byte: most values
    const std::uint64_t u = *in.p++;
    v = static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  std::uint64_t acc = 0;
  for (int i = 0; i < 10; ++i) {
    if (in.p == in.end) {
      return c.fail("truncated varint");
    }
    const std::uint8_t b = *in.p++;
    if (i == 9 && b > 1) {
      return c.fail("varint longer than 10 bytes or above 64 bits");
    }
    acc |= std::uint64_t(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      v = static_cast<std::int64_t>((acc >> 1) ^ (~(acc & 1) + 1));
      return true;
    }
  }
  return c.fail("varint longer than 10 bytes");  // unreachable: i == 9 check
}

bool read_int(In& in, Ctx& c, std::int32_t& v) {
  if (in.p != in.end && *in.p < 0x80) {
    const std::uint32_t u = *in.p++;
    v = static_cast<std::int32_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  std::uint32_t acc = 0;
  for (int i = 0; i < 5; ++i) {
    if (in.p == in.end) {
      return c.fail("truncated varint");
    }
    const std::uint8_t b = *in.p++;
    if (i == 4 && b > 0x0f) {
      return c.fail("int varint longer than 5 bytes or above 32 bits");
    }
    acc |= std::uint32_t(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      v = static_cast<std::int32_t>((acc >> 1) ^ (~(acc & 1) + 1));
      return true;
    }
  }
  return c.fail("int varint longer than 5 bytes");
}

bool read_length(In& in, Ctx& c, const char* what, std::string_view& out) {
  std::int64_t n = 0;
  if (!read_long(in, c, n)) {
    return false;
  }
  if (n < 0) {
    return c.fail(std::string(what) + " length " + std::to_string(n) + " is negative");
  }
  if (static_cast<std::uint64_t>(n) > in.left()) {
    return c.fail(std::string(what) + " length " + std::to_string(n) + " exceeds the " + std::to_string(in.left()) +
                  " bytes left");
  }
  out = {reinterpret_cast<const char*>(in.p), static_cast<std::size_t>(n)};
  in.p += n;
  return true;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if ((w & 0x8080808080808080ull) != 0) {
      return simdjson::validate_utf8(s.data(), s.size());
    }
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      return simdjson::validate_utf8(s.data(), s.size());
    }
  }
  return true;
}

// --- text rendering of logical types ---

char* put_digits(char* p, std::uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

// "YYYY-MM-DD" (false when the year is outside 0..9999).
bool put_date(char*& p, std::int64_t days) {
  const Civil cv = civil_from_days(days);
  if (cv.year < 0 || cv.year > 9999) {
    return false;
  }
  p = put_digits(p, static_cast<std::uint64_t>(cv.year), 4);
  *p++ = '-';
  p = put_digits(p, cv.month, 2);
  *p++ = '-';
  p = put_digits(p, cv.day, 2);
  return true;
}

// "HH:MM:SS.fff" with `frac_digits` digits of a `unit`-per-second value.
void put_time(char*& p, std::uint64_t t, std::uint64_t per_second, int frac_digits) {
  const std::uint64_t secs = t / per_second;
  p = put_digits(p, secs / 3600, 2);
  *p++ = ':';
  p = put_digits(p, secs / 60 % 60, 2);
  *p++ = ':';
  p = put_digits(p, secs % 60, 2);
  *p++ = '.';
  p = put_digits(p, t % per_second, frac_digits);
}

// Renders a long/int with a time logical type into buf; returns the length,
// or 0 when out of the renderable range (then the number itself is output).
std::size_t render_time(Logical l, std::int64_t v, char* buf) {
  char* p = buf;
  switch (l) {
    case Logical::date:
      if (!put_date(p, v)) {
        return 0;
      }
      break;
    case Logical::time_millis:
    case Logical::time_micros: {
      const std::int64_t per_second = l == Logical::time_millis ? 1000 : 1000000;
      if (v < 0 || v >= 86400 * per_second) {
        return 0;
      }
      put_time(p, static_cast<std::uint64_t>(v), static_cast<std::uint64_t>(per_second), l == Logical::time_millis ? 3 : 6);
      break;
    }
    case Logical::timestamp_millis:
    case Logical::timestamp_micros:
    case Logical::local_timestamp_millis:
    case Logical::local_timestamp_micros: {
      const bool millis = l == Logical::timestamp_millis || l == Logical::local_timestamp_millis;
      const std::int64_t per_day = millis ? 86400000LL : 86400000000LL;
      const std::int64_t days = floor_div(v, per_day);
      std::int64_t rem = v % per_day;  // not v - days * per_day: that overflows near INT64_MIN
      if (rem < 0) {
        rem += per_day;
      }
      if (!put_date(p, days)) {
        return 0;
      }
      *p++ = 'T';
      put_time(p, static_cast<std::uint64_t>(rem), millis ? 1000 : 1000000, millis ? 3 : 6);
      if (l == Logical::timestamp_millis || l == Logical::timestamp_micros) {
        *p++ = 'Z';
      }
      break;
    }
    default: return 0;
  }
  return static_cast<std::size_t>(p - buf);
}

constexpr std::size_t kMaxDecimalBytes = 256;

// The exact decimal text of a two's-complement big-endian unscaled value.
bool render_decimal(std::string_view raw, std::int32_t scale, std::string& text, Ctx& c) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(raw.data());
  std::size_t n = raw.size();
  const bool negative = n > 0 && (b[0] & 0x80) != 0;
  // Drop sign-extension bytes.
  while (n > 1 && ((b[0] == 0x00 && (b[1] & 0x80) == 0) || (b[0] == 0xff && (b[1] & 0x80) != 0))) {
    ++b;
    --n;
  }
  if (n > kMaxDecimalBytes) {
    return c.fail("decimal of " + std::to_string(n) + " significant bytes exceeds the limit of " +
                  std::to_string(kMaxDecimalBytes));
  }
  char digits[kMaxDecimalBytes * 3 + 16];  // 2.41 digits per byte
  std::size_t nd = 0;
  if (n <= 8) {
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < n; ++i) {
      u = (u << 8) | b[i];
    }
    if (negative && n > 0) {
      u |= n == 8 ? 0 : ~std::uint64_t{0} << (8 * n);  // sign-extend
      u = ~u + 1;                                     // magnitude (INT64_MIN included)
    }
    nd = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, u).ptr - digits);
  } else {
    // Magnitude as base-2^32 limbs, most significant first, then repeated
    // division by 1e9: quadratic, bounded by kMaxDecimalBytes.
    std::array<std::uint8_t, kMaxDecimalBytes> mag{};
    std::memcpy(mag.data(), b, n);
    if (negative) {
      unsigned carry = 1;
      for (std::size_t i = n; i-- > 0;) {
        const unsigned x = static_cast<unsigned>(static_cast<std::uint8_t>(~mag[i])) + carry;
        mag[i] = static_cast<std::uint8_t>(x);
        carry = x >> 8;
      }
    }
    std::array<std::uint32_t, kMaxDecimalBytes / 4 + 1> limbs{};
    const std::size_t nl = (n + 3) / 4;
    for (std::size_t i = 0; i < n; ++i) {  // byte i from the right goes to limb (n-1-i)/4 from the right
      const std::size_t from_right = n - 1 - i;
      limbs[nl - 1 - from_right / 4] |= std::uint32_t(mag[i]) << (8 * (from_right % 4));
    }
    char rev[kMaxDecimalBytes * 3 + 16];
    std::size_t nr = 0;
    std::size_t first = 0;
    while (first < nl) {
      std::uint64_t rem = 0;
      for (std::size_t i = first; i < nl; ++i) {
        const std::uint64_t cur = (rem << 32) | limbs[i];
        limbs[i] = static_cast<std::uint32_t>(cur / 1000000000u);
        rem = cur % 1000000000u;
      }
      while (first < nl && limbs[first] == 0) {
        ++first;
      }
      for (int k = 0; k < 9; ++k) {
        rev[nr++] = static_cast<char>('0' + rem % 10);
        rem /= 10;
        if (first == nl && rem == 0) {
          break;
        }
      }
    }
    while (nr > 1 && rev[nr - 1] == '0') {
      --nr;
    }
    for (std::size_t i = 0; i < nr; ++i) {
      digits[i] = rev[nr - 1 - i];
    }
    nd = nr;
  }
  text.clear();
  if (negative) {
    text += '-';
  }
  const auto s = static_cast<std::size_t>(scale);
  if (s == 0) {
    text.append(digits, nd);
  } else if (nd > s) {
    text.append(digits, nd - s);
    text += '.';
    text.append(digits + nd - s, s);
  } else {
    text += "0.";
    text.append(s - nd, '0');
    text.append(digits, nd);
  }
  return true;
}

// --- builders ---

// Scratch for reordering resolved records in JSON text; per thread, reused.
struct JsonScratch {
  std::vector<std::size_t> marks;
  std::string buf;
  std::string decimal;
};
thread_local JsonScratch tl_scratch;

class JsonBuilder {
 public:
  static constexpr bool kValidate = true;
  explicit JsonBuilder(std::string& out) : out_(out) {}

  void null() { out_.append("null", 4); }
  void boolean(bool v) { v ? out_.append("true", 4) : out_.append("false", 5); }
  void integer(std::int64_t v) {
    char buf[24];
    out_.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }
  template <class F>
  void real(F v) {
    if (std::isnan(v)) {
      out_.append("\"NaN\"", 5);
    } else if (std::isinf(v)) {
      v > 0 ? out_.append("\"Infinity\"", 10) : out_.append("\"-Infinity\"", 11);
    } else if (v == 0 && std::signbit(v)) {
      out_.append("-0.0", 4);  // "-0" would read back as the integer 0
    } else {
      char buf[40];
      auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
      if (end - buf > 16 && std::memchr(buf, '.', static_cast<std::size_t>(end - buf)) == nullptr &&
          std::memchr(buf, 'e', static_cast<std::size_t>(end - buf)) == nullptr) {
        // A long integer form (2^65 -> "36893488147419103232"): JSON parsers
        // may read it as an out-of-range integer; the exponent form is
        // unambiguously a number.
        end = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific).ptr;
      }
      out_.append(buf, static_cast<std::size_t>(end - buf));
    }
  }
  void string(std::string_view s) {
    out_ += '"';
    kc::detail::append_json_escaped(out_, s);
    out_ += '"';
  }
  // Text known to need no escaping (dates, decimals).
  void text(std::string_view s) {
    out_ += '"';
    out_.append(s);
    out_ += '"';
  }
  void blob(std::string_view in) {
    out_ += '"';
    kc::detail::append_base64(out_, in);
    out_ += '"';
  }
  void symbol(const Node& n, std::uint32_t i) { out_.append(n.symbols_json[i]); }

  void begin_object(std::size_t) { out_ += '{'; }
  void field(std::size_t k, const Field& f) { out_.append(f.key_json.data() + (k == 0), f.key_json.size() - (k == 0)); }
  void end_object() { out_ += '}'; }
  void begin_array() { out_ += '['; }
  void item(std::size_t k) {
    if (k > 0) {
      out_ += ',';
    }
  }
  void end_array() { out_ += ']'; }
  void begin_map() { out_ += '{'; }
  void key(std::size_t k, std::string_view key) {
    if (k > 0) {
      out_ += ',';
    }
    string(key);
    out_ += ':';
  }
  void end_map() { out_ += '}'; }

  // Resolved records whose fields arrive in another order than the reader's:
  // each emitted field's start is marked, then the object's text is rebuilt
  // in reader order.
  std::size_t reorder_begin() { return tl_scratch.marks.size(); }
  void reorder_mark() { tl_scratch.marks.push_back(out_.size()); }
  void reorder_end(std::size_t base, const std::vector<std::uint32_t>& inv) {
    auto& m = tl_scratch.marks;
    const std::size_t n = m.size() - base;
    if (n == 0) {
      return;
    }
    const std::size_t m0 = m[base];
    const std::size_t end = out_.size();
    auto& buf = tl_scratch.buf;
    buf.assign(out_, m0, end - m0);
    out_.resize(m0);
    for (std::size_t r = 0; r < inv.size(); ++r) {
      const std::size_t e = inv[r];
      std::size_t s = m[base + e] - m0;
      const std::size_t t = (e + 1 < n ? m[base + e + 1] : end) - m0;
      if (e > 0) {
        ++s;  // its leading comma
      }
      if (r > 0) {
        out_ += ',';
      }
      out_.append(buf, s, t - s);
    }
    m.resize(base);
  }

  std::string& decimal_scratch() { return tl_scratch.decimal; }

 private:
  std::string& out_;
};

class ValueBuilder {
 public:
  static constexpr bool kValidate = true;
  explicit ValueBuilder(Value& root) : target_(&root) {}

  void null() { *target_ = nullptr; }
  void boolean(bool v) { *target_ = v; }
  void integer(std::int64_t v) { *target_ = v; }
  template <class F>
  void real(F v) {
    *target_ = static_cast<double>(v);
  }
  void string(std::string_view s) { *target_ = std::string(s); }
  void text(std::string_view s) { *target_ = std::string(s); }
  void blob(std::string_view s) { *target_ = Value::Blob{std::string(s)}; }
  void symbol(const Node& n, std::uint32_t i) { *target_ = n.symbols[i]; }

  void begin_object(std::size_t n) {
    *target_ = Value::Object{};
    auto* o = &std::get<Value::Object>(target_->variant());
    o->reserve(n);
    stack_.push_back({nullptr, o});
  }
  void field(std::size_t, const Field& f) { target_ = &stack_.back().obj->emplace_back(f.name, Value{}).second; }
  void end_object() { stack_.pop_back(); }
  void begin_array() {
    *target_ = Value::Array{};
    stack_.push_back({&std::get<Value::Array>(target_->variant()), nullptr});
  }
  void item(std::size_t) { target_ = &stack_.back().arr->emplace_back(); }
  void end_array() { stack_.pop_back(); }
  void begin_map() {
    *target_ = Value::Object{};
    stack_.push_back({nullptr, &std::get<Value::Object>(target_->variant())});
  }
  void key(std::size_t, std::string_view k) { target_ = &stack_.back().obj->emplace_back(std::string(k), Value{}).second; }
  void end_map() { stack_.pop_back(); }

  std::size_t reorder_begin() { return 0; }
  void reorder_mark() {}
  void reorder_end(std::size_t, const std::vector<std::uint32_t>& inv) {
    auto& o = *stack_.back().obj;
    Value::Object sorted(o.size());
    for (std::size_t r = 0; r < inv.size() && r < o.size(); ++r) {
      sorted[r] = std::move(o[inv[r]]);
    }
    o = std::move(sorted);
  }

  std::string& decimal_scratch() { return decimal_; }

 private:
  struct Frame {
    Value::Array* arr;
    Value::Object* obj;
  };
  Value* target_;
  std::vector<Frame> stack_;
  std::string decimal_;
};

// Output for skipped writer fields: reads and checks, renders nothing.
class NullBuilder {
 public:
  static constexpr bool kValidate = false;
  void null() {}
  void boolean(bool) {}
  void integer(std::int64_t) {}
  template <class F>
  void real(F) {}
  void string(std::string_view) {}
  void text(std::string_view) {}
  void blob(std::string_view) {}
  void symbol(const Node&, std::uint32_t) {}
  void begin_object(std::size_t) {}
  void field(std::size_t, const Field&) {}
  void end_object() {}
  void begin_array() {}
  void item(std::size_t) {}
  void end_array() {}
  void begin_map() {}
  void key(std::size_t, std::string_view) {}
  void end_map() {}
  std::size_t reorder_begin() { return 0; }
  void reorder_mark() {}
  void reorder_end(std::size_t, const std::vector<std::uint32_t>&) {}
  std::string& decimal_scratch() { return decimal_; }

 private:
  std::string decimal_;
};

// --- rendering of scalars by the (reader's) node ---

template <class B>
void render_long(const Node& n, std::int64_t v, B& b) {
  if constexpr (!std::is_same_v<B, NullBuilder>) {
    if (n.logical != Logical::none && n.logical != Logical::decimal && n.logical != Logical::uuid) {
      char buf[48];
      if (const std::size_t len = render_time(n.logical, v, buf); len > 0) {
        b.text({buf, len});
        return;
      }
    }
  }
  b.integer(v);
}

template <class B>
bool render_bytes(const Node& n, std::string_view v, B& b, Ctx& c) {
  if constexpr (!std::is_same_v<B, NullBuilder>) {
    if (n.logical == Logical::decimal) {
      auto& text = b.decimal_scratch();
      if (!render_decimal(v, n.scale, text, c)) {
        return false;
      }
      b.text(text);
      return true;
    }
  }
  b.blob(v);
  return true;
}

bool enter(Ctx& c) {
  if (++c.depth > c.limits.max_depth) {
    return c.fail("nesting deeper than the limit of " + std::to_string(c.limits.max_depth));
  }
  return true;
}

// Reads one block header; count 0 ends the collection.
bool read_block(In& in, Ctx& c, std::uint32_t elem_min, const char* what, std::uint64_t& count) {
  std::int64_t n = 0;
  if (!read_long(in, c, n)) {
    return false;
  }
  if (n < 0) {
    if (n == std::numeric_limits<std::int64_t>::min()) {
      return c.fail(std::string(what) + " block count out of range");
    }
    n = -n;
    std::int64_t size = 0;
    if (!read_long(in, c, size)) {
      return false;
    }
    if (size < 0) {
      return c.fail(std::string(what) + " block byte size is negative");
    }
  }
  count = static_cast<std::uint64_t>(n);
  if (count > c.limits.max_items - std::min(c.items, c.limits.max_items)) {
    return c.fail(std::string(what) + " block of " + std::to_string(count) + " items exceeds the limit of " +
                  std::to_string(c.limits.max_items) + " items per record");
  }
  if (elem_min > 0 && count > in.left() / elem_min) {
    return c.fail(std::string(what) + " block of " + std::to_string(count) + " items needs at least " +
                  std::to_string(count * elem_min) + " bytes but " + std::to_string(in.left()) + " are left");
  }
  c.items += count;
  return true;
}

// --- the walker over one schema ---

template <class B>
class Walker {
 public:
  Walker(const Schema& s, In& in, Ctx& c, B& b) : nodes_(s.nodes.data()), in_(in), c_(c), b_(b) {}

  bool node(std::uint32_t idx) {
    const Node& n = nodes_[idx];
    switch (n.kind) {
      case Kind::null_: b_.null(); return true;
      case Kind::boolean: {
        if (in_.p == in_.end) {
          return c_.fail("truncated boolean");
        }
        const std::uint8_t v = *in_.p++;
        if (v > 1) {
          return c_.fail("boolean byte " + std::to_string(v) + " is neither 0 nor 1");
        }
        b_.boolean(v == 1);
        return true;
      }
      case Kind::int_: {
        std::int32_t v = 0;
        if (!read_int(in_, c_, v)) {
          return false;
        }
        render_long(n, v, b_);
        return true;
      }
      case Kind::long_: {
        std::int64_t v = 0;
        if (!read_long(in_, c_, v)) {
          return false;
        }
        render_long(n, v, b_);
        return true;
      }
      case Kind::float_: {
        if (in_.left() < 4) {
          return c_.fail("truncated float");
        }
        float f;
        std::memcpy(&f, in_.p, 4);  // little-endian hosts only (x86-64, aarch64)
        in_.p += 4;
        b_.real(f);
        return true;
      }
      case Kind::double_: {
        if (in_.left() < 8) {
          return c_.fail("truncated double");
        }
        double d;
        std::memcpy(&d, in_.p, 8);
        in_.p += 8;
        b_.real(d);
        return true;
      }
      case Kind::bytes: {
        std::string_view v;
        return read_length(in_, c_, "bytes", v) && render_bytes(n, v, b_, c_);
      }
      case Kind::string: {
        std::string_view v;
        if (!read_length(in_, c_, "string", v)) {
          return false;
        }
        if constexpr (B::kValidate) {
          if (!valid_utf8(v)) {
            return c_.fail("string is not valid UTF-8");
          }
        }
        b_.string(v);
        return true;
      }
      case Kind::fixed: {
        if (in_.left() < n.size) {
          return c_.fail("fixed " + n.name + " of " + std::to_string(n.size) + " bytes exceeds the " +
                         std::to_string(in_.left()) + " bytes left");
        }
        const std::string_view v(reinterpret_cast<const char*>(in_.p), n.size);
        in_.p += n.size;
        return render_bytes(n, v, b_, c_);
      }
      case Kind::enum_: {
        std::int32_t i = 0;
        if (!read_int(in_, c_, i)) {
          return false;
        }
        if (i < 0 || static_cast<std::size_t>(i) >= n.symbols.size()) {
          return c_.fail("enum index " + std::to_string(i) + " out of range for " + n.name + " (" +
                         std::to_string(n.symbols.size()) + " symbols)");
        }
        b_.symbol(n, static_cast<std::uint32_t>(i));
        return true;
      }
      case Kind::record: {
        if (!enter(c_)) {
          return false;
        }
        b_.begin_object(n.fields.size());
        for (std::size_t k = 0; k < n.fields.size(); ++k) {
          const Field& f = n.fields[k];
          b_.field(k, f);
          if (!node(f.type)) {
            c_.path_rev.push_back("." + f.name);
            return false;
          }
        }
        b_.end_object();
        --c_.depth;
        return true;
      }
      case Kind::array: {
        if (!enter(c_)) {
          return false;
        }
        b_.begin_array();
        const std::uint32_t elem_min = nodes_[n.items].min_size;
        std::size_t i = 0;
        while (true) {
          std::uint64_t count = 0;
          if (!read_block(in_, c_, elem_min, "array", count)) {
            return false;
          }
          if (count == 0) {
            break;
          }
          for (std::uint64_t j = 0; j < count; ++j, ++i) {
            b_.item(i);
            if (!node(n.items)) {
              c_.path_rev.push_back("[" + std::to_string(i) + "]");
              return false;
            }
          }
        }
        b_.end_array();
        --c_.depth;
        return true;
      }
      case Kind::map: {
        if (!enter(c_)) {
          return false;
        }
        b_.begin_map();
        const std::uint32_t elem_min = 1 + nodes_[n.items].min_size;
        std::size_t i = 0;
        while (true) {
          std::uint64_t count = 0;
          if (!read_block(in_, c_, elem_min, "map", count)) {
            return false;
          }
          if (count == 0) {
            break;
          }
          for (std::uint64_t j = 0; j < count; ++j, ++i) {
            std::string_view k;
            if (!read_length(in_, c_, "map key", k)) {
              return false;
            }
            if constexpr (B::kValidate) {
              if (!valid_utf8(k)) {
                return c_.fail("map key is not valid UTF-8");
              }
            }
            b_.key(i, k);
            if (!node(n.items)) {
              c_.path_rev.push_back("[\"" + std::string(k) + "\"]");
              return false;
            }
          }
        }
        b_.end_map();
        --c_.depth;
        return true;
      }
      case Kind::union_: {
        std::int64_t i = 0;
        if (!read_long(in_, c_, i)) {
          return false;
        }
        if (i < 0 || static_cast<std::uint64_t>(i) >= n.branches.size()) {
          return c_.fail("union index " + std::to_string(i) + " out of range (" + std::to_string(n.branches.size()) +
                         " branches)");
        }
        if (!enter(c_)) {
          return false;
        }
        if (!node(n.branches[static_cast<std::size_t>(i)])) {
          return false;
        }
        --c_.depth;
        return true;
      }
    }
    return c_.fail("corrupt schema node");
  }

 private:
  const Node* nodes_;
  In& in_;
  Ctx& c_;
  B& b_;
};

// --- the walker over a resolution ---

template <class B>
class ResolvingWalker {
 public:
  ResolvingWalker(const Resolution& r, In& in, Ctx& c, B& b)
      : r_(r), w_(*r.writer), rd_(*r.reader), in_(in), c_(c), b_(b) {}

  bool node(std::uint32_t idx) {
    const RNode& rn = r_.nodes[idx];
    switch (rn.op) {
      case RNode::Op::scalar: return scalar(w_.nodes[rn.writer], rd_.nodes[rn.reader]);
      case RNode::Op::record: return record(rn);
      case RNode::Op::enum_map: {
        const Node& wn = w_.nodes[rn.writer];
        const Node& rdn = rd_.nodes[rn.reader];
        std::int32_t i = 0;
        if (!read_int(in_, c_, i)) {
          return false;
        }
        if (i < 0 || static_cast<std::size_t>(i) >= wn.symbols.size()) {
          return c_.fail("enum index " + std::to_string(i) + " out of range for " + wn.name + " (" +
                         std::to_string(wn.symbols.size()) + " symbols)");
        }
        std::int32_t m = rn.enum_map[static_cast<std::size_t>(i)];
        if (m < 0) {
          m = rdn.enum_default;
          if (m < 0) {
            return c_.fail("enum symbol " + wn.symbols[static_cast<std::size_t>(i)] + " is not in the reader's " +
                           rdn.name + " and it has no default");
          }
        }
        b_.symbol(rdn, static_cast<std::uint32_t>(m));
        return true;
      }
      case RNode::Op::array:
      case RNode::Op::map: return collection(rn);
      case RNode::Op::writer_union: {
        const Node& wn = w_.nodes[rn.writer];
        std::int64_t i = 0;
        if (!read_long(in_, c_, i)) {
          return false;
        }
        if (i < 0 || static_cast<std::uint64_t>(i) >= wn.branches.size()) {
          return c_.fail("union index " + std::to_string(i) + " out of range (" + std::to_string(wn.branches.size()) +
                         " branches)");
        }
        const std::uint32_t target = rn.branches[static_cast<std::size_t>(i)];
        if (target == kNone) {
          return c_.fail("the writer's union branch " + std::to_string(i) + " (" +
                         std::string(type_name(w_.nodes[wn.branches[static_cast<std::size_t>(i)]])) +
                         ") has no match in the reader's schema");
        }
        if (!enter(c_) || !node(target)) {
          return false;
        }
        --c_.depth;
        return true;
      }
    }
    return c_.fail("corrupt resolution node");
  }

 private:
  bool scalar(const Node& wn, const Node& rdn) {
    switch (wn.kind) {
      case Kind::int_:
      case Kind::long_: {
        std::int64_t v = 0;
        if (wn.kind == Kind::int_) {
          std::int32_t i = 0;
          if (!read_int(in_, c_, i)) {
            return false;
          }
          v = i;
        } else if (!read_long(in_, c_, v)) {
          return false;
        }
        if (rdn.kind == Kind::float_) {
          b_.real(static_cast<float>(v));
        } else if (rdn.kind == Kind::double_) {
          b_.real(static_cast<double>(v));
        } else {
          render_long(rdn, v, b_);
        }
        return true;
      }
      case Kind::float_:
        if (rdn.kind == Kind::double_) {
          if (in_.left() < 4) {
            return c_.fail("truncated float");
          }
          float f;
          std::memcpy(&f, in_.p, 4);
          in_.p += 4;
          b_.real(static_cast<double>(f));
          return true;
        }
        break;
      case Kind::string:
      case Kind::bytes:
        if (rdn.kind != wn.kind) {
          std::string_view v;
          if (!read_length(in_, c_, wn.kind == Kind::string ? "string" : "bytes", v)) {
            return false;
          }
          if (rdn.kind == Kind::string) {
            if (!valid_utf8(v)) {
              return c_.fail("bytes read as a string are not valid UTF-8");
            }
            b_.string(v);
            return true;
          }
          return render_bytes(rdn, v, b_, c_);
        }
        break;
      default: break;
    }
    // Same kind: read with the writer's layout, render with the reader's
    // logical type (fixed sizes match, checked at resolve time).
    if (wn.logical == rdn.logical && wn.scale == rdn.scale) {
      Walker<B> plain(w_, in_, c_, b_);
      return plain.node(static_cast<std::uint32_t>(&wn - w_.nodes.data()));
    }
    Walker<B> plain(rd_, in_, c_, b_);
    return plain.node(static_cast<std::uint32_t>(&rdn - rd_.nodes.data()));
  }

  bool record(const RNode& rn) {
    const Node& wn = w_.nodes[rn.writer];
    const Node& rdn = rd_.nodes[rn.reader];
    if (!enter(c_)) {
      return false;
    }
    b_.begin_object(rdn.fields.size());
    const std::size_t base = rn.reorder ? b_.reorder_begin() : 0;
    std::size_t k = 0;
    for (const RStep& st : rn.steps) {
      if (st.rnode == kNone) {
        NullBuilder nb;
        Walker<NullBuilder> skip(w_, in_, c_, nb);
        if (!skip.node(st.writer_type)) {
          c_.path_rev.push_back("." + wn.fields[st.writer_field].name);
          return false;
        }
        continue;
      }
      if (rn.reorder) {
        b_.reorder_mark();
      }
      b_.field(k++, rdn.fields[st.reader_field]);
      if (!node(st.rnode)) {
        c_.path_rev.push_back("." + rdn.fields[st.reader_field].name);
        return false;
      }
    }
    for (const std::uint32_t rf : rn.defaults) {
      const Field& f = rdn.fields[rf];
      if (rn.reorder) {
        b_.reorder_mark();
      }
      b_.field(k++, f);
      In def{reinterpret_cast<const std::uint8_t*>(f.default_bin.data()),
             reinterpret_cast<const std::uint8_t*>(f.default_bin.data()) + f.default_bin.size()};
      Walker<B> w(rd_, def, c_, b_);
      if (!w.node(f.type)) {
        c_.path_rev.push_back("." + f.name);
        return false;
      }
    }
    if (rn.reorder) {
      b_.reorder_end(base, rn.inv);
    }
    b_.end_object();
    --c_.depth;
    return true;
  }

  bool collection(const RNode& rn) {
    const Node& wn = w_.nodes[rn.writer];
    const bool array = rn.op == RNode::Op::array;
    if (!enter(c_)) {
      return false;
    }
    array ? b_.begin_array() : b_.begin_map();
    const std::uint32_t elem_min = w_.nodes[wn.items].min_size + (array ? 0 : 1);
    std::size_t i = 0;
    while (true) {
      std::uint64_t count = 0;
      if (!read_block(in_, c_, elem_min, array ? "array" : "map", count)) {
        return false;
      }
      if (count == 0) {
        break;
      }
      for (std::uint64_t j = 0; j < count; ++j, ++i) {
        std::string_view k;
        if (array) {
          b_.item(i);
        } else {
          if (!read_length(in_, c_, "map key", k)) {
            return false;
          }
          if (!valid_utf8(k)) {
            return c_.fail("map key is not valid UTF-8");
          }
          b_.key(i, k);
        }
        if (!node(rn.child)) {
          c_.path_rev.push_back(array ? "[" + std::to_string(i) + "]" : "[\"" + std::string(k) + "\"]");
          return false;
        }
      }
    }
    array ? b_.end_array() : b_.end_map();
    --c_.depth;
    return true;
  }

  const Resolution& r_;
  const Schema& w_;
  const Schema& rd_;
  In& in_;
  Ctx& c_;
  B& b_;
};

template <class B>
bool run(const Schema& writer, const Resolution* resolution, Bytes payload, const DecodeLimits& limits, B& b,
         std::string& error) {
  if (payload.size() > limits.max_bytes) {
    error = "Avro payload of " + std::to_string(payload.size()) + " bytes exceeds the decode limit of " +
            std::to_string(limits.max_bytes);
    return false;
  }
  if (resolution != nullptr && resolution->writer.get() != &writer) {
    error = "the resolution was compiled for another writer schema";
    return false;
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(payload.data());
  In in{p, p + payload.size()};
  Ctx c(limits);
  bool ok = false;
  if (resolution != nullptr) {
    ResolvingWalker<B> w(*resolution, in, c, b);
    ok = w.node(resolution->root);
  } else {
    Walker<B> w(writer, in, c, b);
    ok = w.node(writer.root);
  }
  if (ok && in.p != in.end) {
    ok = c.fail(std::to_string(in.left()) + " trailing bytes after the datum");
  }
  if (!ok) {
    error = c.message();
  }
  return ok;
}

}  // namespace

bool decode_json(const Schema& writer, const Resolution* resolution, Bytes payload, const DecodeLimits& limits,
                 std::string& out, std::string& error) {
  const std::size_t at = out.size();
  try {
    JsonBuilder b(out);
    if (run(writer, resolution, payload, limits, b, error)) {
      return true;
    }
  } catch (...) {
    out.resize(at);
    tl_scratch.marks.clear();
    throw;
  }
  out.resize(at);
  tl_scratch.marks.clear();
  return false;
}

bool decode_value(const Schema& writer, const Resolution* resolution, Bytes payload, const DecodeLimits& limits,
                  Value& out, std::string& error) {
  Value v;
  ValueBuilder b(v);
  if (!run(writer, resolution, payload, limits, b, error)) {
    return false;
  }
  out = std::move(v);
  return true;
}

}  // namespace kc::schema::detail::avro
