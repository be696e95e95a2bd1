#include <cmath>
#include <cstdio>
#include <string>

#include "kc/schema.hpp"
#include "text/text.hpp"

namespace kc {
namespace {

void append_string(std::string& out, std::string_view s) {
  out += '"';
  detail::append_json_escaped(out, s);
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
          detail::append_base64(out, x.data);
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
