// Dead letters: where a record goes when it cannot be handled, and the
// dead-letter record's header names. The handler's error types and the retry
// policy are in kc/retry.hpp (included here, where they used to live).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "kc/retry.hpp"

namespace kc {

/// Which metadata headers a dead-letter record carries.
enum class DeadLetterHeaders {
  kc,      ///< kc's headers (kHeader* below), all text
  spring,  ///< Spring Kafka's kafka_dlt-* set, encoded as Spring does
  both,
};

/// Where dead letters go. The dead-letter record keeps the original key,
/// value and headers byte for byte and adds metadata headers. A failed
/// record counts as done (and may be committed) only after the broker
/// acknowledged its dead letter; while the dead-letter topic cannot be
/// written, the write is retried with backoff and the commit point stays.
///
/// Dead letters are on when `enabled` is true or `topic` is set: see
/// active(), which is what the consumer reads. So `enabled = true` writes to
/// the default `{topic}.dead-letter`, and naming a `topic` is enough on its
/// own, on the struct as with set("dlq.topic") (dlq.topic in a file, env or
/// flag). To turn them off clear both; set("dlq.enabled", "false") does, so
/// a later source (env, flag) can turn off what an earlier one named.
struct DeadLetterPolicy {
  /// The topic used when `topic` is empty; `{topic}` is the source topic.
  static constexpr std::string_view kDefaultTopic = "{topic}.dead-letter";

  /// On with the default topic (or with `topic` when set). Both off: a dead
  /// record stops its partition (nothing at or past it is committed).
  bool enabled = false;
  /// Topic name; `{topic}` is replaced by the source topic. Empty: not
  /// named (kDefaultTopic, used when `enabled`). Not empty: dead letters on.
  std::string topic;
  DeadLetterHeaders headers = DeadLetterHeaders::kc;
  /// Error messages longer than this are cut (with "..." appended).
  std::size_t max_error_message = 1024;
  /// Backoff between attempts to write a dead letter that failed.
  std::chrono::milliseconds write_backoff{1000};
  std::chrono::milliseconds write_backoff_max{30000};

  /// Whether failed records are written to a dead-letter topic: `enabled`
  /// or a `topic` named. Pure; any thread.
  bool active() const noexcept { return enabled || !topic.empty(); }

  /// The dead-letter topic for `source_topic`: `topic` (kDefaultTopic when
  /// empty) with `{topic}` replaced. Pure; any thread; throws std::bad_alloc.
  std::string topic_for(std::string_view source_topic) const;
};

// kc's dead-letter metadata headers (text values).
inline constexpr std::string_view kHeaderSourceTopic = "kc.dlq.source.topic";
inline constexpr std::string_view kHeaderSourcePartition = "kc.dlq.source.partition";
inline constexpr std::string_view kHeaderSourceOffset = "kc.dlq.source.offset";
inline constexpr std::string_view kHeaderSourceTimestamp = "kc.dlq.source.timestamp";  ///< ms since epoch
inline constexpr std::string_view kHeaderGroup = "kc.dlq.group";
inline constexpr std::string_view kHeaderErrorType = "kc.dlq.error.type";
inline constexpr std::string_view kHeaderErrorMessage = "kc.dlq.error.message";
inline constexpr std::string_view kHeaderAttempts = "kc.dlq.attempts";
inline constexpr std::string_view kHeaderFailedAt = "kc.dlq.failed.at";  ///< UTC, ISO 8601

/// Added by `kc dlq redrive`: how many times the record was redriven.
inline constexpr std::string_view kHeaderRedriveCount = "kc.redrive.count";

// Spring Kafka's dead-letter headers (DeadLetterPublishingRecoverer):
// partition as a 4-byte and offset/timestamp as 8-byte big-endian integers,
// the others as UTF-8 text.
inline constexpr std::string_view kSpringOriginalTopic = "kafka_dlt-original-topic";
inline constexpr std::string_view kSpringOriginalPartition = "kafka_dlt-original-partition";
inline constexpr std::string_view kSpringOriginalOffset = "kafka_dlt-original-offset";
inline constexpr std::string_view kSpringOriginalTimestamp = "kafka_dlt-original-timestamp";
inline constexpr std::string_view kSpringOriginalTimestampType = "kafka_dlt-original-timestamp-type";
inline constexpr std::string_view kSpringOriginalConsumerGroup = "kafka_dlt-original-consumer-group";
inline constexpr std::string_view kSpringExceptionFqcn = "kafka_dlt-exception-fqcn";
inline constexpr std::string_view kSpringExceptionMessage = "kafka_dlt-exception-message";

}  // namespace kc
