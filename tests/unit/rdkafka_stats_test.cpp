// detail::RdkafkaStats on statistics JSON captured from librdkafka 2.14 (a
// consumer of a 3-partition topic on the mock cluster, trimmed of the
// request counters and window stats kc does not read): assigned, with one
// partition committed; then the same client after unsubscribe.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "kc/metrics.hpp"
#include "metrics/rdkafka_stats.hpp"

namespace kc::detail {
namespace {

using metrics::Sample;

std::string data(const std::string& name) {
  std::ifstream in(std::string(KC_TEST_DATA_DIR) + "/" + name);
  EXPECT_TRUE(in) << "cannot read " << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The samples of `name` whose labels include `match`.
std::vector<Sample> series(const metrics::Registry& r, const std::string& name,
                           const std::map<std::string, std::string>& match = {}) {
  std::vector<Sample> out;
  for (auto& s : metrics::parse(r.render())) {
    bool all = s.name == name;
    for (const auto& [k, v] : match) {
      all = all && s.labels.contains(k) && s.labels.at(k) == v;
    }
    if (all) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

double value(const metrics::Registry& r, const std::string& name,
             const std::map<std::string, std::string>& match = {}) {
  const auto s = series(r, name, match);
  EXPECT_EQ(s.size(), 1u) << name << " has " << s.size() << " matching series in\n" << r.render();
  return s.empty() ? -1 : s.front().value;
}

// `json` with partition `p` of the sample revoked: not desired, fetch stopped.
std::string with_partition_stopped(std::string json, int p) {
  const auto at = json.find("\"partition\": " + std::to_string(p) + ",");
  EXPECT_NE(at, std::string::npos);
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto i = json.find(from, at);
    EXPECT_NE(i, std::string::npos) << from;
    json.replace(i, from.size(), to);
  };
  replace("\"desired\": true", "\"desired\": false");
  replace("\"fetch_state\": \"active\"", "\"fetch_state\": \"stopped\"");
  return json;
}

TEST(RdkafkaStats, PublishesLagHighWatermarkFetchQueueAndRtt) {
  metrics::Registry r;
  RdkafkaStats stats(r);
  stats.publish(data("rdkafka_stats_assigned.json"));

  // Partition 0 has a committed offset (50 of 100); 1 and 2 have none, so
  // no lag (librdkafka says -1) but a high watermark.
  EXPECT_EQ(value(r, "kc_partition_lag", {{"topic", "orders"}, {"partition", "0"}}), 50);
  EXPECT_TRUE(series(r, "kc_partition_lag", {{"partition", "1"}}).empty());
  EXPECT_TRUE(series(r, "kc_partition_lag", {{"partition", "2"}}).empty());
  for (const auto* p : {"0", "1", "2"}) {
    EXPECT_EQ(value(r, "kc_partition_high_watermark", {{"topic", "orders"}, {"partition", p}}), 100) << p;
  }
  // fetchq_cnt is the shared consumer queue: one gauge.
  EXPECT_EQ(value(r, "kc_librdkafka_fetch_queue_messages"), 250);
  // The UA partition -1 is never exported.
  EXPECT_EQ(series(r, "kc_partition_high_watermark").size(), 3u);

  // rtt avg is in microseconds.
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "127.0.0.1:46531/2"}}), 51e-6);
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "127.0.0.1:33527/1"}}), 58e-6);
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "GroupCoordinator"}}), 0.50025);

  EXPECT_EQ(value(r, "kc_librdkafka_replyq"), 0);
  EXPECT_EQ(value(r, "kc_librdkafka_rx_messages_total"), 300);
  EXPECT_EQ(value(r, "kc_librdkafka_rx_bytes_total"), 5164);
  EXPECT_EQ(value(r, "kc_librdkafka_tx_requests_total"), 23);
}

TEST(RdkafkaStats, CountersGrowByLibrdkafkasDifference) {
  metrics::Registry r;
  RdkafkaStats stats(r);
  stats.publish(data("rdkafka_stats_assigned.json"));
  stats.publish(data("rdkafka_stats_assigned.json"));  // nothing new
  EXPECT_EQ(value(r, "kc_librdkafka_tx_requests_total"), 23);
  stats.publish(data("rdkafka_stats_revoked.json"));
  EXPECT_EQ(value(r, "kc_librdkafka_rx_messages_total"), 300);
  EXPECT_EQ(value(r, "kc_librdkafka_rx_bytes_total"), 5556);
  EXPECT_EQ(value(r, "kc_librdkafka_tx_requests_total"), 26);
}

