#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kc/config.hpp"
#include "kc/error.hpp"

using kc::ConsumerConfig;

namespace {

// Runs `fn`, expects a kc::Error with `code` whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, kc::errc code, const std::string& needle) {
  try {
    fn();
    FAIL() << "expected kc::Error containing '" << needle << "'";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::filesystem::path write_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Config, DefaultsMatchTheGuide) {
  ConsumerConfig c;
  EXPECT_EQ(c.commit.every_messages, 500u);
  EXPECT_EQ(c.commit.interval, std::chrono::milliseconds(5000));
  EXPECT_FALSE(c.from_beginning);
}

TEST(Config, UnknownKeyIsNamed) {
  ConsumerConfig c;
  expect_error([&] { c.set("comit.every_messages", "5"); }, kc::errc::config_unknown_key, "comit.every_messages");
}

TEST(Config, InvalidValueNamesKeyAndSource) {
  ConsumerConfig c;
  expect_error([&] { c.set("commit.every_messages", "lots", "flag --commit-every"); },
               kc::errc::config_invalid_value, "commit.every_messages (flag --commit-every)");
  expect_error([&] { c.set("commit.every_messages", "0"); }, kc::errc::config_invalid_value, "at least 1");
  expect_error([&] { c.set("from_beginning", "perhaps"); }, kc::errc::config_invalid_value, "from_beginning");
}

TEST(Config, AutoCommitIsRefused) {
  ConsumerConfig c;
  expect_error([&] { c.set("librdkafka.enable.auto.commit", "true"); }, kc::errc::config_forbidden,
               "librdkafka.enable.auto.commit");
  expect_error([&] { c.set("librdkafka.enable.auto.offset.store", "TRUE"); }, kc::errc::config_forbidden,
               "enable.auto.offset.store");
  c.set("librdkafka.enable.auto.commit", "false");  // saying what kc does anyway is fine
}

TEST(Config, UnknownLibrdkafkaPropertyFailsValidationByName) {
  ConsumerConfig c;
  c.group = "g";
  c.topics = {"t"};
  c.set("librdkafka.fetch.max.bytez", "1");
  expect_error([&] { c.validate(); }, kc::errc::config_unknown_key, "librdkafka.fetch.max.bytez");
}

TEST(Config, InvalidLibrdkafkaValueFailsValidationByName) {
  ConsumerConfig c;
  c.group = "g";
  c.topics = {"t"};
  c.set("librdkafka.fetch.max.bytes", "many");
  expect_error([&] { c.validate(); }, kc::errc::config_invalid_value, "librdkafka.fetch.max.bytes");
}

TEST(Config, MissingGroupAndTopicsAreNamed) {
  ConsumerConfig c;
  expect_error([&] { c.validate(); }, kc::errc::config_missing, "group");
  c.group = "g";
  expect_error([&] { c.validate(); }, kc::errc::config_missing, "topics");
}

TEST(Config, TopicsParseFromCommaList) {
  ConsumerConfig c;
  c.set("topics", "orders.placed, orders.updated,,^orders\\..*");
  ASSERT_EQ(c.topics.size(), 3u);
  EXPECT_EQ(c.topics[1], "orders.updated");
  EXPECT_EQ(c.topics[2], "^orders\\..*");
}

TEST(Config, FileEnvAndFlagsApplyInPrecedenceOrder) {
  const auto path = write_file("kc-config-test", R"(
group = "from-file"
topics = ["orders.placed", "orders.updated"]
from_beginning = true
[commit]
every_messages = 100
interval_ms = 2000
[librdkafka]
"fetch.max.bytes" = "1048576"
session.timeout.ms = 30000
)");
  ConsumerConfig c;
  c.load_file(path);
  EXPECT_EQ(c.group, "from-file");
  EXPECT_EQ(c.topics.size(), 2u);
  EXPECT_TRUE(c.from_beginning);
  EXPECT_EQ(c.commit.every_messages, 100u);
  EXPECT_EQ(c.librdkafka.at("fetch.max.bytes"), "1048576");
  EXPECT_EQ(c.librdkafka.at("session.timeout.ms"), "30000");

  const char* env[] = {"KC_GROUP=from-env", "KC_COMMIT_EVERY_MESSAGES=200", "KC_LIBRDKAFKA_FETCH_MAX_BYTES=2097152",
                       "KC_CACHE=/ignored", "PATH=/bin", nullptr};
  c.load_env(env);
  EXPECT_EQ(c.group, "from-env");
  EXPECT_EQ(c.commit.every_messages, 200u);
  EXPECT_EQ(c.librdkafka.at("fetch.max.bytes"), "2097152");
  EXPECT_EQ(c.commit.interval, std::chrono::milliseconds(2000));  // only the file set it

  c.set("group", "from-flag", "flag --group");
  EXPECT_EQ(c.group, "from-flag");
  std::filesystem::remove(path);
}

TEST(Config, UnknownEnvVariableIsNamed) {
  ConsumerConfig c;
  const char* env[] = {"KC_GRUOP=x", nullptr};
  expect_error([&] { c.load_env(env); }, kc::errc::config_unknown_key, "KC_GRUOP");
}

TEST(Config, FileErrorsNameFileLineAndKey) {
  const auto bad_key = write_file("kc-config-badkey", "group = \"g\"\n[commit]\nevry_messages = 3\n");
  ConsumerConfig c;
  expect_error([&] { c.load_file(bad_key); }, kc::errc::config_unknown_key, "commit.evry_messages");
  expect_error([&] { c.load_file(bad_key); }, kc::errc::config_unknown_key, ":3");
  const auto bad_syntax = write_file("kc-config-badsyntax", "group = \n");
  expect_error([&] { c.load_file(bad_syntax); }, kc::errc::config_invalid_value, bad_syntax.string());
  std::filesystem::remove(bad_key);
  std::filesystem::remove(bad_syntax);
}

TEST(Config, SchemaRegistrySettingsComeFromFileAndEnv) {
  const auto path = write_file("kc-config-registry", R"(
[schema_registry]
url = "https://registry.example:8081/apis/ccompat/v7"
timeout_ms = 2500
max_retries = 5
cache_capacity = 64
verify_tls = false
)");
  ConsumerConfig c;
  c.load_file(path);
  std::filesystem::remove(path);
  EXPECT_EQ(c.schema_registry.url, "https://registry.example:8081/apis/ccompat/v7");
  EXPECT_EQ(c.schema_registry.timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c.schema_registry.max_retries, 5);
  EXPECT_EQ(c.schema_registry.cache_capacity, 64u);
  EXPECT_FALSE(c.schema_registry.verify_tls);

  const char* env[] = {"KC_SCHEMA_REGISTRY_BASIC_AUTH=svc:pa55", "KC_SCHEMA_REGISTRY_CA_FILE=/etc/ca.pem",
                       "KC_SR_STATE=/tmp/ignored.state", nullptr};
  c.load_env(env);
  EXPECT_EQ(c.schema_registry.basic_auth, "svc:pa55");
  EXPECT_EQ(c.schema_registry.ca_file, "/etc/ca.pem");
}

TEST(Config, BadRegistrySecretIsNamedByKeyNotEchoed) {
  ConsumerConfig c;
  try {
    c.set("schema_registry.basic_auth", "no-colon-SECRET", "env KC_SCHEMA_REGISTRY_BASIC_AUTH");
    FAIL() << "expected an error";
  } catch (const kc::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("schema_registry.basic_auth"), std::string::npos) << what;
    EXPECT_EQ(what.find("SECRET"), std::string::npos) << what;
  }
  expect_error([&] { c.set("schema_registry.url", "registry:8081", "flag --schema-registry"); },
               kc::errc::config_invalid_value, "schema_registry.url");
}

