// Decoders: turn a record's bytes into a checked form. A decode failure is a
// value (with a reason), never an exception or a crash.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kc/types.hpp"

namespace kc {

/// Limits that every decoder enforces, so hostile input cannot exhaust memory
/// or the stack.
struct DecodeLimits {
  std::size_t max_bytes = 16u << 20;  ///< larger inputs fail to decode
  std::size_t max_depth = 128;        ///< nesting depth (JSON arrays/objects, Avro/Protobuf records)
  /// Array/map elements in one record, all collections together (Avro). A
  /// zero-byte element type (null, an empty record) would otherwise let a
  /// few bytes claim billions of elements.
  std::size_t max_items = 1u << 20;
};

/// Validates JSON (full RFC 8259 grammar and UTF-8, via simdjson) and appends
/// it as one line to an output buffer (safe to embed in JSONL).
/// Not thread-safe: one per thread; it keeps its buffers between calls, so
/// steady-state decoding does not allocate.
class JsonDecoder {
 public:
  explicit JsonDecoder(DecodeLimits limits = {});
  ~JsonDecoder();
  JsonDecoder(const JsonDecoder&) = delete;
  JsonDecoder& operator=(const JsonDecoder&) = delete;

  enum class Output { line, none };

  /// On success appends the document to `out` as one line (the original
  /// bytes when they hold no line break, else minified) and returns true. On
  /// failure leaves `out` as it was, sets `error` to a one-line reason and
  /// returns false. Never throws except std::bad_alloc.
  bool decode(Bytes in, std::string& out, std::string& error, Output mode = Output::line);

  /// Validates only (a full parse, no output): for callers that discard the text.
  bool validate(Bytes in, std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// True when `b` is valid UTF-8.
bool is_valid_utf8(Bytes b) noexcept;

}  // namespace kc
