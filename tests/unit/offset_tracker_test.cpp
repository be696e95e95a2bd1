#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "offsets/tracker.hpp"
#include "unit/offsets_random_walk.hpp"

using kc::detail::PartitionOffsets;

TEST(OffsetTracker, NothingDoneMeansNothingToCommit) {
  PartitionOffsets t;
  EXPECT_FALSE(t.commit_point());
  t.handed_out(10);
  EXPECT_FALSE(t.commit_point());
  EXPECT_EQ(t.in_flight(), 1u);
}

TEST(OffsetTracker, InOrderCompletionCommitsNextOffset) {
  PartitionOffsets t;
  t.handed_out(10);
  ASSERT_TRUE(t.done(10));
  EXPECT_EQ(t.commit_point(), 11);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(OffsetTracker, NeverCommitsPastAGap) {
  PartitionOffsets t;
  t.handed_out(1);
  t.handed_out(2);
  t.handed_out(3);
  ASSERT_TRUE(t.done(1));
  ASSERT_TRUE(t.done(3));
  EXPECT_EQ(t.commit_point(), 2);  // 2 is not done: nothing past it
  ASSERT_TRUE(t.done(2));
  EXPECT_EQ(t.commit_point(), 4);
}

TEST(OffsetTracker, NonContiguousOffsetsAreNotFilledIn) {
  // Compaction and transaction markers leave holes: 5 and 9 were never handed out.
  PartitionOffsets t;
  t.handed_out(4);
  t.handed_out(6);
  t.handed_out(10);
  ASSERT_TRUE(t.done(6));
  EXPECT_FALSE(t.commit_point());  // 4 is still in flight
  ASSERT_TRUE(t.done(4));
  EXPECT_EQ(t.commit_point(), 7);  // lowest not done is 10: commit "next to read" = 7 is safe
  ASSERT_TRUE(t.done(10));
  EXPECT_EQ(t.commit_point(), 11);
}

TEST(OffsetTracker, UnknownOrRepeatedCompletionIsRejected) {
  PartitionOffsets t;
  t.handed_out(1);
  EXPECT_FALSE(t.done(2));
  ASSERT_TRUE(t.done(1));
  EXPECT_FALSE(t.done(1));
  EXPECT_EQ(t.commit_point(), 2);
}

TEST(OffsetTracker, SeekBackVoidsInFlightButKeepsCommitPoint) {
  PartitionOffsets t;
  t.handed_out(1);
  t.handed_out(2);
  ASSERT_TRUE(t.done(1));
  t.handed_out(2);  // redelivered after a seek back
  EXPECT_EQ(t.commit_point(), 2);
  EXPECT_EQ(t.in_flight(), 1u);
  ASSERT_TRUE(t.done(2));
  EXPECT_EQ(t.commit_point(), 3);
}

TEST(OffsetTracker, RedeliveryAfterARetryKeepsEarlierUnfinishedOffsets) {
  // 5 waits for its dead letter to be acknowledged; 6 failed and is retried
  // (seek back to 6): redelivering 6 must not release 5.
  PartitionOffsets t;
  t.handed_out(4);
  ASSERT_TRUE(t.done(4));
  t.handed_out(5);
  t.handed_out(6);
  t.handed_out(7);  // fetched after 6, dropped by the retry
  t.handed_out(6);  // redelivered
  EXPECT_EQ(t.in_flight(), 2u);  // 5 and 6
  ASSERT_TRUE(t.done(6));
  EXPECT_EQ(t.commit_point(), 5);
  EXPECT_FALSE(t.done(7)) << "7 was voided by the seek back";
  ASSERT_TRUE(t.done(5));
  EXPECT_EQ(t.commit_point(), 7);
}

TEST(OffsetTracker, ResetForgetsInFlight) {
  PartitionOffsets t;
  t.handed_out(1);
  t.handed_out(2);
  t.reset();
  EXPECT_FALSE(t.done(1));
  EXPECT_EQ(t.in_flight(), 0u);
  t.reset(false);
  EXPECT_FALSE(t.commit_point());
}

// Property test: for random offset sequences with gaps and random completion
// orders (with more in flight than the ring's initial size), the commit point
// after every step equals the reference: the lowest handed-out offset not yet
// done, or last + 1 when all are done, and it never moves backwards.
TEST(OffsetTracker, RandomCompletionOrdersNeverCommitPastAGap) {
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 300; ++round) {
    std::int64_t last_point = -1;
    kc::test::random_offsets_walk(rng, [&](const PartitionOffsets& t, const kc::test::OffsetsWalk& w) {
      // Reference model: everything handed out below the lowest pending
      // offset is done; the commit point follows the largest of those.
      std::optional<std::int64_t> expected;
      if (!w.pending.empty()) {
        const auto lowest_pending = *w.pending.begin();
        if (lowest_pending != w.offsets.front()) {
          const auto pos = std::lower_bound(w.offsets.begin(), w.offsets.end(), lowest_pending) - w.offsets.begin();
          expected = w.offsets[static_cast<std::size_t>(pos) - 1] + 1;
        }
      } else if (w.handed > 0) {
        expected = w.offsets[w.handed - 1] + 1;
      }
      const auto point = t.commit_point();
      ASSERT_EQ(point.has_value(), expected.has_value()) << "round " << round;
      if (point) {
        ASSERT_EQ(*point, *expected) << "round " << round;
        ASSERT_GE(*point, last_point) << "commit point moved backwards";
        if (!w.pending.empty()) {
          ASSERT_LE(*point, *w.pending.begin()) << "committed past an unfinished offset";
        }
        last_point = *point;
      }
      ASSERT_EQ(t.in_flight(), w.pending.size());
    });
    if (HasFatalFailure()) {
      return;
    }
  }
}
