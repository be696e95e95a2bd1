// kc::Producer against librdkafka's mock cluster: delivery reports as
// callbacks (in offset order, on the delivery thread) and as futures (no
// polling), the bounded queue (error or block), flush and close with the
// broker down, the defaults and their overrides, null versus empty bytes.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/producer.hpp"
#include "support/records.hpp"

namespace {

using namespace std::chrono_literals;

kc::Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

kc::ProducerConfig config(const kc::EmbeddedBroker& broker, std::map<std::string, std::string> props = {}) {
  kc::ProducerConfig c;
  c.bootstrap_servers = broker.bootstrap_servers();
  c.librdkafka = std::move(props);
  return c;
}

TEST(Producer, CallbacksGetOffsetsInOrderPerPartitionOnTheDeliveryThread) {
  kc::EmbeddedBroker broker;
  broker.create_topic("t", 3);
  constexpr int kRecords = 300;
  std::mutex mu;
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;
  std::vector<std::int32_t> failures;
  std::thread::id callback_thread;
  {
    kc::Producer p(config(broker));
    for (int i = 0; i < kRecords; ++i) {
      const auto v = std::to_string(i);
      p.produce({"t", std::nullopt, bytes(v), i % 3}, [&](const kc::DeliveryReport& r) {
        const std::lock_guard lock(mu);
        callback_thread = std::this_thread::get_id();
        if (!r.ok() || r.topic != "t") {
          failures.push_back(r.error);
        }
        offsets[r.partition].push_back(r.offset);
      });
    }
    ASSERT_TRUE(p.flush(10s));
    EXPECT_EQ(p.in_flight(), 0u);
    EXPECT_EQ(p.stats().delivered, static_cast<std::uint64_t>(kRecords));
  }
  const std::lock_guard lock(mu);
  EXPECT_TRUE(failures.empty());
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  ASSERT_EQ(offsets.size(), 3u);
  for (const auto& [partition, got] : offsets) {
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kRecords / 3)) << "partition " << partition;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i], static_cast<std::int64_t>(i)) << "partition " << partition;
    }
  }
}

TEST(Producer, FuturesCompleteWithoutPolling) {
  kc::ProducerConfig c;  // no brokers: the producer's own embedded broker
  kc::Producer p(c);
  EXPECT_FALSE(p.bootstrap_servers().empty());
  std::vector<std::future<kc::DeliveryReport>> futures;
  for (int i = 0; i < 10; ++i) {
    futures.push_back(p.send({"f", bytes("k"), bytes(std::to_string(i)), 0}));
  }
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_EQ(futures[i].wait_for(10s), std::future_status::ready) << i;
    const auto r = futures[i].get();
    EXPECT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "f");
    EXPECT_EQ(r.partition, 0);
    EXPECT_EQ(r.offset, static_cast<std::int64_t>(i));
  }
}

TEST(Producer, ProduceIsSafeFromManyThreads) {
  kc::EmbeddedBroker broker;
  broker.create_topic("m", 4);
  kc::Producer p(config(broker));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&p, t] {
      for (int i = 0; i < 250; ++i) {
        const auto v = std::to_string(t * 1000 + i);
        p.produce("m", bytes(v), bytes(v));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  ASSERT_TRUE(p.flush(10s));
  EXPECT_EQ(p.stats().delivered, 1000u);
  EXPECT_EQ(p.stats().failed, 0u);
}

TEST(Producer, QueueFullWithErrorFailsAtOnceNamingTheSetting) {
  kc::EmbeddedBroker broker;
  broker.create_topic("q", 1);
  auto c = config(broker, {{"queue.buffering.max.messages", "1"}, {"linger.ms", "500"}});
  c.on_queue_full = kc::QueueFull::error;
  kc::Producer p(c);
  p.produce("q", std::nullopt, bytes("first"));  // fills the queue: it waits for linger.ms
  std::error_code ec;
  p.produce({"q", std::nullopt, bytes("second")}, {}, ec);
  EXPECT_EQ(ec, kc::errc::queue_full);
  try {
    p.produce("q", std::nullopt, bytes("third"));
    FAIL() << "no error";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::queue_full);
    EXPECT_TRUE(e.retriable());
    EXPECT_NE(std::string(e.what()).find("queue.buffering.max.messages=1"), std::string::npos) << e.what();
  }
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(p.stats().delivered, 1u);  // the refused ones were never enqueued
  EXPECT_EQ(p.in_flight(), 0u);
}

TEST(Producer, QueueFullWithBlockWaitsForRoomAndSucceeds) {
  kc::EmbeddedBroker broker;
  broker.create_topic("b", 1);
  kc::Producer p(config(broker, {{"queue.buffering.max.messages", "1"}, {"linger.ms", "1"}}));  // block: the default
  for (int i = 0; i < 50; ++i) {
    p.produce("b", std::nullopt, bytes(std::to_string(i)));
  }
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(p.stats().delivered, 50u);
}

TEST(Producer, QueueFullWithBlockGivesUpAfterTheTimeout) {
  kc::EmbeddedBroker broker;
  broker.create_topic("b", 1);
  auto c = config(broker, {{"queue.buffering.max.messages", "1"}, {"linger.ms", "2000"}});
  c.queue_full_timeout = 200ms;
  c.close_timeout = 0ms;
  kc::Producer p(c);
  p.produce("b", std::nullopt, bytes("first"));
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  p.produce({"b", std::nullopt, bytes("second")}, {}, ec);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ec, kc::errc::queue_full);
  EXPECT_GE(waited, 190ms);
  EXPECT_LT(waited, 1500ms);
}

