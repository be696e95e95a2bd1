// CompletionQueue, WorkerPool and Completion: every job completes exactly
// once, failures are carried, the wake-up hook is coalesced, and stop() is
// bounded. Meant to run under TSan as well (-DKC_TSAN=ON).
#include "dispatch/workers.hpp"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "kc/retry.hpp"

namespace kc::detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

CompletionKey key(std::int64_t offset, std::uint32_t slot = 0) {
  return {PartitionId{slot, 1}, offset};
}

// What a poll loop does with the hook: a flag and a condition variable
// standing in for rd_kafka_queue_yield.
struct Waker {
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
  std::atomic<int> calls{0};

  std::function<void()> hook() {
    return [this] {
      calls.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard lock(mutex);
        woken = true;
      }
      cv.notify_one();
    };
  }
  // Blocks like the poll loop: until woken or at most `timeout`.
  void wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, timeout, [&] { return woken; });
    woken = false;
  }
};

std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  }
}

// Drains `q` until `want` completions arrived or 30 s passed.
std::vector<CompletionResult> collect(CompletionQueue& q, Waker& w, std::size_t want) {
  std::vector<CompletionResult> got;
  auto give_up = Clock::now() + 30s;
  while (got.size() < want && Clock::now() < give_up) {
    q.drain([&](CompletionResult&& r) { got.push_back(std::move(r)); });
    if (got.size() < want) w.wait(100ms);
  }
  return got;
}

// ---- CompletionQueue ------------------------------------------------------

TEST(CompletionQueue, DrainsInPushOrderAndHandsEachOnce) {
  CompletionQueue q;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(q.push({key(i), Outcome::done, nullptr, false}));
  EXPECT_EQ(q.size(), 5u);
  std::vector<std::int64_t> offsets;
  EXPECT_EQ(q.drain([&](CompletionResult&& r) { offsets.push_back(r.key.offset); }), 5u);
  EXPECT_EQ(offsets, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(q.drain([&](CompletionResult&&) { ADD_FAILURE(); }), 0u);
  EXPECT_EQ(q.size(), 0u);
}

TEST(CompletionQueue, WakeHookFiresWhenTheQueueBecomesNonEmptyAndIsCoalesced) {
  Waker w;
  CompletionQueue q(w.hook());
  EXPECT_EQ(w.calls, 0);
  q.push({key(0), Outcome::done, nullptr, false});
  EXPECT_EQ(w.calls, 1);
  for (int i = 1; i < 100; ++i) q.push({key(i), Outcome::done, nullptr, false});
  EXPECT_EQ(w.calls, 1) << "pushes into a non-empty queue do not wake again";
  EXPECT_EQ(q.drain([](CompletionResult&&) {}), 100u);
  EXPECT_EQ(q.drain([](CompletionResult&&) {}), 0u);
  EXPECT_EQ(w.calls, 1) << "draining does not wake";
  q.push({key(100), Outcome::done, nullptr, false});
  EXPECT_EQ(w.calls, 2) << "empty again after the drain: the next push wakes";
}

TEST(CompletionQueue, AThrowingHookIsIgnored) {
  CompletionQueue q([] { throw std::runtime_error("hook"); });
  EXPECT_TRUE(q.push({key(0), Outcome::done, nullptr, false}));
  EXPECT_EQ(q.size(), 1u);
}

TEST(CompletionQueue, WhatAThrowingDrainFunctionLeftComesFirstNextTime) {
  CompletionQueue q;
  for (int i = 0; i < 4; ++i) q.push({key(i), Outcome::done, nullptr, false});
  std::vector<std::int64_t> seen;
  EXPECT_THROW(q.drain([&](CompletionResult&& r) {
    seen.push_back(r.key.offset);
    if (r.key.offset == 1) throw std::runtime_error("owner failed");
  }),
               std::runtime_error);
  q.push({key(4), Outcome::done, nullptr, false});
  EXPECT_EQ(q.drain([&](CompletionResult&& r) { seen.push_back(r.key.offset); }), 3u);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
}

TEST(CompletionQueue, ClosedQueueDropsPushesAndNeverWakes) {
  Waker w;
  CompletionQueue q(w.hook());
  q.push({key(0), Outcome::done, nullptr, false});
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.push({key(1), Outcome::done, nullptr, false}));
  EXPECT_EQ(q.drain([](CompletionResult&&) {}), 1u) << "what was pushed before close() is still drained";
  EXPECT_FALSE(q.push({key(2), Outcome::done, nullptr, false}));
  EXPECT_EQ(w.calls, 1);
}

