// Parallel processing (parallel.*, kc::AsyncHandler) against the real
// broker:
//
// - key ordering with 256 worker threads and random latency keeps every
//   key's records in order (and an unordered control run shows that the
//   check sees reordering);
// - kill -9 while records are processed in parallel loses nothing;
// - a clean stop with one record never completed commits that record's
//   offset with the done offsets beyond it in the metadata, and the next
//   member of the group redoes that record only;
// - a rebalance while work is in flight never commits work that was not
//   done, drops completions that come after the revoke and has them redone
//   by the new owner.
//
// Every test counts loss and duplicates per record and prints them on one
// line; nothing is assumed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kc/completion.hpp"
#include "kc/config.hpp"
#include "kc/consumer.hpp"
#include "offsets/metadata.hpp"
#include "support/common.hpp"
#include "support/jsonl.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/kill9.hpp"
#include "support/parallel.hpp"
#include "support/records.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long long ms_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
}

// The "skipped N" figure of a `kc consume` summary on stderr; -1 when absent.
long long summary_skipped(const std::string& log) {
  static const std::regex re(R"(skipped (\d+))");
  long long last = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) {
    last = std::stoll((*it)[1].str());
  }
  return last;
}

// Record i goes to partition i % partitions with key "k<i % keys>" and
// value "v-<i>".
void produce_spread(const std::string& bs, const std::string& topic, int records, int partitions, int keys) {
  std::vector<Record> out(static_cast<std::size_t>(records));
  for (int i = 0; i < records; ++i) {
    auto& r = out[static_cast<std::size_t>(i)];
    r.partition = i % partitions;
    r.key = "k" + std::to_string(i % keys);
    r.value = "v-" + std::to_string(i);
  }
  produce_records(bs, topic, out);
}

// ---------------------------------------------------------------- key ordering

// A value of the key-ordering topic: "<key>|<seq>|<i>".
struct KeySeq {
  std::string key;
  long seq = -1;
};

std::optional<KeySeq> parse_key_seq(const std::string& v) {
  const auto a = v.find('|');
  const auto b = a == std::string::npos ? a : v.find('|', a + 1);
  if (b == std::string::npos) {
    return std::nullopt;
  }
  try {
    return KeySeq{v.substr(0, a), std::stol(v.substr(a + 1, b - a - 1))};
  } catch (...) {
    return std::nullopt;
  }
}

struct KeyOrderResult {
  Coverage cov;
  std::uint64_t out_of_order = 0;  // lines whose key's sequence did not grow
  std::uint64_t keys_out_of_order = 0;
  std::uint64_t bad_values = 0;  // a line whose value is not the record produced at its offset
  std::string first_out_of_order;
  long long run_ms = 0;
  long long skipped = -1;
  std::vector<std::int64_t> committed;
  std::vector<std::int64_t> hw;
};

// One partition, kKeys keys with kPerKey records each in a random order
// (records of a key are sometimes adjacent, sometimes far apart); each value
// carries its key and its sequence number within the key. `kc consume`
// with 256 workers and a random per-record latency writes them to a jsonl
// sink; the sink's line order is the order in which handlers wrote.
KeyOrderResult run_key_order(const std::string& ordering) {
  constexpr int kKeys = 10'000;
  constexpr int kPerKey = 5;
  constexpr int kRecords = kKeys * kPerKey;
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-par-order-" + ordering);
  const auto group = unique_name("kc-it-par-order-g");
  const unsigned seed = test_seed();
  std::printf("KEYORDER %s: seed=%u (KC_TEST_SEED=%u repeats the key layout)\n", ordering.c_str(), seed, seed);
  create_topic(bs, topic, 1);

  std::vector<int> slots(kRecords);
  for (int i = 0; i < kRecords; ++i) {
    slots[static_cast<std::size_t>(i)] = i % kKeys;
  }
  std::mt19937 rng(seed);
  std::shuffle(slots.begin(), slots.end(), rng);
  std::vector<Record> records(kRecords);
  std::vector<std::string> values(kRecords);
  std::vector<int> next_seq(kKeys, 0);
  for (int i = 0; i < kRecords; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const int k = slots[u];
    const std::string key = "k" + std::to_string(k);
    values[u] = key + "|" + std::to_string(next_seq[static_cast<std::size_t>(k)]++) + "|" + std::to_string(i);
    records[u].partition = 0;
    records[u].key = key;
    records[u].value = values[u];
  }
  produce_records(bs, topic, records);
  KeyOrderResult r;
  r.hw = high_watermarks(bs, topic, 1);
  EXPECT_EQ(r.hw[0], kRecords);

  TempDir dir("kc-par-order");
  const auto sink = dir / "sink.jsonl";
  // clang-format off
  Subprocess kc(tool, consume_args(bs, group, topic, sink, "string",
                                   {"--ordering", ordering, "--concurrency", "256",
                                    "--simulate-latency-ms", "1", "--simulate-latency-jitter-ms", "5",
                                    "--idle-exit-ms", "3000"}),
                dir / "run.out", dir / "run.err");
  // clang-format on
  const auto t0 = Clock::now();
  const auto st = kc.wait(120s);
  r.run_ms = ms_between(t0, Clock::now());
  EXPECT_TRUE(st.has_value()) << "kc consume did not exit within 120 s" << describe(kc);
  EXPECT_TRUE(st && st->ok()) << describe(kc);
  r.skipped = summary_skipped(kc.stderr_text());

  const auto lines = read_jsonl(sink);
  r.cov = coverage(lines, topic, r.hw);
  std::map<std::string, long> last;
  std::set<std::string> bad_keys;
  for (const auto& l : lines) {
    if (l.offset < 0 || l.offset >= kRecords || l.value != values[static_cast<std::size_t>(l.offset)]) {
      ++r.bad_values;
      continue;
    }
    const auto ks = parse_key_seq(*l.value);
    auto [it, fresh] = last.try_emplace(ks->key, ks->seq);
    if (!fresh) {
      if (ks->seq <= it->second) {
        if (r.out_of_order++ == 0) {
          r.first_out_of_order = "key " + ks->key + ": seq " + std::to_string(ks->seq) + " (offset " +
                                 std::to_string(l.offset) + ") written after seq " + std::to_string(it->second);
        }
        bad_keys.insert(ks->key);
      }
      it->second = std::max(it->second, ks->seq);
    } else if (ks->seq != 0) {
      // The first line of a key must be its first record.
      if (r.out_of_order++ == 0) {
        r.first_out_of_order = "key " + ks->key + ": first written seq is " + std::to_string(ks->seq);
      }
      bad_keys.insert(ks->key);
    }
  }
  r.keys_out_of_order = bad_keys.size();
  r.committed = committed_offsets(bs, group, topic, 1);
  std::printf(
      "KEYORDER %s: records=%d keys=%d lines=%llu missing=%llu duplicates=%llu bad_values=%llu "
      "out_of_order_lines=%llu keys_out_of_order=%llu skipped=%lld run_ms=%lld committed=%s hw=%s%s%s\n",
      ordering.c_str(), kRecords, kKeys, static_cast<unsigned long long>(r.cov.lines),
      static_cast<unsigned long long>(r.cov.missing), static_cast<unsigned long long>(r.cov.duplicates),
      static_cast<unsigned long long>(r.bad_values), static_cast<unsigned long long>(r.out_of_order),
      static_cast<unsigned long long>(r.keys_out_of_order), r.skipped, r.run_ms, join(r.committed).c_str(),
      join(r.hw).c_str(), r.first_out_of_order.empty() ? "" : " first: ", r.first_out_of_order.c_str());
  std::fflush(stdout);
  return r;
}

