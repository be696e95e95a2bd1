// kc::SqliteSink: rows and partition offsets in one SQLite transaction
// (exactly-once into an SQLite file), with an owner epoch per partition.
#pragma once

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
///     or index: a duplicate would show.
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
  /// is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*; kc_offsets and
  /// sqlite_* are reserved) or a negative busy_timeout_ms,
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
  /// Drops the buffered rows and rolls back the SQLite transaction, if any.
  /// Never throws.
  void abort() noexcept override;

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
