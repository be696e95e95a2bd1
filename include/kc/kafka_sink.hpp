// kc::KafkaTransactionalSink: consume-transform-produce exactly once through
// Kafka transactions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/exactly_once.hpp"
#include "kc/types.hpp"

namespace kc {

/// A transactional producer paired with a consumer: what the handler
/// produces and the consumed offsets (sent to the transaction with the
/// consumer's group metadata, KIP-447) commit in one Kafka transaction.
/// Readers of the output must use isolation.level=read_committed.
///
/// Errors (librdkafka's transactional API), for each transactional call:
/// - retriable: the same call is retried until commit_timeout is used up;
/// - abortable (rd_kafka_error_txn_requires_abort: a record the broker
///   refused, ...): the sink aborts the transaction and commit() throws
///   kc::Error(errc::kafka) with retriable() (the consumer rewinds to the
///   committed offsets and goes on with the same producer);
/// - fatal (fenced by a newer producer with the same transactional.id, ...),
///   neither retriable nor abortable, or not done within commit_timeout (the
///   transaction's outcome is unknown): one spdlog error line, the producer
///   is destroyed (purged, not flushed) and kc::Error(errc::kafka_fatal) is
///   thrown: retriable() when rebuild_on_fatal (a new producer with the same
///   transactional.id is created at the next resume() or begin(); its
///   init_transactions fences the old epoch and finishes or aborts the open
///   transaction), fatal() otherwise (then every later call throws fatal()
///   and the consumer stops).
///
/// Threads: one thread at a time (the consumer's poll thread); delivery
/// reports are served on it (inside produce/commit). Blocking: the
/// constructor, resume() and begin() when they rebuild the producer,
/// commit() and abort() wait for the broker, each bounded by commit_timeout
/// (commit() after an abortable error: plus up to commit_timeout for the
/// abort); produce() and record_end(true) only while the local queue is
/// full (bounded likewise); claim() never.
class KafkaTransactionalSink final : public TransactionalSink {
 public:
  struct Options {
    std::string bootstrap_servers;
    /// Stable per consumer instance, so that a restarted instance fences
    /// the one it replaces and aborts its open transaction at once.
    std::string transactional_id;
    /// Extra producer properties (transaction.timeout.ms, linger.ms, ...);
    /// kc::Producer's defaults (enable.idempotence=true, acks=all,
    /// compression.type=lz4, linger.ms=5, batch.size=65536) and
    /// retry.backoff.ms=20 are set first (librdkafka refuses other idempotence
    /// or acks values with a transactional.id); transactional.id is not
    /// allowed here.
    std::map<std::string, std::string> librdkafka;
    /// Bound of each blocking step: init_transactions, one commit (offsets
    /// and commit together), one abort; also of produce()'s wait while the
    /// local queue is full.
    std::chrono::milliseconds commit_timeout{30000};
    /// What a lost producer (see above) leads to: a rebuild (true) or a
    /// fatal() error that stops the consumer (false).
    bool rebuild_on_fatal = true;
  };
  /// Creates the producer and initialises transactions, which fences an
  /// older producer with the same transactional.id (blocks, bounded by
  /// commit_timeout). Throws kc::Error: config_missing (transactional_id,
  /// bootstrap_servers), config_unknown_key / config_invalid_value naming a
  /// bad property, config_forbidden (librdkafka.transactional.id);
  /// errc::kafka with retriable() when the broker cannot be reached in
  /// time, without it for other init_transactions failures.
  explicit KafkaTransactionalSink(Options options);
  /// Aborts an open transaction (bounded by commit_timeout), then destroys
  /// the producer. Never throws.
  ~KafkaTransactionalSink() override;
  KafkaTransactionalSink(const KafkaTransactionalSink&) = delete;
  KafkaTransactionalSink& operator=(const KafkaTransactionalSink&) = delete;

  /// Kafka sinks store no offsets of their own: positions are nullopt (the
  /// group's committed offsets), always owned (the group fences zombies).
  std::vector<SinkPosition> claim(std::span<const TopicPartition> tps) override;
  /// As claim(); recreates the producer first if a failure left it unusable
  /// (blocks up to commit_timeout; throws errc::kafka retriable() while the
  /// broker is unreachable, and kafka_fatal fatal() after a fatal error
  /// with rebuild_on_fatal=false).
  std::vector<SinkPosition> resume(std::span<const TopicPartition> tps) override;
  /// rd_kafka_begin_transaction; recreates a lost producer first, as
  /// resume(). Throws misuse when a transaction is already open.
  void begin() override;
  /// Starts staging: produce() copies records until record_end().
  void record_begin() override;
  /// keep: hands the staged records to the producer (throws as produce());
  /// !keep: drops them (they never reach Kafka).
  void record_end(bool keep) override;
  /// Sends `offsets` (next offsets to read) with `group` (required when
  /// offsets is not empty) to the transaction, then commits it. Errors: see
  /// the class comment; misuse without an open transaction.
  void commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) override;
  /// Aborts the open transaction, if any (bounded by commit_timeout); when
  /// that fails the producer is lost as after a fatal error (logged; rebuilt
  /// at the next resume()/begin()). Never throws.
  void abort() noexcept override;
  bool commits_group_offsets() const noexcept override { return true; }
  /// Produces `r` (a dead letter or a retry-topic copy) in the open
  /// transaction, as produce() outside a record: it commits with the
  /// transaction or not at all. Returns true. Throws as produce().
  bool forward(const ForwardedRecord& r) override;
  /// Every blocking step from now on ends by `deadline` (when sooner than
  /// commit_timeout); one that cannot finish in time fails as a timeout
  /// does (the producer is recreated later, fencing its open transaction).
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept override;
  /// Transactional calls block in slices of at most 500 ms and give up (as
  /// after a timeout: the producer is recreated later) once `*stop` is set.
  void set_interrupt(const std::atomic<int>* stop) noexcept override;

  /// Produces one record in the open transaction. During a handler call the
  /// record is staged and handed to the producer when the handler's record
  /// is kept (record_end(true)); a failed record's output is dropped.
  /// partition < 0: the partitioner chooses (by key). Header values may be
  /// null. Delivery failures are not thrown here: they make commit() fail
  /// (abortable). Throws kc::Error: misuse outside a transaction;
  /// errc::kafka when the producer refuses the record (retriable() when the
  /// transaction already failed or the local queue stayed full for
  /// commit_timeout); kafka_fatal as commit() on a fatal error.
  void produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
               std::int32_t partition = -1,
               const std::vector<std::pair<std::string, std::optional<std::string>>>& headers = {});

  /// Producers created so far (1 + rebuilds).
  std::uint64_t producers_created() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
