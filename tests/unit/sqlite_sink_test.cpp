// SqliteSink: rows and offsets in one SQLite transaction, per-record undo,
// and the owner epoch that fences a zombie out.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kc/error.hpp"
#include "kc/sqlite_sink.hpp"
#include "sqlite_test_file.hpp"
#include "support/forwards.hpp"

namespace {

using kc::Offset;
using kc::Partition;
using kc::SinkOffset;
using kc::SqliteSink;
using kc::TopicPartition;

// A second connection, to look at the file as another process would.
class Reader {
 public:
  explicit Reader(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path;
    }
    sqlite3_busy_timeout(db_, 1000);
  }
  ~Reader() { sqlite3_close(db_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The first column of the first row as text; nullopt for NULL or no row.
  std::optional<std::string> text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db_);
    std::optional<std::string> out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }
  long long number(const std::string& sql) { return std::stoll(text(sql).value_or("-1")); }
  int exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteSinkTest : public kc::test::SqliteFileTest {
 protected:
  SqliteSinkTest() : SqliteFileTest("kc-sqlite-sink-") {}

  SqliteSink::Options options(const std::string& group = "g") const {
    SqliteSink::Options o;
    o.path = path_;
    o.group = group;
    o.busy_timeout_ms = 50;
    return o;
  }

  static void insert(SqliteSink& sink, const TopicPartition& tp, std::int64_t offset, const char* value = "{}") {
    kc::RecordRow row;
    row.topic = tp.topic;
    row.partition = kc::to_int(tp.partition);
    row.offset = offset;
    row.timestamp_ms = 1700000000000 + offset;
    row.key = "key";
    row.value = value;
    sink.insert(row);
  }
  static void commit(SqliteSink& sink, const TopicPartition& tp, std::int64_t next) {
    const SinkOffset o{tp, Offset{next}};
    sink.commit({&o, 1}, nullptr);
  }
  static std::vector<TopicPartition> one(const TopicPartition& tp) { return {tp}; }

  long long rows(const std::string& where = "1") {
    return Reader(path_).number("SELECT count(*) FROM kc_records WHERE " + where);
  }
  std::optional<std::string> stored(const std::string& group, const TopicPartition& tp) {
    return Reader(path_).text("SELECT next_offset FROM kc_offsets WHERE grp = '" + group + "' AND topic = '" +
                              tp.topic + "' AND part = " + std::to_string(kc::to_int(tp.partition)));
  }

  const TopicPartition tp_{"orders", Partition{3}};
  const TopicPartition other_{"orders", Partition{4}};
};

TEST_F(SqliteSinkTest, RowsAndOffsetsCommitTogetherAndSurviveReopening) {
  {
    SqliteSink sink(options());
    const auto pos = sink.claim(one(tp_));
    ASSERT_EQ(pos.size(), 1u);
    EXPECT_TRUE(pos[0].owned);
    EXPECT_FALSE(pos[0].next.has_value()) << "nothing stored yet";
    sink.begin();
    insert(sink, tp_, 10, R"({"a":1})");
    kc::RecordRow tombstone;
    tombstone.topic = tp_.topic;
    tombstone.partition = 3;
    tombstone.offset = 11;
    tombstone.key = std::string_view();  // an empty key is a key, not NULL
    sink.insert(tombstone);
    insert(sink, tp_, 12);
    commit(sink, tp_, 13);
  }
  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(stored("g", tp_), "13");
  Reader r(path_);
  EXPECT_EQ(r.text("SELECT value FROM kc_records WHERE \"offset\" = 10"), R"({"a":1})");
  EXPECT_EQ(r.number("SELECT timestamp_ms FROM kc_records WHERE \"offset\" = 10"), 1700000000010);
  EXPECT_EQ(r.text("SELECT topic || ':' || partition || ':' || key FROM kc_records WHERE \"offset\" = 12"),
            "orders:3:key");
  EXPECT_EQ(r.number("SELECT count(*) FROM kc_records WHERE \"offset\" = 11 AND value IS NULL AND key = ''"), 1);

  SqliteSink again(options());
  const auto pos = again.claim(one(tp_));
  ASSERT_EQ(pos.size(), 1u);
  EXPECT_EQ(pos[0].next, Offset{13}) << "claim starts where the committed offset says";
}

TEST_F(SqliteSinkTest, ClaimReturnsEachPartitionsStoredOffsetInOrder) {
  {
    SqliteSink sink(options());
    sink.claim(one(other_));
    sink.begin();
    commit(sink, other_, 7);
  }
  SqliteSink sink(options());
  const std::vector<TopicPartition> tps{tp_, other_};
  const auto pos = sink.claim(tps);
  ASSERT_EQ(pos.size(), 2u);
  EXPECT_FALSE(pos[0].next.has_value());
  EXPECT_EQ(pos[1].next, Offset{7});
  EXPECT_TRUE(pos[0].owned && pos[1].owned);
}

TEST_F(SqliteSinkTest, AbortLeavesNeitherRowsNorOffsets) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  commit(sink, tp_, 5);
  sink.begin();
  insert(sink, tp_, 5);
  insert(sink, tp_, 6);
  sink.abort();
  sink.abort();  // twice, and with nothing open: harmless
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(stored("g", tp_), "5");
  const auto pos = sink.resume(one(tp_));
  ASSERT_EQ(pos.size(), 1u);
  EXPECT_TRUE(pos[0].owned);
  EXPECT_EQ(pos[0].next, Offset{5});
  // The sink goes on after an abort.
  sink.begin();
  insert(sink, tp_, 5);
  commit(sink, tp_, 6);
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(stored("g", tp_), "6");
}

