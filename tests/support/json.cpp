#include "support/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kc::test {

bool same_json(simdjson::dom::element a, simdjson::dom::element b, const std::string& path, std::string& why) {
  using T = simdjson::dom::element_type;
  const auto is_num = [](T t) { return t == T::INT64 || t == T::UINT64 || t == T::DOUBLE; };
  if (is_num(a.type()) && is_num(b.type())) {
    if (a.type() != T::DOUBLE && b.type() != T::DOUBLE) {
      if (simdjson::to_string(a) == simdjson::to_string(b)) {
        return true;
      }
    } else {
      const double x = a.get_double().value_unsafe();
      const double y = b.get_double().value_unsafe();
      if (x == y || std::fabs(x - y) <= 1e-6 * std::max(std::fabs(x), std::fabs(y))) {
        return true;
      }
    }
    why = path + ": " + std::string(simdjson::to_string(a)) + " != " + std::string(simdjson::to_string(b));
    return false;
  }
  if (a.type() != b.type()) {
    why = path + ": " + std::string(simdjson::to_string(a)) + " != " + std::string(simdjson::to_string(b));
    return false;
  }
  switch (a.type()) {
    case T::ARRAY: {
      const auto x = a.get_array().value_unsafe();
      const auto y = b.get_array().value_unsafe();
      if (x.size() != y.size()) {
        why = path + ": array sizes " + std::to_string(x.size()) + " != " + std::to_string(y.size());
        return false;
      }
      auto it = y.begin();
      std::size_t i = 0;
      for (auto e : x) {
        if (!same_json(e, *it, path + "[" + std::to_string(i) + "]", why)) {
          return false;
        }
        ++it;
        ++i;
      }
      return true;
    }
    case T::OBJECT: {
      const auto x = a.get_object().value_unsafe();
      const auto y = b.get_object().value_unsafe();
      if (x.size() != y.size()) {
        why = path + ": objects " + std::string(simdjson::to_string(a)) + " vs " + std::string(simdjson::to_string(b));
        return false;
      }
      for (auto [k, v] : x) {
        simdjson::dom::element other;
        if (y.at_key(k).get(other) != simdjson::SUCCESS) {
          why = path + "." + std::string(k) + ": missing on the right";
          return false;
        }
        if (!same_json(v, other, path + "." + std::string(k), why)) {
          return false;
        }
      }
      return true;
    }
    default:
      if (simdjson::to_string(a) != simdjson::to_string(b)) {
        why = path + ": " + std::string(simdjson::to_string(a)) + " != " + std::string(simdjson::to_string(b));
        return false;
      }
      return true;
  }
}

bool json_equal(const std::string& a, const std::string& b, std::string* why) {
  simdjson::dom::parser pa;
  simdjson::dom::parser pb;
  simdjson::dom::element x;
  simdjson::dom::element y;
  if (pa.parse(a).get(x) != simdjson::SUCCESS || pb.parse(b).get(y) != simdjson::SUCCESS) {
    if (why != nullptr) {
      *why = "not JSON";
    }
    return false;
  }
  std::string unused;
  return same_json(x, y, "", why != nullptr ? *why : unused);
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
    out += kAlphabet[n & 63];
  }
  if (i < in.size()) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) {
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    }
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += i + 1 < in.size() ? kAlphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace kc::test
