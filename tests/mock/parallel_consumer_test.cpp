// Parallel processing of kc::Consumer on librdkafka's mock cluster (label
// mock): an asynchronous handler whose records complete later, in random
// order, from timer threads.
//
// - The commit point never passes a record that is not done (done, or dead
//   and dead-lettered), sampled from the broker every few milliseconds while
//   records complete in random order and fail at random (retry, dead, thrown,
//   fail()), in all three ordering modes, for three seeds each.
// - With key ordering a record backing off for a retry holds only its key; a
//   partition-mode control shows that the measurement sees the difference.
// - A done set too large for the commit metadata pauses the partition: no
//   error, and everything completes once the stuck records do. One stuck
//   record alone (one run of done offsets) does not stop the partition.
//
// Loss, duplicates and violations are counted per record and printed on one
// line per case, never assumed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kc/completion.hpp"
#include "kc/consumer.hpp"
#include "kc/deadletter.hpp"
#include "kc/embedded.hpp"
#include "kc/producer.hpp"
#include "mock/consumer_fixture.hpp"
#include "offsets/metadata.hpp"
#include "support/common.hpp"
#include "support/kafka.hpp"
#include "support/parallel.hpp"
#include "support/records.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using kc::test::Committed;
using kc::test::CommittedReader;
using kc::test::Timer;

kc::Bytes bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text(const std::optional<kc::Bytes>& b) {
  return b ? std::string(kc::as_text(*b)) : std::string("(null)");
}

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

const char* ordering_name(kc::Ordering o) {
  switch (o) {
    case kc::Ordering::partition: return "partition";
    case kc::Ordering::key: return "key";
    case kc::Ordering::unordered: return "unordered";
  }
  return "?";
}

long long ms_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
}

class ParallelOnMock : public ::testing::Test {
 protected:
  // Produces `n` records to `topic` (created with `partitions`): record i to
  // partition i % partitions with key key_of(i) (nullopt: null key) and value "v<i>".
  void produce(const std::string& topic, int partitions, int n,
               const std::function<std::optional<std::string>(int)>& key_of) {
    broker_.create_topic(topic, partitions);
    kc::Producer p({broker_.bootstrap_servers(), {}});
    for (int i = 0; i < n; ++i) {
      const std::string v = "v" + std::to_string(i);
      const auto k = key_of(i);
      p.produce(topic, k ? std::optional<kc::Bytes>(bytes(*k)) : std::nullopt, bytes(v), i % partitions);
    }
    ASSERT_TRUE(p.flush(60s)) << "producing " << n << " records to " << topic;
  }

  kc::ConsumerConfig config(const std::string& group, const std::string& topic) const {
    auto c = kc::test::mock_consumer_config(broker_, group, topic);
    // Frequent commits, so the samplers below see many commit points.
    c.commit.every_messages = 100;
    c.commit.interval = 100ms;
    return c;
  }

  kc::EmbeddedBroker broker_{1};
};

// ================================================================ property

// The fate of one attempt of one record, drawn from the seed.
enum class Act : std::uint8_t {
  done,        // done() later
  throw_now,   // the handler call throws std::runtime_error (retriable)
  retry,       // retry() later
  dead,        // dead(PermanentError) later
  fail_perm,   // fail(PermanentError) later: dead
  fail_retry,  // fail(runtime_error) later: retry
};

struct PropertyResult {
  std::uint64_t records = 0;
  std::uint64_t calls = 0;
  std::uint64_t expected_calls = 0;
  std::uint64_t done = 0;
  std::uint64_t dead = 0;
  std::uint64_t lost = 0;        // a record neither done nor in the dead-letter topic
  std::uint64_t duplicates = 0;  // done twice, or in the dead-letter topic twice, or both
  std::uint64_t wrong_fate = 0;  // done where dead was expected or the other way round, or wrong call count
  std::uint64_t samples = 0;
  std::uint64_t samples_with_metadata = 0;  // samples whose metadata held done offsets past the commit point
  std::uint64_t sample_errors = 0;
  std::uint64_t commit_violations = 0;
  std::uint64_t order_violations = 0;
  std::uint64_t completion_refused = 0;  // done()/retry()/... returned false on a first completion
  std::string first_commit_violation;
  std::string first_order_violation;
  std::string first_wrong;
};

class ParallelProperty : public ParallelOnMock, public ::testing::WithParamInterface<kc::Ordering> {
 protected:
  PropertyResult run_case(kc::Ordering ordering, unsigned seed, int index);
};

