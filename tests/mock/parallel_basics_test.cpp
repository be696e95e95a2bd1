// Parallel processing on librdkafka's mock cluster: the basic contract of
// each form (worker threads, asynchronous handler) and ordering mode.
// Retries, backpressure and the commit-point property: parallel_consumer_test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "offsets/metadata.hpp"
#include "support/parallel.hpp"

namespace {

constexpr int kPartitions = 2;
constexpr int kPerPartition = 2000;
constexpr int kKeys = 50;

kc::Bytes bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

class ParallelOnMock : public kc::test::OneTopicOnMock {
 protected:
  ParallelOnMock() : OneTopicOnMock("t", kPartitions, std::chrono::milliseconds(1500)) {}

  void SetUp() override {
    broker_.create_topic("t", kPartitions);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < kPartitions * kPerPartition; ++i) {
      const std::string k = "k" + std::to_string(i % kKeys);
      const std::string v = std::to_string(i);
      p.produce("t", bytes(k), bytes(v), (i / kKeys) % kPartitions);
    }
    ASSERT_TRUE(p.flush(std::chrono::seconds(30)));
  }
};

struct Seen {
  std::mutex mutex;
  // (partition, key) -> offsets in call order
  std::map<std::pair<int, std::string>, std::vector<std::int64_t>> by_key;
  std::map<int, std::vector<std::int64_t>> by_partition;
  void add(const kc::Message& m) {
    std::lock_guard lock(mutex);
    const int p = kc::to_int(m.partition());
    by_key[{p, std::string(kc::as_text(*m.key()))}].push_back(kc::to_int(m.offset()));
    by_partition[p].push_back(kc::to_int(m.offset()));
  }
  std::size_t total() {
    std::size_t n = 0;
    for (auto& [p, v] : by_partition) n += v.size();
    return n;
  }
};

bool ascending(const std::vector<std::int64_t>& v) { return std::is_sorted(v.begin(), v.end()) && std::adjacent_find(v.begin(), v.end()) == v.end(); }

TEST_F(ParallelOnMock, WorkersInPartitionModeKeepOffsetOrderPerPartition) {
  auto cfg = config("workers-partition");
  cfg.parallel.concurrency = 4;
  Seen seen;
  std::atomic<int> running{0}, max_running{0};
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    const int now = ++running;
    int prev = max_running.load();
    while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
    }
    seen.add(m);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    --running;
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(seen.total(), static_cast<std::size_t>(kPartitions * kPerPartition));
  for (auto& [p, offs] : seen.by_partition) {
    EXPECT_TRUE(ascending(offs)) << "partition " << p;
  }
  EXPECT_LE(max_running.load(), kPartitions) << "partition mode runs one record per partition at a time";
  EXPECT_EQ(committed("workers-partition"), (std::vector<std::int64_t>{kPerPartition, kPerPartition}));
}

