#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <set>
#include <string>
#include <utility>
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

// Issue 16, item 10: one offset that never completes (a record held for
// good) must not pin every later offset. 1 stuck + 1,000,000 later done
// offsets: a handful of entries, not a million.
TEST(OffsetTracker, OneStuckOffsetKeepsTheTrackerSmall) {
  PartitionOffsets t;
  t.handed_out(0);
  for (std::int64_t o = 1; o <= 1'000'000; ++o) {
    t.handed_out(o);
    ASSERT_TRUE(t.done(o));
  }
  EXPECT_LE(t.entries(), 16u);
  EXPECT_LE(t.capacity(), 16u) << "the ring grew past its initial size";
  EXPECT_FALSE(t.commit_point());
  EXPECT_EQ(t.in_flight(), 1u);
  ASSERT_TRUE(t.done(0));
  EXPECT_EQ(t.commit_point(), 1'000'001);
  EXPECT_EQ(t.entries(), 0u);
}

// The same with a window of 100 in flight behind the stuck offset,
// completing in random order (what a worker pool does): memory follows what
// is in flight, not how far the done records run past the stuck one.
TEST(OffsetTracker, StuckOffsetWithAWindowInFlightStaysBoundedByTheWindow) {
  constexpr std::size_t kWindow = 100;
  PartitionOffsets t;
  std::mt19937_64 rng(16);
  t.handed_out(0);
  std::vector<std::int64_t> window;
  std::int64_t next = 1;
  std::int64_t last = 0;
  std::size_t peak_in_flight = 0;
  while (next <= 1'000'000 || !window.empty()) {
    while (next <= 1'000'000 && window.size() < kWindow) {
      t.handed_out(next);
      window.push_back(next);
      last = next;
      next += 1 + static_cast<std::int64_t>(rng() % 2);  // gaps, as after compaction
    }
    peak_in_flight = std::max(peak_in_flight, t.in_flight());
    const auto i = static_cast<std::size_t>(rng() % window.size());
    ASSERT_TRUE(t.done(window[i]));
    window[i] = window.back();
    window.pop_back();
  }
  EXPECT_EQ(peak_in_flight, kWindow + 1);
  // Documented bound: capacity < max(16, 16/3 x peak in flight).
  EXPECT_LE(t.capacity(), std::max<std::size_t>(16, 16 * peak_in_flight / 3));
  EXPECT_LE(t.entries(), t.capacity());
  EXPECT_FALSE(t.commit_point());
  ASSERT_TRUE(t.done(0));
  EXPECT_EQ(t.commit_point(), last + 1);
  EXPECT_EQ(t.entries(), 0u);
}

TEST(OffsetTracker, DoneInsideARunIsRejected) {
  PartitionOffsets t;
  t.handed_out(0);  // stuck
  for (std::int64_t o = 1; o <= 40; ++o) {
    t.handed_out(o);
    ASSERT_TRUE(t.done(o));
  }
  EXPECT_LT(t.entries(), 40u) << "no compaction happened";
  for (std::int64_t o = 1; o <= 40; ++o) {
    EXPECT_FALSE(t.done(o)) << o;
  }
  EXPECT_FALSE(t.done(41));
  EXPECT_EQ(t.in_flight(), 1u);
  EXPECT_EQ(t.done_ranges_after_commit_point(), 1u);
  EXPECT_EQ(t.done_after_commit_point(), 40u);
}

// Offsets between two consecutive handed-out ones were never delivered
// (compaction, transaction markers): a run of done offsets spans them.
TEST(OffsetTracker, DoneRangesSpanOffsetsThatWereNeverDelivered) {
  PartitionOffsets t;
  t.handed_out(10);  // stuck
  t.handed_out(12);
  t.handed_out(15);
  t.handed_out(16);
  t.handed_out(20);
  ASSERT_TRUE(t.done(12));
  ASSERT_TRUE(t.done(16));
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  auto collect = [&] {
    ranges.clear();
    t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) { ranges.emplace_back(a, b); });
  };
  collect();
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{12, 12}, {16, 16}}));
  EXPECT_EQ(t.done_ranges_after_commit_point(), 2u);
  ASSERT_TRUE(t.done(15));  // joins both: 13 and 14 were never delivered
  collect();
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{12, 16}}));
  EXPECT_EQ(t.done_ranges_after_commit_point(), 1u);
  EXPECT_EQ(t.done_after_commit_point(), 5u);
  EXPECT_FALSE(t.done(13)) << "13 was never handed out";
  ASSERT_TRUE(t.done(10));
  EXPECT_EQ(t.commit_point(), 17);  // 20 is still in flight
  EXPECT_EQ(t.done_ranges_after_commit_point(), 0u);
  EXPECT_EQ(t.done_after_commit_point(), 0u);
}

