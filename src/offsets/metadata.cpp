#include "offsets/metadata.hpp"

#include <fmt/format.h>
#include <algorithm>

#include "kc/error.hpp"
#include "text/text.hpp"

namespace kc::detail {

namespace {

// Payload layout (before base64): varint commit point, one mode byte, then
//   mode 0 (runs):   pairs of varints (gap, length - 1) per maximal run of
//                    done offsets; the first gap counts from the commit
//                    point, later ones are "offsets not done between two
//                    runs, minus one" (a maximal run is followed by at least
//                    one offset not done, so minus one never goes negative);
//   mode 1 (bitmap): varint (first done offset - commit point), then one bit
//                    per offset from there, least significant bit first.
// Runs win when done offsets cluster (a slow message holding back a stretch
// of fast ones) or are sparse; the bitmap wins when they alternate, which is
// the worst case for runs (two bytes per done offset against two bits). The
// commit point is repeated so that metadata copied to another offset (an
// offset reset tool that keeps it) is refused instead of skipping the wrong
// messages. Unsigned LEB128 varints: small numbers, one byte.
constexpr std::uint8_t kModeRuns = 0;
constexpr std::uint8_t kModeBitmap = 1;

std::size_t varint_size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void append_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out += static_cast<char>(static_cast<std::uint8_t>(v));
}

constexpr std::size_t base64_size(std::size_t n) noexcept {
  return (n + 2) / 3 * 4;
}

// The done set as maximal runs, from a list of offsets or a list of ranges.
// Each gives validate() (throws kc::Error, errc::misuse), empty(), front()
// and back() (lowest and highest done offset), and runs(f): f(first, last)
// per maximal run of consecutive offsets, ascending. The two produce the
// same runs for the same done set, hence the same metadata.
class OffsetList {
 public:
  explicit OffsetList(std::span<const std::int64_t> done) noexcept : done_(done) {}
  void validate(std::int64_t commit_point) const {
    for (std::size_t i = 0; i < done_.size(); ++i) {
      if (i == 0 ? done_[i] < commit_point : done_[i] <= done_[i - 1]) {
        throw Error(errc::misuse, fmt::format("done offsets: {} is not ascending and at or after the commit point {}",
                                              done_[i], commit_point));
      }
    }
  }
  bool empty() const noexcept { return done_.empty(); }
  std::int64_t front() const noexcept { return done_.front(); }
  std::int64_t back() const noexcept { return done_.back(); }
  template <class F>
  void runs(F&& f) const {
    std::size_t i = 0;
    while (i < done_.size()) {
      std::size_t j = i;
      while (j + 1 < done_.size() && done_[j + 1] == done_[j] + 1) {
        ++j;
      }
      f(done_[i], done_[j]);
      i = j + 1;
    }
  }
  // Sets the bit of every done offset (relative to front()) in the bitmap
  // that starts at out[start].
  void set_bits(std::string& out, std::size_t start) const {
    for (const std::int64_t o : done_) {
      const auto i = static_cast<std::uint64_t>(o - done_.front());
      auto& b = out[start + static_cast<std::size_t>(i / 8)];
      b = static_cast<char>(static_cast<std::uint8_t>(b) | (1u << (i % 8)));
    }
  }

