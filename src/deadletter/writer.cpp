#include "deadletter/writer.hpp"

#include "kc/error.hpp"
#include "produce/conf.hpp"
#include "rdkafka/handles.hpp"
#include "text/text.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <algorithm>
#include <cstring>
#include <ctime>
#include <thread>

namespace kc::detail {

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
  // Its lookups must not create a target topic with the broker's defaults
  // (a broker with auto.create.topics.enable): kc creates them itself, with
  // the source's partition count (ensure_topics()).
  pc.librdkafka["allow.auto.create.topics"] = "false";
  // The poll thread must not block on a full queue: that is a failed write.
  pc.on_queue_full = QueueFull::error;
  // The consumer drains with its own deadline before it destroys the writer;
  // what is left then is read again by the group's next owner.
  pc.close_timeout = std::chrono::milliseconds(0);
  return pc;
}

int ms_left(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 1, 60000));
}

// A topic's partition count with every partition led; 0 while it exists but
// a partition has no leader yet (just created); -1 when it does not exist.
// Throws kc::Error (retriable) when the cluster does not answer.
int led_partitions(rd_kafka_t* rk, const std::string& topic, std::chrono::steady_clock::time_point deadline) {
  TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  const rd_kafka_metadata_t* raw = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt.get(), &raw, ms_left(deadline));
  const MetadataPtr md(raw);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    throw Error(errc::kafka, "metadata of topic '" + topic + "': " + rd_kafka_err2str(err), false, true);
  }
  const auto& t = md->topics[0];
  if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    return -1;
  }
  if (t.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
    throw Error(errc::config_invalid_value,
                "topic '" + topic + "': not authorized to describe it (TOPIC_AUTHORIZATION_FAILED): grant this "
                "principal DESCRIBE on it (and WRITE on a dead-letter or retry topic)");
  }
  if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR && t.err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
    throw Error(errc::kafka, "metadata of topic '" + topic + "': " + rd_kafka_err2str(t.err), false, true);
  }
  for (int i = 0; i < t.partition_cnt; ++i) {
    if (t.partitions[i].leader < 0) {
      return 0;
    }
  }
  return t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? t.partition_cnt : 0;
}