// The handler's writes for a failed record (record_end(false)) are undone;
// the other records of the same transaction are kept. Run on the sink's own
// table (undo by rowid) and on a table that needs savepoints (WITHOUT
// ROWID), with the handler's own statements through db() mixed in.
void failed_record_undoes_only_its_rows(const std::string& path, const SqliteSink::Options& opts) {
  SqliteSink sink(opts);
  const TopicPartition tp{"orders", Partition{3}};
  ASSERT_EQ(sqlite3_exec(sink.db(), "CREATE TABLE IF NOT EXISTS audit (v INTEGER)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sink.claim(std::vector<TopicPartition>{tp});
  auto row = [&](std::int64_t offset) {
    kc::RecordRow r;
    r.topic = tp.topic;
    r.partition = 3;
    r.offset = offset;
    r.value = "{}";
    sink.insert(r);
  };
  auto audit = [&](int v) {
    const std::string sql = "INSERT INTO audit (v) VALUES (" + std::to_string(v) + ")";
    ASSERT_EQ(sqlite3_exec(sink.db(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  };
  sink.begin();
  sink.record_begin();
  row(0);
  sink.record_end(true);
  sink.record_begin();  // fails after two rows
  row(1);
  row(2);
  sink.record_end(false);
  sink.record_begin();  // fails after a row, its own statement and another row
  row(3);
  audit(3);
  row(4);
  sink.record_end(false);
  sink.record_begin();  // writes nothing and fails
  sink.record_end(false);
  sink.record_begin();  // kept: a row and its own statement
  audit(5);
  row(5);
  sink.record_end(true);
  sink.record_begin();  // fails with its own statement only
  audit(6);
  sink.record_end(false);
  row(7);  // outside a record
  const SinkOffset o{tp, Offset{8}};
  sink.commit({&o, 1}, nullptr);

  Reader r(path);
  EXPECT_EQ(
      r.text("SELECT group_concat(\"offset\") FROM (SELECT \"offset\" FROM " + opts.table + " ORDER BY \"offset\")"),
      "0,5,7");
  EXPECT_EQ(r.text("SELECT group_concat(v) FROM audit"), "5");
  EXPECT_EQ(r.text("SELECT next_offset FROM kc_offsets"), "8");
}

TEST_F(SqliteSinkTest, FailedRecordUndoesOnlyItsOwnRows) {
  failed_record_undoes_only_its_rows(path_, options());
}

TEST_F(SqliteSinkTest, FailedRecordUndoesOnlyItsOwnRowsInATableThatNeedsSavepoints) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE strict_rows (topic TEXT NOT NULL, partition INTEGER NOT NULL, \"offset\" "
                         "INTEGER NOT NULL, timestamp_ms INTEGER, key TEXT, value TEXT, "
                         "PRIMARY KEY (topic, partition, \"offset\")) WITHOUT ROWID",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto opts = options();
  opts.table = "strict_rows";
  failed_record_undoes_only_its_rows(path_, opts);
}

// A consumer that lost the partition (a zombie) and a new owner on the same
// file and group: the zombie's commit is refused, nothing of it is kept.
TEST_F(SqliteSinkTest, ZombieIsFencedAndWritesNothing) {
  SqliteSink zombie(options());
  zombie.claim(one(tp_));
  zombie.begin();
  insert(zombie, tp_, 0);
  commit(zombie, tp_, 1);

  SqliteSink owner(options());
  const auto claimed = owner.claim(one(tp_));
  EXPECT_EQ(claimed.at(0).next, Offset{1});

  zombie.begin();
  insert(zombie, tp_, 1);
  insert(zombie, tp_, 2);
  try {
    commit(zombie, tp_, 3);
    FAIL() << "a zombie's commit must be refused";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::io));
    EXPECT_FALSE(e.retriable());
    EXPECT_FALSE(e.fatal());
    EXPECT_NE(std::string(e.what()).find("fenced: orders[3] was claimed by another consumer"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(rows(), 1) << "none of the zombie's rows are kept";
  EXPECT_EQ(stored("g", tp_), "1");

  const auto z = zombie.resume(one(tp_));
  EXPECT_FALSE(z.at(0).owned);
  EXPECT_EQ(z.at(0).next, Offset{1});
  const auto o = owner.resume(one(tp_));
  EXPECT_TRUE(o.at(0).owned);
  EXPECT_EQ(o.at(0).next, Offset{1});

  owner.begin();
  insert(owner, tp_, 1);
  commit(owner, tp_, 2);
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(stored("g", tp_), "2");
  EXPECT_EQ(rows("\"offset\" = 1"), 1) << "offset 1 written once, by the owner";
}

TEST_F(SqliteSinkTest, CommitForAPartitionNotClaimedOrReleasedIsRefused) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  insert(sink, other_, 0);
  try {
    commit(sink, other_, 1);
    FAIL() << "never claimed";
  } catch (const kc::Error& e) {
    EXPECT_FALSE(e.retriable());
    EXPECT_NE(std::string(e.what()).find("fenced: orders[4]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rows(), 0);
  EXPECT_FALSE(sink.resume(one(other_)).at(0).owned);

  sink.release(one(tp_));
  EXPECT_FALSE(sink.resume(one(tp_)).at(0).owned) << "released: no longer this sink's";
  sink.begin();
  EXPECT_THROW(commit(sink, tp_, 1), kc::Error);
  EXPECT_EQ(stored("g", tp_), std::nullopt);
}

TEST_F(SqliteSinkTest, GroupsInOneFileDoNotInterfere) {
  SqliteSink a(options("g1"));
  SqliteSink b(options("g2"));
  a.claim(one(tp_));
  b.claim(one(tp_));  // another group: no fencing of a
  a.begin();
  insert(a, tp_, 0);
  commit(a, tp_, 1);
  b.begin();
  commit(b, tp_, 7);
  EXPECT_EQ(stored("g1", tp_), "1");
  EXPECT_EQ(stored("g2", tp_), "7");
  EXPECT_TRUE(a.resume(one(tp_)).at(0).owned);
  EXPECT_TRUE(b.resume(one(tp_)).at(0).owned);
  EXPECT_EQ(a.resume(one(tp_)).at(0).next, Offset{1});
  EXPECT_EQ(b.resume(one(tp_)).at(0).next, Offset{7});
}

TEST_F(SqliteSinkTest, InvalidTableNameIsRejectedAndNamed) {
  for (const std::string bad :
       {"rows; DROP TABLE kc_offsets", "1rows", "", "my-rows", "kc_offsets", "sqlite_x", "kc_outbox", "KC_Outbox"}) {
    auto opts = options();
    opts.table = bad;
    try {
      SqliteSink sink(opts);
      ADD_FAILURE() << "accepted table name '" << bad << "'";
    } catch (const kc::Error& e) {
      EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::config_invalid_value)) << bad;
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
    }
  }
  auto opts = options();
  opts.table = "_Rows_2";
  EXPECT_NO_THROW(SqliteSink{opts});
}

TEST_F(SqliteSinkTest, BusyDatabaseGivesARetriableError) {
  SqliteSink sink(options());  // busy_timeout_ms = 50
  Reader blocker(path_);
  ASSERT_EQ(blocker.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  for (const char* what : {"claim", "db"}) {
    try {
      if (std::string(what) == "claim") {
        sink.claim(one(tp_));
      } else {
        sink.begin();
        sink.db();  // takes the write lock
      }
      ADD_FAILURE() << what << " succeeded on a locked database";
    } catch (const kc::Error& e) {
      EXPECT_TRUE(e.retriable()) << what << ": " << e.what();
      EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::io));
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(sink.commit({}, nullptr), kc::Error) << "the failed db() rolled the transaction back";
  sink.abort();
  ASSERT_EQ(blocker.exec("ROLLBACK"), SQLITE_OK);
  sink.claim(one(tp_));  // the same calls succeed once the lock is gone
  sink.begin();
  insert(sink, tp_, 0);
  commit(sink, tp_, 1);
  EXPECT_EQ(rows(), 1);
}

// The point of buffering: between begin() and commit() this sink holds no
// lock, so a stalled consumer (a zombie mid-batch) does not stop another
// connection's writes or claims; its rows appear only at commit().
TEST_F(SqliteSinkTest, BufferingTransactionHoldsNoLock) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  sink.record_begin();
  insert(sink, tp_, 0);
  sink.record_end(true);
  insert(sink, tp_, 1);

  Reader other(path_);
  ASSERT_EQ(other.exec("PRAGMA busy_timeout = 50"), SQLITE_OK);
  EXPECT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK) << "the buffering sink holds no write lock";
  EXPECT_EQ(other.exec("CREATE TABLE IF NOT EXISTS other_rows (v INTEGER)"), SQLITE_OK);
  EXPECT_EQ(other.exec("INSERT INTO other_rows VALUES (1)"), SQLITE_OK);
  EXPECT_EQ(other.exec("COMMIT"), SQLITE_OK);
  SqliteSink member(options());  // another member claims a partition of its own, at once
  EXPECT_TRUE(member.claim(one(other_)).at(0).owned);
  EXPECT_EQ(rows(), 0) << "nothing written before commit";

  commit(sink, tp_, 2);
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(stored("g", tp_), "2");
}

// Busy at commit (another connection holds the write lock past the busy
// timeout): retriable, nothing written, the buffer dropped; the sink goes on.
TEST_F(SqliteSinkTest, BusyCommitIsRetriableAndWritesNothing) {
  SqliteSink sink(options());  // busy_timeout_ms = 50
  sink.claim(one(tp_));
  Reader blocker(path_);
  sink.begin();  // no lock taken: begin() and insert() succeed on a locked file
  ASSERT_EQ(blocker.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  insert(sink, tp_, 0);
  insert(sink, tp_, 1);
  try {
    commit(sink, tp_, 2);
    FAIL() << "commit succeeded on a locked database";
  } catch (const kc::Error& e) {
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_FALSE(e.fatal());
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::io));
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
  sink.abort();  // what the consumer does next: harmless
  ASSERT_EQ(blocker.exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(stored("g", tp_), std::nullopt);

  EXPECT_TRUE(sink.resume(one(tp_)).at(0).owned);
  sink.begin();
  insert(sink, tp_, 0);
  commit(sink, tp_, 1);
  EXPECT_EQ(rows(), 1) << "the failed transaction's rows were dropped, not carried over";
  EXPECT_EQ(stored("g", tp_), "1");
}

// claim() while a transaction only buffers: no SQLite transaction is open,
// so the claim runs (and commits) in one of its own; an abort of the batch
// does not undo it.
TEST_F(SqliteSinkTest, ClaimWhileBufferingCommitsOnItsOwn) {
  SqliteSink sink(options());
  SqliteSink earlier(options());
  earlier.claim(one(other_));
  sink.claim(one(tp_));
  sink.begin();
  insert(sink, tp_, 0);
  EXPECT_TRUE(sink.claim(one(other_)).at(0).owned);
  EXPECT_FALSE(earlier.resume(one(other_)).at(0).owned) << "the claim is committed at once";
  sink.abort();
  EXPECT_TRUE(sink.resume(one(other_)).at(0).owned) << "the abort does not undo it";
  EXPECT_EQ(rows(), 0);
}

// claim() after db() opened the SQLite transaction (a cooperative rebalance
// while other partitions' records are in it): the claim joins it.
// Committed, it holds; aborted, it never happened, and resume() claims the
// partition again.
TEST_F(SqliteSinkTest, ClaimDuringAnOpenTransactionJoinsIt) {
  SqliteSink sink(options());
  SqliteSink earlier(options());
  earlier.claim(one(other_));
  sink.claim(one(tp_));
  sink.begin();
  insert(sink, tp_, 0);
  sink.db();  // starts the SQLite transaction
  EXPECT_TRUE(sink.claim(one(other_)).at(0).owned);
  sink.abort();
  EXPECT_TRUE(earlier.resume(one(other_)).at(0).owned) << "the aborted claim did not fence the earlier owner";
  const auto again = sink.resume(one(other_));
  EXPECT_TRUE(again.at(0).owned) << "resume() redoes the claim the abort undid";
  EXPECT_FALSE(earlier.resume(one(other_)).at(0).owned);
  EXPECT_EQ(rows(), 0);

  sink.begin();
  sink.db();
  sink.claim(one(other_));
  insert(sink, other_, 0);
  const std::vector<SinkOffset> offsets{{tp_, Offset{1}}, {other_, Offset{1}}};
  sink.commit(offsets, nullptr);
  EXPECT_EQ(stored("g", other_), "1");
  EXPECT_TRUE(sink.resume(one(other_)).at(0).owned);
  EXPECT_EQ(rows(), 1);
}

// db() makes the rows buffered so far visible to the handler's own
// statements, and holds the write lock from then until commit().
TEST_F(SqliteSinkTest, DbWritesTheBufferAndHoldsTheLockUntilCommit) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  insert(sink, tp_, 0);
  insert(sink, tp_, 1);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(sink.db(), "SELECT count(*) FROM kc_records", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 2);
  sqlite3_finalize(q);
  insert(sink, tp_, 2);

  Reader other(path_);
  ASSERT_EQ(other.exec("PRAGMA busy_timeout = 50"), SQLITE_OK);
  EXPECT_EQ(other.exec("BEGIN IMMEDIATE") & 0xff, SQLITE_BUSY) << "db() took the write lock";
  EXPECT_EQ(rows(), 0);
  commit(sink, tp_, 3);
  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK) << "commit() let it go";
  EXPECT_EQ(other.exec("ROLLBACK"), SQLITE_OK);
}

// Past 64 MiB of buffered text, insert() starts the SQLite transaction and
// writes the buffer; a record failing across that point is still undone alone.
TEST_F(SqliteSinkTest, LargeBufferIsWrittenEarlyAndAFailedRecordStillUndone) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  const std::string big = "\"" + std::string(std::size_t{1} << 20, 'x') + "\"";
  sink.begin();
  sink.record_begin();
  insert(sink, tp_, 0);
  sink.record_end(true);
  sink.record_begin();  // 70 MiB, then fails
  for (int i = 0; i < 70; ++i) {
    insert(sink, tp_, 1, big.c_str());
  }
  sink.record_end(false);
  sink.record_begin();
  insert(sink, tp_, 2, big.c_str());
  sink.record_end(true);
  Reader other(path_);
  ASSERT_EQ(other.exec("PRAGMA busy_timeout = 50"), SQLITE_OK);
  EXPECT_EQ(other.exec("BEGIN IMMEDIATE") & 0xff, SQLITE_BUSY) << "the early write took the lock";
  commit(sink, tp_, 3);
  EXPECT_EQ(Reader(path_).text("SELECT group_concat(\"offset\") FROM kc_records"), "0,2");
  EXPECT_EQ(rows("length(value) > 1000000"), 1);
}

TEST_F(SqliteSinkTest, WithoutAConsumerRowsAreWrittenWithoutOffsets) {
  SqliteSink sink(options());
  insert(sink, tp_, 0);  // outside a transaction: written at once
  EXPECT_EQ(rows(), 1);
  sink.begin();
  insert(sink, tp_, 1);
  insert(sink, tp_, 2);
  EXPECT_EQ(rows(), 1) << "not visible before commit";
  sink.commit({}, nullptr);
  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_offsets"), 0);
  EXPECT_THROW(sink.commit({}, nullptr), kc::Error) << "commit() without begin()";
}

TEST_F(SqliteSinkTest, UnopenablePathIsNamedInTheError) {
  auto opts = options();
  opts.path = "/nonexistent-dir/kc.db";
  try {
    SqliteSink sink(opts);
    FAIL() << "expected an error";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::io));
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/kc.db"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------
// The outbox: forward() writes a failed record's dead letter (or retry copy)
// into kc_outbox inside the consumer's transaction; pending_forwards() reads
// back what committed, forwards_sent() removes it.

using kc::test::dead_letter;
using kc::test::expect_same;
using kc::test::Forward;
using kc::test::ids_of;
using kc::test::offsets_of;

template <class F>
void expect_misuse(F&& f, const char* what) {
  try {
    f();
    ADD_FAILURE() << what << ": no error";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::misuse)) << what << ": " << e.what();
  }
}

TEST_F(SqliteSinkTest, ForwardedRecordsCommitWithTheTransactionByteForByte) {
  SqliteSink sink(options());
  sink.claim(one(tp_));

  Forward binary;
  binary.topic = "orders.dlq";
  binary.partition = 2;
  binary.key = std::string("k\0\x80\xff\n", 5);
  binary.value = std::string("\0\0{\"a\":\xc3\x28}\x7f\x80\xfe\xff", 14);
  binary.headers = {
      {"kc.error.message", "boom"},
      {"null-value", std::nullopt},
      {"empty-value", std::string()},
      {std::string("n\0\xff=\n", 5), std::string("\0\x01\x80", 3)},
      {"", std::string("empty name")},
      {"dup", std::string("1")},
      {"dup", std::string("2")},
  };
  binary.source = tp_;
  binary.source_offset = 7;

  Forward bare;  // a null key, an empty value, no headers, any partition
  bare.topic = "orders.retry-1";
  bare.partition = -1;
  bare.key = std::nullopt;
  bare.value = std::string();
  bare.source = tp_;
  bare.source_offset = 8;

  sink.begin();
  sink.record_begin();
  insert(sink, tp_, 6);
  sink.record_end(true);
  sink.record_begin();  // offset 7 fails: its dead letter goes with the transaction
  insert(sink, tp_, 7);
  sink.record_end(false);
  EXPECT_TRUE(sink.forward(binary.view()));
  sink.record_begin();
  sink.record_end(false);
  EXPECT_TRUE(sink.forward(bare.view()));

  Reader other(path_);
  ASSERT_EQ(other.exec("PRAGMA busy_timeout = 50"), SQLITE_OK);
  EXPECT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK) << "forward() buffers: no write lock before commit()";
  EXPECT_EQ(other.exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_outbox"), 0) << "nothing visible before commit()";

  commit(sink, tp_, 9);
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(stored("g", tp_), "9");

  const auto pending = sink.pending_forwards(one(tp_), 10);
  ASSERT_EQ(pending.size(), 2u);
  expect_same(pending[0], binary);
  expect_same(pending[1], bare);
  EXPECT_LT(pending[0].id, pending[1].id);

  // The columns as stored: NULL for a null key, an empty BLOB for an empty value.
  Reader r(path_);
  EXPECT_EQ(r.number("SELECT count(*) FROM kc_outbox WHERE src_offset = 8 AND key IS NULL AND typeof(value) = "
                     "'blob' AND length(value) = 0 AND part = -1 AND grp = 'g'"),
            1);
  EXPECT_EQ(r.number("SELECT length(key) + length(value) FROM kc_outbox WHERE src_offset = 7"), 19);

  // Committed means durable: another sink of the group finds them.
  SqliteSink again(options());
  again.claim(one(tp_));
  const auto after = again.pending_forwards(one(tp_), 10);
  ASSERT_EQ(after.size(), 2u);
  expect_same(after[0], binary);
  EXPECT_EQ(ids_of(after), ids_of(pending));
}

TEST_F(SqliteSinkTest, ForwardsOfAnAbortedOrFailedTransactionAreNeverPending) {
  SqliteSink sink(options());  // busy_timeout_ms = 50
  sink.claim(one(tp_));
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  sink.abort();
  EXPECT_TRUE(sink.pending_forwards(one(tp_), 10).empty()) << "aborted";

  sink.begin();  // a transaction that db() made live, then aborted
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 1).view()));
  sink.db();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 2).view()));
  sink.abort();
  EXPECT_TRUE(sink.pending_forwards(one(tp_), 10).empty()) << "aborted after db()";

  Reader blocker(path_);  // a commit that fails (busy)
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 3).view()));
  ASSERT_EQ(blocker.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  EXPECT_THROW(commit(sink, tp_, 4), kc::Error);
  sink.abort();
  ASSERT_EQ(blocker.exec("ROLLBACK"), SQLITE_OK);
  EXPECT_TRUE(sink.pending_forwards(one(tp_), 10).empty()) << "failed commit";

  sink.begin();  // the next transaction commits only its own forward, once
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 4).view()));
  commit(sink, tp_, 5);
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(tp_), 10)), std::vector<std::int64_t>{4});
  sink.begin();
  commit(sink, tp_, 5);
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(tp_), 10)), std::vector<std::int64_t>{4})
      << "a later commit does not write it again";
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_outbox"), 1);
}

