// kc::SqliteSink: the handler's rows and the partitions' next offsets in one
// SQLite transaction. The offsets table and its fence are
// detail::SqliteOffsetStore's; this file adds the records table, per-record
// undo (savepoints) and the TransactionalSink protocol.
#include "kc/sqlite_sink.hpp"

#include <cctype>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "kc/error.hpp"
#include "sink/sqlite/offset_store.hpp"
#include "sink/sqlite/sqlite.hpp"

namespace kc {

namespace sqlite = detail::sqlite;

namespace {

std::string name_of(const TopicPartition& tp) {
  return tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]";
}

// The table name goes into SQL text (it cannot be a bound parameter), so it
// must be a plain identifier; it is quoted as well, so keywords are fine.
bool plain_identifier(std::string_view s) {
  bool first = true;
  for (const char c : s) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && (first || c < '0' || c > '9')) {  // ASCII only, whatever the locale
      return false;
    }
    first = false;
  }
  return !first;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) {
      return false;
    }
  }
  return true;
}

SqliteSink::Options validated(SqliteSink::Options o) {
  if (o.path.empty()) {
    throw Error(errc::config_missing, "sqlite sink: no database path");
  }
  if (!plain_identifier(o.table)) {
    throw Error(errc::config_invalid_value,
                "sqlite sink: table name '" + o.table + "' is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)");
  }
  if ((o.table.size() == 10 && iequals_prefix(o.table, "kc_offsets")) || iequals_prefix(o.table, "sqlite_")) {
    throw Error(errc::config_invalid_value, "sqlite sink: table name '" + o.table + "' is reserved");
  }
  if (o.busy_timeout_ms < 0) {
    throw Error(errc::config_invalid_value,
                "sqlite sink: busy_timeout_ms " + std::to_string(o.busy_timeout_ms) + " is negative");
  }
  return o;
}

}  // namespace

struct SqliteSink::Impl {
  explicit Impl(Options o)
      : options(validated(std::move(o))), store(options.path, options.group, options.busy_timeout_ms) {
    sqlite3* db = store.handle();
    // WAL with synchronous=NORMAL: a commit is in the WAL file (written, not
    // fsynced) when COMMIT returns, so it survives the process being killed;
    // only an OS crash or power loss can lose the last commits (and then the
    // rows and their offsets go together: still exactly-once, not durable).
    sqlite::exec(db, options.path, "PRAGMA synchronous=NORMAL");
    const std::string create = "CREATE TABLE IF NOT EXISTS \"" + options.table +
                               "\" (topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, \"offset\" INTEGER NOT NULL, "
                               "timestamp_ms INTEGER, key TEXT, value TEXT)";
    sqlite::exec(db, options.path, create.c_str());
    insert = sqlite::prepare(db, options.path,
                             "INSERT INTO \"" + options.table +
                                 "\" (topic, \"partition\", \"offset\", timestamp_ms, key, value) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    insert_what = "insert into " + options.table;
    savepoint = sqlite::prepare(db, options.path, "SAVEPOINT kc_record");
    release_savepoint = sqlite::prepare(db, options.path, "RELEASE kc_record");
    rollback_to_savepoint = sqlite::prepare(db, options.path, "ROLLBACK TO kc_record");
    rowid_undo = rowid_undo_is_exact();
    if (rowid_undo) {
      delete_from = sqlite::prepare(db, options.path, "DELETE FROM \"" + options.table + "\" WHERE rowid >= ?1");
    }
  }

  ~Impl() { rollback(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  sqlite3* db() const noexcept { return store.handle(); }

  // Undoing a failed record's insert() rows by rowid (they are the table's
  // newest: SQLite gives a new row max(rowid) + 1) instead of a savepoint per
  // record: a savepoint costs two statements and a copy of each page the
  // record touches, about three times the insert itself. Exact only for a
  // rowid table without triggers (nothing else written) and without a column
  // that hides the rowid; any other table gets savepoints. A query that does
  // not prepare (SQLite older than 3.37) means savepoints too.
  bool rowid_undo_is_exact() {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(
            db(),
            "SELECT (SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE) "
            "= 0 AND NOT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 "
            "COLLATE NOCASE) AND NOT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE lower(name) IN "
            "('rowid', '_rowid_', 'oid'))",
            -1, &raw, nullptr) != SQLITE_OK) {
      sqlite3_finalize(raw);
      return false;
    }
    const sqlite::Statement q(raw);
    sqlite::bind_view(raw, 1, options.table);
    return sqlite3_step(raw) == SQLITE_ROW && sqlite3_column_int(raw, 0) == 1;
  }

  // Before a write of the handler's own (db()) in a record: a savepoint, so
  // that record_end(false) undoes this record's writes only. Records that
  // write nothing cost nothing.
  void take_savepoint() {
    if (in_record && !savepoint_open) {
      sqlite::run(db(), savepoint.get(), options.path, "SAVEPOINT kc_record");
      savepoint_open = true;
    }
  }

  void record_end(bool keep) {
    const bool rows = record_rows;
    in_record = false;
    record_rows = false;
    if (savepoint_open) {
      // Also undoes the insert() rows after the savepoint; those before it
      // are the ones from first_rowid on that remain.
      end_savepoint(keep);
    }
    if (!keep && rows) {
      sqlite3_bind_int64(delete_from.get(), 1, first_rowid);
      sqlite::run(db(), delete_from.get(), options.path, "undo a failed record's rows");
    }
  }

  // The open transaction can vanish under us: SQLite rolls it back by itself
  // after some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). Writing on
  // would autocommit each statement, outside the offsets' transaction.
  void check_open(const char* during) const {
    if (txn && !store.in_transaction()) {
      throw Error(errc::io,
                  "sqlite " + options.path + ": " + during +
                      ": the transaction is gone (SQLite rolled it back after an error); abort and start again");
    }
  }

  // Claims `tps` (epoch + 1 each), in the open transaction if there is one
  // (claim() during a cooperative rebalance, while other partitions' records
  // are in it), else in one transaction of its own.
  std::vector<detail::SqliteOffsetStore::Claim> claim(std::span<const TopicPartition> tps) {
    if (in_record) {
      throw Error(errc::misuse, "sqlite " + options.path + ": claim() during a record");
    }
    std::vector<detail::SqliteOffsetStore::Claim> claims;
    if (txn) {
      check_open("claim");
      claims.reserve(tps.size());
      for (const auto& tp : tps) {
        claims.push_back(store.claim_in_transaction(tp));
        epochs[tp] = claims.back().epoch;
        reclaim.erase(tp);
        claimed_in_txn.insert(tp);
      }
    } else {
      claims = store.claim(tps);
      for (std::size_t i = 0; i < tps.size(); ++i) {
        epochs[tps[i]] = claims[i].epoch;
        reclaim.erase(tps[i]);
      }
    }
    return claims;
  }

  void end_savepoint(bool keep) {
    savepoint_open = false;
    if (!keep) {
      sqlite::run(db(), rollback_to_savepoint.get(), options.path, "ROLLBACK TO kc_record");
    }
    // ROLLBACK TO leaves the savepoint on the stack: RELEASE it in both cases.
    sqlite::run(db(), release_savepoint.get(), options.path, "RELEASE kc_record");
  }

  void rollback() noexcept {
    store.rollback();
    txn = false;
    in_record = false;
    record_rows = false;
    savepoint_open = false;
    // Claims made in the rolled-back transaction never happened: this sink
    // no longer knows an epoch for them, and resume() claims them again.
    for (const auto& tp : claimed_in_txn) {
      epochs.erase(tp);
      try {
        reclaim.insert(tp);
      } catch (...) {
        // Out of memory: resume() then reports the partition as not owned,
        // and the consumer claims it again later. Safe, only slower.
      }
    }
    claimed_in_txn.clear();
  }

  Options options;
  // Owns the connection. Declared before the statements below, so they are
  // finalized before the connection closes.
  detail::SqliteOffsetStore store;
  sqlite::Statement insert;
  std::string insert_what;  // for its errors, built once (insert() allocates nothing)
  sqlite::Statement savepoint;
  sqlite::Statement release_savepoint;
  sqlite::Statement rollback_to_savepoint;
  bool rowid_undo = false;        // see rowid_undo_is_exact()
  sqlite::Statement delete_from;  // with rowid_undo: a failed record's rows

  std::unordered_map<TopicPartition, std::int64_t> epochs;  // this sink's epoch per claimed partition
  std::unordered_set<TopicPartition> claimed_in_txn;        // claimed inside the open transaction
  std::unordered_set<TopicPartition> reclaim;               // claims undone by a rollback
  bool txn = false;                                         // between begin() and commit()/abort()
  bool in_record = false;                                   // between record_begin() and record_end()
  bool savepoint_open = false;                              // this record wrote through db(): kc_record is open
  bool record_rows = false;  // this record insert()ed rows from first_rowid on (rowid_undo)
  std::int64_t first_rowid = 0;
};

SqliteSink::SqliteSink(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

SqliteSink::~SqliteSink() = default;

std::vector<SinkPosition> SqliteSink::claim(std::span<const TopicPartition> tps) {
  const auto claims = impl_->claim(tps);
  std::vector<SinkPosition> out;
  out.reserve(claims.size());
  for (const auto& c : claims) {
    out.push_back({true, c.next_offset ? std::optional<Offset>(Offset{*c.next_offset}) : std::nullopt});
  }
  return out;
}

std::vector<SinkPosition> SqliteSink::resume(std::span<const TopicPartition> tps) {
  auto& m = *impl_;
  std::vector<SinkPosition> out(tps.size());
  std::vector<TopicPartition> again;
  std::vector<std::size_t> again_at;
  for (std::size_t i = 0; i < tps.size(); ++i) {
    if (m.reclaim.contains(tps[i])) {
      again.push_back(tps[i]);
      again_at.push_back(i);
      continue;
    }
    const auto c = m.store.read(tps[i]);
    const auto it = m.epochs.find(tps[i]);
    out[i].owned = it != m.epochs.end() && it->second == c.epoch;
    if (c.next_offset) {
      out[i].next = Offset{*c.next_offset};
    }
  }
  if (!again.empty()) {
    const auto claims = m.claim(again);
    for (std::size_t k = 0; k < claims.size(); ++k) {
      auto& p = out[again_at[k]];
      p.owned = true;
      if (claims[k].next_offset) {
        p.next = Offset{*claims[k].next_offset};
      }
    }
  }
  return out;
}

void SqliteSink::release(std::span<const TopicPartition> tps) {
  for (const auto& tp : tps) {
    impl_->epochs.erase(tp);
    impl_->reclaim.erase(tp);
    impl_->claimed_in_txn.erase(tp);
  }
}

void SqliteSink::begin() {
  auto& m = *impl_;
  if (m.txn || m.store.in_transaction()) {
    throw Error(errc::misuse, "sqlite " + m.options.path + ": begin() while a transaction is open");
  }
  m.store.begin();
  m.txn = true;
  m.in_record = false;
  m.record_rows = false;
  m.savepoint_open = false;
}

void SqliteSink::record_begin() {
  auto& m = *impl_;
  if (m.in_record) {
    m.record_end(true);  // the previous record was not ended: keep it
  }
  m.in_record = true;
}

void SqliteSink::record_end(bool keep) {
  if (impl_->in_record) {
    impl_->record_end(keep);
  }
}

void SqliteSink::commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) {
  (void)group;  // the offsets are stored in the database, not in the group
  auto& m = *impl_;
  if (!m.txn) {
    throw Error(errc::misuse, "sqlite " + m.options.path + ": commit() without begin()");
  }
  try {
    m.check_open("commit");
    for (const auto& o : offsets) {
      const auto it = m.epochs.find(o.tp);
      if (it == m.epochs.end()) {
        throw Error(errc::io, "sqlite " + m.options.path + ": commit refused, fenced: " + name_of(o.tp) +
                                  " is not claimed by this consumer; the transaction was rolled back");
      }
      if (!m.store.store(o.tp, to_int(o.next), it->second)) {
        throw Error(errc::io, "sqlite " + m.options.path + ": commit refused, fenced: " + name_of(o.tp) +
                                  " was claimed by another consumer (this one is a zombie for it); the transaction "
                                  "was rolled back");
      }
    }
    // COMMIT also releases a savepoint left open by a record not ended.
    m.store.commit();
  } catch (...) {
    m.rollback();
    throw;
  }
  m.txn = false;
  m.in_record = false;
  m.record_rows = false;
  m.savepoint_open = false;
  m.claimed_in_txn.clear();
}

void SqliteSink::abort() noexcept {
  impl_->rollback();
}

void SqliteSink::insert(const RecordRow& row) {
  auto& m = *impl_;
  m.check_open("insert");
  // By rowid only inside begin()/commit(): outside, another connection's
  // rows could come between this record's.
  const bool by_rowid = m.rowid_undo && m.txn;
  if (!by_rowid) {
    m.take_savepoint();
  }
  sqlite3_stmt* s = m.insert.get();
  // Every parameter is bound on each call (NULL included), so no binding of
  // an earlier row (whose views are gone) is ever read: no clear_bindings.
  sqlite::bind_view(s, 1, row.topic);
  sqlite3_bind_int(s, 2, row.partition);
  sqlite3_bind_int64(s, 3, row.offset);
  sqlite3_bind_int64(s, 4, row.timestamp_ms);
  if (row.key) {
    sqlite::bind_view(s, 5, *row.key);
  } else {
    sqlite3_bind_null(s, 5);
  }
  if (row.value) {
    sqlite::bind_view(s, 6, *row.value);
  } else {
    sqlite3_bind_null(s, 6);
  }
  sqlite::run(m.db(), s, m.options.path, m.insert_what);
  if (by_rowid && m.in_record && !m.record_rows && !m.savepoint_open) {
    m.record_rows = true;
    m.first_rowid = sqlite3_last_insert_rowid(m.db());
  }
}

sqlite3* SqliteSink::db() {
  impl_->take_savepoint();
  return impl_->db();
}

}  // namespace kc