 private:
  std::span<const std::int64_t> done_;
};

class RangeList {
 public:
  explicit RangeList(std::span<const OffsetRange> done) noexcept : done_(done) {}
  void validate(std::int64_t commit_point) const {
    for (std::size_t i = 0; i < done_.size(); ++i) {
      const auto& r = done_[i];
      if (r.first > r.last || (i == 0 ? r.first < commit_point : r.first <= done_[i - 1].last)) {
        throw Error(errc::misuse,
                    fmt::format("done ranges: [{}, {}] is not ascending, disjoint and at or after the commit point {}",
                                r.first, r.last, commit_point));
      }
    }
  }
  bool empty() const noexcept { return done_.empty(); }
  std::int64_t front() const noexcept { return done_.front().first; }
  std::int64_t back() const noexcept { return done_.back().last; }
  template <class F>
  void runs(F&& f) const {
    // Ranges that touch ([1, 3] and [4, 6]) are one run.
    std::size_t i = 0;
    while (i < done_.size()) {
      std::size_t j = i;
      while (j + 1 < done_.size() && done_[j + 1].first == done_[j].last + 1) {
        ++j;
      }
      f(done_[i].first, done_[j].last);
      i = j + 1;
    }
  }
  void set_bits(std::string& out, std::size_t start) const {
    for (const auto& r : done_) {
      auto i = static_cast<std::uint64_t>(r.first - done_.front().first);
      const auto last = static_cast<std::uint64_t>(r.last - done_.front().first);
      for (; i <= last && i % 8 != 0; ++i) {
        set_bit(out, start, i);
      }
      for (; i + 7 <= last; i += 8) {
        out[start + static_cast<std::size_t>(i / 8)] = static_cast<char>(0xff);
      }
      for (; i <= last; ++i) {
        set_bit(out, start, i);
      }
    }
  }

 private:
  static void set_bit(std::string& out, std::size_t start, std::uint64_t i) {
    auto& b = out[start + static_cast<std::size_t>(i / 8)];
    b = static_cast<char>(static_cast<std::uint8_t>(b) | (1u << (i % 8)));
  }
  std::span<const OffsetRange> done_;
};

struct Sizes {
  std::size_t runs;    // payload bytes after the mode byte, mode 0
  std::size_t bitmap;  // same, mode 1
  bool too_wide;       // reaches more than kMaxDoneSpan past the commit point
};

template <class Done>
Sizes payload_sizes(std::int64_t commit_point, const Done& done) {
  if (commit_point < 0) {
    throw Error(errc::misuse, fmt::format("done offsets: negative commit point {}", commit_point));
  }
  done.validate(commit_point);
  if (done.empty()) {
    return {0, 0, false};
  }
  if (done.back() - commit_point > kMaxDoneSpan) {
    return {0, 0, true};
  }
  // Relative to the commit point everything is within kMaxDoneSpan now: no
  // overflow past INT64_MAX below.
  std::size_t runs = 0;
  std::uint64_t next = 0;  // lowest relative offset the next run may start at
  done.runs([&](std::int64_t first, std::int64_t last) {
    const auto rel = static_cast<std::uint64_t>(first - commit_point);
    const auto len = static_cast<std::uint64_t>(last - first);
    runs += varint_size(rel - next) + varint_size(len);
    next = rel + len + 2;
  });
  const auto bits = static_cast<std::uint64_t>(done.back() - done.front()) + 1;
  const std::size_t bitmap =
      varint_size(static_cast<std::uint64_t>(done.front() - commit_point)) + static_cast<std::size_t>((bits + 7) / 8);
  return {runs, bitmap, false};
}

std::size_t total_size(std::int64_t commit_point, const Sizes& s) noexcept {
  const std::size_t payload = varint_size(static_cast<std::uint64_t>(commit_point)) + 1 + std::min(s.runs, s.bitmap);
  return kDoneOffsetsPrefix.size() + base64_size(payload);
}

// Strict standard base64 ('=' padding required, nothing else allowed).
bool decode_base64(std::string_view in, std::string& out, std::string& why) {
  if (in.size() % 4 != 0) {
    why = fmt::format("base64 length {} is not a multiple of 4", in.size());
    return false;
  }
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0) : 0;
    std::uint32_t n = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const int d = k < static_cast<std::size_t>(4 - pad) ? base64_digit(in[i + k]) : 0;
      if (d < 0) {
        why = fmt::format("bad base64 character at {}", kDoneOffsetsPrefix.size() + i + k);
        return false;
      }
      n = (n << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((n >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(n & 0xff);
    }
  }
  return true;
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) noexcept : bytes_(bytes) {}
  bool at_end() const noexcept { return pos_ == bytes_.size(); }

