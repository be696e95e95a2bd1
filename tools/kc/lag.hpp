// `kc lag`: per-partition committed offset, end offset, lag and owner of a
// consumer group.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kc::tool {

struct LagOptions {
  std::optional<std::string> bootstrap_servers;
  std::string group;
  std::vector<std::string> topics;   ///< --topic (repeatable); empty: every topic the group committed or owns
  bool json = false;                 ///< one JSON object instead of the table
  std::uint64_t timeout_ms = 10000;  ///< bound on the whole run (all broker requests)
  std::vector<std::string> rdkafka;  ///< -X key=value
  std::optional<std::string> config_file;
};

/// Adds `lag` to `app`; the parsed flags land in `o`, which must outlive the
/// parse and run_lag().
void add_lag_command(CLI::App& app, LagOptions& o);

/// Looks the group up (committed offsets, high watermarks, members) and
/// prints the table or the JSON object to stdout. Joins no group and commits
/// nothing. Blocks for at most about --timeout-ms. Returns 0 on success, 1
/// when the group does not exist or a topic is unknown (message on stderr).
/// Throws kc::Error for bad configuration (exit 2) and for broker errors and
/// timeouts (exit 1); call from the main thread.
int run_lag(const LagOptions& o);

}  // namespace kc::tool
