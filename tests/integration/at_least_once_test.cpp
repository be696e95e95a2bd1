// At-least-once delivery of `kc consume` against the real broker: crashes
// (kill -9), graceful stops (SIGTERM) and a group member taking over from
// another, under the classic (cooperative and eager) and KIP-848 protocols.
//
// Every test reads back what the jsonl sink wrote and checks, per
// (partition, offset) of the topic, that nothing is missing and how often
// records were written twice.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/common.hpp"
#include "support/jsonl.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/kill9.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

constexpr int kPartitions = 4;

// Records spread evenly over the partitions, `rate` per second (0: at full speed).
ProduceOptions even_spread(double rate = 0) {
  ProduceOptions o;
  o.partitions = kPartitions;
  o.rate = rate;
  return o;
}

std::vector<SinkRecord> read_all(const std::vector<std::filesystem::path>& files) {
  std::vector<SinkRecord> all;
  for (const auto& f : files) {
    auto part = read_jsonl(f);
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return all;
}

// Highest offset per partition in `records` (-1 where none).
std::vector<std::int64_t> max_offsets(const std::vector<SinkRecord>& records) {
  std::vector<std::int64_t> out(kPartitions, -1);
  for (const auto& r : records) {
    if (r.partition >= 0 && r.partition < kPartitions) {
      auto& m = out[static_cast<std::size_t>(r.partition)];
      m = std::max(m, r.offset);
    }
  }
  return out;
}

// ---------------------------------------------------------------- kill -9

// kc consume is killed with SIGKILL at random moments while it works through
// a topic, and restarted each time; the last run drains the topic and exits
// when idle. Across all runs nothing may be missing, and the records written
// twice must be explained by the commit policy.
TEST(KillNine, LosesNothingAndDuplicatesStayWithinCommitPolicy) {
  constexpr std::uint64_t kRecords = 200'000;
  constexpr std::uint64_t kCommitEvery = 1000;
  constexpr int kKills = 5;
  // Duplicate bound. The tool writes a record to the sink buffer, then marks
  // it done; records reach the file only when a commit is sent (the
  // before_commit hook flushes whole lines, the commit then covers exactly
  // what was flushed). kc keeps at most one asynchronous commit in flight and
  // sends the next one when the previous was answered; if 2 * kCommitEvery
  // records are done while one is unanswered it waits for the answer (see
  // maybe_commit in src/source/consumer.cpp). What a kill leaves in the file
  // beyond the broker's commit point is therefore at most the span of the
  // commit in flight: 2 * kCommitEvery + one batch (the count is checked
  // between batches of up to kBatch records). If the coordinator is slower
  // than kc's bounded wait (250 ms) the span can grow, and this check fails
  // on purpose (that is a finding, not a reason to widen it).
  constexpr std::uint64_t kBatch = 512;  // kBatch in src/source/consumer.cpp (run())
  constexpr std::uint64_t kBoundPerKill = 2 * kCommitEvery + kBatch;
  // When to kill: once the run has its assignment AND records flow (its
  // sink file is non-empty, i.e. the first commit was flushed), after a
  // random delay of up to kMaxKillDelayMs. librdkafka prefetches whole
  // partitions here and the tool handles ~500 k records/s on 2 cores, so a
  // run gets through ~25 k records per 50 ms: the delay is kept short so
  // that every kill lands mid-stream (before, between or around commits)
  // rather than after the topic is drained.
  constexpr int kMaxKillDelayMs = 60;
  // A run that gets nothing to do (everything before it was committed) is
  // killed this long after its assignment.
  constexpr auto kNothingToDo = 3s;

  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-kill9");
  const auto group = unique_name("kc-it-kill9-g");

  create_topic(bs, topic, kPartitions);
  ASSERT_EQ(produce(bs, topic, kRecords, even_spread()), kRecords);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords)) << "high watermarks " << join(hw);

  TempDir dir("kc-kill9");
  // A killed member stays in the group until its session times out; the
  // broker's minimum (6 s) keeps each restart short.
  const KillNineOptions options{
      .extra = {"--commit-every", std::to_string(kCommitEvery), "-X", "session.timeout.ms=6000", "-X",
                "heartbeat.interval.ms=1000"},
      .kills = kKills,
      .max_kill_delay_ms = kMaxKillDelayMs,
      .nothing_to_do = kNothingToDo,
      .last_timeout = 120s,
  };
  KillNineRuns runs;
  ASSERT_NO_FATAL_FAILURE(run_kill_nine("KILL9", bs, group, topic, dir.path(), options, runs));
  const int kills = runs.kills;

  // Whole lines only: a fragment left by a kill must have been dropped by
  // the next run (read_jsonl throws on a partial or malformed line).
  const auto records = read_jsonl(runs.sink);
  const auto c = coverage(records, topic, hw);
  const std::uint64_t bound = static_cast<std::uint64_t>(kills) * kBoundPerKill;
  std::printf("KILL9: records=%llu kills=%d lines=%llu missing=%llu duplicates=%llu bound=%llu\n",
              static_cast<unsigned long long>(kRecords), kills, static_cast<unsigned long long>(c.lines),
              static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates),
              static_cast<unsigned long long>(bound));
  std::fflush(stdout);
  EXPECT_EQ(kills, kKills);
  EXPECT_EQ(c.missing, 0u) << c.to_string();
  EXPECT_EQ(c.out_of_range, 0u) << c.to_string();
  EXPECT_EQ(c.value_mismatch, 0u) << c.to_string();
  EXPECT_EQ(c.duplicate_values, 0u) << c.to_string();
  EXPECT_LE(c.duplicates, bound) << c.to_string();
  // The last run committed everything on its way out.
  EXPECT_EQ(committed_offsets(bs, group, topic, kPartitions), hw);
}

