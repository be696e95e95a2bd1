// A partition's watermarks that ride out a leader election. Private to kc.
#pragma once

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string>
#include <thread>

namespace kc::detail {

/// Errors of a ListOffsets that say "ask again in a moment": the partition's
/// leader is moving or not known everywhere yet (a topic created a moment
/// ago answers NOT_LEADER_OR_FOLLOWER on the real broker).
constexpr bool watermarks_retriable(rd_kafka_resp_err_t e) noexcept {
  switch (e) {
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH: return true;
    default: return false;
  }
}

/// rd_kafka_query_watermark_offsets() for `topic`[`partition`], asked again
/// every 100 ms while the answer is watermarks_retriable(), until `timeout`
/// is spent; then the last error. Blocks up to `timeout` (clamped to INT_MAX ms) (a little more for
/// the last request's own bound). Any thread; `rk` stays the caller's.
inline rd_kafka_resp_err_t query_watermarks(rd_kafka_t* rk, const std::string& topic, std::int32_t partition,
                                            std::int64_t& low, std::int64_t& high, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  constexpr std::chrono::milliseconds kAgain{100};
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const auto err =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high,
                                         static_cast<int>(std::clamp<std::int64_t>(left.count(), 1, INT_MAX)));
    if (!watermarks_retriable(err) || Clock::now() + kAgain >= deadline) {
      return err;
    }
    std::this_thread::sleep_for(kAgain);
  }
}

}  // namespace kc::detail
