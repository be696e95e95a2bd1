// Reading what kc's jsonl sink wrote, and checking it against the topic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kc::test {

/// One line of a jsonl sink file (the fields the tests check).
struct SinkRecord {
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  /// nullopt for a null value; base64 text when value_base64; a decoded
  /// document's minified JSON text when the sink wrote one (--value-format json).
  std::optional<std::string> value;
  bool value_base64 = false;         ///< the sink wrote "value_encoding":"base64"
  /// The value's JSON text exactly as the sink wrote it: `null`, a quoted
  /// string with its escapes, or a document byte for byte (where `value`
  /// holds the document as simdjson re-serializes it).
  std::string value_json;
};

/// Parses every line of `path` (simdjson). Tolerates nothing: a missing file,
/// a line that is not a complete JSON object with topic, partition, offset
/// and value, or a last line without its '\n' (a partial write) throws
/// kc::test::Failure naming the file, the line number and the line. A value
/// may be a string, null or any JSON value (see SinkRecord::value).
///
/// With `partial_tail`, a last line without '\n' is not thrown but stored
/// there (and not parsed), for a test that reports it as a failure of its
/// own and still checks the complete lines; it is cleared otherwise.
std::vector<SinkRecord> read_jsonl(const std::filesystem::path& path, std::string* partial_tail = nullptr);

/// Complete lines ('\n'-terminated) in `path`; 0 if it does not exist.
std::size_t count_lines(const std::filesystem::path& path);

/// What a set of sink records covers of partitions 0..N-1 of one topic whose
/// records are offsets [0, high_watermarks[p]) (no compaction, no
/// transactions), produced by kc::test::produce (unique values).
struct Coverage {
  std::uint64_t lines = 0;             ///< records read
  std::uint64_t distinct = 0;          ///< distinct (partition, offset) pairs within range
  std::uint64_t expected = 0;          ///< sum of the high watermarks
  std::uint64_t missing = 0;           ///< (partition, offset) pairs in range never seen
  std::uint64_t duplicates = 0;        ///< lines - distinct (in range)
  std::uint64_t out_of_range = 0;      ///< wrong topic, partition or an offset >= high watermark
  std::uint64_t value_mismatch = 0;    ///< same (partition, offset) seen with different values
  std::uint64_t duplicate_values = 0;  ///< one value at two different positions (producer duplicate)
  std::string first_missing;           ///< e.g. "p2 o1500..1999 (500)", for messages

  std::string to_string() const;
};

Coverage coverage(const std::vector<SinkRecord>& records, const std::string& topic,
                  const std::vector<std::int64_t>& high_watermarks);

}  // namespace kc::test
