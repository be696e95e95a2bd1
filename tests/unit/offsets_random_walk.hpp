// The random walk the offset-tracking property tests share: one partition's
// offsets with gaps (1 to 3 apart), handed out and completed in a random
// interleaving, the tracker checked after every step; optionally with seek
// backs (a retry redelivers from an earlier offset) and one offset stuck
// until the end (a record held for good). NaiveOffsets is the contract on a
// std::map, one entry per live offset, for the tracker (which keeps runs) to
// be compared with.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "offsets/tracker.hpp"

namespace kc::test {

/// PartitionOffsets' contract, naively: every handed-out offset still held
/// (not popped, not voided) with whether it is done. A done offset also
/// carries where its range ends when it is the last of a group of done
/// offsets: itself, or `o - 1` after a seek back to `o` cut that group (the
/// offsets in between were never handed out and count as done).
class NaiveOffsets {
 public:
  void handed_out(std::int64_t o) {
    const auto it = live_.lower_bound(o);
    const bool dropped_done = it != live_.end() && it->second.done;  // the lowest one dropped
    live_.erase(it, live_.end());
    if (!live_.empty()) {
      Item& tail = live_.rbegin()->second;
      if (tail.done && (tail.end >= o || dropped_done)) {
        tail.end = o - 1;
      }
    }
    live_[o] = Item{false, o};
  }

  bool done(std::int64_t o) {
    const auto it = live_.find(o);
    if (it == live_.end() || it->second.done) {
      return false;
    }
    it->second = Item{true, o};
    while (!live_.empty() && live_.begin()->second.done) {
      next_commit_ = live_.begin()->second.end + 1;
      live_.erase(live_.begin());
    }
    return true;
  }

  std::optional<std::int64_t> commit_point() const {
    return next_commit_ < 0 ? std::nullopt : std::optional<std::int64_t>(next_commit_);
  }

  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& [o, item] : live_) {
      n += item.done ? 0 : 1;
    }
    return n;
  }

  /// Maximal groups of adjacent done offsets, as [first, end of the last].
  std::vector<std::pair<std::int64_t, std::int64_t>> done_ranges() const {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    bool open = false;
    for (const auto& [o, item] : live_) {
      if (!item.done) {
        open = false;
      } else if (open) {
        out.back().second = item.end;
      } else {
        out.emplace_back(o, item.end);
        open = true;
      }
    }
    return out;
  }

  /// Sum of last - first + 1 over done_ranges().
  std::size_t done_covered() const {
    std::size_t n = 0;
    for (const auto& [first, last] : done_ranges()) {
      n += static_cast<std::size_t>(last - first) + 1;
    }
    return n;
  }

  /// The lowest offset still in flight, if any.
  std::optional<std::int64_t> lowest_in_flight() const {
    for (const auto& [o, item] : live_) {
      if (!item.done) {
        return o;
      }
    }
    return std::nullopt;
  }

 private:
  struct Item {
    bool done;
    std::int64_t end;
  };
  std::map<std::int64_t, Item> live_;
  std::int64_t next_commit_ = -1;
};

/// What the walk has done so far, for the check after each step.
struct OffsetsWalk {
  std::vector<std::int64_t> offsets;  ///< every offset of the round, ascending
  std::size_t handed = 0;             ///< offsets[0, handed) were handed out (since the last seek back)
  std::set<std::int64_t> pending;     ///< handed out, not done (not voided)
  std::set<std::int64_t> done;        ///< done and not voided by a seek back
  NaiveOffsets model;                 ///< the same steps on the naive model
  std::size_t seeks = 0;              ///< seek backs so far
};

struct WalkOptions {
  int max_offsets = 200;      ///< offsets per round: 1..max_offsets
  unsigned seek_percent = 0;  ///< chance of a seek back at a step, in percent
  bool stuck = false;         ///< one offset stays in flight until all others are done
};

