#include "deadletter/reader.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>

#include "kc/deadletter.hpp"
#include "kc/decode.hpp"
#include "text/text.hpp"

namespace kc::detail {

namespace {

constexpr std::string_view kKcPrefix = "kc.dlq.";
constexpr std::string_view kSpringPrefix = "kafka_dlt-";

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) {
    return std::nullopt;
  }
  return v;
}

// Spring writes partition as a 4-byte and offset/timestamp as 8-byte
// big-endian integers; text digits are accepted too (other writers).
std::optional<std::int64_t> parse_spring_int(Bytes b) {
  if (b.size() == 4 || b.size() == 8) {
    std::uint64_t u = 0;
    for (const auto byte : b) {
      u = u << 8 | static_cast<std::uint8_t>(byte);
    }
    if (b.size() == 4) {
      return static_cast<std::int32_t>(static_cast<std::uint32_t>(u));
    }
    return static_cast<std::int64_t>(u);
  }
  return parse_int(as_text(b));
}

// A metadata value as text; bytes that are not UTF-8 as "hex:..." (rare:
// every known writer uses text).
std::string metadata_text(Bytes b) {
  if (is_valid_utf8(b)) {
    return std::string(as_text(b));
  }
  std::string out = "hex:";
  append_hex(out, as_text(b));
  return out;
}

// A header that cannot be read, for DeadLetter::errors; long values cut.
std::string unreadable(std::string_view name, std::string_view why, std::optional<Bytes> value) {
  constexpr std::size_t kShown = 64;
  std::string out = std::string(name) + ": " + std::string(why);
  if (value) {
    out += ": " + metadata_text(value->first(std::min(value->size(), kShown)));
    if (value->size() > kShown) {
      out += "... (" + std::to_string(value->size()) + " bytes)";
    }
  }
  return out;
}

// Where each metadata header goes. kc's integers are text; Spring's are
// big-endian binary.
using TextField = std::optional<std::string> DeadLetter::*;
using IntField = std::optional<std::int64_t> DeadLetter::*;
struct HeaderField {
  std::string_view name;
  TextField text = nullptr;
  IntField integer = nullptr;
};
constexpr HeaderField kKcFields[] = {
    {kHeaderSourceTopic, &DeadLetter::source_topic},
    {kHeaderSourcePartition, nullptr, &DeadLetter::source_partition},
    {kHeaderSourceOffset, nullptr, &DeadLetter::source_offset},
    {kHeaderSourceTimestamp, nullptr, &DeadLetter::source_timestamp},
    {kHeaderGroup, &DeadLetter::group},
    {kHeaderErrorType, &DeadLetter::error_type},
    {kHeaderErrorMessage, &DeadLetter::error_message},
    {kHeaderAttempts, nullptr, &DeadLetter::attempts},
    {kHeaderFailedAt, &DeadLetter::failed_at},
    {kHeaderRetryTopic, &DeadLetter::retry_origin},
};
constexpr HeaderField kSpringFields[] = {
    {kSpringOriginalTopic, &DeadLetter::source_topic},
    {kSpringOriginalPartition, nullptr, &DeadLetter::source_partition},
    {kSpringOriginalOffset, nullptr, &DeadLetter::source_offset},
    {kSpringOriginalTimestamp, nullptr, &DeadLetter::source_timestamp},
    {kSpringOriginalConsumerGroup, &DeadLetter::group},
    {kSpringExceptionFqcn, &DeadLetter::error_type},
    {kSpringExceptionMessage, &DeadLetter::error_message},
};

template <std::size_t N>
void read_field(const HeaderField (&fields)[N], bool spring, std::string_view name, Bytes v, DeadLetter& into,
                std::vector<std::string>& errors) {
  for (const auto& f : fields) {
    if (f.name != name) {
      continue;
    }
    if (f.text != nullptr) {
      into.*f.text = metadata_text(v);
    } else {
      into.*f.integer = spring ? parse_spring_int(v) : parse_int(as_text(v));
      if (!(into.*f.integer)) {
        errors.push_back(unreadable(name, spring ? "not a big-endian or decimal integer" : "not a decimal integer", v));
      }
    }
    return;
  }
}

template <typename T>
void fill(std::optional<T>& into, const std::optional<T>& from) {
  if (!into) {
    into = from;
  }
}

}  // namespace

std::string DeadLetter::format() const {
  return kc_headers && spring_headers ? "kc+spring" : kc_headers ? "kc" : spring_headers ? "spring" : "none";
}

bool is_dead_letter_metadata(std::string_view header_name) noexcept {
  return header_name.starts_with(kKcPrefix) || header_name.starts_with(kSpringPrefix) ||
         header_name.starts_with(kRetryHeaderPrefix);
}

DeadLetter read_dead_letter(std::optional<Bytes> key, std::optional<Bytes> value, const Headers& headers) {
  DeadLetter kc;
  DeadLetter spring;  // only its metadata fields are used
  kc.key = key;
  kc.value = value;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto h = headers.at(i);
    const bool metadata = is_dead_letter_metadata(h.name);
    if (!metadata) {
      kc.headers.push_back(h);
    }
    if (!h.value) {
      if (metadata || h.name == kHeaderRedriveCount) {
        kc.errors.push_back(unreadable(h.name, "null value", std::nullopt));
      }
      continue;
    }
    if (h.name.starts_with(kKcPrefix) || h.name.starts_with(kRetryHeaderPrefix)) {
      kc.kc_headers = kc.kc_headers || h.name.starts_with(kKcPrefix);
      read_field(kKcFields, false, h.name, *h.value, kc, kc.errors);
    } else if (h.name.starts_with(kSpringPrefix)) {
      spring.spring_headers = true;
      read_field(kSpringFields, true, h.name, *h.value, spring, kc.errors);
    } else if (h.name == kHeaderRedriveCount) {
      const auto c = parse_int(as_text(*h.value));
      if (!c) {
        kc.errors.push_back(unreadable(h.name, "not a decimal integer", h.value));
      } else if (*c > kc.redrive_count.value_or(0)) {
        kc.redrive_count = c;
      }
    }
  }
  kc.spring_headers = spring.spring_headers;
  fill(kc.source_topic, spring.source_topic);
  fill(kc.source_partition, spring.source_partition);
  fill(kc.source_offset, spring.source_offset);
  fill(kc.source_timestamp, spring.source_timestamp);
  fill(kc.group, spring.group);
  fill(kc.error_type, spring.error_type);
  fill(kc.error_message, spring.error_message);
  return kc;
}

DeadLetter read_dead_letter(const Message& m) {
  return read_dead_letter(m.key(), m.value(), m.headers());
}

}  // namespace kc::detail
