#include "kc/producer.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "produce/conf.hpp"
#include "produce/producev.hpp"
#include "rdkafka/handles.hpp"
#include "rdkafka/log.hpp"
#include "rdkafka/metadata.hpp"

namespace kc {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long the destructor waits for the reports of purged records. Purged
// records are reported at once (librdkafka enqueues their reports while it
// purges); the bound only keeps a librdkafka surprise from hanging a close.
constexpr auto kPurgeReportWait = 5s;

// now + d, saturating: a timeout of milliseconds::max() means "no deadline".
Clock::time_point deadline_after(std::chrono::milliseconds d) {
  const auto now = Clock::now();
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now);
  return d >= room ? Clock::time_point::max() : now + std::max(d, 0ms);
}

// What a record carries to its delivery report (its opaque): only records
// with a callback or a future get one.
struct Pending {
  DeliveryCallback callback;
  std::optional<std::promise<DeliveryReport>> promise;
};

}  // namespace

struct Producer::Impl {
  // The embedded broker (if any) must outlive the handle: declared first.
  std::unique_ptr<EmbeddedBroker> embedded;
  std::string bootstrap;
  QueueFull on_queue_full = QueueFull::block;
  std::optional<std::chrono::milliseconds> queue_full_timeout;
  std::chrono::milliseconds close_timeout{};

  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> failed{0};
  // Records enqueued whose report has not been handled; changed under `mu`
  // (so waiters on `progress` miss no change), read without it.
  std::atomic<std::size_t> in_flight{0};
  mutable std::mutex mu;
  std::condition_variable progress;  // a report was handled, or a poll freed room
  std::string last_error;            // under mu
  // Rounds of rd_kafka_poll that served something, under mu: librdkafka
  // frees a record's room in its queue only after the delivery callback
  // returned, so a producer waiting for room waits for the next round.
  std::uint64_t polls_served = 0;

  std::atomic<bool> stopping{false};
  // After everything the delivery thread and the callbacks touch: the thread
  // is stopped and the handle destroyed explicitly in close(), before them.
  detail::HandlePtr rk;
  std::thread delivery_thread;

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept;
  void settled() noexcept;
  rd_kafka_resp_err_t enqueue(const ProducerRecord& r, Pending* pending);
  bool wait_settled(Clock::time_point deadline);
  void close() noexcept;
  std::string describe(rd_kafka_resp_err_t err, std::string_view topic) const;
  /// Throws the kc::Error for a record produce_copy() refused.
  [[noreturn]] void refused(rd_kafka_resp_err_t err, std::string_view topic) const;
};

void Producer::Impl::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
  auto* self = static_cast<Impl*>(opaque);
  std::unique_ptr<Pending> pending(static_cast<Pending*>(m->_private));
  const bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
  try {
    // Not rd_kafka_message_errstr(): for a delivery report it returns the
    // payload rather than an error text.
    const char* why = ok ? nullptr : rd_kafka_message_produce_errstr(m);
    std::string text = ok ? std::string() : std::string(why != nullptr ? why : rd_kafka_err2str(m->err));
    if (ok) {
      self->delivered.fetch_add(1, std::memory_order_relaxed);
    } else {
      self->failed.fetch_add(1, std::memory_order_relaxed);
      const std::lock_guard lock(self->mu);
      self->last_error = text;
    }
    if (pending) {
      DeliveryReport report{rd_kafka_topic_name(m->rkt), m->partition, ok ? m->offset : -1, static_cast<int>(m->err),
                            std::move(text)};
      if (pending->callback) {
        try {
          pending->callback(report);
        } catch (const std::exception& e) {
          spdlog::error("kc: a producer delivery callback threw: {}", e.what());
        } catch (...) {
          spdlog::error("kc: a producer delivery callback threw");
        }
      }
      if (pending->promise) {
        pending->promise->set_value(std::move(report));
      }
    }
  } catch (...) {
    spdlog::error("kc: a producer delivery report could not be handled");
  }
  // Last: flush() returning true means every callback has returned.
  self->settled();
}

