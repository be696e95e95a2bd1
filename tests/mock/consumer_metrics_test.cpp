// The consumer's /metrics, /healthz and /readyz on librdkafka's mock
// cluster: the counters match what the handler saw, and liveness follows
// the poll loop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/metrics.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "support/http.hpp"

namespace {

using namespace std::chrono_literals;

constexpr int kPartitions = 3;
constexpr int kRecords = 3000;

std::string url(const kc::Consumer& c, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(c.metrics_port()) + path;
}

class ConsumerMetrics : public kc::test::OneTopicOnMock {
 protected:
  ConsumerMetrics() : OneTopicOnMock("orders", kPartitions, 1500ms) {}

  void SetUp() override {
    broker_.create_topic("orders", kPartitions);
    broker_.create_topic("orders.dead-letter", kPartitions);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < kRecords; ++i) {
      const std::string v = "v" + std::to_string(i);
      p.produce("orders", std::nullopt, kc::Bytes(reinterpret_cast<const std::byte*>(v.data()), v.size()),
                i % kPartitions);
    }
    ASSERT_TRUE(p.flush(30s));
  }

  kc::ConsumerConfig config(const std::string& group) const {
    auto c = OneTopicOnMock::config(group);
    c.set("metrics.port", "0");
    c.set("metrics.bind", "127.0.0.1");
    c.set("metrics.statistics_interval_ms", "200");
    return c;
  }
};

TEST_F(ConsumerMetrics, CountersMatchWhatTheHandlerSaw) {
  auto cfg = config("counted");
  cfg.set("dlq.topic", "{topic}.dead-letter");
  cfg.retry.max_attempts = 2;
  cfg.retry.backoff = 10ms;
  // Every 100th record fails for good (a PermanentError: dead at once, one
  // call), every 50th other one fails once and then succeeds.
  std::map<std::int64_t, int> calls;
  std::atomic<bool> scraped_mid_run{false};
  std::string mid_run;
  kc::Consumer* self = nullptr;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    const auto v = m.value().value_or(kc::Bytes{});
    const auto i = std::stoll(std::string(reinterpret_cast<const char*>(v.data()), v.size()).substr(1));
    if (i == 1500 && !scraped_mid_run) {
      // A scrape from another thread while records flow.
      std::thread t([&] { mid_run = kc::test::http_get(url(*self, "/metrics")).body; });
      t.join();
      scraped_mid_run = true;
    }
    if (i % 100 == 0) {
      throw kc::PermanentError("bad record");
    }
    if (i % 50 == 0 && ++calls[i] == 1) {
      return kc::Outcome::retry;
    }
    return kc::Outcome::done;
  });
  self = &c;
  ASSERT_NE(c.metrics_port(), 0);
  const auto ready_before = kc::test::http_get(url(c, "/readyz"));
  EXPECT_EQ(ready_before.status, 503) << "not ready before run()";
  const auto r = c.run();
  ASSERT_EQ(r.reason, kc::StopReason::idle);

  const auto scrape = kc::test::http_get(url(c, "/metrics"));
  ASSERT_EQ(scrape.status, 200) << scrape.error;
  EXPECT_NE(scrape.content_type.find("text/plain"), std::string::npos);
  const auto s = kc::metrics::parse(scrape.body);
  const std::map<std::string, std::string> topic{{"topic", "orders"}};
  constexpr double dead = kRecords / 100;
  constexpr double retried_once = kRecords / 50 - kRecords / 100;
  EXPECT_EQ(kc::metrics::sum(s, "kc_messages_processed_total", topic), kRecords - dead);
  EXPECT_EQ(kc::metrics::sum(s, "kc_messages_dead_lettered_total", topic), dead);
  EXPECT_EQ(kc::metrics::sum(s, "kc_messages_retried_total", topic), retried_once);
  EXPECT_EQ(kc::metrics::sum(s, "kc_messages_failed_total", topic), retried_once + dead);
  EXPECT_EQ(kc::metrics::sum(s, "kc_messages_consumed_total", topic), kRecords + retried_once);
  EXPECT_EQ(static_cast<std::uint64_t>(kc::metrics::sum(s, "kc_messages_consumed_total")), r.stats.consumed);
  EXPECT_EQ(kc::metrics::sum(s, "kc_processing_seconds_count", topic), kRecords + retried_once);
  EXPECT_EQ(kc::metrics::sum(s, "kc_end_to_end_latency_seconds_count", topic), kRecords + retried_once);
  EXPECT_GE(kc::metrics::sum(s, "kc_rebalances_total", {{"event", "assign"}}), 1);
  EXPECT_EQ(kc::metrics::sum(s, "kc_commits_total"), static_cast<double>(r.stats.commits_ok));
  EXPECT_GE(r.stats.commits_ok, 1u);
  for (int p = 0; p < kPartitions; ++p) {
    // The final commit is acknowledged before run() returns; the revoke in
    // close() drops the partitions' series: the gauge survives only when
    // the partition is still assigned, so read the run's own numbers.
    EXPECT_EQ(r.stats.committed.at({"orders", kc::Partition{p}}), kc::Offset{kRecords / kPartitions});
  }
  // Mid-run: counters under way, the partitions assigned, their committed
  // offsets and lag (from librdkafka's statistics) present.
  ASSERT_TRUE(scraped_mid_run);
  const auto mid = kc::metrics::parse(mid_run);
  EXPECT_GT(kc::metrics::sum(mid, "kc_messages_processed_total", topic), 0);
  EXPECT_LT(kc::metrics::sum(mid, "kc_messages_processed_total", topic), kRecords);
  EXPECT_EQ(kc::metrics::sum(mid, "kc_assigned_partitions"), kPartitions);
  // The liveness check after the run: the loop ended.
  const auto live_after = kc::test::http_get(url(c, "/healthz"));
  EXPECT_EQ(live_after.status, 503);
  EXPECT_NE(live_after.body.find("ended"), std::string::npos) << live_after.body;
}

