// librdkafka's log callback, routed to spdlog. Private to kc.
#pragma once

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

namespace kc::detail {

/// syslog level (librdkafka's) to spdlog's.
inline spdlog::level::level_enum spdlog_level(int syslog_level) noexcept {
  if (syslog_level <= 3) {
    return spdlog::level::err;
  }
  if (syslog_level == 4) {
    return spdlog::level::warn;
  }
  return syslog_level <= 6 ? spdlog::level::info : spdlog::level::debug;
}

/// For rd_kafka_conf_set_log_cb. Runs on whichever thread serves the log
/// (the poll thread with log.queue=true); never throws.
inline void log_to_spdlog(const rd_kafka_t*, int level, const char* fac, const char* buf) noexcept {
  try {
    spdlog::log(spdlog_level(level), "librdkafka {}: {}", fac, buf);
  } catch (...) {
  }
}

}  // namespace kc::detail
