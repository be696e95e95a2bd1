// kc::PostgresSink against a real PostgreSQL server (scripts/postgres): rows
// and offsets commit together or not at all, a failed record's writes are
// undone alone, claim() fences a zombie, and an outage is retriable and
// heals without a new sink.
//
// What the sink committed is read back over a connection of the test's own
// (Db below), never through the sink. Needs KC_TEST_POSTGRES_URI (and
// KC_TEST_POSTGRES_STATE for the outage test); fails without them.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "kc/postgres_sink.hpp"
#include "support/common.hpp"
#include "support/forwards.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

// A name usable as a plain SQL identifier (unique_name() uses '-').
std::string sql_name(std::string_view prefix) {
  auto s = unique_name(prefix);
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

// A connection of the test's own: sees only what the sink committed.
class Db {
 public:
  Db() : conn_(postgres_uri()) {}

  std::int64_t count(const std::string& sql) {
    pqxx::nontransaction n(conn_);
    return n.exec1(sql)[0].as<std::int64_t>();
  }
  // The first column of each row, as text ("NULL" for NULL).
  std::vector<std::string> column(const std::string& sql) {
    pqxx::nontransaction n(conn_);
    std::vector<std::string> out;
    for (const auto& r : n.exec(sql)) {
      out.push_back(r[0].is_null() ? "NULL" : r[0].as<std::string>());
    }
    return out;
  }
  void exec(const std::string& sql) {
    pqxx::nontransaction n(conn_);
    n.exec(sql);
  }
  // kc_offsets.next_offset; "none" without a row, "NULL" for NULL.
  std::string stored(const std::string& group, const TopicPartition& tp) {
    const auto v = column("SELECT next_offset FROM kc_offsets WHERE grp = " + quote(group) +
                          " AND topic = " + quote(tp.topic) + " AND part = " + std::to_string(to_int(tp.partition)));
    return v.empty() ? "none" : v.front();
  }
  std::string quote(const std::string& s) { return conn_.quote(s); }
  pqxx::connection& conn() { return conn_; }

 private:
  pqxx::connection conn_;
};

// Runs `f`, which must throw kc::Error; returns it.
template <class F>
Error expect_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected kc::Error, got another exception: " << e.what();
    return Error(errc::io, "(wrong exception type)");
  }
  ADD_FAILURE() << "expected kc::Error, nothing was thrown";
  return Error(errc::io, "(nothing thrown)");
}

RecordRow row(const std::string& topic, std::int32_t partition, std::int64_t offset,
              std::optional<std::string_view> value = R"({"n":1})", std::optional<std::string_view> key = "k") {
  RecordRow r;
  r.topic = topic;
  r.partition = partition;
  r.offset = offset;
  r.timestamp_ms = 1700000000000 + offset;
  r.key = key;
  r.value = value;
  return r;
}

class PostgresSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = postgres_uri();
    table_ = sql_name("kc_rows");
    group_ = unique_name("pg-group");
    topic_ = unique_name("pg-topic");
  }
  void TearDown() override {
    if (uri_.empty()) {
      return;
    }
    try {
      Db db;
      db.exec("DELETE FROM kc_outbox WHERE grp IN (" + db.quote(group_) + ", " + db.quote(group_ + "-other") + ")");
      for (const auto& t : drop_) {
        db.exec("DROP TABLE IF EXISTS " + t);
      }
      db.exec("DROP TABLE IF EXISTS " + table_);
      db.exec("DELETE FROM kc_offsets WHERE grp IN (" + db.quote(group_) + ", " + db.quote(group_ + "-other") + ")");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cleanup failed: %s\n", e.what());
    }
  }

  PostgresSink::Options options() const {
    PostgresSink::Options o;
    o.uri = uri_;
    o.group = group_;
    o.table = table_;
    o.connect_timeout = 3s;
    o.statement_timeout = 10s;
    return o;
  }
  TopicPartition tp(int p) const { return {topic_, Partition{p}}; }
  std::int64_t rows(Db& db) { return db.count("SELECT count(*) FROM " + table_); }
  std::vector<std::string> offsets(Db& db) {
    return db.column("SELECT \"offset\" FROM " + table_ + " ORDER BY partition, \"offset\"");
  }

  std::string uri_;
  std::string table_;
  std::string group_;
  std::string topic_;
  std::vector<std::string> drop_;  // more tables to drop at the end
};

