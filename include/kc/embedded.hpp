// kc::EmbeddedBroker: librdkafka's mock cluster, in-process, for running kc
// with nothing else installed (and for fault-injection tests). Not a real
// broker: use Apache Kafka for anything that must behave like production.
#pragma once

#include <memory>
#include <string>

namespace kc {

/// An in-process mock Kafka cluster listening on loopback. Clients in this
/// or another process reach it through bootstrap_servers() for as long as
/// this object lives.
/// Threads: the cluster runs on its own librdkafka thread; the methods may be
/// called from any thread. Destruction blocks until that thread has stopped.
class EmbeddedBroker {
 public:
  /// Starts `brokers` mock brokers (a new group gets its first assignment at
  /// once: no initial rebalance delay). Throws kc::Error if librdkafka cannot.
  explicit EmbeddedBroker(int brokers = 1);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  /// "127.0.0.1:port,..." of the mock brokers.
  const std::string& bootstrap_servers() const noexcept;

  /// Creates a topic (no-op error if it exists). Does not block on I/O.
  /// Throws kc::Error on failure.
  void create_topic(const std::string& name, int partitions);

  /// The underlying rd_kafka_mock_cluster_t*, for fault injection in tests
  /// (include <librdkafka/rdkafka_mock.h> to use it).
  void* raw() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
