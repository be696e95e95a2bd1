// The threading half of parallel processing: a queue of completions that any
// thread fills and the poll thread drains, a pool of worker threads that runs
// CPU-bound handlers, and the completion handle given to asynchronous
// (I/O-bound) handlers. The scheduling half is dispatcher.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "dispatch/dispatcher.hpp"
#include "kc/completion.hpp"
#include "kc/types.hpp"

namespace kc::detail {

/// Which record a piece of work is for (the Dispatcher's names for it).
struct CompletionKey {
  PartitionId partition;
  std::int64_t offset = 0;
  friend bool operator==(const CompletionKey&, const CompletionKey&) = default;
};

/// The result of one piece of work, as the poll thread receives it.
struct CompletionResult {
  CompletionKey key;
  Outcome outcome = Outcome::done;
  /// Why it failed: null for done (and for retry()/dead() without an error).
  std::exception_ptr error;
  /// The handler threw `error` (or called Completion::fail, or dropped its
  /// Completion): `outcome` is retry and the owner classifies `error` the
  /// way it classifies a handler's exception (kc::PermanentError: dead, ...).
  bool thrown = false;
};

/// Completions pushed by any number of threads and drained by one owner (the
/// poll thread), with a wake-up hook so that an owner blocked elsewhere (in
/// librdkafka) hears about new completions at once.
///
/// Threads: push() and close() from any thread; drain() from the owner only
/// (one thread at a time). A mutex-protected vector, swapped out by drain():
/// push is one short critical section, drain one lock per batch. Memory grows
/// to the largest batch and is reused (steady state allocates nothing).
class CompletionQueue {
 public:
  /// `wake` (may be empty) is called when the queue goes from empty to
  /// non-empty: at most once until the next drain() takes the batch, however
  /// many pushes come in between. It runs on the pushing thread while the
  /// queue's lock is held, so it must be short and must not call back into
  /// this queue (the consumer's calls rd_kafka_queue_yield). What it throws
  /// is ignored: a poll loop also wakes at its own timeout.
  explicit CompletionQueue(std::function<void()> wake = {});

  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  /// Adds a completion; never blocks beyond the queue's lock. Returns false
  /// (and drops it) after close(). Throws std::bad_alloc only.
  bool push(CompletionResult result);

  /// Hands every completion pushed so far to `f(CompletionResult&&)`, in
  /// push order per producing thread, without blocking (one lock to take the
  /// batch; `f` runs unlocked, so producers are never held up by it). Returns
  /// how many were handed. Owner thread only. If `f` throws, the completions
  /// not handed yet stay first in line for the next drain().
  template <class F>
  std::size_t drain(F&& f);

  /// Completions pushed and not yet drained (a snapshot; for tests and stats).
  std::size_t size() const;

  /// From now on push() drops its completion and returns false, and the wake
  /// hook is never called again (when close() returns, no call of it is in
  /// progress: the owner may then destroy what the hook uses). What was
  /// pushed before can still be drained. Idempotent; any thread.
  void close();

  /// Whether close() was called.
  bool closed() const;

 private:
  mutable std::mutex mutex_;
  std::vector<CompletionResult> pending_;  // guarded by mutex_
  bool closed_ = false;                    // guarded by mutex_
  std::function<void()> wake_;             // set once, called under mutex_
  // Owner thread only: the batch being handed out and how far drain() got.
  std::vector<CompletionResult> batch_;
  std::size_t batch_pos_ = 0;
};

/// The asynchronous handler's handle (public: kc/completion.hpp).
using Completion = kc::Completion;

/// N threads ("kc-worker-0".."kc-worker-N-1") that run submitted jobs and
/// push each job's result to a CompletionQueue.
///
/// Threads: submit(), stop() and the accessors from any thread (the owner is
/// the poll thread); jobs run on the workers. Jobs of one pool may run in any
/// order and in parallel: ordering is the Dispatcher's business, which
/// submits only records that may run now.
///
/// Bounds: at most `capacity` jobs queued or running; submit() refuses more
/// (with the Dispatcher's max_in_flight as capacity this never happens). A
/// job's slot is freed before its completion is pushed, so the owner may
/// submit again as soon as it has drained a completion.
class WorkerPool {
 public:
  using Clock = std::chrono::steady_clock;
  /// A job: processes one record and says how it went. What it throws is
  /// carried to the owner (CompletionResult::thrown). Its captures are
  /// destroyed on the worker before its completion is pushed.
  using Job = std::function<Outcome()>;

