// `kc dlq inspect`: lists the dead letters of a topic.
//
// It talks to librdkafka directly: kc::Consumer always joins a group and
// commits, and looking at a dead-letter topic must do neither. It assigns
// every partition itself, reads up to the high watermarks taken at the start
// and exits.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <type_traits>

#include "commands.hpp"
#include "dlq_common.hpp"
#include "json_out.hpp"
#include "kc/decode.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/message.hpp"
#include "progress.hpp"
#include "rdkafka/watermarks.hpp"
#include "text/text.hpp"

namespace kc::tool {

namespace {

std::string hex(Bytes b) {
  std::string out;
  detail::append_hex(out, as_text(b));
  return out;
}

// Bytes as text when UTF-8, else hex, with "<name>_encoding": "text" | "hex" | null.
void add_bytes(JsonObject& o, std::string_view name, const std::optional<Bytes>& b) {
  const auto encoding = std::string(name) + "_encoding";
  if (!b) {
    o.raw(name, "null").raw(encoding, "null");
    return;
  }
  if (is_valid_utf8(*b)) {
    o.str(name, as_text(*b)).raw(encoding, "\"text\"");
  } else {
    o.str(name, hex(*b)).raw(encoding, "\"hex\"");
  }
}

std::string to_json(const Message& m, const detail::DeadLetter& dl) {
  JsonArray headers;
  for (const auto& h : dl.headers) {
    JsonObject header;
    header.str("name", h.name);
    add_bytes(header, "value", h.value);
    headers.raw(header.done());
  }
  const auto ts = m.timestamp();
  JsonObject out;
  out.str("topic", m.topic())
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
      .str("failed_at", dl.failed_at);
  add_bytes(out, "key", dl.key);
  add_bytes(out, "value", dl.value);
  return out.raw("headers", headers.done()).done();
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
    out = json_string(as_text(shown));
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

std::string to_human(const Message& m, const detail::DeadLetter& dl) {
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
  out += fmt::format("  key: {}\n", human_bytes(dl.key));
  out += fmt::format("  value: {}\n", human_bytes(dl.value));
  std::string headers;
  for (const auto& h : dl.headers) {
    headers += fmt::format("{}{}={}", headers.empty() ? "" : ", ", h.name, human_bytes(h.value));
  }
  if (!headers.empty()) {
    out += "  headers: " + headers + "\n";
  }
  return out;
}

}  // namespace

CLI::App* add_dlq_inspect_command(CLI::App& dlq, DlqInspectOptions& o) {
  auto* in = dlq.add_subcommand(
      "inspect", "list the dead letters of a topic (from the beginning up to its end at start; no group, no commit)");
  in->add_option("-t,--topic", o.topic, "the dead-letter topic")->required();
  in->add_option("-b,--bootstrap-servers", o.bootstrap_servers, "brokers (or KC_BOOTSTRAP_SERVERS)");
  in->add_option("--error-type", o.error_type, "only records whose error type contains this (exact names match)");
  in->add_option("--source-partition", o.source_partition, "only records from this source partition");
  in->add_option("--max", o.max, "stop after showing N records");
  in->add_flag("--json", o.json, "one JSON object per line (keys, values and headers in full)");
  in->add_option("--timeout-ms", o.timeout_ms, "give up when nothing arrives for N ms (default 30000)");
  in->add_option("-X", o.rdkafka, "librdkafka property key=value (repeatable)");
  in->add_option("--config", o.config_file, "TOML configuration file (brokers and [librdkafka] only)");
  in->footer(
      "Metadata comes from kc's kc.dlq.* headers or Spring's kafka_dlt-* headers, whichever are present.\n"
      "Keys, values and headers are shown as text when they are UTF-8, else as hex.\n"
      "The summary (shown / read) goes to stderr.");
  return in;
}

int run_dlq_inspect(const DlqInspectOptions& o) {
  const auto client = client_settings(o.bootstrap_servers, o.rdkafka, o.config_file, kDlqNeedsBrokers);
  const auto timeout = std::chrono::milliseconds(std::max<std::uint64_t>(o.timeout_ms, 1000));

  detail::ConfPtr conf(rd_kafka_conf_new());
  detail::conf_set(conf.get(), "bootstrap.servers", client.bootstrap);
  // librdkafka wants a group id for assign(); it is never joined (no
  // subscribe) and nothing is committed (auto commit off, no commit call).
  detail::conf_set(conf.get(), "group.id", fmt::format("kc-dlq-inspect-{}", getpid()));
  detail::conf_set(conf.get(), "auto.offset.reset", "earliest");
  detail::conf_set(conf.get(), "allow.auto.create.topics", "false");
  for (const auto& [k, v] : client.librdkafka) {
    detail::conf_set(conf.get(), k, v);
  }
  detail::conf_set(conf.get(), "enable.auto.commit", "false");
  detail::conf_set(conf.get(), "enable.auto.offset.store", "false");
  detail::conf_set(conf.get(), "enable.partition.eof", "true");
  auto rk = make_logged_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(rk.get());

  const auto parts = partition_count(rk.get(), o.topic, timeout);
  if (!parts) {
    throw Error(errc::config_invalid_value, "flag --topic: topic '" + o.topic + "' does not exist");
  }
  // Where to stop: the end of each partition now; later records are not shown.
  std::map<std::int32_t, std::int64_t> end;
  std::uint64_t total = 0;
  detail::PartitionListPtr assignment(rd_kafka_topic_partition_list_new(*parts));
  for (std::int32_t p = 0; p < *parts; ++p) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    // Retried while the leader is settling (a topic created a moment ago).
    const auto err = detail::query_watermarks(rk.get(), o.topic, p, lo, hi, timeout);
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
    detail::MessagePtr m(rd_kafka_consumer_poll(rk.get(), 200));
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
    const auto dl = detail::read_dead_letter(msg);
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

}  // namespace kc::tool
