// The dead-letter writer: copies a failed record, adds metadata headers and
// produces it to the dead-letter topic, retrying the write until the broker
// acknowledges it. Private to the library; driven by the poll thread.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kc/deadletter.hpp"
#include "kc/producer.hpp"
#include "kc/types.hpp"

namespace kc::detail {

/// A dead letter the broker acknowledged: its source record is done.
struct DeadLetterAck {
  TopicPartition source;
  std::int64_t offset = -1;
  bool retry = false;  ///< a copy to a retry topic, not a dead letter
};

/// Why a record died, for the metadata headers.
struct DeadLetterCause {
  std::string type;
  std::string message;
  int attempts = 1;
};

/// Produces dead letters with a kc::Producer (kc's one producer path, its
/// defaults: idempotent, acks=all) that never blocks: a full queue is a
/// failed write, retried with the policy's backoff.
/// Threads: all calls on one thread (the poll thread). The producer's
/// delivery thread only queues the reports; poll() and drain() apply them
/// on the poll thread, so acknowledgements reach the offsets there as before.
/// Ownership: each record is copied at write(); the copy lives until the
/// broker acknowledged its dead letter.
class DeadLetterWriter {
 public:
  /// Creates the producer (no I/O yet). `client_props` are the consumer's
  /// properties: their connection and security ones are used. Throws kc::Error.
  DeadLetterWriter(const std::string& bootstrap, const std::map<std::string, std::string>& client_props,
                   DeadLetterPolicy policy, std::string group);
  ~DeadLetterWriter();
  DeadLetterWriter(const DeadLetterWriter&) = delete;
  DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

  /// Queues the dead letter of `m`. Does not block (may look up the
  /// dead-letter topic's partition count once, bounded by 2 s).
  void write(const rd_kafka_message_t* m, const DeadLetterCause& cause);

  /// Queues a copy of `m` to the retry topic `topic` (non-blocking retries),
  /// with kc.retry.attempt = next_attempt, kc.retry.due = due_ms (ms since
  /// the epoch) and kc.retry.topic = origin; earlier kc.retry.* headers are
  /// replaced. Acknowledged like a dead letter.
  void write_retry(const rd_kafka_message_t* m, const std::string& topic, int next_attempt, std::int64_t due_ms,
                   const std::string& origin);

  /// Applies the delivery reports that came in and re-writes whose backoff
  /// has passed; appends acknowledged dead letters to `acked`. Waits up to
  /// `wait` for a report when none is there.
  void poll(std::vector<DeadLetterAck>& acked, std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  /// Polls until nothing is in flight or `deadline`; returns true when drained.
  bool drain(std::vector<DeadLetterAck>& acked, std::chrono::steady_clock::time_point deadline);

  /// Forgets the dead letters of `tp` that are not acknowledged yet (after a
  /// revoke or loss: the next owner dead-letters them again). Their
  /// acknowledgements, if they come, are not reported.
  void forget(const TopicPartition& tp);

  /// Dead letters written and not yet acknowledged (including those waiting
  /// for a re-write), in all and for one partition.
  std::size_t in_flight() const noexcept { return entries_.size(); }
  std::size_t in_flight(const TopicPartition& tp) const noexcept;

  std::uint64_t failures() const noexcept { return failures_; }

  struct Entry;

 private:
  std::unique_ptr<Entry> copy_record(const rd_kafka_message_t* m, bool drop_retry_headers);
  void enqueue(std::unique_ptr<Entry> e, std::string topic);
  void produce(Entry& e);
  std::optional<std::int32_t> partition_for(const std::string& topic, std::int32_t source_partition);
  bool route(Entry& e, std::chrono::steady_clock::time_point now);

  static constexpr std::chrono::seconds kTopicRecheck{1};

  DeadLetterPolicy policy_;
  std::string group_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Entry>> entries_;
  std::map<TopicPartition, std::size_t> per_partition_;
  std::uint64_t next_id_ = 1;
  std::uint64_t failures_ = 0;
  struct TopicInfo {
    int partitions = -1;
    std::chrono::steady_clock::time_point checked;
  };
  std::map<std::string, TopicInfo> topics_;
  std::set<std::string> missing_reported_;
  // id, error ("" = ok): filled by the delivery callbacks (producer's
  // delivery thread) and by failed enqueues (poll thread), under reports_mu_.
  std::mutex reports_mu_;
  std::condition_variable reports_cv_;
  std::vector<std::pair<std::uint64_t, std::string>> reports_;
  std::vector<std::pair<std::uint64_t, std::string>> taken_;  // poll()'s scratch
  // Last, so it is destroyed first: its destructor purges what is in flight
  // and the callbacks of those records still use reports_.
  Producer producer_;
};

}  // namespace kc::detail
