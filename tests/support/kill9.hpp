// kill -9 of `kc consume`: runs killed with SIGKILL at random moments while
// they work through a topic, and restarted each time, then a last run that
// drains the topic. What the runs wrote is the test's to check.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace kc::test {

/// How a series of runs goes (see run_kill_nine()); meant for designated
/// initializers (every member has a default, so GCC's
/// -Wmissing-field-initializers lets them leave any out).
struct KillNineOptions {
  /// Flags of every run after consume_args()' own (--value-format string).
  std::vector<std::string> extra{};
  int kills = 5;  ///< runs killed; one more run drains the topic
  /// Once a run's records flow, it is killed after a delay drawn from
  /// 0..max_kill_delay_ms (uniform, from the seed).
  int max_kill_delay_ms = 0;
  /// A run whose sink has not grown this long after its assignment has
  /// nothing to do (everything before it was committed): it is killed then,
  /// without a delay.
  std::chrono::milliseconds nothing_to_do{3000};
  std::chrono::milliseconds last_idle_exit{5000};  ///< the last run's --idle-exit-ms
  std::chrono::seconds last_timeout{120};          ///< how long the last run may take
  /// Appended to the line printed when the last run exits, given that run's
  /// stderr (e.g. ", summary skipped 0"); nothing when empty.
  std::function<std::string(const std::string& log)> last_run_note{};
};

/// What a series did.
struct KillNineRuns {
  unsigned seed = 0;  ///< test_seed(): KC_TEST_SEED repeats the kill delays
  /// The jsonl sink, `dir`/sink.jsonl. Every run appends to it, as an
  /// operator restarting kc would: a kill can cut a write(2) short mid-line,
  /// and the next run must drop that fragment (its record was never
  /// committed) before it appends.
  std::filesystem::path sink;
  int kills = 0;                        ///< runs that ended by the SIGKILL
  std::vector<std::size_t> first_line;  ///< the sink's complete lines when each run started, in run order
  std::string last_log;                 ///< the last run's stderr
};

/// Runs `options.kills` + 1 `kc consume` runs of `topic` in `group` one
/// after the other, into one sink; each run's stdout and stderr go to
/// `dir`/run-N.out and run-N.err. Prints "<tag>: seed=..." first. Each run
/// but the last is killed with SIGKILL once it has its assignment (its "kc:
/// assigned" log line, looked for every millisecond: at ~500 k records/s a
/// late look means a late kill) and records flow (its sink grew), after a
/// random delay; its exit status must show the SIGKILL, and "<tag>: run N
/// killed M ms after its assignment (...): L lines" is printed. The last run
/// gets --idle-exit-ms and must exit 0 within `last_timeout`: "<tag>: run N
/// exited when idle: L lines<note>".
///
/// Its checks are GoogleTest assertions, failures of the calling test; a
/// fatal one (no assignment within 60 s, a run that ended before its kill,
/// a run not killed within 10 s, a last run that failed or did not end) ends
/// the series at once, so call it inside ASSERT_NO_FATAL_FAILURE(). Blocks
/// for the whole series; use from the test's thread. Throws
/// kc::test::Failure when a run cannot be started.
void run_kill_nine(const std::string& tag, const std::string& bootstrap, const std::string& group,
                   const std::string& topic, const std::filesystem::path& dir, const KillNineOptions& options,
                   KillNineRuns& runs);

}  // namespace kc::test
