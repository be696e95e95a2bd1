#include "source/consumer_metrics.hpp"

#include <fmt/format.h>

#include "metrics/rdkafka_stats.hpp"

namespace kc::detail {

namespace {
using steady = std::chrono::steady_clock;

double seconds_since(std::int64_t steady_ns) {
  const auto now = steady::now().time_since_epoch().count();
  return static_cast<double>(now - steady_ns) / 1e9;
}
}  // namespace

ConsumerMetrics::ConsumerMetrics() : registry_(std::make_unique<metrics::Registry>()) {
  auto& r = *registry_;
  consumed_ = &r.counter("kc_messages_consumed_total", "Handler calls (a record retried twice counts 3).", {"topic"});
  processed_ = &r.counter("kc_messages_processed_total", "Records whose handler finished them (done).", {"topic"});
  failed_ =
      &r.counter("kc_messages_failed_total", "Handler calls that failed (retried or dead afterwards).", {"topic"});
  retried_ = &r.counter("kc_messages_retried_total", "Retries scheduled.", {"topic"});
  dead_lettered_ =
      &r.counter("kc_messages_dead_lettered_total", "Records whose dead letter the broker acknowledged.", {"topic"});
  processing_ = &r.histogram("kc_processing_seconds", "Handler time per call.", metrics::latency_buckets(), {"topic"});
  end_to_end_ =
      &r.histogram("kc_end_to_end_latency_seconds", "From the record's timestamp to the end of its processing.",
                   metrics::latency_buckets(), {"topic"});
  in_flight_ = &r.gauge("kc_in_flight", "Records being processed now.").with();
  paused_ =
      &r.gauge("kc_paused_partitions", "Assigned partitions kc holds paused (retry wait, backpressure, halt).").with();
  assigned_ = &r.gauge("kc_assigned_partitions", "Partitions assigned to this member.").with();
  commits_ = &r.counter("kc_commits_total", "Offset commits the broker acknowledged.").with();
  commit_failures_ = &r.counter("kc_commit_failures_total", "Offset commits that failed (retried later).").with();
  transactions_ = &r.counter("kc_transactions_total", "Exactly-once: sink transactions committed.").with();
  transactions_aborted_ =
      &r.counter("kc_transactions_aborted_total", "Exactly-once: sink transactions aborted (then rewound).").with();
  rebalances_ = &r.counter("kc_rebalances_total", "Rebalance events by kind (assign, revoke, lost).", {"event"});
  committed_offset_ =
      &r.gauge("kc_partition_committed_offset", "Last committed offset (the next to read) acknowledged per partition.",
               {"topic", "partition"});
  poll_age_ = &r.gauge("kc_poll_age_seconds", "Seconds since the poll loop last ran.").with();
  rdkafka_ = std::make_unique<RdkafkaStats>(r);
  r.on_collect([this] {
    const auto last = last_poll_ns_.load(std::memory_order_relaxed);
    poll_age_->set(last == 0 ? 0.0 : seconds_since(last));
  });
}

ConsumerMetrics::~ConsumerMetrics() = default;

TopicMetrics* ConsumerMetrics::topic(const std::string& name) {
  auto& slot = topics_[name];
  if (!slot) {
    slot = std::make_unique<TopicMetrics>();
    const metrics::LabelValues l{name};
    slot->consumed = &consumed_->with(l);
    slot->processed = &processed_->with(l);
    slot->failed = &failed_->with(l);
    slot->retried = &retried_->with(l);
    slot->dead_lettered = &dead_lettered_->with(l);
    slot->processing = &processing_->with(l);
    slot->end_to_end = &end_to_end_->with(l);
  }
  return slot.get();
}

void ConsumerMetrics::observe(TopicMetrics& t, double seconds, std::int64_t timestamp_ms) noexcept {
  t.processing->observe(seconds);
  if (timestamp_ms > 0) {
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    // Clocks of producers and brokers differ: a timestamp from the future counts as 0.
    t.end_to_end->observe(now_ms > timestamp_ms ? static_cast<double>(now_ms - timestamp_ms) / 1e3 : 0.0);
  }
}

void ConsumerMetrics::committed(const TopicPartition& tp, std::int64_t offset) {
  committed_offset_->with({tp.topic, std::to_string(to_int(tp.partition))}).set(static_cast<double>(offset));
}

void ConsumerMetrics::forget(const TopicPartition& tp) {
  committed_offset_->remove({tp.topic, std::to_string(to_int(tp.partition))});
}

void ConsumerMetrics::loop_state(double in_flight, double paused, double assigned) noexcept {
  in_flight_->set(in_flight);
  paused_->set(paused);
  assigned_->set(assigned);
}

void ConsumerMetrics::rdkafka_stats(const char* json, std::size_t size) {
  rdkafka_->publish({json, size});
}

void ConsumerMetrics::running(bool on) noexcept {
  if (on) {
    polled();
  }
  state_.store(on ? 1 : 2, std::memory_order_relaxed);
}

void ConsumerMetrics::failed(const std::string& why) {
  std::lock_guard lock(failed_mu_);
  fatal_ = why;
}

std::optional<metrics::Health> ConsumerMetrics::fatal_health() const {
  std::lock_guard lock(failed_mu_);
  if (fatal_.empty()) {
    return std::nullopt;
  }
  return metrics::Health{false, "stopped by a fatal error: " + fatal_ + "\n"};
}

metrics::Health ConsumerMetrics::liveness(std::chrono::milliseconds max_gap,
                                          std::chrono::milliseconds max_poll_interval) const {
  if (auto h = fatal_health()) {
    return *h;
  }
  const int state = state_.load(std::memory_order_relaxed);
  if (state == 0) {
    return {true, "ok: not running yet\n"};
  }
  if (state == 2) {
    return {false, "the poll loop has ended (the consumer stopped)\n"};
  }
  const double age = seconds_since(last_poll_ns_.load(std::memory_order_relaxed));
  const double limit = static_cast<double>(max_gap.count()) / 1e3;
  if (age > limit) {
    return {false, fmt::format("the poll loop has not run for {:.1f} s (limit {:.1f} s; the group evicts the member "
                               "after max.poll.interval.ms = {} ms): a handler is blocked or too slow\n",
                               age, limit, max_poll_interval.count())};
  }
  return {true, "ok\n"};
}

metrics::Health ConsumerMetrics::readiness() const {
  if (auto h = fatal_health()) {
    return *h;
  }
  const int state = state_.load(std::memory_order_relaxed);
  if (state == 0) {
    return {false, "not running yet\n"};
  }
  if (state == 2 || stopping_.load(std::memory_order_relaxed)) {
    return {false, "stopping\n"};
  }
  if (!joined_.load(std::memory_order_relaxed)) {
    return {false, "not in the group yet (waiting for the first assignment)\n"};
  }
  return {true, "ok\n"};
}

}  // namespace kc::detail
