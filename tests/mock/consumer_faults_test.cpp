// kc::Consumer fault paths that only librdkafka's mock cluster can inject
// (issue 16): a coordinator that does not answer commits during a stop, a
// commit retried by librdkafka after a newer one, a dead-letter cap and a
// retry at once, what /readyz shows, and configurations refused.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/exactly_once.hpp"
#include "kc/metrics.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "support/common.hpp"
#include "support/http.hpp"
#include "support/kafka.hpp"
#include "support/parallel.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::int16_t kProduceApiKey = 0;
constexpr std::int16_t kOffsetCommitApiKey = 8;

kc::Bytes bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

long long ms_since(Clock::time_point t) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

class ConsumerFaults : public ::testing::Test {
 protected:
  void fill(const std::string& topic, int partitions, int records,
            const std::function<std::vector<kc::ProducerHeader>(int)>& headers = {}) {
    broker_.create_topic(topic, partitions);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < records; ++i) {
      const std::string v = "v" + std::to_string(i);
      const auto h = headers ? headers(i) : std::vector<kc::ProducerHeader>{};
      p.produce(kc::ProducerRecord{topic, std::nullopt, bytes(v), i % partitions, h});
    }
    ASSERT_TRUE(p.flush(30s));
  }

  kc::ConsumerConfig config(const std::string& topic, const std::string& group) const {
    return kc::test::mock_consumer_config(broker_, group, topic);
  }

  // config() with no commit before the stop (neither count nor interval
  // reaches it), so the stop's final commit is the only one; 10 s to stop.
  kc::ConsumerConfig final_commit_only(const std::string& topic, const std::string& group) const {
    auto c = config(topic, group);
    c.shutdown_timeout = std::chrono::milliseconds(10000);
    c.commit.every_messages = 1000000;
    c.commit.interval = std::chrono::seconds(600);
    return c;
  }

  rd_kafka_mock_cluster_t* mock() { return static_cast<rd_kafka_mock_cluster_t*>(broker_.raw()); }

  kc::EmbeddedBroker broker_{1};
};

// ------------------------------------------------ a stop while commits get no answer

// The coordinator stops answering commits (20 s round trips) just before a
// graceful stop. The final commit and the revoke's commit time out; run()
// must still return within shutdown.timeout_ms plus the documented slack.
// (Before: the close ran out of time with the revoke unserved, and
// rd_kafka_destroy then waited for it forever.)
TEST_F(ConsumerFaults, StopWhileCommitsGetNoAnswerEndsInTime) {
  fill("t", 2, 2000);
  auto cfg = config("t", "stop-no-answer");
  cfg.shutdown_timeout = 3000ms;
  cfg.commit.every_messages = 100;
  std::atomic<int> handled{0};
  kc::Consumer* self = nullptr;
  kc::Consumer c(cfg, [&](const kc::Message&) {
    if (++handled == 500) {
      for (int i = 0; i < 10; ++i) {
        rd_kafka_mock_broker_push_request_error_rtts(mock(), 1, kOffsetCommitApiKey, 1, RD_KAFKA_RESP_ERR_NO_ERROR,
                                                     20000);
      }
      self->stop();
    }
    return kc::Outcome::done;
  });
  self = &c;
  kc::test::BackgroundRun run(c);
  std::this_thread::sleep_for(100ms);
  Clock::time_point stopped_at;
  while (handled < 500) {
    std::this_thread::sleep_for(1ms);
  }
  stopped_at = Clock::now();
  const auto r = run.join(60s);
  const auto took = ms_since(stopped_at);
  std::printf("MOCK stop while commits get no answer: run() returned %lld ms after stop() (shutdown.timeout_ms "
              "3000); %llu commits failed\n",
              took, static_cast<unsigned long long>(r.stats.commits_failed));
  EXPECT_LE(took, 3000 + 3000);
}

// ------------------------------------------------ a stop that meets a rebalance

