// librdkafka statistics -> metrics. Field meanings: librdkafka's
// STATISTICS.md.
//
// Which partitions: librdkafka keeps a toppar object (and reports it) for
// every partition it ever knew, long after a revoke (fetch_state "stopped",
// desired false), plus the UA partition -1. Only the partitions the
// consumer fetches now are exported, so a revoked partition's lag does not
// linger in dashboards.
//
// fetchq_cnt: librdkafka reports the length of the queue the partition's
// fetch queue forwards to, which for the high-level consumer is the shared
// consumer queue; every partition shows the same number, so it is exported
// once (the largest), not per partition.
#include "metrics/rdkafka_stats.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace kc::detail {

namespace {

std::int64_t int_or(simdjson::dom::element e, std::string_view key, std::int64_t fallback) {
  std::int64_t v = 0;
  return e[key].get_int64().get(v) == simdjson::SUCCESS ? v : fallback;
}

std::string_view string_or(simdjson::dom::element e, std::string_view key, std::string_view fallback) {
  std::string_view v;
  return e[key].get_string().get(v) == simdjson::SUCCESS ? v : fallback;
}

bool fetching(simdjson::dom::element p) {
  bool desired = false;
  if (p["desired"].get_bool().get(desired) == simdjson::SUCCESS && desired) {
    return true;
  }
  const auto state = string_or(p, "fetch_state", "none");
  return state != "none" && state != "stopping" && state != "stopped";
}

}  // namespace

void RdkafkaStats::Tracked::set(const metrics::LabelValues& labels, double value) {
  family->with(labels).set(value);
  current.insert(labels);
}

void RdkafkaStats::Tracked::keep(const metrics::LabelValues& labels) {
  if (previous.contains(labels)) {
    current.insert(labels);
  }
}

void RdkafkaStats::Tracked::finish() {
  for (const auto& labels : previous) {
    if (!current.contains(labels)) {
      family->remove(labels);
    }
  }
  previous = std::move(current);
  current.clear();
}

void RdkafkaStats::Cumulative::update(std::int64_t value) {
  if (value < 0) {
    return;
  }
  const auto v = static_cast<std::uint64_t>(value);
  // Smaller than before only if the handle was recreated: count it afresh.
  counter->inc(v >= last ? v - last : v);
  last = v;
}

RdkafkaStats::RdkafkaStats(metrics::Registry& registry)
    : parser_(std::make_unique<simdjson::dom::parser>()),
      replyq_(registry
                  .gauge("kc_librdkafka_replyq",
                         "Operations (callbacks, events) waiting in librdkafka's queue for the application's poll")
                  .with()),
      rx_messages_{
          registry.counter("kc_librdkafka_rx_messages_total", "Messages received from the brokers (librdkafka rxmsgs)")
              .with()},
      rx_bytes_{
          registry.counter("kc_librdkafka_rx_bytes_total", "Bytes received from the brokers (librdkafka rx_bytes)")
              .with()},
      tx_requests_{
          registry.counter("kc_librdkafka_tx_requests_total", "Requests sent to the brokers (librdkafka tx)").with()},
      rtt_{registry.gauge("kc_librdkafka_broker_rtt_seconds",
                          "Mean broker round-trip time over the last statistics window", {"broker"})},
      lag_{registry.gauge("kc_partition_lag",
                          "Messages between the committed offset and the high watermark (librdkafka consumer_lag)",
                          {"topic", "partition"})},
      high_watermark_{registry.gauge("kc_partition_high_watermark", "The partition's high watermark offset",
                                     {"topic", "partition"})},
      fetch_queue_(registry
                       .gauge("kc_librdkafka_fetch_queue_messages",
                              "Records fetched and waiting in the consumer queue shared by the partitions "
                              "(librdkafka fetchq_cnt)")
                       .with()) {}

RdkafkaStats::~RdkafkaStats() = default;

void RdkafkaStats::publish(std::string_view json) noexcept {
  std::lock_guard lock(mu_);
  try {
    publish_locked(json);
  } catch (const std::exception& e) {
    if (!warned_) {
      warned_ = true;
      spdlog::warn("kc: librdkafka statistics not understood (warned once): {}", e.what());
    }
  } catch (...) {
    if (!warned_) {
      warned_ = true;
      spdlog::warn("kc: librdkafka statistics not understood (warned once)");
    }
  }
}

void RdkafkaStats::publish_locked(std::string_view json) {
  for (auto* t : {&rtt_, &lag_, &high_watermark_}) {
    t->current.clear();  // a publish that threw half-way may have left some
  }
  simdjson::dom::element root;
  if (const auto err = parser_->parse(json.data(), json.size()).get(root); err != simdjson::SUCCESS) {
    throw std::runtime_error(simdjson::error_message(err));
  }
  if (!root.is_object()) {
    throw std::runtime_error("not a JSON object");
  }

  if (const auto replyq = int_or(root, "replyq", -1); replyq >= 0) {
    replyq_.set(static_cast<double>(replyq));
  }
  rx_messages_.update(int_or(root, "rxmsgs", -1));
  rx_bytes_.update(int_or(root, "rx_bytes", -1));
  tx_requests_.update(int_or(root, "tx", -1));

  simdjson::dom::object brokers;
  if (root["brokers"].get_object().get(brokers) == simdjson::SUCCESS) {
    for (const auto [key, broker] : brokers) {
      const auto name = string_or(broker, "name", key);
      if (string_or(broker, "source", "") == "internal" || name.ends_with("/internal")) {
        continue;
      }
      const metrics::LabelValues labels{std::string(name)};
      simdjson::dom::element rtt;
      if (broker["rtt"].get(rtt) == simdjson::SUCCESS && int_or(rtt, "cnt", 0) > 0) {
        rtt_.set(labels, static_cast<double>(int_or(rtt, "avg", 0)) / 1e6);  // microseconds
      } else {
        rtt_.keep(labels);
      }
    }
  }

  std::int64_t fetch_queue = -1;
  simdjson::dom::object topics;
  if (root["topics"].get_object().get(topics) == simdjson::SUCCESS) {
    for (const auto [topic_key, topic] : topics) {
      const auto topic_name = std::string(string_or(topic, "topic", topic_key));
      simdjson::dom::object partitions;
      if (topic["partitions"].get_object().get(partitions) != simdjson::SUCCESS) {
        continue;
      }
      for (const auto [partition_key, p] : partitions) {
        const auto id = int_or(p, "partition", -1);
        if (id < 0 || !fetching(p)) {
          continue;
        }
        const metrics::LabelValues labels{topic_name, std::to_string(id)};
        if (const auto lag = int_or(p, "consumer_lag", -1); lag >= 0) {
          lag_.set(labels, static_cast<double>(lag));
        }
        if (const auto hw = int_or(p, "hi_offset", -1); hw >= 0) {
          high_watermark_.set(labels, static_cast<double>(hw));
        }
        fetch_queue = std::max(fetch_queue, int_or(p, "fetchq_cnt", -1));
      }
    }
  }

  rtt_.finish();
  lag_.finish();
  high_watermark_.finish();
  fetch_queue_.set(fetch_queue >= 0 ? static_cast<double>(fetch_queue) : 0.0);
}

}  // namespace kc::detail
