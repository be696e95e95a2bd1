#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "kc/consumer.hpp"
#include "kc/decode.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/retry.hpp"
#include "kc/schema.hpp"
#include "kc/sink.hpp"
#include "outputs.hpp"

extern char** environ;

namespace kc::tool {

std::pair<std::string, std::string> split_property(const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Error(errc::config_invalid_value, "-X " + kv + ": expected key=value");
  }
  return {kv.substr(0, eq), kv.substr(eq + 1)};
}

void add_consume_command(CLI::App& app, ConsumeOptions& o) {
  auto* c = app.add_subcommand("consume", "consume topics in a consumer group into a sink (at-least-once)");
  c->add_option("-b,--bootstrap-servers", o.bootstrap_servers, "brokers; none: an embedded mock broker");
  c->add_option("-g,--group", o.group, "consumer group id");
  c->add_option("-t,--topic", o.topics, "topic to subscribe to (repeatable; ^regex allowed)");
  c->add_flag("--from-beginning", o.from_beginning, "start at the earliest offset when the group has none");
  c->add_option("--value-format", o.value_format,
                 "raw|string|json, or a Schema Registry format: avro|protobuf|jsonschema (needs --schema-registry)")
      ->check(CLI::IsMember({"raw", "string", "json", "avro", "protobuf", "jsonschema"}));
  c->add_option("--key-format", o.key_format, "raw|string, or avro|protobuf|jsonschema")
      ->check(CLI::IsMember({"raw", "string", "avro", "protobuf", "jsonschema"}));
  add_registry_options(c, o.registry);
  c->add_option("--avro-reader-schema", o.avro_reader_schema,
                "Avro reader schema file: every record is resolved to it (schema evolution)");
  c->add_flag("--no-schema-validation", o.no_schema_validation,
              "jsonschema: do not validate documents against their registered schema (still checked as JSON)");
  c->add_option("--sink", o.sink,
                "stdout | jsonl:PATH | null | sqlite:PATH | postgres:URI | kafka:TOPIC (sqlite/postgres: one row "
                "per record; kafka: a copy of each record)");
  c->add_flag("--exactly-once", o.exactly_once,
              "sqlite:, postgres:, kafka: sinks: commit the output and the offsets in one transaction");
  c->add_option("--transactional-id", o.transactional_id,
                "kafka sink with --exactly-once: the producer's transactional.id, stable per instance (default: "
                "kc-<group>-<group.instance.id>, or without static membership kc-<group>-<host>-<slot>, the "
                "lowest slot no other kc process of the group on this host holds: a restart reuses it)");
  c->add_flag("--stop-on-producer-fatal", o.stop_on_producer_fatal,
              "kafka sink with --exactly-once: stop (exit 1) when the transactional producer is fenced or fails "
              "fatally, instead of recreating it");
  c->add_option("--sink-table", o.sink_table, "sqlite:/postgres: sinks: the table of rows (default kc_records)");
  c->add_option("--max-messages", o.max_messages, "exit cleanly (final commit) after N records");
  c->add_option("--idle-exit-ms", o.idle_exit_ms, "exit cleanly after N ms without a record, counted from assignment");
  c->add_option("--commit-every", o.commit_every, "commit after N done records (default 500)");
  c->add_option("--commit-interval-ms", o.commit_interval_ms, "commit at least every N ms (default 5000)");
  c->add_option("-X", o.rdkafka, "librdkafka property key=value (repeatable)");
  c->add_option("--config", o.config_file, "TOML configuration file");
  c->add_option("--dlq-topic", o.dlq_topic,
                "send dead records (undecodable, or failed after the retries) to this topic; {topic} stands for "
                "the source topic, e.g. '{topic}.dead-letter'");
  c->add_option("--max-retries", o.max_retries, "retries after the first attempt (default 2: 3 attempts)");
  c->add_option("--retry-backoff-ms", o.retry_backoff_ms, "first retry delay, doubled each time (default 1000)");
  c->add_option("--retry-backoff-max-ms", o.retry_backoff_max_ms, "cap on the retry delay (default 30000)");
  c->add_option("--dlq-headers", o.dlq_headers, "dead-letter metadata headers: kc|spring|both (default kc)")
      ->check(CLI::IsMember({"kc", "spring", "both"}));
  c->add_flag("--retry-topics", o.retry_topics,
              "non-blocking retries through <topic>.retry.<n> topics (they must exist); gives up ordering");
  c->add_option("--ordering", o.ordering,
                "in parallel processing, what stays in offset order: partition (default), key or unordered")
      ->check(CLI::IsMember({"partition", "key", "unordered"}));
  c->add_option("--concurrency", o.concurrency,
                "worker threads running the handler; 0: the poll thread (default; with --ordering key|unordered: "
                "one per CPU)");
  c->add_option("--max-in-flight", o.max_in_flight,
                "parallel: records in process at once, all partitions (default 1000)");
  c->add_option("--max-in-flight-per-partition", o.max_in_flight_per_partition,
                "parallel: records in process at once per partition (default: --max-in-flight)");
  c->add_option("--revoke-timeout-ms", o.revoke_timeout_ms,
                "parallel: on a revoke, wait up to N ms for the partitions' records in process (default 10000)");
  c->add_option("--metrics-port", o.metrics_port,
                "serve /metrics (Prometheus), /healthz and /readyz on this port (0: an ephemeral one, logged)");
  c->add_option("--metrics-bind", o.metrics_bind, "address for --metrics-port (default 0.0.0.0)");
  auto* latency = c->add_option("--simulate-latency-ms", o.simulate_latency_ms,
                                "test: every record also waits MS ms, as for I/O (asynchronous; a sleep on the "
                                "workers with --concurrency)")
                      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{600000}));
  c->add_option("--simulate-latency-jitter-ms", o.simulate_latency_jitter_ms,
                "test: add a uniform random 0..J ms to --simulate-latency-ms")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{600000}))
      ->needs(latency);
  c->add_option("--simulate-cpu-us", o.simulate_cpu_us,
                "test: burn US microseconds of CPU per record (on the poll thread without --concurrency)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{10000000}));
}

