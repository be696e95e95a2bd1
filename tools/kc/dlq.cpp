// `kc dlq inspect` and `kc dlq redrive`.
//
// inspect talks to librdkafka directly: kc::Consumer always joins a group
// and commits, and looking at a dead-letter topic must do neither. It assigns
// every partition itself, reads up to the high watermarks taken at the start
// and exits.
//
// redrive is a kc::Consumer in a group of its own plus an idempotent
// (acks=all) kc::Producer. The at-least-once argument: a record's handler
// only enqueues its copy, so the record is "done" before the broker has
// acknowledged that copy; the before_commit hook therefore flushes the
// producer and throws when any copy failed or is still unacknowledged, and a
// throwing before_commit keeps that commit from being sent (it ends the run).
// So every commit covers only acknowledged copies, and a graceful stop
// (SIGINT/SIGTERM: the final commit flushes first) followed by a restart
// republishes nothing twice. A kill -9 (or a crash) can: the copies
// acknowledged after the last commit are republished by the next run. Only a
// transactional producer (offsets committed in the producer's transaction)
// would make that exactly-once.
#include "dlq.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "commands.hpp"
#include "kc/config.hpp"
#include "kc/consumer.hpp"
#include "kc/deadletter.hpp"
#include "kc/decode.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/message.hpp"
#include "kc/producer.hpp"
#include "progress.hpp"
#include "rdkafka/handles.hpp"
#include "rdkafka/log.hpp"
#include "text/text.hpp"

extern char** environ;

