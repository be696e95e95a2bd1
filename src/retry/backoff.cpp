#include "retry/backoff.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace kc::detail {

std::chrono::milliseconds Backoff::delay(const RetryPolicy& policy, int next_attempt) {
  const auto base = policy.delay_before(next_attempt);
  const double j = std::clamp(policy.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> spread(1.0 - j, 1.0 + j);
  return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * spread(rng_)));
}

namespace {

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

}  // namespace

Failure classify(const std::exception_ptr& e, const RetryPolicy& policy) noexcept {
  Failure f;
  try {
    try {
      std::rethrow_exception(e);
    } catch (const PermanentError& ex) {
      f.retriable = false;
      f.type = demangle(typeid(ex).name());
      f.message = ex.what();
    } catch (const std::exception& ex) {
      f.type = demangle(typeid(ex).name());
      f.message = ex.what();
    } catch (...) {
      const auto* t = abi::__cxa_current_exception_type();
      f.type = t != nullptr ? demangle(t->name()) : "unknown";
      f.message = "non-standard exception";
    }
    if (policy.is_retriable) {
      f.retriable = policy.is_retriable(e);
    }
  } catch (...) {
    // A classifier that throws (or bad_alloc): treat as permanent, keep going.
    f.retriable = false;
    if (f.type.empty()) {
      f.type = "unknown";
    }
  }
  return f;
}

}  // namespace kc::detail
