#include "kc/config.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <functional>
#include <string>
#include <toml++/toml.h>

#include "config/keys.hpp"
#include "kc/error.hpp"
#include "rdkafka/handles.hpp"

namespace kc {
namespace {

constexpr std::string_view kRdkafkaPrefix = "librdkafka.";

[[noreturn]] void invalid(std::string_view key, std::string_view source, std::string_view why) {
  throw Error(errc::config_invalid_value,
              std::string(key) + " (" + std::string(source) + "): " + std::string(why));
}

std::uint64_t parse_uint(std::string_view key, std::string_view value, std::string_view source) {
  std::uint64_t out = 0;
  const auto* end = value.data() + value.size();
  const auto [p, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc{} || p != end || value.empty()) {
    invalid(key, source, "expected a non-negative integer, got '" + std::string(value) + "'");
  }
  return out;
}

bool parse_bool(std::string_view key, std::string_view value, std::string_view source) {
  std::string v(value);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "true" || v == "1" || v == "yes" || v == "on") {
    return true;
  }
  if (v == "false" || v == "0" || v == "no" || v == "off") {
    return false;
  }
  invalid(key, source, "expected true or false, got '" + std::string(value) + "'");
}

std::vector<std::string> parse_list(std::string_view value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) {
      comma = value.size();
    }
    std::string item(value.substr(start, comma - start));
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) {
      out.push_back(std::move(item));
    }
    start = comma + 1;
  }
  return out;
}

// The text forms of values, for the getters.
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

using Setter = void (*)(ConsumerConfig&, std::string_view key, std::string_view value, std::string_view source);

// A key's current value in the text form set() takes (for effective()).
using Getter = std::string (*)(const ConsumerConfig&);

struct KeyDef {
  std::string_view key;
  Setter set;
  Getter get;
};

