// Worker threads and completions.
//
// Why a mutex and a swapped vector rather than a lock-free MPSC queue: the
// poll thread drains a whole batch with one lock, producers hold the lock for
// one push_back, and the cost (measured in the README) is far below a
// handler's; a lock-free queue would add a node allocation per completion or
// a bounded ring with its own full-queue policy.
//
// Why the wake hook runs under the queue's lock: close() must guarantee that
// no hook call is in progress when it returns (the consumer destroys the
// librdkafka queue the hook yields right after), and the hook runs once per
// batch, so holding the lock for it costs producers little.
//
// Why pool state is shared with the threads: stop(deadline) must return by
// its deadline even when a handler hangs; such a thread is detached and keeps
// only the shared state (and the CompletionQueue) alive, never the pool.
#include "dispatch/workers.hpp"

#include <pthread.h>

#include <string>

#include "kc/error.hpp"

namespace kc::detail {

// ---- CompletionQueue ------------------------------------------------------

CompletionQueue::CompletionQueue(std::function<void()> wake) : wake_(std::move(wake)) {}

bool CompletionQueue::push(CompletionResult result) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  pending_.push_back(std::move(result));
  if (pending_.size() == 1 && wake_) {
    try {
      wake_();
    } catch (...) {  // best effort: the owner also wakes at its poll timeout
    }
  }
  return true;
}

std::size_t CompletionQueue::size() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void CompletionQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool CompletionQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

// ---- Completion -----------------------------------------------------------

}  // namespace kc::detail

namespace kc {

using detail::CompletionKey;
using detail::CompletionQueue;
using detail::CompletionResult;

struct Completion::State {
  State(std::shared_ptr<CompletionQueue> q, CompletionKey k) : queue(std::move(q)), key(k) {}
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  ~State() {
    if (completed.exchange(true, std::memory_order_acq_rel)) return;
    try {
      queue->push(CompletionResult{
          key, Outcome::retry, std::make_exception_ptr(Error(errc::misuse, "handler dropped its completion")), true});
    } catch (...) {  // out of memory: nothing left to report it with
    }
  }

  std::shared_ptr<CompletionQueue> queue;
  CompletionKey key;
  std::atomic<bool> completed{false};
};

Completion::Completion(std::shared_ptr<CompletionQueue> queue, const CompletionKey& key) {
  if (!queue) throw Error(errc::misuse, "Completion: null CompletionQueue");
  state_ = std::make_shared<State>(std::move(queue), key);
}

bool Completion::completed() const noexcept {
  return state_ && state_->completed.load(std::memory_order_acquire);
}

bool Completion::complete(Outcome outcome, std::exception_ptr error, bool thrown) {
  if (!state_ || state_->completed.exchange(true, std::memory_order_acq_rel)) return false;
  try {
    return state_->queue->push(CompletionResult{state_->key, outcome, std::move(error), thrown});
  } catch (...) {
    // Not pushed: leave it to a later call, or to the drop in ~State.
    state_->completed.store(false, std::memory_order_release);
    throw;
  }
}

}  // namespace kc

