// kc::Producer: kc's one producer (kc produce, kc dlq redrive, the consumer's
// dead-letter and retry-topic writer). Safe defaults, delivery results as
// callbacks or futures served by a delivery thread of its own, a bounded
// queue that blocks or fails by choice, and a close with a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "kc/types.hpp"

namespace kc {

/// What produce() does when librdkafka's local queue is full (its bounds are
/// the librdkafka properties queue.buffering.max.messages and
/// queue.buffering.max.kbytes).
enum class QueueFull {
  block,  ///< wait until deliveries free room, up to ProducerConfig::queue_full_timeout
  error,  ///< fail at once with errc::queue_full
};

struct ProducerConfig {
  /// Empty: an embedded (mock) broker is started in-process and owned by the producer.
  std::string bootstrap_servers{};
  /// librdkafka properties. kc's defaults apply to the keys not given here:
  /// enable.idempotence=true, acks=all, compression.type=lz4, linger.ms=5,
  /// batch.size=65536. Idempotence needs acks=all: with acks set to 0 or 1
  /// here (and no enable.idempotence), idempotence stays off.
  std::map<std::string, std::string> librdkafka{};
  /// See QueueFull.
  QueueFull on_queue_full = QueueFull::block;
  /// With QueueFull::block: how long one produce() call waits for room at
  /// most before it fails with errc::queue_full; nullopt: as long as it
  /// takes (the queue drains at the latest as records time out after
  /// librdkafka's message.timeout.ms, 300 s by default).
  std::optional<std::chrono::milliseconds> queue_full_timeout{};
  /// How long the destructor waits for records in flight before it purges
  /// them (their deliveries then fail).
  std::chrono::milliseconds close_timeout{10000};
};

/// A record header to produce: name and value; nullopt is a null value,
/// distinct from an empty one.
using ProducerHeader = std::pair<std::string, std::optional<std::string>>;

/// Partition -1: librdkafka's partitioner chooses (by key; sticky without one).
inline constexpr std::int32_t kAnyPartition = -1;

/// One record to produce. Only views: produce() copies what it needs before
/// it returns.
struct ProducerRecord {
  std::string_view topic{};
  std::optional<Bytes> key{};    ///< nullopt: a null key; an empty span: an empty key
  std::optional<Bytes> value{};  ///< nullopt: a null value (a tombstone); an empty span: empty
  std::int32_t partition = kAnyPartition;
  std::span<const ProducerHeader> headers{};
};

/// The outcome of one record: acknowledged by the broker (with its offset)
/// or failed for good (librdkafka retried what it could).
struct DeliveryReport {
  std::string topic{};
  std::int32_t partition = -1;
  std::int64_t offset = -1;  ///< -1 when it failed
  /// librdkafka's rd_kafka_resp_err_t: 0 when delivered; e.g. -192
  /// (_MSG_TIMED_OUT) after message.timeout.ms, -152/-151 (_PURGE_QUEUE,
  /// _PURGE_INFLIGHT) for records purged at close.
  int error = 0;
  std::string message{};  ///< librdkafka's text for `error`; empty when delivered

