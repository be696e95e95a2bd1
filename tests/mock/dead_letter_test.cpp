// Dead letters on librdkafka's mock cluster: the dead-letter record keeps
// the original bytes and headers and carries the metadata headers; the
// failed record is committed only after its dead letter was acknowledged,
// also when the dead-letter topic cannot be written for a while.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/deadletter.hpp"
#include "kc/embedded.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "support/kafka.hpp"

namespace {

using namespace std::chrono_literals;

kc::Bytes bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

struct Record {
  int partition = -1;
  std::int64_t offset = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) {
        return v;
      }
    }
    return std::nullopt;
  }
};

std::vector<Record> read_all(const kc::EmbeddedBroker& broker, const std::string& topic, const std::string& group) {
  auto cfg = kc::test::mock_consumer_config(broker, group, topic);
  cfg.idle_exit = 1500ms;
  std::vector<Record> out;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    Record r{kc::to_int(m.partition()), kc::to_int(m.offset()), {}, {}, {}};
    if (m.key()) r.key = std::string(kc::as_text(*m.key()));
    if (m.value()) r.value = std::string(kc::as_text(*m.value()));
    const auto hs = m.headers();
    for (std::size_t i = 0; i < hs.size(); ++i) {
      const auto h = hs.at(i);
      r.headers.emplace_back(std::string(h.name),
                             h.value ? std::optional<std::string>(std::string(kc::as_text(*h.value))) : std::nullopt);
    }
    out.push_back(std::move(r));
    return kc::Outcome::done;
  });
  c.run();
  return out;
}

class DeadLetters : public kc::test::OneTopicOnMock {
 protected:
  static constexpr int kRecords = 400;

  DeadLetters() : OneTopicOnMock("src", 2, 1500ms) {}

  void SetUp() override {
    broker_.create_topic("src", 2);
    broker_.create_topic("src.dead-letter", 2);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < kRecords; ++i) {
      // Every 10th record is poison; keys and values carry bytes that are not UTF-8.
      const std::string key = std::string("k\xff", 2) + std::to_string(i);
      const std::string value = std::string("\x00\x01v", 3) + std::to_string(i);
      std::vector<std::pair<std::string, std::optional<std::string>>> headers = {{"trace", std::string("\x80\x81", 2)}};
      if (i % 10 == 0) {
        headers.emplace_back("poison", "1");
      }
      p.produce("src", bytes(key), bytes(value), i % 2, headers);
    }
    ASSERT_TRUE(p.flush(10s));
  }

  kc::ConsumerConfig config(const std::string& group) const {
    auto cfg = OneTopicOnMock::config(group);
    cfg.dead_letter.enabled = true;
    cfg.dead_letter.headers = kc::DeadLetterHeaders::both;
    return cfg;
  }

  static kc::Outcome poison_handler(const kc::Message& m) {
    const auto hs = m.headers();
    for (std::size_t i = 0; i < hs.size(); ++i) {
      if (hs.at(i).name == "poison") {
        throw kc::PermanentError("poison record at offset " + std::to_string(kc::to_int(m.offset())));
      }
    }
    return kc::Outcome::done;
  }
};

