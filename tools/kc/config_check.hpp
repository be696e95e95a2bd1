// `kc config check FILE`: validates a configuration file as kc consume
// would read it and prints the effective configuration, secrets redacted.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace kc::tool {

struct ConfigCheckOptions {
  std::string file;                  ///< the TOML file
  std::vector<std::string> rdkafka;  ///< -X key=value, over the file and env as in kc consume
  bool no_env = false;               ///< --no-env: ignore KC_* variables
  bool json = false;                 ///< --json: one JSON object instead of TOML
};

/// Adds `config` with its subcommand `check` to `app`; the parsed flags land
/// in `o`, which must outlive the parse and run_config_check(). Returns the
/// `config` subcommand (main tells which subcommand ran with it).
CLI::App* add_config_command(CLI::App& app, ConfigCheckOptions& o);

/// Loads the file (then KC_* env unless --no-env, then -X) through
/// kc::ConsumerConfig with kc consume's validation, checks the librdkafka
/// properties by building a consumer client from them (offline: no brokers
/// are given to it, so nothing connects), checks the Schema Registry
/// settings the same way (no request), and prints the effective
/// configuration to stdout, secrets redacted: TOML that load_file() reads
/// back (unset keys as comments), or with --json one object {"file", "ok",
/// "warnings", "config"}. What kc consume may still get from its flags
/// (group, topics, brokers) is a warning on stderr, not an error. Returns 0;
/// throws kc::Error (the configuration errc values: exit 2) naming the key
/// for anything kc consume would refuse. Blocks for the client's creation
/// and destruction (well under a second); call from the main thread.
int run_config_check(const ConfigCheckOptions& o);

}  // namespace kc::tool
