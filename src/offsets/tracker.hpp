// Offset tracking for one partition: which handed-out offsets are done, and
// how far the commit point may move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace kc::detail {

/// Tracks the offsets handed out from one partition and which of them are
/// done. The commit point is the lowest handed-out offset that is not done;
/// when all are done it is the last done offset + 1. Offsets need not be
/// contiguous (compaction, transaction markers): only offsets actually handed
/// out count, never "offset + 1".
///
/// Not thread-safe: owned by the poll thread. No allocation in steady state
/// (a ring buffer that only grows to the peak number in flight).
class PartitionOffsets {
 public:
  /// Records that `offset` was handed to a handler. Offsets increase, except
  /// after a seek back (a retry): then the entries at and after `offset` are
  /// void and dropped first, and the ones before it are kept.
  void handed_out(std::int64_t offset);

  /// Marks `offset` done. Returns false when it was not in flight (already
  /// done, never handed out, or dropped by reset()).
  bool done(std::int64_t offset);

  /// The offset to commit (the next one to read), or nullopt when nothing
  /// has completed since the start or the last reset().
  std::optional<std::int64_t> commit_point() const noexcept;

  /// Offsets handed out and not yet done.
  std::size_t in_flight() const noexcept { return size_ - done_count_; }

  /// How many offsets are done but held behind an unfinished one: the ones
  /// for_each_done_after_commit_point() reports.
  std::size_t done_after_commit_point() const noexcept { return done_count_; }

  /// Calls `f(std::int64_t offset)` for each offset that is done but lies
  /// beyond the commit point (behind an offset still in flight), in ascending
  /// order: the ones a new owner would process again after a restart. When
  /// commit_point() is nullopt these are the done offsets after the first
  /// one still in flight. No allocation, does not block; poll thread only;
  /// `f` must not call back into this tracker. Throws what `f` throws.
  template <class F>
  void for_each_done_after_commit_point(F&& f) const {
    // The done prefix is popped as soon as it forms (pop_done_prefix), so
    // every done slot still in the ring sits after an unfinished one.
    for (std::size_t i = 0, seen = 0; i < size_ && seen < done_count_; ++i) {
      if (const Slot& s = at(i); s.done) {
        ++seen;
        f(s.offset);
      }
    }
  }

  /// Forgets everything in flight (after a seek or a revoke); the commit
  /// point is kept unless `keep_commit_point` is false.
  void reset(bool keep_commit_point = true) noexcept;

 private:
  struct Slot {
    std::int64_t offset;
    bool done;
  };
  Slot& at(std::size_t i) noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  const Slot& at(std::size_t i) const noexcept { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  void grow();
  void pop_done_prefix() noexcept;

  std::vector<Slot> ring_ = std::vector<Slot>(16);  // size is a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t done_count_ = 0;  // done slots still in the ring (behind a gap)
  std::int64_t next_commit_ = -1;
};

}  // namespace kc::detail