TEST_F(ConsumerMetrics, CommittedOffsetAndLagPerPartitionWhileAssigned) {
  auto cfg = config("lagging");
  cfg.commit.every_messages = 100;
  std::atomic<int> seen{0};
  // Slow enough (~1.5 s in all) for librdkafka's statistics (every 200 ms)
  // and the commits to show mid-run.
  kc::Consumer c(cfg, [&](const kc::Message&) {
    ++seen;
    std::this_thread::sleep_for(500us);
    return kc::Outcome::done;
  });
  std::vector<kc::metrics::Sample> mid;
  std::thread watcher([&] {
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline && seen < kRecords) {
      auto s = kc::metrics::parse(kc::test::http_get(url(c, "/metrics")).body);
      if (kc::metrics::sum(s, "kc_partition_lag") > 0 && kc::metrics::sum(s, "kc_partition_committed_offset") > 0 &&
          kc::metrics::sum(s, "kc_partition_high_watermark") == kRecords) {
        mid = std::move(s);
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  const auto r = c.run();
  watcher.join();
  ASSERT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(r.stats.done, static_cast<std::uint64_t>(kRecords));
  ASSERT_FALSE(mid.empty()) << "no scrape showed committed offsets, high watermarks and lag mid-run";
  for (int p = 0; p < kPartitions; ++p) {
    const std::map<std::string, std::string> tp{{"topic", "orders"}, {"partition", std::to_string(p)}};
    EXPECT_EQ(kc::metrics::sum(mid, "kc_partition_high_watermark", tp), kRecords / kPartitions);
    const auto lag = kc::metrics::sum(mid, "kc_partition_lag", tp);
    EXPECT_GE(lag, 0);
    EXPECT_LE(lag, kRecords / kPartitions);
  }
}

TEST_F(ConsumerMetrics, LivenessFailsWhileThePollLoopIsBlockedAndRecovers) {
  auto cfg = config("blocked");
  cfg.set("health.max_poll_gap_ms", "500");
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;
  bool release = false;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    if (kc::to_int(m.offset()) == 10 && kc::to_int(m.partition()) == 0) {
      // The test hook: a handler that hangs on the poll thread.
      std::unique_lock lock(mu);
      blocked = true;
      cv.notify_all();
      cv.wait_for(lock, 20s, [&] { return release; });
    }
    return kc::Outcome::done;
  });
  kc::test::HttpResponse before, during, ready, after;
  std::thread probe([&] {
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, 20s, [&] { return blocked; });
    }
    ready = kc::test::http_get(url(c, "/readyz"));
    std::this_thread::sleep_for(1200ms);  // past the 500 ms limit
    during = kc::test::http_get(url(c, "/healthz"));
    {
      std::lock_guard lock(mu);
      release = true;
      cv.notify_all();
    }
    std::this_thread::sleep_for(500ms);
    after = kc::test::http_get(url(c, "/healthz"));
  });
  before = kc::test::http_get(url(c, "/healthz"));
  const auto r = c.run();
  probe.join();
  EXPECT_EQ(r.reason, kc::StopReason::idle);
  EXPECT_EQ(before.status, 200) << "a consumer that has not started is alive: " << before.body;
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(during.status, 503) << during.body;
  EXPECT_NE(during.body.find("poll loop has not run"), std::string::npos) << during.body;
  EXPECT_NE(during.body.find("max.poll.interval.ms"), std::string::npos) << during.body;
  EXPECT_EQ(after.status, 200) << after.body;
}

TEST_F(ConsumerMetrics, ApplicationMetricsShareTheEndpoint) {
  auto cfg = config("app");
  cfg.max_messages = 10;
  kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; });
  auto& written = c.metrics().counter("orders_written_total", "Orders written.", {"kind"});
  written.with({"placed"}).inc(7);
  const auto s = kc::metrics::parse(kc::test::http_get(url(c, "/metrics")).body);
  EXPECT_EQ(kc::metrics::sum(s, "orders_written_total", {{"kind", "placed"}}), 7);
}

TEST(ConsumerMetricsConfig, ABadPortNamesTheKey) {
  kc::ConsumerConfig c;
  try {
    c.set("metrics.port", "70000", "flag");
    FAIL() << "accepted port 70000";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.port"), std::string::npos) << e.what();
  }
}

TEST(ConsumerMetricsConfig, APortInUseIsAnErrorNamingIt) {
  kc::EmbeddedBroker broker(1);
  kc::ConsumerConfig cfg;
  cfg.bootstrap_servers = broker.bootstrap_servers();
  cfg.group = "g";
  cfg.topics = {"t"};
  cfg.set("metrics.port", "0");
  cfg.set("metrics.bind", "127.0.0.1");
  kc::Consumer first(cfg, [](const kc::Message&) { return kc::Outcome::done; });
  cfg.set("metrics.port", std::to_string(first.metrics_port()));
  try {
    kc::Consumer second(cfg, [](const kc::Message&) { return kc::Outcome::done; });
    FAIL() << "a second endpoint on the same port started";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.port"), std::string::npos) << e.what();
  }
}

}  // namespace
