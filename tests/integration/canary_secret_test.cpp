// Secrets never printed: one canary value planted as every kind of secret
// (sasl.password, ssl.key.password, the Schema Registry's basic auth
// password, bearer token and key password, an OAuth client secret), through
// -X flags, a config file and KC_* environment variables. The kc tool runs
// `kc config check`, `kc consume` against the real broker (text and JSON
// logs, debug level, librdkafka's own debug output), a registry that refuses
// the credentials (401), one that cannot be reached, and configurations that
// refuse the secret itself. No line of stdout or stderr may carry the canary,
// plain or as the base64 of a basic auth header; in JSON mode every stderr
// line must be a JSON object.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/common.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/records.hpp"
#include "support/registry.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

const std::string kCanary = "kc-canary-5f3a9c";

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                   static_cast<unsigned char>(in[i + 2]);
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], kAlphabet[n & 63]};
  }
  if (i + 1 == in.size()) {
    const auto n = static_cast<unsigned char>(in[i]) << 16;
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const auto n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      nl = text.size();
    }
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

// What must never appear: the canary, and a basic auth header made of it.
const std::vector<std::string>& forbidden() {
  static const std::vector<std::string> kForbidden = {kCanary, base64("kc-user:" + kCanary),
                                                      base64("kc-user:" + kCanary).substr(0, 20)};
  return kForbidden;
}

// Every line of the run's stdout and stderr is free of the canary; with
// `json`, every stderr line is a JSON object with ts, level, logger and msg.
void expect_clean(const ToolRun& r, bool json) {
  for (const auto* stream : {&r.out, &r.err}) {
    const auto name = stream == &r.out ? "stdout" : "stderr";
    for (const auto& line : lines_of(*stream)) {
      for (const auto& f : forbidden()) {
        EXPECT_EQ(line.find(f), std::string::npos) << name << " line shows the secret (" << f << "): " << line;
      }
    }
  }
  if (!json) {
    return;
  }
  simdjson::dom::parser parser;
  int n = 0;
  for (const auto& line : lines_of(r.err)) {
    if (line.empty()) {
      continue;
    }
    ++n;
    simdjson::dom::object obj;
    ASSERT_EQ(parser.parse(line).get_object().get(obj), simdjson::SUCCESS)
        << "stderr line is not a JSON object: " << line << describe(r);
    std::string_view s;
    for (const char* field : {"ts", "level", "logger", "msg"}) {
      EXPECT_EQ(obj[field].get(s), simdjson::SUCCESS) << "no string " << field << " in " << line;
    }
    std::uint64_t thread = 0;
    EXPECT_EQ(obj["thread"].get(thread), simdjson::SUCCESS) << line;
  }
  EXPECT_GT(n, 0) << "no log lines at all" << describe(r);
}

