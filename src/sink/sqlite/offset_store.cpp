#include "sink/sqlite/offset_store.hpp"

#include <utility>

#include "kc/error.hpp"

namespace kc::detail {

namespace {

// One statement both bumps the epoch (or creates the row at epoch 1) and
// returns where the partition stands: no second read, no window between.
constexpr std::string_view kClaimSql =
    "INSERT INTO kc_offsets (grp, topic, part, next_offset, epoch) VALUES (?1, ?2, ?3, NULL, 1) "
    "ON CONFLICT (grp, topic, part) DO UPDATE SET epoch = epoch + 1 RETURNING next_offset, epoch";
constexpr std::string_view kReadSql =
    "SELECT next_offset, epoch FROM kc_offsets WHERE grp = ?1 AND topic = ?2 AND part = ?3";
// The fence: a compare-and-set on the epoch.
constexpr std::string_view kStoreSql =
    "UPDATE kc_offsets SET next_offset = ?4 WHERE grp = ?1 AND topic = ?2 AND part = ?3 AND epoch = ?5";

}  // namespace

SqliteOffsetStore::SqliteOffsetStore(const std::string& path, std::string group, int busy_timeout_ms)
    : path_(path), group_(std::move(group)) {
  if (const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
      rc != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(errc::io, "sqlite " + path + ": cannot open: " + why);
  }
  try {
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    exec("PRAGMA journal_mode=WAL");
    exec(
        "CREATE TABLE IF NOT EXISTS kc_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, "
        "next_offset INTEGER, epoch INTEGER NOT NULL, PRIMARY KEY (grp, topic, part))");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

SqliteOffsetStore::~SqliteOffsetStore() {
  claim_.reset();
  read_.reset();
  store_.reset();
  sqlite3_close(db_);  // rolls back a transaction left open
}

void SqliteOffsetStore::exec(const char* sql) {
  sqlite::exec(db_, path_, sql);
}

void SqliteOffsetStore::bind_key(sqlite3_stmt* s, const TopicPartition& tp) const noexcept {
  sqlite::bind_view(s, 1, group_);
  sqlite::bind_view(s, 2, tp.topic);
  sqlite3_bind_int(s, 3, to_int(tp.partition));
}

SqliteOffsetStore::Claim SqliteOffsetStore::claim(const TopicPartition& tp) {
  return std::move(claim(std::span<const TopicPartition>(&tp, 1)).front());
}

std::vector<SqliteOffsetStore::Claim> SqliteOffsetStore::claim(std::span<const TopicPartition> tps) {
  std::vector<Claim> out;
  out.reserve(tps.size());
  begin();
  try {
    for (const auto& tp : tps) {
      out.push_back(claim_in_transaction(tp));
    }
    commit();
  } catch (...) {
    rollback();
    throw;
  }
  return out;
}

SqliteOffsetStore::Claim SqliteOffsetStore::claim_in_transaction(const TopicPartition& tp) {
  if (!claim_) {
    claim_ = sqlite::prepare(db_, path_, kClaimSql);
  }
  sqlite3_stmt* s = claim_.get();
  sqlite::ResetGuard reset(s);
  bind_key(s, tp);
  if (const int rc = sqlite3_step(s); rc != SQLITE_ROW) {
    sqlite::fail(db_, rc, path_, "claim " + tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]");
  }
  Claim c;
  if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
    c.next_offset = sqlite3_column_int64(s, 0);
  }
  c.epoch = sqlite3_column_int64(s, 1);
  if (const int rc = sqlite3_step(s); rc != SQLITE_DONE) {
    sqlite::fail(db_, rc, path_, "claim " + tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]");
  }
  return c;
}

SqliteOffsetStore::Claim SqliteOffsetStore::read(const TopicPartition& tp) {
  if (!read_) {
    read_ = sqlite::prepare(db_, path_, kReadSql);
  }
  sqlite3_stmt* s = read_.get();
  sqlite::ResetGuard reset(s);  // also ends the read transaction outside begin()/commit()
  bind_key(s, tp);
  Claim c;
  switch (const int rc = sqlite3_step(s)) {
    case SQLITE_ROW:
      if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        c.next_offset = sqlite3_column_int64(s, 0);
      }
      c.epoch = sqlite3_column_int64(s, 1);
      break;
    case SQLITE_DONE: break;
    default:
      sqlite::fail(db_, rc, path_, "read the offset of " + tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]");
  }
  return c;
}

void SqliteOffsetStore::begin() {
  exec("BEGIN IMMEDIATE");
}

bool SqliteOffsetStore::store(const TopicPartition& tp, std::int64_t next_offset, std::int64_t epoch) {
  if (!store_) {
    store_ = sqlite::prepare(db_, path_, kStoreSql);
  }
  sqlite3_stmt* s = store_.get();
  bind_key(s, tp);
  sqlite3_bind_int64(s, 4, next_offset);
  sqlite3_bind_int64(s, 5, epoch);
  sqlite::run(db_, s, path_, "store offset");
  return sqlite3_changes(db_) == 1;
}

void SqliteOffsetStore::commit() {
  exec("COMMIT");
}

void SqliteOffsetStore::rollback() noexcept {
  if (in_transaction()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

bool SqliteOffsetStore::in_transaction() const noexcept {
  return sqlite3_get_autocommit(db_) == 0;
}

}  // namespace kc::detail