PropertyResult ParallelProperty::run_case(kc::Ordering ordering, unsigned seed, int index) {
  constexpr int kPartitions = 3;
  constexpr int kPerPartition = 600;
  constexpr int kRecords = kPartitions * kPerPartition;
  constexpr int kKeys = 24;
  constexpr int kMaxAttempts = 3;
  constexpr std::size_t kMaxInFlight = 64;

  const std::string topic = std::string("prop-") + ordering_name(ordering) + "-" + std::to_string(index);
  const std::string dlq_topic = topic + ".dead-letter";
  const std::string group = topic + "-g";
  broker_.create_topic(dlq_topic, kPartitions);

  // Keys drawn from the seed: records of a key are spread irregularly over
  // its partition, near and far apart.
  std::vector<std::string> key_of(kRecords);
  {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> k(0, kKeys - 1);
    for (auto& s : key_of) {
      s = "k" + std::to_string(k(rng));
    }
  }
  produce(topic, kPartitions, kRecords,
          [&](int i) { return std::optional<std::string>(key_of[static_cast<std::size_t>(i)]); });
  // Record i is at partition i % kPartitions, offset i / kPartitions.
  auto index_of = [](int p, std::int64_t o) { return static_cast<std::size_t>(o * kPartitions + p); };

  // The plan: per record and attempt, drawn from the seed; 1% of the records
  // ("poison") ask for a retry on every attempt and end dead.
  auto act = [&](int p, std::int64_t o, int attempt) {
    const auto base = mix(seed * 0x100000001b3ull + static_cast<std::uint64_t>(index_of(p, o)));
    if (base % 100 == 7) {
      return Act::retry;
    }
    const auto h = mix(base + static_cast<std::uint64_t>(attempt)) % 1000;
    return h < 30    ? Act::throw_now
           : h < 60  ? Act::retry
           : h < 80  ? Act::dead
           : h < 90  ? Act::fail_perm
           : h < 100 ? Act::fail_retry
                     : Act::done;
  };
  // Expected fate and number of handler calls of every record.
  std::vector<std::uint8_t> expect_dead(kRecords, 0);
  std::vector<int> expect_calls(kRecords, 0);
  std::uint64_t expect_retries = 0;
  for (int i = 0; i < kRecords; ++i) {
    const int p = i % kPartitions;
    const std::int64_t o = i / kPartitions;
    for (int a = 1; a <= kMaxAttempts; ++a) {
      const auto x = act(p, o, a);
      expect_calls[static_cast<std::size_t>(i)] = a;
      if (x == Act::done) {
        break;
      }
      if (x == Act::dead || x == Act::fail_perm) {
        expect_dead[static_cast<std::size_t>(i)] = 1;
        break;
      }
      if (a == kMaxAttempts) {
        expect_dead[static_cast<std::size_t>(i)] = 1;
      } else {
        ++expect_retries;
      }
    }
  }

  PropertyResult res;
  res.records = kRecords;
  std::mutex mu;
  // Per record: 0 not finished, 1 done, 2 dead (decided: kc dead-letters it).
  // Set BEFORE the completion is handed to kc, so whatever kc may have seen
  // is already here (the check below can only be lenient by that instant).
  std::vector<std::uint8_t> fate(kRecords, 0);
  std::vector<int> calls(kRecords, 0);
  std::vector<int> finishes(kRecords, 0);
  std::map<int, int> in_flight_partition;
  std::map<std::pair<int, std::string>, int> in_flight_key;
  std::size_t in_flight = 0;
  std::map<int, std::int64_t> last_start_partition;
  std::map<std::pair<int, std::string>, std::int64_t> last_start_key;
  auto order_violation = [&](const std::string& what) {
    if (res.order_violations++ == 0) {
      res.first_order_violation = what;
    }
  };

  Timer timer(2);  // two threads: completions also race each other
  std::mt19937 delay_rng(seed ^ 0x5bd1e995u);
  std::uniform_int_distribution<int> delay_us(0, 3000);

  kc::ConsumerConfig cfg = config(group, topic);
  cfg.parallel.ordering = ordering;
  cfg.parallel.max_in_flight = kMaxInFlight;
  cfg.retry.max_attempts = kMaxAttempts;
  cfg.retry.backoff = 20ms;
  cfg.retry.backoff_max = 50ms;
  cfg.dead_letter.enabled = true;
  cfg.idle_exit = 2s;

  kc::AsyncHandler handler = [&](const kc::Message& m, kc::Completion c) {
    const int p = kc::to_int(m.partition());
    const std::int64_t o = kc::to_int(m.offset());
    const int attempt = m.attempt();
    const auto i = index_of(p, o);
    const std::string key = text(m.key());
    const auto x = act(p, o, attempt);
    {
      std::lock_guard lock(mu);
      ++res.calls;
      if (i >= fate.size() || key != key_of[i]) {
        order_violation("p" + std::to_string(p) + " o" + std::to_string(o) + " has key " + key + ", produced " +
                        (i < key_of.size() ? key_of[i] : "nothing"));
        return;  // dropped: it completes as a failure
      }
      ++calls[i];
      if (attempt != calls[i]) {
        order_violation("p" + std::to_string(p) + " o" + std::to_string(o) + " attempt " + std::to_string(attempt) +
                        " on call " + std::to_string(calls[i]));
      }
      if (fate[i] != 0) {
        order_violation("p" + std::to_string(p) + " o" + std::to_string(o) + " called again after it finished");
      }
      ++in_flight;
      const int ip = ++in_flight_partition[p];
      const int ik = ++in_flight_key[{p, key}];
      if (in_flight > kMaxInFlight) {
        order_violation(std::to_string(in_flight) + " records in flight, limit " + std::to_string(kMaxInFlight));
      }
      if (ordering == kc::Ordering::partition) {
        if (ip > 1) {
          order_violation("partition mode: " + std::to_string(ip) + " records of p" + std::to_string(p) +
                          " in flight (o" + std::to_string(o) + ")");
        }
        auto& last = last_start_partition.try_emplace(p, -1).first->second;
        if (o < last) {
          order_violation("partition mode: p" + std::to_string(p) + " o" + std::to_string(o) + " started after o" +
                          std::to_string(last));
        }
        last = std::max(last, o);
      }
      if (ordering == kc::Ordering::key) {
        if (ik > 1) {
          order_violation("key mode: " + std::to_string(ik) + " records of key " + key + " in p" + std::to_string(p) +
                          " in flight (o" + std::to_string(o) + ")");
        }
        auto& last = last_start_key.try_emplace({p, key}, -1).first->second;
        if (o < last) {
          order_violation("key mode: p" + std::to_string(p) + " key " + key + " o" + std::to_string(o) +
                          " started after o" + std::to_string(last));
        }
        last = std::max(last, o);
      }
    }
    // Called with `mu` held: the record leaves flight and, when this is its
    // last attempt or a final outcome, takes its fate.
    auto finish = [&mu, &fate, &finishes, &in_flight, &in_flight_partition, &in_flight_key, i, p, key, x, attempt] {
      std::lock_guard lock(mu);
      --in_flight;
      --in_flight_partition[p];
      --in_flight_key[{p, key}];
      ++finishes[i];
      if (x == Act::done) {
        fate[i] = 1;
      } else if (x == Act::dead || x == Act::fail_perm || attempt >= kMaxAttempts) {
        fate[i] = 2;
      }
    };
    if (x == Act::throw_now) {
      finish();
      throw std::runtime_error("injected: thrown by the handler call");
    }
    const auto delay = std::chrono::microseconds(delay_us(delay_rng));
    timer.after(delay, [&res, &mu, finish, x, c]() mutable {
      finish();
      bool ok = false;
      switch (x) {
        case Act::done: ok = c.done(); break;
        case Act::retry: ok = c.retry(std::make_exception_ptr(kc::RetriableError("injected: retry"))); break;
        case Act::dead: ok = c.dead(std::make_exception_ptr(kc::PermanentError("injected: dead"))); break;
        case Act::fail_perm:
          ok = c.fail(std::make_exception_ptr(kc::PermanentError("injected: fail permanent")));
          break;
        case Act::fail_retry:
          ok = c.fail(std::make_exception_ptr(std::runtime_error("injected: fail transient")));
          break;
        case Act::throw_now: break;
      }
      if (!ok) {
        std::lock_guard lock(mu);
        ++res.completion_refused;
      }
    });
  };

  // The sampler: the group's committed offsets and metadata from the broker,
  // checked against the fates known right after reading them (fates only
  // grow, so reading them later is never stricter than the truth).
  auto check_sample = [&](const std::vector<Committed>& committed) {
    std::lock_guard lock(mu);
    ++res.samples;
    for (int p = 0; p < kPartitions; ++p) {
      const auto& c = committed[static_cast<std::size_t>(p)];
      auto bad = [&](const std::string& what) {
        if (res.commit_violations++ == 0) {
          res.first_commit_violation = "p" + std::to_string(p) + " committed " + std::to_string(c.offset) + ": " + what;
        }
      };
      if (c.offset > kPerPartition) {
        bad("past the end of the partition");
        continue;
      }
      for (std::int64_t o = 0; o < c.offset; ++o) {
        if (fate[index_of(p, o)] == 0) {
          bad("offset " + std::to_string(o) + " below it is not done (" + std::to_string(calls[index_of(p, o)]) +
              " calls)");
          break;
        }
      }
      if (c.offset < 0 || c.metadata.empty()) {
        continue;
      }
      std::string why;
      const auto done = kc::detail::decode_done_offsets(c.metadata, c.offset, why);
      if (!done) {
        bad("metadata '" + c.metadata.substr(0, 80) + "' does not decode: " + why);
        continue;
      }
      if (!done->empty()) {
        ++res.samples_with_metadata;
      }
      for (const auto& r : done->ranges()) {
        for (std::int64_t o = r.first; o <= r.last; ++o) {
          if (o >= kPerPartition) {
            bad("metadata names offset " + std::to_string(o) + " past the end");
            break;
          }
          if (fate[index_of(p, o)] == 0) {
            bad("metadata says offset " + std::to_string(o) + " is done; it is not");
            break;
          }
        }
      }
    }
  };
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    try {
      CommittedReader reader(broker_.bootstrap_servers(), group);
      while (sampling) {
        try {
          check_sample(reader.read(topic, kPartitions, 2s));
        } catch (const kc::test::Failure&) {
          std::lock_guard lock(mu);
          ++res.sample_errors;
        }
        std::this_thread::sleep_for(5ms);
      }
    } catch (const std::exception&) {
      std::lock_guard lock(mu);
      ++res.sample_errors;
    }
  });

  kc::RunResult result;
  std::string run_error;
  try {
    kc::Consumer consumer(cfg, handler);
    result = consumer.run();
  } catch (const std::exception& e) {
    run_error = e.what();
  }
  sampling = false;
  sampler.join();
  EXPECT_TRUE(timer.wait_idle(10s)) << "completions still pending 10 s after the run";
  EXPECT_EQ(run_error, "");
  // One last sample: what the run committed on its way out.
  check_sample(kc::test::committed_with_metadata(broker_.bootstrap_servers(), group, topic, kPartitions));

  // Dead letters, read back with librdkafka.
  const auto dead_letters = kc::test::read_topic(broker_.bootstrap_servers(), dlq_topic);
  std::vector<int> in_dlq(kRecords, 0);
  std::uint64_t foreign_dead = 0;
  for (const auto& d : dead_letters) {
    const auto sp = d.header(kc::kHeaderSourcePartition);
    const auto so = d.header(kc::kHeaderSourceOffset);
    if (!sp || !so) {
      ++foreign_dead;
      continue;
    }
    const int p = std::stoi(*sp);
    const std::int64_t o = std::stoll(*so);
    if (p < 0 || p >= kPartitions || o < 0 || o >= kPerPartition) {
      ++foreign_dead;
      continue;
    }
    ++in_dlq[index_of(p, o)];
  }
  res.expected_calls = 0;
  for (int i = 0; i < kRecords; ++i) {
    const auto u = static_cast<std::size_t>(i);
    res.expected_calls += static_cast<std::uint64_t>(expect_calls[u]);
    const bool done = fate[u] == 1;
    const bool dead = fate[u] == 2;
    res.done += done ? 1 : 0;
    res.dead += dead ? 1 : 0;
    const int copies = (done ? 1 : 0) + in_dlq[u];
    if (copies == 0) {
      ++res.lost;
    }
    res.duplicates += copies > 1 ? static_cast<std::uint64_t>(copies - 1) : 0;
    const bool right = (expect_dead[u] ? dead && in_dlq[u] == 1 : done && in_dlq[u] == 0) &&
                       calls[u] == expect_calls[u] && finishes[u] == calls[u];
    if (!right && res.wrong_fate++ == 0) {
      res.first_wrong = "p" + std::to_string(i % kPartitions) + " o" + std::to_string(i / kPartitions) + ": expected " +
                        (expect_dead[u] ? "dead" : "done") + " after " + std::to_string(expect_calls[u]) +
                        " calls; fate " + std::to_string(fate[u]) + " after " + std::to_string(calls[u]) + " calls, " +
                        std::to_string(in_dlq[u]) + " dead letters";
    }
  }
  const auto committed = kc::test::committed_offsets(broker_.bootstrap_servers(), group, topic, kPartitions);
  const auto& st = result.stats;
  std::printf(
      "PROPERTY %s seed=%u: records=%llu calls=%llu/%llu done=%llu dead=%llu lost=%llu duplicates=%llu "
      "wrong=%llu samples=%llu (with done offsets in metadata: %llu, errors %llu) commit_violations=%llu "
      "order_violations=%llu refused=%llu stats{consumed=%llu done=%llu dead_lettered=%llu retried=%llu failed=%llu "
      "late=%llu skipped=%llu commits_ok=%llu commits_failed=%llu} committed=%s\n",
      ordering_name(ordering), seed, static_cast<unsigned long long>(res.records),
      static_cast<unsigned long long>(res.calls), static_cast<unsigned long long>(res.expected_calls),
      static_cast<unsigned long long>(res.done), static_cast<unsigned long long>(res.dead),
      static_cast<unsigned long long>(res.lost), static_cast<unsigned long long>(res.duplicates),
      static_cast<unsigned long long>(res.wrong_fate), static_cast<unsigned long long>(res.samples),
      static_cast<unsigned long long>(res.samples_with_metadata), static_cast<unsigned long long>(res.sample_errors),
      static_cast<unsigned long long>(res.commit_violations), static_cast<unsigned long long>(res.order_violations),
      static_cast<unsigned long long>(res.completion_refused), static_cast<unsigned long long>(st.consumed),
      static_cast<unsigned long long>(st.done), static_cast<unsigned long long>(st.dead_lettered),
      static_cast<unsigned long long>(st.retried), static_cast<unsigned long long>(st.failed),
      static_cast<unsigned long long>(st.late_completions), static_cast<unsigned long long>(st.skipped),
      static_cast<unsigned long long>(st.commits_ok), static_cast<unsigned long long>(st.commits_failed),
      kc::test::join(committed).c_str());
  std::fflush(stdout);

  EXPECT_EQ(result.reason, kc::StopReason::idle) << result.error;
  EXPECT_EQ(res.commit_violations, 0u) << res.first_commit_violation;
  EXPECT_EQ(res.order_violations, 0u) << res.first_order_violation;
  EXPECT_EQ(res.lost, 0u) << res.first_wrong;
  EXPECT_EQ(res.duplicates, 0u) << res.first_wrong;
  EXPECT_EQ(res.wrong_fate, 0u) << res.first_wrong;
  EXPECT_EQ(foreign_dead, 0u) << "dead letters that name no record of " << topic;
  EXPECT_EQ(res.completion_refused, 0u) << "a first completion returned false";
  EXPECT_EQ(timer.errors(), 0u);
  EXPECT_GT(res.samples, 10u) << "the sampler hardly ran";
  EXPECT_EQ(committed, std::vector<std::int64_t>(kPartitions, kPerPartition));
  // Handler calls, retries included (as on the poll thread).
  EXPECT_EQ(st.consumed, res.calls);
  EXPECT_EQ(res.calls, res.expected_calls);
  EXPECT_EQ(st.done, res.records - res.dead);
  EXPECT_EQ(st.dead_lettered, res.dead);
  EXPECT_EQ(st.retried, expect_retries);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(st.late_completions, 0u);
  EXPECT_EQ(st.skipped, 0u);
  EXPECT_EQ(st.commits_failed, 0u);
  for (int p = 0; p < kPartitions; ++p) {
    const kc::TopicPartition tp{topic, kc::Partition{p}};
    EXPECT_EQ(st.committed.contains(tp) ? kc::to_int(st.committed.at(tp)) : -1, kPerPartition)
        << "RunStats::committed of partition " << p;
  }
  return res;
}

