// Between config.cpp (the key table, set()) and dump.cpp (effective(), the
// secret keys). Private to kc.
#pragma once

#include <string_view>
#include <vector>

namespace kc::detail {

/// kc's own keys in the order of the key table (kKeys in config.cpp).
std::vector<std::string_view> config_keys();

/// Registers with kc::log::register_secret() what is secret in `value` when
/// `key` holds a secret: the whole value, and for schema_registry.basic_auth
/// also its password part; for schema_registry.url, the password of its
/// `user:password@` part. Thread-safe; throws std::bad_alloc only.
void register_config_secret(std::string_view key, std::string_view value);

}  // namespace kc::detail