// The stop's final commit is answered "rebalance in progress" three times
// (a member joined just as this one stopped; the broker answers so while
// the new generation is being completed). The member still owns its
// partitions and librdkafka takes the new generation by itself: the commit
// must be tried again until it goes through, not given up (the next owner
// then redid everything since the last commit: 1,799 duplicates in one
// churn run on the real broker).
TEST_F(ConsumerFaults, FinalCommitThatMeetsARebalanceIsTriedAgain) {
  fill("t", 1, 1000);
  auto cfg = final_commit_only("t", "stop-meets-rebalance");
  int handled = 0;
  kc::Consumer* self = nullptr;
  kc::Consumer c(cfg, [&](const kc::Message&) {
    if (++handled == 1000) {
      rd_kafka_mock_push_request_errors(mock(), kOffsetCommitApiKey, 3, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
      self->stop();
    }
    return kc::Outcome::done;
  });
  self = &c;
  const auto started = Clock::now();
  const auto r = c.run();
  const auto took = ms_since(started);
  const auto committed = kc::test::committed_offsets(broker_.bootstrap_servers(), "stop-meets-rebalance", "t", 1);
  std::printf("MOCK stop meets a rebalance: done %llu, committed %lld, commits ok %llu, failed %llu, run %lld ms\n",
              static_cast<unsigned long long>(r.stats.done), static_cast<long long>(committed[0]),
              static_cast<unsigned long long>(r.stats.commits_ok),
              static_cast<unsigned long long>(r.stats.commits_failed), took);
  EXPECT_EQ(r.stats.done, 1000u);
  EXPECT_EQ(committed[0], 1000);
  EXPECT_EQ(r.stats.commits_failed, 0u) << "a try that met a rebalance is not a failed commit";
}

// "Illegal generation" while no rebalance is under way: librdkafka takes
// the assignment as lost (the member was put out of the group) and the
// partitions may already be another member's. The stop must not keep
// trying to commit for them until its deadline.
TEST_F(ConsumerFaults, FinalCommitOfALostAssignmentIsNotTriedAgain) {
  fill("t", 1, 1000);
  auto cfg = final_commit_only("t", "stop-lost");
  int handled = 0;
  kc::Consumer* self = nullptr;
  Clock::time_point stopped_at;
  kc::Consumer c(cfg, [&](const kc::Message&) {
    if (++handled == 1000) {
      rd_kafka_mock_push_request_errors(mock(), kOffsetCommitApiKey, 1, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION);
      stopped_at = Clock::now();
      self->stop();
    }
    return kc::Outcome::done;
  });
  self = &c;
  const auto r = c.run();
  const auto took = ms_since(stopped_at);
  const auto committed = kc::test::committed_offsets(broker_.bootstrap_servers(), "stop-lost", "t", 1);
  std::printf("MOCK stop with a lost assignment: done %llu, committed %lld, commits failed %llu, run() returned %lld ms after stop()\n",
              static_cast<unsigned long long>(r.stats.done), static_cast<long long>(committed[0]),
              static_cast<unsigned long long>(r.stats.commits_failed), took);
  EXPECT_EQ(r.stats.done, 1000u);
  EXPECT_EQ(r.stats.commits_failed, 1u);
  EXPECT_LT(took, 3000) << "the stop's commit must not be retried until its deadline (6.7 s)";
  EXPECT_EQ(committed[0], -1) << "committed for an assignment librdkafka called lost";
}

// ------------------------------------------------ commit order

// An asynchronous commit is answered late with a retriable error (librdkafka
// retries it); the stop's synchronous commit of later offsets must not be
// overtaken by that retry: the partition's committed offset never goes back.
TEST_F(ConsumerFaults, ShutdownCommitWaitsForTheAsynchronousOneInFlight) {
  fill("t", 1, 2000);
  auto cfg = config("t", "commit-order");
  cfg.commit.every_messages = 100;
  cfg.commit.interval = 60s;
  int handled = 0;
  kc::Consumer* self = nullptr;
  kc::Consumer c(cfg, [&](const kc::Message&) {
    ++handled;
    if (handled == 250) {
      // The next commit (of 300) is answered after 1.5 s with an error
      // librdkafka retries.
      rd_kafka_mock_broker_push_request_error_rtts(mock(), 1, kOffsetCommitApiKey, 1,
                                                   RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, 1500);
    }
    if (handled == 450) {
      self->stop();
    }
    return kc::Outcome::done;
  });
  self = &c;
  const auto r = c.run();
  // librdkafka may still retry after run() returned: look a little later.
  std::this_thread::sleep_for(2500ms);
  const auto committed = kc::test::committed_offsets(broker_.bootstrap_servers(), "commit-order", "t", 1);
  std::printf("MOCK commit order: done %llu, committed at the end %lld (run's last acknowledged %lld)\n",
              static_cast<unsigned long long>(r.stats.done), static_cast<long long>(committed[0]),
              r.stats.committed.empty() ? -1LL : static_cast<long long>(kc::to_int(r.stats.committed.begin()->second)));
  EXPECT_EQ(committed[0], static_cast<std::int64_t>(r.stats.done));
}

// ------------------------------------------------ the dead-letter cap and a retry

// 1,000 dead letters of one partition wait for the broker (it refuses them
// for a while); the partition is paused for them. A record of the same
// partition that fails retriably must not resume it when its backoff ends:
// nothing past it is handled until the dead letters drain.
TEST_F(ConsumerFaults, RetryResumeKeepsTheDeadLetterCap) {
  fill("src", 1, 1200, [](int i) {
    return std::vector<kc::ProducerHeader>{{"kind", i < 1005 ? "dead" : (i == 1005 ? "retry" : "ok")}};
  });
  broker_.create_topic("src.dead-letter", 1);
  // Refused until the errors are cleared below (kc retries each dead letter
  // with its backoff).
  std::vector<rd_kafka_resp_err_t> errors(1000, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  rd_kafka_mock_push_request_errors_array(mock(), kProduceApiKey, errors.size(), errors.data());
  auto cfg = config("src", "dlq-cap");
  cfg.dead_letter.enabled = true;
  cfg.dead_letter.write_backoff = 2000ms;
  cfg.dead_letter.write_backoff_max = 2000ms;
  cfg.retry.backoff = 100ms;
  cfg.retry.jitter = 0;
  cfg.idle_exit = 2000ms;
  std::atomic<int> ok_while_capped{0};
  std::atomic<int> ok{0};
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    const auto hs = m.headers();
    const std::string kind(kc::as_text(*hs.at(0).value));
    if (kind == "dead") {
      return kc::Outcome::dead;
    }
    if (kind == "retry" && m.attempt() == 1) {
      return kc::Outcome::retry;
    }
    ++ok;
    return kc::Outcome::done;
  });
  kc::test::BackgroundRun run(c);
  // While the dead letters are refused, nothing past the retried record runs.
  std::this_thread::sleep_for(4s);
  ok_while_capped = ok.load();
  rd_kafka_mock_clear_request_errors(mock(), kProduceApiKey);
  const auto r = run.join(120s);
  std::printf("MOCK dead-letter cap and a retry: records past the cap handled while 1000 dead letters waited: %d; "
              "in the end: ok %d, dead-lettered %llu\n",
              ok_while_capped.load(), ok.load(), static_cast<unsigned long long>(r.stats.dead_lettered));
  EXPECT_EQ(ok_while_capped.load(), 0);
  EXPECT_EQ(ok.load(), 1200 - 1005);
  EXPECT_EQ(r.stats.dead_lettered, 1005u);
}