TEST(CompletionQueue, OwnerDrainsWhileProducersPushEachOnceInOrderWakesCoalesced) {
  constexpr int kProducers = 4;
  constexpr int kEach = 50'000;
  Waker w;
  CompletionQueue q(w.hook());
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&q, p] {
      for (int i = 0; i < kEach; ++i) {
        q.push({key(i, static_cast<std::uint32_t>(p)), Outcome::done, nullptr, false});
        if (i % 1000 == 0) std::this_thread::yield();
      }
    });
  }
  std::vector<std::int64_t> next(kProducers, 0);
  std::size_t total = 0, batches = 0;
  bool ordered = true;
  auto give_up = Clock::now() + 60s;
  while (total < std::size_t{kProducers} * kEach && Clock::now() < give_up) {
    std::size_t n = q.drain([&](CompletionResult&& r) {
      auto& expected = next[r.key.partition.slot];
      if (r.key.offset != expected) ordered = false;
      expected = r.key.offset + 1;
    });
    if (n > 0) ++batches;
    total += n;
    if (n == 0) w.wait(100ms);
  }
  for (auto& t : producers) t.join();
  total += q.drain([](CompletionResult&&) { ADD_FAILURE() << "more than was pushed"; });
  EXPECT_EQ(total, std::size_t{kProducers} * kEach);
  EXPECT_TRUE(ordered) << "each producer's completions arrive once, in its push order";
  // Every wake is one empty -> non-empty transition, and every such batch was
  // taken by one drain: wakes == non-empty drains.
  EXPECT_EQ(static_cast<std::size_t>(w.calls.load()), batches);
  EXPECT_LT(batches, total) << "wakes were coalesced";
}

// ---- WorkerPool -----------------------------------------------------------

TEST(WorkerPool, EveryJobCompletesExactlyOnce) {
  constexpr int kJobs = 10'000;
  constexpr std::size_t kLimit = 64;  // the dispatcher's max_in_flight
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  std::vector<std::atomic<int>> runs(kJobs);
  WorkerPool pool(4, kLimit, q);
  EXPECT_EQ(pool.threads(), 4u);

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> sleep_us(0, 200);
  std::vector<int> completions(kJobs, 0);
  int submitted = 0, received = 0;
  std::size_t in_flight = 0;
  bool outcomes_right = true;
  auto give_up = Clock::now() + 60s;
  while (received < kJobs && Clock::now() < give_up) {
    while (submitted < kJobs && in_flight < kLimit) {
      int i = submitted++;
      auto us = std::chrono::microseconds(sleep_us(rng));
      ASSERT_TRUE(pool.submit(key(i), [&runs, i, us] {
        runs[static_cast<std::size_t>(i)].fetch_add(1);
        std::this_thread::sleep_for(us);
        return i % 3 == 0 ? Outcome::done : i % 3 == 1 ? Outcome::retry : Outcome::dead;
      }));
      ++in_flight;
    }
    std::size_t n = q->drain([&](CompletionResult&& r) {
      auto i = r.key.offset;
      ++completions[static_cast<std::size_t>(i)];
      Outcome want = i % 3 == 0 ? Outcome::done : i % 3 == 1 ? Outcome::retry : Outcome::dead;
      if (r.outcome != want || r.thrown || r.error) outcomes_right = false;
      ++received;
      --in_flight;
    });
    if (n == 0) w.wait(100ms);
  }
  auto stopped = pool.stop(Clock::now() + 5s);
  EXPECT_TRUE(stopped.not_run.empty());
  EXPECT_EQ(stopped.still_running, 0u);
  EXPECT_EQ(received, kJobs);
  EXPECT_TRUE(outcomes_right);
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_EQ(completions[static_cast<std::size_t>(i)], 1) << "job " << i;
    ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "job " << i;
  }
  EXPECT_EQ(q->size(), 0u);
}

