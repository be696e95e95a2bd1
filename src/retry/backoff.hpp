// Jittered delays and exception classification for retries.
#pragma once

#include <chrono>
#include <exception>
#include <random>
#include <string>

#include "kc/retry.hpp"

namespace kc::detail {

/// `policy.delay_before(next_attempt)` spread by +-policy.jitter.
/// Not thread-safe (one generator per poll thread).
class Backoff {
 public:
  std::chrono::milliseconds delay(const RetryPolicy& policy, int next_attempt);

 private:
  std::minstd_rand rng_{std::random_device{}()};
};

/// What a handler's exception means, and how to describe it in a dead letter.
struct Failure {
  bool retriable = true;
  std::string type;     ///< demangled C++ type, e.g. "kc::PermanentError"
  std::string message;  ///< what(), or a description for non-std exceptions
};

/// Classifies the exception `e` under `policy` (default: PermanentError and
/// its subclasses are not retriable, everything else is). Never throws.
Failure classify(const std::exception_ptr& e, const RetryPolicy& policy) noexcept;

}  // namespace kc::detail
