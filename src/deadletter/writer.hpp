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
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kc/deadletter.hpp"
#include "kc/exactly_once.hpp"
#include "kc/producer.hpp"
#include "kc/types.hpp"

namespace kc::detail {

/// A dead letter the broker acknowledged: its source record is done.
struct DeadLetterAck {
  TopicPartition source;
  std::int64_t offset = -1;
  bool retry = false;  ///< a copy to a retry topic, not a dead letter
  /// >= 0: a sink's outbox row sent by send_pending() (its id); the source
  /// record was done in its transaction already.
  std::int64_t forward_id = -1;
};

/// A topic kc writes to besides the sink: a dead-letter or retry topic, with
/// the source topic whose records go there.
struct TargetTopic {
  std::string name;
  std::string source;
  std::string role;  ///< "dead-letter" or "retry", for messages
};

/// Makes sure every target exists. Each is looked up; a missing one is
/// created when `create` (with its source's partition count and the broker's
/// default replication factor), else, or when the broker refuses to create
/// it (not authorized, a policy), that is an error naming the topic and the
/// key auto_create_topics. A target whose source does not exist (yet) is
/// skipped and its source appended to `deferred` (the consumer checks it
/// again when the source is assigned). Returns the partition count of each
/// target checked. Uses a short-lived client of its own with the
/// connection and security properties of `client_props`. Blocking: metadata
/// and CreateTopics round trips, bounded by `timeout`. Any thread. Throws
/// kc::Error: config_invalid_value for a missing target that may not be
/// created, kafka (retriable) when the cluster does not answer in time.
std::map<std::string, int> ensure_topics(const std::string& bootstrap,
                                         const std::map<std::string, std::string>& client_props,
                                         const std::vector<TargetTopic>& targets, bool create,
                                         std::chrono::milliseconds timeout, std::vector<std::string>& deferred);

/// Why a record died, for the metadata headers.
struct DeadLetterCause {
  std::string type;
  std::string message;
  int attempts = 1;
};

/// What the metadata headers of a dead letter say about its record.
struct DeadLetterMetadata {
  std::string_view source_topic;
  std::int32_t source_partition = 0;
  std::int64_t source_offset = -1;
  std::int64_t source_timestamp = -1;  ///< ms since the epoch
  int timestamp_type = 0;              ///< rd_kafka_timestamp_type_t
  std::string_view group;
  std::string_view error_type;
  std::string_view error_message;  ///< as written (cut already)
  int attempts = 1;
  std::string_view failed_at;  ///< UTC, ISO 8601; not used for Spring's headers
};

/// Appends the metadata headers of a dead letter to `headers`: kc's
/// kc.dlq.* (all text) unless `format` is spring, then Spring's kafka_dlt-*
/// (partition, offset and timestamp as big-endian integers) unless it is kc.
/// read_dead_letter() (reader.hpp) reads them back. Pure; any thread;
/// throws only std::bad_alloc.
void append_dead_letter_headers(const DeadLetterMetadata& md, DeadLetterHeaders format,
                                std::vector<std::pair<std::string, std::optional<std::string>>>& headers);

/// Produces dead letters with a kc::Producer (kc's one producer path, its
/// defaults: idempotent, acks=all) that never blocks: a full queue is a
/// failed write, retried with the policy's backoff. A target topic's
/// partition count is known from ensure_topics() (known_partitions()) or
/// looked up by a thread of the writer's own, never on the caller's thread:
/// while a topic is missing its dead letters wait (missing_topics() names
/// it) and are routed once it is there.
/// Threads: all calls on one thread (the poll thread). The producer's
/// delivery thread only queues the reports and the lookup thread only fills
/// the topic table; poll() and drain() apply both on the poll thread, so
/// acknowledgements reach the offsets there as before.
/// Ownership: each record is copied at write(); the copy lives until the
/// broker acknowledged its dead letter.
class DeadLetterWriter {
 public:
  /// A dead letter or retry copy: the record's bytes and headers, its
  /// target, and its state in the writer.
  struct Entry {
    std::uint64_t id = 0;
    TopicPartition source;
    std::int64_t offset = -1;
    std::int64_t timestamp = -1;
    int timestamp_type = 0;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;  // original, then metadata
    std::string topic;
    std::int32_t partition = RD_KAFKA_PARTITION_UA;
    bool in_producer = false;        // handed to librdkafka, report pending
    std::chrono::steady_clock::time_point produced_at;  // when it was handed to librdkafka
    bool retry = false;              // to a retry topic (not a dead letter)
    std::int64_t forward_id = -1;    // a sink's outbox row (send_pending()): no source record waits for it
    bool waiting_for_topic = false;  // the target topic is missing: not handed to librdkafka yet
    int failures = 0;
    std::chrono::steady_clock::time_point retry_at;
  };

  /// Creates the producer (no I/O yet). `client_props` are the consumer's
  /// properties: their connection and security ones are used. Throws kc::Error.
  DeadLetterWriter(const std::string& bootstrap, const std::map<std::string, std::string>& client_props,
                   DeadLetterPolicy policy, std::string group);
  ~DeadLetterWriter();
  DeadLetterWriter(const DeadLetterWriter&) = delete;
  DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

  /// Queues the dead letter of `m`. Does not block.
  void write(const rd_kafka_message_t* m, const DeadLetterCause& cause);

