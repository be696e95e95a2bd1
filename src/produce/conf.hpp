// kc's producer configuration: the defaults and the checks every producer of
// kc shares (kc::Producer, hence the dead-letter writer, kc produce and kc
// dlq redrive; and the transactional Kafka sink, which owns its handle
// because transactions need one owner for init/begin/commit). Private to kc.
#pragma once

#include <librdkafka/rdkafka.h>

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "rdkafka/handles.hpp"

namespace kc::detail {

/// The guide's producer settings: no duplicates from producer retries
/// (idempotence), a record counts once every in-sync replica has it
/// (acks=all), cheap compression, small batches sent within 5 ms.
inline constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kProducerDefaults{{
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"compression.type", "lz4"},
    {"linger.ms", "5"},
    {"batch.size", "65536"},
}};

/// A new producer conf: bootstrap.servers (when not empty), kc's defaults,
/// then `extra_defaults` (the caller's own, e.g. the sink's
/// retry.backoff.ms), then `user` (which wins, aliases included: librdkafka
/// maps request.required.acks onto acks, and so on). A user who sets acks to
/// 0 or 1 without enable.idempotence gets no idempotence (librdkafka refuses
/// the combination). Throws kc::Error naming the key of a bad property.
inline ConfPtr producer_conf(const std::string& bootstrap, const std::map<std::string, std::string>& user,
                             const std::map<std::string, std::string>& extra_defaults = {}) {
  ConfPtr conf(rd_kafka_conf_new());
  if (!bootstrap.empty()) {
    conf_set(conf.get(), "bootstrap.servers", bootstrap);
  }
  // acks=0/1 from the user turns the idempotence default off, unless the
  // user asks for idempotence too (then librdkafka names the conflict).
  const auto weak_acks = [&](const char* key) {
    const auto it = user.find(key);
    return it != user.end() && it->second != "all" && it->second != "-1";
  };
  const bool idempotence =
      user.contains("enable.idempotence") || !(weak_acks("acks") || weak_acks("request.required.acks"));
  for (const auto& [k, v] : kProducerDefaults) {
    if (k != "enable.idempotence" || idempotence) {
      conf_set(conf.get(), std::string(k), std::string(v));
    }
  }
  for (const auto& [k, v] : extra_defaults) {
    conf_set(conf.get(), k, v);
  }
  for (const auto& [k, v] : user) {
    conf_set(conf.get(), k, v);
  }
  return conf;
}

}  // namespace kc::detail
