// Exactly-once sinks of `kc consume --exactly-once` (issue 6) against the real
// broker and PostgreSQL: SIGKILL at random moments, a zombie member (stopped
// past its session while it holds a transaction), a broker crash and a
// database outage.
//
// Every test reads back what the sink holds (the SQLite file, the PostgreSQL
// table, or the Kafka output topic with isolation.level=read_committed) and
// checks that each record of the input is there exactly once: by (partition,
// offset) and by value for the database sinks, by value for Kafka.
//
// Environment: KC_TEST_BOOTSTRAP (the broker), KC_TEST_POSTGRES_URI and
// KC_TEST_POSTGRES_STATE (scripts/postgres's server and its state file, for
// the outage); a test FAILS when what it needs is unset.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/common.hpp"
#include "support/jsonl.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/records.hpp"
#include "support/sinks.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kPartitions = 4;     // the input topic
constexpr int kOutPartitions = 4;  // the kafka: sink's output topic

const std::set<int> kAll = {0, 1, 2, 3};

// A short session so that a stopped member leaves the group soon (the
// broker's minimum is 6 s), and heartbeats often enough for it.
const std::vector<std::string> kSession = {"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"};

ProduceOptions even_spread(double rate = 0) {
  ProduceOptions o;
  o.partitions = kPartitions;
  o.rate = rate;
  return o;
}

long long ms_since(Clock::time_point t) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

std::string required_env(const char* name, const char* what) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw Failure(std::string(name) + " is not set: " + what);
  }
  return v;
}

std::string pg_uri() {
  return required_env("KC_TEST_POSTGRES_URI",
                      "the PostgreSQL server of the exactly-once tests (make test sets it; by hand: export "
                      "KC_TEST_POSTGRES_URI=$(scripts/postgres start))");
}

std::string pg_state() {
  return required_env("KC_TEST_POSTGRES_STATE",
                      "the state file of scripts/postgres's server, for the outage test (by hand: export "
                      "KC_TEST_POSTGRES_STATE=/tmp/kc-postgres.state, the default of scripts/postgres)");
}

std::string script(const char* name) {
  return std::string(KC_SOURCE_DIR) + "/scripts/" + name;
}

// Runs `argv` through env(1) (so it may start with -u NAME and NAME=VALUE
// words) to its end, within `timeout`; returns its stdout without the trailing
// newline. Throws Failure with its stderr when it fails or takes too long.
std::string run_command(const std::vector<std::string>& argv, const std::filesystem::path& dir, const std::string& name,
                        std::chrono::milliseconds timeout = 120s) {
  Subprocess p("/usr/bin/env", argv, dir / (name + ".out"), dir / (name + ".err"));
  const auto st = p.wait(timeout);
  if (!st || !st->ok()) {
    throw Failure(name + ": " + p.command() + ": " + (st ? st->to_string() : "still running after the timeout") + "\n" +
                  tail(p.stderr_text()));
  }
  auto out = p.stdout_text();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

// Calls `f` until it does not throw Failure, for up to `timeout`; then lets
// the last Failure through. For reads that a broker may refuse for a moment
// (a coordinator still loading after a start or restart).
template <typename F>
auto retrying(F&& f, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    try {
      return f();
    } catch (const Failure&) {
      if (Clock::now() >= deadline) {
        throw;
      }
      std::this_thread::sleep_for(200ms);
    }
  }
}

// ---------------------------------------------------------------- sinks

enum class SinkKind { sqlite, postgres, kafka };

const char* to_string(SinkKind k) {
  switch (k) {
    case SinkKind::sqlite: return "sqlite";
    case SinkKind::postgres: return "postgres";
    case SinkKind::kafka: return "kafka";
  }
  return "?";
}

// For test listings and messages.
void PrintTo(SinkKind k, std::ostream* os) {
  *os << to_string(k);
}

// What a sink holds, checked against the input.
struct Check {
  std::uint64_t read = 0;        // rows, or committed output records
  std::uint64_t missing = 0;     // input records not in the sink
  std::uint64_t duplicates = 0;  // input records in the sink more than once (counted beyond the first)
  std::uint64_t other = 0;       // anything else wrong (out of range, a wrong value, ...)
  // kafka: output records read_committed hides (aborted transactions), -1
  // for the database sinks (rolled back rows are not visible).
  std::int64_t aborted_records = -1;
  std::string detail;
};

// The destination of one group's `kc consume --exactly-once`: the --sink
// flags, and how the test reads what the sink holds.
class Destination {
 public:
  Destination(SinkKind kind, std::string bootstrap, std::string group, std::string input, const TempDir& dir)
      : kind_(kind), bootstrap_(std::move(bootstrap)), group_(std::move(group)), input_(std::move(input)) {
    switch (kind_) {
      case SinkKind::sqlite: {
        const auto path = dir / (group_ + ".db");
        spec_ = "sqlite:" + path.string();
        db_ = open_sqlite_sink(path);
        break;
      }
      case SinkKind::postgres:
        uri_ = pg_uri();
        table_ = unique_table_name("kc_it_eo");
        spec_ = "postgres:" + uri_;
        db_ = open_postgres_sink(uri_, table_);
        break;
      case SinkKind::kafka:
        output_ = unique_name("kc-it-eo-out");
        spec_ = "kafka:" + output_;
        create_topic(bootstrap_, output_, kOutPartitions);
        watch_ = std::make_unique<WatermarkWatch>(bootstrap_, output_, kOutPartitions);
        committed_ = std::make_unique<CommittedWatch>(bootstrap_, group_, input_, kPartitions);
        break;
    }
  }

  SinkKind kind() const noexcept { return kind_; }
  const std::string& output() const noexcept { return output_; }  // kafka: the output topic
  const char* name() const noexcept { return to_string(kind_); }
  const std::string& group() const noexcept { return group_; }

  std::vector<std::string> sink_args() const {
    std::vector<std::string> a = {"--sink", spec_};
    if (!table_.empty()) {
      a.insert(a.end(), {"--sink-table", table_});
    }
    return a;
  }