  // False with `why` set when truncated or longer than 64 bits.
  bool varint(std::uint64_t& v, std::string& why, const char* what) {
    v = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (pos_ == bytes_.size()) {
        why = fmt::format("truncated varint ({})", what);
        return false;
      }
      const auto b = static_cast<std::uint8_t>(bytes_[pos_++]);
      if (shift == 63 && b > 1) {
        why = fmt::format("varint over 64 bits ({})", what);
        return false;
      }
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return true;
      }
      if (shift == 63) {
        why = fmt::format("varint over 64 bits ({})", what);
        return false;
      }
    }
  }

  bool byte(std::uint8_t& b) noexcept {
    if (pos_ == bytes_.size()) {
      return false;
    }
    b = static_cast<std::uint8_t>(bytes_[pos_++]);
    return true;
  }

  std::string_view rest() const noexcept { return bytes_.substr(pos_); }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

}  // namespace

namespace {

template <class Done>
std::size_t encoded_size(std::int64_t commit_point, const Done& done) {
  const Sizes s = payload_sizes(commit_point, done);
  return s.too_wide ? std::numeric_limits<std::size_t>::max() : total_size(commit_point, s);
}

template <class Done>
std::string encode(std::int64_t commit_point, const Done& done) {
  const Sizes s = payload_sizes(commit_point, done);
  if (s.too_wide) {
    throw Error(errc::misuse, fmt::format("done offsets: {} is more than {} past the commit point {}", done.back(),
                                          kMaxDoneSpan, commit_point));
  }
  std::string payload;
  payload.reserve(varint_size(static_cast<std::uint64_t>(commit_point)) + 1 + std::min(s.runs, s.bitmap));
  append_varint(payload, static_cast<std::uint64_t>(commit_point));
  if (done.empty() || s.runs <= s.bitmap) {
    payload += static_cast<char>(kModeRuns);
    std::uint64_t next = 0;
    done.runs([&](std::int64_t first, std::int64_t last) {
      const auto rel = static_cast<std::uint64_t>(first - commit_point);
      const auto len = static_cast<std::uint64_t>(last - first);
      append_varint(payload, rel - next);
      append_varint(payload, len);
      next = rel + len + 2;
    });
  } else {
    // Only when it is shorter than the runs: its size is bounded by theirs.
    payload += static_cast<char>(kModeBitmap);
    append_varint(payload, static_cast<std::uint64_t>(done.front() - commit_point));
    const std::size_t start = payload.size();
    const auto bits = static_cast<std::uint64_t>(done.back() - done.front()) + 1;
    payload.append(static_cast<std::size_t>((bits + 7) / 8), '\0');
    done.set_bits(payload, start);
  }
  std::string out;
  out.reserve(total_size(commit_point, s));
  out += kDoneOffsetsPrefix;
  append_base64(out, payload);
  return out;
}

}  // namespace

std::size_t encoded_done_offsets_size(std::int64_t commit_point, std::span<const std::int64_t> done) {
  return encoded_size(commit_point, OffsetList(done));
}

std::string encode_done_offsets(std::int64_t commit_point, std::span<const std::int64_t> done) {
  return encode(commit_point, OffsetList(done));
}

std::size_t encoded_done_ranges_size(std::int64_t commit_point, std::span<const OffsetRange> done) {
  return encoded_size(commit_point, RangeList(done));
}

std::string encode_done_ranges(std::int64_t commit_point, std::span<const OffsetRange> done) {
  return encode(commit_point, RangeList(done));
}

bool DoneSet::contains(std::int64_t offset) const noexcept {
  const auto rs = ranges();
  // The first range starting after `offset`; the one before it may hold it.
  const auto it =
      std::upper_bound(rs.begin(), rs.end(), offset, [](std::int64_t o, const OffsetRange& r) { return o < r.first; });
  return it != rs.begin() && std::prev(it)->last >= offset;
}

void DoneSet::drop_below(std::int64_t offset) noexcept {
  const auto rs = ranges();
  const auto it =
      std::lower_bound(rs.begin(), rs.end(), offset, [](const OffsetRange& r, std::int64_t o) { return r.last < o; });
  first_ += static_cast<std::size_t>(it - rs.begin());
  if (first_ == ranges_.size()) {
    std::vector<OffsetRange>().swap(ranges_);
    first_ = 0;
    return;
  }
  ranges_[first_].first = std::max(ranges_[first_].first, offset);
}

