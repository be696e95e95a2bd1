// `kc dlq redrive`: republishes dead letters.
//
// A kc::Consumer in a group of its own plus an idempotent (acks=all)
// kc::Producer. The at-least-once argument: a record's handler only enqueues
// its copy, so the record is "done" before the broker has acknowledged that
// copy; the before_commit hook therefore flushes the producer and throws
// when any copy failed or is still unacknowledged, and a throwing
// before_commit keeps that commit from being sent (it ends the run). So
// every commit covers only acknowledged copies, and a graceful stop
// (SIGINT/SIGTERM: the final commit flushes first) followed by a restart
// republishes nothing twice. A kill -9 (or a crash) can: the copies
// acknowledged after the last commit are republished by the next run. Only a
// transactional producer (offsets committed in the producer's transaction)
// would make that exactly-once.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "dlq_common.hpp"
#include "kc/config.hpp"
#include "kc/consumer.hpp"
#include "kc/deadletter.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/message.hpp"
#include "kc/producer.hpp"
#include "progress.hpp"
#include "rdkafka/watermarks.hpp"

namespace kc::tool {

namespace {

using detail::conf_set;
using detail::ConfPtr;
using detail::HandlePtr;
using detail::PartitionListPtr;

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

// message.timeout.ms as a duration; librdkafka's default (300000) when it
// is not a plain integer.
std::chrono::milliseconds message_timeout(std::string_view ms) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), v);
  return std::chrono::milliseconds(ec == std::errc() && p == ms.data() + ms.size() && !ms.empty() ? v : 300000);
}

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
      if (detail::query_watermarks(rk.get(), topic, tp.partition, lo, hi, std::chrono::milliseconds(kTimeoutMs)) !=
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

CLI::App* add_dlq_redrive_command(CLI::App& dlq, DlqRedriveOptions& o) {
  auto* re = dlq.add_subcommand(
      "redrive",
      "republish dead letters without their dead-letter headers, to --to or their source topic (at least once)");
  re->add_option("-f,--from", o.from, "the dead-letter topic")->required();
  re->add_option("--to", o.to, "target topic (default: each record's source topic)");
  re->add_option("-b,--bootstrap-servers", o.bootstrap_servers, "brokers (or KC_BOOTSTRAP_SERVERS)");
  re->add_option("-g,--group", o.group, "consumer group of the redrive (default kc-redrive-<from>)");
  re->add_option("--error-type", o.error_type, "only records whose error type contains this; others are skipped");
  re->add_option("--max", o.max, "stop after republishing N records");
  re->add_option("--idle-exit-ms", o.idle_exit_ms, "stop after N ms without a record (default 3000)");
  re->add_option("--rate", o.rate, "records per second (default: no limit)");
  re->add_option("-X", o.rdkafka, "librdkafka property key=value for consumer and producer (repeatable)");
  re->add_option("--config", o.config_file, "TOML configuration file (brokers and [librdkafka] only)");
  re->footer(kRedriveFooter);
  return re;
}

int run_dlq_redrive(const DlqRedriveOptions& o) {
  const auto client = client_settings(o.bootstrap_servers, o.rdkafka, o.config_file, kDlqNeedsBrokers);
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
  const auto settle_timeout = message_timeout(pc.librdkafka.at("message.timeout.ms")) + std::chrono::seconds(10);
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
    const auto dl = detail::read_dead_letter(m);
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
    for (const auto& h : dl.headers) {
      if (h.name == kHeaderRedriveCount) {
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