TEST(ParallelKeyOrdering, EveryKeyInOrderWith256WorkersAndRandomLatency) {
  const auto r = run_key_order("key");
  EXPECT_EQ(r.out_of_order, 0u) << r.first_out_of_order;
  EXPECT_EQ(r.cov.missing, 0u) << r.cov.to_string();
  EXPECT_EQ(r.cov.duplicates, 0u) << r.cov.to_string();
  EXPECT_EQ(r.cov.out_of_range, 0u) << r.cov.to_string();
  EXPECT_EQ(r.bad_values, 0u);
  EXPECT_EQ(r.cov.lines, 50'000u);
  EXPECT_EQ(r.committed, r.hw);
  EXPECT_EQ(r.skipped, 0) << "the summary line must say 'skipped 0' (nothing was committed before)";
}

// The control: the same run without key ordering must show some key out of
// order, or the check above proves nothing.
TEST(ParallelKeyOrdering, UnorderedControlShowsKeysOutOfOrder) {
  const auto r = run_key_order("unordered");
  EXPECT_GT(r.keys_out_of_order, 0u) << "no key was reordered without key ordering: the check cannot fail";
  EXPECT_EQ(r.cov.missing, 0u) << r.cov.to_string();
  EXPECT_EQ(r.cov.duplicates, 0u) << r.cov.to_string();
  EXPECT_EQ(r.bad_values, 0u);
  EXPECT_EQ(r.committed, r.hw);
}

// ---------------------------------------------------------------- kill -9

// `kc consume --ordering key` with the asynchronous handler (simulated
// latency, up to 500 records in flight) is killed with SIGKILL at random
// moments while it works through 100,000 records, and restarted each time;
// the last run drains the topic and exits when idle. Nothing may be missing;
// duplicates are allowed (at least once) and printed. Within each run, the
// records of a key are written in offset order.
TEST(ParallelKillNine, AsyncKeyOrderedLosesNothing) {
  constexpr int kPartitions = 4;
  constexpr int kRecords = 100'000;
  constexpr int kKeys = 4'000;  // key k<j> lives in partition j % 4
  constexpr int kKills = 5;
  constexpr int kMaxKillDelayMs = 600;
  constexpr auto kNothingToDo = 5s;

  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-par-kill9");
  const auto group = unique_name("kc-it-par-kill9-g");
  create_topic(bs, topic, kPartitions);
  produce_spread(bs, topic, kRecords, kPartitions, kKeys);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), kRecords) << "high watermarks " << join(hw);

  TempDir dir("kc-par-kill9");
  const KillNineOptions options{
      .extra = {"--ordering", "key", "--simulate-latency-ms", "2", "--simulate-latency-jitter-ms", "5",
                "--max-in-flight", "500", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"},
      .kills = kKills,
      .max_kill_delay_ms = kMaxKillDelayMs,
      .nothing_to_do = kNothingToDo,
      .last_timeout = 180s,
      .last_run_note =
          [](const std::string& log) { return ", summary skipped " + std::to_string(summary_skipped(log)); },
  };
  KillNineRuns runs;
  ASSERT_NO_FATAL_FAILURE(run_kill_nine("PARKILL9", bs, group, topic, dir.path(), options, runs));
  const long long last_skipped = summary_skipped(runs.last_log);

  const auto lines = read_jsonl(runs.sink);
  const auto c = coverage(lines, topic, hw);
  // Key order within each run: the lines a run wrote are [first line of the
  // run, first line of the next).
  auto run_first_line = runs.first_line;
  run_first_line.push_back(lines.size());
  std::uint64_t order_breaks = 0;
  std::string first_break;
  for (std::size_t r = 0; r + 1 < run_first_line.size(); ++r) {
    std::map<std::string, std::int64_t> last_offset;
    for (std::size_t l = run_first_line[r]; l < std::min(run_first_line[r + 1], lines.size()); ++l) {
      const auto& line = lines[l];
      if (!line.value || line.value->rfind("v-", 0) != 0) {
        continue;
      }
      const auto i = std::stoll(line.value->substr(2));
      const auto key = "k" + std::to_string(i % kKeys);
      auto [it, fresh] = last_offset.try_emplace(key, line.offset);
      if (!fresh) {
        if (line.offset <= it->second && order_breaks++ == 0) {
          first_break = "run " + std::to_string(r) + ": key " + key + " offset " + std::to_string(line.offset) +
                        " written after offset " + std::to_string(it->second);
        }
        it->second = std::max(it->second, line.offset);
      }
    }
  }
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf(
      "PARKILL9: records=%d kills=%d lines=%llu missing=%llu duplicates=%llu out_of_range=%llu "
      "key_order_breaks_within_a_run=%llu last_run_skipped=%lld committed=%s hw=%s\n",
      kRecords, runs.kills, static_cast<unsigned long long>(c.lines), static_cast<unsigned long long>(c.missing),
      static_cast<unsigned long long>(c.duplicates), static_cast<unsigned long long>(c.out_of_range),
      static_cast<unsigned long long>(order_breaks), last_skipped, join(committed).c_str(), join(hw).c_str());
  std::fflush(stdout);
  EXPECT_EQ(runs.kills, kKills);
  EXPECT_EQ(c.missing, 0u) << c.to_string();
  EXPECT_EQ(c.out_of_range, 0u) << c.to_string();
  EXPECT_EQ(c.value_mismatch, 0u) << c.to_string();
  EXPECT_EQ(c.duplicate_values, 0u) << c.to_string();
  EXPECT_EQ(order_breaks, 0u) << first_break;
  EXPECT_GE(last_skipped, 0) << "the summary line has no 'skipped N'";
  EXPECT_EQ(committed, hw);
}

