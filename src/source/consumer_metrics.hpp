// The consumer's metrics and health state: what the poll loop counts, and
// what the HTTP endpoint's threads read. Private to the library.
//
// The poll thread is the only writer of everything but the atomics read by
// the health checks; the metric values themselves are atomics (kc/metrics.hpp),
// so a scrape never takes a lock the poll loop waits for, beyond a family's
// mutex when a new topic or partition appears.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "kc/metrics.hpp"
#include "kc/types.hpp"

namespace kc::detail {

class RdkafkaStats;

/// The per-topic series, looked up once per partition assignment.
struct TopicMetrics {
  metrics::Counter* consumed = nullptr;
  metrics::Counter* processed = nullptr;
  metrics::Counter* failed = nullptr;
  metrics::Counter* retried = nullptr;
  metrics::Counter* dead_lettered = nullptr;
  metrics::Histogram* processing = nullptr;
  metrics::Histogram* end_to_end = nullptr;
};

class ConsumerMetrics {
 public:
  ConsumerMetrics();
  ~ConsumerMetrics();

  metrics::Registry& registry() noexcept { return *registry_; }

  /// Poll thread only: the series of one topic (created on first use).
  TopicMetrics* topic(const std::string& name);

  /// A record's processing took `seconds`; its timestamp (ms since the
  /// epoch, <= 0 when unknown) gives the end-to-end latency.
  static void observe(TopicMetrics& t, double seconds, std::int64_t timestamp_ms) noexcept;

  void rebalance(const char* event) { rebalances_->with({event}).inc(); }
  void commit(bool ok) noexcept { (ok ? commits_ : commit_failures_)->inc(); }
  /// Exactly-once: a sink transaction committed or aborted.
  void transaction(bool committed) noexcept { (committed ? transactions_ : transactions_aborted_)->inc(); }
  void committed(const TopicPartition& tp, std::int64_t offset);
  void forget(const TopicPartition& tp);
  /// Gauges of the loop's state; cheap, called at most a few times a second.
  void loop_state(double in_flight, double paused, double assigned) noexcept;
  /// librdkafka's statistics JSON (the stats callback, poll thread).
  void rdkafka_stats(const char* json, std::size_t size);

  // Health, read by the endpoint's threads.
  void running(bool on) noexcept;
  void polled() noexcept {
    last_poll_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  void joined(bool on) noexcept { joined_.store(on, std::memory_order_relaxed); }
  void stopping() noexcept { stopping_.store(true, std::memory_order_relaxed); }
  /// The reason the consumer stopped for good (a fatal error); thread-safe.
  void failed(const std::string& why);
  metrics::Health liveness(std::chrono::milliseconds max_gap, std::chrono::milliseconds max_poll_interval) const;
  metrics::Health readiness() const;

 private:
  std::optional<metrics::Health> fatal_health() const;

  std::unique_ptr<metrics::Registry> registry_;
  metrics::Family<metrics::Counter>* consumed_;
  metrics::Family<metrics::Counter>* processed_;
  metrics::Family<metrics::Counter>* failed_;
  metrics::Family<metrics::Counter>* retried_;
  metrics::Family<metrics::Counter>* dead_lettered_;
  metrics::Family<metrics::Histogram>* processing_;
  metrics::Family<metrics::Histogram>* end_to_end_;
  metrics::Family<metrics::Counter>* rebalances_;
  metrics::Counter* commits_;
  metrics::Counter* commit_failures_;
  metrics::Counter* transactions_;
  metrics::Counter* transactions_aborted_;
  metrics::Family<metrics::Gauge>* committed_offset_;
  metrics::Gauge* in_flight_;
  metrics::Gauge* paused_;
  metrics::Gauge* assigned_;
  metrics::Gauge* poll_age_;
  std::unique_ptr<RdkafkaStats> rdkafka_;
  std::unordered_map<std::string, std::unique_ptr<TopicMetrics>> topics_;

  std::atomic<std::int64_t> last_poll_ns_{0};
  std::atomic<int> state_{0};  // 0: not started, 1: running, 2: run() returned
  std::atomic<bool> joined_{false};
  std::atomic<bool> stopping_{false};
  mutable std::mutex failed_mu_;
  std::string fatal_;
};

}  // namespace kc::detail
