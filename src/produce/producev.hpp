// One rd_kafka_producev call with copies of key, value and headers: the one
// place kc hands a record to librdkafka (kc::Producer, and through it the
// dead-letter writer, kc produce and kc dlq redrive; the transactional Kafka
// sink). Private to kc.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "kc/producer.hpp"
#include "kc/types.hpp"

namespace kc::detail {

/// Enqueues one record (librdkafka copies key, value and headers). A present
/// but empty key or value stays empty, distinct from null. `opaque` comes
/// back in the delivery report (rd_kafka_message_t::_private). Returns
/// librdkafka's error (e.g. __QUEUE_FULL, to be retried once deliveries
/// freed room); on an error nothing was taken over. Does not block.
/// Threads: any (rd_kafka_producev is thread-safe).
inline rd_kafka_resp_err_t produce_copy(rd_kafka_t* rk, const std::string& topic, std::optional<Bytes> key,
                                        std::optional<Bytes> value, std::int32_t partition,
                                        std::span<const ProducerHeader> headers, void* opaque = nullptr) {
  // librdkafka reads a null pointer as a null key or value: an empty one
  // needs a non-null pointer.
  static const std::byte kEmpty{};
  // Locals, not expressions: the RD_KAFKA_V_* macros cast their arguments.
  void* key_ptr = key ? const_cast<std::byte*>(key->empty() ? &kEmpty : key->data()) : nullptr;
  const std::size_t key_len = key ? key->size() : 0;
  void* value_ptr = value ? const_cast<std::byte*>(value->empty() ? &kEmpty : value->data()) : nullptr;
  const std::size_t value_len = value ? value->size() : 0;
  rd_kafka_headers_t* hdrs = nullptr;
  if (!headers.empty()) {
    hdrs = rd_kafka_headers_new(headers.size());
    for (const auto& [n, v] : headers) {
      rd_kafka_header_add(hdrs, n.data(), static_cast<ssize_t>(n.size()), v ? v->data() : nullptr,
                          v ? static_cast<ssize_t>(v->size()) : 0);
    }
  }
  const auto err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key_ptr, key_len),
                                     RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_HEADERS(hdrs),
                                     RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
    rd_kafka_headers_destroy(hdrs);  // not taken over on failure
  }
  return err;
}

}  // namespace kc::detail
