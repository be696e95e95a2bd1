// Exactly-once: a sink whose output and the consumed offsets commit together.
//
// A kc::Consumer given a TransactionalSink (ConsumerHooks::exactly_once)
// opens a transaction on the sink before the first record of a batch, lets
// the handler write into it, and at each commit point (CommitPolicy: by
// count and by time) commits the sink's transaction together with the next
// offset of every partition that advanced. The offsets live where the
// output lives (a database table, or the consumer group's offsets written by
// a Kafka transaction), so after a crash the consumer restarts exactly after
// the last committed output: nothing lost, nothing written twice.
//
// Sinks that ship with kc: kc::SqliteSink (kc/sqlite_sink.hpp),
// kc::PostgresSink (kc/postgres_sink.hpp), kc::KafkaTransactionalSink
// (kc/kafka_sink.hpp). An application may implement its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/types.hpp"

// librdkafka's consumer group metadata (rdkafka.h), passed through opaquely.
struct rd_kafka_consumer_group_metadata_s;

namespace kc {

/// Where a partition stands in a transactional sink.
struct SinkPosition {
  /// False when another consumer claimed the partition since this one did
  /// (this one is a zombie for it and must not write for it).
  bool owned = true;
  /// The next offset to process, as the sink stored it; nullopt when the
  /// sink stores none (then the consumer group's committed offset applies,
  /// or auto.offset.reset when there is none).
  std::optional<Offset> next;
};

/// The next offset to read of one partition, committed with the output.
struct SinkOffset {
  TopicPartition tp;
  Offset next{};
};

/// One record as a row, for the database sinks' built-in mapping (what
/// `kc consume --sink sqlite:PATH|postgres:URI` writes): the table has the
/// columns topic, partition, offset, timestamp_ms, key (text) and value
/// (JSON). Views: valid during the call that takes the row.
struct RecordRow {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = -1;
  /// The key as text (UTF-8 as is; other bytes in base64); nullopt: no key.
  std::optional<std::string_view> key;
  /// The value as one JSON text (a decoded document, or a JSON string);
  /// nullopt: no value (a tombstone).
  std::optional<std::string_view> value;
};

/// One record header as forwarded: name and value (nullopt: a null value).
using ForwardedHeader = std::pair<std::string, std::optional<std::string>>;

/// A copy of a failed record that leaves with the transaction: its dead
/// letter (the original key, value and headers byte for byte plus kc's
/// metadata headers), or its copy for a non-blocking retry topic. Views:
/// valid during the call that takes it.
struct ForwardedRecord {
  std::string_view topic;
  std::int32_t partition = -1;  ///< -1: the producer's partitioner
  std::optional<std::span<const std::byte>> key;    ///< nullopt: a null key
  std::optional<std::span<const std::byte>> value;  ///< nullopt: a null value
  std::span<const ForwardedHeader> headers;
  TopicPartition source;  ///< where the failed record came from
  std::int64_t source_offset = -1;
};

/// A forwarded record a sink keeps in its own store (a database outbox)
/// until kc has produced it: owns its bytes.
struct PendingForward {
  std::int64_t id = 0;  ///< the sink's id of it (forwards_sent() takes it back)
  std::string topic;
  std::int32_t partition = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<ForwardedHeader> headers;
  TopicPartition source;
  std::int64_t source_offset = -1;
};

/// A destination whose writes and the consumed offsets commit atomically.
///
/// Threads: every call comes from the consumer's poll thread, one at a
/// time; the handler (which writes through the sink's own API) runs on that
/// thread too. Errors: kc::Error. A retriable() error (a database or broker
/// that is down) makes the consumer abort, pause, rewind and call resume()
/// until it succeeds; a fatal() one stops the consumer; any other error
/// aborts the transaction and rewinds like a retriable one.
class TransactionalSink {
 public:
  virtual ~TransactionalSink() = default;

  /// Partitions were assigned to this consumer: take them over, so that an
  /// earlier owner's transactions for them fail from now on (fencing), and
  /// say where each starts. Returns one position per partition, in order.
  virtual std::vector<SinkPosition> claim(std::span<const TopicPartition> tps) = 0;

