// `kc lag` against the real broker: committed offsets written by the test
// itself (a plain librdkafka consumer committing an explicit list, never
// joining the group), end offsets from known production, owners from a
// running `kc consume` in the group, and an unknown group.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/common.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

// The kc tool, run to the end.
ToolRun run_kc(const TempDir& dir, const std::vector<std::string>& args, std::chrono::seconds timeout = 30s) {
  return run_tool(dir, args, timeout);
}

// Commits `offsets` (partition -> offset) of `topic` for `group` with a
// plain consumer that never subscribes: a synchronous rd_kafka_commit of an
// explicit list.
void commit_offsets(const std::string& bootstrap, const std::string& group, const std::string& topic,
                    const std::map<int, std::int64_t>& offsets) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"bootstrap.servers", bootstrap}, {"group.id", group}, {"enable.auto.commit", "false"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw Failure("commit_offsets: " + k + ": " + err);
    }
  }
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (raw == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw Failure(std::string("commit_offsets: ") + err);
  }
  std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> rk(raw, &rd_kafka_destroy);
  std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)> list(
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())), &rd_kafka_topic_partition_list_destroy);
  for (const auto& [p, off] : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = off;
  }
  // The coordinator may still be loading right after startup: retry briefly.
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  const bool ok = wait_until(
      [&] {
        e = rd_kafka_commit(rk.get(), list.get(), 0);
        return e == RD_KAFKA_RESP_ERR_NO_ERROR;
      },
      15s, 200ms);
  rd_kafka_consumer_close(rk.get());
  if (!ok) {
    throw Failure("commit_offsets of group " + group + ": " + rd_kafka_err2name(e));
  }
}

struct Partition {
  std::string topic;
  std::int64_t partition = 0;
  std::optional<std::int64_t> committed;
  std::int64_t end = 0;
  std::optional<std::int64_t> lag;
  std::optional<std::string> owner_client_id;
  std::optional<std::string> owner_member_id;
};

struct Lag {
  std::string group;
  std::string state;
  std::vector<Partition> partitions;
  std::int64_t total = 0;
};

std::optional<std::int64_t> opt_int(simdjson::dom::element e) {
  if (e.is_null()) {
    return std::nullopt;
  }
  return std::int64_t(e.get_int64());
}

Lag parse_lag(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    throw Failure("kc lag --json printed no JSON object:\n" + text);
  }
  Lag out;
  out.group = std::string(std::string_view(doc["group"]));
  out.state = std::string(std::string_view(doc["state"]));
  out.total = std::int64_t(doc["total_lag"]);
  for (auto p : simdjson::dom::array(doc["partitions"])) {
    Partition row;
    row.topic = std::string(std::string_view(p["topic"]));
    row.partition = std::int64_t(p["partition"]);
    row.committed = opt_int(p["committed"]);
    row.end = std::int64_t(p["end"]);
    row.lag = opt_int(p["lag"]);
    if (!p["owner"].is_null()) {
      row.owner_client_id = std::string(std::string_view(p["owner"]["client_id"]));
      row.owner_member_id = std::string(std::string_view(p["owner"]["member_id"]));
    }
    out.partitions.push_back(std::move(row));
  }
  return out;
}

// A fresh 3-partition topic with 20 records in each partition.
class LagTool : public ::testing::Test {
 protected:
  void SetUp() override {
    bs_ = bootstrap();
    topic_ = unique_name("kc-lag");
    create_topic(bs_, topic_, 3);
    // 20 records per partition (record i to partition i % 3).
    ProduceOptions po;
    po.partitions = 3;
    produce(bs_, topic_, 60, po);
    ends_ = high_watermarks(bs_, topic_, 3);
    ASSERT_EQ(ends_, (std::vector<std::int64_t>{20, 20, 20}));
  }

  std::string bs_;
  std::string topic_;
  std::vector<std::int64_t> ends_;
  TempDir dir_{"kc-lag-test"};
};

