#include <algorithm>
#include <cmath>

#include "kc/deadletter.hpp"

namespace kc {

std::chrono::milliseconds RetryPolicy::delay_before(int next_attempt) const noexcept {
  if (next_attempt <= 1) {
    return std::chrono::milliseconds(0);
  }
  const double base = static_cast<double>(backoff.count()) * std::pow(multiplier, next_attempt - 2);
  const double capped = std::min(base, static_cast<double>(backoff_max.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped));
}

std::string RetryPolicy::retry_topic_for(std::string_view source_topic, int n) const {
  std::string out = topic_pattern;
  for (auto at = out.find("{topic}"); at != std::string::npos; at = out.find("{topic}", at + source_topic.size())) {
    out.replace(at, 7, source_topic);
  }
  const auto level = std::to_string(n);
  for (auto at = out.find("{n}"); at != std::string::npos; at = out.find("{n}", at + level.size())) {
    out.replace(at, 3, level);
  }
  return out;
}

std::string DeadLetterPolicy::topic_for(std::string_view source_topic) const {
  std::string out = topic.empty() ? std::string(kDefaultTopic) : topic;
  for (auto at = out.find("{topic}"); at != std::string::npos; at = out.find("{topic}", at + source_topic.size())) {
    out.replace(at, 7, source_topic);
  }
  return out;
}

}  // namespace kc
