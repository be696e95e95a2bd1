#include "support/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <thread>

#include "support/rdkafka_handles.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using namespace kc::test::rdk;  // RkPtr, ..., make_client

// True when the metadata shows `topic` with `partitions` partitions, all led.
bool topic_ready(rd_kafka_t* rk, const std::string& topic, int partitions) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return false;
  }
  bool ok = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topics[0].partition_cnt == partitions;
  for (int i = 0; ok && i < md->topics[0].partition_cnt; ++i) {
    ok = md->topics[0].partitions[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partitions[i].leader >= 0;
  }
  rd_kafka_metadata_destroy(md);
  return ok;
}

}  // namespace

void create_topic(const std::string& bootstrap, const std::string& name, int partitions,
                  std::chrono::milliseconds timeout) {
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(name.c_str(), partitions, 1, err, sizeof err);
  if (nt == nullptr) {
    throw Failure("create_topic " + name + ": " + err);
  }
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout);
  if (rd_kafka_AdminOptions_set_operation_timeout(opts.get(), to_ms(timeout), err, sizeof err) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_NewTopic_destroy(nt);
    throw Failure(std::string("create_topic: operation timeout: ") + err);
  }
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_CreateTopics(rk.get(), &nt, 1, opts.get(), q.get());
  rd_kafka_NewTopic_destroy(nt);
  auto ev = admin_result(q.get(), timeout, "create_topic " + name);
  const auto* res = rd_kafka_event_CreateTopics_result(ev.get());
  std::size_t cnt = 0;
  const auto** topics = rd_kafka_CreateTopics_result_topics(res, &cnt);
  if (cnt != 1) {
    throw Failure("create_topic " + name + ": expected one topic result, got " + std::to_string(cnt));
  }
  if (const auto e = rd_kafka_topic_result_error(topics[0]); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* why = rd_kafka_topic_result_error_string(topics[0]);
    throw Failure("create_topic " + name + ": " + rd_kafka_err2name(e) + ": " + (why != nullptr ? why : ""));
  }
  if (!wait_until([&] { return topic_ready(rk.get(), name, partitions); }, timeout, 100ms)) {
    throw Failure("create_topic " + name + ": created, but the metadata did not show " + std::to_string(partitions) +
                  " led partitions within " + std::to_string(timeout.count()) + " ms");
  }
}

namespace {

// -1: not in the metadata (or an error for it); the partition count otherwise.
int partitions_in_metadata(rd_kafka_t* rk, const std::string& name) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, name.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("metadata of " + name + ": " + rd_kafka_err2str(err));
  }
  int out = -1;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    out = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

}  // namespace

void delete_topic(const std::string& bootstrap, const std::string& name, std::chrono::milliseconds timeout) {
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  rd_kafka_DeleteTopic_t* dt = rd_kafka_DeleteTopic_new(name.c_str());
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_DeleteTopics(rk.get(), &dt, 1, opts.get(), q.get());
  rd_kafka_DeleteTopic_destroy(dt);
  auto ev = admin_result(q.get(), timeout, "delete_topic " + name);
  const auto* res = rd_kafka_event_DeleteTopics_result(ev.get());
  std::size_t cnt = 0;
  const auto** topics = rd_kafka_DeleteTopics_result_topics(res, &cnt);
  if (cnt != 1) {
    throw Failure("delete_topic " + name + ": expected one topic result, got " + std::to_string(cnt));
  }
  if (const auto e = rd_kafka_topic_result_error(topics[0]); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* why = rd_kafka_topic_result_error_string(topics[0]);
    throw Failure("delete_topic " + name + ": " + rd_kafka_err2name(e) + ": " + (why != nullptr ? why : ""));
  }
  if (!wait_until([&] { return partitions_in_metadata(rk.get(), name) < 0; }, timeout, 100ms)) {
    throw Failure("delete_topic " + name + ": deleted, but the metadata still lists it after " +
                  std::to_string(timeout.count()) + " ms");
  }
}

int topic_partitions(const std::string& bootstrap, const std::string& name) {
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  return partitions_in_metadata(rk.get(), name);
}

