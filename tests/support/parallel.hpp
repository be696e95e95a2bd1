// Fixtures for the tests that run kc::Consumer in the test process
// (parallel_test, parallel_consumer_test, parallel_basics_test,
// failure_handling_test): committed offsets with their
// metadata, a timer that completes asynchronous records later from its own
// threads, and a kc::Consumer run on a background thread.
//
// Not part of kc_test_support (it uses kc itself for kc::Completion and
// kc::Consumer): library kc::test_consumer_support.
// Errors are thrown as kc::test::Failure (see common.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "kc/consumer.hpp"
#include "support/common.hpp"

namespace kc::test {

/// One partition's committed offset and the metadata committed with it.
struct Committed {
  std::int64_t offset = -1;  ///< -1 when the group has committed nothing for the partition
  std::string metadata;
};

/// Reads a group's committed offsets and metadata (OffsetFetch through
/// rd_kafka_committed) without joining the group. Keeps one librdkafka client
/// for repeated reads (a sampler). Use from one thread at a time.
class CommittedReader {
 public:
  /// Creates the client (no I/O yet). Throws Failure when it cannot.
  CommittedReader(const std::string& bootstrap, const std::string& group);
  ~CommittedReader();
  CommittedReader(const CommittedReader&) = delete;
  CommittedReader& operator=(const CommittedReader&) = delete;

  /// Partitions 0..partitions-1 of `topic`. Blocks up to `timeout`; throws
  /// Failure when the broker does not answer or reports an error.
  std::vector<Committed> read(const std::string& topic, int partitions,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Commits `offset` with `metadata` for partition `partition` of `topic` in
/// `group`, as another application would (a consumer handle outside the
/// group, synchronous OffsetCommit). The group must have no active member.
/// Throws Failure when the broker refuses.
void commit_with_metadata(const std::string& bootstrap, const std::string& group, const std::string& topic,
                          int partition, std::int64_t offset, const std::string& metadata);

/// One-shot form of CommittedReader::read (a new client each call).
std::vector<Committed> committed_with_metadata(const std::string& bootstrap, const std::string& group,
                                               const std::string& topic, int partitions,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Runs functions at given times on `threads` threads of its own (for an
/// asynchronous handler's work that completes a record later: the function
/// calls Completion::done() and the like). Functions due at the same time
/// run in the order they were added when there is one thread.
/// The destructor stops the threads and destroys the functions not run yet
/// (a kc::Completion inside is then dropped). Thread-safe.
class Timer {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Timer(std::size_t threads = 1);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// Runs `fn` at `due` (at once when it is past). Exceptions thrown by `fn`
  /// are counted (errors()) and otherwise ignored.
  void at(Clock::time_point due, std::function<void()> fn);
  void after(std::chrono::microseconds delay, std::function<void()> fn) { at(Clock::now() + delay, std::move(fn)); }

  /// Functions added and not finished yet.
  std::size_t pending() const;
  /// Waits until pending() is 0 or `timeout` passed; returns whether it is 0.
  bool wait_idle(std::chrono::milliseconds timeout);
  /// Functions that threw.
  std::uint64_t errors() const;

 private:
  struct Item {
    Clock::time_point due;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Item& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  void loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
  std::uint64_t seq_ = 0;
  std::size_t running_ = 0;
  std::uint64_t errors_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started after the members they use
};

/// kc::Consumer::run() on a thread of its own, so the test thread can watch
/// and act meanwhile. The destructor calls stop() if the run is still going
/// and joins (never throws).
class BackgroundRun {
 public:
  explicit BackgroundRun(kc::Consumer& consumer);
  ~BackgroundRun();
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;

  bool finished() const noexcept { return finished_; }
  /// Waits for run() to return; rethrows what it threw. Call once.
  kc::RunResult join();
  /// join() with a bound: throws Failure when run() has not returned within
  /// `timeout` (the thread is then stopped with stop_now() and joined); when
  /// it does not return within 10 s of stop_now() either, prints why and
  /// aborts the process (a hang the test cannot get out of).
  kc::RunResult join(std::chrono::milliseconds timeout);

 private:
  kc::Consumer& consumer_;
  kc::RunResult result_;
  std::exception_ptr error_;
  std::atomic<bool> finished_{false};
  std::thread thread_;  // last: started after the members it uses
};

}  // namespace kc::test