TEST_F(PostgresSinkTest, RowsAndOffsetsCommitTogether) {
  PostgresSink sink(options());
  Db db;
  const std::vector<TopicPartition> tps{tp(0), tp(1)};
  const auto pos = sink.claim(tps);
  ASSERT_EQ(pos.size(), 2u);
  EXPECT_TRUE(pos[0].owned && pos[1].owned);
  EXPECT_FALSE(pos[0].next.has_value());
  EXPECT_FALSE(pos[1].next.has_value());

  sink.begin();
  sink.insert(row(topic_, 0, 0, R"({"s":"h\u00e9llo","t":"é ✓"})"));
  sink.insert(row(topic_, 0, 1, std::nullopt, std::nullopt));            // a tombstone without a key
  sink.insert(row(topic_, 0, 2, R"("a string")", "tab\there\nnl\\bs"));  // COPY's special characters
  auto ts_unknown = row(topic_, 1, 0);
  ts_unknown.timestamp_ms = -1;
  sink.insert(ts_unknown);
  EXPECT_EQ(rows(db), 0) << "rows are visible before commit()";

  const std::vector<SinkOffset> next{{tp(0), Offset{3}}, {tp(1), Offset{1}}};
  sink.commit(next, nullptr);

  EXPECT_EQ(offsets(db), (std::vector<std::string>{"0", "1", "2", "0"}));
  EXPECT_EQ(db.stored(group_, tp(0)), "3");
  EXPECT_EQ(db.stored(group_, tp(1)), "1");
  EXPECT_EQ(db.column("SELECT value->>'s' FROM " + table_ + " WHERE \"offset\" = 0 AND partition = 0"),
            std::vector<std::string>{"héllo"});
  EXPECT_EQ(db.column("SELECT value->>'t' FROM " + table_ + " WHERE \"offset\" = 0 AND partition = 0"),
            std::vector<std::string>{"é ✓"});
  EXPECT_EQ(db.column("SELECT coalesce(key, 'NULL') || '/' || coalesce(value::text, 'NULL') FROM " + table_ +
                      " WHERE \"offset\" = 1"),
            std::vector<std::string>{"NULL/NULL"});
  EXPECT_EQ(db.column("SELECT key FROM " + table_ + " WHERE \"offset\" = 2"),
            std::vector<std::string>{"tab\there\nnl\\bs"});
  EXPECT_EQ(db.column("SELECT jsonb_typeof(value) FROM " + table_ + " WHERE \"offset\" = 2"),
            std::vector<std::string>{"string"});
  EXPECT_EQ(db.column("SELECT timestamp_ms FROM " + table_ + " WHERE partition = 0 ORDER BY \"offset\" LIMIT 1"),
            std::vector<std::string>{"1700000000000"});
  EXPECT_EQ(db.column("SELECT timestamp_ms FROM " + table_ + " WHERE partition = 1"), std::vector<std::string>{"NULL"});

  // Without offsets (at-least-once use): rows only.
  sink.begin();
  sink.insert(row(topic_, 0, 3));
  sink.commit({}, nullptr);
  EXPECT_EQ(rows(db), 5);
  EXPECT_EQ(db.stored(group_, tp(0)), "3");
}

TEST_F(PostgresSinkTest, AbortLeavesNothing) {
  Db db;
  const auto handler_table = sql_name("kc_handler");
  drop_.push_back(handler_table);
  db.exec("CREATE TABLE " + handler_table + " (n INTEGER)");
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});

  sink.begin();
  sink.insert(row(topic_, 0, 0));
  sink.transaction().exec("INSERT INTO " + handler_table + " VALUES (1)");
  sink.record_begin();
  sink.insert(row(topic_, 0, 1));
  sink.transaction().exec("INSERT INTO " + handler_table + " VALUES (2)");
  sink.record_end(true);
  sink.abort();
  sink.abort();  // twice: harmless

  EXPECT_EQ(rows(db), 0);
  EXPECT_EQ(db.count("SELECT count(*) FROM " + handler_table), 0);
  EXPECT_EQ(db.stored(group_, tp(0)), "NULL");

  // The sink goes on after an abort, and commits nothing of the aborted one.
  sink.begin();
  sink.insert(row(topic_, 0, 0));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  EXPECT_EQ(offsets(db), std::vector<std::string>{"0"});
  EXPECT_EQ(db.stored(group_, tp(0)), "1");
}

TEST_F(PostgresSinkTest, FailedRecordDropsOnlyItsInsertedRows) {
  Db db;
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  for (std::int64_t o = 0; o < 5; ++o) {
    sink.record_begin();
    sink.insert(row(topic_, 0, o));
    sink.insert(row(topic_, 0, o));  // two rows per record
    sink.record_end(o % 2 == 0);     // records 1 and 3 failed
  }
  sink.insert(row(topic_, 0, 99));  // outside any record: kept
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{5}}}, nullptr);
  EXPECT_EQ(offsets(db), (std::vector<std::string>{"0", "0", "2", "2", "4", "4", "99"}));
}

