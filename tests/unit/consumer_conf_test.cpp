// src/source/conf: the librdkafka configuration kc builds for a consumer, as
// a pure function. The last test hands every property to librdkafka itself,
// so a misspelt key or a value librdkafka refuses fails here, not at run().
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <string>

#include "rdkafka/handles.hpp"
#include "source/conf.hpp"

namespace kc::detail {
namespace {

ConsumerConfig base() {
  ConsumerConfig c;
  c.group = "g";
  c.topics = {"t"};
  return c;
}

// Where `key` is set first, and last.
std::size_t first_position(const ConfList& l, std::string_view key) {
  const auto it = std::find_if(l.begin(), l.end(), [&](const auto& kv) { return kv.first == key; });
  return static_cast<std::size_t>(it - l.begin());
}
std::size_t last_position(const ConfList& l, std::string_view key) {
  const auto it = std::find_if(l.rbegin(), l.rend(), [&](const auto& kv) { return kv.first == key; });
  return it == l.rend() ? l.size() : static_cast<std::size_t>(l.rend() - it - 1);
}

TEST(ConsumerConf, DefaultsAreKcsChoices) {
  const auto l = consumer_conf(base(), "127.0.0.1:9092");
  EXPECT_EQ(conf_value(l, "bootstrap.servers"), "127.0.0.1:9092");
  EXPECT_EQ(conf_value(l, "group.id"), "g");
  EXPECT_EQ(conf_value(l, "auto.offset.reset"), "latest");
  EXPECT_EQ(conf_value(l, "partition.assignment.strategy"), "cooperative-sticky");
  EXPECT_EQ(conf_value(l, "fetch.queue.backoff.ms"), "10");
  EXPECT_EQ(conf_value(l, "fetch.wait.max.ms"), "100");
  EXPECT_EQ(conf_value(l, "isolation.level"), "read_committed");
  EXPECT_EQ(conf_value(l, "statistics.interval.ms"), "5000");
  EXPECT_EQ(conf_value(l, "enable.auto.commit"), "false");
  EXPECT_EQ(conf_value(l, "enable.auto.offset.store"), "false");
  EXPECT_EQ(conf_value(l, "log.queue"), "true");
  EXPECT_EQ(conf_value(l, "max.poll.interval.ms"), std::nullopt);  // librdkafka's default
}

TEST(ConsumerConf, FromBeginningResetsToEarliest) {
  auto c = base();
  c.from_beginning = true;
  EXPECT_EQ(conf_value(consumer_conf(c, "b"), "auto.offset.reset"), "earliest");
}

TEST(ConsumerConf, NoStatisticsWhenTheirIntervalIsZero) {
  auto c = base();
  c.metrics.statistics_interval = std::chrono::milliseconds(0);
  EXPECT_EQ(conf_value(consumer_conf(c, "b"), "statistics.interval.ms"), std::nullopt);
}

TEST(ConsumerConf, Kip848GetsNoClientSideAssignor) {
  auto c = base();
  c.librdkafka["group.protocol"] = "consumer";
  const auto l = consumer_conf(c, "b");
  EXPECT_EQ(conf_value(l, "partition.assignment.strategy"), std::nullopt);
  EXPECT_EQ(conf_value(l, "group.protocol"), "consumer");
}

TEST(ConsumerConf, TheUsersStrategyIsTheOnlyOneSet) {
  auto c = base();
  c.librdkafka["partition.assignment.strategy"] = "range,roundrobin";
  const auto l = consumer_conf(c, "b");
  EXPECT_EQ(
      std::count_if(l.begin(), l.end(), [](const auto& kv) { return kv.first == "partition.assignment.strategy"; }), 1);
  EXPECT_EQ(conf_value(l, "partition.assignment.strategy"), "range,roundrobin");
}

TEST(ConsumerConf, TheUserOverridesDefaultsButNotWhatKcOwns) {
  auto c = base();
  c.librdkafka["fetch.wait.max.ms"] = "500";
  c.librdkafka["isolation.level"] = "read_uncommitted";
  c.librdkafka["max.poll.interval.ms"] = "10000";
  c.librdkafka["log.queue"] = "false";
  const auto l = consumer_conf(c, "b");
  EXPECT_EQ(conf_value(l, "fetch.wait.max.ms"), "500");
  EXPECT_EQ(conf_value(l, "isolation.level"), "read_uncommitted");
  EXPECT_EQ(conf_value(l, "max.poll.interval.ms"), "10000");
  EXPECT_EQ(conf_value(l, "log.queue"), "true");
  // What kc owns comes after everything the user set.
  for (const auto* owned : {"enable.auto.commit", "enable.auto.offset.store", "log.queue"}) {
    for (const auto& [k, v] : c.librdkafka) {
      EXPECT_GT(last_position(l, owned), first_position(l, k)) << owned << " before " << k;
    }
  }
}

TEST(ConsumerConf, LibrdkafkaAcceptsEveryProperty) {
  auto c = base();
  c.from_beginning = true;
  c.librdkafka["max.poll.interval.ms"] = "10000";
  for (const bool kip848 : {false, true}) {
    if (kip848) {
      c.librdkafka["group.protocol"] = "consumer";
    }
    ConfPtr conf(rd_kafka_conf_new());
    for (const auto& [k, v] : consumer_conf(c, "127.0.0.1:9092")) {
      EXPECT_NO_THROW(conf_set(conf.get(), k, v)) << k << "=" << v;
    }
    char buf[64];
    std::size_t size = sizeof buf;
    ASSERT_EQ(rd_kafka_conf_get(conf.get(), "enable.auto.commit", buf, &size), RD_KAFKA_CONF_OK);
    EXPECT_STREQ(buf, "false");
  }
}

}  // namespace
}  // namespace kc::detail