void Producer::Impl::settled() noexcept {
  {
    const std::lock_guard lock(mu);
    in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  progress.notify_all();
}

bool Producer::Impl::wait_settled(Clock::time_point deadline) {
  std::unique_lock lock(mu);
  return progress.wait_until(lock, deadline, [&] { return in_flight.load(std::memory_order_relaxed) == 0; });
}

rd_kafka_resp_err_t Producer::Impl::enqueue(const ProducerRecord& r, Pending* pending) {
  const std::string topic(r.topic);
  {
    // Counted before librdkafka has it: its report may come before producev returns.
    const std::lock_guard lock(mu);
    in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  std::optional<Clock::time_point> deadline;
  for (;;) {
    std::uint64_t seen = 0;
    {
      const std::lock_guard lock(mu);
      seen = polls_served;
    }
    const auto err = detail::produce_copy(rk.get(), topic, r.key, r.value, r.partition, r.headers, pending);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      return err;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && on_queue_full == QueueFull::block) {
      const auto now = Clock::now();
      if (!deadline) {
        deadline = queue_full_timeout ? deadline_after(*queue_full_timeout) : Clock::time_point::max();
      }
      if (now < *deadline) {
        // Room comes with served reports; the bounded wait also covers room
        // freed by other means.
        std::unique_lock lock(mu);
        progress.wait_until(lock, std::min(*deadline, now + 50ms), [&] { return polls_served != seen; });
        continue;
      }
    }
    settled();
    return err;
  }
}

void Producer::Impl::refused(rd_kafka_resp_err_t err, std::string_view topic) const {
  const bool full = err == RD_KAFKA_RESP_ERR__QUEUE_FULL;
  const bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
  throw Error(full ? errc::queue_full : fatal ? errc::kafka_fatal : errc::kafka, describe(err, topic), fatal, full);
}

std::string Producer::Impl::describe(rd_kafka_resp_err_t err, std::string_view topic) const {
  std::string what = "produce to " + std::string(topic) + " failed: ";
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    char messages[64] = {0};
    char kbytes[64] = {0};
    std::size_t size = sizeof messages;
    const rd_kafka_conf_t* conf = rd_kafka_conf(rk.get());
    rd_kafka_conf_get(conf, "queue.buffering.max.messages", messages, &size);
    size = sizeof kbytes;
    rd_kafka_conf_get(conf, "queue.buffering.max.kbytes", kbytes, &size);
    what += "the local queue is full (librdkafka queue.buffering.max.messages=" + std::string(messages) +
            ", queue.buffering.max.kbytes=" + kbytes + ")";
    if (on_queue_full == QueueFull::block) {
      what += " and stayed full for queue_full_timeout=" + std::to_string(queue_full_timeout.value_or(0ms).count()) +
              " ms: the broker does not keep up or is unreachable";
    } else {
      what += ": deliveries do not keep up; raise the bounds, slow down, or use QueueFull::block";
    }
    return what;
  }
  what += std::string(rd_kafka_err2name(err)) + ": " + rd_kafka_err2str(err);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512] = {0};
    rd_kafka_fatal_error(rk.get(), buf, sizeof buf);
    what += std::string(": ") + buf;
  }
  return what;
}

// Order: wait (bounded) for what is in flight; purge the rest so every
// record gets its report (rd_kafka_destroy would drop them without one and
// leave futures hanging); stop the delivery thread; serve what it did not;
// destroy the handle, then the embedded broker (member order).
void Producer::Impl::close() noexcept {
  try {
    if (!wait_settled(deadline_after(close_timeout))) {
      // close_timeout 0: the owner chose to drop what is left (and says so itself).
      spdlog::log(close_timeout.count() > 0 ? spdlog::level::warn : spdlog::level::debug,
                  "kc: producer closing with {} records without a delivery report after {} ms: purged, they fail",
                  in_flight.load(), close_timeout.count());
      rd_kafka_purge(rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      if (!wait_settled(Clock::now() + kPurgeReportWait)) {
        spdlog::error("kc: producer: {} records still without a report after the purge", in_flight.load());
      }
    }
  } catch (...) {
    // A failed wait (std::system_error from the mutex) changes nothing below.
  }
  stopping.store(true);
  // Wakes the thread's rd_kafka_poll (rd_kafka_yield() would only stop a
  // poll on the calling thread).
  if (const detail::QueuePtr main_queue(rd_kafka_queue_get_main(rk.get())); main_queue) {
    rd_kafka_queue_yield(main_queue.get());
  }
  if (delivery_thread.joinable()) {
    delivery_thread.join();
  }
  rd_kafka_poll(rk.get(), 0);
  rk.reset();
}

Producer::Producer(ProducerConfig config) : impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  if (config.bootstrap_servers.empty()) {
    s.embedded = std::make_unique<EmbeddedBroker>(1);
    s.bootstrap = s.embedded->bootstrap_servers();
    spdlog::warn(
        "kc: no bootstrap servers given: producing to an embedded mock broker at {} "
        "(in-process, data is lost on exit)",
        s.bootstrap);
  } else {
    s.bootstrap = config.bootstrap_servers;
  }
  s.on_queue_full = config.on_queue_full;
  s.queue_full_timeout = config.queue_full_timeout;
  s.close_timeout = std::max(config.close_timeout, 0ms);
  auto conf = detail::producer_conf(s.bootstrap, config.librdkafka);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), Impl::on_delivery);
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  rd_kafka_conf_set_opaque(conf.get(), impl_.get());
  s.rk = detail::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
  s.delivery_thread = std::thread([&s] {
    while (!s.stopping.load()) {
      if (rd_kafka_poll(s.rk.get(), 100) > 0) {
        {
          const std::lock_guard lock(s.mu);
          ++s.polls_served;
        }
        s.progress.notify_all();
      }
    }
  });
}

