// kc::SqliteSink: the handler's rows and the partitions' next offsets in one
// SQLite transaction. The offsets table and its fence are
// detail::SqliteOffsetStore's; this file adds the records table, the
// insert() buffer that keeps the write lock to commit() alone, per-record
// undo, the outbox (forward()) and the TransactionalSink protocol.
#include "kc/sqlite_sink.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <thread>
#include <utility>
#include <vector>

#include "kc/error.hpp"
#include "sink/sqlite/offset_store.hpp"
#include "sink/outbox.hpp"
#include "sink/sqlite/sqlite.hpp"

namespace kc {

namespace sqlite = detail::sqlite;
namespace outbox = detail::outbox;

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
  // SQLite's identifiers are case-insensitive: KC_OUTBOX is kc_outbox.
  if ((o.table.size() == 10 && iequals_prefix(o.table, "kc_offsets")) ||
      (o.table.size() == outbox::kTable.size() && iequals_prefix(o.table, outbox::kTable)) ||
      iequals_prefix(o.table, "sqlite_")) {
    throw Error(errc::config_invalid_value, "sqlite sink: table name '" + o.table + "' is reserved");
  }
  if (o.busy_timeout_ms < 0) {
    throw Error(errc::config_invalid_value,
                "sqlite sink: busy_timeout_ms " + std::to_string(o.busy_timeout_ms) + " is negative");
  }
  return o;
}

// The outbox (see sqlite_sink.hpp). AUTOINCREMENT: an id is never used
// twice, not even after the newest row was deleted (a plain INTEGER PRIMARY
// KEY reuses max(id) + 1), so a late or repeated forwards_sent() can never
// delete a newer forward that happens to get an old id. The index serves
// pending_forwards(): one seek per owned partition, ids in order.
constexpr const char* kCreateOutbox =
    "CREATE TABLE IF NOT EXISTS kc_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, "
    "src_topic TEXT NOT NULL, src_part INTEGER NOT NULL, src_offset INTEGER NOT NULL, topic TEXT NOT NULL, "
    "part INTEGER NOT NULL, key BLOB, value BLOB, headers BLOB NOT NULL)";
constexpr const char* kCreateOutboxIndex =
    "CREATE INDEX IF NOT EXISTS kc_outbox_pending ON kc_outbox (grp, src_topic, src_part, id)";
constexpr std::string_view kOutboxInsertSql =
    "INSERT INTO kc_outbox (grp, src_topic, src_part, src_offset, topic, part, key, value, headers) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr std::string_view kOutboxIdsSql =
    "SELECT id FROM kc_outbox WHERE grp = ?1 AND src_topic = ?2 AND src_part = ?3 ORDER BY id LIMIT ?4";
constexpr std::string_view kOutboxRowSql =
    "SELECT topic, part, key, value, headers, src_topic, src_part, src_offset FROM kc_outbox WHERE id = ?1";
constexpr std::string_view kOutboxDeleteSql = "DELETE FROM kc_outbox WHERE id = ?1 AND grp = ?2";

// Binds bytes as a BLOB without copying (they must outlive the step), NULL
// for nullopt. Empty bytes are bound with a non-null pointer: a null one
// binds NULL.
int bind_bytes(sqlite3_stmt* s, int index, std::string_view b) noexcept {
  return sqlite3_bind_blob64(s, index, b.empty() ? "" : b.data(), static_cast<sqlite3_uint64>(b.size()),
                             SQLITE_STATIC);
}
int bind_bytes(sqlite3_stmt* s, int index, const std::optional<std::string>& b) noexcept {
  return b ? bind_bytes(s, index, std::string_view(*b)) : sqlite3_bind_null(s, index);
}

// A BLOB (or TEXT) column as bytes, nullopt for NULL.
std::optional<std::string> column_bytes(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  const void* data = sqlite3_column_blob(s, col);  // before _bytes (SQLite's rule)
  const int n = sqlite3_column_bytes(s, col);
  if (n <= 0 || data == nullptr) {
    return std::string();
  }
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(n));
}

