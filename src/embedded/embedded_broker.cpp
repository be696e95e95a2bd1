#include "kc/embedded.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kc/error.hpp"
#include "rdkafka/handles.hpp"

namespace kc {

namespace {
struct MockDeleter {
  void operator()(rd_kafka_mock_cluster_t* m) const noexcept { rd_kafka_mock_cluster_destroy(m); }
};
}  // namespace

struct EmbeddedBroker::Impl {
  // Member order matters: the mock cluster belongs to `rk` and must be
  // destroyed first, so it is declared after it.
  detail::HandlePtr rk;
  std::unique_ptr<rd_kafka_mock_cluster_t, MockDeleter> cluster;
  std::string bootstrap;
};

EmbeddedBroker::EmbeddedBroker(int brokers) : impl_(std::make_unique<Impl>()) {
  detail::ConfPtr conf(rd_kafka_conf_new());
  // The hosting handle never talks to anyone; keep its logs quiet.
  detail::conf_set(conf.get(), "log_level", "3");
  impl_->rk = detail::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
  impl_->cluster.reset(rd_kafka_mock_cluster_new(impl_->rk.get(), brokers));
  if (!impl_->cluster) {
    throw Error(errc::kafka, "cannot start the embedded (mock) Kafka cluster", true);
  }
  // No 3 s wait before a new group's first assignment (the mock's default,
  // like a broker's group.initial.rebalance.delay.ms): a development broker
  // serves one consumer at a time, and the wait only delays every start.
  rd_kafka_mock_group_initial_rebalance_delay_ms(impl_->cluster.get(), 0);
  impl_->bootstrap = rd_kafka_mock_cluster_bootstraps(impl_->cluster.get());
}

EmbeddedBroker::~EmbeddedBroker() = default;

const std::string& EmbeddedBroker::bootstrap_servers() const noexcept { return impl_->bootstrap; }

void EmbeddedBroker::create_topic(const std::string& name, int partitions) {
  const auto err = rd_kafka_mock_topic_create(impl_->cluster.get(), name.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    throw Error(errc::kafka, "cannot create topic " + name + ": " + rd_kafka_err2str(err));
  }
}

void* EmbeddedBroker::raw() const noexcept { return impl_->cluster.get(); }

}  // namespace kc
