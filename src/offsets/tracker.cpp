#include "offsets/tracker.hpp"

namespace kc::detail {

void PartitionOffsets::handed_out(std::int64_t offset) {
  // A seek back (a retry) redelivers `offset` and what follows it: those
  // entries are void. Entries below it stay, done or not (a dead letter
  // still waiting for its acknowledgement must keep holding the commit point).
  while (size_ > 0 && at(size_ - 1).offset >= offset) {
    if (at(size_ - 1).done) {
      --done_count_;
    }
    --size_;
  }
  if (size_ == ring_.size()) {
    grow();
  }
  at(size_) = Slot{offset, false};
  ++size_;
}

bool PartitionOffsets::done(std::int64_t offset) {
  if (size_ == 0) {
    return false;
  }
  // In-order completion is the common case: check the head first.
  std::size_t i = 0;
  if (at(0).offset != offset) {
    // Offsets in the ring increase: binary search.
    std::size_t lo = 0;
    std::size_t hi = size_;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (at(mid).offset < offset) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo == size_ || at(lo).offset != offset) {
      return false;
    }
    i = lo;
  }
  Slot& s = at(i);
  if (s.done) {
    return false;
  }
  s.done = true;
  ++done_count_;
  if (i == 0) {
    pop_done_prefix();
  }
  return true;
}

void PartitionOffsets::pop_done_prefix() noexcept {
  while (size_ > 0 && at(0).done) {
    next_commit_ = at(0).offset + 1;
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
    --done_count_;
  }
}

std::optional<std::int64_t> PartitionOffsets::commit_point() const noexcept {
  if (next_commit_ < 0) {
    return std::nullopt;
  }
  return next_commit_;
}

void PartitionOffsets::reset(bool keep_commit_point) noexcept {
  head_ = 0;
  size_ = 0;
  done_count_ = 0;
  if (!keep_commit_point) {
    next_commit_ = -1;
  }
}

void PartitionOffsets::grow() {
  std::vector<Slot> bigger(ring_.size() * 2);
  for (std::size_t i = 0; i < size_; ++i) {
    bigger[i] = at(i);
  }
  ring_ = std::move(bigger);
  head_ = 0;
}

}  // namespace kc::detail
