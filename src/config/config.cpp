#include "kc/config.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <functional>
#include <limits>
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

// Parsers: the text form to a value of the field's type. They refuse text
// that is no such value (a word for a number, a number the type cannot
// hold); what the value may be is the key's check, below.
std::uint64_t parse_uint(std::string_view key, std::string_view value, std::string_view source) {
  std::uint64_t out = 0;
  const auto* end = value.data() + value.size();
  const auto [p, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc{} || p != end || value.empty()) {
    invalid(key, source, "expected a non-negative integer, got '" + std::string(value) + "'");
  }
  return out;
}

// A count for a field of type N: refuses what N cannot hold, so that no
// value wraps into the range the key's check accepts.
template <class N>
N parse_count(std::string_view key, std::string_view value, std::string_view source) {
  const auto n = parse_uint(key, value, source);
  if (n > static_cast<std::uint64_t>(std::numeric_limits<N>::max())) {
    invalid(key, source,
            "expected an integer up to " + std::to_string(std::numeric_limits<N>::max()) + ", got '" +
                std::string(value) + "'");
  }
  return static_cast<N>(n);
}

std::chrono::milliseconds parse_ms(std::string_view key, std::string_view value, std::string_view source) {
  return std::chrono::milliseconds(parse_count<std::chrono::milliseconds::rep>(key, value, source));
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

// Checks shared by several keys.
void not_negative(std::chrono::milliseconds d, std::string_view key, std::string_view source) {
  if (d.count() < 0) {
    invalid(key, source, "must not be negative");
  }
}

void at_least_1(std::chrono::milliseconds d, std::string_view key, std::string_view source) {
  if (d.count() < 1) {
    invalid(key, source, "must be at least 1");
  }
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

// Parses the text form and assigns it; throws for text that is no value of
// the field's type.
using Setter = void (*)(ConsumerConfig&, std::string_view key, std::string_view value, std::string_view source);

// The key's own rule on its current value (range, form). set() runs it after
// the setter, validate() for every key, so a rule cannot hold for one path
// only. Rules between keys are in check_relations().
using Check = void (*)(const ConsumerConfig&, std::string_view key, std::string_view source);

// The check of a key whose field's every value is fine.
constexpr Check kAnyValue = nullptr;

// A key's current value in the text form set() takes (for effective()).
using Getter = std::string (*)(const ConsumerConfig&);

struct KeyDef {
  std::string_view key;
  Setter set;
  Check check;
  Getter get;
};

// The one list of kc's own keys: set(), validate(), the file reader, the env
// reader and effective() use it.
constexpr KeyDef kKeys[] = {
    {"bootstrap_servers",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.bootstrap_servers = std::string(v);
     },
     kAnyValue,  // empty: the embedded (mock) broker
     [](const ConsumerConfig& c) { return c.bootstrap_servers; }},
    {"group",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) { c.group = std::string(v); },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.group.empty()) {
         invalid(k, s, "must not be empty");
       }
     },
     [](const ConsumerConfig& c) { return c.group; }},
    {"topics",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) { c.topics = parse_list(v); },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       // set() drops empty items; the struct may hold one.
       if (std::find(c.topics.begin(), c.topics.end(), std::string()) != c.topics.end()) {
         invalid(k, s, "an empty topic name");
       }
     },
     [](const ConsumerConfig& c) { return join(c.topics); }},
    {"from_beginning",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.from_beginning = parse_bool(k, v, s);
     },
     kAnyValue,  // a bool
     [](const ConsumerConfig& c) { return yes_no(c.from_beginning); }},
    {"commit.every_messages",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.commit.every_messages = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.commit.every_messages == 0) {
         invalid(k, s, "must be at least 1");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.commit.every_messages); }},
    {"commit.interval_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.commit.interval = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { at_least_1(c.commit.interval, k, s); },
     [](const ConsumerConfig& c) { return ms(c.commit.interval); }},
    {"shutdown.timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.shutdown_timeout = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { not_negative(c.shutdown_timeout, k, s); },
     [](const ConsumerConfig& c) { return ms(c.shutdown_timeout); }},
    {"max_messages",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.max_messages = parse_uint(k, v, s);
     },
     kAnyValue,  // 0: never
     [](const ConsumerConfig& c) { return std::to_string(c.max_messages); }},
    {"idle_exit_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.idle_exit = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { not_negative(c.idle_exit, k, s); },
     [](const ConsumerConfig& c) { return ms(c.idle_exit); }},
    {"retry.max_attempts",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.max_attempts = parse_count<int>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.retry.max_attempts < 1 || c.retry.max_attempts > 1000) {
         invalid(k, s, "must be between 1 and 1000 (1: no retry)");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.retry.max_attempts); }},
    {"retry.backoff_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.backoff = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { not_negative(c.retry.backoff, k, s); },
     [](const ConsumerConfig& c) { return ms(c.retry.backoff); }},
    {"retry.backoff_max_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.backoff_max = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { not_negative(c.retry.backoff_max, k, s); },
     [](const ConsumerConfig& c) { return ms(c.retry.backoff_max); }},
    {"retry.topics",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.retry.use_topics = parse_bool(k, v, s);
     },
     kAnyValue,  // a bool
     [](const ConsumerConfig& c) { return yes_no(c.retry.use_topics); }},
    {"retry.topic_pattern",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.retry.topic_pattern = std::string(v);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.retry.topic_pattern.find("{n}") == std::string::npos) {
         invalid(k, s, "must contain {n} (the retry level), e.g. {topic}.retry.{n}");
       }
     },
     [](const ConsumerConfig& c) { return c.retry.topic_pattern; }},
    {"dlq.enabled",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       // Off clears the topic too (a named topic alone turns dead letters
       // on): an env or flag can turn off what a file named.
       c.dead_letter.enabled = parse_bool(k, v, s);
       if (!c.dead_letter.enabled) {
         c.dead_letter.topic.clear();
       }
     },
     kAnyValue,  // a bool
     [](const ConsumerConfig& c) { return yes_no(c.dead_letter.active()); }},
    {"dlq.topic",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       if (v.empty()) {
         invalid(k, s, "must not be empty (use {topic} for the source topic's name)");
       }
       c.dead_letter.topic = std::string(v);
       // active() would say so already; `enabled` too, for code that reads the field.
       c.dead_letter.enabled = true;
     },
     kAnyValue,  // empty on the struct: not named (the default pattern)
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
     kAnyValue,  // an enumerator
     [](const ConsumerConfig& c) -> std::string {
       switch (c.dead_letter.headers) {
         case DeadLetterHeaders::kc: return "kc";
         case DeadLetterHeaders::spring: return "spring";
         case DeadLetterHeaders::both: return "both";
       }
       return "?";
     }},
    {"auto_create_topics",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.auto_create_topics = parse_bool(k, v, s);
     },
     kAnyValue,  // a bool
     [](const ConsumerConfig& c) { return yes_no(c.auto_create_topics); }},
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
     kAnyValue,  // an enumerator
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
       c.parallel.concurrency = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.parallel.concurrency > 4096) {
         invalid(k, s, "must be at most 4096 worker threads (for more concurrent I/O use an asynchronous handler)");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.concurrency); }},
    {"parallel.max_in_flight",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.parallel.max_in_flight = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.parallel.max_in_flight == 0 || c.parallel.max_in_flight > 1000000) {
         invalid(k, s, "must be between 1 and 1000000");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight); }},
    {"parallel.max_in_flight_per_partition",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.parallel.max_in_flight_per_partition = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.parallel.max_in_flight_per_partition > 1000000) {
         invalid(k, s, "must be at most 1000000 (0: the same as parallel.max_in_flight)");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_in_flight_per_partition); }},
    {"parallel.max_buffered_per_partition",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.parallel.max_buffered_per_partition = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.parallel.max_buffered_per_partition > 10000000) {
         invalid(k, s, "must be at most 10000000 (0: automatic)");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.parallel.max_buffered_per_partition); }},
    {"parallel.revoke_timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.parallel.revoke_timeout = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       not_negative(c.parallel.revoke_timeout, k, s);
     },
     [](const ConsumerConfig& c) { return ms(c.parallel.revoke_timeout); }},
    {"metrics.port",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       const auto n = parse_uint(k, v, s);
       if (n > 65535) {  // the field's type: every std::uint16_t is a port
         invalid(k, s, "expected a TCP port (0-65535; 0: an ephemeral port)");
       }
       c.metrics.port = static_cast<std::uint16_t>(n);
     },
     kAnyValue,  // a std::uint16_t (the setter refuses more)
     [](const ConsumerConfig& c) { return c.metrics.port ? std::to_string(*c.metrics.port) : std::string(); }},
    {"metrics.bind",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) { c.metrics.bind = std::string(v); },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.metrics.bind.empty()) {
         invalid(k, s, "must not be empty (0.0.0.0: every interface)");
       }
     },
     [](const ConsumerConfig& c) { return c.metrics.bind; }},
    {"metrics.statistics_interval_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.metrics.statistics_interval = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       not_negative(c.metrics.statistics_interval, k, s);
     },
     [](const ConsumerConfig& c) { return ms(c.metrics.statistics_interval); }},
    {"health.max_poll_gap_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.metrics.max_poll_gap = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       not_negative(c.metrics.max_poll_gap, k, s);
     },
     [](const ConsumerConfig& c) { return ms(c.metrics.max_poll_gap); }},
    {"health.fatal_after_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.fatal_after = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) { not_negative(c.fatal_after, k, s); },
     [](const ConsumerConfig& c) { return ms(c.fatal_after); }},
    {"schema_registry.url",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.url = std::string(v);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       const auto& url = c.schema_registry.url;  // empty: no registry
       if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://")) {
         invalid(k, s, "expected an http:// or https:// URL");
       }
     },
     [](const ConsumerConfig& c) { return c.schema_registry.url; }},
    // Secrets: errors name the key, never the value.
    {"schema_registry.basic_auth",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.basic_auth = std::string(v);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       const auto& auth = c.schema_registry.basic_auth;
       if (!auth.empty() && auth.find(':') == std::string::npos) {
         invalid(k, s, "expected user:password");
       }
     },
     [](const ConsumerConfig& c) { return c.schema_registry.basic_auth; }},
    {"schema_registry.bearer_token",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.bearer_token = std::string(v);
     },
     kAnyValue,  // free text
     [](const ConsumerConfig& c) { return c.schema_registry.bearer_token; }},
    {"schema_registry.ca_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.ca_file = std::string(v);
     },
     kAnyValue,  // free text
     [](const ConsumerConfig& c) { return c.schema_registry.ca_file; }},
    {"schema_registry.cert_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.cert_file = std::string(v);
     },
     kAnyValue,  // free text
     [](const ConsumerConfig& c) { return c.schema_registry.cert_file; }},
    {"schema_registry.key_file",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.key_file = std::string(v);
     },
     kAnyValue,  // free text
     [](const ConsumerConfig& c) { return c.schema_registry.key_file; }},
    {"schema_registry.key_password",
     [](ConsumerConfig& c, std::string_view, std::string_view v, std::string_view) {
       c.schema_registry.key_password = std::string(v);
     },
     kAnyValue,  // free text
     [](const ConsumerConfig& c) { return c.schema_registry.key_password; }},
    {"schema_registry.verify_tls",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.schema_registry.verify_tls = parse_bool(k, v, s);
     },
     kAnyValue,  // a bool
     [](const ConsumerConfig& c) { return yes_no(c.schema_registry.verify_tls); }},
    {"schema_registry.timeout_ms",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.schema_registry.timeout = parse_ms(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       at_least_1(c.schema_registry.timeout, k, s);
     },
     [](const ConsumerConfig& c) { return ms(c.schema_registry.timeout); }},
    {"schema_registry.max_retries",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.schema_registry.max_retries = parse_count<int>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.schema_registry.max_retries < 0 || c.schema_registry.max_retries > 100) {
         invalid(k, s, "must be between 0 and 100");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.max_retries); }},
    {"schema_registry.cache_capacity",
     [](ConsumerConfig& c, std::string_view k, std::string_view v, std::string_view s) {
       c.schema_registry.cache_capacity = parse_count<std::size_t>(k, v, s);
     },
     [](const ConsumerConfig& c, std::string_view k, std::string_view s) {
       if (c.schema_registry.cache_capacity == 0) {
         invalid(k, s, "must be at least 1");
       }
     },
     [](const ConsumerConfig& c) { return std::to_string(c.schema_registry.cache_capacity); }},
};

