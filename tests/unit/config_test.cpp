#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

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
