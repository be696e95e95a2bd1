// kc::PostgresSink: rows and partition offsets in one PostgreSQL transaction
// (exactly-once into PostgreSQL), with an owner epoch per partition.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kc/exactly_once.hpp"

namespace pqxx {
class dbtransaction;
}

namespace kc {

/// A PostgreSQL database (libpqxx) as a transactional sink. Tables (created
/// if absent, serialised by an advisory lock so sinks starting at once do
/// not race): kc_offsets(grp, topic, part, next_offset, epoch) with primary
/// key (grp, topic, part), and <table> (default kc_records: topic, partition,
/// "offset", timestamp_ms, key text, value jsonb; no unique key, so
/// duplicates stay visible) for insert(), and kc_outbox(id bigint identity
/// primary key, grp text, src_topic text, src_part integer, src_offset
/// bigint, topic text, part integer, key bytea, value bytea, headers bytea)
/// with index kc_outbox_pending on (grp, src_topic, src_part, id) for
/// forward() (the same columns as kc::SqliteSink's).
///
/// Fencing as in kc::SqliteSink: claim() adds one to each partition's epoch
/// (its own transaction) and remembers it; commit() stores the offsets with
/// `UPDATE ... WHERE epoch = mine` and rolls everything back when a
/// partition's row no longer has this sink's epoch (another consumer claimed
/// it): kc::Error(errc::io, "... fenced: <topic>[<p>] ..."), not retriable.
///
/// insert() buffers rows and sends them at commit() with one COPY (one round
/// trip per batch, not per record; rows of finished records go out early
/// once they pass 8 MiB).
///
/// A lost connection (server down or restarted), a statement timeout, a
/// serialization failure or deadlock is a retriable() kc::Error (errc::io);
/// the next begin(), claim() or resume() reconnects (throwing retriable()
/// again while the server is down), so the consumer stalls during an outage
/// and goes on by itself after it, with the same sink. A connection lost
/// during COMMIT is retriable too (whether it committed is unknown until
/// resume()). Any other SQL error is a non-retriable kc::Error naming the
/// statement; calls out of order are errc::misuse.
///
/// Blocking: network calls to the server, each bounded by
/// `statement_timeout` (set for the session) and `connect_timeout` (libpq's,
/// whole seconds), both shortened by set_deadline(). Not bounded: a network
/// partition while waiting for an answer (no TCP keepalive settings are
/// added). Threads: one thread at a time. Errors: only kc::Error, naming the
/// server (never the password).
class PostgresSink final : public TransactionalSink {
 public:
  struct Options {
    std::string uri;  ///< postgresql://user@host:port/db, or libpq key=value pairs
    std::string group;
    /// A plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 bytes;
    /// else errc::config_invalid_value); used quoted, so its case is kept.
    /// kc_offsets and kc_outbox are reserved (in any case).
    std::string table = "kc_records";
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds statement_timeout{30000};
  };
  /// Connects and creates the tables. Throws kc::Error (retriable() when
  /// the server cannot be reached; not for bad credentials or a database
  /// that does not exist).
  explicit PostgresSink(Options options);
  ~PostgresSink() override;
  PostgresSink(const PostgresSink&) = delete;
  PostgresSink& operator=(const PostgresSink&) = delete;

  /// Also while a transaction is open (a cooperative rebalance): then on a
  /// second connection, opened for the call.
  std::vector<SinkPosition> claim(std::span<const TopicPartition> tps) override;
  /// owned: the stored epoch is the one this sink's claim() got (false for
  /// a partition it never claimed or release()d).
  std::vector<SinkPosition> resume(std::span<const TopicPartition> tps) override;
  void release(std::span<const TopicPartition> tps) override;
  void begin() override;
  void record_begin() override;
  void record_end(bool keep) override;
  /// Sends the buffered rows, stores `offsets` (each partition must have
  /// been claimed by this sink, else errc::misuse) and commits; empty
  /// `offsets`: rows only (at-least-once use). `group` is not used. On any
  /// error the transaction is rolled back (or, connection lost during
  /// COMMIT, in doubt) and closed.
  void commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) override;
  void abort() noexcept override;