TEST_F(PostgresSinkTest, FailedRecordUndoesOnlyItsOwnStatements) {
  Db db;
  const auto handler_table = sql_name("kc_handler");
  drop_.push_back(handler_table);
  db.exec("CREATE TABLE " + handler_table + " (n INTEGER)");
  const std::string ins = "INSERT INTO " + handler_table + " VALUES ";
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();

  sink.record_begin();  // kept
  sink.transaction().exec(ins + "(0)");
  sink.transaction().exec(ins + "(10)");  // the same savepoint for the whole record
  sink.insert(row(topic_, 0, 0));
  sink.record_end(true);

  sink.record_begin();  // failed after writing
  sink.transaction().exec(ins + "(1)");
  sink.insert(row(topic_, 0, 1));
  sink.record_end(false);

  sink.record_begin();  // failed in SQL: only this record's statements are gone
  sink.transaction().exec(ins + "(2)");
  EXPECT_ANY_THROW(sink.transaction().exec("INSERT INTO no_such_table_kc VALUES (1)"));
  sink.record_end(false);

  sink.record_begin();  // a record that writes nothing
  sink.record_end(true);

  sink.record_begin();  // kept, after the failures
  sink.transaction().exec(ins + "(3)");
  sink.insert(row(topic_, 0, 3));
  sink.record_end(true);

  sink.transaction().exec(ins + "(4)");  // outside a record: part of the transaction
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{4}}}, nullptr);

  EXPECT_EQ(db.column("SELECT n FROM " + handler_table + " ORDER BY n"),
            (std::vector<std::string>{"0", "3", "4", "10"}));
  EXPECT_EQ(offsets(db), (std::vector<std::string>{"0", "3"}));
  EXPECT_EQ(db.stored(group_, tp(0)), "4");
}

TEST_F(PostgresSinkTest, KeepingARecordWhoseStatementFailedFailsTheTransaction) {
  Db db;
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  sink.insert(row(topic_, 0, 0));
  sink.record_begin();
  EXPECT_ANY_THROW(sink.transaction().exec("INSERT INTO no_such_table_kc VALUES (1)"));
  const auto e = expect_error([&] { sink.record_end(true); });
  EXPECT_FALSE(e.retriable()) << e.what();
  EXPECT_NE(std::string(e.what()).find("SAVEPOINT"), std::string::npos) << e.what();
  sink.abort();
  EXPECT_EQ(rows(db), 0);
}

TEST_F(PostgresSinkTest, ClaimReturnsStoredOffsets) {
  {
    PostgresSink a(options());
    a.claim(std::vector{tp(0), tp(1)});
    a.begin();
    a.insert(row(topic_, 0, 9));
    a.commit(std::vector<SinkOffset>{{tp(0), Offset{10}}}, nullptr);
  }
  PostgresSink b(options());
  const auto pos = b.claim(std::vector{tp(1), tp(0), tp(2)});  // positions in the order asked
  ASSERT_EQ(pos.size(), 3u);
  EXPECT_TRUE(pos[0].owned && pos[1].owned && pos[2].owned);
  EXPECT_FALSE(pos[0].next.has_value());
  ASSERT_TRUE(pos[1].next.has_value());
  EXPECT_EQ(to_int(*pos[1].next), 10);
  EXPECT_FALSE(pos[2].next.has_value());

  // Another group keeps offsets of its own.
  auto other = options();
  other.group = group_ + "-other";
  PostgresSink c(other);
  const auto pos_c = c.claim(std::vector{tp(0)});
  EXPECT_FALSE(pos_c.at(0).next.has_value());
  Db db;
  db.exec("DELETE FROM kc_offsets WHERE grp = " + db.quote(other.group));
}

