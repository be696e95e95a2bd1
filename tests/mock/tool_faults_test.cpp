// The kc tool against faults only librdkafka's mock cluster can inject (the
// cluster lives in this process; the tool reaches it over loopback).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>

#include "kc/embedded.hpp"
#include "support/common.hpp"
#include "support/kc_tool.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

constexpr std::int16_t kListOffsetsApiKey = 2;

// A topic created a moment ago may not have its leader everywhere yet: the
// first ListOffsets are answered NOT_LEADER_OR_FOLLOWER (seen on the real
// broker: `kc dlq inspect` right after creating the topic exited 1 with
// "Broker: Not leader for partition"). The tool must ride that out.
TEST(ToolFaults, DlqInspectRidesOutALeaderElection) {
  EmbeddedBroker broker(1);
  const auto dlq = unique_name("kc-mock-dlq-leader");
  broker.create_topic(dlq, 3);
  auto* mock = static_cast<rd_kafka_mock_cluster_t*>(broker.raw());
  rd_kafka_mock_push_request_errors(mock, kListOffsetsApiKey, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  TempDir dir("kc-tool-faults-leader");
  const auto r = run_tool(dir, {"dlq", "inspect", "--topic", dlq, "-b", broker.bootstrap_servers(), "--json"}, 60s);
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("shown 0 / 0 read"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kc::test