TEST(Producer, FlushReturnsFalseWhileTheBrokerIsDownAndCloseFailsTheRest) {
  kc::EmbeddedBroker broker;
  broker.create_topic("d", 1);
  auto* mock = static_cast<rd_kafka_mock_cluster_t*>(broker.raw());
  std::vector<std::future<kc::DeliveryReport>> futures;
  int callbacks = 0;
  std::optional<kc::DeliveryReport> last;
  {
    auto c = config(broker);
    c.close_timeout = 300ms;
    kc::Producer p(c);
    ASSERT_TRUE(p.send({"d", std::nullopt, bytes("up")}).get().ok());  // connected, metadata known
    rd_kafka_mock_broker_set_down(mock, 1);
    for (int i = 0; i < 5; ++i) {
      futures.push_back(p.send({"d", std::nullopt, bytes("down")}));
    }
    p.produce({"d", std::nullopt, bytes("down")}, [&](const kc::DeliveryReport& r) {
      ++callbacks;
      last = r;
    });
    EXPECT_FALSE(p.flush(500ms));
    EXPECT_EQ(p.in_flight(), 6u);
  }  // waits close_timeout, then purges: every record gets its failed report
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    const auto r = f.get();
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(r.error == -152 || r.error == -151) << r.error << " " << r.message;  // _PURGE_QUEUE / _PURGE_INFLIGHT
    EXPECT_EQ(r.offset, -1);
    EXPECT_FALSE(r.message.empty());
  }
  EXPECT_EQ(callbacks, 1);
  ASSERT_TRUE(last);
  EXPECT_FALSE(last->ok());
}

TEST(Producer, DefaultsAreInEffect) {
  kc::EmbeddedBroker broker;
  kc::Producer p(config(broker));
  EXPECT_EQ(p.config_value("enable.idempotence"), "true");
  const auto acks = p.config_value("acks");
  EXPECT_TRUE(acks == "all" || acks == "-1") << acks;
  EXPECT_EQ(p.config_value("compression.type"), "lz4");
  EXPECT_EQ(p.config_value("linger.ms"), "5");
  EXPECT_EQ(p.config_value("batch.size"), "65536");
  EXPECT_THROW(p.config_value("no.such.property"), kc::Error);
}

TEST(Producer, UserSettingsWinOverTheDefaults) {
  kc::EmbeddedBroker broker;
  broker.create_topic("o", 1);
  kc::Producer p(config(broker, {{"acks", "1"}, {"linger.ms", "20"}, {"compression.type", "none"}}));
  EXPECT_EQ(p.config_value("acks"), "1");
  EXPECT_EQ(p.config_value("enable.idempotence"), "false");  // needs acks=all: off with the user's acks
  EXPECT_EQ(p.config_value("linger.ms"), "20");
  EXPECT_EQ(p.config_value("compression.type"), "none");
  EXPECT_TRUE(p.send({"o", std::nullopt, bytes("v")}).get().ok());
}

TEST(Producer, ABadPropertyIsAnErrorNamingTheKey) {
  kc::EmbeddedBroker broker;
  try {
    kc::Producer p(config(broker, {{"no.such.key", "1"}}));
    FAIL() << "no error";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::config_unknown_key);
    EXPECT_NE(std::string(e.what()).find("no.such.key"), std::string::npos) << e.what();
  }
  try {
    kc::Producer p(config(broker, {{"linger.ms", "soon"}}));
    FAIL() << "no error";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::config_invalid_value);
    EXPECT_NE(std::string(e.what()).find("linger.ms"), std::string::npos) << e.what();
  }
}

TEST(Producer, KeepsEmptyAndNullKeysValuesAndHeadersApart) {
  kc::EmbeddedBroker broker;
  broker.create_topic("n", 1);
  const std::vector<kc::ProducerHeader> headers{{"empty", std::string()}, {"null", std::nullopt}, {"x", "y"}};
  {
    kc::Producer p(config(broker));
    p.produce({"n", std::nullopt, std::nullopt, 0, headers});
    p.produce({"n", bytes(""), bytes(""), 0});
    p.produce({"n", std::nullopt, bytes(""), 0});
    p.produce({"n", bytes(""), std::nullopt, 0});
    p.produce({"n", bytes("k"), bytes("v"), 0});
    ASSERT_TRUE(p.flush(10s));
    ASSERT_EQ(p.stats().delivered, 5u);
  }
  const auto got = kc::test::read_topic(broker.bootstrap_servers(), "n");
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].key, std::nullopt);
  EXPECT_EQ(got[0].value, std::nullopt);
  ASSERT_EQ(got[0].headers.size(), 3u);
  EXPECT_EQ(got[0].headers[0], kc::test::Header("empty", std::string()));
  EXPECT_EQ(got[0].headers[1], kc::test::Header("null", std::nullopt));
  EXPECT_EQ(got[0].headers[2], kc::test::Header("x", "y"));
  EXPECT_EQ(got[1].key, std::string());
  EXPECT_EQ(got[1].value, std::string());
  EXPECT_EQ(got[2].key, std::nullopt);
  EXPECT_EQ(got[2].value, std::string());
  EXPECT_EQ(got[3].key, std::string());
  EXPECT_EQ(got[3].value, std::nullopt);
  EXPECT_EQ(got[4].key, "k");
  EXPECT_EQ(got[4].value, "v");
  EXPECT_TRUE(got[4].headers.empty());
}

}  // namespace