TEST_F(PostgresSinkTest, ZombieIsFencedAndWritesNothing) {
  Db db;
  PostgresSink a(options());
  PostgresSink b(options());
  a.claim(std::vector{tp(0), tp(1)});
  a.begin();
  for (std::int64_t o = 0; o < 5; ++o) {
    a.insert(row(topic_, 0, o));
  }
  a.commit(std::vector<SinkOffset>{{tp(0), Offset{5}}}, nullptr);

  // A goes on, but B takes partition 0 over before A commits.
  a.begin();
  for (std::int64_t o = 5; o < 8; ++o) {
    a.insert(row(topic_, 0, o));
  }
  a.insert(row(topic_, 1, 0));
  const auto pos = b.claim(std::vector{tp(0)});
  ASSERT_TRUE(pos.at(0).next.has_value());
  EXPECT_EQ(to_int(*pos.at(0).next), 5);

  const auto e = expect_error([&] {
    a.commit(std::vector<SinkOffset>{{tp(1), Offset{1}}, {tp(0), Offset{8}}}, nullptr);
  });
  EXPECT_FALSE(e.retriable()) << e.what();
  EXPECT_FALSE(e.fatal()) << e.what();
  EXPECT_EQ(e.code(), make_error_code(errc::io));
  EXPECT_NE(std::string(e.what()).find("fenced"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(topic_ + "[0]"), std::string::npos) << e.what();
  a.abort();

  // Nothing of A's transaction landed, not even partition 1 (still A's).
  EXPECT_EQ(rows(db), 5);
  EXPECT_EQ(db.stored(group_, tp(0)), "5");
  EXPECT_EQ(db.stored(group_, tp(1)), "NULL");

  b.begin();
  for (std::int64_t o = 5; o < 8; ++o) {
    b.insert(row(topic_, 0, o));
  }
  b.commit(std::vector<SinkOffset>{{tp(0), Offset{8}}}, nullptr);
  EXPECT_EQ(rows(db), 8);
  EXPECT_EQ(db.count("SELECT count(DISTINCT \"offset\") FROM " + table_), 8) << "duplicates";
  EXPECT_EQ(db.stored(group_, tp(0)), "8");

  const auto ra = a.resume(std::vector{tp(0), tp(1)});
  EXPECT_FALSE(ra.at(0).owned);
  EXPECT_EQ(to_int(ra.at(0).next.value_or(Offset{-1})), 8);
  EXPECT_TRUE(ra.at(1).owned);  // partition 1 is still A's
  a.begin();
  a.commit(std::vector<SinkOffset>{{tp(1), Offset{0}}}, nullptr);  // and A may still commit for it
  EXPECT_EQ(db.stored(group_, tp(1)), "0");
}

TEST_F(PostgresSinkTest, ResumeTellsOwnershipWithoutTakingOver) {
  PostgresSink a(options());
  PostgresSink b(options());
  auto r = a.resume(std::vector{tp(0)});
  EXPECT_FALSE(r.at(0).owned) << "a partition nobody claimed";
  EXPECT_FALSE(r.at(0).next.has_value());

  a.claim(std::vector{tp(0)});
  a.begin();
  a.commit(std::vector<SinkOffset>{{tp(0), Offset{7}}}, nullptr);
  r = a.resume(std::vector{tp(0)});
  EXPECT_TRUE(r.at(0).owned);
  EXPECT_EQ(to_int(r.at(0).next.value_or(Offset{-1})), 7);
  r = b.resume(std::vector{tp(0)});
  EXPECT_FALSE(r.at(0).owned) << "b never claimed it";
  EXPECT_EQ(to_int(r.at(0).next.value_or(Offset{-1})), 7);
  r = a.resume(std::vector{tp(0)});
  EXPECT_TRUE(r.at(0).owned) << "b's resume() took it over";

  b.claim(std::vector{tp(0)});
  EXPECT_FALSE(a.resume(std::vector{tp(0)}).at(0).owned);
  EXPECT_TRUE(b.resume(std::vector{tp(0)}).at(0).owned);
  b.release(std::vector{tp(0)});
  EXPECT_FALSE(b.resume(std::vector{tp(0)}).at(0).owned);
  b.begin();
  const auto e = expect_error([&] { b.commit(std::vector<SinkOffset>{{tp(0), Offset{8}}}, nullptr); });
  EXPECT_EQ(e.code(), make_error_code(errc::misuse)) << e.what();
  Db db;
  EXPECT_EQ(db.stored(group_, tp(0)), "7");
}

// A cooperative rebalance assigns partitions while a transaction is open.
TEST_F(PostgresSinkTest, ClaimWhileATransactionIsOpen) {
  Db db;
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  sink.insert(row(topic_, 0, 0));
  const auto pos = sink.claim(std::vector{tp(1)});
  EXPECT_TRUE(pos.at(0).owned);
  EXPECT_EQ(db.stored(group_, tp(1)), "NULL") << "the claim committed on its own";
  EXPECT_EQ(rows(db), 0);
  EXPECT_TRUE(sink.resume(std::vector{tp(1)}).at(0).owned);
  sink.insert(row(topic_, 1, 0));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}, {tp(1), Offset{1}}}, nullptr);
  EXPECT_EQ(rows(db), 2);
  EXPECT_EQ(db.stored(group_, tp(0)), "1");
  EXPECT_EQ(db.stored(group_, tp(1)), "1");
}

TEST_F(PostgresSinkTest, RejectsATableNameThatIsNotAPlainIdentifier) {
  for (const std::string& bad :
       std::vector<std::string>{"kc records", "1abc", "a;drop table x", "", "x\"y", "kc.records"}) {
    auto o = options();
    o.table = bad;
    const auto e = expect_error([&] { PostgresSink s(o); });
    EXPECT_EQ(e.code(), make_error_code(errc::config_invalid_value)) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
  }
}

TEST_F(PostgresSinkTest, RejectsReservedTableNames) {
  for (const std::string& reserved : std::vector<std::string>{"kc_offsets", "kc_outbox", "KC_Outbox"}) {
    auto o = options();
    o.table = reserved;
    const auto e = expect_error([&] { PostgresSink s(o); });
    EXPECT_EQ(e.code(), make_error_code(errc::config_invalid_value)) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + reserved + "'"), std::string::npos) << e.what();
  }
}

TEST_F(PostgresSinkTest, ErrorsNeverShowThePassword) {
  const std::string secret = "S3cr3tPw";
  auto o = options();
  // Nothing listens on port 1: refused at once, an outage (retriable).
  for (const std::string& uri : {"postgresql://kc:" + secret + "@127.0.0.1:1/kc",
                                 "postgresql://kc@127.0.0.1:1/kc?password=" + secret + "&sslmode=disable",
                                 "host=127.0.0.1 port=1 user=kc password=" + secret + " dbname=kc",
                                 "host=127.0.0.1 port=1 user=kc password='" + secret + " x' dbname=kc"}) {
    o.uri = uri;
    const auto e = expect_error([&] { PostgresSink s(o); });
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  // The test server trusts loopback: a password in the URI is accepted and
  // then kept out of an SQL error's message too.
  const auto scheme_end = uri_.find("://") + 3;
  const auto at = uri_.find('@', scheme_end);
  ASSERT_NE(at, std::string::npos) << "expected postgresql://user@host... from scripts/postgres: " << uri_;
  o.uri = uri_.substr(0, at) + ":" + secret + uri_.substr(at);
  PostgresSink sink(o);
  sink.begin();
  sink.insert(row(topic_, 0, 0, "{not json " + secret + "}"));
  const auto e = expect_error([&] { sink.commit({}, nullptr); });
  EXPECT_FALSE(e.retriable()) << e.what();
  EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("COPY"), std::string::npos) << "names the statement: " << e.what();
  sink.abort();
  Db db;
  EXPECT_EQ(rows(db), 0);
}

