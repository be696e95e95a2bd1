#include "deadletter/writer.hpp"

#include "kc/error.hpp"
#include "sink/text.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <algorithm>
#include <cstring>
#include <ctime>

namespace kc::detail {

struct DeadLetterWriter::Entry {
  std::uint64_t id = 0;
  TopicPartition source;
  std::int64_t offset = -1;
  std::int64_t timestamp = -1;
  int timestamp_type = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;  // original, then metadata
  std::string topic;
  std::int32_t partition = RD_KAFKA_PARTITION_UA;
  bool in_producer = false;        // handed to librdkafka, report pending
  bool retry = false;              // to a retry topic (not a dead letter)
  bool waiting_for_topic = false;  // the target topic is missing: not handed to librdkafka yet
  int failures = 0;
  std::chrono::steady_clock::time_point retry_at;
};

namespace {

template <typename T>
std::string big_endian(T v) {
  std::string out(sizeof(T), '\0');
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[sizeof(T) - 1 - i] = static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * i) & 0xff);
  }
  return out;
}

// Connection and security settings a producer shares with the consumer;
// consumer-only properties would only draw librdkafka warnings.
bool is_client_property(const std::string& k) {
  static constexpr const char* kPrefixes[] = {
      "security.",       "ssl.",       "sasl.",        "client.", "socket.",   "broker.",  "api.version", "metadata.",
      "topic.metadata.", "reconnect.", "connections.", "debug",   "log_level", "resolve.", "enable.ssl"};
  return std::any_of(std::begin(kPrefixes), std::end(kPrefixes), [&](const char* p) { return k.rfind(p, 0) == 0; });
}

ProducerConfig producer_config(const std::string& bootstrap, const std::map<std::string, std::string>& client_props) {
  ProducerConfig pc;
  pc.bootstrap_servers = bootstrap;
  for (const auto& [k, v] : client_props) {
    if (is_client_property(k)) {
      pc.librdkafka.emplace(k, v);
    }
  }
  // Dead letters are the last copy of a record that failed: kc::Producer's
  // defaults (idempotence: no duplicates from producer retries; acks=all:
  // every replica has it before the source is committed) are what they need,
  // and the consumer's properties cannot change them (filtered above).
  // A write that cannot complete comes back within this bound and is tried
  // again by kc with its own backoff, which keeps the outage visible in the log.
  pc.librdkafka["message.timeout.ms"] = "30000";
  // The poll thread must not block on a full queue: that is a failed write.
  pc.on_queue_full = QueueFull::error;
  // The consumer drains with its own deadline before it destroys the writer;
  // what is left then is read again by the group's next owner.
  pc.close_timeout = std::chrono::milliseconds(0);
  return pc;
}

}  // namespace

DeadLetterWriter::DeadLetterWriter(const std::string& bootstrap, const std::map<std::string, std::string>& client_props,
                                   DeadLetterPolicy policy, std::string group)
    : policy_(std::move(policy)), group_(std::move(group)), producer_(producer_config(bootstrap, client_props)) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (!entries_.empty()) {
    spdlog::warn("kc: {} dead letters were not acknowledged; their records were not committed and are read again",
                 entries_.size());
  }
  // producer_ (destroyed first) purges what is in flight.
}

std::size_t DeadLetterWriter::in_flight(const TopicPartition& tp) const noexcept {
  const auto it = per_partition_.find(tp);
  return it == per_partition_.end() ? 0 : it->second;
}

std::optional<std::int32_t> DeadLetterWriter::partition_for(const std::string& topic, std::int32_t source_partition) {
  auto& info = topics_[topic];
  const auto now = std::chrono::steady_clock::now();
  if (info.partitions < 0 &&
      (info.checked == std::chrono::steady_clock::time_point{} || now - info.checked >= kTopicRecheck)) {
    info.checked = now;
    std::error_code ec;  // no answer: as missing, checked again later
    info.partitions = producer_.partition_count(topic, std::chrono::milliseconds(2000), ec).value_or(-1);
  }
  if (info.partitions < 0) {
    return std::nullopt;  // missing (or the cluster cannot say): hold the write
  }
  // The source partition keeps a partition's dead letters together and in
  // order; with fewer partitions the key decides (librdkafka's partitioner).
  return info.partitions > source_partition ? source_partition : RD_KAFKA_PARTITION_UA;
}

