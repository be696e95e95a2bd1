// The consumer fixture of the mock tests: librdkafka's mock cluster
// (kc::EmbeddedBroker) and the consumer configuration every mock test starts
// from. Header-only, for tests/mock only (included as
// "mock/consumer_fixture.hpp"); a test that includes it links
// kc::test_support, which committed_offsets() comes from.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kc/config.hpp"
#include "kc/embedded.hpp"
#include "support/kafka.hpp"

namespace kc::test {

/// A consumer of `topic` in `group` on the mock cluster `broker`, starting
/// from the beginning where the group has committed nothing; everything else
/// is kc's default (so no idle exit). Does not block, throws nothing.
inline kc::ConsumerConfig mock_consumer_config(const kc::EmbeddedBroker& broker, const std::string& group,
                                               const std::string& topic) {
  kc::ConsumerConfig c;
  c.bootstrap_servers = broker.bootstrap_servers();
  c.group = group;
  c.topics = {topic};
  c.from_beginning = true;
  return c;
}

/// A fixture for tests whose consumers all read one topic of a one-broker
/// mock cluster, made anew for each test (it goes with the fixture). The
/// derived fixture names the topic and creates and fills it in its SetUp();
/// config() and committed() refer to it. Use from the test's thread.
class OneTopicOnMock : public ::testing::Test {
 protected:
  /// `topic` with `partitions` (created by the derived fixture); `idle_exit`
  /// is config()'s ConsumerConfig::idle_exit, so that run() returns once the
  /// topic is drained.
  OneTopicOnMock(std::string topic, int partitions, std::chrono::milliseconds idle_exit)
      : topic_(std::move(topic)), partitions_(partitions), idle_exit_(idle_exit) {}

  /// mock_consumer_config() for the topic in `group`, with the idle exit.
  kc::ConsumerConfig config(const std::string& group) const {
    auto c = mock_consumer_config(broker_, group, topic_);
    c.idle_exit = idle_exit_;
    return c;
  }

  /// What `group` has committed on each partition of the topic (-1 where
  /// nothing), read as another client would (kc::test::committed_offsets).
  /// Throws kc::test::Failure when the cluster does not answer.
  std::vector<std::int64_t> committed(const std::string& group) const {
    return committed_offsets(broker_.bootstrap_servers(), group, topic_, partitions_);
  }

  kc::EmbeddedBroker broker_{1};
  const std::string topic_;
  const int partitions_;
  const std::chrono::milliseconds idle_exit_;
};

}  // namespace kc::test
