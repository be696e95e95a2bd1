// Where kc consume writes: the file sinks of kc/sink.hpp, and the database
// and Kafka sinks (sqlite:PATH, postgres:URI, kafka:TOPIC), at least once or,
// with --exactly-once, through their transactions.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kc/exactly_once.hpp"
#include "kc/sink.hpp"

namespace kc::tool {

struct OutputOptions {
  std::string spec;           ///< --sink
  bool exactly_once = false;  ///< --exactly-once
  std::string group;
  std::string bootstrap_servers;     ///< for kafka:TOPIC (the consumer's)
  std::string transactional_id;      ///< for kafka:TOPIC with --exactly-once
  std::string table = "kc_records";  ///< for sqlite: and postgres:
  /// kafka:TOPIC with --exactly-once: bound on each transactional call.
  std::chrono::milliseconds commit_timeout{30000};
  /// kafka:TOPIC with --exactly-once: recreate a fenced or failed producer
  /// (true) or stop.
  bool rebuild_on_fatal = true;
};

struct Output {
  /// What the handler writes each record to (write()), flushed before each
  /// commit in at-least-once mode. In exactly-once mode its writes go into
  /// the open transaction and flush() does nothing (the consumer commits).
  std::unique_ptr<Sink> sink;
  /// Set in exactly-once mode: for ConsumerHooks::exactly_once.
  std::shared_ptr<TransactionalSink> transactional;
};

/// Opens the sink named by `o.spec`. Throws kc::Error naming the spec (or the
/// flag) when it is unknown, cannot be opened, or --exactly-once is asked of
/// a sink without transactions (stdout, jsonl, null).
Output make_output(const OutputOptions& o, KeyFormat key, ValueFormat value);

}  // namespace kc::tool
