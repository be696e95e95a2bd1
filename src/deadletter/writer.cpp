#include "deadletter/writer.hpp"

#include "sink/text.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fmt/format.h>

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
  bool in_producer = false;  // handed to librdkafka, report pending
  bool retry = false;        // to a retry topic (not a dead letter)
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
  static constexpr const char* kPrefixes[] = {"security.", "ssl.", "sasl.", "client.", "socket.", "broker.",
                                              "api.version", "metadata.", "topic.metadata.", "reconnect.",
                                              "connections.", "debug", "log_level", "resolve.", "enable.ssl"};
  return std::any_of(std::begin(kPrefixes), std::end(kPrefixes),
                     [&](const char* p) { return k.rfind(p, 0) == 0; });
}

}  // namespace

void dead_letter_report(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
  try {
    auto* self = static_cast<DeadLetterWriter*>(opaque);
    const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m->_private));
    self->reports_.emplace_back(id, m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string() : rd_kafka_err2str(m->err));
  } catch (...) {
    spdlog::error("kc: dead-letter delivery report could not be recorded");
  }
}

DeadLetterWriter::DeadLetterWriter(const std::string& bootstrap,
                                   const std::map<std::string, std::string>& client_props, DeadLetterPolicy policy,
                                   std::string group)
    : policy_(std::move(policy)), group_(std::move(group)) {
  ConfPtr conf(rd_kafka_conf_new());
  conf_set(conf.get(), "bootstrap.servers", bootstrap);
  for (const auto& [k, v] : client_props) {
    if (is_client_property(k)) {
      conf_set(conf.get(), k, v);
    }
  }
  // Dead letters are the last copy of a record that failed: no duplicates
  // from producer retries, every replica before the source is committed.
  conf_set(conf.get(), "enable.idempotence", "true");
  conf_set(conf.get(), "acks", "all");
  conf_set(conf.get(), "linger.ms", "5");
  // A write that cannot complete comes back within this bound and is tried
  // again by kc with its own backoff, which keeps the outage visible in the log.
  conf_set(conf.get(), "message.timeout.ms", "30000");
  rd_kafka_conf_set_dr_msg_cb(conf.get(), dead_letter_report);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rk_ = make_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

DeadLetterWriter::~DeadLetterWriter() {
  if (!entries_.empty()) {
    spdlog::warn("kc: {} dead letters were not acknowledged; their records were not committed and are read again",
                 entries_.size());
  }
  // Purge before destroy so rd_kafka_destroy does not wait for them.
  rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_.get(), 0);
}

std::size_t DeadLetterWriter::in_flight(const TopicPartition& tp) const noexcept {
  const auto it = per_partition_.find(tp);
  return it == per_partition_.end() ? 0 : it->second;
}

std::optional<std::int32_t> DeadLetterWriter::partition_for(const std::string& topic, std::int32_t source_partition) {
  auto& info = topics_[topic];
  const auto now = std::chrono::steady_clock::now();
  if (info.partitions < 0 && (info.checked == std::chrono::steady_clock::time_point{} ||
                              now - info.checked >= kTopicRecheck)) {
    info.checked = now;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_.get(), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rkt != nullptr && rd_kafka_metadata(rk_.get(), 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        info.partitions = md->topics[0].partition_cnt;
      }
      rd_kafka_metadata_destroy(md);
    }
    if (rkt != nullptr) {
      rd_kafka_topic_destroy(rkt);
    }
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
      spdlog::error("kc: dead-letter topic {} does not exist (or is not visible): dead letters wait for it, and "
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
      e->headers.emplace_back(name, val == nullptr ? std::nullopt
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

void DeadLetterWriter::produce(Entry& e) {
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(e.headers.size());
  for (const auto& [n, v] : e.headers) {
    rd_kafka_header_add(hdrs, n.data(), static_cast<ssize_t>(n.size()), v ? v->data() : nullptr,
                        v ? static_cast<ssize_t>(v->size()) : 0);
  }
  void* key = e.key ? e.key->data() : nullptr;
  const std::size_t key_len = e.key ? e.key->size() : 0;
  void* value = e.value ? e.value->data() : nullptr;
  const std::size_t value_len = e.value ? e.value->size() : 0;
  void* opaque = reinterpret_cast<void*>(static_cast<std::uintptr_t>(e.id));
  const auto err = rd_kafka_producev(rk_.get(), RD_KAFKA_V_TOPIC(e.topic.c_str()), RD_KAFKA_V_PARTITION(e.partition),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                                     RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_HEADERS(hdrs),
                                     RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    e.in_producer = true;
    return;
  }
  rd_kafka_headers_destroy(hdrs);  // not taken over on failure
  reports_.emplace_back(e.id, rd_kafka_err2str(err));
}

void DeadLetterWriter::poll(std::vector<DeadLetterAck>& acked, std::chrono::milliseconds wait) {
  rd_kafka_poll(rk_.get(), static_cast<int>(wait.count()));
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, error] : reports_) {
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
  reports_.clear();
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
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
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
