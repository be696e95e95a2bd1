// Talking to the real broker from tests: topics, producing, watermarks,
// committed offsets, group configs. Everything goes through librdkafka
// directly (not through kc), so the fixtures do not share kc's bugs.
//
// Every function creates its own short-lived client, blocks until done or
// its timeout, may be called from any thread, and throws kc::test::Failure
// (see common.hpp) with the broker's error on failure.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/common.hpp"

namespace kc::test {

/// Creates `name` with `partitions` partitions (replication factor 1) through
/// the Admin API (rd_kafka_CreateTopics), then waits until the metadata shows
/// every partition with a leader, so producers and consumers can use it.
void create_topic(const std::string& bootstrap, const std::string& name, int partitions,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

struct ProduceOptions {
  /// > 0: record i goes to partition i % partitions (an even spread);
  /// 0: librdkafka's partitioner chooses (records have no key).
  int partitions = 0;
  /// Index of the first record; the value of record i is value_prefix + i,
  /// so calls with disjoint ranges produce disjoint values.
  std::uint64_t first = 0;
  std::string value_prefix = "msg-";
  /// Records per second; 0: as fast as the producer goes.
  double rate = 0;
  /// When set (by another thread), production stops early; what was
  /// enqueued is still flushed and checked.
  const std::atomic<bool>* stop = nullptr;
  /// Extra librdkafka producer properties.
  std::map<std::string, std::string> librdkafka;
  /// Bound on the final flush.
  std::chrono::milliseconds flush_timeout = std::chrono::seconds(60);
};

/// Produces up to `n` records (values value_prefix + i for i in [first,
/// first + n)) with an idempotent producer (enable.idempotence=true,
/// acks=all) and checks that every single one was acknowledged by the broker
/// (a failed delivery or a record still in flight after flush_timeout throws).
/// Returns how many were produced (n unless `stop` ended it early).
std::uint64_t produce(const std::string& bootstrap, const std::string& topic, std::uint64_t n,
                      const ProduceOptions& options = {});

/// produce() on a background thread, for a stream that goes on while a test
/// acts. The destructor stops it and joins (never throws), so a failing
/// assertion cannot leave a running thread behind.
class BackgroundProducer {
 public:
  /// Starts producing up to `n` records (see produce(); `options.stop` is
  /// replaced by this object's own flag).
  BackgroundProducer(std::string bootstrap, std::string topic, std::uint64_t n, ProduceOptions options);
  ~BackgroundProducer();
  BackgroundProducer(const BackgroundProducer&) = delete;
  BackgroundProducer& operator=(const BackgroundProducer&) = delete;

  /// Stops producing (if not done yet), waits until every enqueued record is
  /// acknowledged, and returns how many were produced. Rethrows what
  /// produce() threw. Call once.
  std::uint64_t finish();
  /// Waits until all `n` were produced (no early stop); returns finish().
  std::uint64_t join();

 private:
  std::atomic<bool> stop_{false};
  std::uint64_t produced_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

/// Deletes `name` (Admin API) and waits until the metadata no longer lists it.
/// Throws Failure (a topic that does not exist is one).
void delete_topic(const std::string& bootstrap, const std::string& name,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// The partition count of `name` from the metadata, or -1 when the topic
/// does not exist. Throws Failure when the broker does not answer.
int topic_partitions(const std::string& bootstrap, const std::string& name);

/// The high watermark (next offset to be written) of partitions 0..partitions-1.
std::vector<std::int64_t> high_watermarks(const std::string& bootstrap, const std::string& topic, int partitions,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// The committed offset of `group` for partitions 0..partitions-1 of `topic`
/// (rd_kafka_ListConsumerGroupOffsets); -1 where nothing is committed. Does
/// not join the group.
std::vector<std::int64_t> committed_offsets(const std::string& bootstrap, const std::string& group,
                                            const std::string& topic, int partitions,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// What a reader of a topic sees: read_committed hides records of aborted
/// transactions and waits for open ones (up to the last stable offset).
enum class Isolation { read_committed, read_uncommitted };

/// The values of the records of partitions 0..partitions-1 of `topic` that a
/// reader with `isolation` sees, from the beginning to the high watermarks
/// as they are when called, partition by partition in offset order (a null
/// value reads as ""). With read_committed the end is reached only once
/// every transaction up to it is committed or aborted (the markers written);
/// so values committed just before the call are returned, and an aborted
/// record is known to be absent, not merely not read yet. Assigns the
/// partitions itself: joins no group, commits nothing. Throws Failure when
/// an end is not reached within `timeout` (e.g. a transaction still open),
/// naming the partitions and what was read; with `complete`, returns what
/// was read by then instead and sets *complete (false: an end not reached).
std::vector<std::string> read_values(const std::string& bootstrap, const std::string& topic, int partitions,
                                     Isolation isolation, std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                     bool* complete = nullptr);

/// Sets dynamic configs of a group (KIP-848 group configs such as
/// consumer.heartbeat.interval.ms) with rd_kafka_IncrementalAlterConfigs.
/// The group need not exist yet.
void set_group_config(const std::string& bootstrap, const std::string& group,
                      const std::map<std::string, std::string>& configs,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Sets dynamic configs of a topic (max.message.bytes, ...) with
/// rd_kafka_IncrementalAlterConfigs. The topic must exist.
void set_topic_config(const std::string& bootstrap, const std::string& topic,
                      const std::map<std::string, std::string>& configs,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace kc::test