TEST_F(SqliteSinkTest, ForwardsSentRemovesExactlyThoseIds) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  for (std::int64_t o = 0; o < 4; ++o) {
    ASSERT_TRUE(sink.forward(dead_letter(tp_, o).view()));
  }
  commit(sink, tp_, 4);
  const auto before = sink.pending_forwards(one(tp_), 10);
  ASSERT_EQ(offsets_of(before), (std::vector<std::int64_t>{0, 1, 2, 3}));

  const std::vector<std::int64_t> sent{before[0].id, before[2].id};
  sink.forwards_sent(sent);
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(tp_), 10)), (std::vector<std::int64_t>{1, 3}));

  // Idempotent: ids already gone (and ids that never were) are fine.
  const std::vector<std::int64_t> again{before[0].id, before[2].id, before[3].id + 1000};
  sink.forwards_sent(again);
  sink.forwards_sent({});
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(tp_), 10)), (std::vector<std::int64_t>{1, 3}));

  // While a consumer transaction only buffers, forwards_sent() runs in one
  // of its own (committed at once; the buffering one goes on).
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 4).view()));
  const std::vector<std::int64_t> one_more{before[1].id};
  sink.forwards_sent(one_more);
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_outbox"), 1);
  commit(sink, tp_, 5);
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(tp_), 10)), (std::vector<std::int64_t>{3, 4}));

  // Ids are never reused, even after the newest row was removed: a late
  // forwards_sent() of an old id cannot remove a newer forward.
  const auto now = sink.pending_forwards(one(tp_), 10);
  ASSERT_EQ(now.size(), 2u);
  const std::vector<std::int64_t> newest{now.at(1).id};
  sink.forwards_sent(newest);
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 5).view()));
  commit(sink, tp_, 6);
  const auto last = sink.pending_forwards(one(tp_), 10);
  ASSERT_EQ(offsets_of(last), (std::vector<std::int64_t>{3, 5}));
  EXPECT_GT(last.at(1).id, newest.front());
}

