// Between config.cpp (the key table, set()) and dump.cpp (effective(), the
// secret keys). Private to kc.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kc {
struct ConsumerConfig;
}

namespace kc::detail {

/// kc's own keys in the order of the key table (kKeys in config.cpp), each
/// with its current value in `config` in the text form set() takes.
std::vector<std::pair<std::string_view, std::string>> config_values(const ConsumerConfig& config);

/// Registers with kc::log::register_secret() what is secret in `value` when
/// `key` holds a secret: the whole value, and for schema_registry.basic_auth
/// also its password part; for schema_registry.url, the password of its
/// `user:password@` part. Thread-safe; throws std::bad_alloc only.
void register_config_secret(std::string_view key, std::string_view value);

}  // namespace kc::detail
