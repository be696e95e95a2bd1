// `kc top` against a kc::metrics::Server in the test process holding known
// values (no broker): the view's rates, totals, latency and partition rows,
// and an endpoint that cannot be scraped.
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>
#include <string>
#include <vector>

#include "kc/metrics.hpp"
#include "support/common.hpp"
#include "support/kc_tool.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using metrics::Health;
using metrics::Registry;
using metrics::Server;

// A registry with the consumer's metric names; every scrape (render) adds
// 100 to kc_messages_processed_total{topic="orders"}.
void fill(Registry& r) {
  auto& consumed = r.counter("kc_messages_consumed_total", "c", {"topic"});
  consumed.with({"orders"}).inc(1200);
  consumed.with({"payments"}).inc(34);
  auto& processed = r.counter("kc_messages_processed_total", "p", {"topic"}).with({"orders"});
  processed.inc(1000);
  r.on_collect([&processed] { processed.inc(100); });
  r.counter("kc_messages_failed_total", "f", {"topic"}).with({"orders"}).inc(3);
  r.counter("kc_messages_retried_total", "r", {"topic"}).with({"orders"}).inc(7);
  r.counter("kc_messages_dead_lettered_total", "d", {"topic"}).with({"payments"}).inc(2);
  auto& latency = r.histogram("kc_processing_seconds", "l", metrics::latency_buckets(), {"topic"}).with({"orders"});
  for (int i = 0; i < 100; ++i) {
    latency.observe(0.003);  // all in (0.0025, 0.005]: p50 interpolates to 3.75 ms
  }
  r.gauge("kc_in_flight", "i").with().set(5);
  r.gauge("kc_paused_partitions", "p").with().set(1);
  r.gauge("kc_assigned_partitions", "a").with().set(4);
  auto& rebalances = r.counter("kc_rebalances_total", "r", {"event"});
  rebalances.with({"assign"}).inc(2);
  rebalances.with({"revoke"}).inc(1);
  r.counter("kc_commits_total", "c").with().inc(42);
  r.counter("kc_commit_failures_total", "c").with().inc(1);
  auto& committed = r.gauge("kc_partition_committed_offset", "c", {"topic", "partition"});
  auto& hw = r.gauge("kc_partition_high_watermark", "h", {"topic", "partition"});
  auto& lag = r.gauge("kc_partition_lag", "l", {"topic", "partition"});
  struct P {
    const char* topic;
    const char* partition;
    double committed, hw, lag;
  };
  for (const auto& p : std::vector<P>{{"orders", "10", 1, 2, 1},
                                      {"payments", "2", 5, 9, 4},
                                      {"orders", "0", 100, 150, 50},
                                      {"orders", "2", 10, 10, 0}}) {
    committed.with({p.topic, p.partition}).set(p.committed);
    hw.with({p.topic, p.partition}).set(p.hw);
    lag.with({p.topic, p.partition}).set(p.lag);
  }
}

Server::Options loopback(std::uint16_t port = 0) {
  Server::Options o;
  o.bind = "127.0.0.1";
  o.port = port;
  return o;
}

// The views in non-terminal output: each starts with "kc top" and ends
// with a blank line.
std::vector<std::string> views(const std::string& out) {
  std::vector<std::string> v;
  for (auto at = out.find("kc top"); at != std::string::npos;) {
    const auto next = out.find("kc top", at + 1);
    v.push_back(out.substr(at, next == std::string::npos ? std::string::npos : next - at));
    at = next;
  }
  return v;
}

// The whitespace-separated words of the line of `view` that starts with `start`.
std::vector<std::string> line_words(const std::string& view, const std::string& start) {
  std::istringstream in(view);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(start, 0) == 0) {
      std::istringstream words(line);
      std::vector<std::string> out;
      for (std::string w; words >> w;) {
        out.push_back(w);
      }
      return out;
    }
  }
  return {};
}

