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
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "kc/postgres_sink.hpp"
#include "support/common.hpp"

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
      for (const auto& t : drop_) {
        db.exec("DROP TABLE IF EXISTS " + t);
      }
      db.exec("DROP TABLE IF EXISTS " + table_);
      db.exec("DELETE FROM kc_offsets WHERE grp = " + db.quote(group_));
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

}  // namespace
}  // namespace kc::test