TEST_F(PostgresSinkTest, StatementTimeoutIsRetriable) {
  auto o = options();
  o.statement_timeout = 300ms;
  PostgresSink sink(o);
  sink.claim(std::vector{tp(0)});
  Db db;
  {
    // Another session holds the partition's offsets row.
    pqxx::work lock(db.conn());
    lock.exec("SELECT * FROM kc_offsets WHERE grp = " + lock.quote(group_) + " FOR UPDATE");
    sink.begin();
    sink.insert(row(topic_, 0, 0));
    const auto started = std::chrono::steady_clock::now();
    const auto e = expect_error([&] { sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr); });
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    sink.abort();
    lock.abort();
  }
  EXPECT_EQ(rows(db), 0);
  sink.begin();
  sink.insert(row(topic_, 0, 0));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  EXPECT_EQ(rows(db), 1);
}

// Processes that start at once race on CREATE TABLE IF NOT EXISTS.
TEST_F(PostgresSinkTest, SinksStartingAtOnceCreateTheTablesOnce) {
  constexpr int kSinks = 8;
  std::barrier start(kSinks);
  std::vector<std::string> errors(kSinks);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSinks; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        PostgresSink s(options());
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    EXPECT_EQ(e, "");
  }
  Db db;
  EXPECT_EQ(rows(db), 0);
}

// Runs scripts/postgres on the test server's state file; brings the server
// back in its destructor if the test left it down (an assertion failed).
class ServerSwitch {
 public:
  explicit ServerSwitch(std::string state) : state_(std::move(state)) {}
  ~ServerSwitch() {
    if (down_) {
      try {
        up();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "could not bring PostgreSQL back: %s\n", e.what());
      }
    }
  }
  ServerSwitch(const ServerSwitch&) = delete;
  ServerSwitch& operator=(const ServerSwitch&) = delete;

  void down() {
    down_ = true;
    run("down");
  }
  void up() {
    run("start");
    down_ = false;
  }

 private:
  void run(const std::string& what) {
    const std::string cmd =
        "KC_POSTGRES_STATE='" + state_ + "' '" KC_SOURCE_DIR "/scripts/postgres' " + what + " >/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      throw Failure("`" + cmd + "` failed");
    }
  }

  std::string state_;
  bool down_ = false;
};

TEST_F(PostgresSinkTest, OutageIsRetriableAndHealsWithTheSameSink) {
  ServerSwitch server(postgres_state());
  auto o = options();
  o.statement_timeout = 4321ms;
  PostgresSink sink(o);
  sink.claim(std::vector{tp(0)});
  sink.begin();
  sink.insert(row(topic_, 0, 0));
  sink.insert(row(topic_, 0, 1));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{2}}}, nullptr);

  // The server goes away during an open transaction.
  sink.begin();
  sink.insert(row(topic_, 0, 2));
  server.down();
  auto e = expect_error([&] { sink.commit(std::vector<SinkOffset>{{tp(0), Offset{3}}}, nullptr); });
  EXPECT_TRUE(e.retriable()) << e.what();
  EXPECT_EQ(e.code(), make_error_code(errc::io));
  sink.abort();  // never throws, even now

  e = expect_error([&] { sink.begin(); });
  EXPECT_TRUE(e.retriable()) << e.what();
  e = expect_error([&] { sink.begin(); });  // and again: no state left behind
  EXPECT_TRUE(e.retriable()) << e.what();
  e = expect_error([&] { sink.resume(std::vector{tp(0)}); });
  EXPECT_TRUE(e.retriable()) << e.what();

  server.up();
  const auto pos = sink.resume(std::vector{tp(0)});
  EXPECT_TRUE(pos.at(0).owned);
  EXPECT_EQ(to_int(pos.at(0).next.value_or(Offset{-1})), 2) << "what was committed before the outage";
  sink.begin();
  sink.insert(row(topic_, 0, 2));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{3}}}, nullptr);
  Db db;
  EXPECT_EQ(offsets(db), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(db.stored(group_, tp(0)), "3");

  // An outage while no transaction is open: the sink's connection died
  // idle; the first begin() after the server is back works, with the
  // session's settings.
  server.down();
  server.up();
  sink.begin();
  EXPECT_EQ(sink.transaction().exec1("SHOW statement_timeout")[0].as<std::string>(), "4321ms");
  sink.insert(row(topic_, 0, 3));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{4}}}, nullptr);
  Db db2;
  EXPECT_EQ(rows(db2), 4);
  EXPECT_EQ(db2.stored(group_, tp(0)), "4");
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

