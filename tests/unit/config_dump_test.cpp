// ConsumerConfig::effective() and the secret keys (src/config/dump.cpp):
// every key shown with its default, values that set() reads back, every
// secret redacted, secrets registered for log masking, errors that never
// quote a secret.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "kc/config.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"

using kc::ConsumerConfig;

namespace {

constexpr std::string_view kCanary = "kc-dump-canary-3e1d";

std::map<std::string, std::string> as_map(const std::vector<std::pair<std::string, std::string>>& v) {
  return {v.begin(), v.end()};
}

// Every librdkafka property that librdkafka 2.14.2 redacts in its own
// debug=conf dump.
const std::vector<std::string> kSensitiveProperties = {
    "sasl.password",
    "sasl.username",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.key.location",
    "ssl.keystore.password",
    "ssl.ca.pem",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
};

TEST(ConfigDump, ShowsEveryKeyWithItsDefault) {
  const ConsumerConfig c;
  const auto eff = c.effective();
  ASSERT_FALSE(eff.empty());
  EXPECT_EQ(eff.front().first, "bootstrap_servers");
  for (const auto& [k, v] : eff) {
    EXPECT_EQ(v.find("(not shown"), std::string::npos) << k;
    EXPECT_FALSE(k.starts_with("librdkafka.")) << k;
  }
  const auto m = as_map(eff);
  EXPECT_EQ(m.size(), eff.size()) << "a key shown twice";
  EXPECT_EQ(m.at("commit.every_messages"), "500");
  EXPECT_EQ(m.at("commit.interval_ms"), "5000");
  EXPECT_EQ(m.at("shutdown.timeout_ms"), "10000");
  EXPECT_EQ(m.at("retry.max_attempts"), "3");
  EXPECT_EQ(m.at("retry.topic_pattern"), "{topic}.retry.{n}");
  EXPECT_EQ(m.at("dlq.enabled"), "false");
  EXPECT_EQ(m.at("dlq.topic"), "");  // unset: the default pattern, {topic}.dead-letter
  EXPECT_EQ(m.at("auto_create_topics"), "true");
  EXPECT_EQ(m.at("health.fatal_after_ms"), "60000");
  EXPECT_EQ(m.at("dlq.headers"), "kc");
  EXPECT_EQ(m.at("parallel.ordering"), "partition");
  EXPECT_EQ(m.at("schema_registry.verify_tls"), "true");
  EXPECT_EQ(m.at("group"), "");
  // Keys keep the key table's order: commit before retry before schema_registry.
  const auto pos = [&](std::string_view key) {
    return std::find_if(eff.begin(), eff.end(), [&](const auto& kv) { return kv.first == key; }) - eff.begin();
  };
  EXPECT_LT(pos("commit.every_messages"), pos("retry.max_attempts"));
  EXPECT_LT(pos("retry.max_attempts"), pos("schema_registry.url"));
}

TEST(ConfigDump, ValuesReadBackThroughSet) {
  ConsumerConfig c;
  c.set("group", "g1");
  c.set("topics", "a, b,^c.*");
  c.set("from_beginning", "true");
  c.set("commit.every_messages", "7");
  c.set("dlq.headers", "both");
  c.set("parallel.ordering", "key");
  c.set("parallel.concurrency", "8");
  c.set("librdkafka.fetch.max.bytes", "1048576");
  const auto eff = c.effective(false);
  for (const auto& [k, v] : eff) {
    if (v.empty()) {
      continue;  // an unset optional
    }
    ConsumerConfig d;
    ASSERT_NO_THROW(d.set(k, v)) << k << " = " << v;
    EXPECT_EQ(as_map(d.effective(false)).at(k), v) << k;
  }
  const auto m = as_map(eff);
  EXPECT_EQ(m.at("topics"), "a,b,^c.*");
  EXPECT_EQ(m.at("librdkafka.fetch.max.bytes"), "1048576");
  EXPECT_EQ(eff.back().first, "librdkafka.fetch.max.bytes");
}

// What kc config check prints reads back as a file: a TOML table's keys in
// sorted order, the unset ones ("") left out.
TEST(ConfigDump, EffectiveReadsBackToTheSameConfiguration) {
  const auto read_back = [](const ConsumerConfig& c) {
    ConsumerConfig d;
    for (const auto& [k, v] : as_map(c.effective(false))) {
      if (!v.empty()) {
        d.set(k, v, "read back");
      }
    }
    return d;
  };
  ConsumerConfig off;
  ConsumerConfig on_by_default;
  on_by_default.set("dlq.enabled", "true");
  ConsumerConfig on_by_topic;
  on_by_topic.dead_letter.topic = "{topic}.dlq";
  ConsumerConfig off_again;
  off_again.set("dlq.topic", "{topic}.dlq");
  off_again.set("dlq.enabled", "false");
  for (const auto* c : {&off, &on_by_default, &on_by_topic, &off_again}) {
    const auto want = as_map(c->effective(false));
    EXPECT_EQ(as_map(read_back(*c).effective(false)), want) << "dlq.enabled = " << want.at("dlq.enabled");
  }
}

TEST(ConfigDump, RedactsEverySecretKey) {
  ConsumerConfig c;
  const std::string canary(kCanary);
  c.set("schema_registry.basic_auth", "alice:" + canary);
  c.set("schema_registry.bearer_token", canary + "-token");
  c.set("schema_registry.key_password", canary + "-key");
  c.set("schema_registry.url", "https://bob:" + canary + "-url@registry.example.com:8081/apis/ccompat/v7");
  for (const auto& prop : kSensitiveProperties) {
    c.set("librdkafka." + prop, canary + "-" + prop);
  }
  c.set("librdkafka.sasl.mechanisms", "PLAIN");
  for (const auto& [k, v] : c.effective()) {
    EXPECT_EQ(v.find(kCanary), std::string::npos) << k << " = " << v;
  }
  const auto m = as_map(c.effective());
  EXPECT_EQ(m.at("schema_registry.basic_auth"), "[redacted]");
  EXPECT_EQ(m.at("schema_registry.bearer_token"), "[redacted]");
  EXPECT_EQ(m.at("schema_registry.key_password"), "[redacted]");
  EXPECT_EQ(m.at("schema_registry.url"), "https://bob:[redacted]@registry.example.com:8081/apis/ccompat/v7");
  for (const auto& prop : kSensitiveProperties) {
    EXPECT_EQ(m.at("librdkafka." + prop), "[redacted]") << prop;
  }
  EXPECT_EQ(m.at("librdkafka.sasl.mechanisms"), "PLAIN");
  // Unredacted on request.
  EXPECT_EQ(as_map(c.effective(false)).at("librdkafka.sasl.password"), canary + "-sasl.password");
}

TEST(ConfigDump, EmptySecretsStayEmpty) {
  const auto m = as_map(ConsumerConfig{}.effective());
  EXPECT_EQ(m.at("schema_registry.basic_auth"), "");
  EXPECT_EQ(m.at("schema_registry.bearer_token"), "");
}

TEST(ConfigDump, SecretKeys) {
  for (const auto& prop : kSensitiveProperties) {
    EXPECT_TRUE(ConsumerConfig::is_secret_key("librdkafka." + prop)) << prop;
  }
  EXPECT_TRUE(ConsumerConfig::is_secret_key("schema_registry.basic_auth"));
  EXPECT_TRUE(ConsumerConfig::is_secret_key("schema_registry.bearer_token"));
  EXPECT_TRUE(ConsumerConfig::is_secret_key("schema_registry.key_password"));
  EXPECT_TRUE(ConsumerConfig::is_secret_key("librdkafka.some.future.client.secret"));
  EXPECT_TRUE(ConsumerConfig::is_secret_key("librdkafka.some.future.password"));
  EXPECT_FALSE(ConsumerConfig::is_secret_key("librdkafka.sasl.mechanisms"));
  EXPECT_FALSE(ConsumerConfig::is_secret_key("librdkafka.security.protocol"));
  EXPECT_FALSE(ConsumerConfig::is_secret_key("group"));
  EXPECT_FALSE(ConsumerConfig::is_secret_key("schema_registry.url"));
  EXPECT_FALSE(ConsumerConfig::is_secret_key("sasl.password"));  // a kc key would need the librdkafka. prefix
}

TEST(ConfigDump, SetRegistersSecretsForLogMasking) {
  ConsumerConfig c;
  c.set("librdkafka.sasl.password", "kc-dump-sasl-pw-11");
  c.set("librdkafka.sasl.username", "kc-dump-user-12");
  c.set("schema_registry.basic_auth", "kc-dump-sr-user:kc-dump-sr-pw-13");
  c.set("schema_registry.url", "http://u:kc-dump-url-pw-14@localhost:8081");
  EXPECT_EQ(kc::log::redact("p=kc-dump-sasl-pw-11"), "p=[redacted]");
  EXPECT_EQ(kc::log::redact("user kc-dump-user-12"), "user kc-dump-user-12");  // an identity, not masked
  EXPECT_EQ(kc::log::redact("auth kc-dump-sr-user:kc-dump-sr-pw-13 / kc-dump-sr-pw-13"),
            "auth [redacted] / [redacted]");
  EXPECT_EQ(kc::log::redact("url pw kc-dump-url-pw-14"), "url pw [redacted]");
}

TEST(ConfigDump, ErrorsNeverQuoteASecretValue) {
  ConsumerConfig c;
  const std::string canary(kCanary);
  try {
    c.set("schema_registry.basic_auth", canary + "-without-colon", "flag --schema-registry-auth");
    FAIL() << "accepted";
  } catch (const kc::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("schema_registry.basic_auth"), std::string::npos) << what;
    EXPECT_EQ(what.find(kCanary), std::string::npos) << what;
  }
  // A refused secret is registered for masking all the same.
  EXPECT_EQ(kc::log::redact(canary + "-without-colon"), "[redacted]");
}

TEST(ConfigDump, LogSettingsInTheEnvironmentAreNotConfigKeys) {
  ConsumerConfig c;
  const char* env[] = {"KC_LOG_FORMAT=json", "KC_LOG_LEVEL=debug", "KC_GROUP=g", nullptr};
  ASSERT_NO_THROW(c.load_env(env));
  EXPECT_EQ(c.group, "g");
}

}  // namespace