  /// Queues a copy of `m` to the retry topic `topic` (non-blocking retries),
  /// with kc.retry.attempt = next_attempt, kc.retry.due = due_ms (ms since
  /// the epoch) and kc.retry.topic = origin; earlier kc.retry.* headers are
  /// replaced. Acknowledged like a dead letter.
  void write_retry(const rd_kafka_message_t* m, const std::string& topic, int next_attempt, std::int64_t due_ms,
                   const std::string& origin);

  /// write() and write_retry() in two steps, for exactly-once: the copy is
  /// built (owning its bytes) and offered to the sink's transaction
  /// (as_forwarded(): a view valid while the entry lives; its partition is
  /// the one route() would choose from what is known now, -1 otherwise,
  /// never looked up here); only when the sink cannot take it is it queued
  /// here with send().
  std::unique_ptr<Entry> make_dead_letter(const rd_kafka_message_t* m, const DeadLetterCause& cause);
  std::unique_ptr<Entry> make_retry(const rd_kafka_message_t* m, const std::string& topic, int next_attempt,
                                    std::int64_t due_ms, const std::string& origin);
  ForwardedRecord as_forwarded(const Entry& e);
  void send(std::unique_ptr<Entry> e);

  /// Queues a record of a sink's outbox (exactly-once with a database
  /// sink); its acknowledgement carries DeadLetterAck::forward_id. It does
  /// not count in in_flight(tp): no source record waits for it.
  void send_pending(const PendingForward& p);

  /// Applies the delivery reports that came in and re-writes whose backoff
  /// has passed; appends acknowledged dead letters to `acked`. Waits up to
  /// `wait` for a report when none is there.
  void poll(std::vector<DeadLetterAck>& acked, std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  /// Polls until nothing is in flight (with `only`: nothing of those source
  /// partitions) or `deadline`; returns true when drained. Stops early (false)
  /// once every dead letter left waits for a topic that a lookup (asked at
  /// once) found missing: nothing would come of waiting.
  bool drain(std::vector<DeadLetterAck>& acked, std::chrono::steady_clock::time_point deadline,
             const std::vector<TopicPartition>* only = nullptr);

  /// The partition count of `topic`, known already (from ensure_topics()).
  void known_partitions(const std::string& topic, int partitions);

  /// Target topics that are missing (a lookup found none) while dead letters
  /// wait for them; changes() counts the changes of this set, so a caller
  /// can tell cheaply when to look again.
  std::set<std::string> missing_topics() const;
  std::uint64_t changes() const noexcept { return changes_; }

  /// Forgets the dead letters of `tp` that are not acknowledged yet (after a
  /// revoke or loss: the next owner dead-letters them again). Their
  /// acknowledgements, if they come, are not reported.
  void forget(const TopicPartition& tp);

  /// Dead letters written and not yet acknowledged (including those waiting
  /// for a re-write), in all and for one partition.
  std::size_t in_flight() const noexcept { return entries_.size(); }
  std::size_t in_flight(const TopicPartition& tp) const noexcept;

  std::uint64_t failures() const noexcept { return failures_; }

 private:
  std::unique_ptr<Entry> copy_record(const rd_kafka_message_t* m, bool drop_retry_headers);
  void enqueue(std::unique_ptr<Entry> e);
  void produce(Entry& e);
  std::optional<std::int32_t> partition_for(const std::string& topic, std::int32_t source_partition);
  bool route(Entry& e, std::chrono::steady_clock::time_point now);
  void look_up(const std::string& topic);  // asks the lookup thread (topics_mu_ held)
  void lookups();                          // the lookup thread's loop
  void check_topics(std::chrono::steady_clock::time_point now);

  static constexpr std::chrono::seconds kTopicRecheck{1};
  static constexpr std::chrono::seconds kSlowDelivery{5};
  static constexpr std::chrono::milliseconds kCheckTopicsEvery{250};
  std::chrono::steady_clock::time_point topics_checked_;  // poll thread

  DeadLetterPolicy policy_;
  std::string group_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Entry>> entries_;
  std::map<TopicPartition, std::size_t> per_partition_;
  std::uint64_t next_id_ = 1;
  std::uint64_t failures_ = 0;
  // Target topics: filled by known_partitions() and the lookup thread, read
  // by the poll thread; under topics_mu_.
  struct TopicInfo {
    int partitions = -1;      // -1: not known (never looked up, missing, or gone)
    bool missing = false;     // the last lookup found no such topic
    bool asked = false;       // a lookup is queued or running
    std::chrono::steady_clock::time_point checked;
  };
  mutable std::mutex topics_mu_;
  std::condition_variable topics_cv_;
  std::map<std::string, TopicInfo> topics_;
  std::vector<std::string> to_look_up_;
  bool stopping_ = false;
  std::set<std::string> missing_reported_;  // poll thread
  std::uint64_t changes_ = 0;                 // poll thread
  // id, error ("" = ok): filled by the delivery callbacks (producer's
  // delivery thread) and by failed enqueues (poll thread), under reports_mu_.
  std::mutex reports_mu_;
  std::condition_variable reports_cv_;
  std::vector<std::pair<std::uint64_t, std::string>> reports_;
  std::vector<std::pair<std::uint64_t, std::string>> taken_;  // poll()'s scratch
  // After the members it uses; joined by the destructor before any member
  // goes (it asks producer_ for metadata).
  std::thread lookup_thread_;
  // Last, so it is destroyed first: its destructor purges what is in flight
  // and the callbacks of those records still use reports_.
  Producer producer_;
};

}  // namespace kc::detail