namespace {

bool is_registry_format(const std::string& f) {
  return f == "avro" || f == "protobuf" || f == "jsonschema";
}

std::string read_file(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(errc::config_invalid_value, std::string(flag) + " " + path + ": cannot open");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Decodes one side (key or value) of a record with a Schema Registry format
// and says what the failure means for the record. Registry trouble is not
// the record's fault: it is retried, and when it outlasts the retries the
// consumer stops (exit 1) instead of dead-lettering good records.
class RegistryDecoder {
 public:
  RegistryDecoder(const std::string& format, std::shared_ptr<schema::SchemaRegistry> registry,
                  schema::DeserializerOptions options, const char* side)
      : deserializer_(schema::parse_format(format), std::move(registry), std::move(options)), side_(side) {}

  /// Decodes `in` into `out` (cleared first). Returns false with `error` for
  /// a record that cannot be decoded. Throws RetriableError when the registry
  /// fails; `give_up` is then set on the record's last attempt.
  bool decode(Bytes in, std::string& out, std::string& error, bool last_attempt, bool& give_up) {
    out.clear();
    try {
      if (deserializer_.decode(in, out, error)) {
        return true;
      }
      error = std::string(side_) + ": " + error;
      return false;
    } catch (const Error& e) {
      if (last_attempt || e.code() == errc::registry_rejected) {
        give_up = true;
      }
      throw RetriableError(std::string(side_) + ": " + e.what());
    }
  }

 private:
  schema::Deserializer deserializer_;
  const char* side_;
};

// The simulated I/O time of one record: `base` plus a uniform random 0..jitter
// (to the microsecond). Any thread: each has its own generator.
std::chrono::microseconds simulated_latency(std::chrono::milliseconds base, std::chrono::milliseconds jitter) {
  if (jitter.count() == 0) {
    return base;
  }
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<std::chrono::microseconds::rep> extra(0, std::chrono::microseconds(jitter).count());
  return base + std::chrono::microseconds(extra(rng));
}

// Simulated CPU-bound work: spins for `d`, computing. The result goes to a
// volatile, so the compiler must keep the loop; a sleep would free the core.
void burn_cpu(std::chrono::microseconds d) {
  if (d.count() <= 0) {
    return;
  }
  thread_local volatile std::uint64_t result = 0;
  const auto until = std::chrono::steady_clock::now() + d;
  std::uint64_t x = result | 1;
  do {
    for (int i = 0; i < 256; ++i) {  // xorshift64: about a microsecond between clock reads
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  } while (std::chrono::steady_clock::now() < until);
  result = x;
}

// Completes the records of --simulate-latency-ms when their simulated I/O is
// over: one thread, a min-heap on due time, asleep on a condition variable
// until the earliest one is due. Completions still pending at stop() stay in
// the heap and are dropped with the timer, after the consumer is gone (the
// timer is declared before it), so they change nothing.
class LatencyTimer {
 public:
  using Clock = std::chrono::steady_clock;

  /// `write` runs on the timer thread before each completion, with the
  /// text given to add().
  explicit LatencyTimer(std::function<void(std::string_view)> write)
      : write_(std::move(write)), thread_([this] { loop(); }) {}
  ~LatencyTimer() { stop(); }
  LatencyTimer(const LatencyTimer&) = delete;
  LatencyTimer& operator=(const LatencyTimer&) = delete;

  /// Writes `rendered` and completes `completion` (done) at `due` or soon
  /// after. Any thread.
  void add(Clock::time_point due, Completion completion, std::string rendered) {
    bool earliest = false;
    {
      std::lock_guard lock(mu_);
      earliest = heap_.empty() || due < heap_.front().due;
      heap_.push_back({due, std::move(completion), std::move(rendered)});
      std::push_heap(heap_.begin(), heap_.end(), later);
    }
    if (earliest) {
      cv_.notify_one();
    }
  }

  /// Stops and joins the thread; what is pending is not completed.
  void stop() noexcept {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  struct Entry {
    Clock::time_point due;
    Completion completion;
    std::string rendered;
  };
  static bool later(const Entry& a, const Entry& b) { return a.due > b.due; }

  void loop() {
    std::vector<Entry> due;
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (heap_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const auto now = Clock::now();
      if (heap_.front().due > now) {
        const auto next = heap_.front().due;  // a copy: add() may move the front while we wait
        cv_.wait_until(lock, next);
        continue;
      }
      while (!heap_.empty() && heap_.front().due <= now) {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        due.push_back(std::move(heap_.back()));
        heap_.pop_back();
      }
      lock.unlock();  // done() takes the consumer's lock: not under ours
      for (auto& e : due) {
        try {
          write_(e.rendered);
          e.completion.done();
        } catch (const std::exception& ex) {
          // A sink write failed: the record fails (retried, then dead); a
          // failed write must not be skipped.
          e.completion.fail(std::current_exception());
          spdlog::error("kc: simulated latency: cannot finish a record: {}", ex.what());
        }
      }
      due.clear();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> heap_;  // a min-heap on due (std::push_heap with later)
  bool stopping_ = false;
  std::function<void(std::string_view)> write_;
  std::thread thread_;  // last: starts once the members it uses exist
};

// The Kafka sink's transactional.id without --transactional-id or
// group.instance.id: kc-<group>-<host>-<slot>, the slot being the lowest
// number that no other kc process of this group on this host holds (an
// flock on a file in the runtime directory, which the kernel releases when
// the process ends, however it ends). A process restarted after a crash
// thus gets its predecessor's id, and its init_transactions aborts the dead
// one's open transaction at once; with a per-process id that transaction
// held back every read_committed reader of the output until
// transaction.timeout.ms (60 s) ran out.
std::string host_slot_transactional_id(const std::string& group) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::filesystem::path dir = runtime != nullptr && *runtime != '\0'
                                        ? std::filesystem::path(runtime) / "kc"
                                        : std::filesystem::temp_directory_path() / ("kc-" + std::to_string(getuid()));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  // The group as a file name: [A-Za-z0-9._-] kept, anything else '_', plus
  // a hash of the whole name, so that two groups never share a slot file.
  std::string safe;
  for (const char c : group) {
    safe += std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-' ? c : '_';
  }
  safe = fmt::format("{}-{:016x}", safe.substr(0, 100), std::hash<std::string>{}(group));
  for (int slot = 0; slot < 4096; ++slot) {
    const auto path = dir / fmt::format("txn-{}-{}.lock", safe, slot);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw Error(errc::config_invalid_value, "--transactional-id: cannot open " + path.string() +
                                                  " to choose a stable id (set --transactional-id or "
                                                  "librdkafka.group.instance.id)");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      // Held (the descriptor stays open) until this process ends.
      return fmt::format("kc-{}-{}-{}", group, host, slot);
    }
    ::close(fd);
  }
  throw Error(errc::config_invalid_value,
              "--transactional-id: 4096 kc processes of group " + group + " on this host already hold a slot");
}

std::string_view reason_text(StopReason r) {
  switch (r) {
    case StopReason::requested: return "stop requested";
    case StopReason::max_messages: return "max-messages reached";
    case StopReason::idle: return "idle";
    case StopReason::fatal: return "fatal error";
  }
  return "?";
}

}  // namespace

int run_consume(const ConsumeOptions& o) {
  // Precedence: file < env < flags; each layer goes through set() for the
  // same validation and errors.
  ConsumerConfig cfg;
  if (o.config_file) {
    cfg.load_file(*o.config_file);
  }
  cfg.load_env(environ);
  if (o.bootstrap_servers) {
    cfg.set("bootstrap_servers", *o.bootstrap_servers, "flag --bootstrap-servers");
  }
  if (o.group) {
    cfg.set("group", *o.group, "flag --group");
  }
  if (!o.topics.empty()) {
    cfg.topics = o.topics;
  }
  if (o.from_beginning) {
    cfg.set("from_beginning", "true", "flag --from-beginning");
  }
  if (o.max_messages) {
    cfg.set("max_messages", std::to_string(*o.max_messages), "flag --max-messages");
  }
  if (o.idle_exit_ms) {
    cfg.set("idle_exit_ms", std::to_string(*o.idle_exit_ms), "flag --idle-exit-ms");
  }
  if (o.commit_every) {
    cfg.set("commit.every_messages", std::to_string(*o.commit_every), "flag --commit-every");
  }
  if (o.commit_interval_ms) {
    cfg.set("commit.interval_ms", std::to_string(*o.commit_interval_ms), "flag --commit-interval-ms");
  }
  for (const auto& kv : o.rdkafka) {
    const auto [k, v] = split_property(kv);
    cfg.set("librdkafka." + k, v, "flag -X");
  }
  if (o.dlq_topic) {
    cfg.set("dlq.topic", *o.dlq_topic, "flag --dlq-topic");
  }
  if (o.max_retries) {
    cfg.set("retry.max_attempts", std::to_string(*o.max_retries + 1), "flag --max-retries");
  }
  if (o.retry_backoff_ms) {
    cfg.set("retry.backoff_ms", std::to_string(*o.retry_backoff_ms), "flag --retry-backoff-ms");
  }
  if (o.retry_backoff_max_ms) {
    cfg.set("retry.backoff_max_ms", std::to_string(*o.retry_backoff_max_ms), "flag --retry-backoff-max-ms");
  }
  if (o.dlq_headers) {
    cfg.set("dlq.headers", *o.dlq_headers, "flag --dlq-headers");
  }
  if (o.retry_topics) {
    cfg.set("retry.topics", "true", "flag --retry-topics");
  }
  if (o.ordering) {
    cfg.set("parallel.ordering", *o.ordering, "flag --ordering");
  }
  if (o.concurrency) {
    cfg.set("parallel.concurrency", std::to_string(*o.concurrency), "flag --concurrency");
  }
  if (o.max_in_flight) {
    cfg.set("parallel.max_in_flight", std::to_string(*o.max_in_flight), "flag --max-in-flight");
  }
  if (o.max_in_flight_per_partition) {
    cfg.set("parallel.max_in_flight_per_partition", std::to_string(*o.max_in_flight_per_partition),
            "flag --max-in-flight-per-partition");
  }
  if (o.revoke_timeout_ms) {
    cfg.set("parallel.revoke_timeout_ms", std::to_string(*o.revoke_timeout_ms), "flag --revoke-timeout-ms");
  }
  if (o.metrics_port) {
    cfg.set("metrics.port", std::to_string(*o.metrics_port), "flag --metrics-port");
  }
  if (o.metrics_bind) {
    cfg.set("metrics.bind", *o.metrics_bind, "flag --metrics-bind");
  }
  apply_registry_options(o.registry, cfg);
  // Three ways to run the handler. Simulated latency without worker threads:
  // the asynchronous form, completed by a timer thread. Worker threads: the
  // synchronous handler on parallel.concurrency threads. Neither: the
  // handler on the poll thread, one record at a time (the default). An
  // ordering other than partition asks for parallelism: without workers or
  // latency it gets one worker per CPU.
  const bool async = o.simulate_latency_ms && cfg.parallel.concurrency == 0;
  if (!async && cfg.parallel.concurrency == 0 && cfg.parallel.ordering != Ordering::partition) {
    cfg.set("parallel.concurrency", std::to_string(std::max(1u, std::thread::hardware_concurrency())),
            "default of --ordering without --concurrency");
  }
  const bool workers = cfg.parallel.concurrency > 0;
  if (!async && !workers && (o.max_in_flight || o.max_in_flight_per_partition || o.revoke_timeout_ms)) {
    spdlog::warn("kc: --max-in-flight[-per-partition], --revoke-timeout-ms: ignored without parallel processing");
  }
  const auto latency = std::chrono::milliseconds(static_cast<std::int64_t>(o.simulate_latency_ms.value_or(0)));
  const auto jitter = std::chrono::milliseconds(static_cast<std::int64_t>(o.simulate_latency_jitter_ms));
  const auto cpu = std::chrono::microseconds(static_cast<std::int64_t>(o.simulate_cpu_us));
  const bool dead_letters = cfg.dead_letter.active();
  const int max_attempts = cfg.retry.max_attempts;

  // Schema Registry formats: one registry client shared by key and value.
  std::shared_ptr<schema::SchemaRegistry> registry;
  std::optional<RegistryDecoder> value_decoder;
  std::optional<RegistryDecoder> key_decoder;
  if (is_registry_format(o.value_format) || is_registry_format(o.key_format)) {
    if (cfg.schema_registry.url.empty()) {
      throw Error(errc::config_missing, "--value-format/--key-format " +
                                            (is_registry_format(o.value_format) ? o.value_format : o.key_format) +
                                            ": needs --schema-registry URL (or KC_SCHEMA_REGISTRY_URL)");
    }
    registry = std::make_shared<schema::SchemaRegistry>(cfg.schema_registry);
  }
  if (o.avro_reader_schema && o.value_format != "avro") {
    throw Error(errc::config_invalid_value, "--avro-reader-schema: applies to --value-format avro only");
  }
  if (is_registry_format(o.value_format)) {
    schema::DeserializerOptions opts;
    if (o.avro_reader_schema) {
      opts.avro_reader_schema = read_file(*o.avro_reader_schema, "--avro-reader-schema");
    }
    opts.validate_json = !o.no_schema_validation;
    value_decoder.emplace(o.value_format, registry, std::move(opts), "value");
  }
  if (is_registry_format(o.key_format)) {
    schema::DeserializerOptions opts;
    opts.validate_json = !o.no_schema_validation;
    key_decoder.emplace(o.key_format, registry, std::move(opts), "key");
  }

  const auto vf = o.value_format == "raw"      ? ValueFormat::raw
                  : o.value_format == "string" ? ValueFormat::string
                                               : ValueFormat::json;
  const auto kf = o.key_format == "raw" ? KeyFormat::raw : key_decoder ? KeyFormat::json : KeyFormat::string;
  // A Kafka sink writes to the consumer's cluster: with the embedded broker,
  // the tool starts it (and owns it) so both can reach it.
  std::unique_ptr<EmbeddedBroker> embedded;
  if (cfg.bootstrap_servers.empty() && o.sink.starts_with("kafka:")) {
    embedded = std::make_unique<EmbeddedBroker>(1);
    cfg.bootstrap_servers = embedded->bootstrap_servers();
    spdlog::warn("kc: no bootstrap servers given: using an embedded mock broker at {} (in-process, data is lost "
                 "on exit)",
                 cfg.bootstrap_servers);
  }
  OutputOptions oo;
  oo.spec = o.sink;
  oo.exactly_once = o.exactly_once;
  oo.group = cfg.group;
  oo.bootstrap_servers = cfg.bootstrap_servers;
  oo.table = o.sink_table;
  oo.rebuild_on_fatal = !o.stop_on_producer_fatal;
  if (o.transactional_id) {
    oo.transactional_id = *o.transactional_id;
  } else if (const auto it = cfg.librdkafka.find("group.instance.id"); it != cfg.librdkafka.end()) {
    oo.transactional_id = "kc-" + cfg.group + "-" + it->second;
  } else if (o.exactly_once && o.sink.starts_with("kafka:")) {
    oo.transactional_id = host_slot_transactional_id(cfg.group);
  }
  {
    // A transactional call blocks the poll thread; past the session timeout
    // (a broker outage) the group's loss of this member would be served only
    // after it, when the broker may already fence the stale static member
    // (librdkafka treats that as fatal). Half the session at most: a commit
    // that takes longer is given up (the producer is rebuilt and the
    // partitions rewound).
    std::int64_t session_ms = 45000;
    if (const auto it = cfg.librdkafka.find("session.timeout.ms"); it != cfg.librdkafka.end()) {
      // An invalid value is reported by the consumer's validation, naming the key.
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), session_ms);
    }
    oo.commit_timeout = std::chrono::milliseconds(std::min<std::int64_t>(30000, std::max<std::int64_t>(session_ms / 2, 1000)));
  }
  if (o.exactly_once && (async || workers)) {
    throw Error(errc::config_invalid_value,
                "--exactly-once: runs the handler on the poll thread; drop --concurrency, --ordering and "
                "--simulate-latency-ms");
  }
  if (o.exactly_once && cfg.group.empty()) {
    throw Error(errc::config_missing, "--exactly-once: needs --group (the sink keeps offsets per group)");
  }
  auto output = make_output(oo, kf, vf);
  auto& sink = output.sink;
  // The null sink throws the text away: validate without producing it.
  const bool discard = o.sink == "null";

  JsonDecoder decoder;
  std::string json;
  std::string key_json;
  std::string error;
  std::uint64_t malformed = 0;
  bool registry_failed = false;
  std::string registry_error;
  // Declared before the consumer so that completions still pending when run()
  // returns outlive it (see LatencyTimer).
  std::optional<LatencyTimer> timer;
  std::optional<Consumer> consumer;
  // A record that cannot be decoded: to the dead-letter topic when there is
  // one (with its original bytes), else written with the raw bytes and the
  // reason next to them.
  const auto undecodable = [&](const Message& m, DecodedValue& dv) {
    ++malformed;
    if (dead_letters) {
      throw DecodeError(error);
    }
    spdlog::warn("kc: {}[{}] offset {}: {} (written with the raw bytes in base64)", m.topic(), to_int(m.partition()),
                 to_int(m.offset()), error);
    dv.error = error;
    dv.json = {};
    dv.key_json = {};
  };
  // Decodes `m` and writes it to the sink, or with `rendered`, appends its
  // sink text there to be written later; throws DecodeError (undecodable,
  // with a dead-letter topic) or RetriableError (registry trouble). Not
  // thread-safe: decoders, buffers, counters and the sink are shared.
  const auto write_record = [&](const Message& m, std::string* rendered = nullptr) {
    DecodedValue dv;
    bool give_up = false;
    try {
      if (key_decoder && m.key()) {
        if (key_decoder->decode(*m.key(), key_json, error, m.attempt() >= max_attempts, give_up)) {
          dv.key_json = key_json;
        } else {
          undecodable(m, dv);
        }
      }
      if (dv.error.empty() && value_decoder && m.value()) {
        if (value_decoder->decode(*m.value(), json, error, m.attempt() >= max_attempts, give_up)) {
          dv.json = json;
        } else {
          undecodable(m, dv);
        }
      } else if (dv.error.empty() && vf == ValueFormat::json && m.value()) {
        json.clear();
        if (decoder.decode(*m.value(), json, error,
                           discard ? JsonDecoder::Output::none : JsonDecoder::Output::line)) {
          dv.json = json;
        } else {
          undecodable(m, dv);
        }
      }
    } catch (const RetriableError& e) {
      if (give_up && !registry_failed) {
        // Stop without committing this record: a restart picks it up.
        registry_failed = true;
        registry_error = e.what();
        spdlog::error("kc: {}[{}] offset {}: schema registry: {}; stopping", m.topic(), to_int(m.partition()),
                      to_int(m.offset()), e.what());
        consumer->stop();
      }
      throw;
    }
    if (rendered != nullptr) {
      sink->render(m, dv, *rendered);
    } else {
      sink->write(m, dv);
    }
  };
  // With worker threads, the library runs handlers in parallel, but the tool
  // serialises decoding and sink writes (shared decoders, buffers and sink)
  // under `mu`, and the sink's flush before a commit takes it too. Only the
  // simulated latency and CPU work run in parallel, outside the lock. In the
  // asynchronous form the timer thread writes under `mu`.
  std::mutex mu;
  ConsumerHooks hooks;
  hooks.exactly_once = output.transactional;
  if (workers || async) {
    hooks.before_commit = [&] {
      std::lock_guard lock(mu);
      sink->flush();
    };
  } else {
    hooks.before_commit = [&] { sink->flush(); };
  }

  if (async) {
    // On the poll thread: simulated CPU work and decoding happen in the
    // call, which renders the record's sink text; the timer thread writes it
    // when the simulated I/O is over, then completes the record. So the sink
    // shows completion order, as a handler that writes after its I/O would.
    // A throw (undecodable, registry) fails the record at once.
    AsyncHandler handler = [&](const Message& m, Completion completion) {
      burn_cpu(cpu);
      std::string rendered;
      write_record(m, &rendered);
      timer->add(LatencyTimer::Clock::now() + simulated_latency(latency, jitter), std::move(completion),
                 std::move(rendered));
    };
    consumer.emplace(std::move(cfg), std::move(handler), std::move(hooks));
  } else if (workers) {
    Handler handler = [&](const Message& m) {
      if (o.simulate_latency_ms) {
        std::this_thread::sleep_for(simulated_latency(latency, jitter));
      }
      burn_cpu(cpu);
      std::lock_guard lock(mu);
      write_record(m);
      return Outcome::done;
    };
    consumer.emplace(std::move(cfg), std::move(handler), std::move(hooks));
  } else {
    Handler handler = [&](const Message& m) {
      burn_cpu(cpu);
      write_record(m);
      return Outcome::done;
    };
    consumer.emplace(std::move(cfg), std::move(handler), std::move(hooks));
  }
  stop_on_signals(*consumer);
  if (async) {
    timer.emplace([&](std::string_view rendered) {
      std::lock_guard lock(mu);
      sink->write_rendered(rendered);
    });
  }
  const auto result = consumer->run();
  if (timer) {
    timer->stop();
  }
  // Under the lock in case the library left a worker behind (a handler that
  // outlasted the shutdown timeouts).
  std::lock_guard lock(mu);
  sink->flush();

  const auto& st = result.stats;
  const double secs = std::chrono::duration<double>(st.busy).count();
  std::string committed;
  for (const auto& [tp, off] : st.committed) {
    committed += fmt::format(" {}[{}]={}", tp.topic, to_int(tp.partition), to_int(off));
  }
  const std::string why_stopped =
      registry_failed ? "stopped by a schema registry failure" : std::string(reason_text(result.reason));
  // log::printf: plain text as before, or JSON lines with --log-format json; secrets masked.
  log::printf(LogLevel::info,
              "kc consume: %s after %llu records in %.2f s (%.0f msg/s)\n"
              "  done %llu, malformed %llu, retried %llu, dead-lettered %llu, failed %llu, skipped %llu, "
              "late completions %llu, commits ok %llu, commits failed %llu%s\n"
              "  committed offsets:%s\n",
              why_stopped.c_str(), static_cast<unsigned long long>(st.consumed), secs,
              secs > 0 ? static_cast<double>(st.consumed) / secs : 0.0, static_cast<unsigned long long>(st.done),
              static_cast<unsigned long long>(malformed), static_cast<unsigned long long>(st.retried),
              static_cast<unsigned long long>(st.dead_lettered), static_cast<unsigned long long>(st.failed),
              static_cast<unsigned long long>(st.skipped), static_cast<unsigned long long>(st.late_completions),
              static_cast<unsigned long long>(st.commits_ok), static_cast<unsigned long long>(st.commits_failed),
              o.exactly_once ? fmt::format(", transactions {}, aborted {}", st.transactions,
                                           st.transactions_aborted).c_str()
                             : "",
              committed.empty() ? " (none)" : committed.c_str());
  int code = 0;
  if (result.reason == StopReason::fatal) {
    log::printf(LogLevel::error, "kc consume: fatal: %s\n", result.error.c_str());
    code = 1;
  } else if (registry_failed) {
    log::printf(LogLevel::error, "kc consume: stopped: schema registry: %s\n", registry_error.c_str());
    code = 1;
  }
  if (result.left_behind) {
    // A handler thread (using this function's sink and decoders) or
    // librdkafka's threads still run: leave now, before anything they use
    // is destroyed. Everything that matters was flushed and committed.
    log::printf(LogLevel::warn, "kc consume: exiting with work left behind (see above)\n");
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace kc::tool
