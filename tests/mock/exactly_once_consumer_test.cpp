// The consumer's side of exactly-once (src/source/exactly_once.cpp) against
// an in-memory transactional sink that fails on purpose: commits that fail
// before or after they took effect (the ambiguous case), transactions that
// cannot open, claims refused at assignment, records whose output must be
// undone, a partition fenced by another owner. Whatever fails, the sink's
// committed rows hold every record exactly once.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/exactly_once.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"

namespace {

constexpr int kPartitions = 4;

using Row = std::pair<int, std::int64_t>;  // (partition, offset)

// A database in memory: rows and offsets commit together; every claim adds
// one to the partition's epoch, and a commit for a partition whose epoch
// moved on is refused (fencing). Failure rates are per call.
class FakeSink final : public kc::TransactionalSink {
 public:
  struct Faults {
    double begin = 0;          // begin() throws (retriable)
    double commit_before = 0;  // commit() throws, nothing applied
    double commit_after = 0;   // commit() applied, then throws (the answer was lost)
    double claim = 0;          // claim() throws (retriable)
    double record_end = 0;     // record_end(true) throws
  };
  FakeSink(Faults f, unsigned seed) : faults_(f), rng_(seed) {}

  std::vector<kc::SinkPosition> claim(std::span<const kc::TopicPartition> tps) override {
    maybe_fail(faults_.claim, "claim");
    std::vector<kc::SinkPosition> out;
    for (const auto& tp : tps) {
      const int p = kc::to_int(tp.partition);
      mine_[p] = ++epoch_[p];
      out.push_back({true, stored(p)});
    }
    ++claims;
    return out;
  }
  std::vector<kc::SinkPosition> resume(std::span<const kc::TopicPartition> tps) override {
    maybe_fail(faults_.claim, "resume");
    std::vector<kc::SinkPosition> out;
    for (const auto& tp : tps) {
      const int p = kc::to_int(tp.partition);
      out.push_back({mine_.contains(p) && mine_[p] == epoch_[p], stored(p)});
    }
    return out;
  }
  void release(std::span<const kc::TopicPartition> tps) override {
    for (const auto& tp : tps) {
      mine_.erase(kc::to_int(tp.partition));
    }
  }
  void begin() override {
    EXPECT_FALSE(open_) << "begin() while a transaction is open";
    maybe_fail(faults_.begin, "begin");
    open_ = true;
    pending_.clear();
  }
  void record_begin() override {
    EXPECT_TRUE(open_) << "record_begin() outside a transaction";
    record_.clear();
  }
  void record_end(bool keep) override {
    if (keep) {
      maybe_fail(faults_.record_end, "record_end");
      pending_.insert(pending_.end(), record_.begin(), record_.end());
    }
    record_.clear();
  }
  void commit(std::span<const kc::SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s*) override {
    EXPECT_TRUE(open_) << "commit() outside a transaction";
    open_ = false;
    maybe_fail(faults_.commit_before, "commit");
    for (const auto& o : offsets) {
      const int p = kc::to_int(o.tp.partition);
      if (!mine_.contains(p) || mine_[p] != epoch_[p]) {
        ++fenced_commits;
        throw kc::Error(kc::errc::io, "fenced: partition " + std::to_string(p));
      }
    }
    // Offsets only move forward, and rows land exactly at the stored
    // positions: a row at or past its partition's new offset, or before the
    // old one, means the consumer wrote something it had not processed.
    for (const auto& [p, off] : pending_) {
      EXPECT_GE(off, stored(p) ? kc::to_int(*stored(p)) : 0) << "row before the stored offset";
    }
    for (const auto& o : offsets) {
      next_[kc::to_int(o.tp.partition)] = kc::to_int(o.next);
    }
    rows.insert(rows.end(), pending_.begin(), pending_.end());
    pending_.clear();
    ++commits;
    maybe_fail(faults_.commit_after, "commit (after it took effect)");
  }
  void abort() noexcept override {
    open_ = false;
    pending_.clear();
    record_.clear();
    ++aborts;
  }

  /// What the handler writes, during a record.
  void write(const kc::Message& m) { record_.push_back({kc::to_int(m.partition()), kc::to_int(m.offset())}); }
  /// Another consumer claims `partition` (this one becomes a zombie for it).
  void steal(int partition) { ++epoch_[partition]; }
  std::int64_t next_of(int partition) const {
    const auto it = next_.find(partition);
    return it == next_.end() ? -1 : it->second;
  }

  std::vector<Row> rows;  // committed
  int commits = 0;
  int aborts = 0;
  int claims = 0;
  int fenced_commits = 0;

 private:
  std::optional<kc::Offset> stored(int p) const {
    const auto it = next_.find(p);
    return it == next_.end() ? std::nullopt : std::optional(kc::Offset{it->second});
  }
  void maybe_fail(double rate, const char* what) {
    if (rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < rate) {
      ++injected;
      throw kc::Error(kc::errc::io, std::string("injected failure: ") + what, false, true);
    }
  }