// Random completion order, random failures; the commit point checked from
// the broker all along; three seeds per ordering mode.
TEST_P(ParallelProperty, CommitPointNeverPassesARecordThatIsNotDone) {
  const unsigned base = kc::test::test_seed();
  std::printf("PROPERTY %s: seeds %u, %u, %u (KC_TEST_SEED=%u repeats them)\n", ordering_name(GetParam()), base,
              base + 1, base + 2, base);
  std::uint64_t with_metadata = 0;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("seed " + std::to_string(base + static_cast<unsigned>(i)));
    const auto r = run_case(GetParam(), base + static_cast<unsigned>(i), i);
    with_metadata += r.samples_with_metadata;
  }
  // Out-of-order completions leave done offsets behind unfinished ones at
  // some commits: the metadata path must have been exercised (partition mode
  // completes in order, one record at a time per partition: none there).
  if (GetParam() != kc::Ordering::partition) {
    EXPECT_GT(with_metadata, 0u) << "no sampled commit carried done offsets in its metadata";
  }
}

INSTANTIATE_TEST_SUITE_P(Orderings, ParallelProperty,
                         ::testing::Values(kc::Ordering::partition, kc::Ordering::key, kc::Ordering::unordered),
                         [](const ::testing::TestParamInfo<kc::Ordering>& param) {
                           return std::string(ordering_name(param.param));
                         });