  // A number that grows while the consumer writes: the database's stored
  // next offsets (each commit adds its records), or the output topic's high
  // watermarks (they grow with every record written, committed or not).
  std::int64_t progress() {
    if (db_) {
      return committed();
    }
    return sum(retrying([&] { return watch_->high(); }));
  }

  // The next offsets the sink holds for the group: kc_offsets for the
  // databases; the group's committed offsets (written by the transactions)
  // for Kafka. -1 where none.
  std::vector<std::int64_t> stored_offsets() {
    if (db_) {
      return db_->next_offsets(group_, input_, kPartitions);
    }
    return retrying([&] { return committed_->offsets(); });
  }

  // Records of the input committed into the sink (sum of stored_offsets()).
  std::int64_t committed() {
    std::int64_t n = 0;
    for (auto o : stored_offsets()) {
      n += std::max<std::int64_t>(o, 0);
    }
    return n;
  }

  // Reads the sink back: `hw` the input's high watermarks, `produced` the
  // records produced (values msg-0 .. msg-<produced-1>).
  Check check(const std::vector<std::int64_t>& hw, std::uint64_t produced) {
    Check c;
    if (db_) {
      const auto rows = db_->records();
      const auto cov = coverage(rows, input_, hw);
      // The value column is JSON: a JSON string of the record's value.
      std::vector<std::string> values;
      values.reserve(rows.size());
      std::uint64_t not_a_string = 0;
      for (const auto& r : rows) {
        if (r.value && r.value->size() >= 2 && r.value->front() == '"' && r.value->back() == '"') {
          values.push_back(r.value->substr(1, r.value->size() - 2));
        } else {
          ++not_a_string;
        }
      }
      const auto vc = value_coverage(values, "msg-", produced);
      c.read = cov.lines;
      c.missing = std::max(cov.missing, vc.missing);
      c.duplicates = std::max(cov.duplicates, vc.duplicates);
      c.other = cov.out_of_range + cov.value_mismatch + cov.duplicate_values + vc.unexpected + not_a_string;
      c.detail = db_->describe() + ": by position " + cov.to_string() + "; by value " + vc.to_string() +
                 " not_a_json_string=" + std::to_string(not_a_string);
    } else {
      const auto values = read_values(bootstrap_, output_, kOutPartitions, Isolation::read_committed, 60s);
      const auto all = read_values(bootstrap_, output_, kOutPartitions, Isolation::read_uncommitted, 60s);
      const auto vc = value_coverage(values, "msg-", produced);
      c.read = vc.values;
      c.missing = vc.missing;
      c.duplicates = vc.duplicates;
      c.other = vc.unexpected;
      c.aborted_records = static_cast<std::int64_t>(all.size()) - static_cast<std::int64_t>(values.size());
      c.detail = "kafka:" + output_ + " read_committed: " + vc.to_string() +
                 "; records in aborted transactions: " + std::to_string(c.aborted_records);
    }
    return c;
  }

  // After a test that passed: drop the PostgreSQL table (the others go with
  // their temp dir / are left to the test broker).
  void cleanup() {
    if (kind_ == SinkKind::postgres) {
      drop_postgres_sink(uri_, table_, group_);
    }
  }

 private:
  SinkKind kind_;
  std::string bootstrap_;
  std::string group_;
  std::string input_;
  std::string spec_;
  std::string uri_;     // postgres
  std::string table_;   // postgres
  std::string output_;  // kafka
  std::unique_ptr<SinkDatabase> db_;
  std::unique_ptr<WatermarkWatch> watch_;      // kafka
  std::unique_ptr<CommittedWatch> committed_;  // kafka
};

