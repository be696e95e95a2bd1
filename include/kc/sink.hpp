// Sinks: where `kc consume` (or an application) writes processed records.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kc/message.hpp"

namespace kc {

enum class KeyFormat { raw, string, json };
enum class ValueFormat { raw, string, json };

/// The value as decoded by the caller: for ValueFormat::json, `json` holds the
/// minified document; when decoding failed `error` says why (and the sink
/// writes the original bytes in base64 next to it, so nothing is lost).
struct DecodedValue {
  std::string_view json;
  std::string_view error;
  /// For KeyFormat::json: the decoded key (a JSON document); empty when the
  /// key is null or was not decoded (then written as a string or base64).
  std::string_view key_json;
};

/// A destination for records. write() may buffer; flush() makes everything
/// written so far durable as far as the sink can (for files: handed to the
/// kernel with write(2), whole lines only). kc::Consumer does not know the
/// sink: whoever wires the two calls flush() from the consumer's
/// `before_commit` hook (as `kc consume` does), so a committed offset is
/// never ahead of the sink.
/// Threads: one thread at a time. Errors: kc::Error (errc::io) from write()
/// and flush(); a failed write must stop the consumer, not be skipped.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Message& m, const DecodedValue& v) = 0;
  virtual void flush() = 0;
  /// Appends to `out` what write(m, v) would write, without writing it: for
  /// work that finishes after the Message is gone (an asynchronous handler
  /// renders in its call and writes when the work completes). Any thread
  /// (touches no sink state). Empty for a sink that writes nothing.
  virtual void render(const Message& m, const DecodedValue& v, std::string& out) const = 0;
  /// Writes text made by render() (whole lines), like write().
  virtual void write_rendered(std::string_view rendered) = 0;
};

/// Creates a sink from its spec: `stdout`, `jsonl:PATH` (appends; creates the
/// file; drops a partial last line that a killed run left, since its record
/// was never committed) or `null` (discards). JSON-lines sinks write one object per record:
/// {"topic","partition","offset","timestamp","key","headers","value"}; keys
/// and values in base64 for the raw format, as JSON strings for string (base64
/// with a "key_encoding"/"value_encoding" field when not valid UTF-8), and the
/// decoded document for json (keys: DecodedValue::key_json when set). Throws kc::Error naming the spec when it is
/// unknown or the file cannot be opened.
std::unique_ptr<Sink> make_sink(std::string_view spec, KeyFormat key, ValueFormat value);

}  // namespace kc
