#include "retry/router.hpp"

namespace kc::detail {

FailureAction route(const RetryPolicy& policy, bool dead_letters, const Failure& f, int attempt) noexcept {
  if (f.retriable && attempt < policy.max_attempts) {
    // Retry topics are written by the dead-letter writer: without one (it
    // exists whenever use_topics is set), the retry happens in place.
    return policy.use_topics && dead_letters ? FailureAction::retry_topic : FailureAction::retry_in_place;
  }
  return dead_letters ? FailureAction::dead_letter : FailureAction::halt;
}

std::string retry_origin(std::string_view source_topic, bool from_retry_topic, std::string_view retry_header) {
  return std::string(from_retry_topic && !retry_header.empty() ? retry_header : source_topic);
}

}  // namespace kc::detail