// `kc consume --exactly-once` of `topic` in `d`'s group into `d` as static
// member `instance`, then `extra`.
std::vector<std::string> kc_args(const std::string& bootstrap, const std::string& topic, const Destination& d,
                                 const std::string& instance, const std::vector<std::string>& extra) {
  // clang-format off
  std::vector<std::string> a = {"consume",
                                "--bootstrap-servers", bootstrap,
                                "--group", d.group(),
                                "--topic", topic,
                                "--from-beginning",
                                "--value-format", "string",
                                "--exactly-once",
                                "-X", "group.instance.id=" + instance};
  // clang-format on
  const auto s = d.sink_args();
  a.insert(a.end(), s.begin(), s.end());
  a.insert(a.end(), kSession.begin(), kSession.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The figures of kc consume's closing summary.
struct Summary {
  bool found = false;
  std::uint64_t records = 0;
  std::uint64_t commits_ok = 0;
  std::uint64_t commits_failed = 0;
  std::uint64_t transactions = 0;
  std::uint64_t aborted = 0;

  std::string to_string() const {
    if (!found) {
      return "(no summary)";
    }
    return "records " + std::to_string(records) + ", commits ok " + std::to_string(commits_ok) + ", commits failed " +
           std::to_string(commits_failed) + ", transactions " + std::to_string(transactions) + ", aborted " +
           std::to_string(aborted);
  }
};

Summary summary(const std::string& log) {
  static const std::regex head(R"(kc consume: .* after (\d+) records)");
  static const std::regex tail_re(R"(commits ok (\d+), commits failed (\d+), transactions (\d+), aborted (\d+))");
  Summary s;
  std::smatch m;
  if (std::regex_search(log, m, head)) {
    s.records = std::stoull(m[1].str());
  }
  if (std::regex_search(log, m, tail_re)) {
    s.found = true;
    s.commits_ok = std::stoull(m[1].str());
    s.commits_failed = std::stoull(m[2].str());
    s.transactions = std::stoull(m[3].str());
    s.aborted = std::stoull(m[4].str());
  }
  return s;
}

// How often `what` occurs in `log`.
std::size_t count_of(const std::string& log, std::string_view what) {
  std::size_t n = 0;
  for (auto pos = log.find(what); pos != std::string::npos; pos = log.find(what, pos + what.size())) {
    ++n;
  }
  return n;
}

// True when `p` ended, or its log shows a fatal error it will not recover
// from (librdkafka's or kc's): a test waiting for it to make progress stops
// waiting then.
bool gave_up(Subprocess& p) {
  if (!p.running()) {
    return true;
  }
  const auto log = p.stderr_text();
  return log.find("Fatal error") != std::string::npos || log.find("kc: fatal") != std::string::npos ||
         log.find("kc consume: fatal") != std::string::npos;
}

// SIGTERMs `p` and expects a clean exit within `timeout`.
void stop_gracefully(Subprocess& p, const std::string& who, std::chrono::milliseconds timeout = 60s) {
  p.signal(SIGTERM);
  const auto st = p.wait(timeout);
  ASSERT_TRUE(st.has_value()) << who << " did not exit within " << timeout.count() << " ms of SIGTERM" << describe(p);
  EXPECT_TRUE(st->ok()) << who << " did not exit cleanly" << describe(p);
}

// ---------------------------------------------------------------- kill -9

class KillNine : public ::testing::TestWithParam<SinkKind> {};

// kc consume --exactly-once is killed with SIGKILL at random moments while
// it works through a topic, and restarted each time as the same static
// member; the last run drains the topic and exits when idle. Every input
// record must be in the sink exactly once.
TEST_P(KillNine, EveryRecordExactlyOnce) {
  const SinkKind kind = GetParam();
  constexpr std::uint64_t kRecords = 200'000;
  constexpr int kKills = 20;
  // Transactions of a few hundred records (a few thousand for Kafka, whose
  // transactions cost round trips to the coordinator), so that a kill finds
  // one open most of the time.
  const int commit_every = kind == SinkKind::kafka ? 2000 : 500;
  // When to kill. The consumer does several 100 k records/s into SQLite, so
  // a delay after the first progress alone would drain the topic within a
  // few runs. Instead the input is cut into kKills + 2 slots; run r is
  // killed once it has records flowing (its sink progressed) and its
  // position (records of the input in the sink, committed or in the open
  // transaction) reached a random point of slot r, after a further random
  // delay of up to kMaxKillDelayMs. So the kills spread over the stream,
  // each at a random moment relative to the transactions; the last two
  // slots are a margin for a run that overshoots (a kill arrives some
  // thousand records after its point) and are the final run's.
  constexpr int kMaxKillDelayMs = 5;
  // A run that does not get there is killed this long after its assignment
  // (and that kill does not count as one landing mid-stream).
  constexpr auto kNothingToDo = 20s;
  constexpr std::int64_t kSlot = static_cast<std::int64_t>(kRecords) / (kKills + 2);

  const auto t0 = Clock::now();
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const std::string tag = std::string("kc-it-eo-kill9-") + to_string(kind);
  const auto topic = unique_name(tag);
  const unsigned seed = test_seed();
  std::printf("KILL9[%s]: seed=%u (KC_TEST_SEED=%u repeats the kill delays)\n", to_string(kind), seed, seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, kMaxKillDelayMs);
  std::uniform_int_distribution<std::int64_t> in_slot(0, kSlot - 1);

  TempDir dir(tag);
  create_topic(bs, topic, kPartitions);
  Destination d(kind, bs, unique_name(tag + "-g"), topic, dir);
  ASSERT_EQ(produce(bs, topic, kRecords, even_spread()), kRecords);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords)) << "high watermarks " << join(hw);

  int kills = 0;
  int mid_stream = 0;  // kills that found records flowing and records left
  long long restart_ms_total = 0;
  std::string last_log;
  for (int run = 0; run <= kKills; ++run) {
    const bool last = run == kKills;
    const auto name = "run-" + std::to_string(run);
    std::vector<std::string> extra = {"--commit-every", std::to_string(commit_every)};
    if (last) {
      extra.insert(extra.end(), {"--idle-exit-ms", "3000"});
    }
    const auto before = d.progress();
    const auto committed_before = d.committed();
    const std::int64_t target = kSlot * run + in_slot(rng);
    const auto started = Clock::now();
    Subprocess kc(tool, kc_args(bs, topic, d, "inst-0", extra), dir / (name + ".out"), dir / (name + ".err"));
    if (last) {
      const auto st = kc.wait(120s);
      ASSERT_TRUE(st.has_value()) << "the last run did not exit within 120 s" << describe(kc);
      ASSERT_TRUE(st->ok()) << "the last run failed" << describe(kc);
      last_log = kc.stderr_text();
      std::printf("KILL9[%s]: run %d exited when idle after %lld ms: %s\n", to_string(kind), run, ms_since(started),
                  summary(last_log).to_string().c_str());
      break;
    }
    ASSERT_TRUE(
        wait_until([&] { return !owned_partitions(kc.stderr_text(), topic).empty() || !kc.running(); }, 60s, 1ms))
        << name << " got no assignment within 60 s" << describe(kc);
    const auto assigned_ms = ms_since(started);
    restart_ms_total += assigned_ms;
    const auto assigned_at = Clock::now();
    // Where the run is in the input: what was committed before it, plus
    // what it wrote since (the same for a database, whose progress is its
    // commits; for Kafka the output records, committed or not).
    std::int64_t position = committed_before;
    const bool flowing = wait_until(
        [&] {
          const auto p = d.progress();
          position = committed_before + (p - before);
          return (p > before && position >= target) || !kc.running();
        },
        kNothingToDo, 1ms);
    ASSERT_TRUE(kc.running()) << name << " ended before it could be killed" << describe(kc);
    const int delay = flowing ? delay_ms(rng) : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    kc.signal(SIGKILL);
    const auto killed_after = ms_since(assigned_at);
    const auto st = kc.wait(10s);
    ASSERT_TRUE(st.has_value() && st->killed_by(SIGKILL)) << name << " was not killed" << describe(kc);
    ++kills;
    const auto committed = d.committed();
    const bool landed = flowing && committed < static_cast<std::int64_t>(kRecords);
    mid_stream += landed ? 1 : 0;
    std::printf(
        "KILL9[%s]: run %d assigned after %lld ms, killed %lld ms later (%s, target %lld, at %lld, +%d ms): %lld of "
        "%llu committed\n",
        to_string(kind), run, assigned_ms, killed_after, flowing ? "records were flowing" : "it had nothing to do",
        static_cast<long long>(target), static_cast<long long>(position), delay, static_cast<long long>(committed),
        static_cast<unsigned long long>(kRecords));
    std::fflush(stdout);
  }

  const auto c = d.check(hw, kRecords);
  const auto s = summary(last_log);
  std::printf(
      "KILL9[%s]: records=%llu kills=%d mid_stream=%d read=%llu missing=%llu duplicates=%llu other=%llu "
      "aborted_records=%lld last_run_transactions=%llu last_run_aborted=%llu avg_assign_ms=%lld time=%lld ms\n",
      to_string(kind), static_cast<unsigned long long>(kRecords), kills, mid_stream,
      static_cast<unsigned long long>(c.read), static_cast<unsigned long long>(c.missing),
      static_cast<unsigned long long>(c.duplicates), static_cast<unsigned long long>(c.other),
      static_cast<long long>(c.aborted_records), static_cast<unsigned long long>(s.transactions),
      static_cast<unsigned long long>(s.aborted), kills > 0 ? restart_ms_total / kills : 0LL, ms_since(t0));
  std::fflush(stdout);
  EXPECT_EQ(kills, kKills);
  EXPECT_EQ(mid_stream, kKills) << "not every kill landed while records flowed and remained: tune the delays";
  EXPECT_EQ(c.missing, 0u) << c.detail;
  EXPECT_EQ(c.duplicates, 0u) << c.detail;
  EXPECT_EQ(c.other, 0u) << c.detail;
  EXPECT_EQ(d.stored_offsets(), hw) << "the sink's offsets after the last run";
  if (!HasFailure()) {
    d.cleanup();
  }
}