// The one list of kc's own keys: set(), the file reader, the env reader and
// effective() use it.
constexpr KeyDef kKeys[] = {
    {"bootstrap_servers",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.bootstrap_servers = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.bootstrap_servers; }},
    {"group",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v.empty()) {
         invalid(k, s, "must not be empty");
       }
       c.group = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.group; }},
    {"topics",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) { c.topics = parse_list(v); },
     [](const ConsumerConfig& c) { return join(c.topics); }},
    {"from_beginning",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.from_beginning = parse_bool(k, v, s);
     },
     [](const ConsumerConfig& c) { return yes_no(c.from_beginning); }},
    {"commit.every_messages",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0) {
         invalid(k, s, "must be at least 1");
       }
       c.commit.every_messages = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.commit.every_messages); }},
    {"commit.interval_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0) {
         invalid(k, s, "must be at least 1");
       }
       c.commit.interval = std::chrono::milliseconds(n);
     },
     [](const ConsumerConfig& c) { return ms(c.commit.interval); }},
    {"shutdown.timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.shutdown_timeout = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.shutdown_timeout); }},
    {"max_messages",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.max_messages = parse_uint(k, v, s);
     },
     [](const ConsumerConfig& c) { return std::to_string(c.max_messages); }},
    {"idle_exit_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.idle_exit = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.idle_exit); }},
    {"retry.max_attempts",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0 || n > 1000) {
         invalid(k, s, "must be between 1 and 1000 (1: no retry)");
       }
       c.retry.max_attempts = static_cast<int>(n);
     },
     [](const ConsumerConfig& c) { return std::to_string(c.retry.max_attempts); }},
    {"retry.backoff_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.backoff = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.retry.backoff); }},
    {"retry.backoff_max_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.backoff_max = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.retry.backoff_max); }},
    {"retry.topics",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.use_topics = parse_bool(k, v, s);
     },
     [](const ConsumerConfig& c) { return yes_no(c.retry.use_topics); }},
    {"retry.topic_pattern",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v.find("{n}") == std::string_view::npos) {
         invalid(k, s, "must contain {n} (the retry level), e.g. {topic}.retry.{n}");
       }
       c.retry.topic_pattern = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.retry.topic_pattern; }},
    {"dlq.enabled",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.dead_letter.enabled = parse_bool(k, v, s);
     },
     [](const ConsumerConfig& c) { return yes_no(c.dead_letter.enabled); }},
    {"dlq.topic",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v.empty()) {
         invalid(k, s, "must not be empty (use {topic} for the source topic's name)");
       }
       c.dead_letter.topic = std::string(v);
       c.dead_letter.enabled = true;
     },
     [](const ConsumerConfig& c) { return c.dead_letter.topic; }},
    {"dlq.headers",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v == "kc") {
         c.dead_letter.headers = DeadLetterHeaders::kc;
       } else if (v == "spring") {
         c.dead_letter.headers = DeadLetterHeaders::spring;
       } else if (v == "both") {
         c.dead_letter.headers = DeadLetterHeaders::both;
       } else {
         invalid(k, s, "expected kc, spring or both, got '" + std::string(v) + "'");
       }
     },
     [](const ConsumerConfig& c) -> std::string {
       switch (c.dead_letter.headers) {
         case DeadLetterHeaders::kc: return "kc";
         case DeadLetterHeaders::spring: return "spring";
         case DeadLetterHeaders::both: return "both";
       }
       return "?";
     }},
    {"parallel.ordering",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v == "partition") {
         c.parallel.ordering = Ordering::partition;
       } else if (v == "key") {
         c.parallel.ordering = Ordering::key;
       } else if (v == "unordered") {
         c.parallel.ordering = Ordering::unordered;
       } else {
         invalid(k, s, "expected partition, key or unordered, got '" + std::string(v) + "'");
       }
     },
     [](const ConsumerConfig& c) -> std::string {
       switch (c.parallel.ordering) {
         case Ordering::partition: return "partition";
         case Ordering::key: return "key";
         case Ordering::unordered: return "unordered";
       }
       return "?";
     }},
    {"parallel.concurrency",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 4096) {
         invalid(k, s, "must be at most 4096 worker threads (for more concurrent I/O use an asynchronous handler)");
       }
       c.parallel.concurrency = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.concurrency); }},
    {"parallel.max_in_flight",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0 || n > 1000000) {
         invalid(k, s, "must be between 1 and 1000000");
       }
       c.parallel.max_in_flight = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight); }},
    {"parallel.max_in_flight_per_partition",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 1000000) {
         invalid(k, s, "must be at most 1000000 (0: the same as parallel.max_in_flight)");
       }
       c.parallel.max_in_flight_per_partition = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight_per_partition); }},
    {"parallel.max_buffered_per_partition",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 10000000) {
         invalid(k, s, "must be at most 10000000 (0: automatic)");
       }
       c.parallel.max_buffered_per_partition = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_buffered_per_partition); }},
    {"parallel.revoke_timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.parallel.revoke_timeout = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.parallel.revoke_timeout); }},
    {"metrics.port",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 65535) {
         invalid(k, s, "expected a TCP port (0-65535; 0: an ephemeral port)");
       }
       c.metrics.port = static_cast<std::uint16_t>(n);
     },
     [](const ConsumerConfig& c) { return c.metrics.port ? std::to_string(*c.metrics.port) : std::string(); }},
    {"metrics.bind",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v.empty()) {
         invalid(k, s, "must not be empty (0.0.0.0: every interface)");
       }
       c.metrics.bind = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.metrics.bind; }},
    {"metrics.statistics_interval_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.metrics.statistics_interval = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.metrics.statistics_interval); }},
    {"health.max_poll_gap_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.metrics.max_poll_gap = std::chrono::milliseconds(parse_uint(k, v, s));
     },
     [](const ConsumerConfig& c) { return ms(c.metrics.max_poll_gap); }},
    {"schema_registry.url",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (!v.starts_with("http://") && !v.starts_with("https://")) {
         invalid(k, s, "expected an http:// or https:// URL");
       }
       c.schema_registry.url = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.url; }},
    // Secrets: errors name the key, never the value.
    {"schema_registry.basic_auth",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (!v.empty() && v.find(':') == std::string_view::npos) {
         invalid(k, s, "expected user:password");
       }
       c.schema_registry.basic_auth = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.basic_auth; }},
    {"schema_registry.bearer_token",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.bearer_token = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.bearer_token; }},
    {"schema_registry.ca_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.ca_file = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.ca_file; }},
    {"schema_registry.cert_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.cert_file = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.cert_file; }},
    {"schema_registry.key_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.key_file = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.key_file; }},
    {"schema_registry.key_password",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.key_password = std::string(v);
     },
     [](const ConsumerConfig& c) { return c.schema_registry.key_password; }},
    {"schema_registry.verify_tls",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.schema_registry.verify_tls = parse_bool(k, v, s);
     },
     [](const ConsumerConfig& c) { return yes_no(c.schema_registry.verify_tls); }},
    {"schema_registry.timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0) {
         invalid(k, s, "must be at least 1");
       }
       c.schema_registry.timeout = std::chrono::milliseconds(n);
     },
     [](const ConsumerConfig& c) { return ms(c.schema_registry.timeout); }},
    {"schema_registry.max_retries",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 100) {
         invalid(k, s, "must be at most 100");
       }
       c.schema_registry.max_retries = static_cast<int>(n);
     },
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.max_retries); }},
    {"schema_registry.cache_capacity",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n == 0) {
         invalid(k, s, "must be at least 1");
       }
       c.schema_registry.cache_capacity = n;
     },
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.cache_capacity); }},
};