  /// What stop() left behind.
  struct StopResult {
    /// Jobs that were queued and never started, in submission order: their
    /// records were not processed (the owner leaves them uncommitted).
    std::vector<CompletionKey> not_run;
    /// Jobs started whose completion was not pushed by the deadline (0: every
    /// started job's completion is in the queue). When not 0, the threads were
    /// detached; each pushes its completion when its job ends, unless the
    /// queue is closed by then. The owner must keep what those jobs use alive (or give the jobs
    /// ownership of it).
    std::size_t still_running = 0;
  };

  /// Starts `threads` threads. Throws kc::Error (errc::config_invalid_value)
  /// when threads or capacity is 0 or `completions` is null, and
  /// std::system_error when a thread cannot be started (those started are
  /// stopped first). Shares ownership of `completions`.
  WorkerPool(std::size_t threads, std::size_t capacity, std::shared_ptr<CompletionQueue> completions);

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Stops as stop(Clock::time_point::max()) when stop() was not called:
  /// jobs not started are dropped and running jobs are waited for (without
  /// bound: for a bounded shutdown, call stop(deadline) first).
  ~WorkerPool();

  /// Queues `job` for the record `key`. Never blocks beyond the pool's lock.
  /// Returns false (and drops the job) when capacity jobs are queued or
  /// running, or stop() was called. Throws only what moving the job throws.
  bool submit(CompletionKey key, Job job);

  /// Starts no more jobs, takes the queued ones back (StopResult::not_run),
  /// and waits until the running jobs finished or `deadline`, whichever
  /// comes first; threads that finished are joined, the others detached
  /// (still_running). Blocks until then at most. Any thread but a worker of
  /// this pool. A second call reports nothing more (empty result).
  StopResult stop(Clock::time_point deadline);

  /// Jobs queued and not started.
  std::size_t queued() const;
  /// Jobs running now.
  std::size_t running() const;
  /// Number of worker threads.
  std::size_t threads() const noexcept { return threads_.size(); }

 private:
  struct Task {
    CompletionKey key;
    Job job;
  };

  // Shared with the threads, so a thread detached by stop() never touches a
  // destroyed pool.
  struct Shared {
    std::shared_ptr<CompletionQueue> completions;
    mutable std::mutex mutex;
    std::condition_variable work;    // a task was queued, or stopping
    std::condition_variable exited;  // a thread is about to end
    std::vector<Task> ring;          // capacity slots, guarded by mutex
    std::size_t head = 0;            // guarded by mutex
    std::size_t queued = 0;          // guarded by mutex
    std::size_t running = 0;         // guarded by mutex; slots, freed before the push
    std::size_t unreported = 0;      // guarded by mutex; taken and not yet pushed
    std::size_t exited_threads = 0;  // guarded by mutex
    bool stopping = false;           // guarded by mutex
  };

  static void run(const std::shared_ptr<Shared>& shared, std::size_t index);

  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;   // stop() ran (owner's flag: stop and the destructor)
  std::mutex stop_mutex_;  // serialises stop() calls
};

template <class F>
std::size_t CompletionQueue::drain(F&& f) {
  // First what a throwing f left over, then one batch taken under the lock.
  std::size_t handed = 0;
  for (bool taken = false;; taken = true) {
    while (batch_pos_ < batch_.size()) {
      ++handed;
      f(std::move(batch_[batch_pos_++]));
    }
    batch_.clear();  // keeps the capacity: the next swap hands it to producers
    batch_pos_ = 0;
    if (taken) return handed;
    std::lock_guard lock(mutex_);
    batch_.swap(pending_);
  }
}

}  // namespace kc::detail