INSTANTIATE_TEST_SUITE_P(Sinks, KillNine, ::testing::Values(SinkKind::sqlite, SinkKind::postgres, SinkKind::kafka),
                         [](const ::testing::TestParamInfo<SinkKind>& p) { return std::string(to_string(p.param)); });

// ---------------------------------------------------------------- dead letters in the transaction

class DeadLettersInTheTransaction : public ::testing::TestWithParam<SinkKind> {};

// Exactly-once with a dead-letter topic that is gone while records flow
// (25 of 5,000 records are not JSON: dead letters): before, records after a
// dead letter still waiting for its acknowledgement were written into the
// transaction while the stored offset stayed before the dead letter, so the
// stop's commit and the next run wrote them twice. Now the dead letter is
// part of the transaction (a Kafka transaction produces it; a database keeps
// it in an outbox row of the same transaction, produced afterwards). A
// second run (which creates the topic again) drains the rest. Every valid
// record must be in the sink exactly once and every dead letter in the
// dead-letter topic (the database outbox delivers at least once).
TEST_P(DeadLettersInTheTransaction, EveryRowOnceAndEveryDeadLetterDelivered) {
  const SinkKind kind = GetParam();
  const auto bs = bootstrap();
  const std::string tag = std::string("kc-it-eo-dlq-") + to_string(kind);
  const auto topic = unique_name(tag);
  const auto dlq = topic + ".dead-letter";
  constexpr std::uint64_t kRecords = 5000;
  auto is_poison = [](std::uint64_t i) { return i % 200 == 37; };
  std::vector<Record> input;
  for (std::uint64_t i = 0; i < kRecords; ++i) {
    Record r;
    r.partition = static_cast<std::int32_t>(i % kPartitions);
    r.value = is_poison(i) ? "not json " + std::to_string(i) : "\"msg-" + std::to_string(i) + "\"";
    input.push_back(std::move(r));
  }
  TempDir dir(tag);
  create_topic(bs, topic, kPartitions);
  create_topic(bs, dlq, kPartitions);
  Destination d(kind, bs, unique_name(tag + "-g"), topic, dir);
  auto args = [&](const std::vector<std::string>& extra) {
    auto a = kc_args(bs, topic, d, "inst-0", {"--commit-every", "200", "--dlq-topic", "{topic}.dead-letter"});
    for (auto& x : a) {
      if (x == "string") {
        x = "json";  // --value-format json: a value that is not JSON is a dead letter
      }
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  std::string first_log;
  {
    Subprocess kc(kc_tool_path(), args({}), dir / "run0.out", dir / "run0.err");
    ASSERT_TRUE(wait_until([&] { return !owned_partitions(kc.stderr_text(), topic).empty(); }, 60s))
        << describe(kc);
    // Gone before the first record: every dead letter of this run is
    // unacknowledged (before: held outside the transaction) until the next.
    delete_topic(bs, dlq);
    std::thread producer([&] {
      RecordProducer p(bs);
      for (std::size_t i = 0; i < input.size(); ++i) {
        p.enqueue(topic, input[i]);
        if (i % 50 == 0) {
          p.poll();
          std::this_thread::sleep_for(100ms);  // ~500 records/s
        }
      }
      p.flush(topic, input.size());
    });
    producer.join();
    stop_gracefully(kc, "the first run");
    first_log = kc.stderr_text();
  }
  {
    Subprocess kc(kc_tool_path(), args({"--idle-exit-ms", "3000"}), dir / "run1.out", dir / "run1.err");
    auto st = kc.wait(90s);
    if (!st) {
      kc.signal(SIGTERM);
      st = kc.wait(30s);
    }
    EXPECT_TRUE(st && st->ok()) << "the second run" << describe(kc);
  }
  // What the sink holds, by position and by value: check() counts the
  // values "msg-i"; for Kafka the output records are copies of the input
  // (JSON strings, quotes included), read back here.
  Check c;
  if (kind == SinkKind::kafka) {
    auto values = read_values(bs, d.output(), kOutPartitions, Isolation::read_committed, 60s);
    for (auto& v : values) {
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        v = v.substr(1, v.size() - 2);
      }
    }
    const auto vc = value_coverage(values, "msg-", kRecords);
    c.read = vc.values;
    c.missing = vc.missing;
    c.duplicates = vc.duplicates;
    c.other = vc.unexpected;
    c.detail = "kafka:" + d.output() + " read_committed: " + vc.to_string();
  } else {
    c = d.check(high_watermarks(bs, topic, kPartitions), kRecords);
  }
  const std::uint64_t rows = c.read;
  // check() counts values "msg-i" for i < kRecords: the poison ones are
  // "missing" from the sink by design; everything else must be there once.
  std::set<std::uint64_t> dead;
  for (const auto& r : topic_partitions(bs, dlq) > 0 ? read_topic(bs, dlq) : std::vector<Record>{}) {
    if (r.value && r.value->rfind("not json ", 0) == 0) {
      dead.insert(std::stoull(r.value->substr(9)));
    }
  }
  const std::uint64_t poison = kRecords / 200;
  std::printf("EO-DLQ[%s]: %llu records (%llu not JSON): sink read %llu, missing %llu (of which poison %llu), "
              "duplicates %llu, other %llu; dead letters delivered %zu of %llu\n%s\n",
              to_string(kind), static_cast<unsigned long long>(kRecords), static_cast<unsigned long long>(poison),
              static_cast<unsigned long long>(rows), static_cast<unsigned long long>(c.missing),
              static_cast<unsigned long long>(poison), static_cast<unsigned long long>(c.duplicates),
              static_cast<unsigned long long>(c.other), dead.size(), static_cast<unsigned long long>(poison),
              c.detail.c_str());
  EXPECT_EQ(c.duplicates, 0u) << c.detail;
  EXPECT_EQ(c.missing, poison) << c.detail;
  EXPECT_EQ(dead.size(), poison);
  if (!HasFailure()) {
    d.cleanup();
  }
}

INSTANTIATE_TEST_SUITE_P(Sinks, DeadLettersInTheTransaction,
                         ::testing::Values(SinkKind::sqlite, SinkKind::postgres, SinkKind::kafka),
                         [](const ::testing::TestParamInfo<SinkKind>& p) { return std::string(to_string(p.param)); });

// ---------------------------------------------------------------- restart without static membership

// The Kafka sink without group.instance.id and without --transactional-id:
// a run is killed (SIGKILL) with a transaction open, then restarted on the
// same host. The restart must reuse the dead run's transactional.id (its
// slot), so that its init_transactions aborts the dead transaction at once:
// right after the restart has finished, a read_committed reader of the
// output sees every record (before: the dead transaction held them back
// until transaction.timeout.ms, 60 s).
TEST(KafkaSinkRestart, ReadCommittedReaderSeesEverythingRightAfterRecovery) {
  const auto bs = bootstrap();
  const std::string tag = "kc-it-eo-txnid";
  const auto topic = unique_name(tag);
  constexpr std::uint64_t kRecords = 20000;
  TempDir dir(tag);
  create_topic(bs, topic, kPartitions);
  Destination d(SinkKind::kafka, bs, unique_name(tag + "-g"), topic, dir);
  auto args = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"consume", "--bootstrap-servers", bs, "--group", d.group(), "--topic", topic,
                                  "--from-beginning", "--value-format", "string", "--exactly-once",
                                  "--commit-every", "4000", "--commit-interval-ms", "10000"};
    const auto sink = d.sink_args();
    a.insert(a.end(), sink.begin(), sink.end());
    a.insert(a.end(), kSession.begin(), kSession.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  {
    Subprocess kc(kc_tool_path(), args({}), dir / "run0.out", dir / "run0.err");
    ASSERT_TRUE(wait_until([&] { return !owned_partitions(kc.stderr_text(), topic).empty(); }, 60s))
        << describe(kc);
    produce(bs, topic, kRecords / 2, even_spread());
    // Records in the output, some of them in a transaction not committed
    // yet (the output holds more than the group's committed offsets say).
    ASSERT_TRUE(wait_until([&] { return d.progress() >= 6000 && d.progress() > d.committed() + 500; }, 60s, 10ms))
        << describe(kc);
    kc.signal(SIGKILL);
    kc.wait(10s);
  }
  produce(bs, topic, kRecords / 2, [] {
    auto o = even_spread();
    o.first = kRecords / 2;
    return o;
  }());
  const auto started = Clock::now();
  {
    Subprocess kc(kc_tool_path(), args({"--idle-exit-ms", "3000"}), dir / "run1.out", dir / "run1.err");
    const auto st = kc.wait(120s);
    ASSERT_TRUE(st && st->ok()) << describe(kc);
  }
  const auto recovered_ms = ms_since(started);
  bool complete = false;
  auto values = read_values(bs, d.output(), kOutPartitions, Isolation::read_committed, 5s, &complete);
  const auto vc = value_coverage(values, "msg-", kRecords);
  std::printf("TXNID: a restart without static membership recovered in %lld ms; right after it a read_committed "
              "reader saw %llu of %llu records within 5 s (%s)%s\n",
              recovered_ms, static_cast<unsigned long long>(vc.values - vc.duplicates),
              static_cast<unsigned long long>(kRecords), vc.to_string().c_str(),
              complete ? "" : "; the end was not reached: a transaction still open");
  EXPECT_TRUE(complete);
  EXPECT_EQ(vc.missing, 0u) << vc.to_string();
  EXPECT_EQ(vc.duplicates, 0u) << vc.to_string();
}

// ---------------------------------------------------------------- zombie

// One group's members, in a test that runs the same steps on several sinks
// at once (one input topic, one group per sink).
struct Pipeline {
  Destination d;
  std::map<std::string, std::unique_ptr<Subprocess>> members;  // by instance
  std::int64_t committed_before_stop = 0;
  std::int64_t committed_after_stop = 0;

  Subprocess& at(const std::string& instance) { return *members.at(instance); }
};

// Two members share the group while records flow; partitions move back and
// forth (B joins, B leaves, C joins); then A is stopped (SIGSTOP) with its
// transaction open until the group gave its partitions to C, and continued
// (SIGCONT): a zombie, whose late commit must be fenced. Finally the stream
// ends and the group drains it: every record exactly once. The same steps
// run on every sink at once, one group each.
TEST(Zombie, StoppedMemberPastItsSessionWritesNothingTwice) {
  const auto t0 = Clock::now();
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-eo-zombie");
  TempDir dir("kc-it-eo-zombie");
  create_topic(bs, topic, kPartitions);

  std::vector<std::unique_ptr<Pipeline>> pipes;
  for (auto kind : {SinkKind::sqlite, SinkKind::postgres, SinkKind::kafka}) {
    const auto group = unique_name(std::string("kc-it-eo-zombie-g-") + to_string(kind));
    pipes.push_back(std::make_unique<Pipeline>(Pipeline{Destination(kind, bs, group, topic, dir), {}, 0, 0}));
  }
  const std::vector<std::string> extra = {"--commit-every", "200", "--commit-interval-ms", "500"};
  auto start = [&](Pipeline& p, const std::string& instance) {
    const auto base = std::string(p.d.name()) + "-" + instance;
    p.members[instance] = std::make_unique<Subprocess>(tool, kc_args(bs, topic, p.d, instance, extra),
                                                       dir / (base + ".out"), dir / (base + ".err"));
  };
  auto owned = [&](Pipeline& p, const std::string& instance) {
    return owned_partitions(p.at(instance).stderr_text(), topic);
  };
  auto describe_all = [&] {
    std::string s;
    for (auto& p : pipes) {
      for (auto& [inst, m] : p->members) {
        s += std::string("\n[") + p->d.name() + " " + inst + "]" + describe(*m);
      }
    }
    return s;
  };
  // Both members own partitions (they share the topic).
  auto shared = [&](Pipeline& p, const std::string& x, const std::string& y) {
    const auto ox = owned(p, x);
    const auto oy = owned(p, y);
    return !ox.empty() && !oy.empty() && ox.size() + oy.size() == kAll.size();
  };

  // A steady stream (1500 records/s) until stopped.
  BackgroundProducer producer(bs, topic, 1'000'000, even_spread(1'500));

  // 1. A alone.
  for (auto& p : pipes) {
    start(*p, "inst-a");
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return owned(*p, "inst-a") == kAll && p->d.committed() > 0; }, 60s))
        << p->d.name() << ": A did not own every partition and commit within 60 s" << describe_all();
  }
  // 2. B joins: the partitions are split.
  for (auto& p : pipes) {
    start(*p, "inst-b");
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return shared(*p, "inst-a", "inst-b"); }, 60s))
        << p->d.name() << ": A and B did not share the partitions within 60 s" << describe_all();
  }
  std::this_thread::sleep_for(1500ms);
  // 3. B leaves: A takes everything back.
  for (auto& p : pipes) {
    stop_gracefully(p->at("inst-b"), std::string(p->d.name()) + " B");
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return owned(*p, "inst-a") == kAll; }, 60s))
        << p->d.name() << ": A did not take every partition back within 60 s" << describe_all();
  }
  std::this_thread::sleep_for(1s);
  // 4. C joins.
  for (auto& p : pipes) {
    start(*p, "inst-c");
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return shared(*p, "inst-a", "inst-c"); }, 60s))
        << p->d.name() << ": A and C did not share the partitions within 60 s" << describe_all();
  }
  std::this_thread::sleep_for(1500ms);
  // 5. A stops dead (its open transaction with it) until its session ran out
  // and the group gave its partitions to C.
  const auto stopped_at = Clock::now();
  for (auto& p : pipes) {
    p->committed_before_stop = p->d.committed();
    p->at("inst-a").signal(SIGSTOP);
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return owned(*p, "inst-c") == kAll; }, 40s))
        << p->d.name() << ": C did not get every partition within 40 s of A's SIGSTOP" << describe_all();
  }
  const auto reassigned_ms = ms_since(stopped_at);
  // C works on A's partitions for a while (the zombie's transaction is
  // still open; a database may hold C back until A is continued).
  std::this_thread::sleep_for(3s);
  for (auto& p : pipes) {
    p->committed_after_stop = p->d.committed();
  }
  // 6. The zombie goes on, tries to commit what it had, and must be fenced.
  for (auto& p : pipes) {
    p->at("inst-a").signal(SIGCONT);
  }
  std::this_thread::sleep_for(4s);

  // 7. The stream ends; the group drains it.
  const auto produced = producer.finish();
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(produced));
  for (auto& p : pipes) {
    EXPECT_TRUE(wait_until(
                    [&] {
                      return p->d.stored_offsets() == hw || std::all_of(p->members.begin(), p->members.end(),
                                                                        [](auto& m) { return gave_up(*m.second); });
                    },
                    45s, 200ms) &&
                p->d.stored_offsets() == hw)
        << p->d.name() << ": the sink did not reach the end of the input within 45 s: stored "
        << join(p->d.stored_offsets()) << ", high watermarks " << join(hw) << describe_all();
  }
  for (auto& p : pipes) {
    for (const char* inst : {"inst-a", "inst-c"}) {
      stop_gracefully(p->at(inst), std::string(p->d.name()) + " " + inst);
    }
  }

  for (auto& p : pipes) {
    const auto c = p->d.check(hw, produced);
    const auto& a_log = p->at("inst-a").stderr_text();
    const auto sa = summary(a_log);
    const auto sc = summary(p->at("inst-c").stderr_text());
    std::printf(
        "ZOMBIE[%s]: records=%llu read=%llu missing=%llu duplicates=%llu other=%llu aborted_records=%lld "
        "reassigned_after_ms=%lld committed_while_a_stopped=%lld a_lost_lines=%zu a_refused_commits=%zu a: %s | c: "
        "%s\n",
        p->d.name(), static_cast<unsigned long long>(produced), static_cast<unsigned long long>(c.read),
        static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates),
        static_cast<unsigned long long>(c.other), static_cast<long long>(c.aborted_records), reassigned_ms,
        static_cast<long long>(p->committed_after_stop - p->committed_before_stop), count_of(a_log, "kc: lost"),
        count_of(a_log, "committing the transaction failed"), sa.to_string().c_str(), sc.to_string().c_str());
    std::fflush(stdout);
    EXPECT_EQ(c.missing, 0u) << p->d.name() << ": " << c.detail;
    EXPECT_EQ(c.duplicates, 0u) << p->d.name() << ": " << c.detail;
    EXPECT_EQ(c.other, 0u) << p->d.name() << ": " << c.detail;
  }
  std::printf("ZOMBIE: time=%lld ms\n", ms_since(t0));
  if (!HasFailure()) {
    for (auto& p : pipes) {
      p->d.cleanup();
    }
  }
}

