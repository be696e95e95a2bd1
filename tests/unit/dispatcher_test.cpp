#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "dispatch/dispatcher.hpp"
#include "kc/error.hpp"

// Counts allocations so a test can show that steady state allocates nothing.
namespace {
std::atomic<std::size_t> g_allocations{0};
}
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
// GCC pairs the inlined free() with the new-expression and warns; the pair
// (malloc in operator new, free in operator delete) is correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

using kc::detail::Dispatch;
using kc::detail::Dispatcher;
using kc::detail::DispatcherConfig;
using kc::detail::Ordering;
using kc::detail::PartitionId;
using Clock = Dispatcher::Clock;

const Clock::time_point t0{};

DispatcherConfig make(Ordering o, std::size_t max, std::size_t per_partition, std::size_t buffer = 1000,
                      std::size_t resume = 500) {
  DispatcherConfig c;
  c.ordering = o;
  c.max_in_flight = max;
  c.max_in_flight_per_partition = per_partition;
  c.max_buffered_per_partition = buffer;
  c.resume_below = resume;
  return c;
}

std::vector<std::int64_t> drain(Dispatcher& d, Clock::time_point now = t0) {
  std::vector<std::int64_t> out;
  while (auto r = d.next(now)) {
    out.push_back(r->offset);
  }
  return out;
}

TEST(Dispatcher, RejectsZeroLimitsAndABadLowWaterMark) {
  EXPECT_THROW(Dispatcher(make(Ordering::key, 0, 1)), kc::Error);
  EXPECT_THROW(Dispatcher(make(Ordering::key, 1, 0)), kc::Error);
  EXPECT_THROW(Dispatcher(make(Ordering::key, 1, 1, 10, 0)), kc::Error);
  EXPECT_THROW(Dispatcher(make(Ordering::key, 1, 1, 10, 11)), kc::Error);
}