namespace kc::detail {

// ---- WorkerPool -----------------------------------------------------------

WorkerPool::WorkerPool(std::size_t threads, std::size_t capacity, std::shared_ptr<CompletionQueue> completions) {
  if (threads == 0) throw Error(errc::config_invalid_value, "WorkerPool: threads must be at least 1");
  if (capacity == 0) throw Error(errc::config_invalid_value, "WorkerPool: capacity must be at least 1");
  if (!completions) throw Error(errc::config_invalid_value, "WorkerPool: null CompletionQueue");
  shared_ = std::make_shared<Shared>();
  shared_->completions = std::move(completions);
  shared_->ring.resize(capacity);
  threads_.reserve(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back(&WorkerPool::run, shared_, i);
  } catch (...) {
    stop(Clock::time_point::max());
    throw;
  }
}

WorkerPool::~WorkerPool() {
  stop(Clock::time_point::max());
}

bool WorkerPool::submit(CompletionKey key, Job job) {
  {
    std::lock_guard lock(shared_->mutex);
    Shared& s = *shared_;
    if (s.stopping || s.queued + s.running >= s.ring.size()) return false;
    Task& slot = s.ring[(s.head + s.queued) % s.ring.size()];
    slot.key = key;
    slot.job = std::move(job);
    ++s.queued;
  }
  shared_->work.notify_one();
  return true;
}

WorkerPool::StopResult WorkerPool::stop(Clock::time_point deadline) {
  std::lock_guard stop_lock(stop_mutex_);
  StopResult result;
  if (stopped_) return result;
  stopped_ = true;

  std::vector<Job> dropped;  // destroyed unlocked: a job's captures are the user's
  {
    std::lock_guard lock(shared_->mutex);
    Shared& s = *shared_;
    s.stopping = true;
    result.not_run.reserve(s.queued);
    dropped.reserve(s.queued);
    for (; s.queued > 0; --s.queued) {
      Task& t = s.ring[s.head];
      result.not_run.push_back(t.key);
      dropped.push_back(std::move(t.job));
      t.job = nullptr;
      s.head = (s.head + 1) % s.ring.size();
    }
  }
  shared_->work.notify_all();
  dropped.clear();

  std::size_t exited = 0;
  {
    std::unique_lock lock(shared_->mutex);
    auto all_out = [&] { return shared_->exited_threads == threads_.size(); };
    if (deadline == Clock::time_point::max()) {
      shared_->exited.wait(lock, all_out);
    } else {
      shared_->exited.wait_until(lock, deadline, all_out);
    }
    exited = shared_->exited_threads;
    result.still_running = shared_->unreported;
  }
  // A thread counted as exited only has its return left: join it. Which of
  // the threads they are is not known, so join exactly as many as exited
  // when all did, and otherwise detach all: the shared state keeps the
  // finished and the running alike safe.
  for (auto& t : threads_) {
    if (!t.joinable()) continue;
    if (exited == threads_.size()) {
      t.join();
    } else {
      t.detach();
    }
  }
  return result;
}

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->queued;
}

std::size_t WorkerPool::running() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->running;
}

void WorkerPool::run(const std::shared_ptr<Shared>& shared_ref, std::size_t index) {
  std::shared_ptr<Shared> keep = shared_ref;  // outlives the pool if detached
  Shared& s = *keep;
  {
    // Linux limits thread names to 15 characters: "kc-worker-99999".
    std::string name = "kc-worker-" + std::to_string(index);
    if (name.size() > 15) name.resize(15);
    pthread_setname_np(pthread_self(), name.c_str());
  }
  for (;;) {
    Task task;
    {
      std::unique_lock lock(s.mutex);
      s.work.wait(lock, [&] { return s.stopping || s.queued > 0; });
      if (s.stopping) break;  // stop() took the queued tasks back
      Task& slot = s.ring[s.head];
      task.key = slot.key;
      task.job = std::move(slot.job);
      slot.job = nullptr;
      s.head = (s.head + 1) % s.ring.size();
      --s.queued;
      ++s.running;
      ++s.unreported;
    }
    CompletionResult result{task.key, Outcome::done, nullptr, false};
    try {
      result.outcome = task.job();
    } catch (...) {
      result.outcome = Outcome::retry;
      result.error = std::current_exception();
      result.thrown = true;
    }
    task.job = nullptr;  // captures go before the owner hears the record is finished
    {
      std::lock_guard lock(s.mutex);
      --s.running;  // before the push: the owner may submit again on seeing it
    }
    // Out of memory here would lose the completion: let it terminate instead.
    s.completions->push(std::move(result));
    std::lock_guard lock(s.mutex);
    --s.unreported;
  }
  {
    std::lock_guard lock(s.mutex);
    ++s.exited_threads;
  }
  s.exited.notify_all();
}

}  // namespace kc::detail
