// Partition offsets kept in an SQLite database next to the rows a sink
// writes, so that rows and offsets commit in one transaction (exactly-once
// into the database), with an owner epoch per partition that fences a
// consumer which lost the partition (a zombie) out of writing for it.
// Used by kc::SqliteSink (sqlite_sink.cpp), which shares its connection.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kc/types.hpp"
#include "sink/sqlite/sqlite.hpp"

namespace kc::detail {

/// The offsets table of one consumer group in an SQLite file:
///   kc_offsets(grp, topic, part, next_offset, epoch)
/// next_offset is the next record to process (NULL: none processed yet);
/// epoch grows by one at each claim of the partition.
///
/// Fencing: claim() takes the partition (epoch + 1) when it is assigned;
/// store() writes the next offset only while the epoch is still the one the
/// caller claimed, so once a new owner claimed the partition, the old
/// owner's transaction finds 0 rows to update and must roll back: a zombie
/// cannot write duplicates.
///
/// Threads: one thread at a time (the SQLite connection is not shared).
/// Blocking: every call is a local database call; a busy database (another
/// process writing) is waited for up to `busy_timeout_ms`. Errors: kc::Error
/// (errc::io) naming the file and the statement's error; retriable() when
/// the database stayed busy or locked (SQLITE_BUSY, SQLITE_LOCKED).
class SqliteOffsetStore {
 public:
  /// Opens (creates) `path` and the table. WAL journal for concurrent
  /// readers and cheap commits.
  SqliteOffsetStore(const std::string& path, std::string group, int busy_timeout_ms = 10000);
  ~SqliteOffsetStore();
  SqliteOffsetStore(const SqliteOffsetStore&) = delete;
  SqliteOffsetStore& operator=(const SqliteOffsetStore&) = delete;

  struct Claim {
    std::optional<std::int64_t> next_offset;  ///< where to start; nullopt: nothing stored yet
    std::int64_t epoch = 0;                   ///< this owner's epoch, for store(); 0: never claimed
  };

  /// Takes ownership of `tp` (in a transaction of its own; not inside
  /// begin()/commit()): epoch + 1, and returns where to start.
  Claim claim(const TopicPartition& tp);
  /// The same for several partitions in one transaction (all or none).
  std::vector<Claim> claim(std::span<const TopicPartition> tps);
  /// The claim's statement alone, inside the caller's open transaction: the
  /// new epoch holds only if that transaction commits.
  Claim claim_in_transaction(const TopicPartition& tp);
  /// Where `tp` stands, without claiming it (epoch 0: never claimed).
  Claim read(const TopicPartition& tp);

  /// Starts a write transaction (BEGIN IMMEDIATE): the sink's rows and
  /// store() calls go in it.
  void begin();
  /// Within a transaction: records `next_offset` for `tp` if `epoch` still
  /// owns it. Returns false when fenced (another owner claimed it since):
  /// the caller must rollback() and stop writing for `tp`.
  bool store(const TopicPartition& tp, std::int64_t next_offset, std::int64_t epoch);
  /// Commits the transaction: rows and offsets are durable together.
  void commit();
  /// Rolls the transaction back (nothing of it is kept). Never throws.
  void rollback() noexcept;
  /// True while a transaction is open on the connection.
  bool in_transaction() const noexcept;

  /// The connection, for the sink's own statements inside begin()/commit().
  sqlite3* handle() const noexcept { return db_; }
  const std::string& path() const noexcept { return path_; }

 private:
  void exec(const char* sql);
  void bind_key(sqlite3_stmt* s, const TopicPartition& tp) const noexcept;

  std::string path_;
  std::string group_;
  sqlite3* db_ = nullptr;
  // Prepared once (on first use); finalized in the destructor before the
  // connection closes.
  sqlite::Statement claim_;
  sqlite::Statement read_;
  sqlite::Statement store_;
};

}  // namespace kc::detail
