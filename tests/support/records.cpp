#include "support/records.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>

#include "support/rdkafka_handles.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using namespace kc::test::rdk;  // RkPtr, ..., make_client

int partition_count(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("metadata of " + topic + ": " + rd_kafka_err2str(err));
  }
  const int n =
      md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR ? md->topics[0].partition_cnt : -1;
  rd_kafka_metadata_destroy(md);
  if (n <= 0) {
    throw Failure("metadata of " + topic + ": no such topic");
  }
  return n;
}

}  // namespace

std::optional<std::string> Record::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) {
      return v;
    }
  }
  return std::nullopt;
}

struct RecordProducer::Impl {
  Deliveries d;  // before rk: the handle's opaque points here
  RkPtr rk;
};

RecordProducer::RecordProducer(const std::string& bootstrap) : impl_(std::make_unique<Impl>()) {
  impl_->rk = make_client(RD_KAFKA_PRODUCER, bootstrap,
                          {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "10"}}, on_delivery,
                          &impl_->d);
}

RecordProducer::~RecordProducer() = default;

void RecordProducer::enqueue(const std::string& topic, const Record& r) {
  rd_kafka_t* rk = impl_->rk.get();
  for (;;) {
    rd_kafka_headers_t* hdrs = rd_kafka_headers_new(r.headers.size());
    for (const auto& [n, v] : r.headers) {
      rd_kafka_header_add(hdrs, n.data(), static_cast<ssize_t>(n.size()), v ? v->data() : nullptr,
                          v ? static_cast<ssize_t>(v->size()) : 0);
    }
    void* key = r.key ? const_cast<char*>(r.key->data()) : nullptr;
    const std::size_t key_len = r.key ? r.key->size() : 0;
    void* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    const std::size_t value_len = r.value ? r.value->size() : 0;
    const auto err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                                       RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_poll(rk, 0);
      return;
    }
    rd_kafka_headers_destroy(hdrs);  // not taken over on failure
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      throw Failure("produce to " + topic + ": " + rd_kafka_err2str(err));
    }
    rd_kafka_poll(rk, 50);
  }
}

void RecordProducer::poll() {
  rd_kafka_poll(impl_->rk.get(), 0);
}

void RecordProducer::flush(const std::string& topic, std::uint64_t expected) {
  rd_kafka_flush(impl_->rk.get(), 60000);
  const Deliveries& d = impl_->d;
  if (d.ok != expected) {
    throw Failure("produce to " + topic + ": " + std::to_string(d.ok) + " of " + std::to_string(expected) +
                  " acknowledged, " + std::to_string(d.failed) + " failed: " + d.first_error);
  }
}

void produce_records(const std::string& bootstrap, const std::string& topic, const std::vector<Record>& records) {
  RecordProducer producer(bootstrap);
  for (const auto& r : records) {
    producer.enqueue(topic, r);
  }
  producer.flush(topic, records.size());
}

std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic) {
  // End-of-partition events: a topic written by transactions ends with
  // control records (commit and abort markers), which are never delivered,
  // so its last record is below the high watermark; the end is where the
  // EOF event says the position is.
  auto rk = make_client(RD_KAFKA_CONSUMER, bootstrap,
                        {{"group.id", unique_name("kc-test-reader")},
                         {"enable.auto.commit", "false"},
                         {"enable.partition.eof", "true"},
                         {"auto.offset.reset", "earliest"}});
  rd_kafka_poll_set_consumer(rk.get());
  const int parts = partition_count(rk.get(), topic);
  std::map<std::int32_t, std::int64_t> end;
  ListPtr list(rd_kafka_topic_partition_list_new(parts));
  for (std::int32_t p = 0; p < parts; ++p) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    if (const auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &lo, &hi, 10000); err) {
      throw Failure("watermarks of " + topic + ": " + rd_kafka_err2str(err));
    }
    if (hi > lo) {
      end[p] = hi;
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  rd_kafka_assign(rk.get(), list.get());
  std::vector<Record> out;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!end.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Failure("read_topic " + topic + ": not read to the end within 60 s");
    }
    MessagePtr m(rd_kafka_consumer_poll(rk.get(), 200));
    if (!m) {
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (const auto it = end.find(m->partition); it != end.end() && m->offset >= it->second) {
        end.erase(it);
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure("read_topic " + topic + ": " + rd_kafka_message_errstr(m.get()));
    }
    const auto it = end.find(m->partition);
    if (it == end.end() || m->offset >= it->second) {
      continue;
    }
    if (m->offset + 1 >= it->second) {
      end.erase(it);
    }
    Record r;
    r.partition = m->partition;
    r.offset = m->offset;
    r.timestamp = rd_kafka_message_timestamp(m.get(), nullptr);
    if (m->key != nullptr) {
      r.key.emplace(static_cast<const char*>(m->key), m->key_len);
    }
    if (m->payload != nullptr) {
      r.value.emplace(static_cast<const char*>(m->payload), m->len);
    }
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* val = nullptr;
      std::size_t size = 0;
      for (std::size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        r.headers.emplace_back(
            name, val == nullptr ? std::nullopt
                                 : std::optional<std::string>(std::string(static_cast<const char*>(val), size)));
      }
    }
    out.push_back(std::move(r));
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

}  // namespace kc::test
