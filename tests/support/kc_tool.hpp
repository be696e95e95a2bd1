// Running the kc command-line tool from tests and reading its log.
#pragma once

#include <set>
#include <string>
#include <string_view>

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

}  // namespace kc::test
