// kc::Message: a read-only view of one consumed record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kc/types.hpp"

struct rd_kafka_message_s;
struct rd_kafka_headers_s;

namespace kc {

/// A record header: name and value. `value` is nullopt for a header with a
/// null value (distinct from an empty one).
struct Header {
  std::string_view name;
  std::optional<Bytes> value;
};

/// The record's headers, in wire order (names may repeat).
class Headers {
 public:
  explicit Headers(const rd_kafka_headers_s* h) noexcept : h_(h) {}
  std::size_t size() const noexcept;
  /// The i-th header, i < size().
  Header at(std::size_t i) const noexcept;

 private:
  const rd_kafka_headers_s* h_;
};

/// Timestamp of a record, milliseconds since the epoch; `type` is 0 when the
/// record has none, 1 for create time, 2 for log-append time.
struct Timestamp {
  std::int64_t ms = -1;
  int type = 0;
};

/// A view of one consumed record. It does not own anything: it is valid only
/// during the handler call it is passed to (the bytes live in librdkafka's
/// fetch buffer). Copy out what must outlive the call.
/// Threads: read it on the thread that called the handler.
class Message {
 public:
  explicit Message(const rd_kafka_message_s* m, int attempt = 1) noexcept : m_(m), attempt_(attempt) {}

  std::string_view topic() const noexcept;
  Partition partition() const noexcept;
  Offset offset() const noexcept;
  /// The key, or nullopt for a null key (an empty key is an empty span).
  std::optional<Bytes> key() const noexcept;
  /// The value, or nullopt for a null value (a tombstone).
  std::optional<Bytes> value() const noexcept;
  Timestamp timestamp() const noexcept;
  /// Headers; parsing them is deferred to the first call.
  Headers headers() const noexcept;
  /// Which handler call this is for the record: 1, then 2, 3, ... on retries.
  int attempt() const noexcept { return attempt_; }
  /// The underlying librdkafka message, for the library's internals.
  const rd_kafka_message_s* raw() const noexcept { return m_; }

 private:
  const rd_kafka_message_s* m_;
  int attempt_;
};

}  // namespace kc
