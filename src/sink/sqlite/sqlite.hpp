// Private helpers shared by the SQLite offset store and sink: prepared
// statements as RAII, and SQLite errors as kc::Error.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>

#include "kc/error.hpp"

namespace kc::detail::sqlite {

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
/// A prepared statement; finalized when dropped (before its connection closes).
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

/// Resets a statement when leaving a scope: a SELECT left stepped holds a read
/// transaction open, and a statement left running holds its bound views.
class ResetGuard {
 public:
  explicit ResetGuard(sqlite3_stmt* s) noexcept : s_(s) {}
  ~ResetGuard() { sqlite3_reset(s_); }
  ResetGuard(const ResetGuard&) = delete;
  ResetGuard& operator=(const ResetGuard&) = delete;

 private:
  sqlite3_stmt* s_;
};

/// SQLITE_BUSY and SQLITE_LOCKED (another connection holds the lock after the
/// busy timeout): the same call may succeed later.
inline bool is_busy(int rc) noexcept {
  const int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

/// Throws kc::Error(errc::io) "sqlite PATH: WHAT: message", retriable() when
/// `rc` says busy or locked.
[[noreturn]] inline void fail(sqlite3* db, int rc, const std::string& path, std::string_view what) {
  std::string msg = "sqlite " + path + ": ";
  msg += what;
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(errc::io, msg, false, is_busy(rc));
}

inline Statement prepare(sqlite3* db, const std::string& path, std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  const int rc =
      sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    fail(db, rc, path, sql);
  }
  return Statement(s);
}

/// Steps a statement that returns no rows to completion and resets it.
inline void run(sqlite3* db, sqlite3_stmt* s, const std::string& path, std::string_view what) {
  ResetGuard reset(s);
  if (const int rc = sqlite3_step(s); rc != SQLITE_DONE) {
    fail(db, rc, path, what);
  }
}

/// Runs SQL text (no results wanted).
inline void exec(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = "sqlite " + path + ": " + sql + ": " + (err != nullptr ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    throw Error(errc::io, msg, false, is_busy(rc));
  }
}

/// Binds a view as text without copying: the view must outlive the step. An
/// empty view is the empty text, never NULL (a null data() would bind NULL).
inline int bind_view(sqlite3_stmt* s, int index, std::string_view text) noexcept {
  return sqlite3_bind_text64(s, index, text.data() != nullptr ? text.data() : "",
                             static_cast<sqlite3_uint64>(text.size()), SQLITE_STATIC, SQLITE_UTF8);
}

}  // namespace kc::detail::sqlite