class PostgresSinkOutboxTest : public PostgresSinkTest {
 protected:
  std::int64_t outbox_rows(Db& db) {
    return db.count("SELECT count(*) FROM kc_outbox WHERE grp = " + db.quote(group_));
  }
  std::vector<PendingForward> pending(PostgresSink& sink, const std::vector<TopicPartition>& owned,
                                      std::size_t max = 100) {
    return sink.pending_forwards(owned, max);
  }
};

TEST_F(PostgresSinkOutboxTest, ForwardedRecordsCommitWithTheTransactionByteForByte) {
  PostgresSink sink(options());
  Db db;
  sink.claim(std::vector{tp(0)});

  Forward binary;
  binary.partition = 2;
  binary.key = std::string("k\0\x80\xff\n", 5);
  binary.value = std::string("\0\0{\"a\":\xc3\x28}\\\t\x7f\x80\xfe\xff", 16);
  binary.headers = {
      {"kc.error.message", "boom\ttab\nnewline\\backslash"},
      {"null-value", std::nullopt},
      {"empty-value", std::string()},
      {std::string("n\0\xff=\n", 5), std::string("\0\x01\x80", 3)},
      {"", std::string("empty name")},
      {"dup", std::string("1")},
      {"dup", std::string("2")},
  };
  binary.source = tp(0);
  binary.source_offset = 7;

  Forward bare;  // a null key, an empty value, no headers, any partition
  bare.topic = "orders.retry-1";
  bare.partition = -1;
  bare.key = std::nullopt;
  bare.value = std::string();
  bare.source = tp(0);
  bare.source_offset = 8;

  sink.begin();
  sink.record_begin();
  sink.insert(row(topic_, 0, 6));
  sink.record_end(true);
  sink.record_begin();  // offset 7 fails: its dead letter goes with the transaction
  sink.insert(row(topic_, 0, 7));
  sink.record_end(false);
  EXPECT_TRUE(sink.forward(binary.view()));
  sink.record_begin();
  sink.record_end(false);
  EXPECT_TRUE(sink.forward(bare.view()));
  EXPECT_EQ(outbox_rows(db), 0) << "nothing visible before commit()";

  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{9}}}, nullptr);
  EXPECT_EQ(offsets(db), std::vector<std::string>{"6"});
  EXPECT_EQ(db.stored(group_, tp(0)), "9");

  const auto got = pending(sink, {tp(0)});
  ASSERT_EQ(got.size(), 2u);
  expect_same(got.at(0), binary);
  expect_same(got.at(1), bare);
  EXPECT_LT(got.at(0).id, got.at(1).id);

  // The columns as stored: NULL for a null key, an empty bytea for an empty value.
  EXPECT_EQ(db.count("SELECT count(*) FROM kc_outbox WHERE grp = " + db.quote(group_) +
                     " AND src_offset = 8 AND key IS NULL AND value = ''::bytea AND part = -1"),
            1);
  EXPECT_EQ(db.count("SELECT length(key) + length(value) FROM kc_outbox WHERE grp = " + db.quote(group_) +
                     " AND src_offset = 7"),
            21);

  // Committed means durable: another sink of the group finds them.
  PostgresSink again(options());
  again.claim(std::vector{tp(0)});
  const auto after = pending(again, {tp(0)});
  ASSERT_EQ(after.size(), 2u);
  expect_same(after.at(0), binary);
  EXPECT_EQ(ids_of(after), ids_of(got));
}

TEST_F(PostgresSinkOutboxTest, ForwardsOfAnAbortedOrFailedTransactionAreNeverPending) {
  PostgresSink sink(options());
  Db db;
  sink.claim(std::vector{tp(0)});
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 0).view()));
  sink.abort();
  EXPECT_TRUE(pending(sink, {tp(0)}).empty()) << "aborted";

  sink.begin();  // a commit that fails: the server refuses a row
  sink.insert(row(topic_, 0, 1, "{not json"));
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 1).view()));
  EXPECT_THROW(sink.commit(std::vector<SinkOffset>{{tp(0), Offset{2}}}, nullptr), Error);
  sink.abort();
  EXPECT_TRUE(pending(sink, {tp(0)}).empty()) << "failed commit";
  EXPECT_EQ(outbox_rows(db), 0);

  sink.begin();  // the next transaction commits only its own forward, once
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 2).view()));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{3}}}, nullptr);
  EXPECT_EQ(offsets_of(pending(sink, {tp(0)})), std::vector<std::int64_t>{2});
  sink.begin();
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{3}}}, nullptr);
  EXPECT_EQ(offsets_of(pending(sink, {tp(0)})), std::vector<std::int64_t>{2}) << "not written again";
  EXPECT_EQ(outbox_rows(db), 1);
}