Producer::~Producer() {
  if (impl_ && impl_->rk) {
    impl_->close();
  }
}

void Producer::produce(const ProducerRecord& record, DeliveryCallback on_delivery, std::error_code& ec) noexcept {
  std::unique_ptr<Pending> pending;
  try {
    if (on_delivery) {
      pending = std::make_unique<Pending>(Pending{std::move(on_delivery), std::nullopt});
    }
    const auto err = impl_->enqueue(record, pending.get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      (void)pending.release();  // librdkafka's until the report
      ec.clear();
    } else {
      ec = err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? errc::queue_full
           : err == RD_KAFKA_RESP_ERR__FATAL    ? errc::kafka_fatal
                                                : errc::kafka;
    }
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  } catch (...) {
    ec = errc::kafka;
  }
}

void Producer::produce(const ProducerRecord& record, DeliveryCallback on_delivery) {
  std::unique_ptr<Pending> pending;
  if (on_delivery) {
    pending = std::make_unique<Pending>(Pending{std::move(on_delivery), std::nullopt});
  }
  const auto err = impl_->enqueue(record, pending.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl_->refused(err, record.topic);
  }
  (void)pending.release();  // librdkafka's until the report
}

void Producer::produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
                       std::int32_t partition, const std::vector<ProducerHeader>& headers) {
  produce(ProducerRecord{topic, key, value, partition, headers});
}

std::future<DeliveryReport> Producer::send(const ProducerRecord& record) {
  auto pending = std::make_unique<Pending>();
  auto future = pending->promise.emplace().get_future();
  const auto err = impl_->enqueue(record, pending.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl_->refused(err, record.topic);
  }
  (void)pending.release();  // librdkafka's until the report
  return future;
}

bool Producer::flush(std::chrono::milliseconds timeout) {
  return impl_->wait_settled(deadline_after(timeout));
}

DeliveryStats Producer::stats() const {
  DeliveryStats out;
  out.delivered = impl_->delivered.load(std::memory_order_relaxed);
  out.failed = impl_->failed.load(std::memory_order_relaxed);
  const std::lock_guard lock(impl_->mu);
  out.last_error = impl_->last_error;
  return out;
}

std::size_t Producer::in_flight() const noexcept {
  return impl_->in_flight.load(std::memory_order_relaxed);
}

const std::string& Producer::bootstrap_servers() const noexcept {
  return impl_->bootstrap;
}

std::optional<int> Producer::partition_count(std::string_view topic, std::chrono::milliseconds timeout,
                                             std::error_code& ec) noexcept {
  ec.clear();
  try {
    const auto n = detail::topic_partition_count(impl_->rk.get(), std::string(topic), timeout);
    if (n.partitions || n.missing) {
      return n.partitions;
    }
  } catch (...) {
    // a name librdkafka refuses, or std::bad_alloc: no count either
  }
  ec = errc::kafka;
  return std::nullopt;
}

std::optional<int> Producer::partition_count(std::string_view topic, std::chrono::milliseconds timeout) {
  std::error_code ec;
  auto n = partition_count(topic, timeout, ec);
  if (ec) {
    throw Error(errc::kafka,
                "metadata of topic '" + std::string(topic) + "': no partition count within " +
                    std::to_string(timeout.count()) + " ms",
                false, true);
  }
  return n;
}

std::string Producer::config_value(std::string_view name) const {
  const std::string key(name);
  const rd_kafka_conf_t* conf = rd_kafka_conf(impl_->rk.get());
  std::size_t size = 0;
  if (rd_kafka_conf_get(conf, key.c_str(), nullptr, &size) != RD_KAFKA_CONF_OK) {
    throw Error(errc::config_unknown_key, "librdkafka." + key + ": unknown librdkafka property");
  }
  std::string value(size, '\0');  // size counts the terminating NUL
  rd_kafka_conf_get(conf, key.c_str(), value.data(), &size);
  value.resize(std::min(value.size(), std::strlen(value.c_str())));
  return value;
}

}  // namespace kc
