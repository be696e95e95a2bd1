// Failure handling against the real broker: retries, dead letters and bad
// input, in the library (kc::Consumer in this process) and in `kc consume`.
//
// Every test counts what happened to each record it produced, instead of
// assuming: a record is lost when it was neither processed nor found in the
// dead-letter topic, and a duplicate when it was processed (or dead-lettered)
// more than once. The figures are printed on one line per test.
//
// Topics are written and read back with librdkafka directly (not through
// kc), so the checks do not share kc's bugs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kc/config.hpp"
#include "kc/consumer.hpp"
#include "kc/deadletter.hpp"
#include "kc/decode.hpp"
#include "kc/message.hpp"
#include "support/common.hpp"
#include "support/jsonl.hpp"
#include "support/json.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/parallel.hpp"
#include "support/records.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string printable(const std::optional<std::string>& s, std::size_t max = 60) {
  if (!s) {
    return "(null)";
  }
  std::string out;
  for (char ch : s->substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s->size() > max) {
    out += "...(" + std::to_string(s->size()) + " bytes)";
  }
  return out;
}

// kc consume's extra flags plus the dead-letter topic every tool-level test here uses.
std::vector<std::string> with_dlq(std::vector<std::string> extra) {
  extra.insert(extra.begin(), {"--dlq-topic", "{topic}.dead-letter"});
  return extra;
}

long long ms_since(Clock::time_point t) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// Produces make(i) for i in [0, n) at `rate` records/s on a background
// thread, so a stream goes on while the test acts. The destructor stops and
// joins (never throws).
class StreamProducer {
 public:
  StreamProducer(std::string bootstrap, std::string topic, std::uint64_t n, double rate,
                 std::function<Record(std::uint64_t)> make)
      : thread_([this, bs = std::move(bootstrap), topic = std::move(topic), n, rate, make = std::move(make)] {
          try {
            RecordProducer producer(bs);
            const auto start = Clock::now();
            std::uint64_t i = 0;
            for (; i < n && !stop_; ++i) {
              const auto due =
                  start + std::chrono::microseconds(static_cast<std::int64_t>(1e6 * static_cast<double>(i) / rate));
              if (due > Clock::now()) {
                producer.poll();
                std::this_thread::sleep_until(due);
              }
              producer.enqueue(topic, make(i));
            }
            producer.flush(topic, i);
            produced_ = i;
          } catch (...) {
            error_ = std::current_exception();
          }
        }) {}
  ~StreamProducer() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  StreamProducer(const StreamProducer&) = delete;
  StreamProducer& operator=(const StreamProducer&) = delete;

  // Waits until every record was produced and acknowledged; returns how many.
  std::uint64_t join() {
    thread_.join();
    if (error_) {
      std::rethrow_exception(error_);
    }
    return produced_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::uint64_t produced_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: started after the members it uses
};

// The headers of a kc::Message, copied.
HeaderList copy_headers(const kc::Message& m) {
  HeaderList out;
  const auto hs = m.headers();
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto h = hs.at(i);
    out.emplace_back(std::string(h.name),
                     h.value ? std::optional<std::string>(std::string(kc::as_text(*h.value))) : std::nullopt);
  }
  return out;
}

std::optional<std::string> copy_bytes(const std::optional<kc::Bytes>& b) {
  return b ? std::optional<std::string>(std::string(kc::as_text(*b))) : std::nullopt;
}

// Records in `topic` (the sum of its high watermarks). Retried for a few
// seconds: right after create_topic() the broker may still answer
// NOT_LEADER_FOR_PARTITION for a new partition's offsets.
std::int64_t total_records(const std::string& bootstrap, const std::string& topic, int partitions) {
  const auto deadline = Clock::now() + 10s;
  for (;;) {
    try {
      return sum(high_watermarks(bootstrap, topic, partitions));
    } catch (const Failure&) {
      if (Clock::now() > deadline) {
        throw;
      }
      std::this_thread::sleep_for(200ms);
    }
  }
}

// ---------------------------------------------------------------- dead letters

// "2026-11-24T21:10:05.123Z" -> ms since the epoch; nullopt when not that form.
std::optional<std::int64_t> parse_iso8601_ms(const std::string& s) {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' ||
      s[23] != 'Z') {
    return std::nullopt;
  }
  for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u, 11u, 12u, 14u, 15u, 17u, 18u, 20u, 21u, 22u}) {
    if (s[i] < '0' || s[i] > '9') {
      return std::nullopt;
    }
  }
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(8, 2));
  tm.tm_hour = std::stoi(s.substr(11, 2));
  tm.tm_min = std::stoi(s.substr(14, 2));
  tm.tm_sec = std::stoi(s.substr(17, 2));
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + std::stoi(s.substr(20, 3));
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A dead letter's source position from its kc headers; {-1, -1} when absent.
std::pair<std::int32_t, std::int64_t> source_of(const Record& d) {
  const auto p = d.header(kc::kHeaderSourcePartition);
  const auto o = d.header(kc::kHeaderSourceOffset);
  if (!p || !o) {
    return {-1, -1};
  }
  try {
    return {static_cast<std::int32_t>(std::stol(*p)), std::stoll(*o)};
  } catch (...) {
    return {-1, -1};
  }
}

// Checks a dead letter against the record it copies: key, value and the
// original headers byte for byte (in order, first), then kc's metadata
// headers. Returns "" or what is wrong.
std::string check_dead_letter(const Record& dead, const Record& source, const std::string& source_topic,
                              const std::string& group, const std::string& error_type, const std::string& attempts,
                              std::int64_t failed_after_ms, std::int64_t failed_before_ms) {
  std::string bad;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      bad += (bad.empty() ? "" : "; ") + what;
    }
  };
  expect(dead.key == source.key, "key " + printable(dead.key) + " != " + printable(source.key));
  expect(dead.value == source.value, "value " + printable(dead.value) + " != " + printable(source.value));
  const bool has_original = dead.headers.size() >= source.headers.size() &&
                            std::equal(source.headers.begin(), source.headers.end(), dead.headers.begin());
  expect(has_original, "the original " + std::to_string(source.headers.size()) + " headers are not its first " +
                           "headers, byte for byte");
  expect(dead.header(kc::kHeaderSourceTopic) == source_topic,
         "source topic " + printable(dead.header(kc::kHeaderSourceTopic)));
  expect(dead.header(kc::kHeaderSourcePartition) == std::to_string(source.partition),
         "source partition " + printable(dead.header(kc::kHeaderSourcePartition)) +
             " != " + std::to_string(source.partition));
  expect(dead.header(kc::kHeaderSourceOffset) == std::to_string(source.offset),
         "source offset " + printable(dead.header(kc::kHeaderSourceOffset)) + " != " + std::to_string(source.offset));
  if (source.timestamp >= 0) {
    expect(dead.header(kc::kHeaderSourceTimestamp) == std::to_string(source.timestamp),
           "source timestamp " + printable(dead.header(kc::kHeaderSourceTimestamp)) +
               " != " + std::to_string(source.timestamp));
  }
  expect(dead.header(kc::kHeaderGroup) == group, "group " + printable(dead.header(kc::kHeaderGroup)));
  expect(dead.header(kc::kHeaderErrorType) == error_type,
         "error type " + printable(dead.header(kc::kHeaderErrorType)) + " != " + error_type);
  expect(dead.header(kc::kHeaderErrorMessage).value_or("").size() > 0, "no error message");
  expect(dead.header(kc::kHeaderAttempts) == attempts,
         "attempts " + printable(dead.header(kc::kHeaderAttempts)) + " != " + attempts);
  const auto failed_at = dead.header(kc::kHeaderFailedAt).value_or("");
  const auto failed_ms = parse_iso8601_ms(failed_at);
  expect(failed_ms.has_value(), "failed-at '" + failed_at + "' is not ISO 8601 UTC (YYYY-MM-DDTHH:MM:SS.mmmZ)");
  if (failed_ms) {
    expect(*failed_ms >= failed_after_ms - 2000 && *failed_ms <= failed_before_ms + 2000,
           "failed-at " + failed_at + " is outside the run");
  }
  return bad;
}