// ================================================================ retry holds its key

struct RetryHold {
  long long backoff_ms = -1;                // from the retry() to the second call
  std::uint64_t other_keys_done = 0;        // records of other keys done meanwhile
  std::uint64_t same_key_started = 0;       // records of the failing key started meanwhile
  std::int64_t committed_mid_backoff = -2;  // the group's commit point halfway through
  std::uint64_t metadata_done_mid = 0;      // done offsets in its metadata
  std::uint64_t metadata_not_done = 0;      // ... that were not done
  std::string metadata_error;
  kc::RunResult result;
  std::vector<std::int64_t> committed;
};

// One partition, 1000 records, keys k0..k9 (record i has key k<i % 10>).
// Offset 20 (key k0) asks for a retry on its first attempt; the backoff is
// 1.5 s. Everything else completes at once from the timer thread.
RetryHold run_retry_hold(kc::EmbeddedBroker& broker, kc::Ordering ordering,
                         const std::function<kc::ConsumerConfig(const std::string&, const std::string&)>& config) {
  constexpr int kRecords = 1000;
  constexpr std::int64_t kFailing = 20;
  constexpr auto kBackoff = 1500ms;
  const std::string topic = std::string("hold-") + ordering_name(ordering);
  const std::string group = topic + "-g";
  RetryHold out;

  std::mutex mu;
  std::optional<Clock::time_point> failed_at;
  std::optional<Clock::time_point> retried_at;
  std::vector<Clock::time_point> done_at(kRecords);
  std::vector<std::uint8_t> is_done(kRecords, 0);
  std::vector<Clock::time_point> started_at(kRecords);
  Timer timer(1);

  auto cfg = config(group, topic);
  cfg.parallel.ordering = ordering;
  cfg.retry.max_attempts = 3;
  cfg.retry.backoff = kBackoff;
  cfg.retry.multiplier = 1;
  cfg.retry.jitter = 0;
  cfg.idle_exit = 0ms;
  std::atomic<int> done_count{0};
  kc::Consumer consumer(cfg, kc::AsyncHandler([&](const kc::Message& m, kc::Completion c) {
                          const auto o = kc::to_int(m.offset());
                          if (o < 0 || o >= kRecords) {
                            return;
                          }
                          const auto u = static_cast<std::size_t>(o);
                          {
                            std::lock_guard lock(mu);
                            started_at[u] = Clock::now();
                            if (o == kFailing && m.attempt() == 2) {
                              retried_at = Clock::now();
                            }
                          }
                          const bool fail = o == kFailing && m.attempt() == 1;
                          timer.after(0us, [&, u, fail, c]() mutable {
                            if (fail) {
                              {
                                std::lock_guard lock(mu);
                                failed_at = Clock::now();
                              }
                              c.retry(std::make_exception_ptr(kc::RetriableError("injected: try again later")));
                              return;
                            }
                            {
                              std::lock_guard lock(mu);
                              done_at[u] = Clock::now();
                              is_done[u] = 1;
                            }
                            ++done_count;
                            c.done();
                          });
                        }));
  kc::test::BackgroundRun run(consumer);
  // Halfway through the backoff: the group's commit point and its metadata.
  if (!kc::test::wait_until(
          [&] {
            std::lock_guard lock(mu);
            return failed_at.has_value();
          },
          30s, 1ms)) {
    ADD_FAILURE() << "offset " << kFailing << " was not called within 30 s";
  } else {
    Clock::time_point t;
    {
      std::lock_guard lock(mu);
      t = *failed_at;
    }
    std::this_thread::sleep_until(t + kBackoff / 2);
    const auto c = kc::test::committed_with_metadata(broker.bootstrap_servers(), group, topic, 1)[0];
    out.committed_mid_backoff = c.offset;
    if (c.offset >= 0 && !c.metadata.empty()) {
      std::string why;
      if (const auto d = kc::detail::decode_done_offsets(c.metadata, c.offset, why)) {
        std::lock_guard lock(mu);
        for (const auto& r : d->ranges()) {
          for (auto o = r.first; o <= r.last && o < kRecords; ++o) {
            ++out.metadata_done_mid;
            out.metadata_not_done += is_done[static_cast<std::size_t>(o)] ? 0 : 1;
          }
        }
      } else {
        out.metadata_error = why;
      }
    }
  }
  const bool all = kc::test::wait_until([&] { return done_count.load() == kRecords; }, 30s);
  EXPECT_TRUE(all) << done_count.load() << " of " << kRecords << " records done after 30 s";
  kc::test::wait_until(
      [&] { return kc::test::committed_offsets(broker.bootstrap_servers(), group, topic, 1)[0] == kRecords; }, 10s);
  consumer.stop();
  out.result = run.join(30s);
  EXPECT_TRUE(timer.wait_idle(5s));
  out.committed = kc::test::committed_offsets(broker.bootstrap_servers(), group, topic, 1);

  std::lock_guard lock(mu);
  if (failed_at && retried_at) {
    out.backoff_ms = ms_between(*failed_at, *retried_at);
    for (std::size_t u = 0; u < static_cast<std::size_t>(kRecords); ++u) {
      const bool same_key = u % 10 == static_cast<std::size_t>(kFailing) % 10;
      if (!same_key && is_done[u] && done_at[u] > *failed_at && done_at[u] < *retried_at) {
        ++out.other_keys_done;
      }
      if (same_key && u != static_cast<std::size_t>(kFailing) && started_at[u] > *failed_at &&
          started_at[u] < *retried_at) {
        ++out.same_key_started;
      }
    }
  }
  return out;
}