// ------------------------------------------------ /readyz

std::string readyz(const kc::Consumer& c) {
  return kc::test::http_get("http://127.0.0.1:" + std::to_string(c.metrics_port()) + "/readyz").body;
}

// A record that fails for good without a dead-letter topic halts its
// partition: /readyz says so, naming the partition.
TEST_F(ConsumerFaults, ReadyzNamesAHaltedPartition) {
  fill("t", 2, 100);
  auto cfg = config("t", "ready-halt");
  cfg.metrics.port = 0;
  kc::Consumer c(cfg, [&](const kc::Message& m) {
    return kc::to_int(m.partition()) == 1 && kc::to_int(m.offset()) == 7 ? kc::Outcome::dead : kc::Outcome::done;
  });
  kc::test::BackgroundRun run(c);
  std::string body;
  const bool named = kc::test::wait_until(
      [&] {
        body = readyz(c);
        return body.find("partition_halted t[1]") != std::string::npos;
      },
      20s, 100ms);
  c.stop();
  run.join(30s);
  EXPECT_TRUE(named) << body;
}

// Commits that fail one after another show on /readyz until one succeeds.
TEST_F(ConsumerFaults, ReadyzShowsFailingCommits) {
  fill("t", 2, 4000);
  auto cfg = config("t", "ready-commits");
  cfg.metrics.port = 0;
  cfg.commit.every_messages = 50;
  cfg.commit.interval = 100ms;
  std::vector<rd_kafka_resp_err_t> errors(6, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  std::string body;
  int handled = 0;
  kc::Consumer c(cfg, [&](const kc::Message&) {
    if (++handled == 100) {
      rd_kafka_mock_push_request_errors_array(mock(), kOffsetCommitApiKey, errors.size(), errors.data());
    }
    std::this_thread::sleep_for(1ms);  // records keep coming while the commits fail
    return kc::Outcome::done;
  });
  kc::test::BackgroundRun run(c);
  const bool shown = kc::test::wait_until(
      [&] {
        body = readyz(c);
        return body.find("commits_failing") != std::string::npos;
      },
      20s, 20ms);
  const bool cleared = kc::test::wait_until([&] { return readyz(c) == "ok\n"; }, 20s, 100ms);
  c.stop();
  const auto r = run.join(30s);
  // Each failed commit counts once in the metric, as in RunStats.
  const auto samples = kc::metrics::parse(c.metrics().render());
  const auto failures = kc::metrics::sum(samples, "kc_commit_failures_total");
  std::printf("MOCK failing commits: /readyz showed them: %s, cleared: %s; kc_commit_failures_total %.0f, "
              "RunStats %llu\n",
              shown ? "yes" : "no", cleared ? "yes" : "no", failures,
              static_cast<unsigned long long>(r.stats.commits_failed));
  EXPECT_TRUE(shown) << body;
  EXPECT_TRUE(cleared);
  EXPECT_GE(r.stats.commits_failed, 6u);
  EXPECT_EQ(failures, static_cast<double>(r.stats.commits_failed));
}

// An exactly-once sink that cannot commit stalls processing: /readyz says so
// until it can again.
class FlakySink final : public kc::TransactionalSink {
 public:
  std::atomic<int> fail_commits{0};
  std::vector<kc::SinkPosition> claim(std::span<const kc::TopicPartition> tps) override {
    return std::vector<kc::SinkPosition>(tps.size());
  }
  std::vector<kc::SinkPosition> resume(std::span<const kc::TopicPartition> tps) override {
    if (fail_commits > 0) {
      throw kc::Error(kc::errc::io, "the database is down", false, true);
    }
    return std::vector<kc::SinkPosition>(tps.size());
  }
  void begin() override {}
  void commit(std::span<const kc::SinkOffset>, const rd_kafka_consumer_group_metadata_s*) override {
    if (fail_commits > 0) {
      --fail_commits;
      throw kc::Error(kc::errc::io, "the database is down", false, true);
    }
  }
  void abort() noexcept override {}
};

TEST_F(ConsumerFaults, ReadyzShowsAStalledExactlyOnceSink) {
  fill("t", 2, 200);
  auto cfg = config("t", "ready-sink");
  cfg.metrics.port = 0;
  cfg.commit.interval = 100ms;
  auto sink = std::make_shared<FlakySink>();
  sink->fail_commits = 20;
  kc::ConsumerHooks hooks;
  hooks.exactly_once = sink;
  kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; }, hooks);
  kc::test::BackgroundRun run(c);
  std::string body;
  const bool shown = kc::test::wait_until(
      [&] {
        body = readyz(c);
        return body.find("sink_stalled") != std::string::npos;
      },
      20s, 50ms);
  sink->fail_commits = 0;
  const bool cleared = kc::test::wait_until([&] { return readyz(c) == "ok\n"; }, 30s, 100ms);
  c.stop();
  run.join(30s);
  EXPECT_TRUE(shown) << body;
  EXPECT_TRUE(cleared);
}

