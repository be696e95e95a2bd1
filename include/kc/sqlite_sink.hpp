// kc::SqliteSink: rows and partition offsets in one SQLite transaction
// (exactly-once into an SQLite file), with an owner epoch per partition.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kc/exactly_once.hpp"

struct sqlite3;

namespace kc {

/// An SQLite database as a transactional sink. Tables (created if absent):
///   kc_offsets(grp, topic, part, next_offset, epoch): per group and
///     partition, the next offset to process and the owner epoch;
///   <table> (default kc_records): the built-in mapping's rows (insert()):
///     (topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER
///     NOT NULL, timestamp_ms INTEGER, key TEXT, value TEXT (JSON)), no key
///     or index: a duplicate would show;
///   kc_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT, src_topic
///     TEXT, src_part INTEGER, src_offset INTEGER, topic TEXT, part INTEGER,
///     key BLOB, value BLOB, headers BLOB), index kc_outbox_pending on
///     (grp, src_topic, src_part, id): records forward()ed (dead letters,
///     retry copies) committed and not yet produced; see forward().
/// Fencing: claim() adds one to the epoch of each partition and remembers
/// it; commit() stores each offset only where the epoch is still this
/// consumer's (compare-and-set), and rolls the whole transaction back
/// otherwise (errc::io, not retriable, "... fenced: TOPIC[P] ..."; the
/// consumer rewinds and resume() reports the partition as not owned).
/// Without a consumer (at-least-once use): begin(), insert(), commit({}) write
/// rows only; insert() outside begin()/commit() writes its row at once.
/// Locking: SQLite has one writer per file. Between begin() and commit(),
/// insert() rows are buffered in memory and written at commit(), which alone
/// holds the write lock (BEGIN IMMEDIATE ... COMMIT: milliseconds), so a
/// consumer stalled mid-batch does not stop other writers of the file (the
/// other members of its group, their claim() included). Only db() (and a
/// buffer past 64 MiB) takes the lock earlier, until commit() or abort().
/// Durability: WAL journal, synchronous=NORMAL: a commit survives the
/// process being killed; an OS crash or power loss may lose the last
/// commits, rows and offsets together.
/// Blocking: local database calls; a database locked by another connection
/// is waited for up to busy_timeout_ms. Threads: one thread at a time.
/// Errors: kc::Error (errc::io) naming the file and what failed; SQLITE_BUSY
/// or SQLITE_LOCKED after the wait is retriable(). Nothing is fatal().
class SqliteSink final : public TransactionalSink {
 public:
  struct Options {
    std::string path;                  ///< the database file (created if absent)
    std::string group;                 ///< the consumer group whose offsets it keeps
    std::string table = "kc_records";  ///< for insert(); a plain SQL identifier
    int busy_timeout_ms = 10000;
  };
  /// Opens (creates) the file in WAL mode and the tables, and prepares the
  /// insert. Throws kc::Error: errc::config_invalid_value for a `table` that
  /// is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*; kc_offsets,
  /// kc_outbox and sqlite_* are reserved, in any case) or a negative
  /// busy_timeout_ms,
  /// errc::config_missing for an empty path, errc::io when the file cannot
  /// be opened or an existing `table` lacks the columns.
  explicit SqliteSink(Options options);
  /// Rolls back a transaction left open.
  ~SqliteSink() override;
  SqliteSink(const SqliteSink&) = delete;
  SqliteSink& operator=(const SqliteSink&) = delete;

  /// Epoch + 1 for each partition, all in one transaction of its own (also
  /// between begin() and commit() while insert() rows are only buffered:
  /// the claim then holds whatever becomes of them); or, when db() opened
  /// the SQLite transaction, inside that one: then the claim holds only if
  /// it commits, and after an abort resume() claims again. Every position is
  /// owned; next: the stored offset, nullopt when none. errc::misuse during
  /// a record.
  std::vector<SinkPosition> claim(std::span<const TopicPartition> tps) override;
  /// Reads each partition's offset and epoch without claiming: owned when
  /// the epoch is the one this sink's claim() got (a partition never
  /// claimed, or released, is not owned). A partition whose claim was undone
  /// by an abort is claimed again here.
  std::vector<SinkPosition> resume(std::span<const TopicPartition> tps) override;
  /// Forgets the partitions' epochs: commits for them are refused after.
  void release(std::span<const TopicPartition> tps) override;
  /// Starts a transaction: from here insert() buffers its rows. No
  /// database call (the write lock is taken at commit() or db()); does not
  /// block. errc::misuse when a transaction is open.
  void begin() override;
  /// record_end(false) undoes what the handler wrote for this record, the
  /// other records of the transaction stay: its buffered insert() rows are
  /// dropped (no cost), writes through db() (and rows written since) by a
  /// savepoint taken at the record's first db() call. A record not ended
  /// before commit() is kept.
  void record_begin() override;
  void record_end(bool keep) override;
  /// BEGIN IMMEDIATE (unless db() began it; waits up to busy_timeout_ms
  /// for the write lock), the buffered rows, each offset with this sink's
  /// epoch for its partition, then COMMIT. A partition claimed by another
  /// consumer since (or never claimed here): rollback, errc::io "... fenced:
  /// TOPIC[P] ...", not retriable. Busy or locked: rollback, retriable. A
  /// row the table refuses (a constraint of a table of your own) fails here,
  /// not in insert(). Either way nothing is written and the buffer is
  /// dropped: the transaction is over. Empty `offsets`: rows only. `group`
  /// is not used (the offsets live in the database). errc::misuse without
  /// begin().
  void commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) override;
  /// Drops the buffered rows and forwards and rolls back the SQLite
  /// transaction, if any. Never throws.
  void abort() noexcept override;