void print_hold(const char* mode, const RetryHold& h) {
  std::printf(
      "RETRYHOLD %s: backoff_ms=%lld other_keys_done_during_backoff=%llu same_key_started_during_backoff=%llu "
      "committed_mid_backoff=%lld metadata_done=%llu metadata_not_done=%llu stats{done=%llu retried=%llu} "
      "committed=%s\n",
      mode, h.backoff_ms, static_cast<unsigned long long>(h.other_keys_done),
      static_cast<unsigned long long>(h.same_key_started), static_cast<long long>(h.committed_mid_backoff),
      static_cast<unsigned long long>(h.metadata_done_mid), static_cast<unsigned long long>(h.metadata_not_done),
      static_cast<unsigned long long>(h.result.stats.done), static_cast<unsigned long long>(h.result.stats.retried),
      kc::test::join(h.committed).c_str());
  std::fflush(stdout);
}

TEST_F(ParallelOnMock, KeyOrderingRetryHoldsOnlyItsKey) {
  produce("hold-key", 1, 1000, [](int i) { return std::optional<std::string>("k" + std::to_string(i % 10)); });
  const auto h = run_retry_hold(broker_, kc::Ordering::key,
                                [&](const std::string& g, const std::string& t) { return config(g, t); });
  print_hold("key", h);
  ASSERT_GE(h.backoff_ms, 0) << "offset 20 was not retried";
  EXPECT_GE(h.backoff_ms, 1400) << "the retry came before its backoff";
  // Every record of the nine other keys past the first few can finish while
  // k0 backs off: 900 records of other keys, all but those done before offset 20 failed.
  EXPECT_GE(h.other_keys_done, 800u) << "other keys of the partition waited for the failing key's backoff";
  EXPECT_EQ(h.same_key_started, 0u) << "records of the failing key started before its retry (key order broken)";
  EXPECT_GE(h.committed_mid_backoff, 0) << "nothing committed halfway through a 1.5 s backoff";
  EXPECT_LE(h.committed_mid_backoff, 20) << "committed past the record waiting for its retry";
  EXPECT_EQ(h.metadata_error, "");
  EXPECT_GT(h.metadata_done_mid, 0u) << "the done records past the waiting one are not in the commit metadata";
  EXPECT_EQ(h.metadata_not_done, 0u) << "the metadata names records that were not done";
  EXPECT_EQ(h.result.stats.retried, 1u);
  EXPECT_EQ(h.result.stats.done, 1000u);
  EXPECT_EQ(h.committed, std::vector<std::int64_t>{1000});
}

