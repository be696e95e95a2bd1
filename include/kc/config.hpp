// kc::ConsumerConfig: kc's own settings plus librdkafka properties passed through.
//
// Sources, lowest precedence first: defaults, a TOML file, KC_* environment
// variables, command-line flags. Every source goes through set(), so every
// source gets the same validation and the same error text, which names the key.
// A struct filled directly in C++ gets the same checks from validate(): each
// key's check is written once and run by both.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kc/deadletter.hpp"
#include "kc/schema.hpp"
#include "kc/types.hpp"

namespace kc {

/// When kc commits in steady state (asynchronously): after `every_messages`
/// done messages or after `interval`, whichever comes first. Revoke and
/// shutdown always commit synchronously.
struct CommitPolicy {
  std::size_t every_messages = 500;
  std::chrono::milliseconds interval{5000};
};

/// Parallel processing (see README "Ordering modes"). Engaged when
/// `concurrency` > 0 (the Handler runs on that many worker threads) or when
/// the Consumer is given an AsyncHandler; otherwise the Handler runs on the
/// poll thread, one record at a time.
struct ParallelPolicy {
  Ordering ordering = Ordering::partition;
  /// Worker threads for a (synchronous) Handler; 0: the poll thread runs it.
  std::size_t concurrency = 0;
  /// Records started and not finished, over all partitions.
  std::size_t max_in_flight = 1000;
  /// The same for one partition; 0: max_in_flight.
  std::size_t max_in_flight_per_partition = 0;
  /// Fetched records buffered per partition (queued + in flight) before the
  /// partition is paused; 0: max(2 * per-partition in-flight limit, 1000).
  std::size_t max_buffered_per_partition = 0;
  /// On revoke, how long to wait for in-flight records of the partitions
  /// going away before committing what is done (a graceful shutdown waits
  /// up to shutdown.timeout_ms instead).
  std::chrono::milliseconds revoke_timeout{10000};
};

/// The metrics and health endpoint (see kc/metrics.hpp and README "Metrics
/// and health"). The consumer keeps its metrics whether or not they are
/// served; `port` set starts the HTTP endpoint when the Consumer is built.
struct MetricsPolicy {
  /// Serve /metrics, /healthz and /readyz on this port (0: an ephemeral one,
  /// see Consumer::metrics_port()); unset: no endpoint.
  std::optional<std::uint16_t> port;
  std::string bind = "0.0.0.0";
  /// Liveness fails when the poll loop has not run for this long; 0: half
  /// of librdkafka's max.poll.interval.ms (150 s by default), so the probe
  /// fires before the group evicts the member.
  std::chrono::milliseconds max_poll_gap{0};
  /// librdkafka's statistics.interval.ms when the user does not set it
  /// (lag, fetch queue and broker round trips come from these statistics);
  /// 0: no statistics.
  std::chrono::milliseconds statistics_interval{5000};
};

/// Settings of a kc consumer. Keys (for files, env and set()):
///
/// | key                   | env                      | meaning                                   |
/// |-----------------------|--------------------------|-------------------------------------------|
/// | bootstrap_servers     | KC_BOOTSTRAP_SERVERS     | empty: the embedded (mock) broker         |
/// | group                 | KC_GROUP                 | consumer group id (required)              |
/// | topics                | KC_TOPICS                | comma list; `^...` is a regex             |
/// | from_beginning        | KC_FROM_BEGINNING        | auto.offset.reset=earliest when no commit |
/// | commit.every_messages | KC_COMMIT_EVERY_MESSAGES | commit policy by count (500)              |
/// | commit.interval_ms    | KC_COMMIT_INTERVAL_MS    | commit policy by time (5000)              |
/// | shutdown.timeout_ms   | KC_SHUTDOWN_TIMEOUT_MS   | bound on graceful shutdown (10000)        |
/// | max_messages          | KC_MAX_MESSAGES          | stop cleanly after N messages (0: never)  |
/// | idle_exit_ms          | KC_IDLE_EXIT_MS          | stop after N ms without a message while   |
/// |                       |                          | partitions are held, nothing pending (0:  |
/// |                       |                          | never)                                    |
/// | retry.max_attempts    | KC_RETRY_MAX_ATTEMPTS    | handler calls in all (3)                  |
/// | retry.backoff_ms      | KC_RETRY_BACKOFF_MS      | first retry delay (1000), doubling        |
/// | retry.backoff_max_ms  | KC_RETRY_BACKOFF_MAX_MS  | cap on the retry delay (30000)            |
/// | retry.topics          | KC_RETRY_TOPICS          | non-blocking retry topics (false)         |
/// | retry.topic_pattern   | KC_RETRY_TOPIC_PATTERN   | `{topic}.retry.{n}`                       |
/// | dlq.enabled           | KC_DLQ_ENABLED           | dead letters to a topic (false); false    |
/// |                       |                          | also clears dlq.topic                     |
/// | dlq.topic             | KC_DLQ_TOPIC             | unset: `{topic}.dead-letter`; setting it  |
/// |                       |                          | (or the struct's field) enables           |
/// | dlq.headers           | KC_DLQ_HEADERS           | kc, spring or both (kc)                   |
/// | auto_create_topics    | KC_AUTO_CREATE_TOPICS    | at start, create missing dead-letter and  |
/// |                       |                          | retry topics (the source topic's partition|
/// |                       |                          | count, the broker's default replication); |
/// |                       |                          | false: a missing one is an error at start |
/// |                       |                          | naming the topic and this key (true)      |
/// | parallel.ordering     | KC_PARALLEL_ORDERING     | partition, key or unordered (partition)   |
/// | parallel.concurrency  | KC_PARALLEL_CONCURRENCY  | worker threads; 0: poll thread (0)        |
/// | parallel.max_in_flight | KC_PARALLEL_MAX_IN_FLIGHT | records in flight, all partitions (1000) |
/// | parallel.max_in_flight_per_partition | ... | per partition (0: max_in_flight)            |
/// | parallel.max_buffered_per_partition  | ... | fetched records held before pausing (0: auto)|
/// | parallel.revoke_timeout_ms | KC_PARALLEL_REVOKE_TIMEOUT_MS | wait for in-flight work on revoke (10000) |
/// | metrics.port          | KC_METRICS_PORT          | serve /metrics, /healthz, /readyz (unset: |
/// |                       |                          | off; 0: an ephemeral port)                |
/// | metrics.bind          | KC_METRICS_BIND          | address to listen on (0.0.0.0)            |
/// | metrics.statistics_interval_ms | ...             | librdkafka statistics.interval.ms (5000)  |
/// | health.max_poll_gap_ms | KC_HEALTH_MAX_POLL_GAP_MS | liveness fails after this long without a |
/// |                       |                          | poll (0: max.poll.interval.ms / 2)        |
/// | health.fatal_after_ms | KC_HEALTH_FATAL_AFTER_MS | authentication, TLS and authorization     |
/// |                       |                          | failures that last this long end run()    |
/// |                       |                          | with StopReason::fatal naming the cause   |
/// |                       |                          | (they show on /readyz at once) (60000; 0: |
/// |                       |                          | never)                                    |
/// | schema_registry.url   | KC_SCHEMA_REGISTRY_URL   | Schema Registry base URL                  |
/// | schema_registry.basic_auth | KC_SCHEMA_REGISTRY_BASIC_AUTH | `user:password` (secret)         |
/// | schema_registry.bearer_token | KC_SCHEMA_REGISTRY_BEARER_TOKEN | bearer token (secret)        |
/// | schema_registry.ca_file, .cert_file, .key_file, .key_password (secret),   |
/// |   .verify_tls, .timeout_ms, .max_retries, .cache_capacity: see RegistryConfig |
/// | librdkafka.<prop>     | KC_LIBRDKAFKA_<PROP>     | any librdkafka property; in the env name  |
/// |                       |                          | `_` stands for `.` (fetch_max_bytes)      |
///
/// In a TOML file, `commit.every_messages` is `every_messages` in a `[commit]`
/// table and librdkafka properties sit in a `[librdkafka]` table with quoted keys.
///
/// Durations (`..._ms`) must not be negative; the ranges above (e.g.
/// commit.every_messages >= 1, parallel.max_in_flight 1..1000000,
/// parallel.concurrency <= 4096, retry.max_attempts 1..1000,
/// schema_registry.max_retries 0..100) hold for set() and validate() alike.
struct ConsumerConfig {
  std::string bootstrap_servers;
  std::string group;
  std::vector<std::string> topics;
  bool from_beginning = false;
  CommitPolicy commit;
  std::chrono::milliseconds shutdown_timeout{10000};
  std::uint64_t max_messages = 0;
  std::chrono::milliseconds idle_exit{0};
  RetryPolicy retry;
  /// Dead letters are on when dead_letter.active(): `enabled`, or a `topic` named.
  DeadLetterPolicy dead_letter;
  /// At start, create missing dead-letter and retry topics (the source
  /// topic's partition count, the broker's default replication); false: a
  /// missing one is an error at start naming the topic and auto_create_topics.
  bool auto_create_topics = true;
  ParallelPolicy parallel;
  MetricsPolicy metrics;
  /// Authentication, TLS and authorization failures that last this long end
  /// run() with StopReason::fatal naming the cause (they show on /readyz at
  /// once); 0: never. Key health.fatal_after_ms.
  std::chrono::milliseconds fatal_after{60000};
  /// librdkafka properties, passed through after validation.
  std::map<std::string, std::string> librdkafka;
  /// Where decoders of Schema Registry formats find their schemas (used by
  /// kc consume; the Consumer itself does not decode). Secrets in it never
  /// appear in error messages.
  schema::RegistryConfig schema_registry;