TEST(Dispatcher, PartitionModeRunsOneRecordPerPartitionInOffsetOrder) {
  Dispatcher d(make(Ordering::partition, 10, 10));
  const auto a = d.assign();
  const auto b = d.assign();
  for (std::int64_t o : {1, 2, 5}) {
    ASSERT_TRUE(d.offer(a, o, "k" + std::to_string(o)));  // keys do not matter here
    ASSERT_TRUE(d.offer(b, o));
  }
  auto first = drain(d);
  EXPECT_EQ(first, (std::vector<std::int64_t>{1, 1}));  // one of each partition
  EXPECT_TRUE(d.complete(a, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{2});
  EXPECT_FALSE(d.complete(a, 5));  // queued, not in flight
  EXPECT_TRUE(d.complete(a, 2));
  EXPECT_TRUE(d.complete(b, 1));
  EXPECT_EQ(drain(d), (std::vector<std::int64_t>{5, 2}));
}

TEST(Dispatcher, KeyModeRunsKeysInParallelAndEachKeyInOrder) {
  Dispatcher d(make(Ordering::key, 10, 10));
  const auto p = d.assign();
  ASSERT_TRUE(d.offer(p, 1, "a"));
  ASSERT_TRUE(d.offer(p, 2, "b"));
  ASSERT_TRUE(d.offer(p, 3, "a"));
  ASSERT_TRUE(d.offer(p, 4, "c"));
  EXPECT_EQ(drain(d), (std::vector<std::int64_t>{1, 2, 4}));  // 3 waits for 1 (same key)
  EXPECT_TRUE(d.complete(p, 2));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{});
  EXPECT_TRUE(d.complete(p, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{3});
}

TEST(Dispatcher, NullKeysShareOneOrderPerPartitionAndDifferFromTheEmptyKey) {
  Dispatcher d(make(Ordering::key, 10, 10));
  const auto p = d.assign();
  const auto q = d.assign();
  ASSERT_TRUE(d.offer(p, 1, std::nullopt));
  ASSERT_TRUE(d.offer(p, 2, std::nullopt));
  ASSERT_TRUE(d.offer(p, 3, ""));
  ASSERT_TRUE(d.offer(q, 1, std::nullopt));  // another partition: another order
  EXPECT_EQ(drain(d).size(), 3u);               // p1, p3, q1
  EXPECT_FALSE(d.complete(p, 2));
  EXPECT_TRUE(d.complete(p, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{2});
}

TEST(Dispatcher, EqualHashesNeverMixUpKeys) {
  auto c = make(Ordering::key, 10, 10);
  c.key_hash = [](std::string_view) -> std::uint64_t { return 42; };  // every key collides
  Dispatcher d(c);
  const auto p = d.assign();
  ASSERT_TRUE(d.offer(p, 1, "a"));
  ASSERT_TRUE(d.offer(p, 2, "b"));
  ASSERT_TRUE(d.offer(p, 3, "a"));
  ASSERT_TRUE(d.offer(p, 4, "b"));
  EXPECT_EQ(drain(d), (std::vector<std::int64_t>{1, 2}));  // told apart by bytes: not serialised
  EXPECT_TRUE(d.complete(p, 2));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{4});
  EXPECT_TRUE(d.complete(p, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{3});
}

TEST(Dispatcher, UnorderedRespectsOnlyTheLimits) {
  Dispatcher d(make(Ordering::unordered, 5, 3));
  const auto a = d.assign();
  const auto b = d.assign();
  for (std::int64_t o = 0; o < 10; ++o) {
    ASSERT_TRUE(d.offer(a, o, "same"));
    ASSERT_TRUE(d.offer(b, o, "same"));
  }
  EXPECT_EQ(drain(d).size(), 5u);
  EXPECT_EQ(d.in_flight(a), 3u);
  EXPECT_EQ(d.in_flight(b), 2u);
}

TEST(Dispatcher, KeyHoldBlocksOnlyItsKeyAndRedeliversTheSameRecordFirst) {
  Dispatcher d(make(Ordering::key, 10, 10));
  const auto p = d.assign();
  ASSERT_TRUE(d.offer(p, 1, "a"));
  ASSERT_TRUE(d.offer(p, 2, "a"));
  ASSERT_TRUE(d.offer(p, 3, "b"));
  EXPECT_EQ(drain(d), (std::vector<std::int64_t>{1, 3}));
  const auto until = t0 + std::chrono::seconds(5);
  ASSERT_TRUE(d.hold(p, 1, until));
  EXPECT_FALSE(d.complete(p, 1));  // held, not in flight
  EXPECT_EQ(d.next_due(), until);
  ASSERT_TRUE(d.offer(p, 4, "b"));
  EXPECT_TRUE(d.complete(p, 3));
  EXPECT_EQ(drain(d, t0 + std::chrono::seconds(4)), std::vector<std::int64_t>{4});  // b flows, a waits
  auto r = d.next(until);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 1);
  EXPECT_EQ(r->attempt, 2u);
  EXPECT_TRUE(d.complete(p, 1));
  EXPECT_EQ(drain(d, until), std::vector<std::int64_t>{2});
}

TEST(Dispatcher, PartitionHoldBlocksThePartitionUntilReleased) {
  Dispatcher d(make(Ordering::partition, 10, 10));
  const auto p = d.assign();
  const auto q = d.assign();
  ASSERT_TRUE(d.offer(p, 1));
  ASSERT_TRUE(d.offer(p, 2));
  ASSERT_TRUE(d.offer(q, 1));
  EXPECT_EQ(drain(d).size(), 2u);
  ASSERT_TRUE(d.hold(p, 1, t0 + std::chrono::hours(1)));
  EXPECT_TRUE(d.complete(q, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{});
  EXPECT_FALSE(d.release(p, 2));  // not the held record
  ASSERT_TRUE(d.release(p, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{1});
}

TEST(Dispatcher, UnorderedHoldKeepsOnlyThatRecordBack) {
  Dispatcher d(make(Ordering::unordered, 10, 10));
  const auto p = d.assign();
  ASSERT_TRUE(d.offer(p, 1));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{1});
  ASSERT_TRUE(d.hold(p, 1, t0 + std::chrono::seconds(1)));
  ASSERT_TRUE(d.offer(p, 2));
  ASSERT_TRUE(d.offer(p, 3));
  EXPECT_EQ(drain(d), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(drain(d, t0 + std::chrono::seconds(1)), std::vector<std::int64_t>{1});
}

TEST(Dispatcher, RevokeDropsQueuedAndLateResultsAreRejected) {
  Dispatcher d(make(Ordering::key, 2, 2));
  const auto p = d.assign();
  for (std::int64_t o = 1; o <= 5; ++o) {
    ASSERT_TRUE(d.offer(p, o, std::to_string(o)));
  }
  EXPECT_EQ(drain(d).size(), 2u);
  EXPECT_EQ(d.revoke(p), 3u);
  EXPECT_FALSE(d.offer(p, 6, "x"));
  const auto q = d.assign();  // may reuse the slot only once p has drained
  ASSERT_TRUE(d.offer(q, 1, "y"));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{});  // p's two still count against max_in_flight
  EXPECT_FALSE(d.complete(p, 1));
  EXPECT_FALSE(d.hold(p, 2, t0));
  EXPECT_EQ(drain(d), std::vector<std::int64_t>{1});
  EXPECT_FALSE(d.complete(p, 1));  // twice: still false, nothing released twice
  EXPECT_EQ(d.in_flight(), 1u);
  const auto r = d.assign();  // p's slot is free now: a new generation
  EXPECT_FALSE(r == p);
  EXPECT_FALSE(d.offer(p, 7, "x"));
}

TEST(Dispatcher, PauseAndResumeAreReportedOncePerTransition) {
  Dispatcher d(make(Ordering::partition, 10, 10, 3, 2));
  const auto p = d.assign();
  EXPECT_FALSE(d.should_resume(p));  // never paused
  for (std::int64_t o = 1; o <= 3; ++o) {
    ASSERT_TRUE(d.offer(p, o));
  }
  EXPECT_FALSE(d.should_pause(p));  // 3 is not above 3
  ASSERT_TRUE(d.offer(p, 4));
  EXPECT_TRUE(d.should_pause(p));
  EXPECT_FALSE(d.should_pause(p));
  EXPECT_TRUE(d.paused(p));
  for (std::int64_t o = 1; o <= 2; ++o) {
    ASSERT_TRUE(d.next(t0));
    ASSERT_TRUE(d.complete(p, o));
    EXPECT_FALSE(d.should_resume(p));  // 3, then 2: not below 2
  }
  ASSERT_TRUE(d.next(t0));
  ASSERT_TRUE(d.complete(p, 3));
  EXPECT_TRUE(d.should_resume(p));
  EXPECT_FALSE(d.should_resume(p));
  EXPECT_FALSE(d.paused(p));
}

TEST(Dispatcher, TenThousandKeysOnOnePartitionFillMaxInFlightAtOnce) {
  Dispatcher d(make(Ordering::key, 1000, 1000, 20000, 100));
  const auto p = d.assign();
  for (std::int64_t o = 0; o < 10000; ++o) {
    ASSERT_TRUE(d.offer(p, o, "key-" + std::to_string(o)));
  }
  std::size_t started = 0;
  while (d.next(t0)) {
    ++started;
  }
  EXPECT_EQ(started, 1000u);
  EXPECT_EQ(d.in_flight(), 1000u);
  ASSERT_TRUE(d.complete(p, 500));
  auto r = d.next(t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 1000);
  EXPECT_FALSE(d.next(t0));
}

TEST(Dispatcher, SteadyStateAllocatesNothing) {
  Dispatcher d(make(Ordering::key, 64, 64, 100000, 10));
  const auto p = d.assign();
  std::vector<std::string> keys;
  for (int k = 0; k < 100; ++k) {
    keys.push_back("customer-" + std::to_string(k) + "-with-a-long-enough-key-to-be-on-the-heap");
  }
  std::vector<std::int64_t> running;
  running.reserve(1024);
  std::int64_t offset = 0;
  std::mt19937 rng(7);
  auto round = [&] {
    for (int i = 0; i < 50 && d.queued() < 500; ++i) {  // bounded, as pausing the fetch would
      d.offer(p, offset++, keys[rng() % keys.size()]);
    }
    while (auto r = d.next(t0)) {
      running.push_back(r->offset);
    }
    std::shuffle(running.begin(), running.end(), rng);
    while (running.size() > 10) {
      if (running.back() % 13 == 0) {
        d.hold(p, running.back(), t0);  // due at once: a retry
      } else {
        d.complete(p, running.back());
      }
      running.pop_back();
    }
  };
  for (int i = 0; i < 2000; ++i) {
    round();  // warm-up: the pools reach their peak
  }
  const auto before = g_allocations.load();
  for (int i = 0; i < 2000; ++i) {
    round();
  }
  EXPECT_EQ(g_allocations.load() - before, 0u);
}

// ---------------------------------------------------------------- reference model

struct Rec {
  std::int64_t offset;
  std::optional<std::string> key;
  enum State { queued, in_flight, held, done, dropped } state = queued;
  Clock::time_point until{};
  std::uint32_t attempt = 1;
  int starts = 0;
};

struct ModelPart {
  PartitionId id;
  bool live = true;
  bool paused = false;
  std::int64_t next_offset = 0;
  std::vector<Rec> recs;  // in offset order
  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& r : recs) {
      n += r.state == Rec::in_flight;
    }
    return n;
  }
  std::size_t buffered() const {
    std::size_t n = 0;
    for (const auto& r : recs) {
      n += r.state == Rec::queued || r.state == Rec::in_flight || r.state == Rec::held;
    }
    return n;
  }
};

