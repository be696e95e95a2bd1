#include <simdjson.h>

#include <cstring>
#include <vector>

#include "kc/decode.hpp"

namespace kc {

struct JsonDecoder::Impl {
  DecodeLimits limits;
  simdjson::dom::parser parser;
  // simdjson reads SIMDJSON_PADDING bytes past the end: values are copied
  // into this reused padded buffer instead of allocating a padded copy each.
  std::vector<char> padded;
};

JsonDecoder::JsonDecoder(DecodeLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->parser = simdjson::dom::parser(limits.max_bytes);
  if (impl_->parser.allocate(4096, limits.max_depth) != simdjson::SUCCESS) {
    throw std::bad_alloc();
  }
}

JsonDecoder::~JsonDecoder() = default;

bool JsonDecoder::decode(Bytes in, std::string& out, std::string& error, Output out_mode) {
  auto& s = *impl_;
  if (in.size() > s.limits.max_bytes) {
    error = "value of " + std::to_string(in.size()) + " bytes exceeds the decode limit of " +
            std::to_string(s.limits.max_bytes);
    return false;
  }
  if (s.padded.size() < in.size() + simdjson::SIMDJSON_PADDING) {
    s.padded.resize(in.size() + simdjson::SIMDJSON_PADDING);
  }
  if (!in.empty()) {
    std::memcpy(s.padded.data(), in.data(), in.size());
  }
  if (in.size() > s.parser.capacity() || s.parser.max_depth() < s.limits.max_depth) {
    if (auto e = s.parser.allocate(in.size(), s.limits.max_depth); e != simdjson::SUCCESS) {
      error = std::string("cannot allocate the JSON parser: ") + simdjson::error_message(e);
      return false;
    }
  }
  simdjson::dom::element doc;
  if (auto e = s.parser.parse(s.padded.data(), in.size(), false).get(doc); e != simdjson::SUCCESS) {
    error = std::string("invalid JSON: ") + simdjson::error_message(e);
    return false;
  }
  if (out_mode == Output::none) {
    return true;
  }
  const std::size_t at = out.size();
  const auto* text = reinterpret_cast<const char*>(in.data());
  if (std::memchr(text, '\n', in.size()) == nullptr && std::memchr(text, '\r', in.size()) == nullptr) {
    // Already one line (JSON strings cannot hold raw line breaks): keep the
    // original bytes, which is cheaper than minifying them.
    out.append(text, in.size());
    return true;
  }
  // Validated above; minify only strips insignificant whitespace.
  out.resize(at + in.size() + simdjson::SIMDJSON_PADDING);
  std::size_t len = 0;
  if (simdjson::minify(s.padded.data(), in.size(), out.data() + at, len) != simdjson::SUCCESS) {
    out.resize(at);
    error = "invalid JSON: cannot minify";
    return false;
  }
  out.resize(at + len);
  return true;
}

bool JsonDecoder::validate(Bytes in, std::string& error) {
  std::string unused;
  return decode(in, unused, error, Output::none);
}

bool is_valid_utf8(Bytes b) noexcept {
  return simdjson::validate_utf8(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace kc
