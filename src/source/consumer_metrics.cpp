#include "source/consumer_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

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
  problem_ = &r.gauge("kc_problem",
                      "1 while a problem lasts (kind: authentication, tls, authorization, brokers_down, "
                      "topic_missing, dead_letter_topic_missing, partition_halted, sink_stalled, commits_failing).",
                      {"kind", "subject"});
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
    auto& s = slot->series;
    s.consumed = &consumed_->with(l);
    s.processed = &processed_->with(l);
    s.failed = &failed_->with(l);
    s.retried = &retried_->with(l);
    s.dead_lettered = &dead_lettered_->with(l);
    s.processing = &processing_->with(l);
    s.end_to_end = &end_to_end_->with(l);
    slot->processing.assign(s.processing->bounds().size() + 1, 0);
    slot->end_to_end.assign(s.end_to_end->bounds().size() + 1, 0);
  }
  return slot.get();
}

void ConsumerMetrics::clock(std::chrono::steady_clock::time_point now) noexcept {
  steady_ = now;
  wall_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
}

void ConsumerMetrics::publish(TopicMetrics& t) noexcept {
  const auto flush = [](std::uint64_t& n, metrics::Counter* c) {
    if (n != 0) {
      c->inc(n);
      n = 0;
    }
  };
  flush(t.consumed, t.series.consumed);
  flush(t.processed, t.series.processed);
  flush(t.failed, t.series.failed);
  flush(t.retried, t.series.retried);
  flush(t.dead_lettered, t.series.dead_lettered);
  if (t.observed != 0) {
    t.series.processing->add(t.processing, t.processing_sum);
    t.series.end_to_end->add(t.end_to_end, t.end_to_end_sum);
    std::fill(t.processing.begin(), t.processing.end(), 0);
    std::fill(t.end_to_end.begin(), t.end_to_end.end(), 0);
    t.processing_sum = 0;
    t.end_to_end_sum = 0;
    t.observed = 0;
  }
}

void ConsumerMetrics::publish() noexcept {
  for (auto& [name, t] : topics_) {
    publish(*t);
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

void ConsumerMetrics::problems(std::vector<Problem> now) {
  std::vector<Problem> before;
  {
    std::lock_guard lock(failed_mu_);
    before.swap(problems_);
    problems_ = now;
  }
  for (const auto& p : before) {
    const bool still = std::any_of(now.begin(), now.end(), [&](const Problem& q) {
      return q.kind == p.kind && q.subject == p.subject;
    });
    if (!still) {
      problem_->remove({p.kind, p.subject});
    }
  }
  for (const auto& p : now) {
    problem_->with({p.kind, p.subject}).set(1);
  }
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
  {
    std::lock_guard lock(failed_mu_);
    if (!problems_.empty()) {
      std::string body;
      for (const auto& p : problems_) {
        body += p.kind;
        if (!p.subject.empty()) {
          body += ' ';
          body += p.subject;
        }
        body += ": ";
        body += p.text;
        body += '\n';
      }
      return {false, body};
    }
  }
  if (!joined_.load(std::memory_order_relaxed)) {
    return {false, "not in the group yet (waiting for the first assignment)\n"};
  }
  return {true, "ok\n"};
}

}  // namespace kc::detail