// ---------------------------------------------------------------- broker crash

// A broker of the test's own (scripts/kafka with a private state file),
// stopped and removed by the destructor whatever happened.
class PrivateBroker {
 public:
  explicit PrivateBroker(const TempDir& dir) : dir_(dir.path()), state_((dir / "kafka.state").string()) {
    bootstrap_ = run("start");
  }
  ~PrivateBroker() {
    try {
      run("stop");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "PrivateBroker: %s\n", e.what());
    }
  }
  PrivateBroker(const PrivateBroker&) = delete;
  PrivateBroker& operator=(const PrivateBroker&) = delete;

  const std::string& bootstrap() const noexcept { return bootstrap_; }
  // SIGKILL the broker JVM (its data stays).
  void kill() { run("kill"); }
  // Start it again on the same data and ports; returns once it serves.
  void restart() { run("restart"); }

 private:
  std::string run(const std::string& cmd) {
    // The controller keeps a killed broker's registration for
    // broker.session.timeout.ms (9 s by default); a shorter one makes the
    // restart quicker.
    // A port or parent dir meant for the shared broker must not apply here.
    return run_command({"-u", "KC_KAFKA_PORT", "-u", "KC_KAFKA_DIR", "KC_KAFKA_STATE=" + state_,
                        "KC_KAFKA_EXTRA_PROPS=broker.session.timeout.ms=4000\nbroker.heartbeat.interval.ms=1000",
                        script("kafka"), cmd},
                       dir_, "kafka-" + cmd + "-" + std::to_string(++calls_), 180s);
  }

  std::filesystem::path dir_;
  std::string state_;
  std::string bootstrap_;
  int calls_ = 0;
};