TEST_F(DeadLetters, KeepOriginalBytesAndCarryMetadata) {
  kc::Consumer c(config("dlq"), poison_handler);
  const auto r = c.run();
  EXPECT_EQ(r.stats.dead_lettered, static_cast<std::uint64_t>(kRecords / 10));
  EXPECT_EQ(r.stats.retried, 0u) << "permanent failures are not retried";

  const auto dead = read_all(broker_, "src.dead-letter", "reader");
  ASSERT_EQ(dead.size(), static_cast<std::size_t>(kRecords / 10));
  for (const auto& d : dead) {
    const auto source_offset = std::stoll(d.header(kc::kHeaderSourceOffset).value_or("-1"));
    const auto source_partition = std::stoi(d.header(kc::kHeaderSourcePartition).value_or("-1"));
    const int i = static_cast<int>(source_offset) * 2 + source_partition;  // record i went to partition i % 2
    EXPECT_EQ(i % 10, 0) << "only poison records are dead letters";
    EXPECT_EQ(d.partition, source_partition) << "same partition as the source when the topic has enough";
    EXPECT_EQ(d.key, std::string("k\xff", 2) + std::to_string(i));
    EXPECT_EQ(d.value, std::string("\x00\x01v", 3) + std::to_string(i));
    ASSERT_GE(d.headers.size(), 2u);
    EXPECT_EQ(d.headers[0].first, "trace");  // original headers first, byte for byte
    EXPECT_EQ(d.headers[0].second, std::string("\x80\x81", 2));
    EXPECT_EQ(d.headers[1].first, "poison");
    EXPECT_EQ(d.header(kc::kHeaderSourceTopic), "src");
    EXPECT_EQ(d.header(kc::kHeaderGroup), "dlq");
    EXPECT_EQ(d.header(kc::kHeaderErrorType), "kc::PermanentError");
    EXPECT_EQ(d.header(kc::kHeaderErrorMessage), "poison record at offset " + std::to_string(source_offset));
    EXPECT_EQ(d.header(kc::kHeaderAttempts), "1");
    const auto failed_at = d.header(kc::kHeaderFailedAt).value_or("");
    EXPECT_EQ(failed_at.size(), 24u) << failed_at;  // 2026-11-24T21:10:05.123Z
    EXPECT_EQ(failed_at.back(), 'Z');
    // Spring's set: binary big-endian partition (4 bytes) and offset (8 bytes).
    const auto sp = d.header(kc::kSpringOriginalPartition).value_or("");
    ASSERT_EQ(sp.size(), 4u);
    EXPECT_EQ(static_cast<unsigned char>(sp[3]), source_partition);
    const auto so = d.header(kc::kSpringOriginalOffset).value_or("");
    ASSERT_EQ(so.size(), 8u);
    std::int64_t decoded = 0;
    for (char ch : so) {
      decoded = decoded << 8 | static_cast<unsigned char>(ch);
    }
    EXPECT_EQ(decoded, source_offset);
    EXPECT_EQ(d.header(kc::kSpringExceptionFqcn), "kc::PermanentError");
  }
  const auto off = committed("dlq");
  EXPECT_EQ(off[0], kRecords / 2);
  EXPECT_EQ(off[1], kRecords / 2);
}

TEST_F(DeadLetters, RetriesThenDeadLettersWithAttemptCount) {
  auto cfg = config("dlq-retry");
  cfg.retry.max_attempts = 3;
  cfg.retry.backoff = 20ms;
  cfg.retry.backoff_max = 100ms;
  kc::Consumer c(cfg, [](const kc::Message& m) -> kc::Outcome {
    if (kc::to_int(m.offset()) == 7) {
      throw kc::RetriableError("still down (attempt " + std::to_string(m.attempt()) + ")");
    }
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.stats.retried, 4u);  // 2 partitions x 2 retries
  EXPECT_EQ(r.stats.dead_lettered, 2u);
  const auto dead = read_all(broker_, "src.dead-letter", "reader-retry");
  ASSERT_EQ(dead.size(), 2u);
  for (const auto& d : dead) {
    EXPECT_EQ(d.header(kc::kHeaderAttempts), "3");
    EXPECT_EQ(d.header(kc::kHeaderErrorType), "kc::RetriableError");
    EXPECT_EQ(d.header(kc::kHeaderErrorMessage), "still down (attempt 3)");
  }
}

TEST_F(DeadLetters, UnwritableTopicHoldsTheCommitPointUntilItRecovers) {
  auto* mock = static_cast<rd_kafka_mock_cluster_t*>(broker_.raw());
  // The next 20 produce requests are refused as if the topic were not
  // writable by us; librdkafka does not retry that error, kc must.
  constexpr std::int16_t kProduceApiKey = 0;
  std::vector<rd_kafka_resp_err_t> errors(20, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  rd_kafka_mock_push_request_errors_array(mock, kProduceApiKey, errors.size(), errors.data());

  auto cfg = config("dlq-outage");
  cfg.dead_letter.write_backoff = 100ms;
  cfg.dead_letter.write_backoff_max = 400ms;
  cfg.commit.interval = 100ms;
  std::vector<std::int64_t> committed_during_outage;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    if (kc::to_int(m.partition()) == 0 && kc::to_int(m.offset()) == 150) {
      // By now the dead letter of offset 0 has been failing for a while.
      committed_during_outage = committed("dlq-outage");
    }
    return poison_handler(m);
  });
  const auto r = c.run();
  ASSERT_EQ(committed_during_outage.size(), 2u);
  // Record i went to partition i % 2 and every 10th is poison, so all poison
  // records are in partition 0, the first at offset 0: nothing of partition 0
  // may be committed while its dead letter is refused. (Partition 1 has none
  // and may commit freely.)
  EXPECT_LE(committed_during_outage[0], 0);
  EXPECT_EQ(r.stats.dead_lettered, static_cast<std::uint64_t>(kRecords / 10));
  const auto dead = read_all(broker_, "src.dead-letter", "reader-outage");
  EXPECT_EQ(dead.size(), static_cast<std::size_t>(kRecords / 10)) << "every poison record is in the dead-letter topic";
  const auto off = committed("dlq-outage");
  EXPECT_EQ(off[0], kRecords / 2);
  EXPECT_EQ(off[1], kRecords / 2);
}

}  // namespace