TEST(WorkerPool, ExceptionsAreCarriedToTheOwner) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  WorkerPool pool(2, 8, q);
  ASSERT_TRUE(pool.submit(key(1), []() -> Outcome { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(pool.submit(key(2), []() -> Outcome { throw PermanentError("bad record"); }));
  ASSERT_TRUE(pool.submit(key(3), []() -> Outcome { throw 42; }));
  auto got = collect(*q, w, 3);
  ASSERT_EQ(got.size(), 3u);
  for (auto& r : got) {
    EXPECT_TRUE(r.thrown);
    EXPECT_EQ(r.outcome, Outcome::retry) << "the owner classifies";
    ASSERT_TRUE(r.error);
    if (r.key.offset == 1) {
      EXPECT_EQ(what(r.error), "boom");
    } else if (r.key.offset == 2) {
      EXPECT_THROW(std::rethrow_exception(r.error), PermanentError);
    } else {
      EXPECT_THROW(std::rethrow_exception(r.error), int);
    }
  }
}

TEST(WorkerPool, ThreadsAreNamed) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  std::mutex m;
  std::vector<std::string> names;
  {
    WorkerPool pool(3, 16, q);
    for (int i = 0; i < 16; ++i) {
      ASSERT_TRUE(pool.submit(key(i), [&] {
        char buf[16] = {};
        pthread_getname_np(pthread_self(), buf, sizeof buf);
        std::lock_guard lock(m);
        names.emplace_back(buf);
        return Outcome::done;
      }));
    }
    ASSERT_EQ(collect(*q, w, 16).size(), 16u);
  }
  for (auto& n : names) EXPECT_TRUE(n == "kc-worker-0" || n == "kc-worker-1" || n == "kc-worker-2") << n;
}

TEST(WorkerPool, SubmitIsBoundedAndASlotIsFreeOnceItsCompletionIsSeen) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  WorkerPool pool(2, 1, q);
  std::atomic<bool> release{false};
  ASSERT_TRUE(pool.submit(key(0), [&] {
    while (!release) std::this_thread::sleep_for(1ms);
    return Outcome::done;
  }));
  EXPECT_FALSE(pool.submit(key(1), [] { return Outcome::done; })) << "capacity 1: full";
  release = true;
  ASSERT_EQ(collect(*q, w, 1).size(), 1u);
  // Capacity 1, 2 threads: every submit right after its predecessor's
  // completion was drained must be accepted.
  for (int i = 1; i <= 1000; ++i) {
    ASSERT_TRUE(pool.submit(key(i), [] { return Outcome::done; })) << i;
    ASSERT_EQ(collect(*q, w, 1).size(), 1u);
  }
}

TEST(WorkerPool, StopWithADeadlineWhileJobsRunIsBounded) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<int>>(0);
  WorkerPool pool(2, 16, q);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(pool.submit(key(i), [release, started] {  // owns what it uses: it outlives stop()
      started->fetch_add(1);
      while (!*release) std::this_thread::sleep_for(1ms);
      return Outcome::done;
    }));
  }
  auto ran_queued = std::make_shared<std::atomic<int>>(0);
  for (int i = 2; i < 7; ++i) {
    ASSERT_TRUE(pool.submit(key(i), [ran_queued] {
      ran_queued->fetch_add(1);
      return Outcome::done;
    }));
  }
  while (started->load() < 2) std::this_thread::sleep_for(1ms);

  auto t0 = Clock::now();
  auto stopped = pool.stop(t0 + 100ms);
  auto took = Clock::now() - t0;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s) << "bounded by the deadline";
  EXPECT_EQ(stopped.not_run, (std::vector<CompletionKey>{key(2), key(3), key(4), key(5), key(6)}));
  EXPECT_EQ(stopped.still_running, 2u);
  EXPECT_FALSE(pool.submit(key(7), [] { return Outcome::done; })) << "stopped";
  EXPECT_TRUE(pool.stop(Clock::now() + 1s).not_run.empty()) << "a second stop reports nothing more";

  // The detached jobs still report when they end (the queue is open).
  release->store(true);
  auto got = collect(*q, w, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(ran_queued->load(), 0) << "queued jobs never ran";
}

TEST(WorkerPool, StopWaitsForRunningJobsWithinTheDeadline) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  WorkerPool pool(4, 16, q);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool.submit(key(i), [] {
      std::this_thread::sleep_for(20ms);
      return Outcome::done;
    }));
  }
  while (pool.running() < 4) std::this_thread::sleep_for(1ms);
  auto stopped = pool.stop(Clock::now() + 10s);
  EXPECT_TRUE(stopped.not_run.empty());
  EXPECT_EQ(stopped.still_running, 0u);
  EXPECT_EQ(q->size(), 4u) << "every started job's completion is in the queue when stop() returns";
}

TEST(WorkerPool, DestructorDropsQueuedJobsAndWaitsForRunningOnes) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1, 8, q);
    std::atomic<bool> in_job{false};
    ASSERT_TRUE(pool.submit(key(0), [&] {
      in_job = true;
      std::this_thread::sleep_for(20ms);
      ++ran;
      return Outcome::done;
    }));
    for (int i = 1; i < 8; ++i) {
      ASSERT_TRUE(pool.submit(key(i), [&] {
        ++ran;
        return Outcome::done;
      }));
    }
    while (!in_job) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(q->size(), 1u);
}

TEST(WorkerPool, RejectsBadLimits) {
  auto q = std::make_shared<CompletionQueue>();
  EXPECT_THROW(WorkerPool(0, 1, q), Error);
  EXPECT_THROW(WorkerPool(1, 0, q), Error);
  EXPECT_THROW(WorkerPool(1, 1, nullptr), Error);
}

