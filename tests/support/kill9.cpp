#include "support/kill9.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <random>
#include <thread>

#include "support/common.hpp"
#include "support/jsonl.hpp"
#include "support/kc_tool.hpp"
#include "support/subprocess.hpp"

namespace kc::test {

void run_kill_nine(const std::string& tag, const std::string& bootstrap, const std::string& group,
                   const std::string& topic, const std::filesystem::path& dir, const KillNineOptions& o,
                   KillNineRuns& runs) {
  using Clock = std::chrono::steady_clock;
  using namespace std::chrono_literals;
  runs = {};
  runs.seed = test_seed();
  runs.sink = dir / "sink.jsonl";
  const auto& sink = runs.sink;
  std::printf("%s: seed=%u (KC_TEST_SEED=%u repeats the kill delays)\n", tag.c_str(), runs.seed, runs.seed);
  std::fflush(stdout);
  // The delays are drawn only for runs whose records flow, in run order, so
  // that one seed repeats them.
  std::mt19937 rng(runs.seed);
  std::uniform_int_distribution<int> delay_ms(0, o.max_kill_delay_ms);
  const auto tool = kc_tool_path();

  for (int run = 0; run <= o.kills; ++run) {
    const bool last = run == o.kills;
    const auto name = "run-" + std::to_string(run);
    auto extra = o.extra;
    if (last) {
      extra.insert(extra.end(), {"--idle-exit-ms", std::to_string(o.last_idle_exit.count())});
    }
    runs.first_line.push_back(count_lines(sink));
    const auto size_before = file_size_or_zero(sink);
    Subprocess kc(tool, consume_args(bootstrap, group, topic, sink, "string", extra), dir / (name + ".out"),
                  dir / (name + ".err"));
    if (last) {
      const auto st = kc.wait(o.last_timeout);
      ASSERT_TRUE(st.has_value()) << "the last run did not exit within " << o.last_timeout.count() << " s"
                                  << describe(kc);
      ASSERT_TRUE(st->ok()) << "the last run failed" << describe(kc);
      runs.last_log = kc.stderr_text();
      const std::string note = o.last_run_note ? o.last_run_note(runs.last_log) : std::string();
      std::printf("%s: run %d exited when idle: %zu lines%s\n", tag.c_str(), run, count_lines(sink), note.c_str());
      std::fflush(stdout);
      return;
    }
    ASSERT_TRUE(
        wait_until([&] { return !owned_partitions(kc.stderr_text(), topic).empty() || !kc.running(); }, 60s, 1ms))
        << "run " << run << " got no assignment within 60 s" << describe(kc);
    const auto assigned_at = Clock::now();
    const bool flowing =
        wait_until([&] { return file_size_or_zero(sink) > size_before || !kc.running(); }, o.nothing_to_do, 1ms);
    ASSERT_TRUE(kc.running()) << "run " << run << " ended before it could be killed" << describe(kc);
    const int delay = flowing ? delay_ms(rng) : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    kc.signal(SIGKILL);
    const auto killed_at = Clock::now();
    const auto st = kc.wait(10s);
    ASSERT_TRUE(st.has_value() && st->killed_by(SIGKILL)) << "run " << run << " was not killed" << describe(kc);
    ++runs.kills;
    std::printf(
        "%s: run %d killed %lld ms after its assignment (%s, +%d ms): %zu lines\n", tag.c_str(), run,
        static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(killed_at - assigned_at).count()),
        flowing ? "records were flowing" : "it had nothing to do", delay, count_lines(sink));
    std::fflush(stdout);
  }
}

}  // namespace kc::test
