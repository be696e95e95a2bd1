#include "kc/producer.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "produce/producev.hpp"
#include "rdkafka/handles.hpp"
#include "rdkafka/log.hpp"

namespace kc {

struct Producer::Impl {
  // The embedded broker (if any) must outlive the handle: declared first.
  std::unique_ptr<EmbeddedBroker> embedded;
  std::string bootstrap;
  detail::HandlePtr rk;
  DeliveryStats stats;
};

namespace {
void delivery_trampoline(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
  auto* s = static_cast<Producer::Impl*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++s->stats.delivered;
  } else {
    ++s->stats.failed;
    try {
      s->stats.last_error = rd_kafka_err2str(m->err);
    } catch (...) {
    }
  }
}

}  // namespace

Producer::Producer(ProducerConfig config) : impl_(std::make_unique<Impl>()) {
  if (config.bootstrap_servers.empty()) {
    impl_->embedded = std::make_unique<EmbeddedBroker>(1);
    impl_->bootstrap = impl_->embedded->bootstrap_servers();
    spdlog::warn("kc: no bootstrap servers given: producing to an embedded mock broker at {} "
                 "(in-process, data is lost on exit)",
                 impl_->bootstrap);
  } else {
    impl_->bootstrap = config.bootstrap_servers;
  }
  detail::ConfPtr conf(rd_kafka_conf_new());
  detail::conf_set(conf.get(), "bootstrap.servers", impl_->bootstrap);
  detail::conf_set(conf.get(), "enable.idempotence", "true");
  detail::conf_set(conf.get(), "acks", "all");
  detail::conf_set(conf.get(), "linger.ms", "5");
  for (const auto& [k, v] : config.librdkafka) {
    detail::conf_set(conf.get(), k, v);
  }
  rd_kafka_conf_set_dr_msg_cb(conf.get(), delivery_trampoline);
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  rd_kafka_conf_set_opaque(conf.get(), impl_.get());
  impl_->rk = detail::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() {
  if (impl_ && impl_->rk) {
    rd_kafka_flush(impl_->rk.get(), 10000);
  }
}

void Producer::produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
                       std::int32_t partition,
                       const std::vector<std::pair<std::string, std::optional<std::string>>>& headers) {
  const std::string t(topic);
  for (;;) {
    const auto err = detail::produce_copy(impl_->rk.get(), t, key, value, partition, headers);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(impl_->rk.get(), 100);
      continue;
    }
    char buf[512] = {0};
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      rd_kafka_fatal_error(impl_->rk.get(), buf, sizeof buf);
    }
    throw Error(err == RD_KAFKA_RESP_ERR__FATAL ? errc::kafka_fatal : errc::kafka,
                "produce to " + t + " failed: " + rd_kafka_err2str(err) + (buf[0] != 0 ? std::string(": ") + buf : ""),
                err == RD_KAFKA_RESP_ERR__FATAL);
  }
}

void Producer::poll() { rd_kafka_poll(impl_->rk.get(), 0); }

bool Producer::flush(std::chrono::milliseconds timeout) {
  return rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

const DeliveryStats& Producer::stats() const noexcept { return impl_->stats; }
std::size_t Producer::in_flight() const noexcept { return static_cast<std::size_t>(rd_kafka_outq_len(impl_->rk.get())); }
const std::string& Producer::bootstrap_servers() const noexcept { return impl_->bootstrap; }

}  // namespace kc