// ---------------------------------------------------------------- 100k with failures

// 100,000 JSON records over 4 partitions, with binary keys, binary and null
// header values: 1% malformed, 1% failing permanently, 1% failing once. The
// handler decodes with kc::JsonDecoder. Every good and fail-once record is
// processed exactly once, every malformed and permanent one is in the
// dead-letter topic exactly once as a byte-identical copy with correct
// metadata, and the group is committed to the end.
TEST(DeadLetters, HundredThousandWithPoisonFailOnceAndMalformed) {
  constexpr int kPartitions = 4;
  constexpr std::size_t kRecords = 100'000;
  constexpr std::size_t kEachKind = kRecords / 100;  // 1% of each failure kind
  enum Kind : std::uint8_t { good, malformed, permanent, fail_once };

  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-fh-100k");
  const auto dlq_topic = topic + ".dead-letter";
  const auto group = unique_name("kc-it-fh-100k-g");
  const unsigned seed = test_seed();
  std::printf("FAILURE100K: seed=%u (KC_TEST_SEED=%u repeats the choice of failing records)\n", seed, seed);
  create_topic(bs, topic, kPartitions);
  create_topic(bs, dlq_topic, kPartitions);

  // Which records fail, chosen at random, exactly kEachKind of each kind.
  std::vector<Kind> kind(kRecords, good);
  {
    std::vector<std::size_t> idx(kRecords);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::mt19937 rng(seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    for (std::size_t j = 0; j < 3 * kEachKind; ++j) {
      kind[idx[j]] = j < kEachKind ? malformed : j < 2 * kEachKind ? permanent : fail_once;
    }
  }
  // Record i goes to partition i % 4; its key carries i (after binary bytes
  // for every third record), its value marks what the handler does with it.
  std::vector<Record> records(kRecords);
  for (std::size_t i = 0; i < kRecords; ++i) {
    Record& r = records[i];
    const auto n = std::to_string(i);
    r.partition = static_cast<std::int32_t>(i % kPartitions);
    r.key = (i % 3 == 0 ? std::string("\x00\xff\x80", 3) : std::string()) + "k-" + n;
    r.headers.emplace_back("trace", std::string("\x80\x00\xfe", 3) + n);
    r.headers.emplace_back("content-type", "application/json");
    if (i % 7 == 0) {
      r.headers.emplace_back("null-header", std::nullopt);
      r.headers.emplace_back("trace", std::string());  // a repeated name, empty value
    }
    switch (kind[i]) {
      case good:
      case permanent:
      case fail_once: {
        const char* op = kind[i] == permanent ? "fail-permanent" : kind[i] == fail_once ? "fail-once" : "ok";
        // Non-ASCII UTF-8 and escapes: valid JSON that is not plain ASCII.
        r.value = "{\"i\":" + n + ",\"op\":\"" + op +
                  "\",\"text\":\"caf\xc3\xa9 \xe2\x82\xac \\\"q\\\" \\u00e9\",\"n\":[" + n + ",true,null,1.5e3]}";
        break;
      }
      case malformed:
        switch (i % 5) {
          case 0: r.value = "{\"i\":" + n + ",\"op\":\"ok\""; break;             // truncated
          case 1: r.value = "{\"i\":" + n + ",\"s\":\"\xff\xfe\"}"; break;       // invalid UTF-8
          case 2: r.value = std::string("\x00\x01\x02", 3) + n + "\xff"; break;  // binary
          case 3: r.value = "{\"i\":" + n + "} trailing"; break;                 // trailing garbage
          default: r.value = "{'i':" + n + "}"; break;                           // single quotes
        }
        break;
    }
  }
  const auto produce_start = Clock::now();
  produce_records(bs, topic, records);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords)) << "high watermarks " << join(hw);
  std::printf("FAILURE100K: produced %zu records in %lld ms\n", kRecords, ms_since(produce_start));

  // What the handler saw, per record index.
  std::vector<std::uint32_t> calls(kRecords, 0);
  std::vector<std::uint32_t> processed(kRecords, 0);    // handler calls that returned done
  std::vector<std::uint8_t> attempt_mask(kRecords, 0);  // bit n: called with attempt n
  std::vector<std::int64_t> offset_of(kRecords, -1);
  std::vector<std::int32_t> partition_of(kRecords, -1);
  std::vector<std::int64_t> timestamp_of(kRecords, -1);
  std::vector<Clock::time_point> first_call_at(kRecords);
  std::vector<double> retry_delays_ms;  // fail-once records: from attempt 1 to attempt 2
  std::uint64_t bad_keys = 0;
  std::uint64_t changed_bytes = 0;  // a record's bytes differ from what was produced
  kc::JsonDecoder decoder;
  std::string decode_error;

  kc::ConsumerConfig cfg;
  cfg.bootstrap_servers = bs;
  cfg.group = group;
  cfg.topics = {topic};
  cfg.from_beginning = true;
  cfg.idle_exit = 3s;
  cfg.retry.max_attempts = 3;
  cfg.retry.backoff = 50ms;
  cfg.retry.backoff_max = 200ms;
  cfg.dead_letter.enabled = true;
  cfg.dead_letter.headers = kc::DeadLetterHeaders::both;
  kc::Consumer consumer(cfg, [&](const kc::Message& m) -> kc::Outcome {
    const auto key = copy_bytes(m.key());
    const auto at = key ? key->find("k-") : std::string::npos;
    if (at == std::string::npos) {
      ++bad_keys;
      return kc::Outcome::done;
    }
    const auto i = static_cast<std::size_t>(std::stoull(key->substr(at + 2)));
    if (i >= kRecords) {
      ++bad_keys;
      return kc::Outcome::done;
    }
    if (++calls[i] == 1) {
      first_call_at[i] = Clock::now();
    } else if (m.attempt() == 2) {
      retry_delays_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - first_call_at[i]).count());
    }
    attempt_mask[i] = static_cast<std::uint8_t>(attempt_mask[i] | (1u << std::min(m.attempt(), 7)));
    offset_of[i] = kc::to_int(m.offset());
    partition_of[i] = kc::to_int(m.partition());
    timestamp_of[i] = m.timestamp().ms;
    if (key != records[i].key || copy_bytes(m.value()) != records[i].value || copy_headers(m) != records[i].headers) {
      ++changed_bytes;
    }
    if (!m.value() || !decoder.validate(*m.value(), decode_error)) {
      throw kc::DecodeError(m.value() ? decode_error : "null value");
    }
    const auto text = kc::as_text(*m.value());
    if (text.find("\"op\":\"fail-permanent\"") != std::string_view::npos) {
      throw kc::PermanentError("record " + std::to_string(i) + " is poison");
    }
    if (text.find("\"op\":\"fail-once\"") != std::string_view::npos && m.attempt() == 1) {
      throw kc::RetriableError("record " + std::to_string(i) + " fails on its first attempt");
    }
    ++processed[i];
    return kc::Outcome::done;
  });
  const auto run_start = Clock::now();
  const auto run_start_wall = wall_ms();
  const auto result = consumer.run();
  const auto run_ms = ms_since(run_start);
  const auto run_end_wall = wall_ms();
  const auto& st = result.stats;
  EXPECT_EQ(result.reason, kc::StopReason::idle) << result.error;
  EXPECT_EQ(bad_keys, 0u) << "records whose key does not name a produced record";
  EXPECT_EQ(changed_bytes, 0u) << "records whose key, value or headers differ from what was produced";

  // Dead letters, read back with librdkafka.
  const auto dead = read_topic(bs, dlq_topic);
  std::vector<std::uint32_t> dead_count(kRecords, 0);
  std::uint64_t good_dead = 0;
  std::uint64_t unmatched_dead = 0;
  std::uint64_t wrong_partition = 0;
  std::uint64_t bad_copies = 0;
  std::uint64_t bad_spring = 0;
  std::string first_bad;
  for (const auto& d : dead) {
    const auto at = d.key ? d.key->find("k-") : std::string::npos;
    const auto i = at == std::string::npos ? kRecords : static_cast<std::size_t>(std::stoull(d.key->substr(at + 2)));
    if (i >= kRecords) {
      ++unmatched_dead;
      continue;
    }
    ++dead_count[i];
    if (kind[i] != malformed && kind[i] != permanent) {
      ++good_dead;
      if (first_bad.empty()) {
        first_bad = "record " + std::to_string(i) + " (not a failing one) was dead-lettered";
      }
      continue;
    }
    if (d.partition != records[i].partition) {
      ++wrong_partition;
    }
    Record source = records[i];
    source.offset = offset_of[i];
    source.timestamp = timestamp_of[i];
    const auto why =
        check_dead_letter(d, source, topic, group, kind[i] == malformed ? "kc::DecodeError" : "kc::PermanentError", "1",
                          run_start_wall, run_end_wall);
    if (!why.empty()) {
      ++bad_copies;
      if (first_bad.empty()) {
        first_bad = "dead letter of record " + std::to_string(i) + ": " + why;
      }
    }
    if (kind[i] == permanent && d.header(kc::kHeaderErrorMessage) != "record " + std::to_string(i) + " is poison") {
      ++bad_copies;
      if (first_bad.empty()) {
        first_bad = "record " + std::to_string(i) + ": error message " + printable(d.header(kc::kHeaderErrorMessage));
      }
    }
    // Spring's set (dlq.headers=both): big-endian binary partition and offset.
    const auto sp = d.header(kc::kSpringOriginalPartition).value_or("");
    const auto so = d.header(kc::kSpringOriginalOffset).value_or("");
    std::int64_t spring_offset = 0;
    for (char ch : so) {
      spring_offset = spring_offset << 8 | static_cast<unsigned char>(ch);
    }
    if (sp.size() != 4 || static_cast<unsigned char>(sp[3]) != static_cast<unsigned>(records[i].partition) ||
        so.size() != 8 || spring_offset != offset_of[i] || d.header(kc::kSpringOriginalTopic) != topic ||
        d.header(kc::kSpringOriginalConsumerGroup) != group ||
        d.header(kc::kSpringExceptionFqcn) != d.header(kc::kHeaderErrorType)) {
      ++bad_spring;
    }
  }

  // Loss and duplicates, counted per record.
  std::uint64_t processed_records = 0;
  std::uint64_t dead_lettered_records = 0;
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t wrong_calls = 0;
  std::uint64_t processed_failing = 0;
  std::string first_lost;
  std::string first_wrong_calls;
  for (std::size_t i = 0; i < kRecords; ++i) {
    const bool should_process = kind[i] == good || kind[i] == fail_once;
    if (should_process) {
      processed_records += processed[i] > 0 ? 1 : 0;
      duplicates += processed[i] > 1 ? processed[i] - 1 : 0;
      duplicates += dead_count[i];
      if (processed[i] == 0) {
        ++lost;
        if (first_lost.empty()) {
          first_lost = "record " + std::to_string(i) + " was never processed (" + std::to_string(calls[i]) + " calls)";
        }
      }
    } else {
      dead_lettered_records += dead_count[i] > 0 ? 1 : 0;
      duplicates += dead_count[i] > 1 ? dead_count[i] - 1 : 0;
      processed_failing += processed[i];
      if (dead_count[i] == 0) {
        ++lost;
        if (first_lost.empty()) {
          first_lost = "record " + std::to_string(i) + " is not in the dead-letter topic (" + std::to_string(calls[i]) +
                       " calls)";
        }
      }
    }
    // Calls: 1 (good, malformed, permanent) or attempts 1 then 2 (fail-once).
    const bool calls_ok =
        kind[i] == fail_once ? calls[i] == 2 && attempt_mask[i] == 0b110 : calls[i] == 1 && attempt_mask[i] == 0b10;
    if (!calls_ok) {
      ++wrong_calls;
      if (first_wrong_calls.empty()) {
        first_wrong_calls = "record " + std::to_string(i) + " (kind " + std::to_string(kind[i]) +
                            "): " + std::to_string(calls[i]) + " calls, attempt mask " +
                            std::to_string(attempt_mask[i]);
      }
    }
  }
  // The time a fail-once record waited for its second attempt, against the
  // configured backoff (50 ms +-20%, the cap 200 ms is not reached).
  std::sort(retry_delays_ms.begin(), retry_delays_ms.end());
  auto quantile = [&](double q) {
    return retry_delays_ms.empty()
               ? -1.0
               : retry_delays_ms[static_cast<std::size_t>(q * static_cast<double>(retry_delays_ms.size() - 1))];
  };
  std::printf(
      "FAILURE100K: retry delay (attempt 1 -> 2, configured 50 ms): min=%.0f median=%.0f p95=%.0f max=%.0f ms over %zu "
      "retries\n",
      quantile(0), quantile(0.5), quantile(0.95), quantile(1), retry_delays_ms.size());
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf(
      "FAILURE100K: records=%zu processed=%llu dead_lettered=%llu (dlq records=%zu) lost=%llu duplicates=%llu "
      "retried=%llu run_ms=%lld stats{consumed=%llu done=%llu retried=%llu dead_lettered=%llu failed=%llu} "
      "committed=%s hw=%s\n",
      kRecords, static_cast<unsigned long long>(processed_records),
      static_cast<unsigned long long>(dead_lettered_records), dead.size(), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(st.retried), run_ms,
      static_cast<unsigned long long>(st.consumed), static_cast<unsigned long long>(st.done),
      static_cast<unsigned long long>(st.retried), static_cast<unsigned long long>(st.dead_lettered),
      static_cast<unsigned long long>(st.failed), join(committed).c_str(), join(hw).c_str());
  std::fflush(stdout);

  EXPECT_EQ(lost, 0u) << first_lost;
  EXPECT_EQ(duplicates, 0u) << "a single run without faults processes and dead-letters each record once";
  EXPECT_EQ(processed_records, kRecords - 2 * kEachKind);
  EXPECT_EQ(dead_lettered_records, 2 * kEachKind);
  EXPECT_EQ(dead.size(), 2 * kEachKind);
  EXPECT_EQ(good_dead, 0u) << first_bad;
  EXPECT_EQ(unmatched_dead, 0u) << "dead letters whose key names no produced record";
  EXPECT_EQ(processed_failing, 0u) << "malformed or permanent records reported as processed";
  EXPECT_EQ(wrong_partition, 0u) << "dead letters not in their source partition (the topic has enough)";
  EXPECT_EQ(bad_copies, 0u) << first_bad;
  EXPECT_EQ(bad_spring, 0u) << "dead letters with wrong Spring kafka_dlt-* headers";
  EXPECT_EQ(wrong_calls, 0u) << first_wrong_calls;
  // A retry waits its backoff, not much more: the partition resumes when the
  // backoff has passed and the record is fetched again. A median far above
  // the backoff means the re-fetch after the resume is slow, and a partition
  // with a few transient failures crawls (one retry per second).
  EXPECT_LE(quantile(0.5), 300.0) << "the median retry took far longer than the configured backoff (50 ms)";
  // Every call of a record is one consumed; the fail-once records twice.
  EXPECT_EQ(st.consumed, kRecords + kEachKind);
  EXPECT_EQ(st.done, kRecords - 2 * kEachKind);
  EXPECT_EQ(st.retried, kEachKind);
  EXPECT_EQ(st.dead_lettered, 2 * kEachKind);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(committed, hw) << "committed " << join(committed) << " high watermarks " << join(hw);
  for (int p = 0; p < kPartitions; ++p) {
    const kc::TopicPartition tp{topic, kc::Partition{p}};
    EXPECT_EQ(st.committed.contains(tp) ? kc::to_int(st.committed.at(tp)) : -1, hw[static_cast<std::size_t>(p)])
        << "RunStats::committed of partition " << p;
  }
}

