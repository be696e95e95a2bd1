#include "json_out.hpp"

#include <utility>

#include "text/text.hpp"

namespace kc::tool {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  detail::append_json_escaped_lossy(out, s);
  out += '"';
  return out;
}

JsonObject& JsonObject::raw(std::string_view name, std::string_view json) {
  if (out_.size() > 1) {
    out_ += ',';
  }
  out_ += json_string(name);
  out_ += ':';
  out_ += json;
  return *this;
}

JsonObject& JsonObject::str(std::string_view name, std::optional<std::string_view> v) {
  return raw(name, v ? json_string(*v) : "null");
}

JsonObject& JsonObject::num(std::string_view name, std::optional<std::int64_t> v) {
  return raw(name, v ? std::to_string(*v) : "null");
}

std::string JsonObject::done() {
  out_ += '}';
  return std::exchange(out_, "{");
}

JsonArray& JsonArray::raw(std::string_view json) {
  if (out_.size() > 1) {
    out_ += ',';
  }
  out_ += json;
  return *this;
}

std::string JsonArray::done() {
  out_ += ']';
  return std::exchange(out_, "[");
}

}  // namespace kc::tool