TEST(RdkafkaStats, RevokedPartitionsAreRemoved) {
  metrics::Registry r;
  RdkafkaStats stats(r);
  const auto assigned = data("rdkafka_stats_assigned.json");
  stats.publish(assigned);
  ASSERT_EQ(series(r, "kc_partition_high_watermark").size(), 3u);

  stats.publish(with_partition_stopped(with_partition_stopped(assigned, 0), 2));
  EXPECT_TRUE(series(r, "kc_partition_lag").empty());  // only partition 0 had one
  const auto hw = series(r, "kc_partition_high_watermark");
  ASSERT_EQ(hw.size(), 1u) << r.render();
  EXPECT_EQ(hw[0].labels.at("partition"), "1");

  // After unsubscribe librdkafka still lists every partition, "stopped".
  stats.publish(data("rdkafka_stats_revoked.json"));
  EXPECT_TRUE(series(r, "kc_partition_high_watermark").empty()) << r.render();
  EXPECT_EQ(value(r, "kc_librdkafka_fetch_queue_messages"), 0) << "no partition fetched";
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "GroupCoordinator"}}), 57e-6);

  // Assigned again: back.
  stats.publish(assigned);
  EXPECT_EQ(series(r, "kc_partition_high_watermark").size(), 3u);
  EXPECT_EQ(value(r, "kc_partition_lag", {{"partition", "0"}}), 50);
}

TEST(RdkafkaStats, SkipsInternalBrokersAndKeepsRttThroughAWindowWithoutSamples) {
  metrics::Registry r;
  RdkafkaStats stats(r);
  const auto sample = [](int cnt, bool with_b) {
    std::string s = R"({"replyq": 3, "brokers": {
      ":0/internal": {"name": ":0/internal", "source": "internal", "rtt": {"avg": 9, "cnt": 5}},
      "a:9092/1": {"name": "a:9092/1", "source": "learned", "rtt": {"avg": 2000, "cnt": )" +
                    std::to_string(cnt) + "}}";
    if (with_b) {
      s += R"(, "b:9092/2": {"name": "b:9092/2", "source": "learned", "rtt": {"avg": 0, "cnt": 0}})";
    }
    return s + "}}";
  };
  stats.publish(sample(4, true));
  EXPECT_EQ(value(r, "kc_librdkafka_replyq"), 3);
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "a:9092/1"}}), 0.002);
  EXPECT_EQ(series(r, "kc_librdkafka_broker_rtt_seconds").size(), 1u) << r.render();  // no internal, no b
  stats.publish(sample(0, true));  // no request in this window: keep the last value
  EXPECT_DOUBLE_EQ(value(r, "kc_librdkafka_broker_rtt_seconds", {{"broker", "a:9092/1"}}), 0.002);
  stats.publish(R"({"brokers": {}})");  // the broker is gone
  EXPECT_TRUE(series(r, "kc_librdkafka_broker_rtt_seconds").empty());
}

TEST(RdkafkaStats, MalformedJsonChangesNothingThrowsNothingAndWarnsOnce) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  spdlog::set_default_logger(logger);

  metrics::Registry r;
  RdkafkaStats stats(r);
  const auto assigned = data("rdkafka_stats_assigned.json");
  stats.publish(assigned);
  const auto before = r.render();
  EXPECT_NO_THROW(stats.publish("{not json"));
  EXPECT_NO_THROW(stats.publish(assigned.substr(0, assigned.size() / 2)));  // truncated
  EXPECT_NO_THROW(stats.publish(""));
  EXPECT_NO_THROW(stats.publish("[1, 2]"));
  EXPECT_EQ(r.render(), before);

  // Wrong types inside a valid document are skipped field by field.
  EXPECT_NO_THROW(stats.publish(R"({"replyq": "x", "topics": {"t": {"partitions": {"0": 7}}}, "brokers": []})"));

  spdlog::set_default_logger(previous);
  const auto text = log.str();
  std::size_t warnings = 0;
  for (auto at = text.find("not understood"); at != std::string::npos; at = text.find("not understood", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << text;
}

}  // namespace
}  // namespace kc::detail