// The broker is killed (SIGKILL) while kc consume --exactly-once writes into
// SQLite and into Kafka, and restarted a few seconds later on the same data;
// kc goes on by itself and drains: every record exactly once.
TEST(BrokerRestart, ConsumerRecoversAndWritesEveryRecordOnce) {
  constexpr std::uint64_t kRecords = 30'000;
  const auto t0 = Clock::now();
  const auto tool = kc_tool_path();
  TempDir dir("kc-it-eo-broker");
  PrivateBroker broker(dir);
  const auto bs = broker.bootstrap();
  const auto topic = unique_name("kc-it-eo-broker");
  create_topic(bs, topic, kPartitions);

  std::vector<std::unique_ptr<Pipeline>> pipes;
  for (auto kind : {SinkKind::sqlite, SinkKind::kafka}) {
    const auto group = unique_name(std::string("kc-it-eo-broker-g-") + to_string(kind));
    pipes.push_back(std::make_unique<Pipeline>(Pipeline{Destination(kind, bs, group, topic, dir), {}, 0, 0}));
  }
  auto describe_all = [&] {
    std::string s;
    for (auto& p : pipes) {
      for (auto& [inst, m] : p->members) {
        s += std::string("\n[") + p->d.name() + " " + inst + "]" + describe(*m);
      }
    }
    return s;
  };

  // ~15 s of records; the producer rides out the outage (it retries).
  auto options = even_spread(2'000);
  options.flush_timeout = 120s;
  BackgroundProducer producer(bs, topic, kRecords, options);
  for (auto& p : pipes) {
    const auto base = std::string(p->d.name()) + "-inst-0";
    p->members["inst-0"] = std::make_unique<Subprocess>(
        tool, kc_args(bs, topic, p->d, "inst-0", {"--commit-every", "500", "--commit-interval-ms", "500"}),
        dir / (base + ".out"), dir / (base + ".err"));
  }
  for (auto& p : pipes) {
    ASSERT_TRUE(wait_until([&] { return p->d.committed() > 0; }, 60s))
        << p->d.name() << ": nothing committed within 60 s" << describe_all();
  }
  std::this_thread::sleep_for(2s);

  for (auto& p : pipes) {
    p->committed_before_stop = p->d.committed();
  }
  const auto killed_at = Clock::now();
  broker.kill();
  std::this_thread::sleep_for(4s);
  broker.restart();
  const auto down_ms = ms_since(killed_at);
  for (auto& p : pipes) {
    ASSERT_TRUE(p->at("inst-0").running()) << p->d.name() << ": kc ended during the broker's outage" << describe_all();
  }

  const auto produced = producer.join();
  ASSERT_EQ(produced, kRecords);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords));
  std::vector<long long> caught_up_ms;
  for (auto& p : pipes) {
    EXPECT_TRUE(wait_until([&] { return p->d.stored_offsets() == hw || gave_up(p->at("inst-0")); }, 60s, 200ms) &&
                p->d.stored_offsets() == hw)
        << p->d.name() << ": the sink did not reach the end of the input within 60 s of the restart: stored "
        << join(p->d.stored_offsets()) << ", high watermarks " << join(hw) << describe_all();
    caught_up_ms.push_back(ms_since(killed_at));
  }
  for (auto& p : pipes) {
    stop_gracefully(p->at("inst-0"), std::string(p->d.name()) + " kc");
  }

  std::size_t i = 0;
  for (auto& p : pipes) {
    const auto c = p->d.check(hw, produced);
    const auto s = summary(p->at("inst-0").stderr_text());
    std::printf(
        "BROKER_RESTART[%s]: records=%llu read=%llu missing=%llu duplicates=%llu other=%llu aborted_records=%lld "
        "committed_at_kill=%lld broker_down_ms=%lld drained_after_kill_ms=%lld kc: %s\n",
        p->d.name(), static_cast<unsigned long long>(produced), static_cast<unsigned long long>(c.read),
        static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates),
        static_cast<unsigned long long>(c.other), static_cast<long long>(c.aborted_records),
        static_cast<long long>(p->committed_before_stop), down_ms, caught_up_ms[i++], s.to_string().c_str());
    std::fflush(stdout);
    EXPECT_EQ(c.missing, 0u) << p->d.name() << ": " << c.detail;
    EXPECT_EQ(c.duplicates, 0u) << p->d.name() << ": " << c.detail;
    EXPECT_EQ(c.other, 0u) << p->d.name() << ": " << c.detail;
  }
  std::printf("BROKER_RESTART: time=%lld ms\n", ms_since(t0));
}