TEST_F(SqliteSinkTest, PendingForwardsFiltersBySourcePartitionOldestFirstUpToMax) {
  const TopicPartition third{"payments", Partition{3}};
  SqliteSink sink(options());
  SqliteSink other_group(options("g2"));
  sink.claim(std::vector<TopicPartition>{tp_, other_, third});
  other_group.claim(one(tp_));
  // Interleaved over two transactions: ids grow in the order forwarded.
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(other_, 0).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  ASSERT_TRUE(sink.forward(dead_letter(third, 0).view()));
  sink.commit(std::vector<SinkOffset>{{tp_, Offset{1}}, {other_, Offset{1}}, {third, Offset{1}}}, nullptr);
  other_group.begin();
  ASSERT_TRUE(other_group.forward(dead_letter(tp_, 50).view()));
  commit(other_group, tp_, 51);
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 1).view()));
  ASSERT_TRUE(sink.forward(dead_letter(other_, 1).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 2).view()));
  sink.commit(std::vector<SinkOffset>{{tp_, Offset{3}}, {other_, Offset{2}}}, nullptr);

  const std::vector<TopicPartition> owned{tp_, other_};
  auto p = sink.pending_forwards(owned, 100);
  ASSERT_EQ(p.size(), 5u);
  for (std::size_t i = 1; i < p.size(); ++i) {
    EXPECT_LT(p[i - 1].id, p[i].id) << "oldest first";
  }
  std::vector<std::string> order;
  for (const auto& f : p) {
    order.push_back(std::to_string(kc::to_int(f.source.partition)) + "@" + std::to_string(f.source_offset));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"4@0", "3@0", "3@1", "4@1", "3@2"}));

  p = sink.pending_forwards(owned, 3);
  ASSERT_EQ(p.size(), 3u) << "at most max";
  EXPECT_EQ(p.at(2).source_offset, 1);
  EXPECT_EQ(p.at(2).source, tp_);

  EXPECT_EQ(offsets_of(sink.pending_forwards(one(other_), 100)), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(offsets_of(sink.pending_forwards(one(third), 100)), (std::vector<std::int64_t>{0}));
  EXPECT_TRUE(sink.pending_forwards({}, 100).empty());
  EXPECT_TRUE(sink.pending_forwards(owned, 0).empty());
  EXPECT_TRUE(sink.pending_forwards(one(TopicPartition{"orders", Partition{9}}), 100).empty());
  EXPECT_EQ(offsets_of(other_group.pending_forwards(one(tp_), 100)), std::vector<std::int64_t>{50})
      << "each group sees its own";
  // forwards_sent() of another group's ids leaves them alone.
  sink.forwards_sent(ids_of(other_group.pending_forwards(one(tp_), 100)));
  EXPECT_EQ(other_group.pending_forwards(one(tp_), 100).size(), 1u);
}