// ------------------------------------------------ exactly-once positioning

// A sink that cannot claim at the assignment (it is still unreachable) but
// can a moment later, and stores offset 500 for every partition. The
// partitions are positioned at 500 then, while librdkafka is still fetching
// the group's committed offsets for the assignment (slowed down here): a
// seek then fails with __STATE, and the partition would go on from the
// group's offset (0) instead.
class LateClaimSink final : public kc::TransactionalSink {
 public:
  std::atomic<int> claims{0};
  std::vector<kc::SinkPosition> claim(std::span<const kc::TopicPartition> tps) override {
    if (claims++ == 0) {
      throw kc::Error(kc::errc::io, "not reachable yet", false, true);
    }
    return std::vector<kc::SinkPosition>(tps.size(), kc::SinkPosition{true, kc::Offset{500}});
  }
  std::vector<kc::SinkPosition> resume(std::span<const kc::TopicPartition> tps) override { return claim(tps); }
  void begin() override {}
  void commit(std::span<const kc::SinkOffset>, const rd_kafka_consumer_group_metadata_s*) override {}
  void abort() noexcept override {}
};

TEST_F(ConsumerFaults, ExactlyOnceClaimLateStartsAtTheSinksOffset) {
  fill("t", 2, 2000);
  constexpr std::int16_t kOffsetFetchApiKey = 9;
  for (int i = 0; i < 4; ++i) {
    rd_kafka_mock_broker_push_request_error_rtts(mock(), 1, kOffsetFetchApiKey, 1, RD_KAFKA_RESP_ERR_NO_ERROR, 700);
  }
  auto cfg = config("t", "eos-late-claim");
  cfg.idle_exit = 1500ms;
  kc::ConsumerHooks hooks;
  hooks.exactly_once = std::make_shared<LateClaimSink>();
  std::mutex mu;
  std::map<int, std::int64_t> first;  // partition -> first offset handled
  kc::Consumer c(
      cfg,
      [&](const kc::Message& m) {
        std::lock_guard lock(mu);
        first.try_emplace(kc::to_int(m.partition()), kc::to_int(m.offset()));
        return kc::Outcome::done;
      },
      hooks);
  c.run();
  std::printf("MOCK exactly-once late claim: first offsets handled p0=%lld p1=%lld (the sink stores 500)\n",
              first.contains(0) ? static_cast<long long>(first[0]) : -1LL,
              first.contains(1) ? static_cast<long long>(first[1]) : -1LL);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0], 500);
  EXPECT_EQ(first[1], 500);
}

