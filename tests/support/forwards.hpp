// Forwarded records (dead letters and retry copies written into a sink's
// transaction, kc/exactly_once.hpp) for the database sinks' outbox tests:
// one record that owns its bytes, its view for TransactionalSink::forward(),
// and checks of what pending_forwards() returns. Header-only; used by
// tests/unit/sqlite_sink_test.cpp and tests/integration/postgres_sink_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kc/exactly_once.hpp"

namespace kc::test {

/// A record to forward, owning its bytes.
struct Forward {
  std::string topic = "orders.dlq";
  std::int32_t partition = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<ForwardedHeader> headers;
  TopicPartition source{"orders", Partition{3}};
  std::int64_t source_offset = 0;

  /// Its view for forward(); valid while this object lives unchanged.
  ForwardedRecord view() const {
    ForwardedRecord r;
    r.topic = topic;
    r.partition = partition;
    if (key) {
      r.key = std::as_bytes(std::span(key->data(), key->size()));
    }
    if (value) {
      r.value = std::as_bytes(std::span(value->data(), value->size()));
    }
    r.headers = headers;
    r.source = source;
    r.source_offset = source_offset;
    return r;
  }
};

/// Byte for byte: the same topic, partition, key, value, headers (in
/// order) and source as forwarded.
inline void expect_same(const PendingForward& got, const Forward& want) {
  EXPECT_EQ(got.topic, want.topic);
  EXPECT_EQ(got.partition, want.partition);
  EXPECT_EQ(got.key, want.key);
  EXPECT_EQ(got.value, want.value);
  EXPECT_EQ(got.headers, want.headers);
  EXPECT_EQ(got.source, want.source);
  EXPECT_EQ(got.source_offset, want.source_offset);
}

/// A dead letter of `source` at `offset`: key "k<offset>", value "v<offset>".
inline Forward dead_letter(const TopicPartition& source, std::int64_t offset) {
  Forward f;
  f.source = source;
  f.source_offset = offset;
  f.key = "k" + std::to_string(offset);
  f.value = "v" + std::to_string(offset);
  f.headers = {{"kc.offset", std::to_string(offset)}};
  return f;
}

inline std::vector<std::int64_t> ids_of(const std::vector<PendingForward>& p) {
  std::vector<std::int64_t> out;
  for (const auto& f : p) {
    out.push_back(f.id);
  }
  return out;
}

inline std::vector<std::int64_t> offsets_of(const std::vector<PendingForward>& p) {
  std::vector<std::int64_t> out;
  for (const auto& f : p) {
    out.push_back(f.source_offset);
  }
  return out;
}

}  // namespace kc::test