  bool ok() const noexcept { return error == 0; }
};

/// Called once per record with its report, on the producer's delivery
/// thread (at destruction possibly on the destroying thread). Must not block
/// for long (it holds up every later report): no flush(), no destruction of
/// the producer, and no produce() that may wait for room (QueueFull::block
/// without queue_full_timeout would wait for itself). What it throws is
/// logged and dropped.
using DeliveryCallback = std::function<void(const DeliveryReport&)>;

/// Delivery counts so far (a snapshot).
struct DeliveryStats {
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;
  std::string last_error;  ///< the most recent delivery error, if any
};

/// Produces records and reports what the broker acknowledged.
///
/// Threads: every method may be called from any thread, concurrently
/// (librdkafka's produce is thread-safe), except that destruction must not
/// race with other calls. A delivery thread of the producer's own serves
/// librdkafka's delivery reports from construction to destruction: it
/// updates the counts, runs the callbacks and fulfils the futures, in
/// librdkafka's order (per partition, the order of the offsets). Nobody has
/// to poll.
/// Ownership: records are copied at produce(); the callbacks are kept until
/// their report. An embedded broker (empty bootstrap_servers) lives as long
/// as the producer.
class Producer {
 public:
  /// Creates the client and starts the delivery thread (no network I/O yet).
  /// Throws kc::Error naming the key for a bad property
  /// (errc::config_unknown_key / config_invalid_value), errc::kafka when
  /// librdkafka refuses the combination (e.g. enable.idempotence=true with acks=1).
  explicit Producer(ProducerConfig config);
  /// Waits up to close_timeout for the records in flight, purges what is
  /// left (each gets a failed report: callbacks run, futures complete, on
  /// the delivery thread or this one), stops the delivery thread and
  /// destroys the client. Never throws.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Enqueues one record; `on_delivery` (may be empty) runs once with its
  /// report. Blocks only while the local queue is full with QueueFull::block
  /// (see ProducerConfig). On failure nothing was enqueued, `on_delivery` is
  /// never called, and `ec` is errc::queue_full (queue still full),
  /// errc::kafka_fatal (the producer is unusable) or errc::kafka (refused:
  /// unknown topic or partition, record too large, ...); else `ec` is cleared.
  void produce(const ProducerRecord& record, DeliveryCallback on_delivery, std::error_code& ec) noexcept;
  /// As above; throws kc::Error with that code and a message naming the
  /// topic and the cause (queue full: the settings that bound the queue).
  void produce(const ProducerRecord& record, DeliveryCallback on_delivery = {});
  /// Shorthand for produce({topic, key, value, partition, headers}).
  void produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
               std::int32_t partition = kAnyPartition, const std::vector<ProducerHeader>& headers = {});

  /// Enqueues one record like produce(); the future completes with its report
  /// (failed ones too: get() does not throw for a delivery failure) without
  /// anyone polling, at the latest when the producer is destroyed. Throws
  /// kc::Error as produce() when the record could not be enqueued.
  std::future<DeliveryReport> send(const ProducerRecord& record);

  /// Waits up to `timeout` until every record enqueued so far has its report
  /// (and its callback has returned). Returns true when nothing is left in
  /// flight; false at the deadline (e.g. the broker is down; the records stay
  /// queued and librdkafka keeps trying). Must not be called from a callback.
  bool flush(std::chrono::milliseconds timeout);

  /// Counts from the delivery reports so far. Takes a short lock.
  DeliveryStats stats() const;
  /// Records enqueued whose report has not been handled yet.
  std::size_t in_flight() const noexcept;
  const std::string& bootstrap_servers() const noexcept;

  /// The partition count of `topic` from one metadata request; blocks up to
  /// `timeout`. nullopt when the cluster says the topic does not exist (it
  /// may create it when the broker auto-creates topics and
  /// allow.auto.create.topics is true, librdkafka's producer default);
  /// ec = errc::kafka when no answer came within `timeout` or the topic
  /// has no partitions yet.
  std::optional<int> partition_count(std::string_view topic, std::chrono::milliseconds timeout,
                                     std::error_code& ec) noexcept;
  /// As above; throws kc::Error (errc::kafka, retriable()) instead.
  std::optional<int> partition_count(std::string_view topic, std::chrono::milliseconds timeout);

  /// The value in effect of a librdkafka property (kc's default, the user's
  /// or librdkafka's own), e.g. config_value("acks") == "all" (librdkafka
  /// may print it as "-1"). Throws kc::Error (config_unknown_key) for a name
  /// librdkafka does not know.
  std::string config_value(std::string_view name) const;

  struct Impl;  // opaque; public only so librdkafka's C callbacks can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc
