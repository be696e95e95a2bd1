// Internal to kc_test_support (not for tests): small RAII holders for
// librdkafka handles, a client factory and the admin calls' options and
// results, shared by kafka.cpp, records.cpp and secure.cpp. kc's own handles are not used on purpose, so a bug in kc
// cannot hide itself in its own fixtures.
//
// make_client() throws kc::test::Failure when the client cannot be created.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "support/common.hpp"

namespace kc::test::rdk {

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const noexcept { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const noexcept { rd_kafka_event_destroy(e); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const noexcept { rd_kafka_AdminOptions_destroy(o); }
};
struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept { rd_kafka_topic_partition_list_destroy(l); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* e) const noexcept { rd_kafka_error_destroy(e); }
};
using RkPtr = std::unique_ptr<rd_kafka_t, RkDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using OptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter>;
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

inline int to_ms(std::chrono::milliseconds d) {
  return static_cast<int>(d.count());
}

// Admin options of `op` with `timeout` as the request timeout.
inline OptionsPtr admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout) {
  OptionsPtr opts(rd_kafka_AdminOptions_new(rk, op));
  char err[512];
  if (rd_kafka_AdminOptions_set_request_timeout(opts.get(), to_ms(timeout), err, sizeof err) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(std::string("admin request timeout: ") + err);
  }
  return opts;
}

// Waits for the admin result on `q`; throws on a timeout or a request-level error.
inline EventPtr admin_result(rd_kafka_queue_t* q, std::chrono::milliseconds timeout, const std::string& what) {
  EventPtr ev(rd_kafka_queue_poll(q, to_ms(timeout + std::chrono::seconds(5))));
  if (!ev) {
    throw Failure(what + ": no answer from the broker within " + std::to_string(timeout.count()) + " ms");
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(what + ": " + rd_kafka_event_error_string(ev.get()));
  }
  return ev;
}

// A client of `type`; `opaque` becomes the handle's opaque (callbacks get it).
inline RkPtr make_client(rd_kafka_type_t type, const std::string& bootstrap, const std::map<std::string, std::string>& props,
                  void (*dr_cb)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr, void* opaque = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw Failure("test client config " + k + "=" + v + ": " + err);
    }
  };
  set("bootstrap.servers", bootstrap);
  set("client.id", "kc-test-support");
  for (const auto& [k, v] : props) {
    set(k, v);
  }
  if (dr_cb != nullptr) {
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  }
  rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new frees the conf only on success
    throw Failure(std::string("cannot create a test client: ") + err);
  }
  return RkPtr(rk);
}

/// Delivery accounting for a test producer (opaque of make_client with
/// on_delivery); touched only by the producing thread (reports are served
/// inside rd_kafka_poll/flush on that thread).
struct Deliveries {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::string first_error;  ///< the first failure, with its error name and partition
};

inline void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<Deliveries*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++d->ok;
    return;
  }
  if (d->failed++ == 0) {
    d->first_error = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_message_produce_errstr(m) + " (partition " +
                     std::to_string(m->partition) + ")";
  }
}

}  // namespace kc::test::rdk