ModelPart fresh(PartitionId id) {
  ModelPart p;
  p.id = id;
  return p;
}

struct Model {
  DispatcherConfig config;
  std::vector<ModelPart> parts;
  Clock::time_point now = t0;

  bool blocked(const Rec& r) const { return r.state == Rec::held && r.until > now; }
  bool waiting(const Rec& r) const { return r.state == Rec::queued || r.state == Rec::held; }
  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& p : parts) {
      n += p.in_flight();
    }
    return n;
  }
  // May record i of partition p start now, ordering and per-partition limit considered?
  bool eligible(const ModelPart& p, std::size_t i) const {
    const Rec& r = p.recs[i];
    if (!p.live || !waiting(r) || blocked(r) || p.in_flight() >= config.max_in_flight_per_partition) {
      return false;
    }
    if (config.ordering == Ordering::unordered) {
      return true;
    }
    for (std::size_t j = 0; j < p.recs.size(); ++j) {
      const Rec& o = p.recs[j];
      const bool same_lane = config.ordering == Ordering::partition || o.key == r.key;
      if (j != i && same_lane && (o.state == Rec::in_flight || (j < i && waiting(o)))) {
        return false;  // something of its key/partition runs, or comes first
      }
    }
    return true;
  }
};

void property_run(Ordering ordering, unsigned seed) {
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  Model m;
  m.config = make(ordering, 1 + pick(8), 1 + pick(5), 2 + pick(10), 1);
  m.config.resume_below = 1 + pick(m.config.max_buffered_per_partition);
  if (seed % 3 == 0) {
    m.config.key_hash = [](std::string_view k) -> std::uint64_t { return k.size(); };  // many collisions
  }
  Dispatcher d(m.config);
  const std::vector<std::optional<std::string>> keys = {std::nullopt, "", "a", "b", "c", "ab", "ba", "long-key"};
  for (int i = 0; i < 1 + static_cast<int>(pick(3)); ++i) {
    m.parts.push_back(fresh(d.assign()));
  }
  auto check_flow = [&](ModelPart& p) {
    const bool pause = d.should_pause(p.id);
    const bool expect_pause = p.live && !p.paused && p.buffered() > m.config.max_buffered_per_partition;
    ASSERT_EQ(pause, expect_pause);
    p.paused = p.paused || pause;
    const bool resume = d.should_resume(p.id);
    const bool expect_resume = p.live && p.paused && p.buffered() < m.config.resume_below;
    ASSERT_EQ(resume, expect_resume);
    p.paused = p.paused && !resume;
    ASSERT_EQ(d.paused(p.id), p.live && p.paused);
  };

  const int steps = 1500;
  for (int step = 0; step < steps; ++step) {
    const auto op = pick(100);
    ModelPart& p = m.parts[pick(m.parts.size())];
    if (op < 35) {  // offer
      p.next_offset += 1 + static_cast<std::int64_t>(pick(3));
      const auto& key = keys[pick(keys.size())];
      const bool ok = d.offer(p.id, p.next_offset, key ? std::optional<std::string_view>(*key) : std::nullopt);
      ASSERT_EQ(ok, p.live);
      if (ok) {
        p.recs.push_back({p.next_offset, key});
      }
    } else if (op < 65) {  // next
      auto r = d.next(m.now);
      if (!r) {
        // Work-conserving: nothing may start, or the global limit is reached.
        if (m.in_flight() < m.config.max_in_flight) {
          for (const auto& mp : m.parts) {
            for (std::size_t i = 0; i < mp.recs.size(); ++i) {
              ASSERT_FALSE(m.eligible(mp, i)) << "offset " << mp.recs[i].offset << " could start";
            }
          }
        }
      } else {
        ASSERT_LT(m.in_flight(), m.config.max_in_flight);
        ModelPart* mp = nullptr;
        for (auto& x : m.parts) {
          mp = x.live && x.id == r->partition ? &x : mp;
        }
        ASSERT_NE(mp, nullptr);
        std::size_t i = 0;
        while (i < mp->recs.size() && mp->recs[i].offset != r->offset) {
          ++i;
        }
        ASSERT_LT(i, mp->recs.size());
        ASSERT_TRUE(m.eligible(*mp, i)) << "offset " << r->offset << " started against the rules";
        Rec& rec = mp->recs[i];
        ASSERT_EQ(r->attempt, rec.attempt);
        rec.state = Rec::in_flight;
        ++rec.starts;
      }
    } else if (op < 92) {  // complete or hold a random in-flight record (any partition, revoked too)
      std::vector<std::pair<ModelPart*, Rec*>> running;
      for (auto& x : m.parts) {
        for (auto& r : x.recs) {
          if (r.state == Rec::in_flight) {
            running.push_back({&x, &r});
          }
        }
      }
      if (running.empty()) {
        ASSERT_FALSE(d.complete(p.id, p.next_offset + 1));
        continue;
      }
      auto [xp, rec] = running[pick(running.size())];
      if (op < 85) {
        ASSERT_EQ(d.complete(xp->id, rec->offset), xp->live);
        ASSERT_FALSE(d.complete(xp->id, rec->offset));  // at most once
        rec->state = Rec::done;
      } else {
        const auto until = m.now + std::chrono::milliseconds(pick(5));
        ASSERT_EQ(d.hold(xp->id, rec->offset, until), xp->live);
        if (xp->live) {
          rec->state = Rec::held;
          rec->until = until;
          ++rec->attempt;
        } else {
          rec->state = Rec::done;
        }
      }
    } else if (op < 95) {  // release a random held record
      std::vector<Rec*> held;
      for (auto& r : p.recs) {
        if (r.state == Rec::held && r.until > m.now) {  // an expired hold is not held any more
          held.push_back(&r);
        }
      }
      if (!held.empty()) {
        Rec* r = held[pick(held.size())];
        ASSERT_TRUE(d.release(p.id, r->offset));
        r->until = m.now;
      }
    } else if (op < 98) {  // time passes
      m.now += std::chrono::milliseconds(1 + pick(3));
    } else if (p.live) {  // revoke, and assign a new partition in its place
      std::size_t waiting = 0;
      for (auto& r : p.recs) {
        if (m.waiting(r)) {
          r.state = Rec::dropped;
          ++waiting;
        }
      }
      ASSERT_EQ(d.revoke(p.id), waiting);
      p.live = false;
      m.parts.push_back(fresh(d.assign()));
    }
    // Invariants at every step.
    ASSERT_EQ(d.in_flight(), m.in_flight());
    ASSERT_LE(d.in_flight(), m.config.max_in_flight);
    for (auto& x : m.parts) {
      ASSERT_LE(x.in_flight(), m.config.max_in_flight_per_partition);
      if (m.config.ordering == Ordering::partition) {
        ASSERT_LE(x.in_flight(), 1u);
      }
      ASSERT_EQ(d.in_flight(x.id), x.in_flight());
      if (x.live) {
        ASSERT_EQ(d.buffered(x.id), x.buffered());
      }
      check_flow(x);
    }
  }
  // Drain: time past every hold, complete everything; every record still
  // assigned starts and finishes, each exactly once per attempt.
  m.now += std::chrono::hours(1);
  for (int guard = 0; guard < 100000; ++guard) {
    if (auto r = d.next(m.now)) {
      bool found = false;
      for (auto& x : m.parts) {
        for (auto& rec : x.recs) {
          if (x.live && x.id == r->partition && rec.offset == r->offset) {
            ASSERT_NE(rec.state, Rec::in_flight);
            rec.state = Rec::in_flight;
            ++rec.starts;
            found = true;
          }
        }
      }
      ASSERT_TRUE(found);
      continue;
    }
    bool any = false;
    for (auto& x : m.parts) {
      for (auto& rec : x.recs) {
        if (rec.state == Rec::in_flight) {
          ASSERT_EQ(d.complete(x.id, rec.offset), x.live);
          rec.state = Rec::done;
          any = true;
        }
      }
    }
    if (!any) {
      break;
    }
  }
  for (const auto& x : m.parts) {
    for (const auto& rec : x.recs) {
      if (rec.state == Rec::dropped) {
        continue;
      }
      ASSERT_EQ(rec.state, Rec::done) << "offset " << rec.offset << " lost";
      ASSERT_EQ(rec.starts, static_cast<int>(rec.attempt)) << "offset " << rec.offset;
    }
  }
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_EQ(d.queued(), 0u);
}

TEST(DispatcherProperty, KeyModeMatchesTheReferenceModel) {
  for (unsigned seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    property_run(Ordering::key, seed);
    if (HasFatalFailure()) {
      return;
    }
  }
}

TEST(DispatcherProperty, PartitionModeMatchesTheReferenceModel) {
  for (unsigned seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    property_run(Ordering::partition, seed);
    if (HasFatalFailure()) {
      return;
    }
  }
}

TEST(DispatcherProperty, UnorderedModeMatchesTheReferenceModel) {
  for (unsigned seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    property_run(Ordering::unordered, seed);
    if (HasFatalFailure()) {
      return;
    }
  }
}

}  // namespace