  /// Sets one key from its text form: parses it, assigns it, then runs the
  /// key's check (the same validate() runs). Throws kc::Error
  /// (config_unknown_key, config_invalid_value, config_forbidden) whose
  /// message names the key and `source` (e.g. "flag", "env KC_GROUP", "file
  /// kc.toml"); the configuration is then unchanged. Checks that relate two
  /// keys (see validate()) wait for validate(): sources may set them in any
  /// order. Does not block.
  void set(std::string_view key, std::string_view value, std::string_view source = "set");

  /// Reads a TOML file. Throws kc::Error naming the file, line and key.
  void load_file(const std::filesystem::path& path);

  /// The effective settings, for a person to read (kc config check): every
  /// kc key with its current value (defaults included) in the order of the
  /// key table above, then every `librdkafka.<prop>` that is set, sorted.
  /// Values are in the text form set() takes (an unset optional is ""). With
  /// `redact`, the value of every secret key (is_secret_key()) is
  /// "[redacted]" (empty ones stay empty) and so is a password in
  /// schema_registry.url's `user:password@`. Does not block; throws
  /// std::bad_alloc only.
  std::vector<std::pair<std::string, std::string>> effective(bool redact = true) const;

  /// True for keys whose values are secrets: schema_registry.basic_auth,
  /// .bearer_token and .key_password, and `librdkafka.<prop>` for every
  /// property librdkafka treats as sensitive (sasl.password, sasl.username,
  /// ssl.key.password, ssl.key.pem, ssl.key.location, ssl.keystore.password,
  /// ssl.ca.pem, sasl.oauthbearer.config, sasl.oauthbearer.client.secret,
  /// sasl.oauthbearer.assertion.private.key.*) or whose name says password,
  /// secret or passphrase. set() registers the values of those that are
  /// secrets proper (not user names or file paths) with
  /// kc::log::register_secret() before it validates them, and its errors
  /// never quote them. Thread-safe, does not block.
  static bool is_secret_key(std::string_view key) noexcept;