// Waits until `t` exists with every partition led; returns the count.
// Throws kc::Error (retriable) saying `what` at `deadline`.
int wait_until_led(rd_kafka_t* rk, const TargetTopic& t, std::chrono::steady_clock::time_point deadline,
                   const char* what) {
  int n = 0;
  while ((n = led_partitions(rk, t.name, deadline)) <= 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(errc::kafka, t.role + " topic '" + t.name + "' " + what, false, true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return n;
}

}  // namespace

std::map<std::string, int> ensure_topics(const std::string& bootstrap,
                                         const std::map<std::string, std::string>& client_props,
                                         const std::vector<TargetTopic>& targets, bool create,
                                         std::chrono::milliseconds timeout, std::vector<std::string>& deferred) {
  std::map<std::string, int> out;
  if (targets.empty()) {
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::string, std::string> props;
  for (const auto& [k, v] : client_props) {
    if (is_client_property(k)) {
      props.emplace(k, v);
    }
  }
  // Looking a topic up must not create it: a broker with
  // auto.create.topics.enable would make it with its own defaults.
  props["allow.auto.create.topics"] = "false";
  HandlePtr rk = make_handle(RD_KAFKA_PRODUCER, producer_conf(bootstrap, props));

  std::map<std::string, int> source_partitions;
  std::vector<const TargetTopic*> missing;
  for (const auto& t : targets) {
    if (out.contains(t.name)) {
      continue;
    }
    int n = 0;
    while ((n = led_partitions(rk.get(), t.name, deadline)) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        throw Error(errc::kafka, t.role + " topic '" + t.name + "' has partitions without a leader", false, true);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (n > 0) {
      out[t.name] = n;
      continue;
    }
    auto [it, fresh] = source_partitions.try_emplace(t.source, 0);
    if (fresh) {
      while ((it->second = led_partitions(rk.get(), t.source, deadline)) == 0 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (it->second <= 0) {
      if (std::find(deferred.begin(), deferred.end(), t.source) == deferred.end()) {
        deferred.push_back(t.source);  // checked again once the source exists and is assigned
      }
      continue;
    }
    if (!create) {
      throw Error(errc::config_invalid_value,
                  t.role + " topic '" + t.name + "' (for " + t.source +
                      ") does not exist and auto_create_topics is false: create it (e.g. with " +
                      std::to_string(it->second) + " partitions, like " + t.source +
                      ") or set auto_create_topics=true");
    }
    missing.push_back(&t);
  }
  if (missing.empty()) {
    return out;
  }

  // librdkafka's mock cluster (the embedded broker, kc's mock tests) has no
  // CreateTopics (a request times out after ~30 s); a metadata request that
  // allows auto-creation makes a topic there, with its default partition
  // count. It is recognised by its cluster id.
  const auto is_mock = [&] {
    char* id = rd_kafka_clusterid(rk.get(), ms_left(deadline));
    const bool mock = id != nullptr && std::string_view(id).starts_with("mockCluster");
    rd_kafka_mem_free(rk.get(), id);
    return mock;
  };
  if (is_mock()) {
    props["allow.auto.create.topics"] = "true";
    HandlePtr creating = make_handle(RD_KAFKA_PRODUCER, producer_conf(bootstrap, props));
    for (const auto* t : missing) {
      out[t->name] = wait_until_led(creating.get(), *t, deadline, "was not auto-created by the mock cluster");
      spdlog::info("kc: created {} topic {} on the embedded (mock) cluster ({} partitions)", t->role, t->name,
                   out[t->name]);
    }
    return out;
  }

  char err[512];
  std::vector<NewTopicPtr> owned;
  std::vector<rd_kafka_NewTopic_t*> raw;
  for (const auto* t : missing) {
    // -1: the broker's default.replication.factor.
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(t->name.c_str(), source_partitions.at(t->source), -1, err, sizeof err);
    if (nt == nullptr) {
      throw Error(errc::config_invalid_value, t->role + " topic '" + t->name + "': " + err);
    }
    owned.emplace_back(nt);
    raw.push_back(nt);
  }
  AdminOptionsPtr opts(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_request_timeout(opts.get(), ms_left(deadline), err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(opts.get(), ms_left(deadline), err, sizeof err);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_CreateTopics(rk.get(), raw.data(), raw.size(), opts.get(), q.get());
  EventPtr ev(rd_kafka_queue_poll(q.get(), ms_left(deadline) + 1000));
  if (!ev) {
    throw Error(errc::kafka, "creating " + missing.front()->role + " topic '" + missing.front()->name +
                                 "': no answer from the cluster in time", false, true);
  }
  if (const auto e = rd_kafka_event_error(ev.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka,
                "creating " + missing.front()->role + " topic '" + missing.front()->name + "': " +
                    rd_kafka_event_error_string(ev.get()),
                false, true);
  }
  std::size_t cnt = 0;
  const auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &cnt);
  for (std::size_t i = 0; i < cnt; ++i) {
    const std::string name = rd_kafka_topic_result_name(results[i]);
    const auto e = rd_kafka_topic_result_error(results[i]);
    const auto* t = *std::find_if(missing.begin(), missing.end(), [&](const TargetTopic* m) { return m->name == name; });
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* why = rd_kafka_topic_result_error_string(results[i]);
      throw Error(errc::config_invalid_value,
                  t->role + " topic '" + name + "' (for " + t->source + ") does not exist and kc cannot create it: " +
                      rd_kafka_err2name(e) + ": " + (why != nullptr ? why : "") +
                      " (create it, or grant CREATE to this principal; auto_create_topics)");
    }
    spdlog::info("kc: created {} topic {} ({} partitions, like {})", t->role, name, source_partitions.at(t->source),
                 t->source);
  }
  for (const auto* t : missing) {
    out[t->name] = wait_until_led(rk.get(), *t, deadline, "was created but has no led partitions yet");
  }
  return out;
}

void append_dead_letter_headers(const DeadLetterMetadata& md, DeadLetterHeaders format,
                                std::vector<std::pair<std::string, std::optional<std::string>>>& headers) {
  const auto add = [&](std::string_view n, std::string v) { headers.emplace_back(std::string(n), std::move(v)); };
  if (format != DeadLetterHeaders::spring) {
    add(kHeaderSourceTopic, std::string(md.source_topic));
    add(kHeaderSourcePartition, std::to_string(md.source_partition));
    add(kHeaderSourceOffset, std::to_string(md.source_offset));
    add(kHeaderSourceTimestamp, std::to_string(md.source_timestamp));
    add(kHeaderGroup, std::string(md.group));
    add(kHeaderErrorType, std::string(md.error_type));
    add(kHeaderErrorMessage, std::string(md.error_message));
    add(kHeaderAttempts, std::to_string(md.attempts));
    add(kHeaderFailedAt, std::string(md.failed_at));
  }
  if (format != DeadLetterHeaders::kc) {
    add(kSpringOriginalTopic, std::string(md.source_topic));
    add(kSpringOriginalPartition, big_endian<std::int32_t>(md.source_partition));
    add(kSpringOriginalOffset, big_endian<std::int64_t>(md.source_offset));
    add(kSpringOriginalTimestamp, big_endian<std::int64_t>(md.source_timestamp));
    add(kSpringOriginalTimestampType,
        md.timestamp_type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime");
    add(kSpringOriginalConsumerGroup, std::string(md.group));
    add(kSpringExceptionFqcn, std::string(md.error_type));
    add(kSpringExceptionMessage, std::string(md.error_message));
  }
}

DeadLetterWriter::DeadLetterWriter(const std::string& bootstrap, const std::map<std::string, std::string>& client_props,
                                   DeadLetterPolicy policy, std::string group)
    : policy_(std::move(policy)), group_(std::move(group)), producer_(producer_config(bootstrap, client_props)) {
  // Started last: it uses producer_, which is constructed after it.
  lookup_thread_ = std::thread([this] { lookups(); });
}

DeadLetterWriter::~DeadLetterWriter() {
  {
    const std::lock_guard lock(topics_mu_);
    stopping_ = true;
  }
  topics_cv_.notify_all();
  lookup_thread_.join();  // a lookup in progress ends within its 1 s bound
  if (!entries_.empty()) {
    spdlog::warn("kc: {} dead letters were not acknowledged; their records were not committed and are read again",
                 entries_.size());
  }
  // producer_ (destroyed first) purges what is in flight.
}

void DeadLetterWriter::known_partitions(const std::string& topic, int partitions) {
  const std::lock_guard lock(topics_mu_);
  auto& info = topics_[topic];
  info.partitions = partitions;
  info.missing = false;
  info.checked = std::chrono::steady_clock::now();
}

void DeadLetterWriter::look_up(const std::string& topic) {
  auto& info = topics_[topic];
  if (!info.asked) {
    info.asked = true;
    to_look_up_.push_back(topic);
    topics_cv_.notify_all();
  }
}

// The lookup thread: metadata round trips for the poll thread, which only
// reads their results (a lookup of a missing topic waits for its timeout;
// done on the poll thread it stalled the loop for 2 s a second).
void DeadLetterWriter::lookups() {
  std::unique_lock lock(topics_mu_);
  for (;;) {
    topics_cv_.wait(lock, [&] { return stopping_ || !to_look_up_.empty(); });
    if (stopping_) {
      return;
    }
    const auto topic = std::move(to_look_up_.back());
    to_look_up_.pop_back();
    lock.unlock();
    std::error_code ec;
    const auto n = producer_.partition_count(topic, std::chrono::milliseconds(1000), ec);
    lock.lock();
    auto& info = topics_[topic];
    info.asked = false;
    info.checked = std::chrono::steady_clock::now();
    if (n) {
      info.partitions = *n;
      info.missing = false;
    } else {
      info.partitions = -1;
      info.missing = !ec;  // no answer is not "missing": asked again later
    }
  }
}

std::set<std::string> DeadLetterWriter::missing_topics() const {
  return missing_reported_;
}

std::size_t DeadLetterWriter::in_flight(const TopicPartition& tp) const noexcept {
  const auto it = per_partition_.find(tp);
  return it == per_partition_.end() ? 0 : it->second;
}

std::optional<std::int32_t> DeadLetterWriter::partition_for(const std::string& topic, std::int32_t source_partition) {
  int partitions = -1;
  {
    const std::lock_guard lock(topics_mu_);
    auto& info = topics_[topic];
    const auto now = std::chrono::steady_clock::now();
    if (info.partitions < 0 && !info.asked &&
        (info.checked == std::chrono::steady_clock::time_point{} || now - info.checked >= kTopicRecheck)) {
      look_up(topic);  // the answer comes to a later poll()
    }
    partitions = info.partitions;
  }
  if (partitions < 0) {
    return std::nullopt;  // missing (or not known yet): hold the write
  }
  // The source partition keeps a partition's dead letters together and in
  // order; with fewer partitions the key decides (librdkafka's partitioner).
  return partitions > source_partition ? source_partition : RD_KAFKA_PARTITION_UA;
}

bool DeadLetterWriter::route(Entry& e, std::chrono::steady_clock::time_point now) {
  const auto partition = partition_for(e.topic, to_int(e.source.partition));
  if (!partition) {
    // Handing it to librdkafka now would let its partitioner choose before the
    // topic exists; kc holds it and checks again, so it keeps its partition.
    e.retry_at = now + kTopicRecheck;
    e.waiting_for_topic = true;
    return false;  // check_topics() says so when the topic is missing
  }
  e.waiting_for_topic = false;
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

void DeadLetterWriter::enqueue(std::unique_ptr<Entry> e) {
  if (e->forward_id < 0) {
    ++per_partition_[e->source];
  }
  auto& ref = *e;
  entries_.emplace(e->id, std::move(e));
  if (route(ref, std::chrono::steady_clock::now())) {
    produce(ref);
  }
}

void DeadLetterWriter::write(const rd_kafka_message_t* m, const DeadLetterCause& cause) {
  enqueue(make_dead_letter(m, cause));
}

void DeadLetterWriter::write_retry(const rd_kafka_message_t* m, const std::string& topic, int next_attempt,
                                   std::int64_t due_ms, const std::string& origin) {
  enqueue(make_retry(m, topic, next_attempt, due_ms, origin));
}

void DeadLetterWriter::send(std::unique_ptr<Entry> e) {
  enqueue(std::move(e));
}

void DeadLetterWriter::send_pending(const PendingForward& p) {
  auto e = std::make_unique<Entry>();
  e->id = next_id_++;
  e->forward_id = p.id;
  e->source = p.source;
  e->offset = p.source_offset;
  e->key = p.key;
  e->value = p.value;
  e->headers = p.headers;
  e->topic = p.topic;
  enqueue(std::move(e));
}

ForwardedRecord DeadLetterWriter::as_forwarded(const Entry& e) {
  ForwardedRecord r;
  r.topic = e.topic;
  r.partition = partition_for(e.topic, to_int(e.source.partition)).value_or(RD_KAFKA_PARTITION_UA);
  if (e.key) {
    r.key = std::as_bytes(std::span<const char>(e.key->data(), e.key->size()));
  }
  if (e.value) {
    r.value = std::as_bytes(std::span<const char>(e.value->data(), e.value->size()));
  }
  r.headers = e.headers;
  r.source = e.source;
  r.source_offset = e.offset;
  return r;
}

std::unique_ptr<DeadLetterWriter::Entry> DeadLetterWriter::make_dead_letter(const rd_kafka_message_t* m,
                                                                            const DeadLetterCause& cause) {
  auto e = copy_record(m, false);
  std::string message = cause.message;
  if (message.size() > policy_.max_error_message) {
    message.resize(policy_.max_error_message);
    message += "...";
  }
  const std::string failed_at = policy_.headers != DeadLetterHeaders::spring ? iso8601_utc(epoch_ms_now()) : "";
  append_dead_letter_headers({.source_topic = e->source.topic,
                              .source_partition = m->partition,
                              .source_offset = m->offset,
                              .source_timestamp = e->timestamp,
                              .timestamp_type = e->timestamp_type,
                              .group = group_,
                              .error_type = cause.type,
                              .error_message = message,
                              .attempts = cause.attempts,
                              .failed_at = failed_at},
                             policy_.headers, e->headers);
  // From a retry topic, the dead letter goes where the record's own topic's would.
  std::string origin = e->source.topic;
  for (const auto& [n, v] : e->headers) {
    if (n == kHeaderRetryTopic && v) {
      origin = *v;
    }
  }
  e->topic = policy_.topic_for(origin);
  return e;
}

std::unique_ptr<DeadLetterWriter::Entry> DeadLetterWriter::make_retry(const rd_kafka_message_t* m,
                                                                      const std::string& topic, int next_attempt,
                                                                      std::int64_t due_ms, const std::string& origin) {
  auto e = copy_record(m, true);
  e->retry = true;
  e->headers.emplace_back(std::string(kHeaderRetryAttempt), std::to_string(next_attempt));
  e->headers.emplace_back(std::string(kHeaderRetryDue), std::to_string(due_ms));
  e->headers.emplace_back(std::string(kHeaderRetryTopic), origin);
  e->topic = topic;
  return e;
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
  auto on_delivery = [this, id, topic = e.topic](const DeliveryReport& r) {
    if (r.error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || r.error == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
      // The topic is gone (deleted while kc runs): route again once a
      // lookup finds it, and say so meanwhile.
      const std::lock_guard lock(topics_mu_);
      auto& info = topics_[topic];
      info.partitions = -1;
      info.missing = true;
      info.checked = std::chrono::steady_clock::now();
    }
    {
      const std::lock_guard lock(reports_mu_);
      reports_.emplace_back(id, r.ok() ? std::string() : r.message);
    }
    reports_cv_.notify_all();
  };
  try {
    producer_.produce(record, std::move(on_delivery));
    e.in_producer = true;
    e.produced_at = std::chrono::steady_clock::now();
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
      acked.push_back({e.source, e.offset, e.retry, e.forward_id});
      if (e.forward_id < 0 && --per_partition_[e.source] == 0) {
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
  if ((!entries_.empty() || !missing_reported_.empty()) && now - topics_checked_ >= kCheckTopicsEvery) {
    topics_checked_ = now;
    check_topics(now);
  }
}

// Which target topics are missing while dead letters wait for them. A topic
// deleted while kc runs shows only slowly through librdkafka (its records
// fail after topic.metadata.propagation.max.ms or message.timeout.ms), so a
// dead letter without a report for kSlowDelivery has its topic looked up
// (on the lookup thread) every kSlowDelivery.
void DeadLetterWriter::check_topics(std::chrono::steady_clock::time_point now) {
  std::set<std::string> missing;
  {
    const std::lock_guard lock(topics_mu_);
    for (const auto& [id, e] : entries_) {
      auto& info = topics_[e->topic];
      if (e->in_producer && now - e->produced_at >= kSlowDelivery && !info.asked &&
          now - info.checked >= kSlowDelivery) {
        look_up(e->topic);
        info.checked = now;
      }
      if (info.missing) {
        missing.insert(e->topic);
      }
    }
  }
  if (missing == missing_reported_) {
    return;
  }
  for (const auto& t : missing) {
    if (!missing_reported_.contains(t)) {
      spdlog::error(
          "kc: dead-letter topic {} does not exist (or is not visible): dead letters wait for it, and "
          "the commit point of their partitions stays before them",
          t);
    }
  }
  for (const auto& t : missing_reported_) {
    if (!missing.contains(t)) {
      spdlog::info("kc: dead-letter topic {} is there again (or nothing waits for it any more)", t);
    }
  }
  missing_reported_ = std::move(missing);
  ++changes_;
}

bool DeadLetterWriter::drain(std::vector<DeadLetterAck>& acked, std::chrono::steady_clock::time_point deadline,
                             const std::vector<TopicPartition>* only) {
  const auto relevant = [&](const Entry& e) {
    return only == nullptr || std::find(only->begin(), only->end(), e.source) != only->end();
  };
  const auto pending = [&] {
    if (only == nullptr) {
      return !entries_.empty();
    }
    return std::any_of(only->begin(), only->end(), [&](const TopicPartition& tp) { return in_flight(tp) > 0; });
  };
  // Waiting is pointless for dead letters whose topic is gone: ask now where
  // their topics stand (a deleted topic shows only slowly through
  // librdkafka) and stop waiting once every one left waits for a missing topic.
  {
    const std::lock_guard lock(topics_mu_);
    for (const auto& [id, e] : entries_) {
      if (relevant(*e) && !topics_[e->topic].asked) {
        look_up(e->topic);
      }
    }
  }
  const auto only_missing_left = [&] {
    const std::lock_guard lock(topics_mu_);
    return std::all_of(entries_.begin(), entries_.end(), [&](const auto& entry) {
      return !relevant(*entry.second) || topics_[entry.second->topic].missing;
    });
  };
  while (pending()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || only_missing_left()) {
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
