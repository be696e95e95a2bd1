// Running the kc command-line tool from tests and reading its log.
#pragma once

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "support/common.hpp"
#include "support/subprocess.hpp"

namespace kc::test {

/// Path of the kc tool: KC_TEST_TOOL if set, else the one this build made
/// (KC_TOOL_PATH, set by CMake). Throws kc::test::Failure if it is not an
/// executable file.
std::string kc_tool_path();

/// Partitions of `topic` a `kc consume` process owns according to its stderr
/// log so far: its "kc: assigned T[p] ..." lines add, "kc: revoked ..." and
/// "kc: lost ..." lines remove, in order.
std::set<int> owned_partitions(std::string_view log, std::string_view topic);

/// Every partition of `topic` that a "kc: assigned" line ever named.
std::set<int> ever_assigned(std::string_view log, std::string_view topic);

/// Arguments of `kc consume` reading `topic` from the beginning in `group`
/// into the jsonl sink `sink` with `--value-format value_format`, then `extra`.
std::vector<std::string> consume_args(const std::string& bootstrap, const std::string& group, const std::string& topic,
                                      const std::filesystem::path& sink, const std::string& value_format,
                                      const std::vector<std::string>& extra);

/// A finished run of the kc tool.
struct ToolRun {
  ExitStatus status;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
  std::string command;
};

/// Runs the kc tool with `args` (stdout and stderr to files in `dir`, named
/// run-N) and waits for it. Throws kc::test::Failure when it is still
/// running after `timeout` (it is killed then).
ToolRun run_tool(const TempDir& dir, const std::vector<std::string>& args,
                 std::chrono::seconds timeout = std::chrono::seconds(90));

/// For failure messages: the command, its exit status and the ends of its
/// stdout and stderr.
std::string describe(const ToolRun& r);

/// For failure messages: the command, how it ended and the end of its stderr.
/// Reaps the process if it ended.
std::string describe(Subprocess& p);

}  // namespace kc::test
