// src/retry/router: what becomes of a failed record, as a pure function of
// the retry policy, whether a dead-letter writer exists, the failure and the
// attempt. Every combination is checked against the rule written out here
// once more, plainly, so a change to either shows.
#include <gtest/gtest.h>

#include "retry/router.hpp"

namespace kc::detail {
namespace {

Failure failure(bool retriable) {
  Failure f;
  f.retriable = retriable;
  f.type = retriable ? "kc::RetriableError" : "kc::PermanentError";
  f.message = "boom";
  return f;
}

TEST(FailureRouter, RetriesInPlaceWhileAttemptsAreLeft) {
  RetryPolicy p;
  p.max_attempts = 3;
  EXPECT_EQ(route(p, true, failure(true), 1), FailureAction::retry_in_place);
  EXPECT_EQ(route(p, true, failure(true), 2), FailureAction::retry_in_place);
  EXPECT_EQ(route(p, true, failure(true), 3), FailureAction::dead_letter);
  EXPECT_EQ(route(p, false, failure(true), 2), FailureAction::retry_in_place);
  EXPECT_EQ(route(p, false, failure(true), 3), FailureAction::halt);
}

TEST(FailureRouter, PermanentFailuresAreNeverRetried) {
  RetryPolicy p;
  p.max_attempts = 10;
  EXPECT_EQ(route(p, true, failure(false), 1), FailureAction::dead_letter);
  EXPECT_EQ(route(p, false, failure(false), 1), FailureAction::halt);
  p.use_topics = true;
  EXPECT_EQ(route(p, true, failure(false), 1), FailureAction::dead_letter);
}

TEST(FailureRouter, RetryTopicsWhenConfiguredThenTheDeadLetterTopic) {
  RetryPolicy p;
  p.max_attempts = 3;
  p.use_topics = true;
  EXPECT_EQ(route(p, true, failure(true), 1), FailureAction::retry_topic);
  EXPECT_EQ(route(p, true, failure(true), 2), FailureAction::retry_topic);
  EXPECT_EQ(route(p, true, failure(true), 3), FailureAction::dead_letter);
  // Without a writer there is nobody to forward it: in place.
  EXPECT_EQ(route(p, false, failure(true), 1), FailureAction::retry_in_place);
}

TEST(FailureRouter, OneAttemptMeansNoRetry) {
  RetryPolicy p;
  p.max_attempts = 1;
  for (const bool topics : {false, true}) {
    p.use_topics = topics;
    EXPECT_EQ(route(p, true, failure(true), 1), FailureAction::dead_letter);
    EXPECT_EQ(route(p, false, failure(true), 1), FailureAction::halt);
  }
}

TEST(FailureRouter, EveryCombinationFollowsTheRule) {
  for (int max = 1; max <= 4; ++max) {
    for (const bool topics : {false, true}) {
      for (const bool writer : {false, true}) {
        for (const bool retriable : {false, true}) {
          for (int attempt = 1; attempt <= 5; ++attempt) {
            RetryPolicy p;
            p.max_attempts = max;
            p.use_topics = topics;
            FailureAction want;
            if (retriable && attempt < max) {
              want = topics && writer ? FailureAction::retry_topic : FailureAction::retry_in_place;
            } else {
              want = writer ? FailureAction::dead_letter : FailureAction::halt;
            }
            EXPECT_EQ(route(p, writer, failure(retriable), attempt), want)
                << "max " << max << " topics " << topics << " writer " << writer << " retriable " << retriable
                << " attempt " << attempt;
          }
        }
      }
    }
  }
}

TEST(FailureRouter, RetryOriginIsTheFirstTopic) {
  EXPECT_EQ(retry_origin("orders", false, ""), "orders");
  EXPECT_EQ(retry_origin("orders", false, "ignored"), "orders");  // not read from a retry topic
  EXPECT_EQ(retry_origin("orders.retry.1", true, "orders"), "orders");
  EXPECT_EQ(retry_origin("orders.retry.1", true, ""), "orders.retry.1");  // header missing
}

}  // namespace
}  // namespace kc::detail
