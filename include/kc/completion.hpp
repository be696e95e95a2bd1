// kc::Completion: how an asynchronous handler reports that a record is
// finished, from any thread, after its handler call returned.
#pragma once

#include <exception>
#include <memory>

#include "kc/types.hpp"

namespace kc {

namespace detail {
class CompletionQueue;
struct CompletionKey;
}  // namespace detail

/// The completion handle given to an AsyncHandler (kc/consumer.hpp): the
/// handler starts the work and returns; the work completes the record later,
/// from any thread, by calling one of done(), retry(), dead() or fail().
///
/// Copies share one state: the record is completed once, by the first call on
/// any copy; later calls change nothing and return false. When the last copy
/// is destroyed without a completion, the record completes as a failure
/// (kc::Error errc::misuse "handler dropped its completion", retried like a
/// thrown exception), so work is never silently lost.
///
/// Threads: any; every call is thread-safe and never blocks beyond a short
/// lock. A Completion may outlive the consumer; completing it then returns
/// false and changes nothing. Errors: std::bad_alloc only (the record then
/// stays not completed and the call may be repeated).
class Completion {
 public:
  /// An empty handle: every call returns false.
  Completion() = default;

  /// The record is processed: it may be committed.
  bool done() { return complete(Outcome::done, nullptr, false); }
  /// Transient failure: run the record again after the retry backoff (only
  /// its key waits in key mode), up to RetryPolicy::max_attempts.
  bool retry(std::exception_ptr error = nullptr) { return complete(Outcome::retry, std::move(error), false); }
  /// Permanent failure: the record is dead (dead-letter topic, with `error`'s
  /// text as the reason).
  bool dead(std::exception_ptr error = nullptr) { return complete(Outcome::dead, std::move(error), false); }
  /// As if the handler had thrown `error` (e.g. std::current_exception()):
  /// classified like a handler's exception (kc::PermanentError: dead, ...).
  bool fail(std::exception_ptr error) { return complete(Outcome::retry, std::move(error), true); }

  /// Whether the record was completed (by any copy).
  bool completed() const noexcept;

  /// For the library: a handle whose result goes to `queue` for `key`.
  /// Throws kc::Error (errc::misuse) when `queue` is null.
  Completion(std::shared_ptr<detail::CompletionQueue> queue, const detail::CompletionKey& key);

 private:
  struct State;
  bool complete(Outcome outcome, std::exception_ptr error, bool thrown);

  std::shared_ptr<State> state_;
};

}  // namespace kc