  Faults faults_;
  std::mt19937 rng_;
  bool open_ = false;
  std::vector<Row> pending_;
  std::vector<Row> record_;
  std::map<int, std::int64_t> epoch_;  // the "database's"
  std::map<int, std::int64_t> mine_;   // this consumer's claims
  std::map<int, std::int64_t> next_;   // stored offsets

 public:
  int injected = 0;
};

void produce(const kc::EmbeddedBroker& broker, const std::string& topic, int n) {
  kc::Producer p({broker.bootstrap_servers(), {}});
  for (int i = 0; i < n; ++i) {
    const std::string v = "msg-" + std::to_string(i);
    p.produce(topic, std::nullopt, kc::Bytes(reinterpret_cast<const std::byte*>(v.data()), v.size()), i % kPartitions);
  }
  ASSERT_TRUE(p.flush(std::chrono::seconds(30)));
  ASSERT_EQ(p.stats().delivered, static_cast<std::uint64_t>(n));
}

kc::ConsumerConfig config(const kc::EmbeddedBroker& broker, const std::string& topic) {
  auto c = kc::test::mock_consumer_config(broker, topic + "-g", topic);
  c.commit.every_messages = 200;
  c.commit.interval = std::chrono::milliseconds(100);
  c.retry.backoff = std::chrono::milliseconds(10);
  c.idle_exit = std::chrono::milliseconds(1000);
  return c;
}

struct Count {
  int missing = 0;
  int duplicates = 0;
};

Count count(const std::vector<Row>& rows, int records) {
  std::map<Row, int> seen;
  for (const auto& r : rows) {
    ++seen[r];
  }
  Count c;
  for (int p = 0; p < kPartitions; ++p) {
    for (std::int64_t o = 0; o < records / kPartitions; ++o) {
      const auto it = seen.find({p, o});
      if (it == seen.end()) {
        ++c.missing;
      } else {
        c.duplicates += it->second - 1;
      }
    }
  }
  return c;
}

struct Scenario {
  const char* name;
  FakeSink::Faults faults;
};

void PrintTo(const Scenario& s, std::ostream* os) {
  *os << s.name;
}

class ExactlyOnceFaults : public ::testing::TestWithParam<Scenario> {};

// Every kind of failure at a few per cent of calls, plus handler failures
// (a retry whose output must be undone, written twice before it fails): the
// committed rows hold each record exactly once, and the sink's offsets end
// at the end of each partition.
TEST_P(ExactlyOnceFaults, EveryRecordExactlyOnce) {
  constexpr int kRecords = 8000;
  kc::EmbeddedBroker broker(1);
  const std::string topic = std::string("eos-") + GetParam().name;
  broker.create_topic(topic, kPartitions);
  produce(broker, topic, kRecords);

  auto sink = std::make_shared<FakeSink>(GetParam().faults, 42);
  std::mt19937 rng(7);
  int handler_failures = 0;
  kc::ConsumerHooks hooks;
  hooks.exactly_once = sink;
  kc::Consumer consumer(
      config(broker, topic),
      [&](const kc::Message& m) {
        sink->write(m);
        if (m.attempt() == 1 && std::uniform_int_distribution<int>(0, 299)(rng) == 0) {
          sink->write(m);  // written twice, then fails: both must be undone
          ++handler_failures;
          return kc::Outcome::retry;
        }
        return kc::Outcome::done;
      },
      std::move(hooks));
  const auto r = consumer.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle) << r.error;
  const auto c = count(sink->rows, kRecords);
  std::printf(
      "EOS faults (%s): rows=%zu missing=%d duplicates=%d commits=%d aborts=%d injected=%d "
      "handler_failures=%d transactions=%llu aborted=%llu\n",
      GetParam().name, sink->rows.size(), c.missing, c.duplicates, sink->commits, sink->aborts, sink->injected,
      handler_failures, static_cast<unsigned long long>(r.stats.transactions),
      static_cast<unsigned long long>(r.stats.transactions_aborted));
  EXPECT_EQ(c.missing, 0);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(sink->rows.size(), static_cast<std::size_t>(kRecords));
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(sink->next_of(p), kRecords / kPartitions) << "partition " << p;
  }
  EXPECT_GT(handler_failures, 0);
  if (GetParam().faults.commit_before + GetParam().faults.commit_after + GetParam().faults.begin +
          GetParam().faults.claim + GetParam().faults.record_end >
      0) {
    EXPECT_GT(sink->injected, 0) << "no failure was injected: the scenario tested nothing";
    EXPECT_GT(r.stats.transactions_aborted, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Consumer, ExactlyOnceFaults,
    ::testing::Values(
        Scenario{"commit_before", {.commit_before = 0.1}}, Scenario{"commit_after", {.commit_after = 0.1}},
        Scenario{"begin_and_claim", {.begin = 0.05, .claim = 0.3}},
        Scenario{"everything",
                 {.begin = 0.03, .commit_before = 0.05, .commit_after = 0.05, .claim = 0.2, .record_end = 0.001}}),
    [](const ::testing::TestParamInfo<Scenario>& p) { return std::string(p.param.name); });

// Another consumer claims the partition of the record being handled
// mid-run: this one's next commit is refused, it stops writing for that
// partition (paused, waiting for the group to take it away) and goes on with
// the others.
TEST(ExactlyOnce, FencedPartitionStopsOnlyItself) {
  constexpr int kRecords = 8000;
  kc::EmbeddedBroker broker(1);
  const std::string topic = "eos-fenced";
  broker.create_topic(topic, kPartitions);
  produce(broker, topic, kRecords);

  auto sink = std::make_shared<FakeSink>(FakeSink::Faults{}, 1);
  kc::ConsumerHooks hooks;
  hooks.exactly_once = sink;
  int handled = 0;
  int stolen = -1;
  std::map<int, std::int64_t> at_fence;  // partition -> stored offset when `stolen` was fenced
  std::map<int, int> after_fence;        // partition -> records handled after the fencing
  kc::Consumer* self = nullptr;
  kc::Consumer consumer(
      config(broker, topic),
      [&](const kc::Message& m) {
        sink->write(m);
        if (++handled == 3000) {
          stolen = kc::to_int(m.partition());
          sink->steal(stolen);
          for (int p = 0; p < kPartitions; ++p) {
            at_fence[p] = sink->next_of(p);
          }
        }
        if (handled > 3000) {
          ++after_fence[kc::to_int(m.partition())];
        }
        if (handled == 6000) {
          self->stop();
        }
        return kc::Outcome::done;
      },
      std::move(hooks));
  self = &consumer;
  const auto r = consumer.run();
  EXPECT_EQ(r.reason, kc::StopReason::requested) << r.error;
  ASSERT_GE(stolen, 0);
  EXPECT_GE(sink->fenced_commits, 1);
  // Nothing was committed for the fenced partition after the fencing...
  EXPECT_EQ(sink->next_of(stolen), at_fence[stolen]);
  // ...and the others went on.
  std::int64_t others = 0;
  for (int p = 0; p < kPartitions; ++p) {
    if (p != stolen) {
      others += sink->next_of(p) - at_fence[p];
    }
  }
  EXPECT_GT(others, 0);
  const auto c = count(sink->rows, kRecords);
  EXPECT_EQ(c.duplicates, 0);
  std::printf(
      "EOS fenced: partition %d stopped at %lld; the others committed %lld more records; handled after the "
      "fencing: p0=%d p1=%d p2=%d p3=%d; aborted=%llu\n",
      stolen, static_cast<long long>(at_fence[stolen]), static_cast<long long>(others), after_fence[0], after_fence[1],
      after_fence[2], after_fence[3], static_cast<unsigned long long>(r.stats.transactions_aborted));
}

// The sink's offsets take precedence over the group's: a sink that stores
// offset 500 for every partition makes the consumer start there.
TEST(ExactlyOnce, StartsAtTheSinksOffsets) {
  constexpr int kRecords = 4000;
  kc::EmbeddedBroker broker(1);
  const std::string topic = "eos-start";
  broker.create_topic(topic, kPartitions);
  produce(broker, topic, kRecords);

  // A first run stores offsets 0..499 per partition and stops.
  auto sink = std::make_shared<FakeSink>(FakeSink::Faults{}, 1);
  {
    kc::ConsumerHooks hooks;
    hooks.exactly_once = sink;
    auto cfg = config(broker, topic);
    cfg.max_messages = 2000;
    kc::Consumer first(
        cfg,
        [&](const kc::Message& m) {
          sink->write(m);
          return kc::Outcome::done;
        },
        std::move(hooks));
    EXPECT_EQ(first.run().reason, kc::StopReason::max_messages);
  }
  const auto rows_first = sink->rows.size();
  ASSERT_EQ(rows_first, 2000u);
  // A second run in ANOTHER group (no committed offsets there, and
  // from_beginning) still starts where the sink stands.
  kc::ConsumerHooks hooks;
  hooks.exactly_once = sink;
  auto cfg = config(broker, topic);
  cfg.group = "another-group";
  kc::Consumer second(
      cfg,
      [&](const kc::Message& m) {
        sink->write(m);
        return kc::Outcome::done;
      },
      std::move(hooks));
  const auto r = second.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(r.stats.consumed, static_cast<std::uint64_t>(kRecords) - rows_first);
  const auto c = count(sink->rows, kRecords);
  EXPECT_EQ(c.missing, 0);
  EXPECT_EQ(c.duplicates, 0);
}

TEST(ExactlyOnce, NeedsTheOneRecordAtATimeHandler) {
  kc::EmbeddedBroker broker(1);
  auto cfg = config(broker, "eos-config");
  cfg.parallel.concurrency = 2;
  kc::ConsumerHooks hooks;
  hooks.exactly_once = std::make_shared<FakeSink>(FakeSink::Faults{}, 1);
  try {
    kc::Consumer c(
        cfg, [](const kc::Message&) { return kc::Outcome::done; }, std::move(hooks));
    FAIL() << "parallel processing with exactly-once was accepted";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::config_invalid_value);
    EXPECT_NE(std::string(e.what()).find("parallel.concurrency"), std::string::npos) << e.what();
  }
}

}  // namespace
