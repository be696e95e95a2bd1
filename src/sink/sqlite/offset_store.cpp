#include "sink/sqlite/offset_store.hpp"

#include <sqlite3.h>

#include <memory>
#include <utility>

#include "kc/error.hpp"

namespace kc::detail {

namespace {

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

[[noreturn]] void fail(sqlite3* db, const std::string& path, const char* what) {
  throw Error(errc::io, "sqlite " + path + ": " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

Statement prepare(sqlite3* db, const std::string& path, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    fail(db, path, sql);
  }
  return Statement(s);
}

void bind_key(sqlite3_stmt* s, const std::string& group, const TopicPartition& tp, int first) {
  sqlite3_bind_text(s, first, group.data(), static_cast<int>(group.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(s, first + 1, tp.topic.data(), static_cast<int>(tp.topic.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(s, first + 2, to_int(tp.partition));
}

}  // namespace

SqliteOffsetStore::SqliteOffsetStore(const std::string& path, std::string group, int busy_timeout_ms)
    : path_(path), group_(std::move(group)) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(errc::io, "sqlite " + path + ": cannot open: " + why);
  }
  try {
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    exec("PRAGMA journal_mode=WAL");
    exec("CREATE TABLE IF NOT EXISTS kc_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, "
         "next_offset INTEGER, epoch INTEGER NOT NULL, PRIMARY KEY (grp, topic, part))");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

SqliteOffsetStore::~SqliteOffsetStore() { sqlite3_close(db_); }

void SqliteOffsetStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error(errc::io, "sqlite " + path_ + ": " + sql + ": " + why);
  }
}

SqliteOffsetStore::Claim SqliteOffsetStore::claim(const TopicPartition& tp) {
  exec("BEGIN IMMEDIATE");
  try {
    auto up = prepare(db_, path_,
                      "INSERT INTO kc_offsets (grp, topic, part, next_offset, epoch) VALUES (?1, ?2, ?3, NULL, 1) "
                      "ON CONFLICT (grp, topic, part) DO UPDATE SET epoch = epoch + 1");
    bind_key(up.get(), group_, tp, 1);
    if (sqlite3_step(up.get()) != SQLITE_DONE) {
      fail(db_, path_, "claim");
    }
    auto get = prepare(db_, path_, "SELECT next_offset, epoch FROM kc_offsets WHERE grp = ?1 AND topic = ?2 AND part = ?3");
    bind_key(get.get(), group_, tp, 1);
    if (sqlite3_step(get.get()) != SQLITE_ROW) {
      fail(db_, path_, "claim: read back");
    }
    Claim c;
    if (sqlite3_column_type(get.get(), 0) != SQLITE_NULL) {
      c.next_offset = sqlite3_column_int64(get.get(), 0);
    }
    c.epoch = sqlite3_column_int64(get.get(), 1);
    get.reset();
    exec("COMMIT");
    return c;
  } catch (...) {
    rollback();
    throw;
  }
}

void SqliteOffsetStore::begin() { exec("BEGIN IMMEDIATE"); }

bool SqliteOffsetStore::store(const TopicPartition& tp, std::int64_t next_offset, std::int64_t epoch) {
  auto s = prepare(db_, path_,
                   "UPDATE kc_offsets SET next_offset = ?4 WHERE grp = ?1 AND topic = ?2 AND part = ?3 AND epoch = ?5");
  bind_key(s.get(), group_, tp, 1);
  sqlite3_bind_int64(s.get(), 4, next_offset);
  sqlite3_bind_int64(s.get(), 5, epoch);
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    fail(db_, path_, "store offset");
  }
  return sqlite3_changes(db_) == 1;
}

void SqliteOffsetStore::commit() { exec("COMMIT"); }

void SqliteOffsetStore::rollback() noexcept {
  if (sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

}  // namespace kc::detail