namespace {

TEST(RetryTopics, FailedRecordsGoThroughRetryTopicsThenTheDeadLetterTopic) {
  kc::EmbeddedBroker broker(1);
  for (const auto* t : {"orders", "orders.retry.1", "orders.retry.2", "orders.dead-letter"}) {
    broker.create_topic(t, 1);
  }
  {
    kc::Producer p({broker.bootstrap_servers(), {}});
    for (int i = 0; i < 100; ++i) {
      const std::string v = "v" + std::to_string(i);
      p.produce("orders", std::nullopt, bytes(v), 0, {{"h", "x"}});
    }
    ASSERT_TRUE(p.flush(10s));
  }
  auto cfg = kc::test::mock_consumer_config(broker, "retry-topics", "orders");
  cfg.idle_exit = 2000ms;
  cfg.retry.use_topics = true;
  cfg.retry.max_attempts = 3;
  cfg.retry.backoff = 300ms;
  cfg.retry.jitter = 0;
  cfg.dead_letter.enabled = true;
  std::vector<std::string> order;   // values in handling order
  std::map<std::string, std::vector<int>> attempts;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    const std::string v(kc::as_text(*m.value()));
    attempts[v].push_back(m.attempt());
    if (v == "v10" && m.attempt() == 1) {
      throw std::runtime_error("once");  // succeeds on attempt 2, from orders.retry.1
    }
    if (v == "v20") {
      throw kc::RetriableError("always");  // attempts 1, 2, 3, then dead
    }
    order.push_back(v);
    return kc::Outcome::done;
  });
  const auto r = c.run();
  EXPECT_EQ(r.stats.retried, 3u);  // v10 once, v20 twice
  EXPECT_EQ(r.stats.dead_lettered, 1u);
  EXPECT_EQ(attempts["v10"], (std::vector<int>{1, 2}));
  EXPECT_EQ(attempts["v20"], (std::vector<int>{1, 2, 3}));
  // Non-blocking: v11 was handled before v10's retry (ordering given up).
  const auto pos = [&](const std::string& v) { return std::find(order.begin(), order.end(), v) - order.begin(); };
  EXPECT_LT(pos("v11"), pos("v10"));
  EXPECT_EQ(order.size(), 99u);
  const auto dead = read_all(broker, "orders.dead-letter", "reader");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].value, "v20");
  EXPECT_EQ(dead[0].header(kc::kHeaderAttempts), "3");
  EXPECT_EQ(dead[0].header(kc::kHeaderRetryTopic), "orders");
  EXPECT_EQ(dead[0].headers[0].first, "h");  // the original headers survive the trip
  for (const auto* t : {"orders", "orders.retry.1", "orders.retry.2"}) {
    const auto off = kc::test::committed_offsets(broker.bootstrap_servers(), "retry-topics", t, 1);
    const auto hw = std::string(t) == "orders" ? 100 : std::string(t) == "orders.retry.1" ? 2 : 1;
    EXPECT_EQ(off[0], hw) << t;
  }
}

}  // namespace
