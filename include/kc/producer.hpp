// kc::Producer: an idempotent producer (acks=all) with delivery accounting.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/message.hpp"

namespace kc {

struct ProducerConfig {
  /// Empty: an embedded (mock) broker is started in-process and owned by the producer.
  std::string bootstrap_servers;
  /// librdkafka properties; kc sets enable.idempotence=true and acks=all
  /// unless given here.
  std::map<std::string, std::string> librdkafka;
};

/// Delivery counts so far.
struct DeliveryStats {
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;
  std::string last_error;  ///< the most recent delivery error, if any
};

/// Produces records and counts what the broker acknowledged.
/// Threads: one thread at a time (delivery reports are served inside
/// produce(), poll() and flush() on the calling thread).
class Producer {
 public:
  /// Creates the client (no network I/O yet). Throws kc::Error naming a bad key.
  explicit Producer(ProducerConfig config);
  /// Flushes for up to 10 s, then destroys the client. Never throws.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Enqueues one record (copied). When librdkafka's local queue is full it
  /// serves delivery reports and retries, so it blocks at most until space
  /// frees up. partition < 0 lets the partitioner choose (by key).
  /// Header values may be null (nullopt), distinct from empty.
  /// Throws kc::Error for a fatal producer error or an unknown topic.
  void produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
               std::int32_t partition = -1,
               const std::vector<std::pair<std::string, std::optional<std::string>>>& headers = {});

  /// Serves delivery reports; does not block.
  void poll();
  /// Waits up to `timeout` for every queued record to be acknowledged or
  /// fail. Returns true when nothing is left in flight.
  bool flush(std::chrono::milliseconds timeout);

  const DeliveryStats& stats() const noexcept;
  /// Records enqueued and not yet acknowledged or failed.
  std::size_t in_flight() const noexcept;
  const std::string& bootstrap_servers() const noexcept;

  struct Impl;  // opaque; public only so librdkafka's C callbacks can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