  /// Reads KC_* variables from `envp` (a null-terminated array like `environ`).
  /// Variables of kc's scripts are ignored (KC_CACHE, KC_KAFKA_*, KC_TEST_*,
  /// KC_BENCH_*, KC_SR_*, KC_FUZZ_*, KC_POSTGRES_*, KC_DEBIAN_MIRROR, KC_LIBRDKAFKA_MIN,
  /// KC_LIBRDKAFKA_PREFERRED, KC_CONFLUENT_KAFKA_VERSION), and so are the kc
  /// tool's log settings (KC_LOG_FORMAT, KC_LOG_LEVEL); any other unknown
  /// KC_* name is an error.
  void load_env(const char* const* envp);

  /// Checks the whole configuration, however it was filled: what a consumer
  /// needs (group, topics; config_missing), every key's check (those set()
  /// runs: ranges and forms), the relations between keys
  /// (retry.backoff_max_ms >= retry.backoff_ms,
  /// parallel.max_buffered_per_partition >= the per-partition in-flight
  /// limit, a dead-letter topic that is not the source topic), that kc's own
  /// librdkafka properties stay false, and that every librdkafka property is
  /// known to librdkafka with a valid value. Throws kc::Error whose message
  /// names the key and "validate" as the source. Does not block.
  void validate() const;
};

}  // namespace kc