// Properties kc owns: at-least-once depends on them being off.
void check_owned_property(std::string_view prop, std::string_view value, std::string_view source) {
  if (prop == "enable.auto.commit" || prop == "enable.auto.offset.store") {
    std::string key = std::string(kRdkafkaPrefix) + std::string(prop);
    std::string v(value);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (v != "false") {
      throw Error(errc::config_forbidden,
                  key + " (" + std::string(source) +
                      "): kc commits only what is done (at-least-once); auto commit and auto "
                      "offset store must stay false, use commit.every_messages / commit.interval_ms");
    }
  }
}

std::string env_name_of(std::string_view key) {
  std::string out = "KC_";
  for (char ch : key) {
    out.push_back(ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  }
  return out;
}

bool is_script_variable(std::string_view name) {
  return name == "KC_CACHE" || name.starts_with("KC_KAFKA_") || name.starts_with("KC_TEST_") ||
         name.starts_with("KC_BENCH_") || name.starts_with("KC_SR_") || name.starts_with("KC_FUZZ_") ||
         name.starts_with("KC_POSTGRES_") || name == "KC_CONFLUENT_KAFKA_VERSION" ||
         name.starts_with("KC_LIBRDKAFKA_PREFERRED") || name == "KC_LIBRDKAFKA_MIN" || name == "KC_DEBIAN_MIRROR" ||
         name == "KC_LOG_FORMAT" || name == "KC_LOG_LEVEL";  // the kc tool's (tools/kc/main.cpp)
}

std::string toml_to_text(const toml::node& node, std::string_view key, std::string_view source) {
  if (const auto* s = node.as_string()) {
    return s->get();
  }
  if (const auto* i = node.as_integer()) {
    return std::to_string(i->get());
  }
  if (const auto* b = node.as_boolean()) {
    return b->get() ? "true" : "false";
  }
  if (const auto* a = node.as_array()) {
    std::string out;
    for (const auto& el : *a) {
      if (!out.empty()) {
        out += ',';
      }
      out += toml_to_text(el, key, source);
    }
    return out;
  }
  invalid(key, source, "unsupported TOML value type (use a string, integer, boolean or array)");
}

void flatten(ConsumerConfig& cfg, const toml::table& table, const std::string& prefix, const std::string& file) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    const std::string source = "file " + file + ":" + std::to_string(node.source().begin.line);
    if (const auto* sub = node.as_table(); sub != nullptr) {
      flatten(cfg, *sub, key + ".", file);
      continue;
    }
    cfg.set(key, toml_to_text(node, key, source), source);
  }
}

}  // namespace