// ------------------------------------------------ exactly-once: every partition with output is fenced

// A sink that checks, at each commit, that every partition whose records
// kept output in the transaction is among the committed offsets (the sinks
// fence exactly those: output of a partition left out is output nobody
// checked the ownership of). It cannot forward dead letters: the consumer
// produces them itself.
class RecordingSink final : public kc::TransactionalSink {
 public:
  std::set<int> with_output;  // partitions of the open transaction
  int current = -1;           // the partition of the record in progress (set by the handler)
  std::atomic<int> violations{0};
  std::atomic<int> commits{0};
  std::vector<kc::SinkPosition> claim(std::span<const kc::TopicPartition> tps) override {
    return std::vector<kc::SinkPosition>(tps.size());
  }
  std::vector<kc::SinkPosition> resume(std::span<const kc::TopicPartition> tps) override { return claim(tps); }
  void begin() override { with_output.clear(); }
  void record_end(bool keep) override {
    if (keep && current >= 0) {
      with_output.insert(current);
    }
  }
  void commit(std::span<const kc::SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s*) override {
    ++commits;
    for (const int p : with_output) {
      const bool listed = std::any_of(offsets.begin(), offsets.end(),
                                      [&](const kc::SinkOffset& o) { return kc::to_int(o.tp.partition) == p; });
      if (!listed) {
        ++violations;
      }
    }
    with_output.clear();
  }
  void abort() noexcept override { with_output.clear(); }
};