// ---------------------------------------------------------------- SIGTERM

// SIGTERM while records are flowing: kc stops, commits exactly what it wrote
// and leaves; a restart continues from there, so nothing is read twice.
TEST(GracefulStop, SigtermThenRestartHasNoDuplicates) {
  constexpr std::uint64_t kRecords = 50'000;
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-sigterm");
  const auto group = unique_name("kc-it-sigterm-g");
  create_topic(bs, topic, kPartitions);
  TempDir dir("kc-sigterm");

  // A stream of ~4 s, so the signal lands while records arrive.
  BackgroundProducer producer(bs, topic, kRecords, even_spread(12'500));

  const auto sink1 = dir / "run-0.jsonl";
  Subprocess first(tool, consume_args(bs, group, topic, sink1, "string", {"--commit-every", "1000"}), dir / "run-0.out",
                   dir / "run-0.err");
  ASSERT_TRUE(wait_until([&] { return file_size_or_zero(sink1) > 0; }, 60s))
      << "the first run wrote nothing within 60 s" << describe(first);
  std::this_thread::sleep_for(700ms);
  first.signal(SIGTERM);
  const auto st1 = first.wait(30s);
  ASSERT_TRUE(st1.has_value()) << "no exit within 30 s of SIGTERM" << describe(first);
  ASSERT_TRUE(st1->ok()) << describe(first);
  EXPECT_NE(first.stderr_text().find("stop requested"), std::string::npos) << describe(first);

  // The graceful stop committed exactly the end of what it wrote.
  const auto written1 = read_jsonl(sink1);
  auto expected_commit = max_offsets(written1);
  for (auto& o : expected_commit) {
    o = o < 0 ? -1 : o + 1;
  }
  EXPECT_EQ(committed_offsets(bs, group, topic, kPartitions), expected_commit) << describe(first);

  const auto sink2 = dir / "run-1.jsonl";
  Subprocess second(tool, consume_args(bs, group, topic, sink2, "string", {"--commit-every", "1000", "--idle-exit-ms", "4000"}),
                    dir / "run-1.out", dir / "run-1.err");
  ASSERT_EQ(producer.join(), kRecords);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  const auto st2 = second.wait(90s);
  ASSERT_TRUE(st2.has_value()) << "the second run did not exit within 90 s" << describe(second);
  ASSERT_TRUE(st2->ok()) << describe(second);

  const auto written2 = read_jsonl(sink2);
  const auto c = coverage(read_all({sink1, sink2}), topic, hw);
  std::printf("SIGTERM: records=%llu first_run=%zu second_run=%zu missing=%llu duplicates=%llu\n",
              static_cast<unsigned long long>(kRecords), written1.size(), written2.size(),
              static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates));
  std::fflush(stdout);
  EXPECT_GT(written1.size(), 0u);
  EXPECT_LT(written1.size(), kRecords) << "the SIGTERM came after the whole stream: not a mid-way stop";
  EXPECT_EQ(c.missing, 0u) << c.to_string();
  EXPECT_EQ(c.duplicates, 0u) << c.to_string();
  EXPECT_EQ(c.out_of_range, 0u) << c.to_string();
  EXPECT_EQ(c.duplicate_values, 0u) << c.to_string();
  EXPECT_EQ(committed_offsets(bs, group, topic, kPartitions), hw);
}

// ---------------------------------------------------------------- group takeover

struct Protocol {
  const char* name;
  std::vector<std::string> args;  // extra kc consume flags
  bool kip848 = false;
};

// For test listings and messages (gtest would print the bytes otherwise).
void PrintTo(const Protocol& p, std::ostream* os) {
  *os << p.name;
}

class Group : public ::testing::TestWithParam<Protocol> {};

// Two members share a 4-partition topic while records flow; one is stopped
// with SIGTERM; the other takes over all partitions and drains the topic.
TEST_P(Group, SecondMemberTakesOverWhenFirstStops) {
  const auto& proto = GetParam();
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name(std::string("kc-it-group-") + proto.name);
  const auto group = unique_name(std::string("kc-it-group-g-") + proto.name);
  create_topic(bs, topic, kPartitions);
  if (proto.kip848) {
    // The broker tells KIP-848 members about assignment changes in heartbeat
    // answers; its default interval (5 s) would make each step of this test
    // wait that long.
    set_group_config(bs, group, {{"consumer.heartbeat.interval.ms", "500"}});
  }
  TempDir dir(std::string("kc-group-") + proto.name);

  // A steady stream (5000 records/s over all partitions) until stopped.
  BackgroundProducer producer(bs, topic, 1'000'000, even_spread(5'000));

  auto args = [&](const std::filesystem::path& sink, std::vector<std::string> extra) {
    extra.insert(extra.end(), proto.args.begin(), proto.args.end());
    return consume_args(bs, group, topic, sink, "string", extra);
  };
  const auto sink_a = dir / "a.jsonl";
  const auto sink_b = dir / "b.jsonl";
  Subprocess a(tool, args(sink_a, {"--commit-every", "1000"}), dir / "a.out", dir / "a.err");
  Subprocess b(tool, args(sink_b, {"--commit-every", "1000", "--idle-exit-ms", "5000"}), dir / "b.out", dir / "b.err");

  auto wrote = [](const std::filesystem::path& f) { return file_size_or_zero(f) > 0; };
  const auto t0 = std::chrono::steady_clock::now();
  const bool shared = wait_until(
      [&] {
        return !owned_partitions(a.stderr_text(), topic).empty() && !owned_partitions(b.stderr_text(), topic).empty() &&
               wrote(sink_a) && wrote(sink_b);
      },
      90s);
  ASSERT_TRUE(shared) << "the two members did not both own partitions and consume within 90 s" << describe(a)
                      << describe(b);
  const auto shared_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  const auto a_owned = owned_partitions(a.stderr_text(), topic);
  const auto b_owned_before = owned_partitions(b.stderr_text(), topic);
  std::this_thread::sleep_for(1s);  // both consume side by side for a while

  a.signal(SIGTERM);
  const auto t1 = std::chrono::steady_clock::now();
  const auto st_a = a.wait(30s);
  ASSERT_TRUE(st_a.has_value()) << "member A did not exit within 30 s of SIGTERM" << describe(a);
  ASSERT_TRUE(st_a->ok()) << describe(a);

  const std::set<int> all = {0, 1, 2, 3};
  ASSERT_TRUE(wait_until([&] { return owned_partitions(b.stderr_text(), topic) == all || !b.running(); }, 60s))
      << "member B did not take over all partitions within 60 s" << describe(b);
  ASSERT_TRUE(b.running()) << "member B ended early" << describe(b);
  const auto takeover_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1);
  std::this_thread::sleep_for(2s);  // B consumes the taken-over partitions while records still flow

  const auto produced = producer.finish();
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(produced));
  const auto st_b = b.wait(90s);
  ASSERT_TRUE(st_b.has_value()) << "member B did not exit within 90 s" << describe(b);
  ASSERT_TRUE(st_b->ok()) << describe(b);

  const auto recs_a = read_jsonl(sink_a);
  const auto recs_b = read_jsonl(sink_b);
  const auto c = coverage(read_all({sink_a, sink_b}), topic, hw);
  std::printf(
      "GROUP[%s]: records=%llu a_lines=%zu b_lines=%zu a_owned=%zu b_owned=%zu shared_after_ms=%lld "
      "takeover_ms=%lld missing=%llu duplicates=%llu\n",
      proto.name, static_cast<unsigned long long>(produced), recs_a.size(), recs_b.size(), a_owned.size(),
      b_owned_before.size(), static_cast<long long>(shared_ms.count()), static_cast<long long>(takeover_ms.count()),
      static_cast<unsigned long long>(c.missing), static_cast<unsigned long long>(c.duplicates));
  std::fflush(stdout);
  EXPECT_EQ(c.missing, 0u) << c.to_string();
  EXPECT_EQ(c.out_of_range, 0u) << c.to_string();
  EXPECT_EQ(c.value_mismatch, 0u) << c.to_string();
  EXPECT_EQ(c.duplicate_values, 0u) << c.to_string();
  // B went on where A stopped, in every partition A had.
  const auto max_a = max_offsets(recs_a);
  const auto max_b = max_offsets(recs_b);
  for (int p : a_owned) {
    const auto i = static_cast<std::size_t>(p);
    EXPECT_GT(max_b[i], max_a[i]) << "partition " << p << ": B did not continue after A";
  }
  EXPECT_EQ(committed_offsets(bs, group, topic, kPartitions), hw);
}

INSTANTIATE_TEST_SUITE_P(Protocols, Group,
                         ::testing::Values(Protocol{"classic_cooperative_sticky", {}},
                                           Protocol{"classic_eager_range",
                                                    {"-X", "partition.assignment.strategy=range"}},
                                           Protocol{"consumer_kip848", {"-X", "group.protocol=consumer"}, true}),
                         [](const ::testing::TestParamInfo<Protocol>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kc::test