void ConsumerConfig::set(std::string_view key, std::string_view value, std::string_view source) {
  // Before any validation: a secret that is refused must stay masked too.
  detail::register_config_secret(key, value);
  if (key.starts_with(kRdkafkaPrefix)) {
    const auto prop = key.substr(kRdkafkaPrefix.size());
    if (prop.empty()) {
      throw Error(errc::config_unknown_key,
                  std::string(key) + " (" + std::string(source) + "): empty librdkafka property name");
    }
    check_owned_property(prop, value, source);
    librdkafka[std::string(prop)] = std::string(value);
    return;
  }
  for (const auto& def : kKeys) {
    if (def.key == key) {
      def.set(*this, key, value, source);
      return;
    }
  }
  throw Error(errc::config_unknown_key,
              std::string(key) + " (" + std::string(source) +
                  "): unknown configuration key (librdkafka properties go under librdkafka.)");
}

void ConsumerConfig::load_file(const std::filesystem::path& path) {
  toml::table table;
  try {
    table = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw Error(errc::config_invalid_value, "file " + path.string() + ":" + std::to_string(e.source().begin.line) +
                                                ": " + std::string(e.description()));
  }
  flatten(*this, table, "", path.string());
}

void ConsumerConfig::load_env(const char* const* envp) {
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    const std::string_view entry(*envp);
    if (!entry.starts_with("KC_")) {
      continue;
    }
    const auto eq = entry.find('=');
    const auto name = entry.substr(0, eq);
    const auto value = eq == std::string_view::npos ? std::string_view{} : entry.substr(eq + 1);
    if (is_script_variable(name)) {
      continue;
    }
    const std::string source = "env " + std::string(name);
    if (name.starts_with("KC_LIBRDKAFKA_")) {
      std::string prop(name.substr(14));
      for (auto& ch : prop) {
        ch = ch == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      set(std::string(kRdkafkaPrefix) + prop, value, source);
      continue;
    }
    bool known = false;
    for (const auto& def : kKeys) {
      if (env_name_of(def.key) == name) {
        set(def.key, value, source);
        known = true;
        break;
      }
    }
    if (!known) {
      throw Error(errc::config_unknown_key, std::string(name) +
                                                " (env): unknown KC_ variable; kc's keys are e.g. KC_GROUP, "
                                                "KC_TOPICS, KC_COMMIT_EVERY_MESSAGES, KC_LIBRDKAFKA_<PROP>");
    }
  }
}

void ConsumerConfig::validate() const {
  if (group.empty()) {
    throw Error(errc::config_missing, "group: a consumer group is required");
  }
  if (topics.empty()) {
    throw Error(errc::config_missing, "topics: at least one topic (or ^regex) is required");
  }
  if (retry.backoff_max < retry.backoff) {
    throw Error(errc::config_invalid_value, "retry.backoff_max_ms: must not be below retry.backoff_ms");
  }
  if (dead_letter.enabled) {
    for (const auto& t : topics) {
      if (dead_letter.topic_for(t) == t) {
        throw Error(errc::config_invalid_value,
                    "dlq.topic: '" + dead_letter.topic + "' names the source topic itself (" + t + ")");
      }
    }
  }
  if (parallel.max_buffered_per_partition != 0 &&
      parallel.max_buffered_per_partition <
          (parallel.max_in_flight_per_partition != 0 ? parallel.max_in_flight_per_partition : 1)) {
    throw Error(errc::config_invalid_value,
                "parallel.max_buffered_per_partition: must not be below parallel.max_in_flight_per_partition");
  }
  // librdkafka knows its own properties best: apply them to a scratch conf.
  detail::ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [k, v] : librdkafka) {
    check_owned_property(k, v, "validate");  // the map may have been filled directly
    detail::conf_set(conf.get(), k, v);
  }
}

namespace detail {

std::vector<std::pair<std::string_view, std::string>> config_values(const ConsumerConfig& config) {
  std::vector<std::pair<std::string_view, std::string>> out;
  for (const auto& def : kKeys) {
    out.emplace_back(def.key, def.get(config));
  }
  return out;
}

}  // namespace detail

}  // namespace kc
