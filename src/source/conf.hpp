// The librdkafka configuration kc builds for a consumer, as a pure function
// of kc's configuration: what kc sets, in which order, and what the user may
// override. Private to kc; src/source/consumer.cpp applies it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kc/config.hpp"

namespace kc::detail {

/// librdkafka properties in the order they are to be set (a later one wins).
using ConfList = std::vector<std::pair<std::string, std::string>>;

/// The consumer's properties: bootstrap.servers (`bootstrap`, which may be
/// the embedded broker's), group.id, auto.offset.reset, kc's defaults
/// (cooperative-sticky unless KIP-848 or the user chose a strategy; short
/// fetch backoffs; read_committed; statistics for /metrics), then the user's
/// `librdkafka` map (which wins over the defaults), then what kc owns and
/// at-least-once depends on (no auto commit, no auto offset store, logs on a
/// queue). Does not check values: librdkafka does when they are set, and
/// ConsumerConfig::validate() before. Pure; any thread; throws bad_alloc.
ConfList consumer_conf(const ConsumerConfig& config, std::string_view bootstrap);

/// The value `list` ends with for `key`, or nullopt when it sets none.
std::optional<std::string> conf_value(const ConfList& list, std::string_view key);

}  // namespace kc::detail