// Rules between keys: validate() only, since a file, the environment and
// flags may set the two keys in either order.
void check_relations(const ConsumerConfig& c, std::string_view source) {
  if (c.retry.backoff_max < c.retry.backoff) {
    invalid("retry.backoff_max_ms", source, "must not be below retry.backoff_ms");
  }
  if (c.dead_letter.active()) {
    for (const auto& t : c.topics) {
      if (c.dead_letter.topic_for(t) == t) {
        invalid("dlq.topic", source, "'" + c.dead_letter.topic + "' names the source topic itself (" + t + ")");
      }
    }
  }
  const auto per_partition = c.parallel.max_in_flight_per_partition;
  if (c.parallel.max_buffered_per_partition != 0 &&
      c.parallel.max_buffered_per_partition < (per_partition != 0 ? per_partition : 1)) {
    invalid("parallel.max_buffered_per_partition", source, "must not be below parallel.max_in_flight_per_partition");
  }
}

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
      // Into a copy: a value that its check refuses leaves *this as it was.
      ConsumerConfig next = *this;
      def.set(next, key, value, source);
      if (def.check != nullptr) {
        def.check(next, key, source);
      }
      *this = std::move(next);
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
  constexpr std::string_view kSource = "validate";
  if (group.empty()) {
    throw Error(errc::config_missing, "group (validate): a consumer group is required");
  }
  if (topics.empty()) {
    throw Error(errc::config_missing, "topics (validate): at least one topic (or ^regex) is required");
  }
  for (const auto& def : kKeys) {
    if (def.check != nullptr) {
      def.check(*this, def.key, kSource);
    }
  }
  check_relations(*this, kSource);
  // librdkafka knows its own properties best: apply them to a scratch conf.
  detail::ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [k, v] : librdkafka) {
    check_owned_property(k, v, kSource);  // the map may have been filled directly
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
