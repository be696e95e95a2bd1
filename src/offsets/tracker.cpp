#include "offsets/tracker.hpp"

namespace kc::detail {

namespace {

// b - a for a <= b, as a count: unsigned arithmetic, no overflow for any
// pair of int64 offsets.
std::size_t distance(std::int64_t a, std::int64_t b) noexcept {
  return static_cast<std::size_t>(static_cast<std::uint64_t>(b) - static_cast<std::uint64_t>(a));
}

}  // namespace

void PartitionOffsets::handed_out(std::int64_t offset) {
  if (size_ > 0 && at(size_ - 1).end() >= offset) {
    seek_back(offset);
  }
  if (size_ == ring_.size()) {
    make_room();
  }
  at(size_) = Slot{offset, kInFlight};
  ++size_;
  ++in_flight_;
}

void PartitionOffsets::seek_back(std::int64_t offset) noexcept {
  // A seek back (a retry) redelivers `offset` and what follows it: those
  // entries are void. Entries below it stay, done or not (a dead letter
  // still waiting for its acknowledgement must keep holding the commit point).
  bool dropped_done = false;  // the lowest entry dropped was done
  while (size_ > 0 && at(size_ - 1).first >= offset) {
    const Slot s = at(size_ - 1);
    --size_;
    dropped_done = s.done();
    if (!s.done()) {
      --in_flight_;
    } else if (size_ > 0 && at(size_ - 1).done()) {
      done_covered_ -= distance(at(size_ - 1).last, s.last);  // its group now ends one entry earlier
    } else {
      done_covered_ -= distance(s.first, s.last) + 1;
      --done_runs_;
    }
  }
  // A done run that reached `offset` ends just before it. The same when it
  // was followed by a done entry just dropped (a compaction may or may not
  // have merged the two yet: the result must not depend on it). The offsets
  // between its last done one and `offset` were never delivered.
  if (size_ > 0 && at(size_ - 1).done() && (at(size_ - 1).last >= offset || dropped_done)) {
    Slot& t = at(size_ - 1);
    if (t.last >= offset) {
      done_covered_ -= distance(offset - 1, t.last);
    } else {
      done_covered_ += distance(t.last, offset - 1);
    }
    t.last = offset - 1;
  }
}

bool PartitionOffsets::done(std::int64_t offset) noexcept {
  if (size_ == 0) {
    return false;
  }
  // In-order completion is the common case: check the head first.
  std::size_t i = 0;
  if (at(0).first != offset) {
    // Entries ascend by first offset: binary search for the last one that
    // starts at or before `offset`.
    std::size_t lo = 0;
    std::size_t hi = size_;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (at(mid).first <= offset) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo == 0 || at(lo - 1).first != offset) {
      return false;  // never handed out, voided, or inside a done run
    }
    i = lo - 1;
  }
  Slot& s = at(i);
  if (s.done()) {
    return false;
  }
  s.last = offset;
  --in_flight_;
  if (i == 0) {
    pop_done_prefix();
    return true;
  }
  // Joins the done groups on either side, if any, and the never-delivered
  // offsets between them.
  const bool prev_done = at(i - 1).done();
  const bool next_done = i + 1 < size_ && at(i + 1).done();
  done_covered_ += 1;
  if (prev_done) {
    done_covered_ += distance(at(i - 1).last, offset) - 1;
  }
  if (next_done) {
    done_covered_ += distance(offset, at(i + 1).first) - 1;
  }
  done_runs_ = done_runs_ + 1 - (prev_done ? 1 : 0) - (next_done ? 1 : 0);
  return true;
}

void PartitionOffsets::pop_done_prefix() noexcept {
  // The head just became done: it goes, and with it the group of done
  // entries right behind it (they were held only by the head).
  std::size_t j = 0;
  while (j + 1 < size_ && at(j + 1).done()) {
    ++j;
  }
  if (j > 0) {
    --done_runs_;
    done_covered_ -= distance(at(1).first, at(j).last) + 1;
  }
  next_commit_ = at(j).last + 1;
  head_ = (head_ + j + 1) & (ring_.size() - 1);
  size_ -= j + 1;
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
  in_flight_ = 0;
  done_runs_ = 0;
  done_covered_ = 0;
  if (!keep_commit_point) {
    next_commit_ = -1;
  }
}

void PartitionOffsets::make_room() {
  // Lazily, only when the ring is full: merging at every done() would move
  // entries on the hot path. Growing only when the compaction freed less
  // than a quarter keeps it amortised O(1) per handed_out(): the next
  // compaction is at least capacity / 4 appends away.
  compact();
  if (size_ > ring_.size() - ring_.size() / 4) {
    grow();
  }
}

void PartitionOffsets::compact() noexcept {
  // In place, front to back: the write position never passes the read one.
  std::size_t w = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    const Slot s = at(i);
    if (s.done() && w > 0 && at(w - 1).done()) {
      at(w - 1).last = s.last;
    } else {
      at(w) = s;
      ++w;
    }
  }
  size_ = w;
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