std::uint64_t produce(const std::string& bootstrap, const std::string& topic, std::uint64_t n,
                      const ProduceOptions& options) {
  Deliveries d;
  auto props = options.librdkafka;
  props.emplace("enable.idempotence", "true");
  props.emplace("acks", "all");
  props.emplace("linger.ms", "5");
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, props, on_delivery, &d);

  auto start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0;
  std::string value;
  for (; sent < n; ++sent) {
    if (options.stop != nullptr && options.stop->load()) {
      break;
    }
    if (options.rate > 0 && sent % 100 == 0) {
      const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(sent) / options.rate));
      std::this_thread::sleep_until(due);
    }
    const std::uint64_t i = options.first + sent;
    value = options.value_prefix + std::to_string(i);
    const std::int32_t partition = options.partitions > 0
                                       ? static_cast<std::int32_t>(i % static_cast<std::uint64_t>(options.partitions))
                                       : RD_KAFKA_PARTITION_UA;
    for (;;) {
      const auto err = rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                                         RD_KAFKA_V_VALUE(value.data(), value.size()),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        break;
      }
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        throw Failure("produce to " + topic + ": record " + std::to_string(i) + ": " + rd_kafka_err2name(err));
      }
      rd_kafka_poll(rk.get(), 10);
    }
    rd_kafka_poll(rk.get(), 0);
    if (options.rate > 0 && sent == 0) {
      // A paced stream starts once the first record is acknowledged (the
      // producer has its idempotence PID): records queued before that would
      // arrive as one burst instead of at the rate.
      rd_kafka_flush(rk.get(), to_ms(options.flush_timeout));
      start = std::chrono::steady_clock::now();
    }
    if (d.failed != 0) {
      break;  // reported below, after the flush
    }
  }
  const auto flush_err = rd_kafka_flush(rk.get(), to_ms(options.flush_timeout));
  char fatal[512];
  if (rd_kafka_fatal_error(rk.get(), fatal, sizeof fatal) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("produce to " + topic + ": fatal producer error: " + fatal);
  }
  if (d.failed != 0) {
    throw Failure("produce to " + topic + ": " + std::to_string(d.failed) + " of " + std::to_string(sent) +
                  " deliveries failed; first: " + d.first_error);
  }
  if (flush_err != RD_KAFKA_RESP_ERR_NO_ERROR || d.ok != sent) {
    throw Failure("produce to " + topic + ": only " + std::to_string(d.ok) + " of " + std::to_string(sent) +
                  " records acknowledged within " + std::to_string(options.flush_timeout.count()) + " ms (" +
                  std::to_string(rd_kafka_outq_len(rk.get())) + " still queued)");
  }
  return sent;
}

BackgroundProducer::BackgroundProducer(std::string bootstrap, std::string topic, std::uint64_t n,
                                       ProduceOptions options) {
  options.stop = &stop_;
  thread_ =
      std::thread([this, bootstrap = std::move(bootstrap), topic = std::move(topic), n, options = std::move(options)] {
        try {
          produced_ = produce(bootstrap, topic, n, options);
        } catch (...) {
          error_ = std::current_exception();
        }
      });
}

BackgroundProducer::~BackgroundProducer() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::uint64_t BackgroundProducer::finish() {
  stop_ = true;
  return join();
}

std::uint64_t BackgroundProducer::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
  if (error_) {
    std::rethrow_exception(error_);
  }
  return produced_;
}

std::vector<std::int64_t> high_watermarks(const std::string& bootstrap, const std::string& topic, int partitions,
                                          std::chrono::milliseconds timeout) {
  // A consumer reading uncommitted: the ListOffsets request carries the
  // client's isolation level, and librdkafka's default (read_committed)
  // would answer the last stable offset on a topic with open transactions.
  auto rk = make_client(RD_KAFKA_CONSUMER, bootstrap, {{"isolation.level", "read_uncommitted"}});
  std::vector<std::int64_t> out;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = -1;
    std::int64_t high = -1;
    const auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, to_ms(timeout));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure("high_watermarks " + topic + "[" + std::to_string(p) + "]: " + rd_kafka_err2name(err));
    }
    out.push_back(high);
  }
  return out;
}

std::vector<std::int64_t> committed_offsets(const std::string& bootstrap, const std::string& group,
                                            const std::string& topic, int partitions,
                                            std::chrono::milliseconds timeout) {
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  ListPtr parts(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), p);
  }
  rd_kafka_ListConsumerGroupOffsets_t* req = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), parts.get());
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_ListConsumerGroupOffsets(rk.get(), &req, 1, opts.get(), q.get());
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  const std::string what = "committed_offsets of group " + group;
  auto ev = admin_result(q.get(), timeout, what);
  const auto* res = rd_kafka_event_ListConsumerGroupOffsets_result(ev.get());
  std::size_t cnt = 0;
  const auto** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(res, &cnt);
  if (cnt != 1) {
    throw Failure(what + ": expected one group result, got " + std::to_string(cnt));
  }
  if (const auto* e = rd_kafka_group_result_error(groups[0]); e != nullptr) {
    throw Failure(what + ": " + rd_kafka_error_string(e));
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(partitions), -1);
  const auto* got = rd_kafka_group_result_partitions(groups[0]);
  for (int i = 0; got != nullptr && i < got->cnt; ++i) {
    const auto& el = got->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure(what + ": " + topic + "[" + std::to_string(el.partition) + "]: " + rd_kafka_err2name(el.err));
    }
    if (topic == el.topic && el.partition >= 0 && el.partition < partitions && el.offset >= 0) {
      out[static_cast<std::size_t>(el.partition)] = el.offset;
    }
  }
  return out;
}

