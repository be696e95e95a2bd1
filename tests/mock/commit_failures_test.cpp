// Commit failures injected with librdkafka's mock cluster: whatever the
// coordinator answers, no record is lost across a restart of the group.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "support/kafka.hpp"

namespace {

constexpr int kPartitions = 4;
constexpr int kRecords = 20000;
constexpr std::int16_t kOffsetCommitApiKey = 8;  // Kafka protocol ApiKey of OffsetCommit

struct Seen {
  std::map<std::pair<int, std::int64_t>, int> count;  // (partition, offset) -> times handled
};

kc::ConsumerConfig config_for(const kc::EmbeddedBroker& broker, const std::string& assignor) {
  auto c = kc::test::mock_consumer_config(broker, "mock-group-" + assignor, "orders");
  c.commit.every_messages = 100;
  c.commit.interval = std::chrono::milliseconds(200);
  c.shutdown_timeout = std::chrono::milliseconds(10000);
  c.librdkafka["partition.assignment.strategy"] = assignor;
  c.librdkafka["session.timeout.ms"] = "6000";
  c.librdkafka["heartbeat.interval.ms"] = "500";
  return c;
}

void produce_all(const kc::EmbeddedBroker& broker) {
  kc::Producer p({broker.bootstrap_servers(), {}});
  for (int i = 0; i < kRecords; ++i) {
    const std::string v = "msg-" + std::to_string(i);
    p.produce("orders", std::nullopt, kc::Bytes(reinterpret_cast<const std::byte*>(v.data()), v.size()),
              i % kPartitions);
  }
  ASSERT_TRUE(p.flush(std::chrono::seconds(30)));
  ASSERT_EQ(p.stats().delivered, static_cast<std::uint64_t>(kRecords));
}

class CommitFailures : public ::testing::TestWithParam<std::string> {};

TEST_P(CommitFailures, LoseNothingAcrossARestart) {
  kc::EmbeddedBroker broker(3);
  auto* mock = static_cast<rd_kafka_mock_cluster_t*>(broker.raw());
  broker.create_topic("orders", kPartitions);
  produce_all(broker);

  const auto group = config_for(broker, GetParam()).group;
  // The first commits fail with the errors a rebalance or a fenced member sees.
  rd_kafka_mock_push_request_errors(mock, kOffsetCommitApiKey, 6, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);

  Seen seen;
  std::uint64_t handled_first = 0;
  {
    kc::Consumer* self = nullptr;
    kc::Handler h = [&](const kc::Message& m) {
      ++seen.count[{kc::to_int(m.partition()), kc::to_int(m.offset())}];
      ++handled_first;
      if (handled_first == 3000 || handled_first == 6000) {
        // The group coordinator moves to another broker mid-stream.
        rd_kafka_mock_coordinator_set(mock, "group", group.c_str(), handled_first == 3000 ? 2 : 3);
        rd_kafka_mock_push_request_errors(mock, kOffsetCommitApiKey, 2, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                          RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION);
      }
      if (handled_first == 10000) {
        self->stop();
      }
      return kc::Outcome::done;
    };
    kc::Consumer first(config_for(broker, GetParam()), h);
    self = &first;
    const auto r = first.run();
    EXPECT_EQ(r.reason, kc::StopReason::requested);
    EXPECT_GT(r.stats.commits_failed, 0u) << "the injected errors did not reach the consumer";
  }

  // A second member of the group picks up from the committed offsets.
  auto cfg = config_for(broker, GetParam());
  cfg.idle_exit = std::chrono::milliseconds(3000);
  kc::Consumer second(cfg, [&](const kc::Message& m) {
    ++seen.count[{kc::to_int(m.partition()), kc::to_int(m.offset())}];
    return kc::Outcome::done;
  });
  const auto r2 = second.run();
  EXPECT_EQ(r2.reason, kc::StopReason::idle);

  int missing = 0;
  int duplicates = 0;
  for (int p = 0; p < kPartitions; ++p) {
    for (std::int64_t o = 0; o < kRecords / kPartitions; ++o) {
      const auto it = seen.count.find({p, o});
      if (it == seen.count.end()) {
        ++missing;
      } else {
        duplicates += it->second - 1;
      }
    }
  }
  std::printf("MOCK commit failures (%s): handled=%zu missing=%d duplicates=%d; second member: consumed=%llu "
              "commits_ok=%llu commits_failed=%llu\n",
              GetParam().c_str(), seen.count.size(), missing, duplicates,
              static_cast<unsigned long long>(r2.stats.consumed), static_cast<unsigned long long>(r2.stats.commits_ok),
              static_cast<unsigned long long>(r2.stats.commits_failed));
  EXPECT_EQ(missing, 0);
  // Every partition ends fully committed, as the coordinator sees it.
  const auto committed = kc::test::committed_offsets(broker.bootstrap_servers(), group, "orders", kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(committed[static_cast<std::size_t>(p)], kRecords / kPartitions) << "partition " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Assignors, CommitFailures, ::testing::Values("cooperative-sticky", "range"),
                         [](const auto& param_info) { return param_info.param == "range" ? std::string("Eager") : std::string("Cooperative"); });

}  // namespace
