// Commit metadata that records which offsets beyond the committed one are
// already done, so a new owner (after a restart or a rebalance) skips them
// instead of processing them again. Pure functions: no Kafka here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kc::detail {

/// Kafka brokers reject a commit whose metadata is longer than
/// offset.metadata.max.bytes (4096 by default). kc stays below that with
/// headroom, so a later field can be added without a new limit.
inline constexpr std::size_t kMaxCommitMetadataBytes = 4096 - 96;

/// Done offsets further than this past the commit point are neither encoded
/// nor accepted when decoding: a bound on the work a (possibly hostile or
/// corrupt) metadata string can cause.
inline constexpr std::int64_t kMaxDoneSpan = 1'000'000'000;

/// The prefix of every metadata string kc writes; anything else is foreign.
inline constexpr std::string_view kDoneOffsetsPrefix = "kc1:";

/// An inclusive range of offsets, first <= last (inclusive so that
/// INT64_MAX needs no end past it).
struct OffsetRange {
  std::int64_t first;
  std::int64_t last;
  friend bool operator==(const OffsetRange&, const OffsetRange&) = default;
};

/// The exact length of encode_done_offsets(commit_point, done), computed
/// without allocating; SIZE_MAX when `done` reaches more than kMaxDoneSpan past
/// `commit_point` (it cannot be encoded: treat it as not fitting). Does not
/// block; any thread. Throws kc::Error (errc::misuse) when commit_point < 0 or
/// `done` is not strictly ascending and >= commit_point.
std::size_t encoded_done_offsets_size(std::int64_t commit_point, std::span<const std::int64_t> done);

/// Whether metadata of `size` bytes may be committed. When it may not, the
/// caller holds back that partition (stops handing out more of it) until the
/// commit point moves and the done set shrinks; it is not an error.
constexpr bool encoded_size_fits(std::size_t size, std::size_t limit = kMaxCommitMetadataBytes) noexcept {
  return size <= limit;
}

/// Encodes the offsets in `done` (done, beyond the commit point) as commit
/// metadata for the commit of `commit_point`: "kc1:" followed by base64 of the
/// commit point and either varint run lengths or a bitmap, whichever is
/// shorter (format in README.md). Returns "kc1:..." even when `done` is empty.
/// Check encoded_done_offsets_size() against the limit first. Does not block;
/// any thread. Throws kc::Error (errc::misuse) for the inputs that
/// encoded_done_offsets_size() rejects and when it would return SIZE_MAX.
std::string encode_done_offsets(std::int64_t commit_point, std::span<const std::int64_t> done);

/// encoded_done_offsets_size() for a done set given as ranges (what
/// PartitionOffsets::for_each_done_range_after_commit_point() reports): the
/// same number as for the list of every offset in them. O(ranges), no
/// allocation; SIZE_MAX when the last range reaches more than kMaxDoneSpan
/// past `commit_point`. Does not block; any thread. Throws kc::Error
/// (errc::misuse) when commit_point < 0 or a range has first > last, starts
/// below `commit_point`, or does not start after the previous one's last
/// (ranges that touch, [1, 3] and [4, 6], are fine: one run).
std::size_t encoded_done_ranges_size(std::int64_t commit_point, std::span<const OffsetRange> done);

/// encode_done_offsets() for a done set given as ranges: exactly the same
/// text as for the list of every offset in them (same format, same choice of
/// runs or bitmap). O(ranges + size of the result): the bitmap is chosen
/// only when it is shorter than the runs. Does not block; any thread. Throws
/// kc::Error (errc::misuse) for the inputs encoded_done_ranges_size()
/// rejects and when it would return SIZE_MAX.
std::string encode_done_ranges(std::int64_t commit_point, std::span<const OffsetRange> done);

/// Done offsets read back from commit metadata: sorted, disjoint,
/// non-adjacent ranges. Moves past offsets with drop_below() as the consumer
/// reads on. Not thread-safe (owned by the poll thread).
class DoneSet {
 public:
  DoneSet() = default;

  /// Whether `offset` was done by the previous owner: O(log ranges), no
  /// allocation.
  bool contains(std::int64_t offset) const noexcept;

  /// Forgets every offset below `offset` (the consumer has read past them).
  /// O(log ranges); frees the storage once nothing is left.
  void drop_below(std::int64_t offset) noexcept;

  /// The ranges still held, ascending.
  std::span<const OffsetRange> ranges() const noexcept { return std::span<const OffsetRange>(ranges_).subspan(first_); }

  bool empty() const noexcept { return first_ == ranges_.size(); }

  /// How many offsets the ranges still held cover (for a log line).
  std::uint64_t count() const noexcept;

 private:
  friend std::optional<DoneSet> decode_done_offsets(std::string_view, std::int64_t, std::string&);

  std::vector<OffsetRange> ranges_;
  std::size_t first_ = 0;  // ranges before it were dropped (no memmove per drop)
};

/// Reads metadata committed with `committed_offset`. Returns nullopt and sets
/// `why` (one line, without the metadata itself) when it is not kc's (no
/// "kc1:" prefix: another application's, or empty) or is malformed: bad
/// base64, a truncated or oversized varint, a commit point other than
/// `committed_offset` (an offset reset that kept the metadata), an unknown
/// mode, offsets past INT64_MAX or more than kMaxDoneSpan past the commit
/// point. The caller then logs a warning and processes everything again (at
/// least once). Never throws except std::bad_alloc; allocates at most in
/// proportion to metadata.size(). Does not block; any thread.
std::optional<DoneSet> decode_done_offsets(std::string_view metadata, std::int64_t committed_offset, std::string& why);

}  // namespace kc::detail
