// The subcommands of the kc tool.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry_options.hpp"

namespace kc::tool {

struct ConsumeOptions {
  std::optional<std::string> bootstrap_servers;
  std::optional<std::string> group;
  std::vector<std::string> topics;
  bool from_beginning = false;
  std::string value_format = "json";
  std::string key_format = "string";
  std::string sink = "stdout";
  bool exactly_once = false;                    // --exactly-once
  std::optional<std::string> transactional_id;  // kafka:TOPIC with --exactly-once
  std::string sink_table = "kc_records";        // sqlite:/postgres: table
  bool stop_on_producer_fatal = false;          // kafka:TOPIC with --exactly-once
  std::optional<std::uint64_t> max_messages;
  std::optional<std::uint64_t> idle_exit_ms;
  std::optional<std::uint64_t> commit_every;
  std::optional<std::uint64_t> commit_interval_ms;
  std::vector<std::string> rdkafka;  // -X key=value
  std::optional<std::string> config_file;
  std::optional<std::string> dlq_topic;
  std::optional<std::uint64_t> max_retries;
  std::optional<std::uint64_t> retry_backoff_ms;
  std::optional<std::uint64_t> retry_backoff_max_ms;
  std::optional<std::string> dlq_headers;
  bool retry_topics = false;
  RegistryOptions registry;
  std::optional<std::string> avro_reader_schema;  // file
  bool no_schema_validation = false;             // jsonschema: skip validation
  // Parallel processing (ConsumerConfig::parallel).
  std::optional<std::string> ordering;  // partition|key|unordered
  std::optional<std::uint64_t> concurrency;
  std::optional<std::uint64_t> max_in_flight;
  std::optional<std::uint64_t> max_in_flight_per_partition;
  std::optional<std::uint64_t> revoke_timeout_ms;
  // The metrics endpoint (ConsumerConfig::metrics).
  std::optional<std::uint64_t> metrics_port;
  std::optional<std::string> metrics_bind;
  // A test handler: simulated I/O latency and CPU work per record.
  std::optional<std::uint64_t> simulate_latency_ms;
  std::uint64_t simulate_latency_jitter_ms = 0;
  std::uint64_t simulate_cpu_us = 0;
};

struct ProduceOptions {
  std::optional<std::string> bootstrap_servers;
  std::string topic;
  std::uint64_t count = 1000;
  std::size_t size = 100;
  std::uint64_t keys = 0;
  bool json = false;
  std::uint64_t malformed_every = 0;
  std::optional<std::string> file;
  double rate = 0;
  int partitions = 0;
  std::vector<std::string> rdkafka;
  std::string value_format = "raw";  // raw: the bytes as given; avro|protobuf|jsonschema: encode JSON
  std::optional<std::string> schema_file;
  std::optional<std::string> subject;  // default <topic>-value
  std::optional<std::string> protobuf_message;
  bool no_auto_register = false;
  RegistryOptions registry;
};

struct BrokerOptions {
  std::vector<std::string> topics;  // NAME or NAME:PARTITIONS
  int brokers = 1;
};

void add_consume_command(CLI::App& app, ConsumeOptions& o);
void add_produce_command(CLI::App& app, ProduceOptions& o);
void add_broker_command(CLI::App& app, BrokerOptions& o);

int run_consume(const ConsumeOptions& o);
int run_produce(const ProduceOptions& o);
int run_broker(const BrokerOptions& o);

/// Brokers and librdkafka properties of a tool command that is not a
/// consumer (kc dlq, kc lag): file < env < flags, each through
/// ConsumerConfig::set() so errors name the key as everywhere else. Only the
/// connection settings are taken: group, topics and limits come from the
/// command's flags (a KC_GROUP meant for an application must not become
/// theirs). Throws kc::Error; without brokers, errc::config_missing with
/// `needs` (what the command needs them for).
struct ClientSettings {
  std::string bootstrap;
  std::map<std::string, std::string> librdkafka;
};
ClientSettings client_settings(const std::optional<std::string>& bootstrap, const std::vector<std::string>& rdkafka,
                               const std::optional<std::string>& config_file, std::string_view needs);

/// Splits "key=value"; throws kc::Error naming the flag when there is no '='.
std::pair<std::string, std::string> split_property(const std::string& kv);

}  // namespace kc::tool
