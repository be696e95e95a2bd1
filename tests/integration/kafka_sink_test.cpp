// kc::KafkaTransactionalSink against the real broker: what a transaction
// commits is visible to read_committed readers together with the group's
// offsets, what it aborts or drops is not, and a producer fenced by another
// with the same transactional.id fails its commit, is rebuilt and goes on
// (or, with rebuild_on_fatal=false, fails fatally).
//
// Output is read back with a plain librdkafka consumer (read_values in
// support/kafka.hpp), never through kc.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kc/error.hpp"
#include "kc/kafka_sink.hpp"
#include "support/common.hpp"
#include "support/kafka.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* g) const noexcept { rd_kafka_consumer_group_metadata_destroy(g); }
};
using GroupMetadataPtr = std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;
struct ConsumerDeleter {
  void operator()(rd_kafka_t* rk) const noexcept {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using ConsumerPtr = std::unique_ptr<rd_kafka_t, ConsumerDeleter>;

KafkaTransactionalSink::Options sink_options(const std::string& transactional_id) {
  KafkaTransactionalSink::Options o;
  o.bootstrap_servers = bootstrap();
  o.transactional_id = transactional_id;
  o.librdkafka = {{"transaction.timeout.ms", "10000"}};
  o.commit_timeout = 10s;
  return o;
}

std::optional<Bytes> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

void produce_value(KafkaTransactionalSink& sink, const std::string& topic, std::string_view value,
                   std::int32_t partition = 0) {
  sink.produce(topic, std::nullopt, bytes(value), partition);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> read_committed(const std::string& topic, int partitions) {
  return sorted(read_values(bootstrap(), topic, partitions, Isolation::read_committed, 20s));
}
std::vector<std::string> read_uncommitted(const std::string& topic, int partitions) {
  return sorted(read_values(bootstrap(), topic, partitions, Isolation::read_uncommitted, 20s));
}

SinkOffset offset(const std::string& topic, std::int32_t partition, std::int64_t next) {
  return SinkOffset{TopicPartition{topic, Partition{partition}}, Offset{next}};
}

// A consumer in `group` that joined it (subscribe), for its group metadata
// (generation and member id, KIP-447), reading `topic` with read_committed.
ConsumerPtr joined_consumer(const std::string& group, const std::string& topic) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"bootstrap.servers", bootstrap()},
                                                                             {"group.id", group},
                                                                             {"enable.auto.commit", "false"},
                                                                             {"auto.offset.reset", "earliest"},
                                                                             {"isolation.level", "read_committed"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw Failure(k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw Failure(std::string("consumer: ") + err);
  }
  ConsumerPtr c(rk);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto e = rd_kafka_subscribe(rk, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(std::string("subscribe: ") + rd_kafka_err2name(e));
  }
  return c;
}

TEST(KafkaTransactionalSink, ConsumeTransformProduceCommitsOutputAndGroupOffsetsTogether) {
  const auto in = unique_name("kc-ksink-in");
  const auto out = unique_name("kc-ksink-out");
  const auto group = unique_name("kc-ksink-group");
  create_topic(bootstrap(), in, 2);
  create_topic(bootstrap(), out, 2);
  ProduceOptions po;
  po.partitions = 2;
  po.value_prefix = "in-";
  produce(bootstrap(), in, 10, po);

  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  EXPECT_EQ(sink.producers_created(), 1u);
  const std::vector<TopicPartition> tps{{in, Partition{0}}, {in, Partition{1}}};
  const auto claimed = sink.claim(tps);
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_TRUE(claimed[0].owned && claimed[1].owned);
  EXPECT_FALSE(claimed[0].next.has_value() || claimed[1].next.has_value());

  // Consume the first 3 records of each partition and write one output
  // record per input record, each inside record_begin()/record_end(true).
  auto consumer = joined_consumer(group, in);
  std::vector<std::int64_t> next{0, 0};
  std::vector<std::string> expected;
  sink.begin();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while ((next[0] < 3 || next[1] < 3) && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
    if (m == nullptr) {
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < 3) {
      const std::string value(static_cast<const char*>(m->payload), m->len);
      sink.record_begin();
      produce_value(sink, out, "out-" + value, m->partition);
      sink.record_end(true);
      expected.push_back("out-" + value);
      next[static_cast<std::size_t>(m->partition)] = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
  }
  ASSERT_EQ(next, (std::vector<std::int64_t>{3, 3})) << "did not consume the input within 30 s";
  GroupMetadataPtr meta(rd_kafka_consumer_group_metadata(consumer.get()));
  ASSERT_NE(meta, nullptr);
  const std::vector<SinkOffset> offsets{offset(in, 0, next[0]), offset(in, 1, next[1])};
  sink.commit(offsets, meta.get());

  EXPECT_EQ(read_committed(out, 2), sorted(expected));
  EXPECT_EQ(committed_offsets(bootstrap(), group, in, 2), (std::vector<std::int64_t>{3, 3}));
  EXPECT_EQ(sink.producers_created(), 1u);
}

TEST(KafkaTransactionalSink, CommitsOffsetsOfAGroupWithoutMembers) {
  const auto in = unique_name("kc-ksink-in");
  const auto out = unique_name("kc-ksink-out");
  const auto group = unique_name("kc-ksink-group");
  create_topic(bootstrap(), in, 2);
  create_topic(bootstrap(), out, 1);
  ProduceOptions po;
  po.partitions = 2;
  produce(bootstrap(), in, 20, po);

  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  GroupMetadataPtr meta(rd_kafka_consumer_group_metadata_new(group.c_str()));
  sink.begin();
  produce_value(sink, out, "a");
  produce_value(sink, out, "b");
  sink.commit(std::vector<SinkOffset>{offset(in, 0, 4), offset(in, 1, 7)}, meta.get());
  // A second transaction moves the offsets on.
  sink.begin();
  produce_value(sink, out, "c");
  sink.commit(std::vector<SinkOffset>{offset(in, 1, 9)}, meta.get());

  EXPECT_EQ(read_committed(out, 1), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(committed_offsets(bootstrap(), group, in, 2), (std::vector<std::int64_t>{4, 9}));
}

TEST(KafkaTransactionalSink, AbortedTransactionIsInvisibleToReadCommitted) {
  const auto in = unique_name("kc-ksink-in");
  const auto out = unique_name("kc-ksink-out");
  const auto group = unique_name("kc-ksink-group");
  create_topic(bootstrap(), in, 1);
  create_topic(bootstrap(), out, 2);
  produce(bootstrap(), in, 5);

  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  sink.begin();
  produce_value(sink, out, "aborted-0", 0);
  produce_value(sink, out, "aborted-1", 1);
  // Written to the broker (abort_transaction purges what is still queued
  // locally, so wait until read_uncommitted sees it) ...
  const std::vector<std::string> aborted{"aborted-0", "aborted-1"};
  ASSERT_TRUE(wait_until([&] { return read_uncommitted(out, 2) == aborted; }, 10s, 100ms))
      << "the records were not written within 10 s";
  // ... but aborted.
  sink.abort();
  sink.abort();  // nothing open: a no-op
  EXPECT_EQ(read_committed(out, 2), std::vector<std::string>{});
  EXPECT_EQ(read_uncommitted(out, 2), aborted);

  // The sink goes on after an abort, with the same producer.
  GroupMetadataPtr meta(rd_kafka_consumer_group_metadata_new(group.c_str()));
  sink.begin();
  produce_value(sink, out, "kept", 1);
  sink.commit(std::vector<SinkOffset>{offset(in, 0, 5)}, meta.get());
  EXPECT_EQ(read_committed(out, 2), (std::vector<std::string>{"kept"}));
  EXPECT_EQ(committed_offsets(bootstrap(), group, in, 1), (std::vector<std::int64_t>{5}));
  EXPECT_EQ(sink.producers_created(), 1u);
}

TEST(KafkaTransactionalSink, RecordEndFalseDropsOnlyThatRecordsOutput) {
  const auto out = unique_name("kc-ksink-out");
  create_topic(bootstrap(), out, 1);

  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  sink.begin();
  sink.record_begin();
  produce_value(sink, out, "r1-a");
  sink.produce(out, bytes("key"), bytes("r1-b"), 0, {{"h", "v"}, {"null", std::nullopt}});
  sink.record_end(true);
  sink.record_begin();
  produce_value(sink, out, "r2-dropped-a");
  produce_value(sink, out, "r2-dropped-b");
  sink.record_end(false);
  sink.record_begin();
  produce_value(sink, out, "r3");
  sink.record_end(true);
  produce_value(sink, out, "outside-a-record");
  sink.commit({}, nullptr);

  const std::vector<std::string> want{"outside-a-record", "r1-a", "r1-b", "r3"};
  EXPECT_EQ(read_committed(out, 1), want);
  // The dropped record's output never reached Kafka at all.
  EXPECT_EQ(read_uncommitted(out, 1), want);
}

// A record the broker refuses (larger than the topic's max.message.bytes)
// makes the transaction abortable: commit() aborts it and throws a
// retriable, non-fatal error; the same producer goes on.
TEST(KafkaTransactionalSink, FailedDeliveryAbortsTheTransactionAndTheSinkGoesOn) {
  const auto out = unique_name("kc-ksink-out");
  create_topic(bootstrap(), out, 1);
  set_topic_config(bootstrap(), out, {{"max.message.bytes", "1024"}});

  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  sink.begin();
  produce_value(sink, out, "small");
  produce_value(sink, out, incompressible(4000));  // lz4 would shrink 4000 equal bytes below the limit
  try {
    sink.commit({}, nullptr);
    FAIL() << "a transaction with a refused record committed";
  } catch (const kc::Error& e) {
    std::printf("commit threw: %s\n", e.what());
    EXPECT_EQ(e.code(), kc::errc::kafka) << e.what();
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_FALSE(e.fatal()) << e.what();
    EXPECT_NE(std::string(e.what()).find("aborted"), std::string::npos) << e.what();
  }
  sink.abort();  // already aborted by commit(): a no-op

  // Go on as the consumer does after a retriable error: rewind and try
  // again. librdkafka 2.14 may fail the first transaction after such an
  // error once more (OUT_OF_ORDER_SEQUENCE_NUMBER, abortable: the refused
  // batch left a gap in the partition's sequence numbers that only the
  // epoch bump of that abort closes), so allow a few attempts.
  int attempts = 0;
  for (bool committed = false; !committed && attempts < 3;) {
    ++attempts;
    sink.begin();
    produce_value(sink, out, "after");
    try {
      sink.commit({}, nullptr);
      committed = true;
    } catch (const kc::Error& e) {
      ASSERT_TRUE(e.retriable() && !e.fatal()) << e.what();
      sink.abort();
    }
  }
  EXPECT_LE(attempts, 2);
  EXPECT_EQ(read_committed(out, 1), (std::vector<std::string>{"after"}));
  EXPECT_EQ(sink.producers_created(), 1u);
}

TEST(KafkaTransactionalSink, ProduceOutsideATransactionIsMisuse) {
  const auto out = unique_name("kc-ksink-out");
  create_topic(bootstrap(), out, 1);
  KafkaTransactionalSink sink(sink_options(unique_name("kc-ksink-txn")));
  try {
    produce_value(sink, out, "no-transaction");
    FAIL() << "produced outside a transaction";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::misuse) << e.what();
  }
  sink.begin();
  EXPECT_THROW(sink.begin(), kc::Error);
  sink.abort();
  EXPECT_THROW(sink.commit({}, nullptr), kc::Error);
}

// Sink A and then sink B with the same transactional.id: B's
// init_transactions fences A and aborts A's open transaction.
TEST(KafkaTransactionalSink, FencedProducerFailsItsCommitAndIsRebuiltOnResume) {
  const auto out = unique_name("kc-ksink-out");
  create_topic(bootstrap(), out, 1);
  const auto id = unique_name("kc-ksink-txn");

  KafkaTransactionalSink a(sink_options(id));
  a.begin();
  produce_value(a, out, "a-fenced");
  KafkaTransactionalSink b(sink_options(id));
  try {
    a.commit({}, nullptr);
    FAIL() << "the fenced sink's commit succeeded";
  } catch (const kc::Error& e) {
    std::printf("fenced commit threw: %s\n", e.what());
    EXPECT_EQ(e.code(), kc::errc::kafka_fatal) << e.what();
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_FALSE(e.fatal()) << e.what();
  }
  EXPECT_EQ(read_committed(out, 1), std::vector<std::string>{});
  EXPECT_EQ(a.producers_created(), 1u);

  // B works; then A's rebuilt producer fences B in turn.
  b.begin();
  produce_value(b, out, "b-1");
  b.commit({}, nullptr);

  const std::vector<TopicPartition> tps{{out, Partition{0}}};
  const auto resumed = a.resume(tps);
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_TRUE(resumed[0].owned);
  EXPECT_EQ(a.producers_created(), 2u);
  a.begin();
  produce_value(a, out, "a-2");
  a.commit({}, nullptr);
  EXPECT_EQ(read_committed(out, 1), (std::vector<std::string>{"a-2", "b-1"}));
}

TEST(KafkaTransactionalSink, FencedProducerWithoutRebuildFailsFatally) {
  const auto out = unique_name("kc-ksink-out");
  create_topic(bootstrap(), out, 1);
  const auto id = unique_name("kc-ksink-txn");

  auto options = sink_options(id);
  options.rebuild_on_fatal = false;
  KafkaTransactionalSink a(options);
  a.begin();
  produce_value(a, out, "a-fenced");
  KafkaTransactionalSink b(sink_options(id));
  try {
    a.commit({}, nullptr);
    FAIL() << "the fenced sink's commit succeeded";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::errc::kafka_fatal) << e.what();
    EXPECT_TRUE(e.fatal()) << e.what();
    EXPECT_FALSE(e.retriable()) << e.what();
  }
  // Unusable from now on: no rebuild.
  const std::vector<TopicPartition> tps{{out, Partition{0}}};
  try {
    (void)a.resume(tps);
    FAIL() << "resume() of a dead sink succeeded";
  } catch (const kc::Error& e) {
    EXPECT_TRUE(e.fatal()) << e.what();
  }
  EXPECT_THROW(a.begin(), kc::Error);
  a.abort();  // never throws
  EXPECT_EQ(a.producers_created(), 1u);
  EXPECT_EQ(read_committed(out, 1), std::vector<std::string>{});
}

// Constructing with `options` fails with `code`, and the message names `name`.
void expect_refused(const KafkaTransactionalSink::Options& options, kc::errc code, const std::string& name,
                    const char* what) {
  try {
    KafkaTransactionalSink s(options);
    ADD_FAILURE() << "constructed with " << what;
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), code) << what;
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(KafkaTransactionalSink, ConstructorNamesWhatIsWrongInTheOptions) {
  expect_refused(sink_options(""), kc::errc::config_missing, "transactional_id", "no transactional_id");
  auto unknown = sink_options(unique_name("kc-ksink-txn"));
  unknown.librdkafka["no.such.property"] = "1";
  expect_refused(unknown, kc::errc::config_unknown_key, "no.such.property", "an unknown property");
  auto invalid = sink_options(unique_name("kc-ksink-txn"));
  invalid.librdkafka["transaction.timeout.ms"] = "not-a-number";
  expect_refused(invalid, kc::errc::config_invalid_value, "transaction.timeout.ms", "an invalid value");
}

TEST(KafkaTransactionalSink, UnreachableBrokerIsARetriableConstructionError) {
  auto options = sink_options(unique_name("kc-ksink-txn"));
  options.bootstrap_servers = "127.0.0.1:1";
  options.commit_timeout = 1500ms;
  const auto start = std::chrono::steady_clock::now();
  try {
    KafkaTransactionalSink s(options);
    FAIL() << "constructed without a broker";
  } catch (const kc::Error& e) {
    std::printf("construction threw: %s\n", e.what());
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_FALSE(e.fatal()) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "not bounded by commit_timeout";
}

}  // namespace
}  // namespace kc::test