// ---------------------------------------------------------------- clean restart with an incomplete offset

// One partition, 2,000 records, an asynchronous handler that completes every
// record at once except offset 100, whose Completion it keeps and never
// completes. stop() once the other 1,999 are done: kc waits up to the
// shutdown timeout for offset 100, then commits 100 with the done offsets
// 101..1999 in the metadata. A second member of the group must then be
// called for offset 100 only and skip the rest.
TEST(ParallelRestart, IncompleteOffsetIsTheOnlyRecordRedone) {
  constexpr int kRecords = 2000;
  constexpr std::int64_t kStuck = 100;
  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-par-restart");
  const auto group = unique_name("kc-it-par-restart-g");
  create_topic(bs, topic, 1);
  ProduceOptions po;
  po.partitions = 1;
  ASSERT_EQ(produce(bs, topic, kRecords, po), static_cast<std::uint64_t>(kRecords));
  ASSERT_EQ(high_watermarks(bs, topic, 1)[0], kRecords);

  auto config = [&] {
    ConsumerConfig cfg;
    cfg.bootstrap_servers = bs;
    cfg.group = group;
    cfg.topics = {topic};
    cfg.from_beginning = true;
    cfg.shutdown_timeout = 2s;
    cfg.parallel.ordering = Ordering::unordered;
    cfg.parallel.revoke_timeout = 1s;
    return cfg;
  };

  // The first member.
  std::mutex mu;
  std::vector<int> calls1(kRecords, 0);
  std::optional<Completion> stuck;
  std::atomic<int> done1{0};
  RunResult r1;
  long long stop_ms = -1;
  {
    Consumer c1(config(), AsyncHandler([&](const Message& m, Completion c) {
                  const auto o = to_int(m.offset());
                  if (o < 0 || o >= kRecords) {
                    return;
                  }
                  std::lock_guard lock(mu);
                  ++calls1[static_cast<std::size_t>(o)];
                  if (o == kStuck) {
                    stuck = c;  // kept, never completed
                    return;
                  }
                  if (c.done()) {
                    ++done1;
                  }
                }));
    BackgroundRun run(c1);
    const bool all = wait_until([&] { return done1.load() == kRecords - 1; }, 60s);
    ASSERT_TRUE(all) << done1.load() << " of " << kRecords - 1 << " records done within 60 s";
    const auto t = Clock::now();
    c1.stop();
    r1 = run.join(60s);
    stop_ms = ms_between(t, Clock::now());
  }
  {
    std::lock_guard lock(mu);
    ASSERT_TRUE(stuck.has_value()) << "offset " << kStuck << " was never handed to the handler";
    EXPECT_FALSE(stuck->completed());
  }
  const auto after1 = committed_with_metadata(bs, group, topic, 1)[0];
  std::string why;
  const auto done_set = detail::decode_done_offsets(after1.metadata, after1.offset, why);
  std::uint64_t missing_in_metadata = 0;
  bool metadata_has_stuck = false;
  if (done_set) {
    for (std::int64_t o = kStuck + 1; o < kRecords; ++o) {
      missing_in_metadata += done_set->contains(o) ? 0 : 1;
    }
    metadata_has_stuck = done_set->contains(kStuck);
  }
  int calls1_total = 0;
  int calls1_twice = 0;
  for (const int n : calls1) {
    calls1_total += n;
    calls1_twice += n > 1 ? 1 : 0;
  }
  const TopicPartition tp{topic, Partition{0}};

  // The second member of the same group.
  std::vector<int> calls2(kRecords, 0);
  std::vector<std::int64_t> order2;
  ConsumerConfig cfg2 = config();
  cfg2.idle_exit = 3s;
  ConsumerHooks hooks2;
  std::optional<Clock::time_point> assigned2;
  hooks2.on_assign = [&](std::span<const TopicPartition> tps) {
    if (!tps.empty() && !assigned2) {
      assigned2 = Clock::now();
    }
  };
  Consumer c2(cfg2, AsyncHandler([&](const Message& m, Completion c) {
                const auto o = to_int(m.offset());
                if (o >= 0 && o < kRecords) {
                  ++calls2[static_cast<std::size_t>(o)];
                }
                order2.push_back(o);
                c.done();
              }),
              hooks2);
  const auto start2 = Clock::now();
  const auto r2 = c2.run();
  const long long assign2_ms = assigned2 ? ms_between(start2, *assigned2) : -1;
  const auto after2 = committed_offsets(bs, group, topic, 1);
  int calls2_total = 0;
  for (const int n : calls2) {
    calls2_total += n;
  }
  // The kept Completion now belongs to a consumer that is gone.
  const bool late_done = stuck->done();

  std::string order_text;
  for (std::size_t i = 0; i < std::min<std::size_t>(order2.size(), 10); ++i) {
    order_text += (i ? "," : "") + std::to_string(order2[i]);
  }
  std::printf(
      "PARRESTART: records=%d first{calls=%d twice=%d done=%d stop_ms=%lld reason=%d stats{consumed=%llu done=%llu "
      "skipped=%llu late=%llu} committed=%lld metadata_bytes=%zu done_in_metadata=%llu missing_in_metadata=%llu} "
      "second{calls=%d offsets=[%s] stats{consumed=%llu done=%llu skipped=%llu} committed=%s} "
      "late_done_returned=%d second_assigned_after_ms=%lld\n",
      kRecords, calls1_total, calls1_twice, done1.load(), stop_ms, static_cast<int>(r1.reason),
      static_cast<unsigned long long>(r1.stats.consumed), static_cast<unsigned long long>(r1.stats.done),
      static_cast<unsigned long long>(r1.stats.skipped), static_cast<unsigned long long>(r1.stats.late_completions),
      static_cast<long long>(after1.offset), after1.metadata.size(),
      static_cast<unsigned long long>(done_set ? done_set->count() : 0),
      static_cast<unsigned long long>(missing_in_metadata), calls2_total, order_text.c_str(),
      static_cast<unsigned long long>(r2.stats.consumed), static_cast<unsigned long long>(r2.stats.done),
      static_cast<unsigned long long>(r2.stats.skipped), join(after2).c_str(), late_done ? 1 : 0, assign2_ms);
  std::fflush(stdout);

  // The first member: every record called once; commits 100 + metadata.
  EXPECT_EQ(calls1_total, kRecords);
  EXPECT_EQ(calls1_twice, 0);
  EXPECT_EQ(r1.reason, StopReason::requested) << r1.error;
  // Bounded: the shutdown timeout (2 s) for the stuck record, one revoke
  // timeout (1 s) on close, and the broker round trips.
  EXPECT_LE(stop_ms, 10'000) << "stop() with one record stuck took too long";
  EXPECT_EQ(r1.stats.done, static_cast<std::uint64_t>(kRecords - 1));
  EXPECT_EQ(after1.offset, kStuck) << "the commit point after the clean stop";
  EXPECT_TRUE(done_set.has_value()) << "metadata '" << after1.metadata.substr(0, 80) << "' does not decode: " << why;
  EXPECT_EQ(missing_in_metadata, 0u) << "done offsets beyond " << kStuck << " missing from the metadata";
  EXPECT_FALSE(metadata_has_stuck) << "the metadata names the stuck record as done";
  EXPECT_EQ(done_set ? done_set->count() : 0, static_cast<std::uint64_t>(kRecords - kStuck - 1));
  EXPECT_EQ(r1.stats.committed.contains(tp) ? to_int(r1.stats.committed.at(tp)) : -1, kStuck);
  // A clean stop leaves the group (contract 6), so the next member is
  // assigned at once, not after the first one's session timeout (45 s).
  EXPECT_GE(assign2_ms, 0) << "the second member got no assignment";
  EXPECT_LT(assign2_ms, 15'000) << "the second member waited for the first one's session to time out: the clean "
                                   "stop did not leave the group";
  // The second member: offset 100 only.
  EXPECT_EQ(calls2_total, 1) << "handler calls of the second member (offsets " << order_text << ")";
  EXPECT_EQ(calls2[static_cast<std::size_t>(kStuck)], 1);
  EXPECT_EQ(r2.stats.skipped, static_cast<std::uint64_t>(kRecords - kStuck - 1));
  EXPECT_EQ(r2.stats.consumed, 1u);
  EXPECT_EQ(r2.stats.done, 1u);
  EXPECT_EQ(r2.reason, StopReason::idle) << r2.error;
  EXPECT_EQ(after2, std::vector<std::int64_t>{kRecords});
  EXPECT_FALSE(late_done) << "completing a record of a consumer that is gone must return false";
}

// ---------------------------------------------------------------- rebalance with work in flight

// Two members (asynchronous handler, key ordering, completions from timer
// threads after 1-50 ms, and 2 s for about 1% of the records) share six
// partitions. B joins while A has records in flight; later A stops and B
// drains everything; a third member drains what is left. revoke_timeout is
// 100 ms, so A's slow records complete after their partitions were revoked:
// kc must drop them (RunStats::late_completions) and B must process them
// again. Whenever a member's partition is revoked, the group's commit for it
// (read from the broker inside on_revoke, before the partition is released)
// must cover only records done in that assignment or done before it
// (the metadata seen at on_assign).
TEST(ParallelRebalance, InFlightWorkIsNeverCommittedAndLateCompletionsAreRedone) {
  constexpr int kPartitions = 6;
  constexpr int kRecords = 36'000;
  constexpr int kPerPartition = kRecords / kPartitions;
  constexpr int kKeys = 600;  // key k<j> lives in partition j % 6
  constexpr std::size_t kMaxInFlight = 120;
  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-par-rebalance");
  const auto group = unique_name("kc-it-par-rebalance-g");
  const unsigned seed = test_seed();
  std::printf("PARREBALANCE: seed=%u (KC_TEST_SEED=%u repeats the delays)\n", seed, seed);
  create_topic(bs, topic, kPartitions);
  produce_spread(bs, topic, kRecords, kPartitions, kKeys);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(hw, std::vector<std::int64_t>(kPartitions, kPerPartition));
  auto index_of = [](int p, std::int64_t o) { return static_cast<std::size_t>(o * kPartitions + p); };
  auto slow = [](std::int64_t o) { return o % 97 == 13; };

  // ---- bookkeeping (all under `mu`)
  struct Event {
    int member;
    int epoch;
    Clock::time_point called;
    std::optional<Clock::time_point> completed;
    bool late = false;  // completed after its assignment ended (on_revoke / on_lost / end of run)
  };
  struct Epoch {
    int member;
    int partition;
    std::int64_t start;                // committed offset at on_assign (0: none)
    std::set<std::int64_t> prev_done;  // done offsets in the metadata at on_assign
    bool ended = false;
    bool checked = false;         // ended by on_revoke, commit checked
    std::set<std::int64_t> done;  // offsets completed in this epoch (before it ended)
    std::map<std::string, int> keys_in_flight;
  };
  struct Member {
    const char* name;
    std::map<int, int> epoch_of;  // partition -> current epoch
    std::uint64_t late = 0;
    std::uint64_t late_while_running = 0;  // late, and >= 500 ms before run() returned (known afterwards)
    std::vector<Clock::time_point> late_times;
    std::optional<Clock::time_point> run_end;
    std::optional<Clock::time_point> last_assign;
    std::uint64_t accepted = 0;
    std::uint64_t in_flight = 0;
    std::uint64_t revokes = 0;
  };
  std::mutex mu;
  std::vector<std::vector<Event>> events(kRecords);
  std::vector<Epoch> epochs;
  Member members[2] = {{"A", {}, 0, 0, {}, {}, {}, 0, 0, 0}, {"B", {}, 0, 0, {}, {}, {}, 0, 0, 0}};
  std::uint64_t violations = 0;
  std::string first_violation;
  std::uint64_t commit_checks = 0;
  std::uint64_t redone_despite_metadata = 0;
  auto violation = [&](const std::string& what) {  // with `mu` held
    if (violations++ == 0) {
      first_violation = what;
    }
    if (violations <= 5) {
      // At once, so they are on record even if the run never ends.
      std::printf("PARREBALANCE: violation: %s\n", what.c_str());
      std::fflush(stdout);
    }
  };

  Timer timer(2);
  std::mutex rng_mu;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> fast_ms(1, 50);

  // One reader per member, used from its poll thread only (in its hooks):
  // made in advance so that a hook does not spend time creating a client.
  CommittedReader readers[2] = {CommittedReader(bs, group), CommittedReader(bs, group)};
  auto make_hooks = [&](int who) {
    ConsumerHooks h;
    h.on_assign = [&, who](std::span<const TopicPartition> tps) {
      std::vector<Committed> c;
      std::string error;
      try {
        c = readers[who].read(topic, kPartitions);
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::lock_guard lock(mu);
      for (const auto& tp : tps) {
        const int p = to_int(tp.partition);
        Epoch e{who, p, 0, {}, false, false, {}, {}};
        if (!error.empty()) {
          violation(std::string(members[who].name) + " on_assign: cannot read committed offsets: " + error);
        } else {
          const auto& cp = c[static_cast<std::size_t>(p)];
          e.start = std::max<std::int64_t>(cp.offset, 0);
          std::string why;
          if (cp.offset >= 0 && !cp.metadata.empty()) {
            if (auto d = detail::decode_done_offsets(cp.metadata, cp.offset, why)) {
              for (const auto& r : d->ranges()) {
                for (auto o = r.first; o <= r.last; ++o) {
                  e.prev_done.insert(o);
                }
              }
            } else {
              violation(std::string(members[who].name) + " on_assign p" + std::to_string(p) + ": metadata '" +
                        cp.metadata.substr(0, 60) + "' does not decode: " + why);
            }
          }
        }
        epochs.push_back(std::move(e));
        members[who].epoch_of[p] = static_cast<int>(epochs.size() - 1);
      }
      if (!tps.empty()) {
        members[who].last_assign = Clock::now();
      }
    };
    auto end_epochs = [&, who](std::span<const TopicPartition> tps, bool check) {
      std::vector<std::pair<int, int>> ended;  // (partition, epoch)
      {
        std::lock_guard lock(mu);
        for (const auto& tp : tps) {
          const int p = to_int(tp.partition);
          const auto it = members[who].epoch_of.find(p);
          if (it == members[who].epoch_of.end()) {
            violation(std::string(members[who].name) + " revoked p" + std::to_string(p) + " it did not own");
            continue;
          }
          epochs[static_cast<std::size_t>(it->second)].ended = true;
          ended.emplace_back(p, it->second);
          members[who].epoch_of.erase(it);
          ++members[who].revokes;
        }
      }
      if (!check || ended.empty()) {
        return;
      }
      // The commit made by the revoke; nobody else owns these partitions yet.
      std::vector<Committed> c;
      try {
        c = readers[who].read(topic, kPartitions);
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        violation(std::string(members[who].name) + " on_revoke: cannot read committed offsets: " + e.what());
        return;
      }
      std::lock_guard lock(mu);
      for (const auto& [p, ei] : ended) {
        auto& e = epochs[static_cast<std::size_t>(ei)];
        e.checked = true;
        ++commit_checks;
        const auto& cp = c[static_cast<std::size_t>(p)];
        auto ok = [&](std::int64_t o) { return o < e.start || e.done.contains(o) || e.prev_done.contains(o); };
        const std::string where = std::string(members[who].name) + " revoke of p" + std::to_string(p) + " committed " +
                                  std::to_string(cp.offset) + " (assignment started at " + std::to_string(e.start) +
                                  "): ";
        for (std::int64_t o = e.start; o < cp.offset; ++o) {
          if (!ok(o)) {
            violation(where + "offset " + std::to_string(o) + " below it was not done");
            break;
          }
        }
        if (cp.offset >= 0 && !cp.metadata.empty()) {
          std::string why;
          if (const auto d = detail::decode_done_offsets(cp.metadata, cp.offset, why)) {
            for (const auto& r : d->ranges()) {
              for (auto o = r.first; o <= r.last; ++o) {
                if (!ok(o)) {
                  violation(where + "its metadata names offset " + std::to_string(o) + ", which was not done");
                  break;
                }
              }
            }
          } else {
            violation(where + "metadata does not decode: " + why);
          }
        }
      }
    };
    h.on_revoke = [end_epochs](std::span<const TopicPartition> tps) { end_epochs(tps, true); };
    h.on_lost = [end_epochs](std::span<const TopicPartition> tps) { end_epochs(tps, false); };
    return h;
  };

  auto make_handler = [&](int who) {
    return AsyncHandler([&, who](const Message& m, Completion c) {
      const int p = to_int(m.partition());
      const auto o = to_int(m.offset());
      const auto key = m.key() ? std::string(as_text(*m.key())) : std::string();
      if (p < 0 || p >= kPartitions || o < 0 || o >= kPerPartition) {
        return;
      }
      const auto i = index_of(p, o);
      int ei = -1;
      std::size_t ev = 0;
      {
        std::lock_guard lock(mu);
        const auto it = members[who].epoch_of.find(p);
        if (it == members[who].epoch_of.end()) {
          violation(std::string(members[who].name) + " called for p" + std::to_string(p) + " o" + std::to_string(o) +
                    ", which it does not own");
          return;
        }
        ei = it->second;
        auto& e = epochs[static_cast<std::size_t>(ei)];
        if (e.prev_done.contains(o)) {
          ++redone_despite_metadata;
        }
        if (++e.keys_in_flight[key] > 1) {
          violation(std::string(members[who].name) + ": two records of key " + key + " in flight (p" +
                    std::to_string(p) + " o" + std::to_string(o) + ")");
        }
        events[i].push_back(Event{who, ei, Clock::now(), std::nullopt, false});
        ev = events[i].size() - 1;
        ++members[who].in_flight;
      }
      int delay = 2000;
      if (!slow(o)) {
        std::lock_guard lock(rng_mu);
        delay = fast_ms(rng);
      }
      timer.after(std::chrono::milliseconds(delay), [&, who, i, ev, ei, key, c]() mutable {
        {
          std::lock_guard lock(mu);
          auto& e = epochs[static_cast<std::size_t>(ei)];
          auto& x = events[i][ev];
          x.completed = Clock::now();
          x.late = e.ended;
          --e.keys_in_flight[key];
          --members[who].in_flight;
          if (x.late) {
            ++members[who].late;
            members[who].late_times.push_back(*x.completed);
          } else {
            e.done.insert(static_cast<std::int64_t>(i / kPartitions));
            ++members[who].accepted;
          }
        }
        c.done();
      });
    });
  };

  auto config = [&] {
    ConsumerConfig cfg;
    cfg.bootstrap_servers = bs;
    cfg.group = group;
    cfg.topics = {topic};
    cfg.from_beginning = true;
    cfg.shutdown_timeout = 1s;
    cfg.commit.every_messages = 200;
    cfg.commit.interval = 500ms;
    cfg.parallel.ordering = Ordering::key;
    cfg.parallel.max_in_flight = kMaxInFlight;
    cfg.parallel.revoke_timeout = 100ms;
    cfg.librdkafka["session.timeout.ms"] = "6000";
    cfg.librdkafka["heartbeat.interval.ms"] = "500";
    return cfg;
  };
  auto locked = [&](auto f) {
    std::lock_guard lock(mu);
    return f();
  };

  const auto t0 = Clock::now();
  Consumer a(config(), make_handler(0), make_hooks(0));
  auto cfg_b = config();
  cfg_b.idle_exit = 4s;
  cfg_b.shutdown_timeout = 10s;  // B's own shutdown is not what this test is about
  Consumer b(cfg_b, make_handler(1), make_hooks(1));
  RunResult ra;
  RunResult rb;
  long long b_join_ms = -1;
  long long a_stop_ms = -1;
  std::uint64_t a_in_flight_at_join = 0;
  {
    BackgroundRun run_a(a);
    ASSERT_TRUE(wait_until(
        [&] { return locked([&] { return members[0].accepted >= 3000 && members[0].in_flight >= 50; }); }, 60s, 5ms))
        << "A did not get going (" << locked([&] { return members[0].accepted; }) << " done)";
    a_in_flight_at_join = locked([&] { return members[0].in_flight; });
    b_join_ms = ms_between(t0, Clock::now());
    BackgroundRun run_b(b);
    ASSERT_TRUE(
        wait_until([&] { return locked([&] { return members[1].accepted >= 1500 && members[0].revokes > 0; }); }, 60s))
        << "B did not take over partitions from A within 60 s";
    // Let A's slow records (2 s) of the revoked partitions come in while A runs.
    std::this_thread::sleep_for(2500ms);
    a_stop_ms = ms_between(t0, Clock::now());
    a.stop();
    ra = run_a.join(60s);
    locked([&] {
      // Completions that come now are dropped by kc whether or not a revoke
      // hook ended A's assignments at shutdown.
      members[0].run_end = Clock::now();
      for (auto& e : epochs) {
        e.ended = e.ended || e.member == 0;
      }
      return 0;
    });
    rb = run_b.join(180s);
    locked([&] {
      members[1].run_end = Clock::now();
      return 0;
    });
  }
  EXPECT_TRUE(timer.wait_idle(10s));
  // Epochs that no hook ended (no revoke at shutdown): ended now.
  locked([&] {
    for (auto& e : epochs) {
      e.ended = true;
    }
    return 0;
  });

  // The final drain: a plain member of the group takes whatever is left.
  std::vector<int> drained(kRecords, 0);
  ConsumerConfig cfg_c;
  cfg_c.bootstrap_servers = bs;
  cfg_c.group = group;
  cfg_c.topics = {topic};
  cfg_c.from_beginning = true;
  cfg_c.idle_exit = 3s;
  Consumer drain(cfg_c, [&](const Message& m) {
    const int p = to_int(m.partition());
    const auto o = to_int(m.offset());
    if (p >= 0 && p < kPartitions && o >= 0 && o < kPerPartition) {
      ++drained[index_of(p, o)];
    }
    return Outcome::done;
  });
  const auto rc = drain.run();

  // ---- the counts
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t late_records = 0;
  std::uint64_t late_redone = 0;
  std::uint64_t drained_total = 0;
  std::string first_lost;
  for (int p = 0; p < kPartitions; ++p) {
    for (std::int64_t o = 0; o < kPerPartition; ++o) {
      const auto i = index_of(p, o);
      int accepted = drained[i];
      bool late = false;
      int late_epoch = -1;
      drained_total += static_cast<std::uint64_t>(drained[i]);
      for (const auto& e : events[i]) {
        if (e.completed && !e.late) {
          ++accepted;
        }
        if (e.late) {
          late = true;
          late_epoch = std::max(late_epoch, e.epoch);
        }
      }
      if (accepted == 0) {
        if (lost++ == 0) {
          first_lost = "p" + std::to_string(p) + " o" + std::to_string(o) + ": " + std::to_string(events[i].size()) +
                       " handler calls, none completed within its assignment";
        }
      }
      duplicates += accepted > 1 ? static_cast<std::uint64_t>(accepted - 1) : 0;
      if (late) {
        ++late_records;
        bool redone = drained[i] > 0;
        for (const auto& e : events[i]) {
          redone = redone || (e.epoch > late_epoch && e.completed && !e.late);
        }
        late_redone += redone ? 1 : 0;
      }
    }
  }
  for (auto& mb : members) {
    for (const auto t : mb.late_times) {
      if (mb.run_end && t + 500ms < *mb.run_end) {
        ++mb.late_while_running;
      }
    }
  }
  std::uint64_t prev_done_a = 0;
  std::uint64_t prev_done_b = 0;
  std::uint64_t epochs_checked = 0;
  for (const auto& e : epochs) {
    (e.member == 0 ? prev_done_a : prev_done_b) += e.prev_done.size();
    epochs_checked += e.checked ? 1 : 0;
  }
  const long long takeover_ms =
      members[1].last_assign && members[0].run_end && *members[1].last_assign > *members[0].run_end
          ? ms_between(*members[0].run_end, *members[1].last_assign)
          : -1;
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf("PARREBALANCE: A's run() returned %lld ms after stop(); B got A's partitions %lld ms after that\n",
              members[0].run_end ? ms_between(t0, *members[0].run_end) - a_stop_ms : -1LL, takeover_ms);
  std::printf(
      "PARREBALANCE: records=%d B_joined_at_ms=%lld (A in flight %llu) A_stopped_at_ms=%lld epochs=%zu "
      "(commit checked at revoke: %llu) lost=%llu duplicates=%llu late_records=%llu late_redone=%llu "
      "drained_by_third=%llu violations=%llu redone_despite_metadata=%llu\n"
      "PARREBALANCE: A{accepted=%llu late=%llu late_while_running=%llu revokes=%llu stats{consumed=%llu done=%llu "
      "late=%llu skipped=%llu (metadata offsets at assign %llu) commits_ok=%llu commits_failed=%llu}} "
      "B{accepted=%llu late=%llu revokes=%llu stats{consumed=%llu done=%llu late=%llu skipped=%llu (metadata offsets "
      "at assign %llu) commits_ok=%llu}} third{consumed=%llu} committed=%s hw=%s%s%s\n",
      kRecords, b_join_ms, static_cast<unsigned long long>(a_in_flight_at_join), a_stop_ms, epochs.size(),
      static_cast<unsigned long long>(epochs_checked), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(late_records),
      static_cast<unsigned long long>(late_redone), static_cast<unsigned long long>(drained_total),
      static_cast<unsigned long long>(violations), static_cast<unsigned long long>(redone_despite_metadata),
      static_cast<unsigned long long>(members[0].accepted), static_cast<unsigned long long>(members[0].late),
      static_cast<unsigned long long>(members[0].late_while_running),
      static_cast<unsigned long long>(members[0].revokes), static_cast<unsigned long long>(ra.stats.consumed),
      static_cast<unsigned long long>(ra.stats.done), static_cast<unsigned long long>(ra.stats.late_completions),
      static_cast<unsigned long long>(ra.stats.skipped), static_cast<unsigned long long>(prev_done_a),
      static_cast<unsigned long long>(ra.stats.commits_ok), static_cast<unsigned long long>(ra.stats.commits_failed),
      static_cast<unsigned long long>(members[1].accepted), static_cast<unsigned long long>(members[1].late),
      static_cast<unsigned long long>(members[1].revokes), static_cast<unsigned long long>(rb.stats.consumed),
      static_cast<unsigned long long>(rb.stats.done), static_cast<unsigned long long>(rb.stats.late_completions),
      static_cast<unsigned long long>(rb.stats.skipped), static_cast<unsigned long long>(prev_done_b),
      static_cast<unsigned long long>(rb.stats.commits_ok), static_cast<unsigned long long>(rc.stats.consumed),
      join(committed).c_str(), join(hw).c_str(),
      first_violation.empty() ? "" : "\nPARREBALANCE: first violation: ", first_violation.c_str());
  std::fflush(stdout);

  EXPECT_EQ(violations, 0u) << first_violation;
  EXPECT_EQ(lost, 0u) << first_lost;
  EXPECT_GT(commit_checks, 0u) << "no revoke was checked";
  // The test only means something when A's slow records outlived the revoke.
  EXPECT_GT(members[0].late, 0u) << "no completion came after a revoke: the test did not exercise late completions";
  EXPECT_EQ(late_redone, late_records) << "records whose only completion came after their revoke were not redone";
  EXPECT_GE(ra.stats.late_completions, members[0].late_while_running)
      << "completions that came after the revoke while A still ran were not counted as late";
  EXPECT_GT(ra.stats.late_completions, 0u);
  EXPECT_EQ(redone_despite_metadata, 0u) << "records named done in the metadata were handed out again";
  EXPECT_EQ(ra.stats.skipped, prev_done_a);
  EXPECT_EQ(rb.stats.skipped, prev_done_b) << "B must skip exactly the done offsets in the metadata it took over";
  EXPECT_EQ(ra.reason, StopReason::requested) << ra.error;
  EXPECT_EQ(rb.reason, StopReason::idle) << rb.error;
  // A's clean stop leaves the group (contract 6): B is assigned A's
  // partitions at its next heartbeat (500 ms), not after A's session timed
  // out (6 s).
  EXPECT_GE(takeover_ms, 0) << "B never got A's partitions";
  EXPECT_LT(takeover_ms, 4000) << "B got A's partitions only " << takeover_ms
                               << " ms after A's run() returned: A's clean stop did not leave the group";
  EXPECT_EQ(committed, hw);
  std::printf("PARREBALANCE: duplicates=%llu (allowed: at least once)\n", static_cast<unsigned long long>(duplicates));
}

}  // namespace
}  // namespace kc::test