// ---------------------------------------------------------------- long backoff

// A retry backoff (10 s) longer than max.poll.interval.ms (7 s): the failing
// partition is paused, but the poll loop keeps running, so the member keeps
// its assignment: no revoke, no loss, one assignment, and the record is
// processed on its second attempt after the backoff.
TEST(Retries, BackoffLongerThanMaxPollIntervalKeepsMembership) {
  constexpr int kPartitions = 2;
  constexpr std::size_t kRecords = 400;
  constexpr std::size_t kFailing = 100;  // partition 0, offset 50
  constexpr auto kBackoff = 10s;

  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-fh-backoff");
  const auto group = unique_name("kc-it-fh-backoff-g");
  create_topic(bs, topic, kPartitions);
  std::vector<Record> records(kRecords);
  for (std::size_t i = 0; i < kRecords; ++i) {
    records[i].partition = static_cast<std::int32_t>(i % kPartitions);
    records[i].key = "k-" + std::to_string(i);
    records[i].value = "{\"i\":" + std::to_string(i) + "}";
  }
  produce_records(bs, topic, records);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords));

  kc::ConsumerConfig cfg;
  cfg.bootstrap_servers = bs;
  cfg.group = group;
  cfg.topics = {topic};
  cfg.from_beginning = true;
  cfg.idle_exit = 3s;
  cfg.commit.interval = 500ms;
  cfg.retry.max_attempts = 3;
  cfg.retry.backoff = kBackoff;
  cfg.retry.backoff_max = 30s;
  cfg.retry.jitter = 0;
  cfg.librdkafka["session.timeout.ms"] = "6000";
  cfg.librdkafka["heartbeat.interval.ms"] = "1000";
  cfg.librdkafka["max.poll.interval.ms"] = "7000";  // librdkafka requires >= session.timeout.ms

  std::vector<std::uint32_t> processed(kRecords, 0);
  std::size_t processed_total = 0;
  std::optional<Clock::time_point> first_attempt_at;
  std::optional<Clock::time_point> second_attempt_at;
  int failing_calls = 0;
  int max_attempt = 0;
  // Partition 1 records processed before the failing record's second
  // attempt, and partition 0 records after it processed before it (order).
  std::size_t other_partition_before_retry = 0;
  std::size_t out_of_order = 0;
  int assigns = 0;
  int nonempty_assigns = 0;
  int revokes = 0;
  int revokes_while_working = 0;
  int losts = 0;
  kc::ConsumerHooks hooks;
  hooks.on_assign = [&](std::span<const kc::TopicPartition> tps) {
    ++assigns;
    nonempty_assigns += tps.empty() ? 0 : 1;
  };
  hooks.on_revoke = [&](std::span<const kc::TopicPartition>) {
    ++revokes;
    revokes_while_working += processed_total < kRecords ? 1 : 0;
  };
  hooks.on_lost = [&](std::span<const kc::TopicPartition>) { ++losts; };
  kc::Consumer consumer(
      cfg,
      [&](const kc::Message& m) -> kc::Outcome {
        const auto key = copy_bytes(m.key()).value_or("");
        const auto i = static_cast<std::size_t>(std::stoull(key.substr(2)));
        if (i == kFailing) {
          ++failing_calls;
          max_attempt = std::max(max_attempt, m.attempt());
          if (m.attempt() == 1) {
            first_attempt_at = Clock::now();
            throw kc::RetriableError("not yet");
          }
          second_attempt_at = Clock::now();
        } else if (!second_attempt_at) {
          if (records[i].partition == 1) {
            ++other_partition_before_retry;
          } else if (i > kFailing) {
            ++out_of_order;
          }
        }
        processed_total += processed[i] == 0 ? 1 : 0;
        ++processed[i];
        return kc::Outcome::done;
      },
      hooks);
  const auto start = Clock::now();
  const auto result = consumer.run();
  const auto run_ms = ms_since(start);

  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  for (auto n : processed) {
    lost += n == 0 ? 1 : 0;
    duplicates += n > 1 ? n - 1 : 0;
  }
  const long long backoff_ms =
      first_attempt_at && second_attempt_at
          ? static_cast<long long>(
                std::chrono::duration_cast<std::chrono::milliseconds>(*second_attempt_at - *first_attempt_at).count())
          : -1;
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf(
      "BACKOFF: records=%zu processed=%zu lost=%llu duplicates=%llu attempt1_to_attempt2_ms=%lld "
      "other_partition_processed_meanwhile=%zu assigns=%d (non-empty %d) revokes=%d (while working %d) lost_events=%d "
      "run_ms=%lld committed=%s hw=%s\n",
      kRecords, processed_total, static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicates),
      backoff_ms, other_partition_before_retry, assigns, nonempty_assigns, revokes, revokes_while_working, losts,
      run_ms, join(committed).c_str(), join(hw).c_str());
  std::fflush(stdout);

  EXPECT_EQ(result.reason, kc::StopReason::idle) << result.error;
  EXPECT_EQ(losts, 0) << "the partitions were lost: the poll loop stalled past max.poll.interval.ms";
  EXPECT_EQ(revokes_while_working, 0) << "a rebalance revoked the partitions while the retry waited";
  EXPECT_LE(revokes, 1) << "only the final close may revoke";
  EXPECT_EQ(nonempty_assigns, 1) << "assigned more than once: the member left or was kicked out of the group";
  EXPECT_EQ(failing_calls, 2);
  EXPECT_EQ(max_attempt, 2);
  EXPECT_GE(backoff_ms, 9'900) << "the second attempt came before the backoff";
  EXPECT_LE(backoff_ms, 13'000) << "the second attempt came long after the backoff";
  EXPECT_EQ(other_partition_before_retry, kRecords / 2) << "the other partition did not flow during the backoff";
  EXPECT_EQ(out_of_order, 0u) << "records after the failing one were processed before its retry";
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicates, 0u);
  EXPECT_EQ(result.stats.retried, 1u);
  EXPECT_EQ(committed, hw);
}

