// ConsumerConfig::effective() and the secret keys.
//
// Why librdkafka's own list of sensitive properties: librdkafka redacts
// exactly these in its debug=conf dump (checked against 2.14.2 by setting
// every property and reading the dump), so kc hides no less than librdkafka
// does. Names that say password, secret or passphrase count as well, for
// properties added after that list was taken.
//
// Why user names, file paths and CA certificates are redacted in dumps but
// not masked in logs: they are sensitive enough for librdkafka to hide, but
// masking them in every line ("admin", a path in an error about that very
// file) would hide what an operator needs to read. Passwords, tokens and keys
// are masked everywhere.
#include <algorithm>
#include <string>

#include "config/keys.hpp"
#include "kc/config.hpp"
#include "kc/log.hpp"

namespace kc {
namespace {

constexpr std::string_view kRdkafkaPrefix = "librdkafka.";
constexpr std::string_view kRedacted = "[redacted]";

struct SecretProperty {
  std::string_view name;
  bool mask_in_logs;  // a secret proper, not an identity or a file path
};

// librdkafka 2.14.2's sensitive properties (see the top of the file).
constexpr SecretProperty kRdkafkaSecrets[] = {
    {"sasl.password", true},
    {"sasl.username", false},
    {"ssl.key.password", true},
    {"ssl.key.pem", true},
    {"ssl.key.location", false},
    {"ssl.keystore.password", true},
    {"ssl.ca.pem", false},
    {"sasl.oauthbearer.config", true},
    {"sasl.oauthbearer.client.secret", true},
    {"sasl.oauthbearer.assertion.private.key.file", false},
    {"sasl.oauthbearer.assertion.private.key.passphrase", true},
    {"sasl.oauthbearer.assertion.private.key.pem", true},
};

constexpr std::string_view kKcSecrets[] = {
    "schema_registry.basic_auth",
    "schema_registry.bearer_token",
    "schema_registry.key_password",
};

// Whether `key` is secret, and whether its value is masked in logs.
bool classify(std::string_view key, bool& mask_in_logs) noexcept {
  mask_in_logs = true;
  if (key.starts_with(kRdkafkaPrefix)) {
    const auto prop = key.substr(kRdkafkaPrefix.size());
    for (const auto& s : kRdkafkaSecrets) {
      if (s.name == prop) {
        mask_in_logs = s.mask_in_logs;
        return true;
      }
    }
    return prop.find("password") != std::string_view::npos || prop.find("secret") != std::string_view::npos ||
           prop.find("passphrase") != std::string_view::npos;
  }
  return std::find(std::begin(kKcSecrets), std::end(kKcSecrets), key) != std::end(kKcSecrets);
}

// The `user:password@` part of a URL: the offsets of the password, or npos.
std::pair<std::size_t, std::size_t> url_password(std::string_view url) noexcept {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return {std::string_view::npos, 0};
  }
  const auto start = scheme + 3;
  const auto end = url.find_first_of("/?#", start);
  const auto authority = url.substr(start, end == std::string_view::npos ? url.size() - start : end - start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return {std::string_view::npos, 0};
  }
  const auto colon = authority.find(':');
  if (colon == std::string_view::npos || colon > at) {
    return {std::string_view::npos, 0};
  }
  return {start + colon + 1, at - colon - 1};
}

}  // namespace

bool ConsumerConfig::is_secret_key(std::string_view key) noexcept {
  bool mask = false;
  return classify(key, mask);
}

std::vector<std::pair<std::string, std::string>> ConsumerConfig::effective(bool redact) const {
  std::vector<std::pair<std::string, std::string>> out;
  const auto shown = [redact](std::string_view key, std::string value) {
    if (!redact || value.empty()) {
      return value;
    }
    if (is_secret_key(key)) {
      return std::string(kRedacted);
    }
    if (key == "schema_registry.url") {
      if (const auto [at, n] = url_password(value); at != std::string::npos) {
        value.replace(at, n, kRedacted);
      }
    }
    return value;
  };
  for (auto& [key, value] : detail::config_values(*this)) {
    out.emplace_back(std::string(key), shown(key, std::move(value)));
  }
  for (const auto& [prop, value] : librdkafka) {  // a std::map: sorted
    std::string key = std::string(kRdkafkaPrefix) + prop;
    auto v = shown(key, value);
    out.emplace_back(std::move(key), std::move(v));
  }
  return out;
}

namespace detail {

void register_config_secret(std::string_view key, std::string_view value) {
  if (value.empty()) {
    return;
  }
  bool mask = false;
  if (classify(key, mask)) {
    if (mask) {
      log::register_secret(value);
    }
    if (key == "schema_registry.basic_auth") {
      if (const auto colon = value.find(':'); colon != std::string_view::npos) {
        log::register_secret(value.substr(colon + 1));
      }
    }
    return;
  }
  if (key == "schema_registry.url") {
    if (const auto [at, n] = url_password(value); at != std::string_view::npos) {
      log::register_secret(value.substr(at, n));
    }
  }
}

}  // namespace detail
}  // namespace kc
