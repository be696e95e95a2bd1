#include "kc/message.hpp"

#include <librdkafka/rdkafka.h>

namespace kc {

std::string_view Message::topic() const noexcept { return rd_kafka_topic_name(m_->rkt); }
Partition Message::partition() const noexcept { return Partition{m_->partition}; }
Offset Message::offset() const noexcept { return Offset{m_->offset}; }

std::optional<Bytes> Message::key() const noexcept {
  if (m_->key == nullptr) {
    return std::nullopt;
  }
  return Bytes(static_cast<const std::byte*>(m_->key), m_->key_len);
}

std::optional<Bytes> Message::value() const noexcept {
  if (m_->payload == nullptr) {
    return std::nullopt;
  }
  return Bytes(static_cast<const std::byte*>(m_->payload), m_->len);
}

Timestamp Message::timestamp() const noexcept {
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const auto ms = rd_kafka_message_timestamp(m_, &type);
  return Timestamp{ms, static_cast<int>(type)};
}

Headers Message::headers() const noexcept {
  rd_kafka_headers_t* h = nullptr;
  // The message keeps ownership of its headers; the cast is librdkafka's API.
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(m_), &h) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    h = nullptr;
  }
  return Headers(h);
}

std::size_t Headers::size() const noexcept { return h_ == nullptr ? 0 : rd_kafka_header_cnt(h_); }

Header Headers::at(std::size_t i) const noexcept {
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  rd_kafka_header_get_all(h_, i, &name, &value, &size);
  Header out{name == nullptr ? std::string_view{} : std::string_view(name), std::nullopt};
  if (value != nullptr) {
    out.value = Bytes(static_cast<const std::byte*>(value), size);
  }
  return out;
}

}  // namespace kc