std::uint64_t DoneSet::count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& r : ranges()) {
    n += static_cast<std::uint64_t>(r.last - r.first) + 1;
  }
  return n;
}

std::optional<DoneSet> decode_done_offsets(std::string_view metadata, std::int64_t committed_offset, std::string& why) {
  if (metadata.empty()) {
    why = "empty metadata";
    return std::nullopt;
  }
  if (!metadata.starts_with(kDoneOffsetsPrefix)) {
    why = fmt::format("not written by kc (no \"{}\" prefix)", kDoneOffsetsPrefix);
    return std::nullopt;
  }
  if (committed_offset < 0) {
    why = fmt::format("negative committed offset {}", committed_offset);
    return std::nullopt;
  }
  std::string payload;
  if (!decode_base64(metadata.substr(kDoneOffsetsPrefix.size()), payload, why)) {
    return std::nullopt;
  }
  Reader in(payload);
  std::uint64_t point = 0;
  if (!in.varint(point, why, "commit point")) {
    return std::nullopt;
  }
  if (point != static_cast<std::uint64_t>(committed_offset)) {
    why = fmt::format("written for offset {}, committed offset is {}", point, committed_offset);
    return std::nullopt;
  }
  std::uint8_t mode = 0;
  if (!in.byte(mode)) {
    why = "truncated (no mode)";
    return std::nullopt;
  }
  // Offsets are handled relative to the commit point, in [0, max_rel].
  const auto to_int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() - committed_offset);
  const std::uint64_t max_rel = std::min(static_cast<std::uint64_t>(kMaxDoneSpan), to_int64_max);
  // Sets `why` for an offset at base + extra (relative) that is over max_rel.
  const auto too_far = [&](std::uint64_t base, std::uint64_t extra) {
    why = base > to_int64_max || extra > to_int64_max - base
              ? std::string("an offset past INT64_MAX")
              : fmt::format("an offset more than {} past the commit point", kMaxDoneSpan);
  };
  DoneSet set;
  const auto add = [&](std::uint64_t first, std::uint64_t last) {
    set.ranges_.push_back(
        {committed_offset + static_cast<std::int64_t>(first), committed_offset + static_cast<std::int64_t>(last)});
  };
  if (mode == kModeRuns) {
    std::uint64_t next = 0;  // lowest relative offset the next run may start at
    while (!in.at_end()) {
      std::uint64_t gap = 0;
      std::uint64_t len = 0;
      if (!in.varint(gap, why, "gap") || !in.varint(len, why, "run")) {
        return std::nullopt;
      }
      // Each bound is checked before it is added to: no wrap-around.
      if (next > max_rel || gap > max_rel - next) {
        too_far(next, gap);
        return std::nullopt;
      }
      const std::uint64_t first = next + gap;
      if (len > max_rel - first) {
        too_far(first, len);
        return std::nullopt;
      }
      add(first, first + len);
      next = first + len + 2;
    }
  } else if (mode == kModeBitmap) {
    std::uint64_t first = 0;
    if (!in.varint(first, why, "bitmap start")) {
      return std::nullopt;
    }
    if (first > max_rel) {
      too_far(first, 0);
      return std::nullopt;
    }
    const std::string_view bits = in.rest();
    bool open = false;  // a range is open: its last offset is the previous bit
    for (std::size_t i = 0; i < bits.size() * 8; ++i) {
      const bool on = ((static_cast<std::uint8_t>(bits[i / 8]) >> (i % 8)) & 1u) != 0;
      if (!on) {
        open = false;
        continue;
      }
      if (i > max_rel - first) {
        too_far(first, i);
        return std::nullopt;
      }
      const std::uint64_t rel = first + i;
      if (open) {
        ++set.ranges_.back().last;
      } else {
        add(rel, rel);
        open = true;
      }
    }
  } else {
    why = fmt::format("unknown mode {}", mode);
    return std::nullopt;
  }
  return set;
}

}  // namespace kc::detail