bool DeadLetterWriter::route(Entry& e, std::chrono::steady_clock::time_point now) {
  const auto partition = partition_for(e.topic, to_int(e.source.partition));
  if (!partition) {
    // Handing it to librdkafka now would let its partitioner choose before the
    // topic exists; kc holds it and checks again, so it keeps its partition.
    e.retry_at = now + kTopicRecheck;
    e.waiting_for_topic = true;
    if (missing_reported_.insert(e.topic).second) {
      spdlog::error(
          "kc: dead-letter topic {} does not exist (or is not visible): dead letters wait for it, and "
          "the commit point of their partitions stays before them",
          e.topic);
    }
    return false;
  }
  if (e.waiting_for_topic) {
    e.waiting_for_topic = false;
    if (missing_reported_.erase(e.topic) > 0) {
      spdlog::info("kc: dead-letter topic {} is there now", e.topic);
    }
  }
  e.partition = *partition;
  return true;
}

std::unique_ptr<DeadLetterWriter::Entry> DeadLetterWriter::copy_record(const rd_kafka_message_t* m,
                                                                       bool drop_retry_headers) {
  auto e = std::make_unique<Entry>();
  e->id = next_id_++;
  e->source = {rd_kafka_topic_name(m->rkt), Partition{m->partition}};
  e->offset = m->offset;
  rd_kafka_timestamp_type_t tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  e->timestamp = rd_kafka_message_timestamp(m, &tstype);
  e->timestamp_type = static_cast<int>(tstype);
  if (m->key != nullptr) {
    e->key.emplace(static_cast<const char*>(m->key), m->key_len);
  }
  if (m->payload != nullptr) {
    e->value.emplace(static_cast<const char*>(m->payload), m->len);
  }
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
    const char* name = nullptr;
    const void* val = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      if (drop_retry_headers && std::string_view(name).starts_with(kRetryHeaderPrefix)) {
        continue;  // replaced by the next retry's own
      }
      e->headers.emplace_back(name, val == nullptr
                                        ? std::nullopt
                                        : std::optional<std::string>(std::string(static_cast<const char*>(val), size)));
    }
  }
  return e;
}

void DeadLetterWriter::enqueue(std::unique_ptr<Entry> e, std::string topic) {
  e->topic = std::move(topic);
  ++per_partition_[e->source];
  auto& ref = *e;
  entries_.emplace(e->id, std::move(e));
  if (route(ref, std::chrono::steady_clock::now())) {
    produce(ref);
  }
}