namespace kc::tool {

namespace {

constexpr const char* kRedriveFooter =
    "Delivery: at least once. Each record is republished with an idempotent producer (acks=all) and the\n"
    "group commits only records whose copies the broker acknowledged, so SIGINT/SIGTERM followed by a\n"
    "restart (same --group) republishes nothing twice. kill -9 or a crash can republish the records\n"
    "acknowledged after the last commit (exactly-once would need Kafka transactions).\n"
    "Dropped from each copy: the kc.dlq.*, kafka_dlt-* and kc.retry.* headers; added: kc.redrive.count (1, 2, ...).\n"
    "Default target: the record's source topic (kc.dlq.source.topic or kafka_dlt-original-topic; for a record\n"
    "that failed in a retry topic, the topic it first came from), in its source partition when the target has it.\n"
    "Records of other error types (with --error-type) are skipped and committed in this group: redrive\n"
    "them later with another --group. A record without a source topic header (and no --to) stops its\n"
    "partition there: nothing at or after it is committed; the exit code is then 1.";

// ---------------------------------------------------------------- librdkafka handles

using detail::conf_set;
using detail::ConfPtr;
using detail::HandlePtr;
using detail::MessagePtr;
using detail::MetadataPtr;
using detail::PartitionListPtr;
using detail::TopicPtr;

HandlePtr make_logged_handle(rd_kafka_type_t type, ConfPtr conf) {
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  return detail::make_handle(type, std::move(conf));
}

// Partition count of a topic; nullopt when the topic does not exist. Retries
// transport errors for up to `timeout`, then throws kc::Error.
std::optional<int> partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  if (!rkt) {
    throw Error(errc::kafka, "topic '" + topic + "': " + rd_kafka_err2str(rd_kafka_last_error()));
  }
  for (;;) {
    const rd_kafka_metadata_t* raw = nullptr;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto err =
        rd_kafka_metadata(rk, 0, rkt.get(), &raw, static_cast<int>(std::max<std::int64_t>(left.count(), 1000)));
    MetadataPtr md(raw);
    rd_kafka_resp_err_t topic_err = err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
      topic_err = md->topics[0].err;
      if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0) {
        return md->topics[0].partition_cnt;
      }
      if (topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        return std::nullopt;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(errc::kafka, "metadata of topic '" + topic + "': " + rd_kafka_err2str(topic_err), false, true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// ---------------------------------------------------------------- dead-letter metadata

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The headers kc and Spring add to a dead letter, and kc's retry-topic
// headers (a record that went through retry topics keeps them on its dead
// letter); everything else on a dead letter is the original record's.
bool is_metadata_header(std::string_view name) {
  return starts_with(name, "kc.dlq.") || starts_with(name, "kafka_dlt-") || starts_with(name, kRetryHeaderPrefix);
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) {
    return std::nullopt;
  }
  return v;
}

// Spring writes partition as a 4-byte and offset/timestamp as 8-byte
// big-endian integers; text digits are accepted too (other writers).
std::optional<std::int64_t> parse_spring_int(Bytes b) {
  if (b.size() == 4 || b.size() == 8) {
    std::uint64_t u = 0;
    for (const auto byte : b) {
      u = u << 8 | static_cast<std::uint8_t>(byte);
    }
    if (b.size() == 4) {
      return static_cast<std::int32_t>(static_cast<std::uint32_t>(u));
    }
    return static_cast<std::int64_t>(u);
  }
  return parse_int(as_text(b));
}

std::string hex(Bytes b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * b.size());
  for (const auto byte : b) {
    const auto c = static_cast<std::uint8_t>(byte);
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

// A metadata value as text; bytes that are not UTF-8 as "hex:..." (rare:
// every known writer uses text).
std::string metadata_text(Bytes b) {
  return is_valid_utf8(b) ? std::string(as_text(b)) : "hex:" + hex(b);
}

struct DeadLetterInfo {
  bool kc_headers = false;
  bool spring_headers = false;
  std::optional<std::string> source_topic;
  std::optional<std::int64_t> source_partition;
  std::optional<std::int64_t> source_offset;
  std::optional<std::int64_t> source_timestamp;  // ms since the epoch
  std::optional<std::string> group;
  std::optional<std::string> error_type;
  std::optional<std::string> error_message;
  std::optional<std::int64_t> attempts;
  std::optional<std::string> failed_at;
  std::optional<std::int64_t> redrive_count;  // kc.redrive.count of the original record
  // kc.retry.topic: the record failed in a retry topic (then the source
  // topic is that retry topic); this is the topic it first came from.
  std::optional<std::string> retry_origin;

  std::string format() const {
    return kc_headers && spring_headers ? "kc+spring" : kc_headers ? "kc" : spring_headers ? "spring" : "none";
  }
};

template <typename T>
void fill(std::optional<T>& into, const std::optional<T>& from) {
  if (!into) {
    into = from;
  }
}

// Where each metadata header goes. kc's integers are text; Spring's are
// big-endian binary.
using TextField = std::optional<std::string> DeadLetterInfo::*;
using IntField = std::optional<std::int64_t> DeadLetterInfo::*;
struct HeaderField {
  std::string_view name;
  TextField text = nullptr;
  IntField integer = nullptr;
};
constexpr HeaderField kKcFields[] = {
    {kHeaderSourceTopic, &DeadLetterInfo::source_topic},
    {kHeaderSourcePartition, nullptr, &DeadLetterInfo::source_partition},
    {kHeaderSourceOffset, nullptr, &DeadLetterInfo::source_offset},
    {kHeaderSourceTimestamp, nullptr, &DeadLetterInfo::source_timestamp},
    {kHeaderGroup, &DeadLetterInfo::group},
    {kHeaderErrorType, &DeadLetterInfo::error_type},
    {kHeaderErrorMessage, &DeadLetterInfo::error_message},
    {kHeaderAttempts, nullptr, &DeadLetterInfo::attempts},
    {kHeaderFailedAt, &DeadLetterInfo::failed_at},
    {kHeaderRetryTopic, &DeadLetterInfo::retry_origin},
};
constexpr HeaderField kSpringFields[] = {
    {kSpringOriginalTopic, &DeadLetterInfo::source_topic},
    {kSpringOriginalPartition, nullptr, &DeadLetterInfo::source_partition},
    {kSpringOriginalOffset, nullptr, &DeadLetterInfo::source_offset},
    {kSpringOriginalTimestamp, nullptr, &DeadLetterInfo::source_timestamp},
    {kSpringOriginalConsumerGroup, &DeadLetterInfo::group},
    {kSpringExceptionFqcn, &DeadLetterInfo::error_type},
    {kSpringExceptionMessage, &DeadLetterInfo::error_message},
};

template <std::size_t N>
void read_field(const HeaderField (&fields)[N], bool spring, std::string_view name, Bytes v, DeadLetterInfo& into) {
  for (const auto& f : fields) {
    if (f.name != name) {
      continue;
    }
    if (f.text != nullptr) {
      into.*f.text = metadata_text(v);
    } else {
      into.*f.integer = spring ? parse_spring_int(v) : parse_int(as_text(v));
    }
    return;
  }
}

// kc's headers first; Spring's fill in what kc's do not say.
DeadLetterInfo parse_dead_letter(const Message& m) {
  DeadLetterInfo kc;
  DeadLetterInfo spring;
  const auto headers = m.headers();
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto h = headers.at(i);
    if (!h.value) {
      continue;
    }
    if (starts_with(h.name, "kc.dlq.") || starts_with(h.name, kRetryHeaderPrefix)) {
      kc.kc_headers = kc.kc_headers || starts_with(h.name, "kc.dlq.");
      read_field(kKcFields, false, h.name, *h.value, kc);
    } else if (starts_with(h.name, "kafka_dlt-")) {
      spring.spring_headers = true;
      read_field(kSpringFields, true, h.name, *h.value, spring);
    } else if (h.name == kHeaderRedriveCount) {
      if (auto c = parse_int(as_text(*h.value)); c && *c > kc.redrive_count.value_or(0)) {
        kc.redrive_count = c;
      }
    }
  }
  kc.spring_headers = spring.spring_headers;
  fill(kc.source_topic, spring.source_topic);
  fill(kc.source_partition, spring.source_partition);
  fill(kc.source_offset, spring.source_offset);
  fill(kc.source_timestamp, spring.source_timestamp);
  fill(kc.group, spring.group);
  fill(kc.error_type, spring.error_type);
  fill(kc.error_message, spring.error_message);
  return kc;
}

// The filter --error-type: the error type contains `want` (an exact name matches too).
bool error_type_matches(const DeadLetterInfo& dl, const std::optional<std::string>& want) {
  return !want || (dl.error_type && dl.error_type->find(*want) != std::string::npos);
}

// ---------------------------------------------------------------- output

std::string json_quoted(std::string_view s) {
  std::string out = "\"";
  detail::append_json_escaped(out, s);
  out += '"';
  return out;
}

class JsonObject {
 public:
  JsonObject() : out_("{") {}
  JsonObject& raw(std::string_view name, std::string_view json) {
    key(name);
    out_ += json;
    return *this;
  }
  JsonObject& str(std::string_view name, const std::optional<std::string>& v) {
    return raw(name, v ? json_quoted(*v) : "null");
  }
  JsonObject& num(std::string_view name, const std::optional<std::int64_t>& v) {
    return raw(name, v ? std::to_string(*v) : "null");
  }
  // Bytes as text when UTF-8, else hex, with "<name>_encoding": "text" | "hex" | null.
  JsonObject& bytes(std::string_view name, const std::optional<Bytes>& b) {
    if (!b) {
      raw(name, "null");
      return raw(std::string(name) + "_encoding", "null");
    }
    const bool text = is_valid_utf8(*b);
    raw(name, json_quoted(text ? as_text(*b) : hex(*b)));
    return raw(std::string(name) + "_encoding", text ? "\"text\"" : "\"hex\"");
  }
  std::string done() {
    out_ += '}';
    return std::move(out_);
  }

 private:
  void key(std::string_view name) {
    if (out_.size() > 1) {
      out_ += ',';
    }
    out_ += json_quoted(name);
    out_ += ':';
  }
  std::string out_;
};

std::string to_json(const Message& m, const DeadLetterInfo& dl) {
  std::string headers = "[";
  const auto hs = m.headers();
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto h = hs.at(i);
    if (is_metadata_header(h.name)) {
      continue;
    }
    if (headers.size() > 1) {
      headers += ',';
    }
    headers += JsonObject().str("name", std::string(h.name)).bytes("value", h.value).done();
  }
  headers += ']';
  const auto ts = m.timestamp();
  return JsonObject()
      .str("topic", std::string(m.topic()))
      .num("partition", to_int(m.partition()))
      .num("offset", to_int(m.offset()))
      .num("timestamp", ts.type != 0 ? std::optional<std::int64_t>(ts.ms) : std::nullopt)
      .str("headers_format", dl.format())
      .str("source_topic", dl.source_topic)
      .str("retry_origin_topic", dl.retry_origin)
      .num("source_partition", dl.source_partition)
      .num("source_offset", dl.source_offset)
      .num("source_timestamp", dl.source_timestamp)
      .str("group", dl.group)
      .str("error_type", dl.error_type)
      .str("error_message", dl.error_message)
      .num("attempts", dl.attempts)
      .str("failed_at", dl.failed_at)
      .bytes("key", m.key())
      .bytes("value", m.value())
      .raw("headers", headers)
      .done();
}

// Human form of a key, value or header value: a quoted (JSON-escaped)
// string when UTF-8, else hex; long ones are cut (--json shows everything).
std::string human_bytes(const std::optional<Bytes>& b) {
  constexpr std::size_t kMax = 1024;
  if (!b) {
    return "null";
  }
  const bool cut = b->size() > kMax;
  const Bytes shown = cut ? b->first(kMax) : *b;
  std::string out;
  // A cut can split a UTF-8 sequence: decide on the whole value.
  if (is_valid_utf8(*b)) {
    out = json_quoted(as_text(shown));
  } else {
    out = "hex:" + hex(shown);
  }
  if (cut) {
    out += fmt::format("... ({} bytes)", b->size());
  }
  return out;
}

template <typename T>
std::string or_unknown(const std::optional<T>& v) {
  if (!v) {
    return "?";
  }
  if constexpr (std::is_same_v<T, std::string>) {
    return *v;
  } else {
    return std::to_string(*v);
  }
}

std::string to_human(const Message& m, const DeadLetterInfo& dl) {
  std::string out =
      fmt::format("{}[{}]@{}  from {}[{}]@{}  ({})\n", m.topic(), to_int(m.partition()), to_int(m.offset()),
                  or_unknown(dl.source_topic), or_unknown(dl.source_partition), or_unknown(dl.source_offset),
                  dl.kc_headers || dl.spring_headers ? dl.format() + " headers" : "no dead-letter headers");
  if (dl.retry_origin) {
    out += fmt::format("  via retry topics, first from: {}\n", *dl.retry_origin);
  }
  out += fmt::format("  source timestamp: {}   group: {}   attempts: {}   failed at: {}\n",
                     dl.source_timestamp ? detail::iso8601_utc(*dl.source_timestamp) : "?", or_unknown(dl.group),
                     or_unknown(dl.attempts), or_unknown(dl.failed_at));
  out += fmt::format("  error: {}: {}\n", or_unknown(dl.error_type), or_unknown(dl.error_message));
  out += fmt::format("  key: {}\n", human_bytes(m.key()));
  out += fmt::format("  value: {}\n", human_bytes(m.value()));
  std::string headers;
  const auto hs = m.headers();
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto h = hs.at(i);
    if (!is_metadata_header(h.name)) {
      headers += fmt::format("{}{}={}", headers.empty() ? "" : ", ", h.name, human_bytes(h.value));
    }
  }
  if (!headers.empty()) {
    out += "  headers: " + headers + "\n";
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- commands

void add_dlq_command(CLI::App& app, DlqOptions& o) {
  auto* dlq = app.add_subcommand("dlq", "inspect or redrive a dead-letter topic");
  dlq->require_subcommand(1);

  auto* in = dlq->add_subcommand(
      "inspect", "list the dead letters of a topic (from the beginning up to its end at start; no group, no commit)");
  auto& i = o.inspect;
  in->add_option("-t,--topic", i.topic, "the dead-letter topic")->required();
  in->add_option("-b,--bootstrap-servers", i.bootstrap_servers, "brokers (or KC_BOOTSTRAP_SERVERS)");
  in->add_option("--error-type", i.error_type, "only records whose error type contains this (exact names match)");
  in->add_option("--source-partition", i.source_partition, "only records from this source partition");
  in->add_option("--max", i.max, "stop after showing N records");
  in->add_flag("--json", i.json, "one JSON object per line (keys, values and headers in full)");
  in->add_option("--timeout-ms", i.timeout_ms, "give up when nothing arrives for N ms (default 30000)");
  in->add_option("-X", i.rdkafka, "librdkafka property key=value (repeatable)");
  in->add_option("--config", i.config_file, "TOML configuration file (brokers and [librdkafka] only)");
  in->footer(
      "Metadata comes from kc's kc.dlq.* headers or Spring's kafka_dlt-* headers, whichever are present.\n"
      "Keys, values and headers are shown as text when they are UTF-8, else as hex.\n"
      "The summary (shown / read) goes to stderr.");
  o.inspect_command = in;

  auto* re = dlq->add_subcommand(
      "redrive",
      "republish dead letters without their dead-letter headers, to --to or their source topic (at least once)");
  auto& r = o.redrive;
  re->add_option("-f,--from", r.from, "the dead-letter topic")->required();
  re->add_option("--to", r.to, "target topic (default: each record's source topic)");
  re->add_option("-b,--bootstrap-servers", r.bootstrap_servers, "brokers (or KC_BOOTSTRAP_SERVERS)");
  re->add_option("-g,--group", r.group, "consumer group of the redrive (default kc-redrive-<from>)");
  re->add_option("--error-type", r.error_type, "only records whose error type contains this; others are skipped");
  re->add_option("--max", r.max, "stop after republishing N records");
  re->add_option("--idle-exit-ms", r.idle_exit_ms, "stop after N ms without a record (default 3000)");
  re->add_option("--rate", r.rate, "records per second (default: no limit)");
  re->add_option("-X", r.rdkafka, "librdkafka property key=value for consumer and producer (repeatable)");
  re->add_option("--config", r.config_file, "TOML configuration file (brokers and [librdkafka] only)");
  re->footer(kRedriveFooter);
  o.redrive_command = re;
}

int run_dlq(const DlqOptions& o) {
  if (o.inspect_command != nullptr && o.inspect_command->parsed()) {
    return run_dlq_inspect(o.inspect);
  }
  if (o.redrive_command != nullptr && o.redrive_command->parsed()) {
    return run_dlq_redrive(o.redrive);
  }
  throw Error(errc::misuse, "kc dlq: expected a subcommand (inspect or redrive)");
}

// ---------------------------------------------------------------- inspect

int run_dlq_inspect(const DlqInspectOptions& o) {
  const auto client = client_settings(o.bootstrap_servers, o.rdkafka, o.config_file,
                                      "kc dlq needs the brokers that hold the dead-letter topic");
  const auto timeout = std::chrono::milliseconds(std::max<std::uint64_t>(o.timeout_ms, 1000));

  ConfPtr conf(rd_kafka_conf_new());
  conf_set(conf.get(), "bootstrap.servers", client.bootstrap);
  // librdkafka wants a group id for assign(); it is never joined (no
  // subscribe) and nothing is committed (auto commit off, no commit call).
  conf_set(conf.get(), "group.id", fmt::format("kc-dlq-inspect-{}", getpid()));
  conf_set(conf.get(), "auto.offset.reset", "earliest");
  conf_set(conf.get(), "allow.auto.create.topics", "false");
  for (const auto& [k, v] : client.librdkafka) {
    conf_set(conf.get(), k, v);
  }
  conf_set(conf.get(), "enable.auto.commit", "false");
  conf_set(conf.get(), "enable.auto.offset.store", "false");
  conf_set(conf.get(), "enable.partition.eof", "true");
  auto rk = make_logged_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(rk.get());

  const auto parts = partition_count(rk.get(), o.topic, timeout);
  if (!parts) {
    throw Error(errc::config_invalid_value, "flag --topic: topic '" + o.topic + "' does not exist");
  }
  // Where to stop: the end of each partition now; later records are not shown.
  std::map<std::int32_t, std::int64_t> end;
  std::uint64_t total = 0;
  PartitionListPtr assignment(rd_kafka_topic_partition_list_new(*parts));
  for (std::int32_t p = 0; p < *parts; ++p) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    const auto err =
        rd_kafka_query_watermark_offsets(rk.get(), o.topic.c_str(), p, &lo, &hi, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(errc::kafka, fmt::format("watermarks of {}[{}]: {}", o.topic, p, rd_kafka_err2str(err)));
    }
    if (hi > lo) {
      end[p] = hi;
      total += static_cast<std::uint64_t>(hi - lo);
      rd_kafka_topic_partition_list_add(assignment.get(), o.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  if (const auto err = rd_kafka_assign(rk.get(), assignment.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka, std::string("assign failed: ") + rd_kafka_err2str(err));
  }

  // Progress would mix with the records on a terminal: only when stdout goes elsewhere.
  Progress progress("kc dlq inspect", total, isatty(STDERR_FILENO) != 0 && isatty(STDOUT_FILENO) == 0);
  std::uint64_t read = 0;
  std::uint64_t shown = 0;
  std::string error;
  auto last_progress = std::chrono::steady_clock::now();
  while (!end.empty() && !(o.max && shown >= *o.max)) {
    MessagePtr m(rd_kafka_consumer_poll(rk.get(), 200));
    const auto now = std::chrono::steady_clock::now();
    if (!m) {
      if (now - last_progress > timeout) {
        std::string missing;
        for (const auto& [p, hi] : end) {
          missing += fmt::format(" {}[{}] (end {})", o.topic, p, hi);
        }
        error = fmt::format("nothing arrived for {} ms; not read to the end:{}", timeout.count(), missing);
        break;
      }
      continue;
    }
    last_progress = now;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // The end as the broker sees it (below the high watermark when a
      // transaction is open): nothing more to read here.
      end.erase(m->partition);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        error = rd_kafka_message_errstr(m.get());
        break;
      }
      spdlog::warn("kc dlq inspect: {}[{}]: {}", o.topic, m->partition, rd_kafka_message_errstr(m.get()));
      continue;
    }
    const auto it = end.find(m->partition);
    if (it == end.end() || m->offset >= it->second) {
      continue;  // past the end taken at the start
    }
    if (m->offset >= it->second - 1) {
      end.erase(it);
    }
    ++read;
    const Message msg(m.get());
    const auto dl = parse_dead_letter(msg);
    if (error_type_matches(dl, o.error_type) && (!o.source_partition || dl.source_partition == *o.source_partition)) {
      ++shown;
      progress.clear();
      const auto text = o.json ? to_json(msg, dl) + "\n" : to_human(msg, dl);
      std::fwrite(text.data(), 1, text.size(), stdout);
    }
    progress.update(read, "shown {}", shown);
  }
  std::fflush(stdout);
  progress.clear();
  rd_kafka_consumer_close(rk.get());

  std::string filters;
  if (o.error_type) {
    filters += " error-type~" + *o.error_type;
  }
  if (o.source_partition) {
    filters += fmt::format(" source-partition={}", *o.source_partition);
  }
  log::printf(LogLevel::info, "kc dlq inspect: %s: shown %llu / %llu read (%llu in the topic)%s%s\n", o.topic.c_str(),
              static_cast<unsigned long long>(shown), static_cast<unsigned long long>(read),
              static_cast<unsigned long long>(total), filters.empty() ? "" : ", filter:", filters.c_str());
  if (!error.empty()) {
    log::printf(LogLevel::error, "kc dlq inspect: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- redrive

namespace {

// Which topics a record can be republished to, and with how many partitions.
// Uses its own metadata-only client so missing topics are never auto-created.
class Targets {
 public:
  explicit Targets(const ClientSettings& client) {
    ConfPtr conf(rd_kafka_conf_new());
    conf_set(conf.get(), "bootstrap.servers", client.bootstrap);
    for (const auto& [k, v] : client.librdkafka) {
      conf_set(conf.get(), k, v);
    }
    conf_set(conf.get(), "allow.auto.create.topics", "false");
    rk_ = make_logged_handle(RD_KAFKA_PRODUCER, std::move(conf));
  }

  /// Partition count, nullopt when the topic does not exist. Cached.
  std::optional<int> partitions(const std::string& topic) {
    if (const auto it = cache_.find(topic); it != cache_.end()) {
      return it->second;
    }
    const auto n = partition_count(rk_.get(), topic, std::chrono::seconds(30));
    cache_.emplace(topic, n);
    return n;
  }

 private:
  HandlePtr rk_;
  std::map<std::string, std::optional<int>> cache_;
};

// Records of `topic` after `group`'s committed offsets (from the start of a
// partition without one): what a redrive in that group has ahead of it.
// nullopt when the cluster does not answer within a few seconds.
std::optional<std::uint64_t> backlog(const ClientSettings& client, const std::string& topic, int partitions,
                                     const std::string& group) {
  constexpr int kTimeoutMs = 5000;
  ConfPtr conf(rd_kafka_conf_new());
  conf_set(conf.get(), "bootstrap.servers", client.bootstrap);
  for (const auto& [k, v] : client.librdkafka) {
    conf_set(conf.get(), k, v);
  }
  // Only reads the group's offsets: never joins it, never commits.
  conf_set(conf.get(), "group.id", group);
  conf_set(conf.get(), "enable.auto.commit", "false");
  auto rk = make_logged_handle(RD_KAFKA_CONSUMER, std::move(conf));
  PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (std::int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  }
  std::optional<std::uint64_t> total;
  if (rd_kafka_committed(rk.get(), list.get(), kTimeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    total = 0;
    for (int i = 0; i < list->cnt; ++i) {
      const auto& tp = list->elems[i];
      std::int64_t lo = 0;
      std::int64_t hi = 0;
      if (rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), tp.partition, &lo, &hi, kTimeoutMs) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        total.reset();
        break;
      }
      *total += static_cast<std::uint64_t>(std::max<std::int64_t>(0, hi - std::max(lo, tp.offset)));
    }
  }
  rd_kafka_consumer_close(rk.get());
  return total;
}

struct RedriveCounts {
  std::uint64_t read = 0;         // dead letters handed to the handler
  std::uint64_t skipped = 0;      // did not match --error-type (done, not republished)
  std::uint64_t republished = 0;  // handed to the producer
  std::uint64_t unroutable = 0;   // could not be republished: their partition stopped there
};

}  // namespace

int run_dlq_redrive(const DlqRedriveOptions& o) {
  const auto client = client_settings(o.bootstrap_servers, o.rdkafka, o.config_file,
                                      "kc dlq needs the brokers that hold the dead-letter topic");
  if (o.to && *o.to == o.from) {
    throw Error(errc::config_invalid_value, "flag --to: '" + *o.to + "' is the dead-letter topic itself");
  }
  if (o.rate < 0) {
    throw Error(errc::config_invalid_value, "flag --rate: must not be negative");
  }
  const std::string group = o.group.value_or("kc-redrive-" + o.from);
  ConsumerConfig cfg;
  cfg.bootstrap_servers = client.bootstrap;
  cfg.librdkafka = client.librdkafka;
  cfg.group = group;
  cfg.topics = {o.from};
  cfg.from_beginning = true;
  cfg.idle_exit = std::chrono::milliseconds(o.idle_exit_ms);
  // A record that cannot be republished is a permanent condition (no source
  // topic, target missing): no retries, its partition stops there.
  cfg.retry.max_attempts = 1;

  ProducerConfig pc;
  pc.bootstrap_servers = client.bootstrap;
  pc.librdkafka = client.librdkafka;
  pc.librdkafka["allow.auto.create.topics"] = "false";
  // Producer retries must not duplicate, and a copy counts only once every
  // replica has it: kc owns these two here, as it owns auto commit elsewhere.
  for (const auto& [key, want] : {std::pair<std::string, std::string>{"enable.idempotence", "true"}, {"acks", "all"}}) {
    auto& v = pc.librdkafka[key];
    if (!v.empty() && v != want && !(key == "acks" && v == "-1")) {
      throw Error(errc::config_forbidden,
                  "librdkafka." + key + "=" + v + ": kc dlq redrive needs " + want + " (no duplicates, no loss)");
    }
    v = want;
  }
  // Bounds how long a commit waits for the copies it covers (below).
  pc.librdkafka.try_emplace("message.timeout.ms", "60000");
  const auto settle_timeout =
      std::chrono::milliseconds(parse_int(pc.librdkafka.at("message.timeout.ms")).value_or(300000)) +
      std::chrono::seconds(10);
  Targets targets(client);
  if (!targets.partitions(o.from)) {
    throw Error(errc::config_invalid_value, "flag --from: topic '" + o.from + "' does not exist");
  }
  if (o.to && !targets.partitions(*o.to)) {
    throw Error(errc::config_invalid_value,
                "flag --to: topic '" + *o.to + "' does not exist (kc dlq redrive does not create topics)");
  }

  Producer producer(std::move(pc));

  RedriveCounts counts;
  Consumer* consumer_ptr = nullptr;  // set below; the handler calls only stop()
  // Done = dead letters read (skipped ones too); the total is the group's lag
  // on --from at the start, looked up only when the progress is shown.
  Progress progress("kc dlq redrive");
  if (progress.enabled()) {
    auto total = backlog(client, o.from, *targets.partitions(o.from), group);
    if (total && o.max) {
      total = std::min(*total, *o.max);
    }
    progress.set_total(total);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  std::optional<std::chrono::steady_clock::time_point> first_record;  // --rate counts from here
  bool stopping = false;

  Handler handler = [&](const Message& m) -> Outcome {
    ++counts.read;
    const auto dl = parse_dead_letter(m);
    if (!error_type_matches(dl, o.error_type)) {
      ++counts.skipped;
      return Outcome::done;
    }
    // A record that failed in a retry topic goes back to the topic it first came from.
    const std::optional<std::string> target = o.to ? o.to : dl.retry_origin ? dl.retry_origin : dl.source_topic;
    if (!target) {
      ++counts.unroutable;
      throw PermanentError(
          "no source topic header (kc.dlq.source.topic or kafka_dlt-original-topic) and no --to: cannot redrive");
    }
    if (*target == o.from) {
      ++counts.unroutable;
      throw PermanentError("the source topic is the dead-letter topic itself: not redriven");
    }
    const auto parts = targets.partitions(*target);
    if (!parts) {
      ++counts.unroutable;
      throw PermanentError("target topic '" + *target + "' does not exist");
    }
    // Back to the partition it came from when the target has it (keeps its
    // order with the key's other records); otherwise the key decides.
    const std::int32_t partition = dl.source_partition && *dl.source_partition >= 0 && *dl.source_partition < *parts
                                       ? static_cast<std::int32_t>(*dl.source_partition)
                                       : -1;
    headers.clear();
    const auto hs = m.headers();
    for (std::size_t i = 0; i < hs.size(); ++i) {
      const auto h = hs.at(i);
      if (is_metadata_header(h.name) || h.name == kHeaderRedriveCount) {
        continue;
      }
      headers.emplace_back(std::string(h.name),
                           h.value ? std::optional<std::string>(std::string(as_text(*h.value))) : std::nullopt);
    }
    headers.emplace_back(std::string(kHeaderRedriveCount), std::to_string(dl.redrive_count.value_or(0) + 1));
    try {
      producer.produce(*target, m.key(), m.value(), partition, headers);
    } catch (const Error& e) {
      // Rejected before it was sent (too large, fatal producer): this record
      // stops its partition; the copies before it are settled at the commit.
      ++counts.unroutable;
      throw PermanentError(e.what());
    }
    ++counts.republished;
    const auto& ds = producer.stats();
    if (ds.failed > 0 && !stopping) {
      // The commit that follows refuses (see before_commit): stop reading.
      stopping = true;
      spdlog::error("kc dlq redrive: a republished record failed ({}); stopping", ds.last_error);
      consumer_ptr->stop();
    }
    if (o.max && counts.republished >= *o.max && !stopping) {
      stopping = true;
      consumer_ptr->stop();  // records after this one are left for the next run
    }
    if (o.rate > 0) {
      if (!first_record) {
        first_record = std::chrono::steady_clock::now();
      }
      const auto due =
          *first_record + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(static_cast<double>(counts.republished) / o.rate));
      std::this_thread::sleep_until(due);
    }
    progress.update(counts.read, "republished {}, acknowledged {}, failed {}", counts.republished, ds.delivered,
                    ds.failed + counts.unroutable);
    return Outcome::done;
  };

  ConsumerHooks hooks;
  // The records a commit covers were handed to the producer; the commit may
  // only go out once the broker has acknowledged every one of them. Throwing
  // here keeps the commit from being sent.
  hooks.before_commit = [&] {
    if (!producer.flush(settle_timeout)) {
      throw std::runtime_error(fmt::format("{} republished records still unacknowledged after {} ms: not committing",
                                           producer.in_flight(), settle_timeout.count()));
    }
    if (const auto& ds = producer.stats(); ds.failed > 0) {
      throw std::runtime_error(
          fmt::format("{} republished records failed ({}): not committing", ds.failed, ds.last_error));
    }
  };

  Consumer consumer(std::move(cfg), std::move(handler), std::move(hooks));
  consumer_ptr = &consumer;
  stop_on_signals(consumer);
  RunResult result;
  std::string aborted;
  try {
    result = consumer.run();
  } catch (const std::exception& e) {
    // before_commit refused a commit (or setup failed): nothing past the last
    // acknowledged commit was committed.
    aborted = e.what();
  }
  const bool flushed = producer.flush(settle_timeout);
  progress.clear();

  const auto& ds = producer.stats();
  const std::uint64_t failed = ds.failed + counts.unroutable + (flushed ? 0 : producer.in_flight());
  log::printf(LogLevel::info, "kc dlq redrive: %llu records from %s to %s, acknowledged %llu, failed %llu\n",
              static_cast<unsigned long long>(counts.republished), o.from.c_str(),
              o.to ? o.to->c_str() : "their source topics", static_cast<unsigned long long>(ds.delivered),
              static_cast<unsigned long long>(failed));
  std::string committed;
  for (const auto& [tp, off] : result.stats.committed) {
    committed += fmt::format(" {}[{}]={}", tp.topic, to_int(tp.partition), to_int(off));
  }
  log::printf(LogLevel::info,
              "  group %s: read %llu, skipped %llu (other error types), not redriven %llu; committed in this run:%s\n",
              group.c_str(), static_cast<unsigned long long>(counts.read),
              static_cast<unsigned long long>(counts.skipped), static_cast<unsigned long long>(counts.unroutable),
              committed.empty() ? " (none)" : committed.c_str());
  if (!ds.last_error.empty()) {
    log::printf(LogLevel::error, "  last delivery error: %s\n", ds.last_error.c_str());
  }
  if (!aborted.empty()) {
    log::printf(LogLevel::error, "kc dlq redrive: stopped without committing further: %s\n", aborted.c_str());
    return 1;
  }
  if (result.reason == StopReason::fatal) {
    log::printf(LogLevel::error, "kc dlq redrive: fatal: %s\n", result.error.c_str());
    return 1;
  }
  if (result.reason == StopReason::requested && !stopping) {
    log::printf(LogLevel::info, "kc dlq redrive: interrupted; run it again with the same group to go on\n");
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace kc::tool