TEST_F(ParallelOnMock, AsyncKeyModeRunsKeysInParallelInOrderPerKey) {
  auto cfg = config("async-key");
  cfg.parallel.ordering = kc::Ordering::key;
  cfg.parallel.max_in_flight = 40;
  Seen seen;
  std::mutex mu;
  std::vector<std::pair<std::chrono::steady_clock::time_point, kc::Completion>> pending;
  std::atomic<bool> quit{false};
  std::atomic<std::size_t> max_pending{0};
  std::thread timer([&] {
    while (!quit) {
      std::vector<kc::Completion> due;
      {
        std::lock_guard lock(mu);
        const auto now = std::chrono::steady_clock::now();
        for (auto it = pending.begin(); it != pending.end();) {
          if (it->first <= now) {
            due.push_back(std::move(it->second));
            it = pending.erase(it);
          } else {
            ++it;
          }
        }
      }
      // Complete in reverse: completions arrive out of order.
      for (auto it = due.rbegin(); it != due.rend(); ++it) it->done();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::uint64_t calls = 0;
  kc::Consumer c(cfg, [&](const kc::Message& m, kc::Completion done) {
    seen.add(m);
    ++calls;
    std::lock_guard lock(mu);
    pending.emplace_back(std::chrono::steady_clock::now() + std::chrono::milliseconds(2 + calls % 5), std::move(done));
    max_pending = std::max(max_pending.load(), pending.size());
  });
  const auto r = c.run();
  quit = true;
  timer.join();
  EXPECT_EQ(seen.total(), static_cast<std::size_t>(kPartitions * kPerPartition));
  for (auto& [k, offs] : seen.by_key) {
    EXPECT_TRUE(ascending(offs)) << "key " << k.second << " of partition " << k.first;
  }
  EXPECT_GT(max_pending.load(), 10u) << "keys should run in parallel";
  EXPECT_LE(max_pending.load(), 40u) << "max_in_flight";
  EXPECT_EQ(r.stats.done, static_cast<std::uint64_t>(kPartitions * kPerPartition));
  EXPECT_EQ(committed("async-key"), (std::vector<std::int64_t>{kPerPartition, kPerPartition}));
}

TEST_F(ParallelOnMock, PermanentFailureWithoutDeadLetterTopicStopsOnlyItsKey) {
  auto cfg = config("dead-key");
  cfg.parallel.ordering = kc::Ordering::key;
  cfg.parallel.concurrency = 2;
  Seen seen;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    if (kc::to_int(m.partition()) == 0 && kc::to_int(m.offset()) == 7) {
      throw kc::PermanentError("bad record");
    }
    seen.add(m);
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle) << "a stopped key must not keep the consumer busy";
  EXPECT_EQ(r.stats.failed, 1u);
  // Its key (k7 in partition 0) stops at the failed record; every other
  // record of the partition is done.
  const auto& k7 = seen.by_key[{0, "k7"}];
  for (const auto o : k7) {
    EXPECT_LT(o, 7) << "k7 went on past its failed record";
  }
  const auto per_key = static_cast<std::size_t>(kPerPartition / kKeys);
  EXPECT_EQ(seen.by_partition[0].size(), static_cast<std::size_t>(kPerPartition) - per_key);
  const auto off = committed("dead-key");
  EXPECT_EQ(off[0], 7) << "nothing at or past the failed record is committed";
  EXPECT_EQ(off[1], kPerPartition);
}

TEST_F(ParallelOnMock, MaxMessagesStopsStartingAndCommitsOnlyDone) {
  auto cfg = config("max");
  cfg.parallel.ordering = kc::Ordering::unordered;
  cfg.parallel.concurrency = 3;
  cfg.max_messages = 700;
  std::atomic<int> calls{0};
  kc::Consumer c(cfg, [&](const kc::Message&) {
    ++calls;
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::max_messages);
  EXPECT_EQ(calls.load(), 700);
  const auto off = committed("max");
  EXPECT_LE(std::max<std::int64_t>(off[0], 0) + std::max<std::int64_t>(off[1], 0), 700);
}

// Metadata that is not kc's (another application's, or kc's for another
// commit point) is ignored with a warning: everything from the committed
// offset is processed, nothing is skipped, nothing fails.
TEST_F(ParallelOnMock, ForeignCommitMetadataIsIgnored) {
  const std::string bs = broker_.bootstrap_servers();
  // Partition 0: another application's metadata. Partition 1: kc's format,
  // but written for commit point 50 while the committed offset is 100 (an
  // offset reset that kept the metadata): claims 100..199 done.
  std::vector<std::int64_t> done;
  for (std::int64_t o = 100; o < 200; ++o) done.push_back(o);
  kc::test::commit_with_metadata(bs, "foreign", "t", 0, 100, "app-state:{\"v\":1}");
  kc::test::commit_with_metadata(bs, "foreign", "t", 1, 100, kc::detail::encode_done_offsets(50, done));
  auto cfg = config("foreign");
  cfg.parallel.ordering = kc::Ordering::key;
  cfg.parallel.concurrency = 2;
  Seen seen;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    seen.add(m);
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(r.stats.skipped, 0u);
  for (int p = 0; p < kPartitions; ++p) {
    auto offs = seen.by_partition[p];
    std::sort(offs.begin(), offs.end());
    ASSERT_EQ(offs.size(), static_cast<std::size_t>(kPerPartition - 100)) << "partition " << p;
    EXPECT_EQ(offs.front(), 100) << "partition " << p;
  }
  EXPECT_EQ(committed("foreign"), (std::vector<std::int64_t>{kPerPartition, kPerPartition}));
}

TEST_F(ParallelOnMock, KeyOrderingWithoutWorkersOrAsyncHandlerIsAConfigError) {
  auto cfg = config("bad");
  cfg.parallel.ordering = kc::Ordering::key;
  try {
    kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; });
    FAIL() << "expected a configuration error";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.concurrency"), std::string::npos) << e.what();
  }
}

}  // namespace
