// Whole records (key, value, headers, partition) written to and read back
// from the real broker, for tests that check what ended up in a topic byte
// for byte (dead letters, redriven records). Everything goes through
// librdkafka directly (not through kc), so the fixtures do not share kc's bugs.
//
// Errors are thrown as kc::test::Failure (see common.hpp) with the broker's
// error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/common.hpp"

namespace kc::test {

/// One record header; a null value is nullopt.
using Header = std::pair<std::string, std::optional<std::string>>;
using HeaderList = std::vector<Header>;

/// One record as produced or read back; a null key, value or header value is
/// nullopt.
struct Record {
  std::optional<std::string> key;
  std::optional<std::string> value;
  HeaderList headers;
  std::int32_t partition = 0;   // written to this partition; where it was read
  std::int64_t offset = -1;     // when read back
  std::int64_t timestamp = -1;  // when read back (ms since the epoch)

  /// The value of the first header called `name`; nullopt when there is no
  /// such header or its value is null.
  std::optional<std::string> header(std::string_view name) const;
};

/// An idempotent producer (enable.idempotence=true, acks=all) of Records,
/// for tests that produce at their own pace. Use it from one thread (delivery
/// reports are served inside enqueue/poll/flush on that thread).
class RecordProducer {
 public:
  /// Throws Failure when the client cannot be created.
  explicit RecordProducer(const std::string& bootstrap);
  ~RecordProducer();
  RecordProducer(const RecordProducer&) = delete;
  RecordProducer& operator=(const RecordProducer&) = delete;

  /// Enqueues `r` for `r.partition` of `topic`; blocks while the local queue
  /// is full. Throws Failure on any other produce error.
  void enqueue(const std::string& topic, const Record& r);
  /// Serves delivery reports; never blocks.
  void poll();
  /// Waits (up to 60 s) until everything enqueued is delivered, then throws
  /// Failure (naming `topic`) unless exactly `expected` records were
  /// acknowledged in total since construction.
  void flush(const std::string& topic, std::uint64_t expected);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes `records` (each to its partition) with a RecordProducer and checks
/// that the broker acknowledged every one. Blocks until done (up to 60 s).
void produce_records(const std::string& bootstrap, const std::string& topic, const std::vector<Record>& records);

/// Every record of `topic` up to its current end (the high watermarks when
/// called), in partition order per partition, with offset and timestamp set.
/// Records of aborted transactions are not read (read_committed); a topic
/// that ends with transaction markers counts as read once the position is at
/// its end. Assigns the partitions itself: joins no group and commits nothing. Blocks
/// until done; throws Failure when the topic does not exist or it is not read
/// to the end within 60 s.
std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic);

}  // namespace kc::test
