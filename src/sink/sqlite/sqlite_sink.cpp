// kc::SqliteSink: the handler's rows and the partitions' next offsets in one
// SQLite transaction. The offsets table and its fence are
// detail::SqliteOffsetStore's; this file adds the records table, the
// insert() buffer that keeps the write lock to commit() alone, per-record
// undo and the TransactionalSink protocol.
#include "kc/sqlite_sink.hpp"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

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

// Past this much buffered text, insert() starts the SQLite transaction and
// writes the buffer early, as db() does: memory stays bounded, at the price
// of holding the write lock for the rest of that (large) transaction.
constexpr std::size_t kFlushBytes = std::size_t{64} << 20;

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
  }

  ~Impl() { rollback(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  sqlite3* db() const noexcept { return store.handle(); }

  // A buffered insert() row: its text lives in `arena` from `at` on, topic
  // then key then value (the topic is shared with the row before when equal).
  struct Row {
    std::size_t topic_at = 0;
    std::size_t at = 0;  // key, then value
    std::uint32_t topic_size = 0;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::int64_t timestamp_ms = 0;
    std::int64_t key_size = -1;  // -1: NULL
    std::int64_t value_size = -1;
  };

  void buffer(const RecordRow& r) {
    Row row;
    row.partition = r.partition;
    row.offset = r.offset;
    row.timestamp_ms = r.timestamp_ms;
    const Row* last = rows.empty() ? nullptr : &rows.back();
    if (last != nullptr && std::string_view(arena).substr(last->topic_at, last->topic_size) == r.topic) {
      row.topic_at = last->topic_at;
    } else {
      row.topic_at = arena.size();
      arena.append(r.topic);
    }
    row.topic_size = static_cast<std::uint32_t>(r.topic.size());
    row.at = arena.size();
    if (r.key) {
      row.key_size = static_cast<std::int64_t>(r.key->size());
      arena.append(*r.key);
    }
    if (r.value) {
      row.value_size = static_cast<std::int64_t>(r.value->size());
      arena.append(*r.value);
    }
    rows.push_back(row);
  }

  // Runs the prepared insert for one row; the views are read during the step only.
  void write(const RecordRow& row) {
    sqlite3_stmt* s = insert.get();
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
    sqlite::run(db(), s, options.path, insert_what);
  }

  void write_buffered(std::size_t from, std::size_t to) {
    const std::string_view text(arena);
    for (std::size_t i = from; i < to; ++i) {
      const Row& b = rows[i];
      RecordRow r;
      r.topic = text.substr(b.topic_at, b.topic_size);
      r.partition = b.partition;
      r.offset = b.offset;
      r.timestamp_ms = b.timestamp_ms;
      auto at = b.at;
      if (b.key_size >= 0) {
        r.key = text.substr(at, static_cast<std::size_t>(b.key_size));
        at += static_cast<std::size_t>(b.key_size);
      }
      if (b.value_size >= 0) {
        r.value = text.substr(at, static_cast<std::size_t>(b.value_size));
      }
      write(r);
    }
  }

  void drop_buffer() noexcept {
    rows.clear();  // both keep their capacity for the next transaction
    arena.clear();
    record_rows_from = 0;
    record_arena_from = 0;
  }

  // The real SQLite transaction (BEGIN IMMEDIATE: the write lock), started
  // late: at commit(), at the first db() call, or when the buffer is full.
  void go_live() {
    if (!live) {
      store.begin();
      live = true;
    }
    check_open("write");
  }

  // Writes every buffered row into the live transaction: the ended records'
  // rows first, then (after this record's savepoint, so that record_end(false)
  // still undoes them) the current record's. `savepoint_wanted`: take the
  // savepoint even when the record has no rows yet (db() is about to write).
  // A failure part way (busy, a row the table refuses) rolls the whole
  // transaction back: the buffer and the database no longer agree on what is
  // written, so only abort() and a new begin() go on from there.
  void flush(bool savepoint_wanted) {
    if (failed) {
      throw Error(errc::io, "sqlite " + options.path +
                                ": a write of this transaction failed and it was rolled back; abort and start again");
    }
    try {
      go_live();
      const std::size_t ended = in_record ? record_rows_from : rows.size();
      write_buffered(0, ended);
      if (in_record && (savepoint_wanted || ended < rows.size())) {
        take_savepoint();
      }
      write_buffered(ended, rows.size());
    } catch (...) {
      const bool was_in_record = in_record;
      rollback();
      txn = true;
      in_record = was_in_record;
      failed = true;
      throw;
    }
    drop_buffer();
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

  void record_begin() {
    in_record = true;
    record_rows_from = rows.size();
    record_arena_from = arena.size();
  }

  void record_end(bool keep) {
    in_record = false;
    if (!keep) {
      // Rows flushed in this record are after its savepoint; the rest are here.
      rows.resize(record_rows_from);
      arena.resize(record_arena_from);
    }
    if (savepoint_open) {
      end_savepoint(keep);
    }
  }

  // The open transaction can vanish under us: SQLite rolls it back by itself
  // after some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). Writing on
  // would autocommit each statement, outside the offsets' transaction.
  void check_open(const char* during) const {
    if (live && !store.in_transaction()) {
      throw Error(errc::io,
                  "sqlite " + options.path + ": " + during +
                      ": the transaction is gone (SQLite rolled it back after an error); abort and start again");
    }
  }

  // Claims `tps` (epoch + 1 each): inside the live transaction if db() opened
  // one (then the claim holds only if it commits), else in one transaction of
  // its own, also while a consumer transaction is only buffering.
  std::vector<detail::SqliteOffsetStore::Claim> claim(std::span<const TopicPartition> tps) {
    if (in_record) {
      throw Error(errc::misuse, "sqlite " + options.path + ": claim() during a record");
    }
    std::vector<detail::SqliteOffsetStore::Claim> claims;
    if (live) {
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

  // Forgets the consumer transaction (after COMMIT or ROLLBACK).
  void finish() noexcept {
    drop_buffer();
    txn = false;
    live = false;
    failed = false;
    in_record = false;
    savepoint_open = false;
  }

  void rollback() noexcept {
    store.rollback();
    finish();
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
  std::string insert_what;  // for its errors, built once
  sqlite::Statement savepoint;
  sqlite::Statement release_savepoint;
  sqlite::Statement rollback_to_savepoint;

  // insert() rows of the consumer transaction, written at commit() (or at the
  // first db(), or past kFlushBytes) so that the write lock is held only
  // then. One arena for all their text and one vector of fixed-size rows:
  // two allocations that grow to the batch's size once and are reused.
  std::string arena;
  std::vector<Row> rows;
  std::size_t record_rows_from = 0;   // the current record's rows start here
  std::size_t record_arena_from = 0;  // and their text here

  std::unordered_map<TopicPartition, std::int64_t> epochs;  // this sink's epoch per claimed partition
  std::unordered_set<TopicPartition> claimed_in_txn;        // claimed inside the live transaction
  std::unordered_set<TopicPartition> reclaim;               // claims undone by a rollback

  bool txn = false;             // between begin() and commit()/abort()
  bool live = false;            // the SQLite transaction of txn is open (BEGIN IMMEDIATE done)
  bool failed = false;          // a flush failed: txn was rolled back, commit() refuses
  bool in_record = false;       // between record_begin() and record_end()
  bool savepoint_open = false;  // this record wrote through db() (or was flushed): kc_record is open
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
  // No SQLite transaction yet: insert() buffers, and the write lock is taken
  // at commit(). Held from here, a consumer stalled mid-batch (stopped, or a
  // long pause) would freeze every other writer of the file, another group
  // member's claim() included.
  m.finish();
  m.txn = true;
}

void SqliteSink::record_begin() {
  auto& m = *impl_;
  if (m.in_record) {
    m.record_end(true);  // the previous record was not ended: keep it
  }
  m.record_begin();
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
    // A record not ended is kept: its rows are written, and COMMIT releases
    // a savepoint left open.
    m.in_record = false;
    m.flush(false);
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
    m.store.commit();
  } catch (...) {
    m.rollback();
    throw;
  }
  m.finish();
  m.claimed_in_txn.clear();
}

void SqliteSink::abort() noexcept {
  impl_->rollback();
}

void SqliteSink::insert(const RecordRow& row) {
  auto& m = *impl_;
  if (m.txn) {
    if (m.failed) {
      m.flush(false);  // throws: the transaction is gone
    }
    m.buffer(row);
    if (m.arena.size() > kFlushBytes) {
      m.flush(false);  // bounded memory: from here the write lock is held until commit()
    }
    return;
  }
  m.take_savepoint();
  m.write(row);
}

sqlite3* SqliteSink::db() {
  auto& m = *impl_;
  if (m.txn) {
    m.flush(true);  // the handler's statements see the rows before them
  } else {
    m.take_savepoint();
  }
  return m.db();
}

}  // namespace kc
