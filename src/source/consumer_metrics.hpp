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
#include <vector>

#include "kc/metrics.hpp"
#include "kc/types.hpp"

namespace kc::detail {

class RdkafkaStats;

/// One topic's per-record counts. The poll thread counts here without
/// atomics, and ConsumerMetrics::publish() adds them to the registry's series
/// every 256 records of the topic, every 250 ms and at the end of a run (an
/// atomic increment per count and histogram per record cost ~15% of kc's
/// throughput in bench/). A scrape is thus up to 250 ms behind. Found once
/// per partition assignment.
struct TopicMetrics {
  std::uint64_t consumed = 0;
  std::uint64_t processed = 0;
  std::uint64_t failed = 0;
  std::uint64_t retried = 0;
  std::uint64_t dead_lettered = 0;
  std::vector<std::uint64_t> processing;  // per bucket of the series' bounds (+1)
  std::vector<std::uint64_t> end_to_end;
  double processing_sum = 0;
  double end_to_end_sum = 0;
  std::uint32_t observed = 0;  // since the last publish

  struct Series {
    metrics::Counter* consumed = nullptr;
    metrics::Counter* processed = nullptr;
    metrics::Counter* failed = nullptr;
    metrics::Counter* retried = nullptr;
    metrics::Counter* dead_lettered = nullptr;
    metrics::Histogram* processing = nullptr;
    metrics::Histogram* end_to_end = nullptr;
  } series;
};

class ConsumerMetrics {
 public:
  ConsumerMetrics();
  ~ConsumerMetrics();

  metrics::Registry& registry() noexcept { return *registry_; }

  /// Poll thread only: the series of one topic (created on first use).
  TopicMetrics* topic(const std::string& name);

  /// Poll thread, once per loop iteration: the wall clock at `now`, from
  /// which observe() derives the wall clock of its end without a clock read.
  void clock(std::chrono::steady_clock::time_point now) noexcept;
  /// Poll thread: a handler call ran from `began` to `end`; the record's
  /// timestamp (ms since the epoch, <= 0 when unknown) gives the end-to-end
  /// latency.
  void observe(TopicMetrics& t, std::chrono::steady_clock::time_point began, std::chrono::steady_clock::time_point end,
               std::int64_t timestamp_ms) noexcept {
    ++t.observed;
    const double seconds = std::chrono::duration<double>(end - began).count();
    ++t.processing[t.series.processing->bucket_of(seconds)];
    t.processing_sum += seconds;
    if (timestamp_ms > 0) {
      const auto wall_ms = wall_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(end - steady_).count();
      // Clocks of producers and brokers differ: a timestamp from the future counts as 0.
      const double e2e = wall_ms > timestamp_ms ? static_cast<double>(wall_ms - timestamp_ms) / 1e3 : 0.0;
      ++t.end_to_end[t.series.end_to_end->bucket_of(e2e)];
      t.end_to_end_sum += e2e;
    }
    if (t.observed >= 256) {
      publish(t);
    }
  }
  /// Poll thread: adds what `t` (every topic) counted since the last publish
  /// to the registry.
  static void publish(TopicMetrics& t) noexcept;
  void publish() noexcept;

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
  /// A problem the poll loop sees now (source/problems.hpp).
  struct Problem {
    std::string kind;
    std::string subject;
    std::string text;
  };
  /// Poll thread: the problems now (replaces the previous list): /readyz
  /// answers 503 with one line each, and kc_problem{kind,subject} is 1 for
  /// each (series of problems that ended are removed).
  void problems(std::vector<Problem> now);
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
  std::chrono::steady_clock::time_point steady_;  // clock(): the loop's `now`
  std::int64_t wall_ms_ = 0;                      // ... and the wall clock then
  std::unordered_map<std::string, std::unique_ptr<TopicMetrics>> topics_;

  std::atomic<std::int64_t> last_poll_ns_{0};
  std::atomic<int> state_{0};  // 0: not started, 1: running, 2: run() returned
  std::atomic<bool> joined_{false};
  std::atomic<bool> stopping_{false};
  mutable std::mutex failed_mu_;
  std::string fatal_;
  std::vector<Problem> problems_;  // under failed_mu_
  metrics::Family<metrics::Gauge>* problem_;
};

}  // namespace kc::detail
