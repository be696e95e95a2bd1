// The random walk the offset-tracking property tests share: one partition's
// offsets with gaps (1 to 3 apart), handed out and completed in a random
// interleaving, the tracker checked after every step.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <random>
#include <set>
#include <vector>

#include "offsets/tracker.hpp"

namespace kc::test {

/// What the walk has done so far, for the check after each step.
struct OffsetsWalk {
  std::vector<std::int64_t> offsets;  ///< every offset of the round, ascending
  std::size_t handed = 0;             ///< offsets[0, handed) were handed out
  std::set<std::int64_t> pending;     ///< handed out, not done
  std::set<std::int64_t> done;
};

/// One round: 1..200 offsets from a random start; `check(tracker, walk)`
/// after every handed_out() and done(). Stops at the first fatal failure
/// (an ASSERT in `check`): callers test HasFatalFailure() afterwards.
template <class Check>
void random_offsets_walk(std::mt19937_64& rng, Check&& check) {
  detail::PartitionOffsets t;
  OffsetsWalk w;
  std::int64_t next = static_cast<std::int64_t>(rng() % 1000);
  const int n = 1 + static_cast<int>(rng() % 200);
  for (int i = 0; i < n; ++i) {
    w.offsets.push_back(next);
    next += 1 + static_cast<std::int64_t>(rng() % 3);  // gaps
  }
  while (w.handed < w.offsets.size() || !w.pending.empty()) {
    if (w.handed < w.offsets.size() && (w.pending.empty() || rng() % 2 == 0)) {
      t.handed_out(w.offsets[w.handed]);
      w.pending.insert(w.offsets[w.handed]);
      ++w.handed;
    } else {
      auto it = w.pending.begin();
      std::advance(it, static_cast<long>(rng() % w.pending.size()));
      ASSERT_TRUE(t.done(*it));
      w.done.insert(*it);
      w.pending.erase(it);
    }
    check(t, w);
    if (::testing::Test::HasFatalFailure()) {
      return;
    }
  }
}

}  // namespace kc::test