// ---------------------------------------------------------------- database outage

// Takes scripts/postgres's server down for an outage (immediate shutdown,
// data kept); the destructor brings it back if the test did not.
class PostgresOutage {
 public:
  explicit PostgresOutage(const TempDir& dir) : dir_(dir.path()), state_(pg_state()) {}
  ~PostgresOutage() {
    if (down_) {
      try {
        up();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "PostgresOutage: could not bring the server back: %s\n", e.what());
      }
    }
  }
  PostgresOutage(const PostgresOutage&) = delete;
  PostgresOutage& operator=(const PostgresOutage&) = delete;

  void down() {
    down_ = true;  // even if the command fails half-way
    run("down");
  }
  void up() {
    run("start");
    down_ = false;
  }

 private:
  void run(const std::string& cmd) {
    run_command({"KC_POSTGRES_STATE=" + state_, script("postgres"), cmd}, dir_,
                "postgres-" + cmd + "-" + std::to_string(++calls_), 120s);
  }

  std::filesystem::path dir_;
  std::string state_;
  bool down_ = false;
  int calls_ = 0;
};

// kc consume --exactly-once --sink postgres: while PostgreSQL is down for
// 10 s: the group's committed offsets (kc commits them after the database
// did, for lag monitoring) never run ahead of what the database holds; kc
// waits, reconnects by itself when the server is back, and drains: every
// record exactly once.
TEST(DatabaseOutage, PostgresDownThenBackNothingLostNothingTwice) {
  constexpr std::uint64_t kRecords = 30'000;
  constexpr auto kOutage = 10s;
  const auto t0 = Clock::now();
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-eo-pgdown");
  TempDir dir("kc-it-eo-pgdown");
  create_topic(bs, topic, kPartitions);
  Destination d(SinkKind::postgres, bs, unique_name("kc-it-eo-pgdown-g"), topic, dir);
  PostgresOutage outage(dir);

  // ~15 s of records.
  BackgroundProducer producer(bs, topic, kRecords, even_spread(2'000));
  Subprocess kc(tool, kc_args(bs, topic, d, "inst-0", {"--commit-every", "500", "--commit-interval-ms", "500"}),
                dir / "kc.out", dir / "kc.err");
  ASSERT_TRUE(wait_until([&] { return d.committed() > 0; }, 60s)) << "nothing committed within 60 s" << describe(kc);
  std::this_thread::sleep_for(2s);

  const auto before = d.stored_offsets();
  const auto down_at = Clock::now();
  outage.down();
  // The group's committed offsets, sampled through the outage.
  CommittedWatch group_offsets(bs, d.group(), topic, kPartitions);
  std::vector<std::vector<std::int64_t>> samples;
  while (Clock::now() - down_at < kOutage) {
    samples.push_back(group_offsets.offsets());
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_TRUE(kc.running()) << "kc ended during the database outage" << describe(kc);
  outage.up();
  const auto down_ms = ms_since(down_at);
  // What the database holds now; it only grows, so a sample beyond it was
  // beyond it at the time too.
  const auto db_after = d.stored_offsets();
  std::size_t ahead = 0;
  std::string first_ahead;
  for (const auto& s : samples) {
    for (std::size_t p = 0; p < s.size(); ++p) {
      if (s[p] > db_after[p]) {
        ++ahead;
        if (first_ahead.empty()) {
          first_ahead = "group committed " + join(s) + " while the database holds " + join(db_after);
        }
      }
    }
  }

  const auto produced = producer.join();
  ASSERT_EQ(produced, kRecords);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  EXPECT_TRUE(wait_until([&] { return d.stored_offsets() == hw || gave_up(kc); }, 45s, 200ms) &&
              d.stored_offsets() == hw)
      << "the sink did not reach the end of the input within 45 s of the outage: stored " << join(d.stored_offsets())
      << ", high watermarks " << join(hw) << describe(kc);
  const auto drained_ms = ms_since(down_at);
  stop_gracefully(kc, "kc");

  const auto c = d.check(hw, produced);
  const auto log = kc.stderr_text();
  const auto s = summary(log);
  std::printf(
      "PG_OUTAGE: records=%llu read=%llu missing=%llu duplicates=%llu other=%llu outage_ms=%lld samples=%zu "
      "samples_ahead_of_db=%zu db_before=%s group_last_sample=%s db_after=%s drained_after_ms=%lld kc: %s\n",
      static_cast<unsigned long long>(produced), static_cast<unsigned long long>(c.read),
      static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates),
      static_cast<unsigned long long>(c.other), down_ms, samples.size(), ahead, join(before).c_str(),
      samples.empty() ? "-" : join(samples.back()).c_str(), join(db_after).c_str(), drained_ms, s.to_string().c_str());
  std::printf("PG_OUTAGE: time=%lld ms\n", ms_since(t0));
  std::fflush(stdout);
  EXPECT_FALSE(samples.empty());
  EXPECT_EQ(ahead, 0u) << first_ahead;
  EXPECT_EQ(c.missing, 0u) << c.detail;
  EXPECT_EQ(c.duplicates, 0u) << c.detail;
  EXPECT_EQ(c.other, 0u) << c.detail;
  if (!HasFailure()) {
    d.cleanup();
  }
}

}  // namespace
}  // namespace kc::test