TEST(Config, ParallelKeysFromSetAndEnvWithErrorsThatNameTheKey) {
  ConsumerConfig c;
  c.set("parallel.ordering", "key");
  c.set("parallel.max_in_flight", "250");
  EXPECT_EQ(c.parallel.ordering, kc::Ordering::key);
  EXPECT_EQ(c.parallel.max_in_flight, 250u);
  const char* env[] = {"KC_PARALLEL_CONCURRENCY=3", "KC_PARALLEL_REVOKE_TIMEOUT_MS=1500",
                       "KC_POSTGRES_STATE=/tmp/ignored.state", nullptr};
  c.load_env(env);
  EXPECT_EQ(c.parallel.concurrency, 3u);
  EXPECT_EQ(c.parallel.revoke_timeout, std::chrono::milliseconds(1500));
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"parallel.ordering", "by-key"}, {"parallel.max_in_flight", "0"}, {"parallel.concurrency", "-1"}}) {
    try {
      c.set(key, value, "flag");
      FAIL() << key << "=" << value << " accepted";
    } catch (const kc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

namespace {

// A configuration validate() accepts, filled on the struct.
ConsumerConfig valid_config() {
  ConsumerConfig c;
  c.group = "g";
  c.topics = {"orders"};
  return c;
}

std::map<std::string, std::string> effective_map(const ConsumerConfig& c) {
  const auto eff = c.effective(false);
  return {eff.begin(), eff.end()};
}

// One kc key, how to get it wrong through set() and on the struct.
struct BadValue {
  std::string key;
  // Text set() must refuse; nullopt: any text is a value (free text).
  std::optional<std::string> text;
  // Puts a value on the struct that validate() must refuse; empty: the
  // field's type admits no bad value (a bool, free text, an enum, uint16).
  std::function<void(ConsumerConfig&)> assign;
};

// Every kc key (a key missing here fails EveryKeyIsListedWithItsBadValues):
// a check set() makes must also be made by validate() on the struct.
std::vector<BadValue> bad_values() {
  using std::chrono::milliseconds;
  const milliseconds neg(-1);
  return {
      {"bootstrap_servers", std::nullopt, {}},  // free text; empty: the mock broker
      {"group", "", [](ConsumerConfig& c) { c.group.clear(); }},
      {"topics", std::nullopt, [](ConsumerConfig& c) { c.topics = {"orders", ""}; }},
      {"from_beginning", "perhaps", {}},
      {"commit.every_messages", "0", [](ConsumerConfig& c) { c.commit.every_messages = 0; }},
      {"commit.interval_ms", "0", [](ConsumerConfig& c) { c.commit.interval = milliseconds(0); }},
      {"shutdown.timeout_ms", "-1", [neg](ConsumerConfig& c) { c.shutdown_timeout = neg; }},
      {"max_messages", "many", {}},
      {"idle_exit_ms", "-1", [neg](ConsumerConfig& c) { c.idle_exit = neg; }},
      {"retry.max_attempts", "0", [](ConsumerConfig& c) { c.retry.max_attempts = 0; }},
      {"retry.max_attempts", "1001", [](ConsumerConfig& c) { c.retry.max_attempts = 1001; }},
      {"retry.max_attempts", "4294967297", [](ConsumerConfig& c) { c.retry.max_attempts = -1; }},
      {"retry.backoff_ms", "-1", [neg](ConsumerConfig& c) { c.retry.backoff = neg; }},
      {"retry.backoff_max_ms", "-1", [neg](ConsumerConfig& c) { c.retry.backoff_max = neg; }},
      {"retry.topics", "sometimes", {}},
      {"retry.topic_pattern", "{topic}.retry", [](ConsumerConfig& c) { c.retry.topic_pattern = "{topic}.retry"; }},
      {"dlq.enabled", "sometimes", {}},
      {"dlq.topic", "", {}},  // empty on the struct: the default pattern
      {"dlq.headers", "xml", {}},
      {"parallel.ordering", "by-key", {}},
      {"parallel.concurrency", "4097", [](ConsumerConfig& c) { c.parallel.concurrency = 4097; }},
      {"parallel.max_in_flight", "0", [](ConsumerConfig& c) { c.parallel.max_in_flight = 0; }},
      {"parallel.max_in_flight", "1000001", [](ConsumerConfig& c) { c.parallel.max_in_flight = 1000001; }},
      {"parallel.max_in_flight_per_partition", "1000001",
       [](ConsumerConfig& c) { c.parallel.max_in_flight_per_partition = 1000001; }},
      {"parallel.max_buffered_per_partition", "10000001",
       [](ConsumerConfig& c) { c.parallel.max_buffered_per_partition = 10000001; }},
      {"parallel.revoke_timeout_ms", "-1", [neg](ConsumerConfig& c) { c.parallel.revoke_timeout = neg; }},
      {"metrics.port", "65536", {}},  // a uint16_t on the struct
      {"metrics.bind", "", [](ConsumerConfig& c) { c.metrics.bind.clear(); }},
      {"metrics.statistics_interval_ms", "-1", [neg](ConsumerConfig& c) { c.metrics.statistics_interval = neg; }},
      {"health.max_poll_gap_ms", "-1", [neg](ConsumerConfig& c) { c.metrics.max_poll_gap = neg; }},
      {"health.fatal_after_ms", "-1", [neg](ConsumerConfig& c) { c.fatal_after = neg; }},
      {"auto_create_topics", "sometimes", {}},
      {"schema_registry.url", "registry:8081", [](ConsumerConfig& c) { c.schema_registry.url = "registry:8081"; }},
      {"schema_registry.basic_auth", "no-colon", [](ConsumerConfig& c) { c.schema_registry.basic_auth = "no-colon"; }},
      {"schema_registry.bearer_token", std::nullopt, {}},
      {"schema_registry.ca_file", std::nullopt, {}},
      {"schema_registry.cert_file", std::nullopt, {}},
      {"schema_registry.key_file", std::nullopt, {}},
      {"schema_registry.key_password", std::nullopt, {}},
      {"schema_registry.verify_tls", "maybe", {}},
      {"schema_registry.timeout_ms", "0", [](ConsumerConfig& c) { c.schema_registry.timeout = milliseconds(0); }},
      {"schema_registry.timeout_ms", "-1", [neg](ConsumerConfig& c) { c.schema_registry.timeout = neg; }},
      {"schema_registry.max_retries", "101", [](ConsumerConfig& c) { c.schema_registry.max_retries = 101; }},
      {"schema_registry.max_retries", "-1", [](ConsumerConfig& c) { c.schema_registry.max_retries = -1; }},
      {"schema_registry.cache_capacity", "0", [](ConsumerConfig& c) { c.schema_registry.cache_capacity = 0; }},
  };
}

}  // namespace

TEST(Config, EveryKeyIsListedWithItsBadValues) {
  const auto listed = bad_values();
  const auto keys = effective_map(ConsumerConfig{});
  for (const auto& [key, value] : keys) {
    const auto found =
        std::any_of(listed.begin(), listed.end(), [&key = key](const BadValue& b) { return b.key == key; });
    EXPECT_TRUE(found) << key << ": a new key; add its bad values to bad_values() (and its check to the key table)";
  }
  for (const auto& b : listed) {
    EXPECT_TRUE(keys.contains(b.key)) << b.key << ": not a key";
  }
}

TEST(Config, SetRefusesEachBadValueNamingKeyAndSource) {
  for (const auto& b : bad_values()) {
    if (!b.text) {
      continue;
    }
    ConsumerConfig c = valid_config();
    const auto before = effective_map(c);
    try {
      c.set(b.key, *b.text, "flag --x");
      ADD_FAILURE() << b.key << " = '" << *b.text << "' accepted by set()";
    } catch (const kc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(b.key + " (flag --x)"), std::string::npos) << e.what();
    }
    EXPECT_EQ(effective_map(c), before) << b.key << ": a refused set() changed the configuration";
  }
}

TEST(Config, ValidateRefusesOnTheStructWhatSetRefuses) {
  ASSERT_NO_THROW(valid_config().validate());
  for (const auto& b : bad_values()) {
    if (!b.assign) {
      continue;
    }
    ConsumerConfig c = valid_config();
    b.assign(c);
    try {
      c.validate();
      ADD_FAILURE() << b.key << ": a bad value on the struct passed validate()";
    } catch (const kc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(b.key + " (validate)"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, EveryDefaultPassesSetAndValidate) {
  ConsumerConfig c = valid_config();
  for (const auto& [key, value] : ConsumerConfig{}.effective(false)) {
    if (!value.empty()) {  // "": unset
      EXPECT_NO_THROW(c.set(key, value)) << key << " = " << value;
    }
  }
  EXPECT_NO_THROW(c.validate());
}

TEST(Config, RelationsBetweenKeysAreCheckedByValidateNamingTheKey) {
  auto c = valid_config();
  c.set("retry.backoff_ms", "60000");  // above the default cap (30000): fine until validate()
  expect_error([&] { c.validate(); }, kc::errc::config_invalid_value, "retry.backoff_max_ms (validate)");
  c.set("retry.backoff_max_ms", "120000");
  EXPECT_NO_THROW(c.validate());
  c.parallel.max_in_flight_per_partition = 50;
  c.parallel.max_buffered_per_partition = 10;
  expect_error([&] { c.validate(); }, kc::errc::config_invalid_value, "parallel.max_buffered_per_partition (validate)");
}

TEST(Config, DeadLetterTopicOnTheStructEnablesDeadLettersAsSetDoes) {
  ConsumerConfig by_set = valid_config();
  by_set.set("dlq.topic", "{topic}.dlq");
  ConsumerConfig by_struct = valid_config();
  by_struct.dead_letter.topic = "{topic}.dlq";
  EXPECT_EQ(effective_map(by_struct), effective_map(by_set));
  EXPECT_EQ(effective_map(by_struct).at("dlq.enabled"), "true");
  EXPECT_EQ(by_struct.dead_letter.topic_for("orders"), "orders.dlq");
  // Enabled, the topic is checked too: not the source topic itself.
  by_struct.dead_letter.topic = "{topic}";
  expect_error([&] { by_struct.validate(); }, kc::errc::config_invalid_value, "dlq.topic (validate)");
}

TEST(Config, DeadLettersOnAndOffFromEverySource) {
  {
    ConsumerConfig c;  // off by default, the default pattern ready
    EXPECT_FALSE(c.dead_letter.active());
    EXPECT_EQ(c.dead_letter.topic_for("orders"), "orders.dead-letter");
  }
  {
    ConsumerConfig c;
    c.set("dlq.enabled", "true");
    EXPECT_TRUE(c.dead_letter.active());
    EXPECT_EQ(c.dead_letter.topic_for("orders"), "orders.dead-letter");
  }
  {
    ConsumerConfig c;  // the struct, as a C++ user writes it
    c.dead_letter.enabled = true;
    EXPECT_TRUE(c.dead_letter.active());
    c.dead_letter.enabled = false;
    c.dead_letter.topic = "dead";
    EXPECT_TRUE(c.dead_letter.active());
    EXPECT_EQ(c.dead_letter.topic_for("orders"), "dead");
  }
  {
    // A file names the topic; the environment turns dead letters off.
    const auto path = write_file("kc-config-dlq", "[dlq]\ntopic = \"{topic}.dlq\"\n");
    ConsumerConfig c;
    c.load_file(path);
    std::filesystem::remove(path);
    EXPECT_TRUE(c.dead_letter.active());
    const char* env[] = {"KC_DLQ_ENABLED=false", nullptr};
    c.load_env(env);
    EXPECT_FALSE(c.dead_letter.active());
    EXPECT_EQ(effective_map(c).at("dlq.enabled"), "false");
    c.set("dlq.topic", "{topic}.dlq", "flag --dlq-topic");  // and a flag turns them on again
    EXPECT_TRUE(c.dead_letter.active());
    EXPECT_EQ(c.dead_letter.topic_for("orders"), "orders.dlq");
  }
  {
    // In one file both, in any order: the topic enables (as it always did).
    const auto path = write_file("kc-config-dlq2", "[dlq]\ntopic = \"dead\"\nenabled = false\n");
    ConsumerConfig c;
    c.load_file(path);
    std::filesystem::remove(path);
    EXPECT_TRUE(c.dead_letter.active());
  }
  {
    ConsumerConfig c;
    const char* env[] = {"KC_DLQ_TOPIC=dead", nullptr};
    c.load_env(env);
    EXPECT_TRUE(c.dead_letter.active());
    EXPECT_EQ(c.dead_letter.topic_for("orders"), "dead");
  }
}

TEST(Config, AutoCreateTopicsAndFatalAfterFromSetEnvAndFile) {
  ConsumerConfig c;
  EXPECT_TRUE(c.auto_create_topics);
  EXPECT_EQ(c.fatal_after, std::chrono::milliseconds(60000));
  EXPECT_EQ(effective_map(c).at("auto_create_topics"), "true");
  EXPECT_EQ(effective_map(c).at("health.fatal_after_ms"), "60000");
  const char* env[] = {"KC_AUTO_CREATE_TOPICS=false", "KC_HEALTH_FATAL_AFTER_MS=0", nullptr};
  c.load_env(env);
  EXPECT_FALSE(c.auto_create_topics);
  EXPECT_EQ(c.fatal_after, std::chrono::milliseconds(0));  // 0: never
  const auto path = write_file("kc-config-new", "auto_create_topics = true\n[health]\nfatal_after_ms = 15000\n");
  c.load_file(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(c.auto_create_topics);
  EXPECT_EQ(c.fatal_after, std::chrono::milliseconds(15000));
  expect_error([&] { c.set("health.fatal_after_ms", "soon", "env KC_HEALTH_FATAL_AFTER_MS"); },
               kc::errc::config_invalid_value, "health.fatal_after_ms (env KC_HEALTH_FATAL_AFTER_MS)");
}