// A zombie's transaction (its partition claimed by another sink since) is
// rolled back whole: its forwards with its rows and offsets.
TEST_F(SqliteSinkTest, ZombiesForwardsRollBackWithItsTransaction) {
  SqliteSink zombie(options());
  zombie.claim(one(tp_));
  SqliteSink owner(options());
  owner.claim(one(tp_));

  zombie.begin();
  insert(zombie, tp_, 0);
  ASSERT_TRUE(zombie.forward(dead_letter(tp_, 1).view()));
  try {
    commit(zombie, tp_, 2);
    FAIL() << "a zombie's commit must be refused";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fenced"), std::string::npos) << e.what();
  }
  zombie.abort();
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_outbox"), 0);
  EXPECT_TRUE(owner.pending_forwards(one(tp_), 10).empty());

  owner.begin();
  insert(owner, tp_, 0);
  ASSERT_TRUE(owner.forward(dead_letter(tp_, 1).view()));
  commit(owner, tp_, 2);
  EXPECT_EQ(offsets_of(owner.pending_forwards(one(tp_), 10)), std::vector<std::int64_t>{1});
}

TEST_F(SqliteSinkTest, OutboxCallsOutOfPlaceAreMisuse) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  const auto f = dead_letter(tp_, 0);
  expect_misuse([&] { sink.forward(f.view()); }, "forward() without begin()");
  sink.begin();
  sink.record_begin();
  expect_misuse([&] { sink.forward(f.view()); }, "forward() inside a record");
  sink.record_end(false);
  ASSERT_TRUE(sink.forward(f.view()));
  sink.db();  // the SQLite transaction is live: the outbox reads and deletes would mix with it
  expect_misuse([&] { sink.pending_forwards(one(tp_), 10); }, "pending_forwards() in a live transaction");
  const std::vector<std::int64_t> ids{1};
  expect_misuse([&] { sink.forwards_sent(ids); }, "forwards_sent() in a live transaction");
  commit(sink, tp_, 1);
  EXPECT_EQ(sink.pending_forwards(one(tp_), 10).size(), 1u) << "the misuse did not end the transaction";
}

