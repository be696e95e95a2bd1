// The failure router: what becomes of a record whose handler failed. One
// decision for every processing mode (one at a time, parallel,
// exactly-once); the consumer carries it out. Private to kc.
#pragma once

#include <string>
#include <string_view>

#include "kc/retry.hpp"
#include "retry/backoff.hpp"

namespace kc::detail {

/// What to do with a failed record.
enum class FailureAction {
  retry_in_place,  ///< try it again after a backoff; its partition (or key) waits, the rest flows
  retry_topic,     ///< forward it to the retry topic of its level; its partition goes on
  dead_letter,     ///< write it to the dead-letter topic; done once acknowledged
  halt,            ///< no dead-letter topic: it stays not done and holds the commit point
};

/// The action for failure `f` of a record on its `attempt`-th handler call
/// (1 = the first), under `policy`; `dead_letters` says whether a
/// dead-letter writer exists (dead letters or retry topics are configured).
/// A retriable failure with attempts left is retried (through a topic when
/// `policy.use_topics`); anything else is dead-lettered, or halts without
/// a writer. Pure; any thread; never throws.
FailureAction route(const RetryPolicy& policy, bool dead_letters, const Failure& f, int attempt) noexcept;

/// The topic a record on `source_topic` first came from, for naming its
/// next retry topic: the retry header's value (`retry_header`, the
/// kHeaderRetryTopic of the record) when the record is read from a retry
/// topic and the header is there, else `source_topic`. Pure; any thread.
std::string retry_origin(std::string_view source_topic, bool from_retry_topic, std::string_view retry_header);

}  // namespace kc::detail