TEST_F(LagTool, ReportsCommittedEndAndLagPerPartition) {
  const auto group = unique_name("kc-lag-g");
  // Partition 2 gets no commit: it must show up without one.
  commit_offsets(bs_, group, topic_, {{0, 5}, {1, 20}});

  const auto r = run_kc(dir_, {"lag", "-b", bs_, "--group", group, "--json"});
  ASSERT_TRUE(r.status.ok()) << describe(r);
  const auto lag = parse_lag(r.out);
  EXPECT_EQ(lag.group, group);
  EXPECT_EQ(lag.state, "Empty") << r.out;
  ASSERT_EQ(lag.partitions.size(), 3u) << r.out;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& p = lag.partitions[i];
    EXPECT_EQ(p.topic, topic_);
    EXPECT_EQ(p.partition, static_cast<std::int64_t>(i));
    EXPECT_EQ(p.end, 20);
    EXPECT_FALSE(p.owner_client_id) << r.out;
  }
  EXPECT_EQ(lag.partitions[0].committed, 5);
  EXPECT_EQ(lag.partitions[0].lag, 15);
  EXPECT_EQ(lag.partitions[1].committed, 20);
  EXPECT_EQ(lag.partitions[1].lag, 0);
  EXPECT_EQ(lag.partitions[2].committed, std::nullopt);
  EXPECT_EQ(lag.partitions[2].lag, std::nullopt);
  EXPECT_EQ(lag.total, 15);

  // --topic gives the same rows; the table shows the same numbers.
  const auto t = run_kc(dir_, {"lag", "-b", bs_, "--group", group, "--topic", topic_});
  ASSERT_TRUE(t.status.ok()) << describe(t);
  const auto find_row = [&](int partition) -> std::vector<std::string> {
    std::istringstream in(t.out);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::vector<std::string> w;
      for (std::string x; words >> x;) {
        w.push_back(x);
      }
      if (w.size() >= 5 && w[0] == topic_ && w[1] == std::to_string(partition)) {
        return w;
      }
    }
    throw Failure("no table row for partition " + std::to_string(partition) + ":\n" + t.out);
  };
  EXPECT_EQ(find_row(0), (std::vector<std::string>{topic_, "0", "5", "20", "15", "-"}));
  EXPECT_EQ(find_row(1), (std::vector<std::string>{topic_, "1", "20", "20", "0", "-"}));
  EXPECT_EQ(find_row(2), (std::vector<std::string>{topic_, "2", "-", "20", "-", "-"}));
  EXPECT_NE(t.out.find("total lag: 15"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("Empty"), std::string::npos) << t.out;
}

TEST_F(LagTool, ShowsTheOwnerOfEachPartitionOfAnActiveGroup) {
  // The classic protocol and KIP-848's consumer protocol.
  for (const std::string protocol : {"classic", "consumer"}) {
    SCOPED_TRACE("group.protocol=" + protocol);
    const auto group = unique_name("kc-lag-active");
    const auto client_id = "kc-lag-test-" + protocol;
    Subprocess consumer(kc_tool_path(),
                        {"consume", "-b", bs_, "--group", group, "--topic", topic_, "--from-beginning", "--sink",
                         "null", "-X", "client.id=" + client_id, "-X", "group.protocol=" + protocol},
                        dir_ / ("consume-" + protocol + ".out"), dir_ / ("consume-" + protocol + ".err"));
    ASSERT_TRUE(wait_until([&] { return owned_partitions(consumer.stderr_text(), topic_).size() == 3; }, 20s))
        << kc::test::describe(consumer);

    // The broker's view follows the assignment: wait until kc lag shows it
    // (and the records read from the beginning committed).
    Lag lag;
    ToolRun last;
    const bool shown = wait_until(
        [&] {
          last = run_kc(dir_, {"lag", "-b", bs_, "--group", group, "--json"});
          if (!last.status.ok()) {
            return false;
          }
          lag = parse_lag(last.out);
          if (lag.partitions.size() != 3) {
            return false;
          }
          for (const auto& p : lag.partitions) {
            if (p.owner_client_id != client_id || p.lag != 0) {
              return false;
            }
          }
          return true;
        },
        15s, 300ms);
    EXPECT_TRUE(shown) << describe(last);
    EXPECT_EQ(lag.state, "Stable") << last.out;
    EXPECT_EQ(lag.total, 0);
    for (const auto& p : lag.partitions) {
      EXPECT_TRUE(p.owner_member_id && !p.owner_member_id->empty()) << last.out;
    }
    const auto t = run_kc(dir_, {"lag", "-b", bs_, "--group", group});
    ASSERT_TRUE(t.status.ok()) << describe(t);
    EXPECT_NE(t.out.find(client_id + " / "), std::string::npos) << t.out;

    consumer.signal(SIGTERM);
    const auto st = consumer.wait(20s);
    ASSERT_TRUE(st) << kc::test::describe(consumer);
  }
}

TEST_F(LagTool, UnknownGroupExitsNonZeroNamingIt) {
  const auto group = unique_name("kc-lag-nobody");
  const auto r = run_kc(dir_, {"lag", "-b", bs_, "--group", group});
  EXPECT_EQ(r.status.to_string(), "exit 1") << describe(r);
  EXPECT_NE(r.err.find(group), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << describe(r);
  EXPECT_EQ(r.out, "");
}

TEST_F(LagTool, UnreachableBrokerFailsWithinTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_kc(dir_, {"lag", "-b", "127.0.0.1:1", "--group", "g", "--timeout-ms", "2000"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status.to_string(), "exit 1") << describe(r);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << describe(r);
  EXPECT_LT(took, 8s);
}

}  // namespace
}  // namespace kc::test