TEST_F(SqliteSinkTest, HeadersNotInKcsEncodingAreAnErrorNamingTheRow) {
  SqliteSink sink(options());
  sink.claim(one(tp_));
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  commit(sink, tp_, 1);
  Reader r(path_);
  ASSERT_EQ(r.exec("UPDATE kc_outbox SET headers = x'01000000'"), SQLITE_OK);  // cut short
  const auto id = r.number("SELECT id FROM kc_outbox");
  try {
    sink.pending_forwards(one(tp_), 10);
    FAIL() << "a malformed headers column was accepted";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::io)) << e.what();
    EXPECT_NE(std::string(e.what()).find("kc_outbox row " + std::to_string(id)), std::string::npos) << e.what();
  }
}

// set_deadline(): a commit waiting for a lock held by another connection
// gives up at the deadline, not after busy_timeout_ms (10 s here); a call
// after the deadline gives up at once. Wall times are checked loosely: the
// point is that nobody waits the full busy timeout.
TEST_F(SqliteSinkTest, DeadlineCutsTheLockWaitShort) {
  using namespace std::chrono;
  auto opts = options();
  opts.busy_timeout_ms = 10000;
  SqliteSink sink(opts);
  sink.claim(one(tp_));
  Reader blocker(path_);
  sink.begin();
  insert(sink, tp_, 0);
  EXPECT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  ASSERT_EQ(blocker.exec("BEGIN IMMEDIATE"), SQLITE_OK);

  auto started = steady_clock::now();
  sink.set_deadline(started + milliseconds(300));
  try {
    commit(sink, tp_, 1);
    FAIL() << "commit succeeded on a locked database";
  } catch (const kc::Error& e) {
    EXPECT_TRUE(e.retriable()) << e.what();
  }
  auto took = steady_clock::now() - started;
  EXPECT_GE(took, milliseconds(200)) << "it did wait for the lock until about the deadline";
  EXPECT_LT(took, seconds(5)) << "waited " << duration_cast<milliseconds>(took).count() << " ms";
  sink.abort();

  // Past the deadline: ~1 ms of waiting, for a claim as for a commit.
  started = steady_clock::now();
  EXPECT_THROW(sink.claim(one(other_)), kc::Error);
  sink.begin();
  EXPECT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  EXPECT_THROW(commit(sink, tp_, 1), kc::Error);
  sink.abort();
  took = steady_clock::now() - started;
  EXPECT_LT(took, seconds(2)) << "waited " << duration_cast<milliseconds>(took).count() << " ms";

  ASSERT_EQ(blocker.exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(rows(), 0);
  EXPECT_EQ(Reader(path_).number("SELECT count(*) FROM kc_outbox"), 0);

  // A later deadline replaces it; with the lock free the same calls succeed.
  sink.set_deadline(steady_clock::now() + hours(1));
  sink.begin();
  insert(sink, tp_, 0);
  EXPECT_TRUE(sink.forward(dead_letter(tp_, 0).view()));
  commit(sink, tp_, 1);
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(sink.pending_forwards(one(tp_), 10).size(), 1u);
}

}  // namespace