std::string column_text(sqlite3_stmt* s, int col) {
  const auto* text = sqlite3_column_text(s, col);
  const int n = sqlite3_column_bytes(s, col);
  if (text == nullptr) {
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(n));
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
    bound_waits();
    sqlite3_busy_handler(db, on_busy, this);
    const std::string create = "CREATE TABLE IF NOT EXISTS \"" + options.table +
                               "\" (topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, \"offset\" INTEGER NOT NULL, "
                               "timestamp_ms INTEGER, key TEXT, value TEXT)";
    sqlite::exec(db, options.path, create.c_str());
    insert = sqlite::prepare(db, options.path,
                             "INSERT INTO \"" + options.table +
                                 "\" (topic, \"partition\", \"offset\", timestamp_ms, key, value) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    insert_what = "insert into " + options.table;
    sqlite::exec(db, options.path, kCreateOutbox);
    sqlite::exec(db, options.path, kCreateOutboxIndex);
    outbox_insert = sqlite::prepare(db, options.path, kOutboxInsertSql);
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

  // A forward() of the consumer transaction, written at commit() with the
  // rows. Owns its bytes (forwards are rare: a dead letter or retry copy).
  struct Forwarded {
    std::string topic;
    std::int32_t partition = -1;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::string headers;  // outbox::encode_headers()
    TopicPartition source;
    std::int64_t source_offset = -1;
  };

  void buffer(const ForwardedRecord& r) {
    Forwarded f;
    f.topic = r.topic;
    f.partition = r.partition;
    if (r.key) {
      f.key.emplace(outbox::as_chars(*r.key));
    }
    if (r.value) {
      f.value.emplace(outbox::as_chars(*r.value));
    }
    f.headers = outbox::encode_headers(r.headers);
    f.source = r.source;
    f.source_offset = r.source_offset;
    forward_bytes += f.topic.size() + (f.key ? f.key->size() : 0) + (f.value ? f.value->size() : 0) +
                     f.headers.size() + f.source.topic.size();
    forwards.push_back(std::move(f));
  }

  std::size_t buffered_bytes() const noexcept { return arena.size() + forward_bytes; }

  void write_forwards() {
    sqlite3_stmt* s = outbox_insert.get();
    for (const auto& f : forwards) {
      sqlite::bind_view(s, 1, options.group);
      sqlite::bind_view(s, 2, f.source.topic);
      sqlite3_bind_int(s, 3, to_int(f.source.partition));
      sqlite3_bind_int64(s, 4, f.source_offset);
      sqlite::bind_view(s, 5, f.topic);
      sqlite3_bind_int(s, 6, f.partition);
      bind_bytes(s, 7, f.key);
      bind_bytes(s, 8, f.value);
      bind_bytes(s, 9, std::string_view(f.headers));
      sqlite::run(db(), s, options.path, "insert into kc_outbox");
    }
  }

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
    forwards.clear();
    forward_bytes = 0;
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
      write_forwards();  // forward() is never called inside a record: before its savepoint
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

  // After set_deadline(): the busy timeout becomes the time left (at most
  // busy_timeout_ms; ~1 ms once it passed), so the next statement that
  // waits for another connection's lock gives up by the deadline. Called
  // before every call that may wait for a lock.
  void bound_waits() noexcept {
    // A call that starts once the stop is asked waits (within its deadline):
    // the flag cuts only waits that began before the stop.
    interruptible = interrupt == nullptr || interrupt->load(std::memory_order_relaxed) == 0;
    busy_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
    if (deadline) {
      busy_until = std::min(busy_until, std::max(*deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(1)));
    }
  }

  // SQLite's busy handler (instead of sqlite3_busy_timeout): waits in 5 ms
  // steps until `busy_until`, and gives up at once when the consumer starts
  // stopping (set_interrupt()) during a wait that began before, so a stop is
  // not held up by it.
  static int on_busy(void* self, int) noexcept {
    const auto* m = static_cast<const Impl*>(self);
    if ((m->interruptible && m->interrupt != nullptr && m->interrupt->load(std::memory_order_relaxed) != 0) ||
        std::chrono::steady_clock::now() >= m->busy_until) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return 1;
  }

  // The outbox's reads and deletes run on the connection outside the
  // consumer transaction: refused while that one holds an SQLite
  // transaction (they would see its uncommitted rows, or commit with it).
  void outside_live(const char* what) const {
    if (live || store.in_transaction()) {
      throw Error(errc::misuse, "sqlite " + options.path + ": " + what +
                                    " while an SQLite transaction is open (after db() or a large buffer); call it "
                                    "after commit() or abort()");
    }
  }

  sqlite3_stmt* statement(sqlite::Statement& s, std::string_view sql) {
    if (!s) {
      s = sqlite::prepare(db(), options.path, sql);
    }
    return s.get();
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
  sqlite::Statement outbox_insert;
  sqlite::Statement outbox_ids;     // prepared at the first pending_forwards()
  sqlite::Statement outbox_row;     // likewise
  sqlite::Statement outbox_delete;  // prepared at the first forwards_sent()

  // insert() rows of the consumer transaction, written at commit() (or at the
  // first db(), or past kFlushBytes) so that the write lock is held only
  // then. One arena for all their text and one vector of fixed-size rows:
  // two allocations that grow to the batch's size once and are reused.
  std::string arena;
  std::vector<Row> rows;
  std::size_t record_rows_from = 0;   // the current record's rows start here
  std::size_t record_arena_from = 0;  // and their text here
  // forward() records of the consumer transaction, written with the rows.
  std::vector<Forwarded> forwards;
  std::size_t forward_bytes = 0;

  // set_deadline(): the busy timeout is bounded by the time left.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // When the current call's lock wait gives up (bound_waits()), and the
  // consumer's stop flag (set_interrupt()).
  std::chrono::steady_clock::time_point busy_until;
  const std::atomic<int>* interrupt = nullptr;
  bool interruptible = true;  // the current call began before the stop

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
  impl_->bound_waits();
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
  m.bound_waits();
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
  m.bound_waits();
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
  m.bound_waits();
  if (m.txn) {
    if (m.failed) {
      m.flush(false);  // throws: the transaction is gone
    }
    m.buffer(row);
    if (m.buffered_bytes() > kFlushBytes) {
      m.flush(false);  // bounded memory: from here the write lock is held until commit()
    }
    return;
  }
  m.take_savepoint();
  m.write(row);
}

sqlite3* SqliteSink::db() {
  auto& m = *impl_;
  m.bound_waits();
  if (m.txn) {
    m.flush(true);  // the handler's statements see the rows before them
  } else {
    m.take_savepoint();
  }
  return m.db();
}

bool SqliteSink::forward(const ForwardedRecord& r) {
  auto& m = *impl_;
  if (!m.txn) {
    throw Error(errc::misuse, "sqlite " + m.options.path + ": forward() without begin()");
  }
  if (m.in_record) {
    throw Error(errc::misuse, "sqlite " + m.options.path + ": forward() inside a record (call it between records)");
  }
  m.bound_waits();
  if (m.failed) {
    m.flush(false);  // throws: the transaction is gone
  }
  m.buffer(r);
  if (m.buffered_bytes() > kFlushBytes) {
    m.flush(false);
  }
  return true;
}

std::vector<PendingForward> SqliteSink::pending_forwards(std::span<const TopicPartition> owned, std::size_t max) {
  auto& m = *impl_;
  m.outside_live("pending_forwards()");
  if (owned.empty() || max == 0) {
    return {};
  }
  m.bound_waits();
  const auto limit = static_cast<sqlite3_int64>(
      std::min<std::size_t>(max, static_cast<std::size_t>(std::numeric_limits<sqlite3_int64>::max())));
  // Ids first (an index-only seek per partition), then the rows of the
  // oldest `max`: never more than `max` payloads in memory, however many
  // partitions have pending rows. No read transaction around the two: a
  // row deleted in between (forwards_sent() of another member) is skipped.
  std::vector<std::int64_t> ids;
  sqlite3_stmt* q = m.statement(m.outbox_ids, kOutboxIdsSql);
  for (const auto& tp : std::set<TopicPartition>(owned.begin(), owned.end())) {
    sqlite::ResetGuard reset(q);
    sqlite::bind_view(q, 1, m.options.group);
    sqlite::bind_view(q, 2, tp.topic);
    sqlite3_bind_int(q, 3, to_int(tp.partition));
    sqlite3_bind_int64(q, 4, limit);
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
      ids.push_back(sqlite3_column_int64(q, 0));
    }
    if (rc != SQLITE_DONE) {
      sqlite::fail(m.db(), rc, m.options.path, "read kc_outbox of " + name_of(tp));
    }
  }
  std::sort(ids.begin(), ids.end());
  if (ids.size() > max) {
    ids.resize(max);
  }
  std::vector<PendingForward> out;
  out.reserve(ids.size());
  sqlite3_stmt* row = m.statement(m.outbox_row, kOutboxRowSql);
  for (const auto id : ids) {
    sqlite::ResetGuard reset(row);
    sqlite3_bind_int64(row, 1, id);
    const int rc = sqlite3_step(row);
    if (rc == SQLITE_DONE) {
      continue;
    }
    if (rc != SQLITE_ROW) {
      sqlite::fail(m.db(), rc, m.options.path, "read kc_outbox row " + std::to_string(id));
    }
    PendingForward f;
    f.id = id;
    f.topic = column_text(row, 0);
    f.partition = sqlite3_column_int(row, 1);
    f.key = column_bytes(row, 2);
    f.value = column_bytes(row, 3);
    auto headers = outbox::decode_headers(column_bytes(row, 4).value_or(std::string()));
    if (!headers) {
      throw Error(errc::io, "sqlite " + m.options.path + ": kc_outbox row " + std::to_string(id) +
                                ": its headers are not in kc's encoding (version 1)");
    }
    f.headers = std::move(*headers);
    f.source = TopicPartition{column_text(row, 5), Partition{sqlite3_column_int(row, 6)}};
    f.source_offset = sqlite3_column_int64(row, 7);
    out.push_back(std::move(f));
  }
  return out;
}

void SqliteSink::forwards_sent(std::span<const std::int64_t> ids) {
  auto& m = *impl_;
  m.outside_live("forwards_sent()");
  if (ids.empty()) {
    return;
  }
  m.bound_waits();
  sqlite3_stmt* del = m.statement(m.outbox_delete, kOutboxDeleteSql);
  m.store.begin();  // BEGIN IMMEDIATE: one short write transaction for all
  try {
    for (const auto id : ids) {
      sqlite3_bind_int64(del, 1, id);
      sqlite::bind_view(del, 2, m.options.group);
      sqlite::run(m.db(), del, m.options.path, "delete from kc_outbox");
    }
    m.store.commit();
  } catch (...) {
    m.store.rollback();
    throw;
  }
}

void SqliteSink::set_interrupt(const std::atomic<int>* stop) noexcept {
  impl_->interrupt = stop;
}

void SqliteSink::set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
  impl_->deadline = deadline;
  impl_->bound_waits();
}

}  // namespace kc
