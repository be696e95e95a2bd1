// librdkafka's statistics JSON (statistics.interval.ms) as kc metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>

#include "kc/metrics.hpp"

namespace simdjson::dom {
class parser;
}

namespace kc::detail {

/// Turns each statistics JSON of one librdkafka handle into metrics of
/// `registry`:
/// - `kc_librdkafka_replyq` (gauge): ops waiting for the application's poll;
/// - `kc_librdkafka_rx_messages_total`, `kc_librdkafka_rx_bytes_total`,
///   `kc_librdkafka_tx_requests_total` (counters): librdkafka's cumulative
///   rxmsgs, rx_bytes and tx, added as the difference from the last publish;
/// - `kc_librdkafka_broker_rtt_seconds{broker}` (gauge): the mean round trip
///   of the last statistics window, for brokers that had one (not the
///   internal broker);
/// - per partition the handle fetches (desired by the application, or with a
///   fetch state other than none/stopping/stopped; never partition -1):
///   `kc_partition_lag{topic,partition}` (consumer_lag, only when known) and
///   `kc_partition_high_watermark{topic,partition}` (hi_offset); a partition
///   (or broker) absent from a later publish is removed (and freed);
/// - `kc_librdkafka_fetch_queue_messages` (gauge): fetchq_cnt, the length of
///   the consumer queue all partitions share (so not per partition).
///
/// One RdkafkaStats per librdkafka handle; two on the same registry would
/// write the same series. `registry` must outlive this object.
/// Thread-safe (a mutex), though librdkafka calls its stats callback from
/// one thread (the poll thread).
class RdkafkaStats {
 public:
  /// Registers the families. Throws std::invalid_argument when `registry`
  /// already has one of these names with another type or labels.
  explicit RdkafkaStats(metrics::Registry& registry);
  ~RdkafkaStats();
  RdkafkaStats(const RdkafkaStats&) = delete;
  RdkafkaStats& operator=(const RdkafkaStats&) = delete;

  /// Reads one statistics JSON and updates the metrics. Never throws: JSON it
  /// cannot read changes nothing and logs a warning (once per object).
  /// Blocks only for the parse (well under a millisecond for a few hundred
  /// partitions).
  void publish(std::string_view json) noexcept;

 private:
  // The children of a labelled gauge family set by the current publish,
  // so those of the previous publish that it did not set can be removed.
  // Looked up with with() on every set(): remove() frees a child.
  struct Tracked {
    explicit Tracked(metrics::Family<metrics::Gauge>& f) : family(&f) {}
    metrics::Family<metrics::Gauge>* family;
    std::set<metrics::LabelValues> previous;
    std::set<metrics::LabelValues> current;

    void set(const metrics::LabelValues& labels, double value);
    /// Keeps the child's last value (a window without a sample).
    void keep(const metrics::LabelValues& labels);
    void finish();  // removes previous - current
  };
  // librdkafka's cumulative count as a counter: adds what it grew by.
  struct Cumulative {
    explicit Cumulative(metrics::Counter& c) : counter(&c) {}
    metrics::Counter* counter;
    std::uint64_t last = 0;

    void update(std::int64_t value);
  };

  void publish_locked(std::string_view json);

  std::mutex mu_;
  std::unique_ptr<simdjson::dom::parser> parser_;  // reused: its buffers grow once
  metrics::Gauge& replyq_;
  Cumulative rx_messages_;
  Cumulative rx_bytes_;
  Cumulative tx_requests_;
  Tracked rtt_;
  Tracked lag_;
  Tracked high_watermark_;
  metrics::Gauge& fetch_queue_;
  bool warned_ = false;
};

}  // namespace kc::detail