  /// After a failed or aborted transaction: where each partition stands now
  /// and whether this consumer still owns it, without taking it over.
  virtual std::vector<SinkPosition> resume(std::span<const TopicPartition> tps) = 0;

  /// Partitions went away (after their final commit, or lost). Default: nothing.
  virtual void release(std::span<const TopicPartition> tps) { (void)tps; }

  /// Opens a transaction; called before the first record of a batch.
  virtual void begin() = 0;

  /// Around each handler call inside a transaction: record_end(false) undoes
  /// what the handler wrote for this record (it failed: it is retried or
  /// dead-lettered later), record_end(true) keeps it. A throw from either
  /// fails the transaction (the consumer aborts and rewinds).
  virtual void record_begin() {}
  virtual void record_end(bool keep) { (void)keep; }

  /// Commits the open transaction with `offsets` (next offsets to read).
  /// `group` is the consumer's group metadata, for sinks that commit the
  /// offsets to the consumer group inside a Kafka transaction. Throws on
  /// failure; the transaction is then not committed (or not known to be:
  /// resume() tells where things stand).
  virtual void commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) = 0;

  /// Abandons the open transaction, if any. Never throws.
  virtual void abort() noexcept = 0;

  /// Writes `r` (a dead letter or a retry-topic copy) into the open
  /// transaction, between records (never inside record_begin/record_end),
  /// so that it commits or aborts together with the output and the offsets:
  /// the failed record it stands for is done in this transaction. A Kafka
  /// transaction produces it; a database keeps it in an outbox table of the
  /// same transaction, and the consumer produces what pending_forwards()
  /// returns after the commit. Returns false when the sink cannot (the
  /// default): the consumer then produces it itself and holds the record's
  /// partition (processing nothing past it) until the broker acknowledged
  /// it, so a transaction never carries records past an unacknowledged one;
  /// a crash between that acknowledgement and the commit sends it again.
  /// Throws like record_end() (the transaction fails).
  virtual bool forward(const ForwardedRecord& r) {
    (void)r;
    return false;
  }

  /// Sinks with an outbox: forwarded records committed to it and not yet
  /// acknowledged by forwards_sent(), of the partitions in `owned` (claimed
  /// by this consumer), at most `max`, oldest first. Called outside a
  /// transaction. Default: none.
  virtual std::vector<PendingForward> pending_forwards(std::span<const TopicPartition> owned, std::size_t max) {
    (void)owned;
    (void)max;
    return {};
  }
  /// The broker acknowledged these pending forwards: remove them from the
  /// outbox (in a transaction of their own; outside the consumer's). A
  /// crash before this call produces them again: the topic gets them at
  /// least once. Default: nothing.
  virtual void forwards_sent(std::span<const std::int64_t> ids) { (void)ids; }

  /// From now on every call returns by `deadline` (a graceful stop's
  /// deadline): bounded waits inside it are shortened, and a call that
  /// cannot finish by then fails like a timeout (retriable). Default:
  /// nothing (the sink's own bounds apply).
  virtual void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept { (void)deadline; }

  /// The consumer's stop flag: non-zero once a stop was asked (it may turn
  /// non-zero on any thread, or in a signal handler, while a call of this
  /// sink waits on the poll thread). A call that began before the stop and
  /// waits (for a lock, between retries) looks at it at least every few
  /// hundred milliseconds and, once it is set, stops waiting as if its own
  /// timeout had passed, so a stop is not held up by a wait that began
  /// before it; calls made during the stop keep to set_deadline(). Set by
  /// the consumer before run() and cleared (nullptr) before run() returns.
  /// Default: nothing.
  virtual void set_interrupt(const std::atomic<int>* stop) noexcept { (void)stop; }

  /// True when commit() itself commits the offsets to the consumer group
  /// (a Kafka transaction); otherwise the consumer also commits them to the
  /// group afterwards, for lag monitoring only (never read back by kc).
  virtual bool commits_group_offsets() const noexcept { return false; }
};

}  // namespace kc
