#include "rdkafka/metadata.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kc/error.hpp"
#include "rdkafka/handles.hpp"

namespace kc::detail {

PartitionCount topic_partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout) {
  const TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  if (!rkt) {
    throw Error(errc::kafka, "topic '" + topic + "': " + rd_kafka_err2str(rd_kafka_last_error()));
  }
  const rd_kafka_metadata_t* raw = nullptr;
  const auto err = rd_kafka_metadata(
      rk, 0, rkt.get(), &raw,
      static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 1, std::numeric_limits<int>::max())));
  const MetadataPtr md(raw);
  PartitionCount out;
  out.err = err;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
    const auto& t = md->topics[0];
    out.err = t.err;
    if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0) {
      out.partitions = t.partition_cnt;
    } else if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      out.missing = true;
    }
  }
  return out;
}

}  // namespace kc::detail
