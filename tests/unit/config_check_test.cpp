// `kc config check` (tools/kc/config_check.cpp), offline: every example
// configuration in examples/configs passes and its printed configuration
// reads back; secrets from the environment are printed as [redacted]; what
// kc consume would refuse exits 2 naming the key; what its flags may still
// supply is a warning.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/common.hpp"
#include "support/kc_tool.hpp"

namespace kc::test {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> example_configs() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(KC_SOURCE_DIR) / "examples" / "configs")) {
    if (e.path().extension() == ".toml") {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path write(const TempDir& dir, const std::string& name, const std::string& text) {
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// The effective configuration lines of a check's stdout (no comments).
std::string settings_of(const std::string& out) {
  std::string lines;
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto nl = out.find('\n', pos);
    if (nl == std::string::npos) {
      nl = out.size();
    }
    const auto line = out.substr(pos, nl - pos);
    if (!line.empty() && line[0] != '#') {
      lines += line + "\n";
    }
    pos = nl + 1;
  }
  return lines;
}

constexpr const char* kEnvPassword = "kc-example-env-pw-8c2";

TEST(ConfigCheck, EveryExampleConfigPasses) {
  TempDir dir("kc-config-check");
  const auto configs = example_configs();
  ASSERT_GE(configs.size(), 4u) << "examples/configs/*.toml";
  // The SASL example takes its secrets from the environment, as documented.
  const ScopedEnv env({{"KC_LIBRDKAFKA_SASL_USERNAME", "example-user"},
                       {"KC_LIBRDKAFKA_SASL_PASSWORD", kEnvPassword},
                       {"KC_SCHEMA_REGISTRY_BASIC_AUTH", std::string("example-key:") + kEnvPassword}});
  for (const auto& config : configs) {
    SCOPED_TRACE(config.filename().string());
    const auto uses_env = config.filename().string().find("sasl") != std::string::npos;
    std::vector<std::string> args = {"config", "check", config.string()};
    if (!uses_env) {
      args.push_back("--no-env");
    }
    const auto r = run_tool(dir, args, std::chrono::seconds(30));
    ASSERT_TRUE(r.status.ok()) << describe(r);
    EXPECT_NE(r.out.find(": OK"), std::string::npos) << describe(r);
    // Each example is complete: nothing left for kc consume's flags.
    EXPECT_EQ(r.err.find("warn"), std::string::npos) << describe(r);
    EXPECT_EQ(r.out.find(kEnvPassword), std::string::npos) << describe(r);
    EXPECT_EQ(r.err.find(kEnvPassword), std::string::npos) << describe(r);
    if (uses_env) {
      EXPECT_NE(r.out.find("librdkafka.\"sasl.password\" = \"[redacted]\""), std::string::npos) << describe(r);
      EXPECT_NE(r.out.find("schema_registry.basic_auth = \"[redacted]\""), std::string::npos) << describe(r);
      continue;  // [redacted] is not a user:password: the output does not read back
    }
    // The printed configuration is TOML that reads back to itself.
    const auto again = write(dir, config.filename().string() + ".effective.toml", r.out);
    const auto r2 = run_tool(dir, {"config", "check", again.string(), "--no-env"}, std::chrono::seconds(30));
    ASSERT_TRUE(r2.status.ok()) << describe(r2);
    EXPECT_EQ(settings_of(r2.out), settings_of(r.out));
  }
}

TEST(ConfigCheck, JsonOutputParses) {
  TempDir dir("kc-config-check");
  const auto file = write(dir, "kc.toml",
                          "group = \"g\"\ntopics = [\"a\", \"b\"]\n[librdkafka]\n\"sasl.password\" = \"" +
                              std::string(kEnvPassword) + "\"\n");
  const auto r = run_tool(dir, {"config", "check", file.string(), "--no-env", "--json"}, std::chrono::seconds(30));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  ASSERT_EQ(parser.parse(r.out).get_object().get(obj), simdjson::SUCCESS) << r.out;
  bool ok = false;
  ASSERT_EQ(obj["ok"].get(ok), simdjson::SUCCESS);
  EXPECT_TRUE(ok);
  std::string_view v;
  ASSERT_EQ(obj["config"]["topics"].get(v), simdjson::SUCCESS) << r.out;
  EXPECT_EQ(v, "a,b");
  ASSERT_EQ(obj["config"]["librdkafka.sasl.password"].get(v), simdjson::SUCCESS) << r.out;
  EXPECT_EQ(v, "[redacted]");
  simdjson::dom::array warnings;
  ASSERT_EQ(obj["warnings"].get(warnings), simdjson::SUCCESS) << r.out;
  EXPECT_EQ(warnings.size(), 1u) << r.out;  // bootstrap_servers not set
  EXPECT_EQ(r.out.find(kEnvPassword), std::string::npos) << r.out;
}

TEST(ConfigCheck, MissingGroupAndTopicsAreWarnings) {
  TempDir dir("kc-config-check");
  const auto file = write(dir, "conn.toml", "bootstrap_servers = \"localhost:9092\"\n");
  const auto r = run_tool(dir, {"config", "check", file.string(), "--no-env"}, std::chrono::seconds(30));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("group: not set"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("topics: not set"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("# group = \"\"  (not set)"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("commit.every_messages = 500"), std::string::npos) << describe(r);
}

TEST(ConfigCheck, RefusedSettingsExit2NamingTheKey) {
  TempDir dir("kc-config-check");
  struct Case {
    std::string toml;
    std::vector<std::string> extra;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"group = \"g\"\ntopics = \"t\"\n[librdkafka]\n\"no.such.property\" = 1\n", {}, "librdkafka.no.such.property"},
      {"group = \"g\"\ntopics = \"t\"\n", {"-X", "fetch.wait.max.ms=soon"}, "librdkafka.fetch.wait.max.ms"},
      {"group = \"g\"\ntopics = \"t\"\n[commit]\nevery_messages = 0\n", {}, "commit.every_messages"},
      {"group = \"g\"\ntopics = \"t\"\n[librdkafka]\n\"enable.auto.commit\" = true\n", {}, "enable.auto.commit"},
      {"group = \"g\"\ntopics = \"t\"\n[retry]\nbackoff_ms = 5000\nbackoff_max_ms = 100\n", {}, "retry.backoff_max_ms"},
      {"group = \"g\"\ntopics = \"t\"\nunknown_key = 1\n", {}, "unknown_key"},
      // Cross-property checks happen when librdkafka builds the client.
      {"group = \"g\"\ntopics = \"t\"\n[librdkafka]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n"
       "\"sasl.mechanisms\" = \"SCRAM-SHA-256\"\n",
       {},
       "sasl.username"},
      {"group = \"g\"\ntopics = \"t\"\n[schema_registry]\nurl = \"http://u:p@host\"\nbasic_auth = \"a:b\"\n",
       {},
       "schema registry"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto file = write(dir, "bad" + std::to_string(i) + ".toml", c.toml);
    std::vector<std::string> args = {"config", "check", file.string(), "--no-env"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const auto r = run_tool(dir, args, std::chrono::seconds(30));
    EXPECT_EQ(r.status.to_string(), "exit 2") << describe(r);
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << describe(r);
    EXPECT_NE(r.err.find("configuration error"), std::string::npos) << describe(r);
    EXPECT_TRUE(r.out.empty()) << describe(r);
  }
}

}  // namespace
}  // namespace kc::test