TEST_F(PostgresSinkOutboxTest, ForwardsSentRemovesExactlyThoseIds) {
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  for (std::int64_t o = 0; o < 4; ++o) {
    ASSERT_TRUE(sink.forward(dead_letter(tp(0), o).view()));
  }
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{4}}}, nullptr);
  const auto before = pending(sink, {tp(0)});
  ASSERT_EQ(offsets_of(before), (std::vector<std::int64_t>{0, 1, 2, 3}));

  sink.forwards_sent(std::vector<std::int64_t>{before.at(0).id, before.at(2).id});
  EXPECT_EQ(offsets_of(pending(sink, {tp(0)})), (std::vector<std::int64_t>{1, 3}));
  // Idempotent: ids already gone (and ids that never were) are fine.
  sink.forwards_sent(std::vector<std::int64_t>{before.at(0).id, before.at(2).id, before.at(3).id + 1000000});
  sink.forwards_sent({});
  EXPECT_EQ(offsets_of(pending(sink, {tp(0)})), (std::vector<std::int64_t>{1, 3}));
  sink.forwards_sent(std::vector<std::int64_t>{before.at(1).id, before.at(3).id});
  EXPECT_TRUE(pending(sink, {tp(0)}).empty());
}

TEST_F(PostgresSinkOutboxTest, PendingForwardsFiltersBySourcePartitionOldestFirstUpToMax) {
  PostgresSink sink(options());
  auto other = options();
  other.group = group_ + "-other";
  PostgresSink other_group(other);
  sink.claim(std::vector{tp(0), tp(1), tp(2)});
  other_group.claim(std::vector{tp(0)});
  sink.begin();  // interleaved over two transactions: ids grow in the order forwarded
  ASSERT_TRUE(sink.forward(dead_letter(tp(1), 0).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 0).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp(2), 0).view()));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}, {tp(1), Offset{1}}, {tp(2), Offset{1}}}, nullptr);
  other_group.begin();
  ASSERT_TRUE(other_group.forward(dead_letter(tp(0), 50).view()));
  other_group.commit(std::vector<SinkOffset>{{tp(0), Offset{51}}}, nullptr);
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 1).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp(1), 1).view()));
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 2).view()));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{3}}, {tp(1), Offset{2}}}, nullptr);

  auto p = pending(sink, {tp(0), tp(1)});
  ASSERT_EQ(p.size(), 5u);
  std::vector<std::string> order;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(p.at(i - 1).id, p.at(i).id) << "oldest first";
    }
    order.push_back(std::to_string(to_int(p.at(i).source.partition)) + "@" + std::to_string(p.at(i).source_offset));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"1@0", "0@0", "0@1", "1@1", "0@2"}));

  p = pending(sink, {tp(0), tp(1)}, 3);
  ASSERT_EQ(p.size(), 3u) << "at most max";
  EXPECT_EQ(p.at(2).source_offset, 1);
  EXPECT_EQ(p.at(2).source, tp(0));

  EXPECT_EQ(offsets_of(pending(sink, {tp(1)})), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(offsets_of(pending(sink, {tp(2)})), std::vector<std::int64_t>{0});
  EXPECT_TRUE(pending(sink, {}).empty());
  EXPECT_TRUE(pending(sink, {tp(0), tp(1)}, 0).empty());
  EXPECT_TRUE(pending(sink, {tp(9)}).empty());
  EXPECT_EQ(pending(sink, {tp(0), tp(0)}).size(), 3u) << "a partition named twice counts once";
  EXPECT_EQ(offsets_of(pending(other_group, {tp(0)})), std::vector<std::int64_t>{50}) << "each group its own";
  sink.forwards_sent(ids_of(pending(other_group, {tp(0)})));  // another group's ids: left alone
  EXPECT_EQ(pending(other_group, {tp(0)}).size(), 1u);
}

// A zombie's transaction (its partition claimed by another sink since) is
// rolled back whole: its forwards with its rows and offsets.
TEST_F(PostgresSinkOutboxTest, ZombiesForwardsRollBackWithItsTransaction) {
  Db db;
  PostgresSink zombie(options());
  zombie.claim(std::vector{tp(0)});
  PostgresSink owner(options());
  owner.claim(std::vector{tp(0)});

  zombie.begin();
  zombie.insert(row(topic_, 0, 0));
  ASSERT_TRUE(zombie.forward(dead_letter(tp(0), 1).view()));
  const auto e = expect_error([&] { zombie.commit(std::vector<SinkOffset>{{tp(0), Offset{2}}}, nullptr); });
  EXPECT_NE(std::string(e.what()).find("fenced"), std::string::npos) << e.what();
  zombie.abort();
  EXPECT_EQ(rows(db), 0);
  EXPECT_EQ(outbox_rows(db), 0);
  EXPECT_TRUE(pending(owner, {tp(0)}).empty());

  owner.begin();
  owner.insert(row(topic_, 0, 0));
  ASSERT_TRUE(owner.forward(dead_letter(tp(0), 1).view()));
  owner.commit(std::vector<SinkOffset>{{tp(0), Offset{2}}}, nullptr);
  EXPECT_EQ(offsets_of(pending(owner, {tp(0)})), std::vector<std::int64_t>{1});
}