// ---------------------------------------------------------------- DLQ gone, then back

// The dead-letter topic does not exist when poison records arrive (kc created
// it at start; it was deleted before the records came): the commit point of
// each partition stays at its first poison record until the topic is created
// again (10 s later) and the dead letters are written; then everything is
// dead-lettered and committed to the end.
TEST(DeadLetters, TopicGoneThenBackHoldsCommitPoint) {
  constexpr int kPartitions = 4;
  constexpr std::size_t kRecords = 20'000;
  constexpr std::int64_t kPoisonEvery = 100;  // offsets 37, 137, ... of each partition
  constexpr std::int64_t kFirstPoison = 37;
  constexpr auto kCreateAfter = 10s;

  const auto bs = bootstrap();
  const auto topic = unique_name("kc-it-fh-late");
  const auto dlq_topic = topic + ".dead-letter";
  const auto group = unique_name("kc-it-fh-late-g");
  create_topic(bs, topic, kPartitions);
  std::vector<Record> records(kRecords);
  std::vector<bool> poison(kRecords, false);
  for (std::size_t i = 0; i < kRecords; ++i) {
    const auto pos = static_cast<std::int64_t>(i / kPartitions);  // the offset it gets in its partition
    poison[i] = pos % kPoisonEvery == kFirstPoison;
    records[i].partition = static_cast<std::int32_t>(i % kPartitions);
    records[i].key = "k-" + std::to_string(i);
    records[i].value = "{\"i\":" + std::to_string(i) + (poison[i] ? ",\"poison\":true}" : "}");
    if (poison[i]) {
      records[i].headers.emplace_back("poison", "1");
    }
  }
  kc::ConsumerConfig cfg;
  cfg.bootstrap_servers = bs;
  cfg.group = group;
  cfg.topics = {topic};
  cfg.from_beginning = true;
  cfg.idle_exit = 3s;
  cfg.commit.interval = 200ms;
  cfg.dead_letter.enabled = true;
  cfg.dead_letter.write_backoff = 500ms;
  cfg.dead_letter.write_backoff_max = 2s;
  std::atomic<bool> assigned{false};
  kc::ConsumerHooks hooks;
  hooks.on_assign = [&](std::span<const kc::TopicPartition>) { assigned = true; };
  std::vector<std::uint32_t> processed(kRecords, 0);
  std::vector<std::int64_t> offset_of(kRecords, -1);
  std::atomic<std::uint64_t> calls{0};
  kc::Consumer consumer(cfg, [&](const kc::Message& m) -> kc::Outcome {
    const auto key = copy_bytes(m.key()).value_or("");
    const auto i = static_cast<std::size_t>(std::stoull(key.substr(2)));
    offset_of[i] = kc::to_int(m.offset());
    ++calls;
    if (poison[i]) {
      throw kc::PermanentError("poison record " + std::to_string(i));
    }
    ++processed[i];
    return kc::Outcome::done;
  }, hooks);

  BackgroundRun run(consumer);
  // kc created the dead-letter topic at start; it goes before the records come.
  ASSERT_TRUE(wait_until([&] { return assigned.load(); }, 60s)) << "no assignment";
  ASSERT_GT(topic_partitions(bs, dlq_topic), 0) << "kc did not create the dead-letter topic at start";
  delete_topic(bs, dlq_topic);
  produce_records(bs, topic, records);
  const auto hw = high_watermarks(bs, topic, kPartitions);
  ASSERT_EQ(sum(hw), static_cast<std::int64_t>(kRecords));
  const auto start = Clock::now();
  // Watch the commit point while the dead-letter topic is missing.
  std::vector<std::int64_t> max_committed_during_outage(kPartitions, -1);
  int polls = 0;
  while (Clock::now() - start < kCreateAfter) {
    const auto c = committed_offsets(bs, group, topic, kPartitions);  // the topic is still missing here
    for (std::size_t p = 0; p < c.size(); ++p) {
      max_committed_during_outage[p] = std::max(max_committed_during_outage[p], c[p]);
    }
    ++polls;
    ASSERT_FALSE(run.finished()) << "the consumer stopped while its dead letters could not be written";
    std::this_thread::sleep_for(200ms);
  }
  const auto calls_before_create = calls.load();
  const auto create_at = Clock::now();
  create_topic(bs, dlq_topic, kPartitions);
  const auto created_ms = ms_since(start);
  // The run ends by idling once every dead letter was acknowledged.
  ASSERT_TRUE(wait_until([&] { return run.finished(); }, 45s, 100ms))
      << "the consumer did not finish within 45 s of the dead-letter topic's creation";
  const auto result = run.join();
  const auto run_ms = ms_since(start);
  const auto after_create_ms = ms_since(create_at);

  const auto dead = read_topic(bs, dlq_topic);
  std::map<std::pair<std::int32_t, std::int64_t>, int> dead_at;
  std::uint64_t dead_not_poison = 0;
  std::uint64_t other_partition = 0;  // dead letters not in their source partition
  for (const auto& d : dead) {
    const auto key = d.key.value_or("");
    const auto i = key.rfind("k-", 0) == 0 ? static_cast<std::size_t>(std::stoull(key.substr(2))) : kRecords;
    if (i >= kRecords || !poison[i] || d.value != records[i].value ||
        source_of(d) != std::make_pair(records[i].partition, offset_of[i])) {
      ++dead_not_poison;
      continue;
    }
    other_partition += d.partition != records[i].partition ? 1 : 0;
    ++dead_at[source_of(d)];
  }
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t poison_count = 0;
  // The offset of each partition's first poison record, as the handler saw it.
  std::vector<std::int64_t> first_poison(kPartitions, -1);
  for (std::size_t i = 0; i < kRecords; ++i) {
    if (poison[i]) {
      ++poison_count;
      auto& f = first_poison[static_cast<std::size_t>(records[i].partition)];
      if (offset_of[i] >= 0 && (f < 0 || offset_of[i] < f)) {
        f = offset_of[i];
      }
      const auto it = dead_at.find({records[i].partition, offset_of[i]});
      const int n = it == dead_at.end() ? 0 : it->second;
      lost += n == 0 ? 1 : 0;
      duplicates += n > 1 ? static_cast<std::uint64_t>(n - 1) : 0;
    } else {
      lost += processed[i] == 0 ? 1 : 0;
      duplicates += processed[i] > 1 ? processed[i] - 1 : 0;
    }
  }
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf(
      "DLQLATE: records=%zu poison=%llu dead_lettered=%zu lost=%llu duplicates=%llu not_in_source_partition=%llu "
      "created_at_ms=%lld "
      "handled_before_create=%llu max_committed_during_outage=%s (first poison at offsets %s, %d polls) "
      "finished_ms_after_create=%lld run_ms=%lld stats{dead_lettered=%llu done=%llu} committed=%s hw=%s\n",
      kRecords, static_cast<unsigned long long>(poison_count), dead.size(), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(other_partition), created_ms,
      static_cast<unsigned long long>(calls_before_create), join(max_committed_during_outage).c_str(),
      join(first_poison).c_str(), polls, after_create_ms, run_ms,
      static_cast<unsigned long long>(result.stats.dead_lettered), static_cast<unsigned long long>(result.stats.done),
      join(committed).c_str(), join(hw).c_str());
  std::fflush(stdout);

  EXPECT_EQ(calls_before_create, kRecords) << "the records after the poison ones were not handled during the outage";
  EXPECT_EQ(first_poison, std::vector<std::int64_t>(kPartitions, kFirstPoison));
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_LE(max_committed_during_outage[static_cast<std::size_t>(p)], first_poison[static_cast<std::size_t>(p)])
        << "partition " << p << " was committed past its first poison record while its dead letter was unwritten";
  }
  EXPECT_GT(polls, 10);
  EXPECT_EQ(result.reason, kc::StopReason::idle) << result.error;
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(dead_not_poison, 0u) << "dead letters that are not a poison record's copy";
  // The writer holds dead letters while their topic is missing, so that they
  // still go to their source partition once it exists.
  EXPECT_EQ(other_partition, 0u) << "dead letters not in their source partition";
  EXPECT_GE(result.stats.dead_lettered, poison_count);
  EXPECT_EQ(committed, hw) << "committed " << join(committed) << " high watermarks " << join(hw);
}

