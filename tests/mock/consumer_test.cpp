// kc::Consumer behaviour on librdkafka's mock cluster: handler failures,
// stored offsets, max-messages, idle exit, bad configuration.
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"

namespace {

constexpr int kPartitions = 2;
constexpr int kPerPartition = 1000;

class ConsumerOnMock : public kc::test::OneTopicOnMock {
 protected:
  ConsumerOnMock() : OneTopicOnMock("t", kPartitions, std::chrono::milliseconds(1500)) {}

  void SetUp() override {
    broker_.create_topic("t", kPartitions);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < kPartitions * kPerPartition; ++i) {
      const std::string v = "v" + std::to_string(i);
      p.produce("t", std::nullopt, kc::Bytes(reinterpret_cast<const std::byte*>(v.data()), v.size()), i % kPartitions);
    }
    ASSERT_TRUE(p.flush(std::chrono::seconds(30)));
  }
};

TEST_F(ConsumerOnMock, PermanentFailureWithoutDeadLetterTopicStopsOnlyItsPartition) {
  std::map<int, std::int64_t> last;
  kc::Consumer c(config("throws"), [&](const kc::Message& m) {
    const int p = kc::to_int(m.partition());
    if (p == 0 && kc::to_int(m.offset()) == 100) {
      throw kc::PermanentError("boom");
    }
    last[p] = kc::to_int(m.offset());
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(r.stats.failed, 1u);
  EXPECT_EQ(last[0], 99) << "partition 0 went on past the failed record";
  EXPECT_EQ(last[1], kPerPartition - 1) << "partition 1 must not be held up";
  const auto off = committed("throws");
  EXPECT_EQ(off[0], 100) << "the failed record (offset 100) must stay uncommitted";
  EXPECT_EQ(off[1], kPerPartition);
}

TEST_F(ConsumerOnMock, RetryAndDeadOutcomesAlsoHoldTheCommitPoint) {
  for (const auto outcome : {kc::Outcome::retry, kc::Outcome::dead}) {
    const std::string group = outcome == kc::Outcome::retry ? "retry" : "dead";
    auto cfg = config(group);
    cfg.retry.max_attempts = 2;
    cfg.retry.backoff = std::chrono::milliseconds(50);
    std::map<int, int> calls_at_10;
    kc::Consumer c(cfg, [&](const kc::Message& m) {
      if (kc::to_int(m.offset()) != 10) {
        return kc::Outcome::done;
      }
      ++calls_at_10[kc::to_int(m.partition())];
      return outcome;
    });
    const auto r = c.run();
    EXPECT_EQ(r.stats.failed, 2u);  // offset 10 of both partitions
    EXPECT_EQ(r.stats.retried, outcome == kc::Outcome::retry ? 2u : 0u);
    EXPECT_EQ(calls_at_10[0], outcome == kc::Outcome::retry ? 2 : 1);
    const auto off = committed(group);
    EXPECT_EQ(off[0], 10);
    EXPECT_EQ(off[1], 10);
  }
}

TEST_F(ConsumerOnMock, FailOnceThenSucceedIsRetriedInOrderAndCommitted) {
  auto cfg = config("once");
  cfg.retry.backoff = std::chrono::milliseconds(100);
  std::map<int, std::vector<std::int64_t>> handled;  // successful offsets per partition, in call order
  std::map<std::int64_t, int> attempts_seen;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    const int p = kc::to_int(m.partition());
    const auto o = kc::to_int(m.offset());
    if (p == 0 && (o == 10 || o == 20)) {
      attempts_seen[o] = m.attempt();
      if (m.attempt() == 1) {
        throw std::runtime_error("transient");  // any exception: retriable by default
      }
    }
    handled[p].push_back(o);
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.stats.retried, 2u);
  EXPECT_EQ(r.stats.failed, 0u);
  EXPECT_EQ(attempts_seen[10], 2);
  EXPECT_EQ(attempts_seen[20], 2);
  for (int p = 0; p < kPartitions; ++p) {
    ASSERT_EQ(handled[p].size(), static_cast<std::size_t>(kPerPartition)) << "partition " << p;
    for (std::size_t i = 0; i < handled[p].size(); ++i) {
      ASSERT_EQ(handled[p][i], static_cast<std::int64_t>(i)) << "order broken in partition " << p;
    }
  }
  const auto off = committed("once");
  EXPECT_EQ(off[0], kPerPartition);
  EXPECT_EQ(off[1], kPerPartition);
}

TEST_F(ConsumerOnMock, RetryBackoffPausesOnlyTheFailingPartition) {
  auto cfg = config("backoff");
  cfg.retry.max_attempts = 2;
  cfg.retry.backoff = std::chrono::milliseconds(2000);
  cfg.retry.jitter = 0;
  using Clock = std::chrono::steady_clock;
  Clock::time_point failed_at{};
  Clock::time_point retried_at{};
  Clock::time_point p1_done_at{};
  int p1_count = 0;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    if (kc::to_int(m.partition()) == 1) {
      if (++p1_count == kPerPartition) {
        p1_done_at = Clock::now();
      }
      return kc::Outcome::done;
    }
    if (kc::to_int(m.offset()) == 5) {
      if (m.attempt() == 1) {
        failed_at = Clock::now();
        throw kc::RetriableError("later");
      }
      retried_at = Clock::now();
    }
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.stats.retried, 1u);
  ASSERT_NE(retried_at, Clock::time_point{});
  EXPECT_GE(retried_at - failed_at, std::chrono::milliseconds(1900)) << "backoff not honoured";
  EXPECT_LT(p1_done_at, retried_at) << "partition 1 waited for partition 0's backoff";
  EXPECT_EQ(committed("backoff")[0], kPerPartition);
}

