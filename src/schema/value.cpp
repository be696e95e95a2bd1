#include <cmath>
#include <cstdio>
#include <string>

#include "kc/schema.hpp"

namespace kc {
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, std::string_view in) {
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                   std::uint8_t(in[i + 2]);
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += kBase64[(n >> 6) & 63];
    out += kBase64[n & 63];
  }
  if (const auto rest = in.size() - i; rest > 0) {
    auto n = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) {
      n |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    }
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += rest == 2 ? kBase64[(n >> 6) & 63] : '=';
    out += '=';
  }
}

void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append(std::string& out, const Value& v) {
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          out += "null";
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          out += std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isnan(x)) {
            out += "\"NaN\"";
          } else if (std::isinf(x)) {
            out += x > 0 ? "\"Infinity\"" : "\"-Infinity\"";
          } else {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.17g", x);
            out += buf;
          }
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_string(out, x);
        } else if constexpr (std::is_same_v<T, Value::Blob>) {
          out += '"';
          append_base64(out, x.data);
          out += '"';
        } else if constexpr (std::is_same_v<T, Value::Array>) {
          out += '[';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i > 0) {
              out += ',';
            }
            append(out, x[i]);
          }
          out += ']';
        } else {
          out += '{';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i > 0) {
              out += ',';
            }
            append_string(out, x[i].first);
            out += ':';
            append(out, x[i].second);
          }
          out += '}';
        }
      },
      v.variant());
}

}  // namespace

const Value* Value::find(std::string_view name) const noexcept {
  const auto* o = std::get_if<Object>(&v_);
  if (o == nullptr) {
    return nullptr;
  }
  for (const auto& [k, v] : *o) {
    if (k == name) {
      return &v;
    }
  }
  return nullptr;
}

std::string Value::to_json() const {
  std::string out;
  append(out, *this);
  return out;
}

}  // namespace kc