// A seek back into a done run (merged by a compaction) cuts it at offset - 1;
// the offsets after it are void, and done() of them returns false.
TEST(OffsetTracker, SeekBackCutsADoneRunThatSpansIt) {
  PartitionOffsets t;
  t.handed_out(0);  // stuck
  for (std::int64_t o = 1; o <= 20; ++o) {
    t.handed_out(o);
    ASSERT_TRUE(t.done(o));
  }
  ASSERT_LT(t.entries(), 21u) << "no compaction happened: the run was not merged";
  t.handed_out(10);  // redelivered from 10
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) { ranges.emplace_back(a, b); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 9}}));
  EXPECT_EQ(t.done_after_commit_point(), 9u);
  EXPECT_EQ(t.in_flight(), 2u);  // 0 and 10
  EXPECT_FALSE(t.done(5)) << "inside the run";
  EXPECT_FALSE(t.done(15)) << "voided by the seek back";
  ASSERT_TRUE(t.done(10));
  t.handed_out(11);
  ASSERT_TRUE(t.done(0));
  EXPECT_EQ(t.commit_point(), 11);  // 11 is in flight
  EXPECT_EQ(t.in_flight(), 1u);
  ASSERT_TRUE(t.done(11));
  EXPECT_EQ(t.commit_point(), 12);
}

// The same cut without a compaction in between: the result does not depend
// on whether done entries were merged yet.
TEST(OffsetTracker, SeekBackBetweenTwoDoneOffsetsEndsTheRunBeforeIt) {
  PartitionOffsets t;
  t.handed_out(0);  // stuck
  t.handed_out(3);
  t.handed_out(8);
  ASSERT_TRUE(t.done(3));
  ASSERT_TRUE(t.done(8));
  t.handed_out(6);  // 6 was never delivered before (a seek into the gap)
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) { ranges.emplace_back(a, b); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{3, 5}}));
  EXPECT_EQ(t.done_after_commit_point(), 3u);
  ASSERT_TRUE(t.done(0));
  EXPECT_EQ(t.commit_point(), 6);
}

// Property test: random offsets with gaps, random completion order, seek
// backs (to handed-out offsets and into gaps) and one offset stuck until the
// end, against NaiveOffsets (one map entry per offset) after every step:
// commit point, in flight, the done ranges and their counts; the ring stays
// within its documented bound. Rounds of up to 2,000 offsets fill the ring
// many times, so compaction runs between the checks.
TEST(OffsetTracker, RandomWalkMatchesANaiveModel) {
  std::mt19937_64 rng(20261124);
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  std::size_t compacted_rounds = 0;
  for (int round = 0; round < 600; ++round) {
    kc::test::WalkOptions opt;
    opt.max_offsets = round % 3 == 0 ? 2000 : 200;
    opt.seek_percent = std::array<unsigned, 3>{0, 3, 15}[static_cast<std::size_t>(round % 3 + round / 3) % 3];
    opt.stuck = round % 2 == 0;
    std::size_t peak_in_flight = 0;
    std::size_t peak_entries = 0;
    kc::test::random_offsets_walk(
        rng,
        [&](const PartitionOffsets& t, const kc::test::OffsetsWalk& w) {
          SCOPED_TRACE("round " + std::to_string(round));
          ASSERT_EQ(t.commit_point(), w.model.commit_point());
          ASSERT_EQ(t.in_flight(), w.model.in_flight());
          ASSERT_EQ(t.in_flight(), w.pending.size());
          if (const auto point = t.commit_point(); point && !w.pending.empty()) {
            ASSERT_LE(*point, *w.pending.begin()) << "committed past an offset in flight";
          }
          ranges.clear();
          t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) { ranges.emplace_back(a, b); });
          ASSERT_EQ(ranges, w.model.done_ranges());
          ASSERT_EQ(t.done_ranges_after_commit_point(), ranges.size());
          ASSERT_EQ(t.done_after_commit_point(), w.model.done_covered());
          // Independently of the model: no range holds an offset in flight,
          // every done offset past the lowest in flight is in one, and two
          // ranges have an offset in flight between them.
          for (std::size_t i = 0; i < ranges.size(); ++i) {
            const auto [a, b] = ranges[i];
            ASSERT_LE(a, b);
            const auto p = w.pending.lower_bound(a);
            ASSERT_TRUE(p == w.pending.end() || *p > b) << "range [" << a << ", " << b << "] holds " << *p;
            if (i + 1 < ranges.size()) {
              ASSERT_TRUE(p != w.pending.end() && *p < ranges[i + 1].first) << "ranges not maximal";
            }
          }
          if (!w.pending.empty()) {
            for (auto it = w.done.upper_bound(*w.pending.begin()); it != w.done.end(); ++it) {
              const auto r = std::find_if(ranges.begin(), ranges.end(),
                                          [&](const auto& x) { return x.first <= *it && *it <= x.second; });
              ASSERT_NE(r, ranges.end()) << "done offset " << *it << " is in no range";
            }
          }
          peak_in_flight = std::max(peak_in_flight, t.in_flight());
          peak_entries = std::max(peak_entries, t.entries());
          ASSERT_LE(t.entries(), t.capacity());
          ASSERT_LE(t.capacity(), std::max<std::size_t>(16, 16 * peak_in_flight / 3))
              << "the ring outgrew what is in flight (peak " << peak_in_flight << ")";
        },
        opt);
    if (HasFatalFailure()) {
      return;
    }
    compacted_rounds += peak_entries >= 16 ? 1 : 0;
  }
  EXPECT_GT(compacted_rounds, 50u) << "the walk rarely filled the ring: compaction is barely exercised";
}
