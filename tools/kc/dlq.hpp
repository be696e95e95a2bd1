// `kc dlq`: look into a dead-letter topic (inspect) and send its records back
// to where they came from (redrive).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kc::tool {

/// `kc dlq inspect`: lists the dead letters of a topic without joining a group.
struct DlqInspectOptions {
  std::optional<std::string> bootstrap_servers;
  std::string topic;
  std::optional<std::string> error_type;         ///< keep records whose error type contains this
  std::optional<std::int32_t> source_partition;  ///< keep records from this source partition
  std::optional<std::uint64_t> max;              ///< stop after showing this many
  bool json = false;                             ///< one JSON object per line
  std::uint64_t timeout_ms = 30000;              ///< give up when nothing arrives for this long
  std::vector<std::string> rdkafka;              ///< -X key=value
  std::optional<std::string> config_file;
};

/// `kc dlq redrive`: republishes dead letters (without their metadata
/// headers) in a consumer group of its own, at least once.
struct DlqRedriveOptions {
  std::optional<std::string> bootstrap_servers;
  std::string from;                       ///< the dead-letter topic
  std::optional<std::string> to;          ///< default: each record's source topic
  std::optional<std::string> group;       ///< default: kc-redrive-<from>
  std::optional<std::string> error_type;  ///< redrive only records whose error type contains this
  std::optional<std::uint64_t> max;       ///< stop after republishing this many
  std::uint64_t idle_exit_ms = 3000;      ///< stop after this long without a record
  double rate = 0;                        ///< records per second (0: no limit)
  std::vector<std::string> rdkafka;       ///< -X key=value (all clients)
  std::optional<std::string> config_file;
};

struct DlqOptions {
  DlqInspectOptions inspect;
  DlqRedriveOptions redrive;
  // Set by add_dlq_command; run_dlq looks at which one was parsed.
  CLI::App* inspect_command = nullptr;
  CLI::App* redrive_command = nullptr;
};

/// Adds `dlq` with its subcommands `inspect` and `redrive` to `app`; the
/// parsed flags land in `o`, which must outlive the parse and run_dlq().
void add_dlq_command(CLI::App& app, DlqOptions& o);

/// Runs the parsed `dlq` subcommand. Returns the exit code: 0 when all went
/// well, 1 when a record could not be handled or something failed.
/// Throws kc::Error for bad configuration (the caller prints it, exit 2).
/// Blocks until the subcommand is done; call from the main thread (redrive
/// installs SIGINT/SIGTERM handlers).
int run_dlq(const DlqOptions& o);

int run_dlq_inspect(const DlqInspectOptions& o);
int run_dlq_redrive(const DlqRedriveOptions& o);

}  // namespace kc::tool
