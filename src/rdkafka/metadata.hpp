// Topic lookups through librdkafka's metadata. Private to kc.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <optional>
#include <string>

namespace kc::detail {

/// What one metadata request said about one topic.
struct PartitionCount {
  /// The partition count: set when the topic exists with partitions.
  std::optional<int> partitions;
  /// The cluster answered that the topic does not exist
  /// (UNKNOWN_TOPIC_OR_PART).
  bool missing = false;
  /// Otherwise why there is no count: the request's error, else the topic's
  /// (NO_ERROR when the answer held the topic without partitions).
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

/// Asks the cluster once for the partition count of `topic` (a metadata
/// request for that topic alone; whether it may create a missing topic is
/// the handle's allow.auto.create.topics). No retries: the caller decides
/// what a missing answer means. Blocks up to `timeout` (clamped to 1 ms ..
/// INT_MAX ms). Any thread, any handle type; `rk` stays the caller's.
/// Throws kc::Error (errc::kafka, naming the topic) when librdkafka refuses
/// a topic handle for the name; otherwise only std::bad_alloc.
PartitionCount topic_partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout);

}  // namespace kc::detail