// ---- Completion -----------------------------------------------------------

TEST(Completion, CompletesOnceFromForeignThreads) {
  constexpr int kRecords = 1000;
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  threads.reserve(2 * kRecords);
  for (int i = 0; i < kRecords; ++i) {
    Completion c(q, key(i));
    // Two threads race to complete each record; exactly one wins.
    threads.emplace_back([c, i, &accepted]() mutable {
      bool ok = i % 3 == 0   ? c.done()
                : i % 3 == 1 ? c.retry(std::make_exception_ptr(RetriableError("later")))
                             : c.dead(std::make_exception_ptr(PermanentError("never")));
      if (ok) ++accepted;
    });
    threads.emplace_back([c, &accepted]() mutable {
      if (c.done()) ++accepted;
    });
  }
  std::vector<CompletionResult> got = collect(*q, w, kRecords);
  for (auto& t : threads) t.join();
  q->drain([&](CompletionResult&& r) { got.push_back(std::move(r)); });
  EXPECT_EQ(accepted.load(), kRecords);
  ASSERT_EQ(got.size(), std::size_t{kRecords}) << "one completion per record, none from the dropped copies";
  std::vector<int> seen(kRecords, 0);
  for (auto& r : got) {
    ++seen[static_cast<std::size_t>(r.key.offset)];
    EXPECT_FALSE(r.thrown);
  }
  for (int i = 0; i < kRecords; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
}

TEST(Completion, SecondCompletionIsIgnoredAndReportedFalse) {
  auto q = std::make_shared<CompletionQueue>();
  Completion c(q, key(7));
  Completion copy = c;
  EXPECT_FALSE(c.completed());
  EXPECT_TRUE(c.retry(std::make_exception_ptr(RetriableError("busy"))));
  EXPECT_TRUE(copy.completed());
  EXPECT_FALSE(c.done());
  EXPECT_FALSE(copy.dead());
  EXPECT_FALSE(copy.fail(std::make_exception_ptr(std::runtime_error("x"))));
  std::vector<CompletionResult> got;
  q->drain([&](CompletionResult&& r) { got.push_back(std::move(r)); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, key(7));
  EXPECT_EQ(got[0].outcome, Outcome::retry);
  EXPECT_FALSE(got[0].thrown);
  EXPECT_EQ(what(got[0].error), "busy");
}

TEST(Completion, FailIsClassifiedLikeAThrow) {
  auto q = std::make_shared<CompletionQueue>();
  Completion c(q, key(1));
  EXPECT_TRUE(c.fail(std::make_exception_ptr(PermanentError("bad"))));
  std::vector<CompletionResult> got;
  q->drain([&](CompletionResult&& r) { got.push_back(std::move(r)); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].thrown);
  EXPECT_THROW(std::rethrow_exception(got[0].error), PermanentError);
}

TEST(Completion, DroppedCompletionCompletesAsAFailure) {
  Waker w;
  auto q = std::make_shared<CompletionQueue>(w.hook());
  {
    Completion c(q, key(3, 2));
    { Completion copy = c; }
    EXPECT_EQ(q->size(), 0u) << "a copy is still alive";
    std::thread([moved = std::move(c)] {}).join();  // the last copy dies on another thread
  }
  std::vector<CompletionResult> got;
  q->drain([&](CompletionResult&& r) { got.push_back(std::move(r)); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, key(3, 2));
  EXPECT_EQ(got[0].outcome, Outcome::retry);
  EXPECT_TRUE(got[0].thrown);
  try {
    std::rethrow_exception(got[0].error);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), make_error_code(errc::misuse));
    EXPECT_NE(std::string(e.what()).find("handler dropped its completion"), std::string::npos);
  } catch (...) {
    ADD_FAILURE() << "not a kc::Error";
  }
  EXPECT_EQ(w.calls, 1);
}

TEST(Completion, OutlivesItsConsumer) {
  Completion late;
  {
    auto q = std::make_shared<CompletionQueue>();
    late = Completion(q, key(1));
    q->close();  // the consumer stopped
  }
  EXPECT_FALSE(late.done()) << "dropped: the queue is closed";
  EXPECT_TRUE(late.completed());
  Completion empty;
  EXPECT_FALSE(empty.done());
  EXPECT_FALSE(empty.completed());
}

TEST(Completion, DroppedAfterCloseIsDroppedQuietly) {
  auto q = std::make_shared<CompletionQueue>();
  {
    Completion c(q, key(1));
    q->close();
  }
  EXPECT_EQ(q->size(), 0u);
}

}  // namespace
}  // namespace kc::detail
