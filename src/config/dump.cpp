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
#include <chrono>
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

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count());
}
std::string yes_no(bool b) {
  return b ? "true" : "false";
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) {
      out += ',';
    }
    out += s;
  }
  return out;
}

using Getter = std::string (*)(const ConsumerConfig&);

struct KeyValue {
  std::string_view key;
  Getter get;
};

// Every key of the key table (kKeys in config.cpp) with its current value in
// the text form set() takes. A key missing here shows up in effective() as
// "(not shown: ...)" and fails tests/unit/config_dump_test.cpp.
constexpr KeyValue kValues[] = {
    {"bootstrap_servers", [](const ConsumerConfig& c) { return c.bootstrap_servers; }},
    {"group", [](const ConsumerConfig& c) { return c.group; }},
    {"topics", [](const ConsumerConfig& c) { return join(c.topics); }},
    {"from_beginning", [](const ConsumerConfig& c) { return yes_no(c.from_beginning); }},
    {"commit.every_messages", [](const ConsumerConfig& c) { return std::to_string(c.commit.every_messages); }},
    {"commit.interval_ms", [](const ConsumerConfig& c) { return ms(c.commit.interval); }},
    {"shutdown.timeout_ms", [](const ConsumerConfig& c) { return ms(c.shutdown_timeout); }},
    {"max_messages", [](const ConsumerConfig& c) { return std::to_string(c.max_messages); }},
    {"idle_exit_ms", [](const ConsumerConfig& c) { return ms(c.idle_exit); }},
    {"retry.max_attempts", [](const ConsumerConfig& c) { return std::to_string(c.retry.max_attempts); }},
    {"retry.backoff_ms", [](const ConsumerConfig& c) { return ms(c.retry.backoff); }},
    {"retry.backoff_max_ms", [](const ConsumerConfig& c) { return ms(c.retry.backoff_max); }},
    {"retry.topics", [](const ConsumerConfig& c) { return yes_no(c.retry.use_topics); }},
    {"retry.topic_pattern", [](const ConsumerConfig& c) { return c.retry.topic_pattern; }},
    {"dlq.enabled", [](const ConsumerConfig& c) { return yes_no(c.dead_letter.enabled); }},
    {"dlq.topic", [](const ConsumerConfig& c) { return c.dead_letter.topic; }},
    {"dlq.headers",
     [](const ConsumerConfig& c) -> std::string {
       switch (c.dead_letter.headers) {
         case DeadLetterHeaders::kc: return "kc";
         case DeadLetterHeaders::spring: return "spring";
         case DeadLetterHeaders::both: return "both";
       }
       return "?";
     }},
    {"parallel.ordering",
     [](const ConsumerConfig& c) -> std::string {
       switch (c.parallel.ordering) {
         case Ordering::partition: return "partition";
         case Ordering::key: return "key";
         case Ordering::unordered: return "unordered";
       }
       return "?";
     }},
    {"parallel.concurrency", [](const ConsumerConfig& c) { return std::to_string(c.parallel.concurrency); }},
    {"parallel.max_in_flight", [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight); }},
    {"parallel.max_in_flight_per_partition",
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight_per_partition); }},
    {"parallel.max_buffered_per_partition",
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_buffered_per_partition); }},
    {"parallel.revoke_timeout_ms", [](const ConsumerConfig& c) { return ms(c.parallel.revoke_timeout); }},
    // ---- metrics and health (MetricsPolicy): keep in step with their entries in kKeys ----
    {"metrics.port",
     [](const ConsumerConfig& c) { return c.metrics.port ? std::to_string(*c.metrics.port) : std::string(); }},
    {"metrics.bind", [](const ConsumerConfig& c) { return c.metrics.bind; }},
    {"metrics.statistics_interval_ms", [](const ConsumerConfig& c) { return ms(c.metrics.statistics_interval); }},
    {"health.max_poll_gap_ms", [](const ConsumerConfig& c) { return ms(c.metrics.max_poll_gap); }},
    // ---- end of metrics and health ----
    {"schema_registry.url", [](const ConsumerConfig& c) { return c.schema_registry.url; }},
    {"schema_registry.basic_auth", [](const ConsumerConfig& c) { return c.schema_registry.basic_auth; }},
    {"schema_registry.bearer_token", [](const ConsumerConfig& c) { return c.schema_registry.bearer_token; }},
    {"schema_registry.ca_file", [](const ConsumerConfig& c) { return c.schema_registry.ca_file; }},
    {"schema_registry.cert_file", [](const ConsumerConfig& c) { return c.schema_registry.cert_file; }},
    {"schema_registry.key_file", [](const ConsumerConfig& c) { return c.schema_registry.key_file; }},
    {"schema_registry.key_password", [](const ConsumerConfig& c) { return c.schema_registry.key_password; }},
    {"schema_registry.verify_tls", [](const ConsumerConfig& c) { return yes_no(c.schema_registry.verify_tls); }},
    {"schema_registry.timeout_ms", [](const ConsumerConfig& c) { return ms(c.schema_registry.timeout); }},
    {"schema_registry.max_retries",
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.max_retries); }},
    {"schema_registry.cache_capacity",
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.cache_capacity); }},
};

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
  for (const auto key : detail::config_keys()) {
    const auto it =
        std::find_if(std::begin(kValues), std::end(kValues), [&](const KeyValue& kv) { return kv.key == key; });
    if (it == std::end(kValues)) {
      out.emplace_back(std::string(key), "(not shown: add the key to kValues in src/config/dump.cpp)");
      continue;
    }
    out.emplace_back(std::string(key), shown(key, it->get(*this)));
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
