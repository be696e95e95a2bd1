// Reading back what `kc consume` wrote into its database sinks
// (--sink sqlite:PATH | postgres:URI): the rows of the records table and the
// offsets table kc_offsets, straight through SQLite's C API and libpqxx (not
// through kc's sinks); polling a topic's high watermarks and a group's
// committed offsets through one long-lived client each; counting a Kafka
// output topic's values.
//
// A library of its own (kc::test_sink_support) so that kc_test_support does
// not link SQLite and libpqxx. Errors are thrown as kc::test::Failure (see
// common.hpp) naming the database and the statement's error.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/jsonl.hpp"

namespace kc::test {

/// A database sink of `kc consume`: the table of rows (columns topic,
/// partition, "offset", timestamp_ms, key, value) and
/// kc_offsets(grp, topic, part, next_offset, epoch).
///
/// Threads: one at a time (one connection). Blocking: each call is one or
/// two queries on the connection. A missing file (SQLite), a table not yet
/// created or a group with no offsets read as empty, not as an error, so a
/// test may poll before kc created anything.
class SinkDatabase {
 public:
  virtual ~SinkDatabase() = default;

  /// Every row of the records table, as the fields coverage() checks (the
  /// value is the column's JSON text, e.g. "\"msg-17\"", nullopt for NULL).
  virtual std::vector<SinkRecord> records() = 0;
  /// How many rows the records table has (0 when it does not exist yet).
  virtual std::uint64_t count() = 0;
  /// next_offset of partitions 0..partitions-1 of `topic` stored for
  /// `group` in kc_offsets; -1 where there is no row or it is NULL.
  virtual std::vector<std::int64_t> next_offsets(const std::string& group, const std::string& topic,
                                                 int partitions) = 0;
  /// For messages: "sqlite:PATH table T" / "postgres:URI table T".
  virtual std::string describe() const = 0;
};

/// The SQLite file `path` (WAL; read while kc writes it). The file is opened
/// at the first query that finds it.
std::unique_ptr<SinkDatabase> open_sqlite_sink(std::filesystem::path path, std::string table = "kc_records");

/// The PostgreSQL database at `uri`. The connection is made at the first
/// query and made again after it broke (a server that went down and came
/// back); while the server is down every call throws Failure.
std::unique_ptr<SinkDatabase> open_postgres_sink(std::string uri, std::string table = "kc_records");

/// Drops `table` and deletes `group`'s rows of kc_offsets in the PostgreSQL
/// database at `uri` (cleanup after a test that passed). Throws Failure.
void drop_postgres_sink(const std::string& uri, const std::string& table, const std::string& group);

/// A table name nobody else uses, valid as a plain SQL identifier:
/// unique_name(prefix) with '-' and '.' as '_', in lower case.
std::string unique_table_name(std::string_view prefix);

/// The high watermarks of a topic, asked again and again through one client
/// (high_watermarks() of kafka.hpp makes a client per call, too slow to poll
/// every millisecond). Reads uncommitted: records of open transactions count.
/// Threads: one at a time. Blocking: one ListOffsets round trip per
/// partition. Throws Failure.
class WatermarkWatch {
 public:
  WatermarkWatch(const std::string& bootstrap, std::string topic, int partitions);
  ~WatermarkWatch();
  WatermarkWatch(const WatermarkWatch&) = delete;
  WatermarkWatch& operator=(const WatermarkWatch&) = delete;

  /// The high watermark of partitions 0..partitions-1.
  std::vector<std::int64_t> high();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The committed offsets of a consumer group, asked again and again through
/// one consumer handle with that group.id (rd_kafka_committed; it never
/// subscribes, so it does not join the group). Unlike committed_offsets() of
/// kafka.hpp (the Admin API) it survives a coordinator that is still loading
/// or moved: librdkafka's Admin ListConsumerGroupOffsets crashes on a
/// NOT_COORDINATOR answer (rkcg NULL in rd_kafka_handle_OffsetFetch,
/// confluentinc/librdkafka#5040), which a broker restart provokes. Reads
/// read_uncommitted: offsets of open transactions are not waited for (they
/// are not committed yet). Threads: one at a time. Throws Failure.
class CommittedWatch {
 public:
  CommittedWatch(const std::string& bootstrap, const std::string& group, std::string topic, int partitions);
  ~CommittedWatch();
  CommittedWatch(const CommittedWatch&) = delete;
  CommittedWatch& operator=(const CommittedWatch&) = delete;

  /// The committed offset of partitions 0..partitions-1, -1 where none.
  std::vector<std::int64_t> offsets(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What a list of record values covers of prefix + i, i in [0, n) (the values
/// kc::test::produce writes), e.g. a Kafka output topic read back.
struct ValueCoverage {
  std::uint64_t values = 0;      ///< values read
  std::uint64_t expected = 0;    ///< n
  std::uint64_t missing = 0;     ///< i in [0, n) never seen
  std::uint64_t duplicates = 0;  ///< values seen more than once, counted beyond the first
  std::uint64_t unexpected = 0;  ///< values not of the form prefix + i with i < n
  std::string first_missing;     ///< e.g. "msg-1500..msg-1999 (500)", for messages

  std::string to_string() const;
};

ValueCoverage value_coverage(const std::vector<std::string>& values, std::string_view prefix, std::uint64_t n);

}  // namespace kc::test