TEST_F(PostgresSinkOutboxTest, OutboxCallsOutOfPlaceAreMisuse) {
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  const auto f = dead_letter(tp(0), 0);
  auto misuse = [](const Error& e) { return e.code() == make_error_code(errc::misuse); };
  EXPECT_TRUE(misuse(expect_error([&] { sink.forward(f.view()); }))) << "forward() without begin()";
  sink.begin();
  sink.record_begin();
  EXPECT_TRUE(misuse(expect_error([&] { sink.forward(f.view()); }))) << "forward() inside a record";
  sink.record_end(false);
  ASSERT_TRUE(sink.forward(f.view()));
  EXPECT_TRUE(misuse(expect_error([&] { sink.pending_forwards(std::vector{tp(0)}, 10); })))
      << "pending_forwards() in the consumer transaction";
  EXPECT_TRUE(misuse(expect_error([&] { sink.forwards_sent(std::vector<std::int64_t>{1}); })))
      << "forwards_sent() in the consumer transaction";
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  EXPECT_EQ(pending(sink, {tp(0)}).size(), 1u) << "the misuse did not end the transaction";
}

TEST_F(PostgresSinkOutboxTest, HeadersNotInKcsEncodingAreAnErrorNamingTheRow) {
  Db db;
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 0).view()));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  db.exec("UPDATE kc_outbox SET headers = '\\x01000000'::bytea WHERE grp = " + db.quote(group_));  // cut short
  const auto id = db.count("SELECT id FROM kc_outbox WHERE grp = " + db.quote(group_));
  const auto e = expect_error([&] { sink.pending_forwards(std::vector{tp(0)}, 10); });
  EXPECT_EQ(e.code(), make_error_code(errc::io)) << e.what();
  EXPECT_NE(std::string(e.what()).find("kc_outbox row " + std::to_string(id)), std::string::npos) << e.what();
}

// set_deadline(): a commit waiting for a row lock held by another session
// gives up at the deadline, not after statement_timeout (10 s here). Wall
// times are checked loosely: the point is that nobody waits 10 s.
TEST_F(PostgresSinkOutboxTest, DeadlineCutsTheLockWaitShort) {
  using std::chrono::steady_clock;
  PostgresSink sink(options());  // statement_timeout = 10 s
  sink.claim(std::vector{tp(0)});
  Db db;
  {
    pqxx::work lock(db.conn());  // another session holds the partition's offsets row
    lock.exec("SELECT * FROM kc_offsets WHERE grp = " + lock.quote(group_) + " FOR UPDATE");
    sink.begin();
    sink.insert(row(topic_, 0, 0));
    EXPECT_TRUE(sink.forward(dead_letter(tp(0), 0).view()));
    const auto started = steady_clock::now();
    sink.set_deadline(started + 300ms);
    const auto e = expect_error([&] { sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr); });
    const auto took = steady_clock::now() - started;
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_GE(took, 200ms) << "it did wait for the lock until about the deadline";
    EXPECT_LT(took, 5s) << "waited " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
    sink.abort();
    lock.abort();
  }
  EXPECT_EQ(rows(db), 0);
  EXPECT_EQ(outbox_rows(db), 0);

  // A later deadline replaces it: the session's own statement_timeout
  // applies again (the shortened one was local to the failed transaction).
  sink.set_deadline(steady_clock::now() + std::chrono::hours(1));
  sink.begin();
  EXPECT_EQ(sink.transaction().exec1("SHOW statement_timeout")[0].as<std::string>(), "10s");
  sink.insert(row(topic_, 0, 0));
  ASSERT_TRUE(sink.forward(dead_letter(tp(0), 0).view()));
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  EXPECT_EQ(rows(db), 1);
  EXPECT_EQ(pending(sink, {tp(0)}).size(), 1u);
}

// Past the deadline a call that needs a new connection fails at once
// (retriable) instead of connecting; a later deadline lets it connect again.
TEST_F(PostgresSinkOutboxTest, PastTheDeadlineNoNewConnectionIsTried) {
  PostgresSink sink(options());
  sink.claim(std::vector{tp(0)});
  sink.begin();
  const auto pid = sink.transaction().exec1("SELECT pg_backend_pid()")[0].as<std::int64_t>();
  sink.abort();
  Db db;
  db.exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ", 5000)");

  sink.set_deadline(std::chrono::steady_clock::now() - 1ms);
  const auto started = std::chrono::steady_clock::now();
  const auto e = expect_error([&] { sink.begin(); });
  EXPECT_TRUE(e.retriable()) << e.what();
  EXPECT_NE(std::string(e.what()).find("deadline"), std::string::npos) << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);

  sink.set_deadline(std::chrono::steady_clock::now() + std::chrono::hours(1));
  sink.begin();
  sink.commit(std::vector<SinkOffset>{{tp(0), Offset{1}}}, nullptr);
  EXPECT_EQ(db.stored(group_, tp(0)), "1");
}

}  // namespace
}  // namespace kc::test
