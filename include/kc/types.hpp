// Small value types shared by the public API.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace kc {

/// Bytes of a record (key, value, header value) or of a serialized payload:
/// a view, valid as long as what it was taken from.
using Bytes = std::span<const std::byte>;

/// The same bytes as text (no copy, no check that they are UTF-8).
inline std::string_view as_text(Bytes b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A partition number. A strong type so it cannot be mixed up with an offset.
enum class Partition : std::int32_t {};
/// A Kafka offset (position of a record in its partition).
enum class Offset : std::int64_t {};

constexpr std::int32_t to_int(Partition p) noexcept { return static_cast<std::int32_t>(p); }
constexpr std::int64_t to_int(Offset o) noexcept { return static_cast<std::int64_t>(o); }

/// A topic and a partition: the unit of assignment, ordering and commit.
struct TopicPartition {
  std::string topic;
  Partition partition{};

  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
};

/// What became of a message after its handler ran.
enum class Outcome {
  done,   ///< processed: the message may be committed
  retry,  ///< transient failure: deliver it again later (never committed before that)
  dead,   ///< permanent failure: it belongs in the dead-letter topic
};

/// What may run in parallel when records are processed concurrently (see
/// ParallelPolicy in kc/config.hpp).
enum class Ordering {
  partition,  ///< one record at a time per partition, in offset order (partitions in parallel)
  key,        ///< one at a time per key within a partition, in offset order; keys in parallel
  unordered,  ///< any records in parallel, within the in-flight limits
};

}  // namespace kc

template <>
struct std::hash<kc::TopicPartition> {
  std::size_t operator()(const kc::TopicPartition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31u + static_cast<std::size_t>(kc::to_int(tp.partition));
  }
};