// The control: in partition mode the same retry holds the whole partition,
// so the measurement above can tell the two apart.
TEST_F(ParallelOnMock, PartitionOrderingRetryHoldsTheWholePartition) {
  produce("hold-partition", 1, 1000, [](int i) { return std::optional<std::string>("k" + std::to_string(i % 10)); });
  const auto h = run_retry_hold(broker_, kc::Ordering::partition,
                                [&](const std::string& g, const std::string& t) { return config(g, t); });
  print_hold("partition", h);
  ASSERT_GE(h.backoff_ms, 0) << "offset 20 was not retried";
  EXPECT_EQ(h.other_keys_done, 0u) << "partition mode: records after the failing one finished during its backoff";
  EXPECT_EQ(h.same_key_started, 0u);
  EXPECT_LE(h.committed_mid_backoff, 20);
  EXPECT_EQ(h.committed, std::vector<std::int64_t>{1000});
}

// ================================================================ metadata size

// One partition, 60,000 records, unordered. Every 16th record from offset 5
// on is held (its Completion kept, not completed) and everything else
// completes at once: the done set behind offset 5 is fragmented (a hole every
// 16 offsets), so its encoding grows with the span (about 1 byte per 8
// offsets) and passes the 4 KB commit-metadata limit long before the end of
// the partition. kc must pause the partition (take no more records), without
// an error, then go on once the held records complete.
TEST_F(ParallelOnMock, OversizeDoneSetPausesThePartitionWithoutError) {
  constexpr int kRecords = 60'000;
  constexpr std::size_t kMaxInFlight = 5000;
  const std::string topic = "oversize";
  const std::string group = "oversize-g";
  produce(topic, 1, kRecords, [](int) { return std::optional<std::string>(); });

  std::mutex mu;
  std::vector<kc::Completion> held;
  std::vector<std::uint8_t> is_done(kRecords, 0);
  std::vector<int> calls(kRecords, 0);
  std::atomic<bool> holding{true};
  std::atomic<int> call_count{0};
  std::atomic<int> done_count{0};
  std::atomic<int> refused{0};
  Timer timer(1);

  auto cfg = config(group, topic);
  cfg.parallel.ordering = kc::Ordering::unordered;
  cfg.parallel.max_in_flight = kMaxInFlight;
  kc::Consumer consumer(cfg, kc::AsyncHandler([&](const kc::Message& m, kc::Completion c) {
                          const auto o = kc::to_int(m.offset());
                          ++call_count;
                          if (o < 0 || o >= kRecords) {
                            return;
                          }
                          const auto u = static_cast<std::size_t>(o);
                          {
                            std::lock_guard lock(mu);
                            ++calls[u];
                            if (holding && o % 16 == 5) {
                              held.push_back(std::move(c));
                              return;
                            }
                          }
                          timer.after(0us, [&, u, c]() mutable {
                            {
                              std::lock_guard lock(mu);
                              is_done[u] = 1;
                            }
                            ++done_count;
                            if (!c.done()) {
                              ++refused;
                            }
                          });
                        }));
  kc::test::BackgroundRun run(consumer);

  // Wait for the handler calls to stop growing: unchanged for 2 s.
  int plateau = -1;
  int last = -1;
  auto since = Clock::now();
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && !run.finished()) {
    std::this_thread::sleep_for(100ms);
    const int now = call_count.load();
    if (now != last) {
      last = now;
      since = Clock::now();
    } else if (Clock::now() - since >= 2s && now > 0) {
      plateau = now;
      break;
    }
  }
  std::size_t held_count = 0;
  {
    std::lock_guard lock(mu);
    held_count = held.size();
  }
  // What is committed while paused, checked against what is done.
  const auto paused_commit = kc::test::committed_with_metadata(broker_.bootstrap_servers(), group, topic, 1)[0];
  std::uint64_t meta_done = 0;
  std::uint64_t meta_not_done = 0;
  std::string why;
  bool decoded = false;
  if (paused_commit.offset >= 0) {
    if (const auto d = kc::detail::decode_done_offsets(paused_commit.metadata, paused_commit.offset, why)) {
      decoded = true;
      std::lock_guard lock(mu);
      for (const auto& r : d->ranges()) {
        for (auto o = r.first; o <= r.last && o < kRecords; ++o) {
          ++meta_done;
          meta_not_done += is_done[static_cast<std::size_t>(o)] ? 0 : 1;
        }
      }
    }
  }
  const int calls_at_plateau = call_count.load();
  const int done_at_plateau = done_count.load();

  // Release: complete the held records; from now on nothing is held.
  holding = false;
  std::vector<kc::Completion> release;
  {
    std::lock_guard lock(mu);
    release.swap(held);
    for (std::size_t i = 0; i < static_cast<std::size_t>(kRecords); ++i) {
      // Held ones count as done from here (before kc sees them).
      if (calls[i] > 0 && i % 16 == 5 && !is_done[i]) {
        is_done[i] = 1;
      }
    }
  }
  int released_refused = 0;
  for (auto& c : release) {
    ++done_count;
    if (!c.done()) {
      ++released_refused;
    }
  }
  const auto t_release = Clock::now();
  const bool all = kc::test::wait_until([&] { return done_count.load() >= kRecords; }, 60s);
  const auto finish_ms = ms_between(t_release, Clock::now());
  const bool committed_all = kc::test::wait_until(
      [&] { return kc::test::committed_offsets(broker_.bootstrap_servers(), group, topic, 1)[0] == kRecords; }, 15s);
  consumer.stop();
  const auto result = run.join(30s);
  EXPECT_TRUE(timer.wait_idle(5s));
  int calls_total = 0;
  int calls_twice = 0;
  {
    std::lock_guard lock(mu);
    for (const int n : calls) {
      calls_total += n;
      calls_twice += n > 1 ? 1 : 0;
    }
  }
  std::printf(
      "OVERSIZE: records=%d plateau_calls=%d (done %d, held %zu, max_in_flight %zu) paused_commit=%lld "
      "metadata_bytes=%zu metadata_done=%llu metadata_not_done=%llu released=%zu finished_after_release_ms=%lld "
      "calls=%d records_called_twice=%d stats{consumed=%llu done=%llu retried=%llu failed=%llu commits_ok=%llu "
      "commits_failed=%llu late=%llu} reason=%d error='%s'\n",
      kRecords, plateau, done_at_plateau, held_count, kMaxInFlight, static_cast<long long>(paused_commit.offset),
      paused_commit.metadata.size(), static_cast<unsigned long long>(meta_done),
      static_cast<unsigned long long>(meta_not_done), release.size(), finish_ms, calls_total, calls_twice,
      static_cast<unsigned long long>(result.stats.consumed), static_cast<unsigned long long>(result.stats.done),
      static_cast<unsigned long long>(result.stats.retried), static_cast<unsigned long long>(result.stats.failed),
      static_cast<unsigned long long>(result.stats.commits_ok),
      static_cast<unsigned long long>(result.stats.commits_failed),
      static_cast<unsigned long long>(result.stats.late_completions), static_cast<int>(result.reason),
      result.error.c_str());
  std::fflush(stdout);

  ASSERT_GT(plateau, 0) << "the handler calls never stopped growing (" << call_count.load() << " calls, run "
                        << (run.finished() ? "finished" : "running") << ")";
  EXPECT_LT(calls_at_plateau, kRecords - 10'000) << "the partition was not paused well before its end";
  EXPECT_LT(held_count, kMaxInFlight) << "the pause came from the in-flight limit, not from the metadata size";
  EXPECT_EQ(paused_commit.offset, 5) << "commit point while paused (the first held record is offset 5)";
  EXPECT_LE(paused_commit.metadata.size(), 4096u) << "committed metadata over the broker's limit";
  EXPECT_TRUE(decoded) << "metadata committed while paused does not decode: " << why;
  EXPECT_GT(meta_done, 0u);
  EXPECT_EQ(meta_not_done, 0u) << "the metadata names records that were not done";
  EXPECT_TRUE(all) << done_count.load() << " of " << kRecords << " done 60 s after the release";
  EXPECT_TRUE(committed_all) << "not committed to the end 15 s after everything was done";
  EXPECT_EQ(calls_total, kRecords) << "every record is called once";
  EXPECT_EQ(calls_twice, 0);
  EXPECT_EQ(refused.load() + released_refused, 0) << "done() returned false on a first completion";
  EXPECT_EQ(result.reason, kc::StopReason::requested) << result.error;
  EXPECT_EQ(result.stats.commits_failed, 0u) << "a commit failed (oversize metadata sent to the broker?)";
  EXPECT_EQ(result.stats.failed, 0u);
  EXPECT_EQ(result.stats.retried, 0u);
  EXPECT_EQ(result.stats.done, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(result.stats.consumed, static_cast<std::uint64_t>(kRecords));
}

// One record that never completes while everything after it does: the done
// set behind it is one run (a few bytes), so the partition is NOT paused: all
// records are handed out, the commit point stays on the stuck record with the
// rest in its metadata, and moves to the end once it completes.
TEST_F(ParallelOnMock, OneStuckRecordDoesNotStopThePartition) {
  constexpr int kRecords = 20'000;
  constexpr std::int64_t kStuck = 5;
  const std::string topic = "stuck";
  const std::string group = "stuck-g";
  produce(topic, 1, kRecords, [](int i) { return std::optional<std::string>("k" + std::to_string(i % 100)); });

  std::mutex mu;
  std::optional<kc::Completion> stuck;
  std::atomic<int> call_count{0};
  std::atomic<int> done_count{0};
  Timer timer(1);
  auto cfg = config(group, topic);
  cfg.parallel.ordering = kc::Ordering::unordered;
  kc::Consumer consumer(cfg, kc::AsyncHandler([&](const kc::Message& m, kc::Completion c) {
                          ++call_count;
                          if (kc::to_int(m.offset()) == kStuck) {
                            std::lock_guard lock(mu);
                            stuck = std::move(c);
                            return;
                          }
                          timer.after(0us, [&, c]() mutable {
                            ++done_count;
                            c.done();
                          });
                        }));
  kc::test::BackgroundRun run(consumer);
  const bool handed_out = kc::test::wait_until([&] { return call_count.load() == kRecords; }, 60s);
  EXPECT_TRUE(handed_out) << call_count.load() << " of " << kRecords << " records handed out while offset " << kStuck
                          << " is stuck";
  // The commit that covers everything but the stuck record.
  Committed seen;
  std::uint64_t done_in_metadata = 0;
  std::string why;
  const bool metadata_complete = kc::test::wait_until(
      [&] {
        seen = kc::test::committed_with_metadata(broker_.bootstrap_servers(), group, topic, 1)[0];
        const auto d = kc::detail::decode_done_offsets(seen.metadata, seen.offset, why);
        done_in_metadata = d ? d->count() : 0;
        return seen.offset == kStuck && done_in_metadata == static_cast<std::uint64_t>(kRecords - kStuck - 1);
      },
      15s, 100ms);
  bool contains_stuck = true;
  if (const auto d = kc::detail::decode_done_offsets(seen.metadata, seen.offset, why)) {
    contains_stuck = d->contains(kStuck);
  }
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(stuck.has_value() && stuck->done()) << "completing the stuck record";
  }
  const bool all = kc::test::wait_until(
      [&] { return kc::test::committed_offsets(broker_.bootstrap_servers(), group, topic, 1)[0] == kRecords; }, 15s);
  consumer.stop();
  const auto result = run.join(30s);
  std::printf(
      "STUCK: records=%d handed_out=%d committed_while_stuck=%lld metadata_bytes=%zu done_in_metadata=%llu "
      "final_commit_reached=%d stats{consumed=%llu done=%llu commits_failed=%llu}\n",
      kRecords, call_count.load(), static_cast<long long>(seen.offset), seen.metadata.size(),
      static_cast<unsigned long long>(done_in_metadata), all ? 1 : 0,
      static_cast<unsigned long long>(result.stats.consumed), static_cast<unsigned long long>(result.stats.done),
      static_cast<unsigned long long>(result.stats.commits_failed));
  std::fflush(stdout);
  EXPECT_TRUE(metadata_complete) << "committed " << seen.offset << " with " << done_in_metadata
                                 << " done offsets in its metadata (" << why << "); expected " << kStuck << " with "
                                 << kRecords - kStuck - 1;
  EXPECT_LT(seen.metadata.size(), 64u) << "one run of done offsets should encode in a few bytes";
  EXPECT_FALSE(contains_stuck) << "the metadata names the stuck record as done";
  EXPECT_TRUE(all) << "not committed to the end after the stuck record completed";
  EXPECT_EQ(result.reason, kc::StopReason::requested) << result.error;
  EXPECT_EQ(result.stats.consumed, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(result.stats.done, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(result.stats.commits_failed, 0u);
}

}  // namespace