void DeadLetterWriter::write(const rd_kafka_message_t* m, const DeadLetterCause& cause) {
  auto e = copy_record(m, false);
  std::string message = cause.message;
  if (message.size() > policy_.max_error_message) {
    message.resize(policy_.max_error_message);
    message += "...";
  }
  const auto add = [&](std::string_view n, std::string v) { e->headers.emplace_back(std::string(n), std::move(v)); };
  if (policy_.headers != DeadLetterHeaders::spring) {
    add(kHeaderSourceTopic, e->source.topic);
    add(kHeaderSourcePartition, std::to_string(m->partition));
    add(kHeaderSourceOffset, std::to_string(m->offset));
    add(kHeaderSourceTimestamp, std::to_string(e->timestamp));
    add(kHeaderGroup, group_);
    add(kHeaderErrorType, cause.type);
    add(kHeaderErrorMessage, message);
    add(kHeaderAttempts, std::to_string(cause.attempts));
    add(kHeaderFailedAt, iso8601_utc(epoch_ms_now()));
  }
  if (policy_.headers != DeadLetterHeaders::kc) {
    add(kSpringOriginalTopic, e->source.topic);
    add(kSpringOriginalPartition, big_endian<std::int32_t>(m->partition));
    add(kSpringOriginalOffset, big_endian<std::int64_t>(m->offset));
    add(kSpringOriginalTimestamp, big_endian<std::int64_t>(e->timestamp));
    add(kSpringOriginalTimestampType,
        e->timestamp_type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime");
    add(kSpringOriginalConsumerGroup, group_);
    add(kSpringExceptionFqcn, cause.type);
    add(kSpringExceptionMessage, message);
  }
  // From a retry topic, the dead letter goes where the record's own topic's would.
  std::string origin = e->source.topic;
  for (const auto& [n, v] : e->headers) {
    if (n == kHeaderRetryTopic && v) {
      origin = *v;
    }
  }
  const auto topic = policy_.topic_for(origin);
  enqueue(std::move(e), topic);
}

void DeadLetterWriter::write_retry(const rd_kafka_message_t* m, const std::string& topic, int next_attempt,
                                   std::int64_t due_ms, const std::string& origin) {
  auto e = copy_record(m, true);
  e->retry = true;
  e->headers.emplace_back(std::string(kHeaderRetryAttempt), std::to_string(next_attempt));
  e->headers.emplace_back(std::string(kHeaderRetryDue), std::to_string(due_ms));
  e->headers.emplace_back(std::string(kHeaderRetryTopic), origin);
  enqueue(std::move(e), topic);
}

namespace {

std::optional<Bytes> bytes_of(const std::optional<std::string>& s) {
  if (!s) {
    return std::nullopt;
  }
  return Bytes(reinterpret_cast<const std::byte*>(s->data()), s->size());
}

}  // namespace

void DeadLetterWriter::produce(Entry& e) {
  const auto id = e.id;
  const ProducerRecord record{e.topic, bytes_of(e.key), bytes_of(e.value), e.partition, e.headers};
  // Runs on the producer's delivery thread: only hands the result over.
  auto on_delivery = [this, id](const DeliveryReport& r) {
    {
      const std::lock_guard lock(reports_mu_);
      reports_.emplace_back(id, r.ok() ? std::string() : r.message);
    }
    reports_cv_.notify_all();
  };
  try {
    producer_.produce(record, std::move(on_delivery));
    e.in_producer = true;
  } catch (const Error& err) {
    // Not enqueued (queue full, too large, ...): a failed write like any
    // other. The throwing form for its text; this path is rare.
    const std::lock_guard lock(reports_mu_);
    reports_.emplace_back(e.id, err.what());
  }
}

void DeadLetterWriter::poll(std::vector<DeadLetterAck>& acked, std::chrono::milliseconds wait) {
  {
    std::unique_lock lock(reports_mu_);
    if (reports_.empty() && wait.count() > 0) {
      reports_cv_.wait_for(lock, wait, [&] { return !reports_.empty(); });
    }
    taken_.swap(reports_);
  }
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, error] : taken_) {
    const auto it = entries_.find(id);
    if (it == entries_.end()) {
      continue;  // forgotten after a revoke
    }
    Entry& e = *it->second;
    e.in_producer = false;
    if (error.empty()) {
      acked.push_back({e.source, e.offset, e.retry});
      if (--per_partition_[e.source] == 0) {
        per_partition_.erase(e.source);
      }
      entries_.erase(it);
      continue;
    }
    ++failures_;
    ++e.failures;
    auto delay = policy_.write_backoff * (1 << std::min(e.failures - 1, 10));
    delay = std::min(delay, policy_.write_backoff_max);
    e.retry_at = now + delay;
    // One line per record on its first failure and every 10th after, not per attempt.
    spdlog::log(e.failures == 1 || e.failures % 10 == 0 ? spdlog::level::err : spdlog::level::debug,
                "kc: dead letter of {}[{}] offset {} to {} failed ({}), {} time(s); next try in {} ms; the commit "
                "point of {}[{}] stays at or before offset {} until it is written",
                e.source.topic, to_int(e.source.partition), e.offset, e.topic, error, e.failures, delay.count(),
                e.source.topic, to_int(e.source.partition), e.offset);
  }
  taken_.clear();
  for (auto& [id, e] : entries_) {
    if (!e->in_producer && (e->failures > 0 || e->waiting_for_topic) && e->retry_at <= now) {
      if (route(*e, now)) {
        produce(*e);
      }
    }
  }
}

bool DeadLetterWriter::drain(std::vector<DeadLetterAck>& acked, std::chrono::steady_clock::time_point deadline) {
  while (!entries_.empty()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    poll(acked, std::min(left, std::chrono::milliseconds(100)));
  }
  return true;
}

void DeadLetterWriter::forget(const TopicPartition& tp) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second->source == tp) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  per_partition_.erase(tp);
}

}  // namespace kc::detail