std::filesystem::path write(const TempDir& dir, const std::string& name, const std::string& text) {
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// A config file with the canary as librdkafka and registry secrets. With
// `registry_url`, the registry with basic auth (the canary as the password).
std::filesystem::path secret_file(const TempDir& dir, const std::string& name, const std::string& registry_url) {
  std::string toml = "[librdkafka]\n\"sasl.password\" = \"" + kCanary + "\"\n\"ssl.key.password\" = \"" + kCanary +
                     "\"\n\"sasl.oauthbearer.client.secret\" = \"" + kCanary + "\"\n";
  if (!registry_url.empty()) {
    toml += "[schema_registry]\nurl = \"" + registry_url + "\"\nbasic_auth = \"kc-user:" + kCanary +
            "\"\nmax_retries = 0\n";
  }
  return write(dir, name, toml);
}

// The canary through the environment as well (flags come in each run).
std::vector<std::pair<std::string, std::string>> secret_env() {
  return {{"KC_LIBRDKAFKA_SSL_KEYSTORE_PASSWORD", kCanary}, {"KC_SCHEMA_REGISTRY_KEY_PASSWORD", kCanary}};
}

std::vector<std::string> with_format(bool json, std::vector<std::string> args) {
  std::vector<std::string> out = {"--log-format", json ? "json" : "text", "--log-level", "debug"};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

TEST(CanarySecret, ConfigCheckNeverPrintsIt) {
  TempDir dir("kc-canary-check");
  const auto file = secret_file(dir, "kc.toml", "http://127.0.0.1:9");
  const auto bearer = write(dir, "bearer.toml", "[schema_registry]\nurl = \"https://registry.example.com\"\n");
  const ScopedEnv env(secret_env());
  for (const bool json : {false, true}) {
    SCOPED_TRACE(json ? "json logs" : "text logs");
    for (const bool json_out : {false, true}) {
      std::vector<std::string> args = {"config", "check", file.string(), "-X", "sasl.password=" + kCanary};
      if (json_out) {
        args.push_back("--json");
      }
      const auto r = run_tool(dir, with_format(json, args), 30s);
      ASSERT_TRUE(r.status.ok()) << describe(r);
      EXPECT_NE(r.out.find("[redacted]"), std::string::npos) << describe(r);
      expect_clean(r, json);
    }
    {
      const ScopedEnv token({{"KC_SCHEMA_REGISTRY_BEARER_TOKEN", kCanary}});
      const auto r = run_tool(dir, with_format(json, {"config", "check", bearer.string()}), 30s);
      ASSERT_TRUE(r.status.ok()) << describe(r);
      expect_clean(r, json);
    }
  }
}

TEST(CanarySecret, ConsumeNeverPrintsIt) {
  const auto bs = bootstrap();
  TempDir dir("kc-canary-consume");
  const auto topic = unique_name("canary");
  constexpr int kCount = 20;
  create_topic(bs, topic, 2);
  ProduceOptions po;
  po.partitions = 2;
  produce(bs, topic, kCount, po);
  const auto file = secret_file(dir, "kc.toml", "");
  const ScopedEnv env(secret_env());
  for (const bool json : {false, true}) {
    SCOPED_TRACE(json ? "json logs" : "text logs");
    const auto sink = dir / (json ? "json.jsonl" : "text.jsonl");
    // librdkafka's own debug output too (its configuration dump, security,
    // the group protocol): a few hundred lines, not a flood.
    const auto r = run_tool(dir,
                            with_format(json, consume_args(bs, unique_name("canary-group"), topic, sink, "string",
                                                           {"--config", file.string(), "-X", "sasl.password=" + kCanary,
                                                            "-X", "debug=conf,security,cgrp", "--max-messages",
                                                            std::to_string(kCount), "--idle-exit-ms", "15000"})),
                            90s);
    ASSERT_TRUE(r.status.ok()) << describe(r);
    EXPECT_NE(r.err.find("done " + std::to_string(kCount)), std::string::npos) << describe(r);
    EXPECT_NE(r.err.find("sasl.password = [redacted]"), std::string::npos)
        << "librdkafka's configuration dump did not run (debug=conf)" << describe(r);
    expect_clean(r, json);
  }
}

TEST(CanarySecret, RegistryFailuresNeverPrintIt) {
  const auto bs = bootstrap();
  TempDir dir("kc-canary-registry");
  FakeRegistry registry(
      {"--basic-auth", "kc-user:right-password-" + unique_name("p"), "--bearer", "right-token-" + unique_name("t")});
  const auto topic = unique_name("canary-sr");
  create_topic(bs, topic, 1);
  // Records in the registry's wire format (magic 0, schema id 1): decoding
  // one asks the registry for schema 1.
  std::vector<Record> records(3);
  for (auto& rec : records) {
    rec.value = std::string("\0\0\0\0\1\2\3", 7);
  }
  produce_records(bs, topic, records);
  const std::string port = registry.url().substr(registry.url().rfind(':') + 1);
  const auto quick = [&](std::vector<std::string> more) {
    more.insert(more.end(), {"--max-messages", "3", "--idle-exit-ms", "15000"});
    return more;
  };

  struct Case {
    std::string name;
    std::vector<std::pair<std::string, std::string>> env;
    std::vector<std::string> args;
    std::string needle;  // what stderr says about the failure
  };
  const auto basic_file = secret_file(dir, "basic.toml", registry.url());
  const std::vector<Case> cases = {
      {"basic auth from the file (401)", {}, quick({"--config", basic_file.string()}), "401"},
      {"bearer token from the environment (401)",
       {{"KC_SCHEMA_REGISTRY_BEARER_TOKEN", kCanary}, {"KC_SCHEMA_REGISTRY_MAX_RETRIES", "0"}},
       quick({"--schema-registry", registry.url()}),
       "401"},
      {"bearer token from the flag (401)",
       {{"KC_SCHEMA_REGISTRY_MAX_RETRIES", "0"}},
       quick({"--schema-registry", registry.url(), "--schema-registry-token", kCanary}),
       "401"},
      {"credentials in the URL (401)",
       {{"KC_SCHEMA_REGISTRY_MAX_RETRIES", "0"}},
       quick({"--schema-registry", "http://kc-user:" + kCanary + "@127.0.0.1:" + port}),
       "401"},
      {"basic auth flag, unreachable registry",
       {{"KC_SCHEMA_REGISTRY_MAX_RETRIES", "0"}},
       quick({"--schema-registry", "http://127.0.0.1:9", "--schema-registry-auth", "kc-user:" + kCanary}),
       "schema registry"},
  };
  for (const bool json : {false, true}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.name + (json ? ", json logs" : ", text logs"));
      auto env = secret_env();
      env.insert(env.end(), c.env.begin(), c.env.end());
      const ScopedEnv scoped(env);
      const auto sink = dir / (unique_name("sink") + ".jsonl");
      const auto r = run_tool(
          dir, with_format(json, consume_args(bs, unique_name("canary-sr-group"), topic, sink, "avro", c.args)), 90s);
      EXPECT_EQ(r.status.to_string(), "exit 1") << "the registry failure must stop kc" << describe(r);
      EXPECT_NE(r.err.find(c.needle), std::string::npos) << describe(r);
      expect_clean(r, json);
    }
  }
}