TEST(ConsumerFaultsThreeBrokers, ExactlyOnceCommitsEveryPartitionWithOutput) {
  // Three brokers: the source on broker 1, the dead-letter topic on broker
  // 3, whose produce requests are refused for a while (kc writes the dead
  // letter again after its backoff), so transactions commit while the dead
  // letter waits for its acknowledgement.
  kc::EmbeddedBroker broker(3);
  auto* mock = static_cast<rd_kafka_mock_cluster_t*>(broker.raw());
  broker.create_topic("src", 2);
  broker.create_topic("src.dead-letter", 2);
  for (int p = 0; p < 2; ++p) {
    rd_kafka_mock_partition_set_leader(mock, "src", p, 1);
    rd_kafka_mock_partition_set_leader(mock, "src.dead-letter", p, 3);
  }
  std::vector<rd_kafka_resp_err_t> errors(4, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  for (const auto e : errors) {
    rd_kafka_mock_broker_push_request_error_rtts(mock, 3, kProduceApiKey, 1, e, 0);
  }
  auto cfg = kc::test::mock_consumer_config(broker, "eos-fence", "src");
  cfg.dead_letter.enabled = true;
  cfg.dead_letter.write_backoff = 500ms;
  cfg.dead_letter.write_backoff_max = 500ms;
  cfg.commit.every_messages = 10;
  cfg.commit.interval = 100ms;
  cfg.idle_exit = 3000ms;
  auto sink = std::make_shared<RecordingSink>();
  kc::ConsumerHooks hooks;
  hooks.exactly_once = sink;
  kc::Consumer c(
      cfg,
      [&](const kc::Message& m) {
        sink->current = kc::to_int(m.partition());
        if (kc::to_int(m.partition()) == 0 && kc::to_int(m.offset()) == 5) {
          return kc::Outcome::dead;
        }
        return kc::Outcome::done;
      },
      hooks);
  kc::test::BackgroundRun run(c);
  {
    // Records arrive over 4 s: transactions commit between them.
    kc::Producer p({broker.bootstrap_servers(), {}});
    for (int i = 0; i < 400; ++i) {
      const std::string v = "v" + std::to_string(i);
      p.produce(kc::ProducerRecord{"src", std::nullopt, bytes(v), i % 2, {}});
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(p.flush(30s));
  }
  const auto r = run.join(60s);
  std::printf("MOCK exactly-once fencing: %d commits, %d with output of a partition left out; dead-lettered %llu\n",
              sink->commits.load(), sink->violations.load(), static_cast<unsigned long long>(r.stats.dead_lettered));
  EXPECT_GT(sink->commits.load(), 2);
  EXPECT_EQ(sink->violations.load(), 0);
  EXPECT_EQ(r.stats.dead_lettered, 1u);
}

// ------------------------------------------------ configuration

// Exactly-once reads only committed transactions: read_uncommitted would
// process (and commit past) records of transactions that abort.
TEST_F(ConsumerFaults, ReadUncommittedIsRefusedUnderExactlyOnce) {
  auto cfg = config("t", "eos-iso");
  cfg.librdkafka["isolation.level"] = "read_uncommitted";
  kc::ConsumerHooks hooks;
  hooks.exactly_once = std::make_shared<FlakySink>();
  try {
    kc::Consumer c(cfg, [](const kc::Message&) { return kc::Outcome::done; }, hooks);
    FAIL() << "read_uncommitted was accepted under exactly-once";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("isolation.level"), std::string::npos) << e.what();
  }
}

}  // namespace