std::vector<std::string> read_values(const std::string& bootstrap, const std::string& topic, int partitions,
                                     Isolation isolation, std::chrono::milliseconds timeout, bool* complete) {
  const std::string level = isolation == Isolation::read_committed ? "read_committed" : "read_uncommitted";
  const std::string what = "read_values " + topic + " (" + level + ")";
  // The ends: high watermarks from a read_uncommitted client (ListOffsets
  // takes the client's isolation level; read_committed would give the LSO).
  std::vector<std::int64_t> end(static_cast<std::size_t>(partitions), 0);
  {
    auto probe = make_client(RD_KAFKA_CONSUMER, bootstrap, {{"isolation.level", "read_uncommitted"}});
    for (int p = 0; p < partitions; ++p) {
      std::int64_t low = 0;
      const auto err = rd_kafka_query_watermark_offsets(probe.get(), topic.c_str(), p, &low,
                                                        &end[static_cast<std::size_t>(p)], to_ms(timeout));
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw Failure(what + ": watermarks of partition " + std::to_string(p) + ": " + rd_kafka_err2name(err));
      }
    }
  }
  auto rk = make_client(RD_KAFKA_CONSUMER, bootstrap,
                        {{"group.id", unique_name("kc-test-values")},
                         {"enable.auto.commit", "false"},
                         {"isolation.level", level},
                         {"enable.partition.eof", "true"}});
  rd_kafka_poll_set_consumer(rk.get());
  ListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (const auto err = rd_kafka_assign(rk.get(), list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(what + ": assign: " + rd_kafka_err2name(err));
  }
  std::vector<std::vector<std::string>> values(static_cast<std::size_t>(partitions));
  // Reached: the next offset to read (from a record or an end-of-partition
  // event, which also covers control records and aborted records that
  // read_committed skips) is at or past the end.
  std::vector<std::int64_t> next(static_cast<std::size_t>(partitions), 0);
  auto done = [&] {
    for (std::size_t i = 0; i < end.size(); ++i) {
      if (next[i] < end[i]) {
        return false;
      }
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (complete != nullptr) {
    *complete = true;
  }
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::string state;
      for (std::size_t i = 0; i < end.size(); ++i) {
        state += " [" + std::to_string(i) + "] at " + std::to_string(next[i]) + " of " + std::to_string(end[i]) + " (" +
                 std::to_string(values[i].size()) + " values)";
      }
      if (complete != nullptr) {
        *complete = false;
        break;
      }
      throw Failure(what + ": not read to the end within " + std::to_string(timeout.count()) +
                    " ms (a transaction still open?):" + state);
    }
    MessagePtr m(rd_kafka_consumer_poll(rk.get(), 100));
    if (!m) {
      continue;
    }
    if (m->partition < 0 || m->partition >= partitions) {
      continue;
    }
    const auto i = static_cast<std::size_t>(m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      next[i] = std::max(next[i], m->offset);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure(what + ": " + rd_kafka_err2name(m->err) + ": " + rd_kafka_message_errstr(m.get()));
    }
    next[i] = std::max(next[i], m->offset + 1);
    if (m->offset < end[i]) {
      values[i].emplace_back(m->payload != nullptr ? std::string(static_cast<const char*>(m->payload), m->len)
                                                   : std::string());
    }
  }
  rd_kafka_consumer_close(rk.get());
  std::vector<std::string> out;
  for (auto& v : values) {
    out.insert(out.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  }
  return out;
}

namespace {

// IncrementalAlterConfigs SET of `configs` on one resource; `what` prefixes errors.
void alter_configs(const std::string& bootstrap, rd_kafka_ResourceType_t type, const std::string& name,
                   const std::map<std::string, std::string>& configs, std::chrono::milliseconds timeout,
                   const std::string& what) {
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(type, name.c_str());
  for (const auto& [k, v] : configs) {
    ErrorPtr e(
        rd_kafka_ConfigResource_add_incremental_config(res, k.c_str(), RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET, v.c_str()));
    if (e) {
      rd_kafka_ConfigResource_destroy(res);
      throw Failure(what + ": " + k + ": " + rd_kafka_error_string(e.get()));
    }
  }
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_IncrementalAlterConfigs(rk.get(), &res, 1, opts.get(), q.get());
  rd_kafka_ConfigResource_destroy(res);
  auto ev = admin_result(q.get(), timeout, what);
  const auto* result = rd_kafka_event_IncrementalAlterConfigs_result(ev.get());
  std::size_t cnt = 0;
  const auto** resources = rd_kafka_IncrementalAlterConfigs_result_resources(result, &cnt);
  for (std::size_t i = 0; i < cnt; ++i) {
    if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* s = rd_kafka_ConfigResource_error_string(resources[i]);
      throw Failure(what + ": " + rd_kafka_err2name(rd_kafka_ConfigResource_error(resources[i])) + ": " +
                    (s != nullptr ? s : ""));
    }
  }
}

}  // namespace

void set_group_config(const std::string& bootstrap, const std::string& group,
                      const std::map<std::string, std::string>& configs, std::chrono::milliseconds timeout) {
  alter_configs(bootstrap, RD_KAFKA_RESOURCE_GROUP, group, configs, timeout, "set_group_config of group " + group);
}

void set_topic_config(const std::string& bootstrap, const std::string& topic,
                      const std::map<std::string, std::string>& configs, std::chrono::milliseconds timeout) {
  alter_configs(bootstrap, RD_KAFKA_RESOURCE_TOPIC, topic, configs, timeout, "set_topic_config of topic " + topic);
}

}  // namespace kc::test