/// One round: offsets from a random start; `check(tracker, walk)` after
/// every handed_out() and done(). Every done() (and, with seek backs, a
/// done() of a random offset now and then: voided, inside a run, never
/// handed out) must return what the naive model returns. Stops at the first
/// fatal failure (an ASSERT in `check`): callers test HasFatalFailure()
/// afterwards.
template <class Check>
void random_offsets_walk(std::mt19937_64& rng, Check&& check, WalkOptions opt = {}) {
  detail::PartitionOffsets t;
  OffsetsWalk w;
  std::int64_t next = static_cast<std::int64_t>(rng() % 1000);
  const int n = 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(opt.max_offsets));
  for (int i = 0; i < n; ++i) {
    w.offsets.push_back(next);
    next += 1 + static_cast<std::int64_t>(rng() % 3);  // gaps
  }
  // The stuck offset (offsets are >= 0: -1 is none).
  const std::int64_t stuck = opt.stuck ? w.offsets[rng() % w.offsets.size()] : -1;
  const std::size_t max_seeks = w.offsets.size() / 4 + 1;
  auto hand_out = [&](std::int64_t o) {
    t.handed_out(o);
    w.model.handed_out(o);
    w.pending.erase(w.pending.lower_bound(o), w.pending.end());
    w.done.erase(w.done.lower_bound(o), w.done.end());
    w.pending.insert(o);
  };
  while (w.handed < w.offsets.size() || !w.pending.empty()) {
    // What may complete now: the stuck offset only once nothing else can.
    const bool only_stuck = w.pending.size() == 1 && *w.pending.begin() == stuck;
    const bool can_complete = !w.pending.empty() && (!only_stuck || w.handed == w.offsets.size());
    const auto lowest = w.model.lowest_in_flight();
    if (opt.seek_percent > 0 && w.seeks < max_seeks && lowest && rng() % 100 < opt.seek_percent) {
      // A seek back to an offset at or after the lowest one in flight: a
      // handed-out one, or now and then one in a gap just below it.
      const auto from =
          static_cast<std::size_t>(std::lower_bound(w.offsets.begin(), w.offsets.end(), *lowest) - w.offsets.begin());
      if (from < w.handed) {
        const std::size_t k = from + static_cast<std::size_t>(rng() % (w.handed - from));
        std::int64_t o = w.offsets[k];
        if (k > from && w.offsets[k - 1] + 1 < o && rng() % 4 == 0) {
          o -= 1;  // never delivered before: now it is
        }
        ++w.seeks;
        hand_out(o);
        w.handed = k + (o == w.offsets[k] ? 1 : 0);
        check(t, w);
        if (::testing::Test::HasFatalFailure()) {
          return;
        }
        continue;
      }
    }
    if (w.handed < w.offsets.size() && (!can_complete || rng() % 2 == 0)) {
      hand_out(w.offsets[w.handed]);
      ++w.handed;
    } else {
      // A random pending offset other than the stuck one (unless it is the last).
      std::int64_t o = 0;
      do {
        auto it = w.pending.begin();
        std::advance(it, static_cast<long>(rng() % w.pending.size()));
        o = *it;
      } while (o == stuck && !only_stuck);
      ASSERT_TRUE(t.done(o)) << "offset " << o;
      ASSERT_TRUE(w.model.done(o));
      w.done.insert(o);
      w.pending.erase(o);
      if (opt.seek_percent > 0 && rng() % 4 == 0) {
        // A late or repeated result: a done, voided or unknown offset.
        const auto span = static_cast<std::uint64_t>(w.offsets.back() + 3 - w.offsets.front());
        const std::int64_t x = w.offsets.front() + static_cast<std::int64_t>(rng() % span);
        if (!w.pending.contains(x)) {
          ASSERT_FALSE(w.model.done(x));
          ASSERT_FALSE(t.done(x)) << "offset " << x << " was not in flight";
        }
      }
    }
    check(t, w);
    if (::testing::Test::HasFatalFailure()) {
      return;
    }
  }
}

}  // namespace kc::test