TEST(CanarySecret, RefusedSecretValuesNeverPrintIt) {
  const auto bs = bootstrap();
  TempDir dir("kc-canary-refused");
  const auto topic = unique_name("canary-refused");
  create_topic(bs, topic, 1);
  const auto unquoted = write(dir, "unquoted.toml", "[librdkafka]\n\"sasl.password\" = " + kCanary + "\n");
  // librdkafka quotes a malformed sasl.oauthbearer.config in its error.
  const auto oauth = write(dir, "oauth.toml",
                           "[librdkafka]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = "
                           "\"OAUTHBEARER\"\n\"enable.sasl.oauthbearer.unsecure.jwt\" = true\n"
                           "\"sasl.oauthbearer.config\" = \"" +
                               kCanary + "\"\n");
  struct Case {
    std::string name;
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> consume_cases = {
      {"basic auth without a colon", {"--schema-registry-auth", kCanary}, "schema_registry.basic_auth"},
      {"a TOML file with the secret unquoted", {"--config", unquoted.string()}, "unquoted.toml"},
      {"an SSL key password with an unreadable key",
       {"-X", "security.protocol=SSL", "-X", "ssl.key.location=/nonexistent/key.pem", "-X",
        "ssl.key.password=" + kCanary},
       "ssl.key.location"},
  };
  const std::vector<Case> check_cases = {
      {"a TOML file with the secret unquoted", {unquoted.string()}, "unquoted.toml"},
      {"an OAuth configuration librdkafka refuses", {oauth.string()}, "OAUTHBEARER"},
  };
  for (const bool json : {false, true}) {
    for (const auto& c : consume_cases) {
      SCOPED_TRACE("kc consume, " + c.name + (json ? ", json logs" : ", text logs"));
      const auto sink = dir / (unique_name("sink") + ".jsonl");
      const auto r = run_tool(
          dir, with_format(json, consume_args(bs, unique_name("canary-group"), topic, sink, "string", c.args)), 60s);
      EXPECT_FALSE(r.status.ok()) << describe(r);
      EXPECT_FALSE(r.status.signaled) << describe(r);
      EXPECT_NE(r.err.find(c.needle), std::string::npos) << describe(r);
      expect_clean(r, json);
    }
    for (const auto& c : check_cases) {
      SCOPED_TRACE("kc config check, " + c.name + (json ? ", json logs" : ", text logs"));
      std::vector<std::string> args = {"config", "check", "--no-env"};
      args.insert(args.end(), c.args.begin(), c.args.end());
      const auto r = run_tool(dir, with_format(json, args), 30s);
      EXPECT_EQ(r.status.to_string(), "exit 2") << describe(r);
      EXPECT_NE(r.err.find(c.needle), std::string::npos) << describe(r);
      expect_clean(r, json);
    }
    {
      // kc consume with that OAuth configuration runs on (librdkafka retries
      // the token) and logs the error: stopped once it has.
      SCOPED_TRACE(std::string("kc consume, a refused OAuth configuration") + (json ? ", json logs" : ", text logs"));
      const auto name = unique_name("oauth-run");
      Subprocess p(kc_tool_path(),
                   with_format(json, consume_args(bs, unique_name("canary-group"), topic, dir / (name + ".jsonl"),
                                                  "string", {"--config", oauth.string()})),
                   dir / (name + ".out"), dir / (name + ".err"));
      EXPECT_TRUE(wait_until([&] { return p.stderr_text().find("OAUTHBEARER") != std::string::npos; }, 30s))
          << describe(p);
      p.signal(SIGTERM);
      const auto st = p.wait(60s);
      ASSERT_TRUE(st.has_value()) << describe(p);
      expect_clean(ToolRun{*st, p.stdout_text(), p.stderr_text(), p.command()}, json);
    }
  }
}

}  // namespace
}  // namespace kc::test