// ---------------------------------------------------------------- kill -9 while writing dead letters

// A stream in which ~5% of the JSON values are malformed; `kc consume` with a
// dead-letter topic is killed with SIGKILL three times while records (and so
// dead letters) flow, and restarted on the same sink file; the last run
// exits when idle. Every malformed record must be in the dead-letter topic
// at least once, every good one in the sink at least once.
TEST(DeadLetters, KillNineWhileWritingLosesNothing) {
  constexpr int kPartitions = 4;
  constexpr std::uint64_t kRecords = 150'000;
  constexpr double kRate = 10'000;  // records/s: a stream of ~15 s
  constexpr int kKills = 3;

  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-fh-kill9");
  const auto dlq_topic = topic + ".dead-letter";
  const auto group = unique_name("kc-it-fh-kill9-g");
  const unsigned seed = test_seed();
  std::printf("DLQKILL9: seed=%u (KC_TEST_SEED=%u repeats the kill delays)\n", seed, seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(100, 1500);
  create_topic(bs, topic, kPartitions);
  create_topic(bs, dlq_topic, kPartitions);

  // ~5% malformed, spread over all partitions (a hash of i, not i % 20).
  auto is_malformed = [](std::uint64_t i) {
    std::uint64_t z = i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return ((z ^ (z >> 31)) % 20) == 0;
  };
  auto make = [&](std::uint64_t i) {
    Record r;
    r.partition = static_cast<std::int32_t>(i % kPartitions);
    r.key = "k-" + std::to_string(i);
    r.headers.emplace_back("trace", std::string("\xde\xad", 2) + std::to_string(i));
    r.value = is_malformed(i) ? "{\"i\":" + std::to_string(i) + ",\"broken\":" : "{\"i\":" + std::to_string(i) + "}";
    return r;
  };
  StreamProducer producer(bs, topic, kRecords, kRate, make);

  TempDir dir("kc-fh-kill9");
  const auto sink = dir / "sink.jsonl";
  std::vector<std::string> run_notes;
  for (int run = 0; run <= kKills; ++run) {
    const bool last = run == kKills;
    const auto name = "run-" + std::to_string(run);
    // clang-format off
    std::vector<std::string> extra = {"--commit-every", "500",
                                      "-X", "session.timeout.ms=6000",
                                      "-X", "heartbeat.interval.ms=1000"};
    // clang-format on
    if (last) {
      ASSERT_EQ(producer.join(), kRecords);
      extra.insert(extra.end(), {"--idle-exit-ms", "4000"});
    }
    const auto size_before = file_size_or_zero(sink);
    const auto dlq_before = total_records(bs, dlq_topic, kPartitions);
    Subprocess kc(tool, consume_args(bs, group, topic, sink, "json", with_dlq(extra)), dir / (name + ".out"), dir / (name + ".err"));
    if (last) {
      const auto st = kc.wait(120s);
      ASSERT_TRUE(st.has_value()) << "the last run did not exit within 120 s" << describe(kc);
      ASSERT_TRUE(st->ok()) << "the last run failed" << describe(kc);
      run_notes.push_back(name + " exited when idle, dead letters +" +
                          std::to_string(total_records(bs, dlq_topic, kPartitions) - dlq_before));
      break;
    }
    ASSERT_TRUE(wait_until([&] { return !owned_partitions(kc.stderr_text(), topic).empty() || !kc.running(); }, 60s))
        << name << " got no assignment within 60 s" << describe(kc);
    ASSERT_TRUE(wait_until([&] { return file_size_or_zero(sink) > size_before || !kc.running(); }, 30s, 5ms))
        << name << " wrote nothing within 30 s" << describe(kc);
    // Records arrive at kRate with ~5% malformed: dead letters are being
    // written all the time the run works.
    const int delay = delay_ms(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    ASSERT_TRUE(kc.running()) << name << " ended before it could be killed" << describe(kc);
    kc.signal(SIGKILL);
    const auto st = kc.wait(10s);
    ASSERT_TRUE(st.has_value() && st->killed_by(SIGKILL)) << name << " was not killed" << describe(kc);
    const auto dlq_after = total_records(bs, dlq_topic, kPartitions);
    run_notes.push_back(name + " killed " + std::to_string(delay) + " ms after it began writing, dead letters +" +
                        std::to_string(dlq_after - dlq_before));
    EXPECT_GT(dlq_after, dlq_before) << name << " wrote no dead letter before it was killed";
  }
  for (const auto& n : run_notes) {
    std::printf("DLQKILL9: %s\n", n.c_str());
  }

  // Ground truth: the topic as the broker has it.
  const auto source = read_topic(bs, topic);
  ASSERT_EQ(source.size(), kRecords);
  std::map<std::pair<std::int32_t, std::int64_t>, const Record*> by_pos;
  std::uint64_t malformed_count = 0;
  for (const auto& r : source) {
    by_pos[{r.partition, r.offset}] = &r;
    const auto i = std::stoull(r.key.value_or("k-0").substr(2));
    malformed_count += is_malformed(i) ? 1 : 0;
  }
  auto malformed_at = [&](const Record& r) { return is_malformed(std::stoull(r.key.value_or("k-0").substr(2))); };

  std::map<std::pair<std::int32_t, std::int64_t>, int> sink_seen;
  std::uint64_t sink_wrong = 0;
  for (const auto& l : read_jsonl(sink)) {
    const auto it = by_pos.find({l.partition, l.offset});
    if (it == by_pos.end() || malformed_at(*it->second) || l.value_json != *it->second->value) {
      ++sink_wrong;
      continue;
    }
    ++sink_seen[{l.partition, l.offset}];
  }
  const auto dead = read_topic(bs, dlq_topic);
  std::map<std::pair<std::int32_t, std::int64_t>, int> dead_seen;
  std::uint64_t dead_wrong = 0;
  std::string first_dead_wrong;
  for (const auto& d : dead) {
    const auto pos = source_of(d);
    const auto it = by_pos.find(pos);
    if (it == by_pos.end() || !malformed_at(*it->second) || d.key != it->second->key || d.value != it->second->value ||
        !std::equal(it->second->headers.begin(), it->second->headers.end(), d.headers.begin()) ||
        d.header(kc::kHeaderErrorType) != "kc::DecodeError") {
      if (first_dead_wrong.empty()) {
        first_dead_wrong = "dead letter at DLQ p" + std::to_string(d.partition) + " o" + std::to_string(d.offset) +
                           " (source p" + std::to_string(pos.first) + " o" + std::to_string(pos.second) + ")";
      }
      ++dead_wrong;
      continue;
    }
    ++dead_seen[pos];
  }
  std::uint64_t good_missing = 0;
  std::uint64_t dead_missing = 0;
  std::uint64_t sink_duplicates = 0;
  std::uint64_t dead_duplicates = 0;
  std::string first_missing;
  for (const auto& r : source) {
    const std::pair<std::int32_t, std::int64_t> pos{r.partition, r.offset};
    auto& seen = malformed_at(r) ? dead_seen : sink_seen;
    const auto it = seen.find(pos);
    const int n = it == seen.end() ? 0 : it->second;
    if (n == 0) {
      (malformed_at(r) ? dead_missing : good_missing) += 1;
      if (first_missing.empty()) {
        first_missing = std::string(malformed_at(r) ? "malformed" : "good") + " record p" +
                        std::to_string(r.partition) + " o" + std::to_string(r.offset);
      }
    }
    (malformed_at(r) ? dead_duplicates : sink_duplicates) += n > 1 ? static_cast<std::uint64_t>(n - 1) : 0;
  }
  const auto hw = high_watermarks(bs, topic, kPartitions);
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  std::printf(
      "DLQKILL9: records=%llu malformed=%llu kills=%d sink_lines=%zu dead_letters=%zu lost_good=%llu "
      "lost_malformed=%llu sink_duplicates=%llu dlq_duplicates=%llu committed=%s hw=%s\n",
      static_cast<unsigned long long>(kRecords), static_cast<unsigned long long>(malformed_count), kKills,
      count_lines(sink), dead.size(), static_cast<unsigned long long>(good_missing),
      static_cast<unsigned long long>(dead_missing), static_cast<unsigned long long>(sink_duplicates),
      static_cast<unsigned long long>(dead_duplicates), join(committed).c_str(), join(hw).c_str());
  std::fflush(stdout);
  EXPECT_GT(malformed_count, kRecords / 25);
  EXPECT_EQ(good_missing, 0u) << first_missing;
  EXPECT_EQ(dead_missing, 0u) << first_missing;
  EXPECT_EQ(sink_wrong, 0u) << "sink lines that are not a good record's value";
  EXPECT_EQ(dead_wrong, 0u) << first_dead_wrong << ": not a byte-identical copy of a malformed record";
  EXPECT_EQ(committed, hw);
}

// ---------------------------------------------------------------- bad input

// Null, empty, invalid UTF-8, huge headers and values, deep nesting: `kc
// consume --value-format json` processes or dead-letters each one, never
// crashes, and the dead-letter copies are byte-identical.
TEST(BadInput, NullEmptyInvalidUtf8AndLargeHeadersNeverCrash) {
  const auto bs = bootstrap();
  const auto tool = kc_tool_path();
  const auto topic = unique_name("kc-it-fh-bad");
  const auto dlq_topic = topic + ".dead-letter";
  const auto group = unique_name("kc-it-fh-bad-g");
  create_topic(bs, topic, 1);
  create_topic(bs, dlq_topic, 1);

  struct Case {
    const char* name;
    Record record;
    bool dead;  // expected in the dead-letter topic, else in the sink
  };
  std::string big_header(200 * 1024, '\0');
  for (std::size_t i = 0; i < big_header.size(); ++i) {
    big_header[i] = static_cast<char>((i * 131 + 7) & 0xff);  // every byte value
  }
  const std::string big_json = "{\"blob\":\"" + std::string(900 * 1024, 'x') + "\",\"n\":1}";
  std::string big_bad = big_json;
  big_bad[big_bad.size() / 2] = '\x01';  // a control character inside the string: invalid
  const std::string invalid_key("\xff\xfe\x80\xc3(key", 8);
  const std::string deep = std::string(10'000, '[') + std::string(10'000, ']');

  std::vector<Case> cases;
  auto add = [&](const char* name, std::optional<std::string> key, std::optional<std::string> value, HeaderList headers,
                 bool dead) {
    Record r;
    r.partition = 0;
    r.key = std::move(key);
    r.value = std::move(value);
    r.headers = std::move(headers);
    cases.push_back({name, std::move(r), dead});
  };
  add("null value", std::string("null-value"), std::nullopt, {{"h", std::string("1")}}, false);
  add("empty value", std::string("empty-value"), std::string(), {{"h", std::string("2")}}, true);
  add("invalid utf-8 key, good value", invalid_key, std::string("{\"a\":1}"), {}, false);
  add("invalid utf-8 key, invalid utf-8 value", invalid_key + "2", std::string("{\"s\":\"\xc3\x28\"}"), {}, true);
  add("200 KiB header, good value", std::string("big-header-ok"), std::string("{\"ok\":true}"),
      {{"big", big_header}, {"small", std::string("s")}}, false);
  add("200 KiB header, malformed value", std::string("big-header-bad"), std::string("{\"ok\":"),
      {{"big", big_header}, {"small", std::string("s")}}, true);
  add("900 KiB value", std::string("big-value-ok"), big_json, {}, false);
  add("900 KiB malformed value", std::string("big-value-bad"), big_bad, {}, true);
  add("null key, malformed value", std::nullopt, std::string("not json"), {}, true);
  add("empty key, null and empty header values", std::string(), std::string("[]"),
      {{"null", std::nullopt}, {"empty", std::string()}, {"null", std::nullopt}}, false);
  add("empty key, null and empty header values, malformed", std::string(), std::string("[1,]"),
      {{"null", std::nullopt}, {"empty", std::string()}, {"bin", std::string("\x00\xff", 2)}}, true);
  add("10000-deep nesting", std::string("deep"), deep, {}, true);
  add("binary value", std::string("binary"), std::string("\x00\x01\x02\xff", 4), {}, true);
  add("escaped NUL in a string", std::string("escaped-nul"), std::string("{\"a\":\"\\u0000\"}"), {}, false);
  add("JSON null", std::string("json-null"), std::string("null"), {}, false);
  std::vector<Record> records;
  for (const auto& c : cases) {
    records.push_back(c.record);
  }
  produce_records(bs, topic, records);
  const auto hw = high_watermarks(bs, topic, 1);
  ASSERT_EQ(hw[0], static_cast<std::int64_t>(cases.size()));

  TempDir dir("kc-fh-bad");
  const auto sink = dir / "sink.jsonl";
  Subprocess kc(tool, consume_args(bs, group, topic, sink, "json", with_dlq({"--idle-exit-ms", "3000", "--dlq-headers", "both"})),
                dir / "run.out", dir / "run.err");
  const auto st = kc.wait(90s);
  ASSERT_TRUE(st.has_value()) << "kc consume did not exit within 90 s" << describe(kc);
  EXPECT_TRUE(st->ok()) << "kc consume did not exit 0" << describe(kc);

  // Offsets are the case indexes (one partition, produced in order).
  const auto source = read_topic(bs, topic);
  ASSERT_EQ(source.size(), cases.size());
  std::vector<int> in_sink(cases.size(), 0);
  std::vector<int> in_dlq(cases.size(), 0);
  std::vector<std::string> sink_value(cases.size());
  for (const auto& l : read_jsonl(sink)) {
    ASSERT_TRUE(l.partition == 0 && l.offset >= 0 && l.offset < static_cast<std::int64_t>(cases.size()))
        << "sink line for p" << l.partition << " o" << l.offset;
    ++in_sink[static_cast<std::size_t>(l.offset)];
    sink_value[static_cast<std::size_t>(l.offset)] = l.value_json;
  }
  const auto sink_text = read_file(sink);
  const auto dead = read_topic(bs, dlq_topic);
  for (const auto& d : dead) {
    const auto [p, o] = source_of(d);
    ASSERT_TRUE(p == 0 && o >= 0 && o < static_cast<std::int64_t>(cases.size()))
        << "dead letter with source p" << p << " o" << o;
    const auto i = static_cast<std::size_t>(o);
    ++in_dlq[i];
    Record expected = cases[i].record;
    expected.offset = source[i].offset;
    expected.timestamp = source[i].timestamp;
    const auto why = check_dead_letter(d, expected, topic, group, "kc::DecodeError", "1", 0, wall_ms());
    EXPECT_EQ(why, "") << "case '" << cases[i].name << "': the dead letter is not a faithful copy";
    EXPECT_EQ(d.header(kc::kSpringExceptionFqcn), "kc::DecodeError") << cases[i].name;
  }
  int processed = 0;
  int dead_lettered = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    processed += in_sink[i] > 0 ? 1 : 0;
    dead_lettered += in_dlq[i] > 0 ? 1 : 0;
    if (c.dead) {
      EXPECT_EQ(in_dlq[i], 1) << "case '" << c.name << "' should be dead-lettered once";
      EXPECT_EQ(in_sink[i], 0) << "case '" << c.name << "' should not be in the sink";
    } else {
      EXPECT_EQ(in_sink[i], 1) << "case '" << c.name << "' should be processed once" << describe(kc);
      EXPECT_EQ(in_dlq[i], 0) << "case '" << c.name << "' should not be dead-lettered";
      if (in_sink[i] == 1) {
        // The value as it was (single-line JSON stays byte for byte), null as null.
        EXPECT_EQ(sink_value[i], c.record.value.value_or("null")) << "case '" << c.name << "'";
      }
    }
  }
  // The invalid UTF-8 key is written in base64, with its marker.
  EXPECT_NE(sink_text.find("\"key\":\"" + base64(invalid_key) + "\",\"key_encoding\":\"base64\""), std::string::npos)
      << "the invalid UTF-8 key is not in the sink as base64";
  const auto committed = committed_offsets(bs, group, topic, 1);
  std::printf("BADINPUT: cases=%zu processed=%d dead_lettered=%d dlq_records=%zu exit=%s committed=%s hw=%s\n",
              cases.size(), processed, dead_lettered, dead.size(), st->to_string().c_str(), join(committed).c_str(),
              join(hw).c_str());
  std::fflush(stdout);
  EXPECT_EQ(committed, hw);
}

}  // namespace
}  // namespace kc::test