  /// The outbox. A failed record's dead letter (or retry-topic copy) is
  /// part of the atomic unit: forward() writes it as one kc_outbox row into
  /// the consumer's transaction, so it commits if and only if the offsets
  /// past the failed record commit (an abort, a failed or fenced commit
  /// drops it with everything else, and nothing after an unacknowledged
  /// dead letter is ever written twice). After the commit the consumer
  /// produces what pending_forwards() returns with its own idempotent
  /// producer and calls forwards_sent() once the broker acknowledged it. A
  /// crash in between produces a row again: at least once into the topic,
  /// exactly once in the database.
  ///
  /// forward(): copies `r` into the transaction's buffer (no database call;
  /// written at commit() with the rows, inside BEGIN IMMEDIATE ... COMMIT,
  /// so the write lock is still taken at commit() only; past 64 MiB of
  /// buffer it is written early, as for insert()). Returns true. Row: the
  /// sink's group, r.source and r.source_offset, r.topic and r.partition
  /// (-1: any), key and value as BLOBs (NULL for nullopt, an empty BLOB for
  /// empty), headers in kc's encoding (byte exact, order and duplicates
  /// kept, a null value distinct from an empty one; src/sink/README.md).
  /// Throws kc::Error: errc::misuse without begin() or inside a record
  /// (between record_begin() and record_end()); errc::io when a write of
  /// this transaction failed before (busy: retriable), as insert().
  bool forward(const ForwardedRecord& r) override;
  /// Committed kc_outbox rows of this sink's group whose source partition
  /// is in `owned`, oldest (lowest id) first, at most `max`; ids grow in
  /// the order rows were forwarded, and are never reused. Reads committed
  /// data only: one index seek per partition, then one lookup per row
  /// returned (cheap when there are none). Blocking: local reads (WAL
  /// readers do not wait for writers). Throws kc::Error: errc::misuse while
  /// the SQLite transaction is live (after db(), or an early write of a
  /// large buffer; a transaction that only buffers is fine); errc::io when
  /// a read fails or a row's headers are not in kc's encoding (naming the
  /// row's id).
  std::vector<PendingForward> pending_forwards(std::span<const TopicPartition> owned, std::size_t max) override;
  /// Deletes the kc_outbox rows with these ids (of this group; ids already
  /// gone are fine) in one short transaction of its own (BEGIN IMMEDIATE:
  /// waits up to busy_timeout_ms for the write lock), also while a consumer
  /// transaction only buffers. No database call for no ids. Throws
  /// kc::Error: errc::misuse while the SQLite transaction is live (as
  /// pending_forwards()); errc::io (busy: retriable), nothing deleted.
  void forwards_sent(std::span<const std::int64_t> ids) override;
  /// From now on the busy timeout of every call that may wait for the
  /// write lock is min(busy_timeout_ms, time left to `deadline`), ~1 ms
  /// once the deadline has passed (a busy handler of the sink's own waits
  /// in 5 ms steps), so a call blocked by another connection's lock fails by
  /// the deadline with the usual retriable busy error. A later call
  /// replaces the deadline. Local work (writing the buffered rows) is not cut.
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept override;
  /// A lock wait of a call that began before `*stop` turned non-zero gives
  /// up (the usual retriable busy error) as soon as it does. `stop` must
  /// outlive the sink's calls (the consumer sets it before run() and clears
  /// it before run() returns).
  void set_interrupt(const std::atomic<int>* stop) noexcept override;

  /// Appends one row to the table. Between begin() and commit(): copies it
  /// into the transaction's buffer (no database call, unless the buffer
  /// passes 64 MiB: then the SQLite transaction starts and the buffer is
  /// written, as at db()); outside: writes it at once, in a transaction of
  /// its own. key and value NULL when nullopt; timestamp_ms as given. The
  /// views are read during the call only. Throws kc::Error(errc::io) when a
  /// write fails (busy: retriable); the transaction is then rolled back, and
  /// only abort() (or a failing commit()) ends it.
  void insert(const RecordRow& row);
  /// The connection, for a handler's own statements inside the open
  /// transaction. Call it in each record before writing: during a record it
  /// takes the savepoint that record_end(false) rolls back to. Between
  /// begin() and commit(), the first call starts the SQLite transaction
  /// (BEGIN IMMEDIATE: waits up to busy_timeout_ms) and every call writes
  /// the rows insert() buffered so far, so the handler's statements see
  /// them: from the first call the write lock is held until commit() or
  /// abort(), and other writers of the file wait meanwhile. Throws
  /// kc::Error(errc::io) (busy: retriable; the transaction is then rolled
  /// back, as for insert()). Owned by the sink; valid while it lives.
  sqlite3* db();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
