// Offset tracking for one partition: which handed-out offsets are done, and
// how far the commit point may move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace kc::detail {

/// Tracks the offsets handed out from one partition and which of them are
/// done. The commit point is the lowest handed-out offset that is not done;
/// when all are done it is the last done offset + 1. Offsets need not be
/// contiguous (compaction, transaction markers): only offsets actually handed
/// out count, never "offset + 1". Offsets are Kafka offsets (>= 0).
///
/// Done offsets behind one still in flight are kept as runs: consecutive
/// done entries (no handed-out offset between them; the offsets between them
/// were never delivered and count as done) become one entry [first, last].
/// A record held for good therefore costs one entry for everything done
/// behind it, not one per record.
///
/// Memory: a ring of 16-byte entries. Entries in flight (not done) and runs
/// alternate at worst and the oldest entry is always one in flight, so after
/// a compaction at most 2 x in_flight() entries are live; the ring is
/// compacted (adjacent done entries merged, O(entries)) whenever it is full
/// and only doubles when that frees less than a quarter of it, so
/// capacity() < max(16, 16/3 x the peak of in_flight()). It never shrinks.
///
/// Not thread-safe: owned by the poll thread. No allocation in steady state.
class PartitionOffsets {
 public:
  /// Records that `offset` was handed to a handler. Offsets increase, except
  /// after a seek back (a retry): then the entries at and after `offset` are
  /// void and dropped first, and the ones before it are kept; a run of done
  /// offsets that reaches to or past `offset` (or whose next handed-out
  /// offset, now dropped, was done) ends at `offset` - 1. In order: O(1).
  /// Amortised O(1) (a full ring is compacted or doubled); a seek back costs
  /// O(entries dropped). Throws std::bad_alloc only (when the ring doubles).
  void handed_out(std::int64_t offset);

  /// Marks `offset` done. Returns false and changes nothing when it was not
  /// in flight (already done or inside a done run, never handed out, voided
  /// by a seek back, or dropped by reset()). O(1) for the oldest offset in
  /// flight (in-order completion), else O(log entries). No allocation.
  bool done(std::int64_t offset) noexcept;

  /// The offset to commit (the next one to read), or nullopt when nothing
  /// has completed since the start or the last reset(). O(1).
  std::optional<std::int64_t> commit_point() const noexcept;

  /// Offsets handed out and not yet done. O(1).
  std::size_t in_flight() const noexcept { return in_flight_; }

  /// How many offsets the done ranges past the commit point cover (done
  /// records plus the never-delivered offsets between them): the sum of
  /// last - first + 1 over for_each_done_range_after_commit_point(). It
  /// grows with every done() past the commit point and shrinks when the
  /// commit point moves or a seek back voids done offsets. O(1).
  std::size_t done_after_commit_point() const noexcept { return done_covered_; }

  /// How many ranges for_each_done_range_after_commit_point() reports. O(1).
  std::size_t done_ranges_after_commit_point() const noexcept { return done_runs_; }

  /// Calls `f(std::int64_t first, std::int64_t last)` for each maximal range
  /// of done offsets beyond the commit point (behind an offset still in
  /// flight), ascending, first <= last, with at least one offset in flight
  /// between two ranges: the ones a new owner would process again after a
  /// restart (what the commit metadata records). When commit_point() is
  /// nullopt these are the done offsets after the first one still in
  /// flight. O(entries) = O(in_flight() + ranges), never O(done offsets); no
  /// allocation, does not block; poll thread only; `f` must not call back
  /// into this tracker. Throws what `f` throws.
  template <class F>
  void for_each_done_range_after_commit_point(F&& f) const {
    // The done prefix is popped as soon as it forms, so every done entry
    // still in the ring sits after one in flight. Adjacent done entries not
    // yet merged by a compaction are reported as one range.
    for (std::size_t i = 0; i < size_; ++i) {
      if (!at(i).done()) {
        continue;
      }
      const std::int64_t first = at(i).first;
      while (i + 1 < size_ && at(i + 1).done()) {
        ++i;
      }
      f(first, at(i).last);
    }
  }

  /// Forgets everything in flight (after a seek or a revoke); the commit
  /// point is kept unless `keep_commit_point` is false. Keeps the ring's
  /// storage. O(1).
  void reset(bool keep_commit_point = true) noexcept;

  /// Entries held now: offsets in flight and done runs, some of them not
  /// merged yet (at most capacity()). For tests and diagnostics. O(1).
  std::size_t entries() const noexcept { return size_; }

  /// The ring's size in entries (16 bytes each); see the memory bound above.
  /// For tests and diagnostics. O(1).
  std::size_t capacity() const noexcept { return ring_.size(); }

 private:
  // One offset in flight ({offset, kInFlight}) or a run of done offsets
  // {first, last} with first <= last. Entries are ascending and disjoint.
  static constexpr std::int64_t kInFlight = std::numeric_limits<std::int64_t>::min();
  struct Slot {
    std::int64_t first;
    std::int64_t last;
    bool done() const noexcept { return last != kInFlight; }
    // The highest offset the entry holds (kInFlight is below every offset).
    std::int64_t end() const noexcept { return last > first ? last : first; }
  };
  Slot& at(std::size_t i) noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  const Slot& at(std::size_t i) const noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  void seek_back(std::int64_t offset) noexcept;
  void make_room();
  void compact() noexcept;
  void grow();
  void pop_done_prefix() noexcept;

  std::vector<Slot> ring_ = std::vector<Slot>(16);  // size is a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t in_flight_ = 0;     // entries in flight
  std::size_t done_runs_ = 0;     // maximal groups of adjacent done entries
  std::size_t done_covered_ = 0;  // offsets those groups cover
  std::int64_t next_commit_ = -1;
};

}  // namespace kc::detail
