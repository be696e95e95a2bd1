// kc config check: see config_check.hpp.
//
// Why a consumer client is created and destroyed: rd_kafka_conf_set() checks
// each property alone; rd_kafka_new() checks them together (SASL mechanism
// without credentials, an unreadable ssl.key.location, a malformed
// sasl.oauthbearer.config, ...). It is given no bootstrap servers, so it
// connects nowhere; Kerberos' kinit is not run (min.time.before.relogin=0).
//
// Why missing group and topics are warnings: kc consume takes them from
// --group/--topic as well, and a file shared by several consumers
// (connection, security, limits) rightly leaves them out.
#include "config_check.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "json_out.hpp"
#include "kc/config.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/schema.hpp"
#include "rdkafka/handles.hpp"

extern char** environ;

namespace kc::tool {
namespace {

constexpr std::string_view kRdkafkaPrefix = "librdkafka.";
constexpr const char* kPlaceholder = "kc-config-check";

// What librdkafka logs while the client is created (any librdkafka thread):
// errors (syslog level 3 and below) fail the check, warnings are shown.
struct Collected {
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

void collect_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf) noexcept {
  try {
    if (level > 4) {  // syslog levels: 4 is warning
      return;
    }
    const std::string_view text(buf);
    if (text.find("bootstrap.servers") != std::string_view::npos) {
      return;  // none on purpose (see the top of the file)
    }
    auto* c = static_cast<Collected*>(rd_kafka_opaque(rk));
    std::lock_guard lock(c->mu);
    (level <= 3 ? c->errors : c->warnings).push_back(std::string("librdkafka ") + fac + ": " + buf);
  } catch (...) {
  }
}

// Creates and destroys a consumer client with the properties kc consume
// would give it, bar the brokers. Returns librdkafka's warnings; throws
// kc::Error when librdkafka refuses the properties or logs an error (e.g.
// "Failed to acquire SASL OAUTHBEARER token") while it creates the client.
std::vector<std::string> check_with_librdkafka(const ConsumerConfig& cfg) {
  Collected collected;
  detail::ConfPtr conf(rd_kafka_conf_new());
  detail::conf_set(conf.get(), "group.id", cfg.group.empty() ? kPlaceholder : cfg.group);
  for (const auto& [k, v] : cfg.librdkafka) {
    detail::conf_set(conf.get(), k, v);
  }
  if (!cfg.librdkafka.contains("sasl.kerberos.min.time.before.relogin")) {
    char ignored[256];
    rd_kafka_conf_set(conf.get(), "sasl.kerberos.min.time.before.relogin", "0", ignored, sizeof ignored);
  }
  rd_kafka_conf_set_log_cb(conf.get(), collect_log);
  rd_kafka_conf_set_opaque(conf.get(), &collected);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
  if (rk == nullptr) {
    throw Error(errc::config_invalid_value, std::string("librdkafka properties: ") + err);
  }
  (void)conf.release();  // owned by rk now
  rd_kafka_destroy(rk);  // never subscribed nor connected: returns at once
  std::lock_guard lock(collected.mu);
  if (!collected.errors.empty()) {
    throw Error(errc::config_invalid_value, "librdkafka properties: " + collected.errors.front());
  }
  return std::move(collected.warnings);
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// A value as TOML: integers and booleans bare, the rest as strings (load_file
// reads both forms of every key).
std::string toml_value(std::string_view v) {
  const bool integer = !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string_view::npos &&
                       (v.size() == 1 || v[0] != '0');
  if (integer || v == "true" || v == "false") {
    return std::string(v);
  }
  return toml_string(v);
}

std::string toml_key(std::string_view key) {
  if (key.starts_with(kRdkafkaPrefix)) {
    return std::string(kRdkafkaPrefix) + toml_string(key.substr(kRdkafkaPrefix.size()));
  }
  return std::string(key);  // kc's keys: bare dotted keys
}

}  // namespace

CLI::App* add_config_command(CLI::App& app, ConfigCheckOptions& o) {
  auto* config = app.add_subcommand("config", "configuration files");
  config->require_subcommand(1);
  auto* check = config->add_subcommand(
      "check",
      "validate a TOML configuration as kc consume reads it; print the effective configuration, secrets "
      "redacted");
  check->add_option("file", o.file, "the TOML file (as for kc consume --config)")->required();
  check->add_option("-X", o.rdkafka, "librdkafka property key=value over the file and env (repeatable)");
  check->add_flag("--no-env", o.no_env, "ignore KC_* environment variables (check the file alone)");
  check->add_flag("--json", o.json, "print one JSON object {file, ok, warnings, config} instead of TOML");
  check->footer(
      "Precedence as in kc consume: defaults < FILE < KC_* env < -X. Exit 0: valid (warnings on stderr for what\n"
      "kc consume would need from its flags: --group, --topic, --bootstrap-servers); exit 2: kc consume would\n"
      "refuse it (the message names the key). Offline: nothing connects to the brokers or the registry.");
  return config;
}

int run_config_check(const ConfigCheckOptions& o) {
  ConsumerConfig cfg;
  cfg.load_file(o.file);
  if (!o.no_env) {
    cfg.load_env(environ);
  }
  for (const auto& kv : o.rdkafka) {
    const auto [k, v] = split_property(kv);
    cfg.set(std::string(kRdkafkaPrefix) + k, v, "flag -X");
  }

  std::vector<std::string> warnings;
  // kc consume's own checks, with what its flags could still supply filled in.
  ConsumerConfig probe = cfg;
  if (probe.group.empty()) {
    warnings.emplace_back("group: not set; kc consume needs --group (or KC_GROUP)");
    probe.group = kPlaceholder;
  }
  if (probe.topics.empty()) {
    warnings.emplace_back("topics: not set; kc consume needs --topic (or KC_TOPICS)");
    probe.topics = {kPlaceholder};
  }
  if (cfg.bootstrap_servers.empty()) {
    warnings.emplace_back(
        "bootstrap_servers: not set; kc consume would use an embedded mock broker unless given "
        "--bootstrap-servers (or KC_BOOTSTRAP_SERVERS)");
  }
  probe.validate();
  for (auto& w : check_with_librdkafka(probe)) {
    warnings.push_back(std::move(w));
  }
  const auto& sr = cfg.schema_registry;
  if (!sr.url.empty()) {
    schema::SchemaRegistry registry(sr);  // checks url and credentials; sends nothing
  } else if (!sr.basic_auth.empty() || !sr.bearer_token.empty() || !sr.ca_file.empty() || !sr.cert_file.empty() ||
             !sr.key_file.empty()) {
    warnings.emplace_back("schema_registry: credentials or TLS files without schema_registry.url are not used");
  }

  for (const auto& w : warnings) {
    spdlog::warn("kc config check: {}", w);
  }
  const auto settings = cfg.effective(true);
  std::string out;
  if (o.json) {
    // Any bytes escaped (a file name need not be UTF-8): the output is JSON whatever the input.
    JsonArray warning_list;
    for (const auto& w : warnings) {
      warning_list.raw(json_string(log::redact(w)));
    }
    JsonObject config;
    for (const auto& [key, value] : settings) {
      config.str(key, value);
    }
    out = JsonObject()
              .str("file", o.file)
              .raw("ok", "true")
              .raw("warnings", warning_list.done())
              .raw("config", config.done())
              .done() +
          "\n";
  } else {
    out = "# kc config check " + o.file + ": OK" +
          (warnings.empty() ? "" : " (" + std::to_string(warnings.size()) + " warnings on stderr)") +
          "\n# Effective configuration (defaults < file < " + (o.no_env ? "" : "KC_* env < ") +
          "-X), secrets redacted; unset keys commented out.\n";
    for (const auto& [key, value] : settings) {
      if (value.empty()) {
        out += "# " + toml_key(key) + " = \"\"  (not set)\n";
      } else {
        out += toml_key(key) + " = " + toml_value(value) + "\n";
      }
    }
  }
  out = log::redact(out);  // the effective() redaction is the rule; this is the defence in depth
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace kc::tool