TEST_F(ConsumerOnMock, StoredOffsetHookSeeksOnAssignment) {
  std::map<int, std::int64_t> first;
  kc::ConsumerHooks hooks;
  std::vector<kc::TopicPartition> assigned;
  hooks.stored_offset = [](const kc::TopicPartition& tp) -> std::optional<kc::Offset> {
    return kc::Offset{kc::to_int(tp.partition) == 0 ? 700 : 250};
  };
  hooks.on_assign = [&](std::span<const kc::TopicPartition> tps) { assigned.assign(tps.begin(), tps.end()); };
  kc::Consumer c(
      config("stored"),
      [&](const kc::Message& m) {
        first.try_emplace(kc::to_int(m.partition()), kc::to_int(m.offset()));
        return kc::Outcome::done;
      },
      hooks);
  const auto r = c.run();
  EXPECT_EQ(first[0], 700);
  EXPECT_EQ(first[1], 250);
  EXPECT_EQ(r.stats.consumed, static_cast<std::uint64_t>(2 * kPerPartition - 700 - 250));
  EXPECT_EQ(assigned.size(), 2u);
}

TEST_F(ConsumerOnMock, MaxMessagesStopsAndCommitsExactlyWhatWasDone) {
  auto cfg = config("max");
  cfg.max_messages = 777;
  cfg.idle_exit = std::chrono::milliseconds(0);
  kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; });
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::max_messages);
  EXPECT_EQ(r.stats.done, 777u);
  const auto off = committed("max");
  // -1: nothing committed for a partition (all 777 may come from one).
  EXPECT_EQ(std::max<std::int64_t>(off[0], 0) + std::max<std::int64_t>(off[1], 0), 777) << off[0] << "+" << off[1];
}

TEST_F(ConsumerOnMock, StopFromAnotherThreadEndsRunGracefully) {
  auto cfg = config("stop");
  cfg.idle_exit = std::chrono::milliseconds(0);
  std::atomic<int> seen{0};
  kc::Consumer c(cfg, [&](const kc::Message&) {
    ++seen;
    return kc::Outcome::done;
  });
  std::thread stopper([&] {
    while (seen.load() < 2 * kPerPartition) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    c.stop();
  });
  const auto r = c.run();
  stopper.join();
  EXPECT_EQ(r.reason, kc::StopReason::requested);
  const auto off = committed("stop");
  EXPECT_EQ(off[0], kPerPartition);
  EXPECT_EQ(off[1], kPerPartition);
}

TEST_F(ConsumerOnMock, BeforeCommitThatThrowsRefusesTheCommitAndStops) {
  auto cfg = config("refuse");
  cfg.commit.every_messages = 100;
  int calls = 0;
  kc::ConsumerHooks hooks;
  hooks.before_commit = [&] {
    if (++calls >= 2) {
      throw std::runtime_error("disk full");
    }
  };
  kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; }, hooks);
  const auto r = c.run();
  EXPECT_EQ(r.reason, kc::StopReason::fatal);
  EXPECT_NE(r.error.find("disk full"), std::string::npos) << r.error;
  const auto off = committed("refuse");
  // Only the first commit (before the hook failed) may have reached the broker.
  EXPECT_LE(std::max<std::int64_t>(off[0], 0) + std::max<std::int64_t>(off[1], 0), static_cast<std::int64_t>(r.stats.done));
  EXPECT_LT(std::max<std::int64_t>(off[0], 0) + std::max<std::int64_t>(off[1], 0), 2 * kPerPartition);
}

TEST_F(ConsumerOnMock, AutoCommitConfigIsRefusedAtConstruction) {
  auto cfg = config("auto");
  EXPECT_THROW(cfg.set("librdkafka.enable.auto.commit", "true"), kc::Error);
  cfg.librdkafka["enable.auto.commit"] = "true";  // bypassing set() is caught by validate()
  EXPECT_THROW(kc::Consumer(cfg, [](const kc::Message&) { return kc::Outcome::done; }), kc::Error);
}

}  // namespace