  /// The outbox. A failed record's dead letter (or retry-topic copy) is
  /// part of the atomic unit: forward() writes it as one kc_outbox row into
  /// the consumer's transaction, so it commits if and only if the offsets
  /// past the failed record commit (an abort, a failed or fenced commit
  /// drops it with everything else). After the commit the consumer produces
  /// what pending_forwards() returns with its own idempotent producer and
  /// calls forwards_sent() once the broker acknowledged it; a crash in
  /// between produces a row again (at least once into the topic, exactly
  /// once in the database).
  ///
  /// forward(): buffers the row as COPY text (no round trip; sent at
  /// commit() with one COPY after the rows, early once it passes 8 MiB).
  /// Returns true. Row: the sink's group, r.source and r.source_offset,
  /// r.topic and r.partition (-1: any), key and value as bytea (NULL for
  /// nullopt, empty for empty), headers in kc's byte-exact encoding
  /// (src/sink/README.md). Throws kc::Error: errc::misuse without an open
  /// transaction or inside a record (between record_begin() and
  /// record_end()); an early COPY's failure as commit() would.
  bool forward(const ForwardedRecord& r) override;
  /// Committed kc_outbox rows of this sink's group whose source partition
  /// is in `owned`, oldest (lowest id) first, at most `max`. One statement,
  /// one round trip in autocommit (after set_deadline(): in a transaction,
  /// with the SET LOCAL; the index finds each partition's oldest rows, so it
  /// is cheap when there are none); reconnects like claim(). Throws
  /// kc::Error: errc::misuse while the sink's transaction is open (between
  /// begin() and commit()/abort()); errc::io for a lost connection or a
  /// timeout (retriable), or a row whose headers are not in kc's encoding
  /// (naming its id).
  std::vector<PendingForward> pending_forwards(std::span<const TopicPartition> owned, std::size_t max) override;
  /// Deletes the kc_outbox rows with these ids (of this group; ids already
  /// gone are fine) with one DELETE of its own (autocommit, as
  /// pending_forwards()); no round trip for no ids. Identity ids are never reused, so a repeated call
  /// cannot delete a newer row. Throws kc::Error like pending_forwards().
  void forwards_sent(std::span<const std::int64_t> ids) override;
  /// From now on each statement the sink runs in a transaction is bounded
  /// by the time left: before it, `SET LOCAL statement_timeout` = min(the
  /// option, time left; 1 ms once passed) (one more round trip per
  /// statement, only once a deadline is set; LOCAL: the session's setting
  /// is untouched), so a statement waiting for a lock is cancelled by the
  /// deadline with the usual retriable timeout error. The handler's own
  /// statements get the time left at begin(). A (re)connection uses
  /// connect_timeout = min(the option, time left), whole seconds, at least
  /// libpq's 2 s; once the deadline passed none is tried (retriable
  /// kc::Error at once). A later call replaces the deadline.
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept override;

  /// Buffers one row for the open transaction (sent at commit()); between
  /// record_begin() and record_end(false) it is dropped again.
  /// timestamp_ms < 0 is stored as NULL; `value` must be JSON text (the
  /// server rejects anything else at commit(), failing the transaction).
  /// Throws kc::Error (errc::misuse without an open transaction).
  void insert(const RecordRow& row);
  /// The open transaction, for a handler's own statements. During a record
  /// it is a subtransaction (SAVEPOINT) taken at the first call in that
  /// record: record_end(false) rolls back to it, and a statement that fails
  /// undoes only this record's statements (the transaction goes on);
  /// record_end(true) after such a failure throws (the record's writes are
  /// incomplete). Outside a record: the transaction itself (libpqxx aborts
  /// it when a statement fails). Valid until record_end(), commit() or
  /// abort(). Throws kc::Error (errc::misuse without an open transaction).
  pqxx::dbtransaction& transaction();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
