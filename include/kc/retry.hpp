// Failure handling before the dead-letter topic: the exceptions a handler
// throws to say what went wrong, how a failed record is tried again, and the
// headers of a record forwarded to a retry topic.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kc {

/// Thrown by a handler for a transient failure: the record is tried again
/// after a backoff, up to RetryPolicy::max_attempts, then dead-lettered.
class RetriableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by a handler for a failure that retrying cannot fix: the record
/// goes to the dead-letter topic at once.
class PermanentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A record that cannot be decoded (bad JSON, wrong wire format, ...): a
/// permanent failure. Its message names what was wrong.
class DecodeError : public PermanentError {
 public:
  using PermanentError::PermanentError;
};

/// How failed records are tried again. While a record waits for its next
/// attempt its partition is paused (other partitions go on) and the poll loop
/// keeps running, so a long backoff never costs the group membership.
struct RetryPolicy {
  /// Handler calls in all, the first included (1: no retry).
  int max_attempts = 3;
  /// Delay before the second attempt; each further delay is multiplied by
  /// `multiplier`, capped at `backoff_max`, and spread by +-`jitter` (0..1).
  std::chrono::milliseconds backoff{1000};
  std::chrono::milliseconds backoff_max{30000};
  double multiplier = 2.0;
  double jitter = 0.2;
  /// Decides whether an exception thrown by a handler is worth a retry.
  /// Default (empty): PermanentError (and DecodeError) are not, everything
  /// else is. Runs on the poll thread; must not throw.
  std::function<bool(const std::exception_ptr&)> is_retriable;
  /// Non-blocking retries (Spring's retry topics): instead of pausing the
  /// partition, a failed record is forwarded to `topic_pattern` with level n
  /// (`{topic}.retry.{n}`, n = 1 for the first retry) and its partition goes
  /// on; the consumer also subscribes to the retry topics and handles each
  /// record once its delay has passed, then the dead-letter topic. This GIVES
  /// UP ORDERING: later records of the partition overtake the failed one.
  bool use_topics = false;
  std::string topic_pattern = "{topic}.retry.{n}";

  /// The retry topic of level `n` for `source_topic`.
  std::string retry_topic_for(std::string_view source_topic, int n) const;

  /// The delay before attempt `next_attempt` (2 for the first retry), without
  /// jitter. Pure; any thread.
  std::chrono::milliseconds delay_before(int next_attempt) const noexcept;
};

// Non-blocking retry topics: a record forwarded to `<topic>.retry.<n>`
// carries these (text values).
inline constexpr std::string_view kRetryHeaderPrefix = "kc.retry.";
inline constexpr std::string_view kHeaderRetryAttempt = "kc.retry.attempt";  ///< the attempt it is due for
inline constexpr std::string_view kHeaderRetryDue = "kc.retry.due";          ///< ms since the epoch
inline constexpr std::string_view kHeaderRetryTopic = "kc.retry.topic";      ///< the topic it first came from

}  // namespace kc
