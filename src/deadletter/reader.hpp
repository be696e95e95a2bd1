// The dead-letter reader: what a dead letter says about the record it holds
// (where it came from, why it failed) and that record itself. The twin of
// writer.hpp: reads kc's kc.dlq.* headers as the writer writes them, and
// Spring's kafka_dlt-* headers. Private to kc; the kc tool's `dlq inspect`
// and `dlq redrive` read dead letters with it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kc/message.hpp"

namespace kc::detail {

/// A dead letter, read. `key`, `value` and `headers` are the original
/// record's, byte for byte: views into the dead-letter record, valid while
/// it lives. The rest is what its metadata headers say; a field they do not
/// give (or give garbled) is nullopt.
struct DeadLetter {
  std::optional<Bytes> key;    ///< nullopt: a null key
  std::optional<Bytes> value;  ///< nullopt: a null value
  /// The original headers in wire order: every header but the metadata ones
  /// (is_dead_letter_metadata()). kc.redrive.count is among them.
  std::vector<Header> headers;

  bool kc_headers = false;      ///< a kc.dlq.* header is there
  bool spring_headers = false;  ///< a kafka_dlt-* header is there
  std::optional<std::string> source_topic;
  std::optional<std::int64_t> source_partition;
  std::optional<std::int64_t> source_offset;
  std::optional<std::int64_t> source_timestamp;  ///< ms since the epoch
  std::optional<std::string> group;
  std::optional<std::string> error_type;
  std::optional<std::string> error_message;
  std::optional<std::int64_t> attempts;
  std::optional<std::string> failed_at;
  std::optional<std::int64_t> redrive_count;  ///< the highest kc.redrive.count
  /// kc.retry.topic: the record failed in a retry topic (the source topic is
  /// then that retry topic); this is the topic it first came from.
  std::optional<std::string> retry_origin;
  /// One line per header that is there but cannot be read (a metadata
  /// header or kc.redrive.count with a null value or an integer that is
  /// none), naming the header. Its field reads as not given.
  std::vector<std::string> errors;

  /// Which metadata headers it has: "kc", "spring", "kc+spring" or "none".
  std::string format() const;
};

/// Whether a header is dead-letter metadata rather than the original
/// record's: kc's kc.dlq.*, Spring's kafka_dlt-* (its stack trace included)
/// and kc's retry-topic kc.retry.* (a record that went through retry topics
/// keeps them on its dead letter). Pure; any thread.
bool is_dead_letter_metadata(std::string_view header_name) noexcept;

/// Reads a dead letter from its key, value and headers (all of them, in wire
/// order). kc's headers come first; Spring's fill in what kc's do not say.
/// Text values that are not UTF-8 read as "hex:<bytes in hex>". kc's
/// integers are decimal text, Spring's 4-byte (partition) and 8-byte
/// (offset, timestamp) big-endian (decimal text read too). Never fails:
/// what cannot be read is named in DeadLetter::errors. Pure (no I/O); any
/// thread; the result borrows from the arguments. Throws only
/// std::bad_alloc.
DeadLetter read_dead_letter(std::optional<Bytes> key, std::optional<Bytes> value, const Headers& headers);

/// The same for a consumed record (its key, value and headers).
DeadLetter read_dead_letter(const Message& m);

}  // namespace kc::detail