TEST(TopTool, ShowsRatesTotalsLatencyAndPartitions) {
  Registry registry;
  fill(registry);
  Server server(loopback(), registry, nullptr, nullptr);
  TempDir dir("kc-top");
  const auto url = "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics";
  const auto r = run_tool(dir, {"top", "--metrics-url", url, "--iterations", "2", "--interval-ms", "200"}, 30s);
  ASSERT_TRUE(r.status.ok()) << describe(r);
  const auto v = views(r.out);
  ASSERT_EQ(v.size(), 2u) << describe(r);
  EXPECT_NE(r.out.find("\n\nkc top"), std::string::npos) << "views are separated by a blank line" << describe(r);

  // First view: totals, no rates yet (one scrape).
  EXPECT_EQ(line_words(v[0], "throughput").at(1), "-") << v[0];
  EXPECT_EQ(line_words(v[0], "processed "), (std::vector<std::string>{"processed", "1100", "-", "-"})) << v[0];
  EXPECT_EQ(line_words(v[0], "consumed"), (std::vector<std::string>{"consumed", "1234", "-", "-"})) << v[0];

  // Second view: processed grew by exactly 100 in about 0.2 s.
  const auto processed = line_words(v[1], "processed ");
  ASSERT_EQ(processed.size(), 4u) << v[1];
  EXPECT_EQ(processed[1], "1200");
  EXPECT_EQ(processed[2], "+100");
  const double rate = std::stod(processed[3]);
  EXPECT_GT(rate, 50);
  EXPECT_LE(rate, 500.05) << "scrapes are at least 200 ms apart";
  EXPECT_EQ(line_words(v[1], "throughput").at(1), processed[3]) << "the headline is the processed rate\n" << v[1];
  EXPECT_EQ(line_words(v[1], "consumed"), (std::vector<std::string>{"consumed", "1234", "+0", "0.0"})) << v[1];
  EXPECT_EQ(line_words(v[1], "failed")[1], "3");
  EXPECT_EQ(line_words(v[1], "retried")[1], "7");
  EXPECT_EQ(line_words(v[1], "dead-lettered")[1], "2");

  EXPECT_NE(v[1].find("in flight 5   paused partitions 1   assigned partitions 4"), std::string::npos) << v[1];
  EXPECT_NE(v[1].find("rebalances 3 (assign 2, revoke 1, lost 0)   commits 42   commit failures 1"), std::string::npos)
      << v[1];
  // No observation in the interval: the percentiles come from all of them.
  EXPECT_NE(v[1].find("processing latency p50 3.75 ms"), std::string::npos) << v[1];
  EXPECT_NE(v[1].find("(since start)"), std::string::npos) << v[1];
  EXPECT_NE(v[1].find("total lag 55\n"), std::string::npos) << v[1];

  // Partition rows sorted by topic, then partition number (2 before 10).
  const auto header = v[1].find("TOPIC");
  ASSERT_NE(header, std::string::npos) << v[1];
  std::istringstream rows(v[1].substr(header));
  std::vector<std::vector<std::string>> table;
  for (std::string line; std::getline(rows, line) && !line.empty();) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) {
      w.push_back(x);
    }
    table.push_back(w);
  }
  ASSERT_EQ(table.size(), 5u) << v[1];
  EXPECT_EQ(table[1], (std::vector<std::string>{"orders", "0", "100", "150", "50"}));
  EXPECT_EQ(table[2], (std::vector<std::string>{"orders", "2", "10", "10", "0"}));
  EXPECT_EQ(table[3], (std::vector<std::string>{"orders", "10", "1", "2", "1"}));
  EXPECT_EQ(table[4], (std::vector<std::string>{"payments", "2", "5", "9", "4"}));
}

TEST(TopTool, UnreachableEndpointIsReportedAndExitsOne) {
  std::uint16_t port = 0;
  {
    Registry registry;
    Server gone(loopback(), registry, nullptr, nullptr);
    port = gone.port();
  }  // nothing listens there any more
  TempDir dir("kc-top");
  const auto url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  const auto r = run_tool(dir, {"top", "--metrics-url", url, "--iterations", "2", "--interval-ms", "100"}, 30s);
  EXPECT_EQ(r.status.code, 1) << describe(r);
  EXPECT_FALSE(r.status.signaled) << describe(r);
  const auto v = views(r.out);
  ASSERT_EQ(v.size(), 2u) << describe(r);
  for (const auto& view : v) {
    EXPECT_NE(view.find("scrape failed: GET " + url), std::string::npos) << view;
  }
  EXPECT_NE(r.err.find("every scrape failed"), std::string::npos) << describe(r);
}

TEST(TopTool, HttpErrorIsAFailedScrape) {
  Registry registry;
  Server server(loopback(), registry, nullptr, nullptr);
  TempDir dir("kc-top");
  const auto url = "http://127.0.0.1:" + std::to_string(server.port()) + "/nothing";
  const auto r = run_tool(dir, {"top", "--metrics-url", url, "--iterations", "1"}, 30s);
  EXPECT_EQ(r.status.code, 1) << describe(r);
  EXPECT_NE(r.out.find("HTTP 404"), std::string::npos) << describe(r);
}

}  // namespace
}  // namespace kc::test
