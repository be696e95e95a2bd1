// Reading the Prometheus text format back: for tests and `kc top`.
//
// A small hand-written reader because the only thing it must read is what
// registry.cpp (and other Prometheus clients) write: one sample per line,
// `name{label="value",...} value [timestamp]`.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "kc/metrics.hpp"

namespace kc::metrics {

namespace {

class LineReader {
 public:
  LineReader(std::string_view line, std::size_t number) : s_(line), number_(number) {}

  Sample sample() {
    Sample out;
    out.name = name(true);
    bool spaced = skip_spaces();
    if (peek() == '{') {
      ++pos_;
      labels(out);
      spaced = skip_spaces();
    }
    if (!spaced) {
      fail("expected a space before the value");
    }
    out.value = number(token());
    skip_spaces();
    if (pos_ < s_.size()) {
      const auto ts = token();  // the optional timestamp (milliseconds), ignored
      std::int64_t ignored = 0;
      const auto [p, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), ignored);
      if (ec != std::errc() || p != ts.data() + ts.size()) {
        fail(fmt::format("bad timestamp '{}'", ts));
      }
      skip_spaces();
      if (pos_ < s_.size()) {
        fail("unexpected text after the timestamp");
      }
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(fmt::format("metrics text line {}: {}: {}", number_, why, s_));
  }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }

  bool skip_spaces() {
    const auto start = pos_;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
      ++pos_;
    }
    return pos_ > start;
  }

  std::string_view token() {
    const auto start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ' ' && s_[pos_] != '\t') {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }

  std::string name(bool metric) {
    const auto start = pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
      const bool digit = c >= '0' && c <= '9';
      if (!letter && !(digit && pos_ > start)) {
        break;
      }
      ++pos_;
    }
    if (pos_ == start) {
      fail(metric ? "expected a metric name" : "expected a label name");
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  void labels(Sample& out) {
    for (;;) {
      skip_spaces();
      if (peek() == '}') {
        ++pos_;
        return;
      }
      auto key = name(false);
      skip_spaces();
      if (peek() != '=') {
        fail("expected '=' after label " + key);
      }
      ++pos_;
      skip_spaces();
      if (peek() != '"') {
        fail("expected '\"' to open the value of label " + key);
      }
      ++pos_;
      std::string value;
      for (;;) {
        if (pos_ >= s_.size()) {
          fail("unterminated value of label " + key);
        }
        const char c = s_[pos_++];
        if (c == '"') {
          break;
        }
        if (c != '\\') {
          value += c;
          continue;
        }
        if (pos_ >= s_.size()) {
          fail("unterminated value of label " + key);
        }
        const char e = s_[pos_++];
        switch (e) {
          case 'n': value += '\n'; break;
          case '\\': value += '\\'; break;
          case '"': value += '"'; break;
          default: fail(fmt::format("unknown escape '\\{}' in label {}", e, key));
        }
      }
      out.labels.insert_or_assign(std::move(key), std::move(value));
      skip_spaces();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        fail("expected ',' or '}' after a label");
      }
    }
  }

  double number(std::string_view t) const {
    if (t == "+Inf" || t == "Inf") {
      return std::numeric_limits<double>::infinity();
    }
    if (t == "-Inf") {
      return -std::numeric_limits<double>::infinity();
    }
    if (t == "NaN") {
      return std::numeric_limits<double>::quiet_NaN();
    }
    auto body = t;
    if (!body.empty() && body.front() == '+') {
      body.remove_prefix(1);
    }
    double v = 0;
    const auto [p, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
    if (body.empty() || ec != std::errc() || p != body.data() + body.size() || std::isnan(v) || std::isinf(v)) {
      fail(fmt::format("bad value '{}'", t));
    }
    return v;
  }

  std::string_view s_;
  std::size_t number_;
  std::size_t pos_ = 0;
};

}  // namespace

std::vector<Sample> parse(std::string_view text) {
  std::vector<Sample> out;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') {
      continue;
    }
    out.push_back(LineReader(line.substr(first), number).sample());
  }
  return out;
}

double sum(const std::vector<Sample>& samples, std::string_view name, const std::map<std::string, std::string>& match) {
  double total = 0;
  for (const auto& s : samples) {
    if (s.name != name) {
      continue;
    }
    const bool all = std::all_of(match.begin(), match.end(), [&](const auto& kv) {
      const auto it = s.labels.find(kv.first);
      return it != s.labels.end() && it->second == kv.second;
    });
    if (all) {
      total += s.value;
    }
  }
  return total;
}

}  // namespace kc::metrics
