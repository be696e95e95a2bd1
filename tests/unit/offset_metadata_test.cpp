#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kc/error.hpp"
#include "offsets/metadata.hpp"
#include "offsets/tracker.hpp"
#include "text/text.hpp"
#include "unit/offsets_random_walk.hpp"

using kc::detail::decode_done_offsets;
using kc::detail::DoneSet;
using kc::detail::encode_done_offsets;
using kc::detail::encode_done_ranges;
using kc::detail::encoded_done_offsets_size;
using kc::detail::encoded_done_ranges_size;
using kc::detail::encoded_size_fits;
using kc::detail::kMaxCommitMetadataBytes;
using kc::detail::kMaxDoneSpan;
using kc::detail::OffsetRange;
using kc::detail::PartitionOffsets;

namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// KC_TEST_SEED replays a run; otherwise a fixed seed (kc::test::test_seed()
// lives in kc_test_support, which drags in libcurl and the kc tool: too much
// for a pure unit test).
unsigned seed() {
  if (const char* s = std::getenv("KC_TEST_SEED"); s != nullptr && *s != '\0') {
    return static_cast<unsigned>(std::strtoul(s, nullptr, 10));
  }
  return 20261124u;
}

DoneSet round_trip(std::int64_t commit_point, const std::vector<std::int64_t>& done) {
  const std::string m = encode_done_offsets(commit_point, done);
  EXPECT_EQ(m.size(), encoded_done_offsets_size(commit_point, done)) << m;
  EXPECT_TRUE(m.starts_with("kc1:")) << m;
  std::string why;
  auto set = decode_done_offsets(m, commit_point, why);
  EXPECT_TRUE(set) << why << " for " << m;
  return set ? std::move(*set) : DoneSet{};
}

std::vector<std::int64_t> offsets_of(const DoneSet& s) {
  std::vector<std::int64_t> out;
  for (const auto& r : s.ranges()) {
    for (std::int64_t o = r.first;; ++o) {
      out.push_back(o);
      if (o == r.last) {
        break;
      }
    }
  }
  return out;
}

// Raw payload bytes -> "kc1:" + base64, to build malformed metadata.
std::string kc1(std::string_view payload) {
  std::string out = "kc1:";
  kc::detail::append_base64(out, payload);
  return out;
}

std::optional<DoneSet> decode(std::string_view m, std::int64_t committed, std::string& why) {
  why.clear();
  return decode_done_offsets(m, committed, why);
}

// Structural checks for any set decode_done_offsets accepts.
void expect_well_formed(const DoneSet& s, std::int64_t committed) {
  std::int64_t prev_last = -1;
  bool first = true;
  for (const auto& r : s.ranges()) {
    ASSERT_LE(r.first, r.last);
    ASSERT_GE(r.first, committed);
    ASSERT_LE(r.last - committed, kMaxDoneSpan);
    if (!first) {
      ASSERT_GT(r.first, prev_last + 1) << "ranges overlap or touch";
    }
    prev_last = r.last;
    first = false;
  }
}

}  // namespace

TEST(OffsetMetadata, EmptyDoneSetRoundTrips) {
  const auto s = round_trip(42, {});
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.contains(42));
  EXPECT_LE(encode_done_offsets(42, {}).size(), 12u);
}

TEST(OffsetMetadata, DenseRunRoundTripsInAFewBytes) {
  std::vector<std::int64_t> done;
  for (std::int64_t o = 1'000'002; o < 1'100'002; ++o) {
    done.push_back(o);
  }
  const auto s = round_trip(1'000'000, done);
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_EQ(s.count(), 100'000u);
  EXPECT_FALSE(s.contains(1'000'000));
  EXPECT_FALSE(s.contains(1'000'001));
  EXPECT_TRUE(s.contains(1'000'002));
  EXPECT_TRUE(s.contains(1'100'001));
  EXPECT_FALSE(s.contains(1'100'002));
  const auto size = encoded_done_offsets_size(1'000'000, done);
  std::cout << "100,000 done in one run: " << size << " bytes\n";
  EXPECT_LE(size, 20u);
}

TEST(OffsetMetadata, SparseOffsetsRoundTrip) {
  std::vector<std::int64_t> done;
  for (std::int64_t o = 5'000; o < 5'000 + 1'000 * 500; o += 1'000) {
    done.push_back(o);
  }
  const auto s = round_trip(4'000, done);
  EXPECT_EQ(offsets_of(s), done);
  const auto size = encoded_done_offsets_size(4'000, done);
  std::cout << "500 done, 1,000 apart: " << size << " bytes\n";
  EXPECT_TRUE(encoded_size_fits(size));
}

TEST(OffsetMetadata, AlternatingOffsetsUseTheBitmapAndFit) {
  // 10,000 offsets past the commit point, every other one done: runs would
  // need two bytes per done offset, the bitmap needs two bits.
  std::vector<std::int64_t> done;
  for (std::int64_t o = 101; o < 100 + 10'000; o += 2) {
    done.push_back(o);
  }
  const auto s = round_trip(100, done);
  EXPECT_EQ(offsets_of(s), done);
  const auto size = encoded_done_offsets_size(100, done);
  std::cout << "10,000 offsets, alternating done/not done (5,000 done): " << size << " bytes (limit "
            << kMaxCommitMetadataBytes << ")\n";
  EXPECT_TRUE(encoded_size_fits(size));
  EXPECT_LT(size, 1'800u);
}

TEST(OffsetMetadata, OffsetsNearInt64MaxRoundTrip) {
  const std::vector<std::int64_t> done{kInt64Max - 8, kInt64Max - 7, kInt64Max - 3, kInt64Max};
  EXPECT_EQ(offsets_of(round_trip(kInt64Max - 10, done)), done);
  const std::vector<std::int64_t> far{kInt64Max};
  EXPECT_EQ(offsets_of(round_trip(kInt64Max - kMaxDoneSpan, far)), far);
  const std::vector<std::int64_t> at_point{kInt64Max};
  EXPECT_EQ(offsets_of(round_trip(kInt64Max, at_point)), at_point);
  // Alternating near the top: the bitmap path.
  std::vector<std::int64_t> alt;
  for (std::int64_t k = 50; k >= 0; --k) {
    alt.push_back(kInt64Max - 2 * k);  // ..., INT64_MAX - 2, INT64_MAX
  }
  EXPECT_EQ(offsets_of(round_trip(kInt64Max - 100, alt)), alt);
}

TEST(OffsetMetadata, RandomDoneSetsMatchAReferenceSet) {
  const unsigned s = seed();
  SCOPED_TRACE("KC_TEST_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  for (int round = 0; round < 400; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::int64_t commit = round % 10 == 0 ? kInt64Max - 5'000 : static_cast<std::int64_t>(rng() % 1'000'000'000);
    // Densities from sparse to nearly full, in clusters.
    const unsigned pct = static_cast<unsigned>(rng() % 101);
    const std::int64_t span = 1 + static_cast<std::int64_t>(rng() % 3'000);
    std::set<std::int64_t> ref;
    bool on = false;
    for (std::int64_t o = commit + 1; o <= commit + span; ++o) {
      if (rng() % 100 < 20) {
        on = rng() % 100 < pct;  // change state in bursts
      }
      if (on) {
        ref.insert(o);
      }
    }
    const std::vector<std::int64_t> done(ref.begin(), ref.end());
    const auto size = encoded_done_offsets_size(commit, done);
    const std::string m = encode_done_offsets(commit, done);
    ASSERT_EQ(m.size(), size);
    std::string why;
    auto set = decode_done_offsets(m, commit, why);
    ASSERT_TRUE(set) << why;
    expect_well_formed(*set, commit);
    ASSERT_EQ(set->count(), ref.size());
    for (std::int64_t o = commit; o <= commit + span + 2; ++o) {
      ASSERT_EQ(set->contains(o), ref.contains(o)) << "offset " << o;
    }
    // Moving past offsets forgets exactly those below.
    const std::int64_t cut = commit + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span + 2));
    set->drop_below(cut);
    ref.erase(ref.begin(), ref.lower_bound(cut));
    ASSERT_EQ(set->count(), ref.size());
    ASSERT_EQ(offsets_of(*set), std::vector<std::int64_t>(ref.begin(), ref.end()));
  }
}

TEST(OffsetMetadata, DropBelowTrimsAndEventuallyEmpties) {
  const auto s0 = round_trip(0, {2, 3, 4, 8, 9});
  DoneSet s = s0;
  s.drop_below(3);
  EXPECT_FALSE(s.contains(2));
  EXPECT_TRUE(s.contains(3));
  EXPECT_EQ(s.ranges().front(), (OffsetRange{3, 4}));
  s.drop_below(5);
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_TRUE(s.contains(8));
  s.drop_below(1);  // backwards: nothing changes
  EXPECT_EQ(s.count(), 2u);
  s.drop_below(10);
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.contains(9));
}

TEST(OffsetMetadata, TooManyRunsAreReportedAsNotFittingNotAsAnError) {
  // 2,000 isolated done offsets, 7 apart: about 2 bytes each as runs, a byte
  // each as a bitmap; either way over 4 KiB of base64.
  std::vector<std::int64_t> done;
  for (std::int64_t o = 10; done.size() < 4'000; o += 7) {
    done.push_back(o);
  }
  std::size_t size = 0;
  ASSERT_NO_THROW(size = encoded_done_offsets_size(0, done));
  std::cout << "4,000 done offsets 7 apart: " << size << " bytes\n";
  EXPECT_FALSE(encoded_size_fits(size));
  EXPECT_TRUE(encoded_size_fits(size, size));
  // Still encodable (a caller with a larger broker limit may use it).
  EXPECT_EQ(encode_done_offsets(0, done).size(), size);

  // Beyond the span bound: cannot be encoded at all, reported as not fitting.
  const std::vector<std::int64_t> wide{5, 5 + kMaxDoneSpan};
  EXPECT_EQ(encoded_done_offsets_size(4, wide), std::numeric_limits<std::size_t>::max());
  EXPECT_FALSE(encoded_size_fits(encoded_done_offsets_size(4, wide)));
  EXPECT_THROW(encode_done_offsets(4, wide), kc::Error);
}

TEST(OffsetMetadata, MisuseThrows) {
  const std::vector<std::int64_t> unsorted{5, 4};
  const std::vector<std::int64_t> repeated{5, 5};
  const std::vector<std::int64_t> below{3};
  for (const auto* v : {&unsorted, &repeated, &below}) {
    try {
      (void)encoded_done_offsets_size(4, *v);
      ADD_FAILURE() << "no exception";
    } catch (const kc::Error& e) {
      EXPECT_EQ(e.code(), kc::errc::misuse);
    }
    EXPECT_THROW(encode_done_offsets(4, *v), kc::Error);
  }
  EXPECT_THROW(encode_done_offsets(-1, {}), kc::Error);
}

TEST(OffsetMetadata, ForeignOrMalformedMetadataIsRefusedWithAReason) {
  std::string why;
  const std::string good = encode_done_offsets(300, std::vector<std::int64_t>{302, 303, 400});
  ASSERT_TRUE(decode(good, 300, why)) << why;

  struct Case {
    std::string metadata;
    std::string reason;  // a word the reason must contain
  };
  const std::vector<Case> cases{
      {"", "empty"},
      {"some-app-metadata", "not written by kc"},
      {"KC1:AAAA", "not written by kc"},
      {"kc1:!!!", "multiple of 4"},
      {"kc1:!!!!", "base64 character"},
      {"kc1:AA=A", "base64 character"},
      {"kc1:", "truncated"},
      {good.substr(0, good.size() - 4), "truncated"},  // cut inside a run
      {kc1("\x80"), "truncated varint"},
      {kc1(std::string("\xac\x02", 2)), "truncated (no mode)"},  // 300, then nothing
      {kc1(std::string("\xac\x02\x07", 3)), "unknown mode"},
      {kc1(std::string("\xac\x02\x00\x01", 4)), "truncated varint"},  // gap without run
      {kc1(std::string("\x2a\x00", 2)), "written for offset 42"},     // another commit point
      {kc1(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10)), "over 64 bits"},
      {kc1(std::string("\xac\x02\x00\x81\x94\xeb\xdc\x03\x00", 9)), "past the commit point"},  // gap 1e9 + 1
      {kc1(std::string("\xac\x02\x01\x81\x94\xeb\xdc\x03\x01", 9)), "past the commit point"},  // bitmap at 1e9 + 1
      // run of 2^63 - 1 after offset 300
      {kc1(std::string("\xac\x02\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 13)), "INT64_MAX"},
  };
  for (const auto& c : cases) {
    const auto set = decode(c.metadata, 300, why);
    EXPECT_FALSE(set) << c.metadata;
    EXPECT_NE(why.find(c.reason), std::string::npos) << c.metadata << ": " << why;
  }
  // The commit point is checked: metadata kept across an offset reset is refused.
  EXPECT_FALSE(decode(good, 301, why));
  EXPECT_NE(why.find("written for offset 300, committed offset is 301"), std::string::npos) << why;
  // Past INT64_MAX with a commit point near it.
  const std::string near = kc1(std::string("\xfe\xff\xff\xff\xff\xff\xff\xff\x7f\x00\x02\x00", 12));
  EXPECT_FALSE(decode(near, kInt64Max - 1, why));
  EXPECT_NE(why.find("INT64_MAX"), std::string::npos) << why;
}

TEST(OffsetMetadata, RandomBytesNeverCrashTheDecoder) {
  const unsigned s = seed();
  SCOPED_TRACE("KC_TEST_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  const std::string valid = encode_done_offsets(1'000, std::vector<std::int64_t>{1'002, 1'003, 1'010, 1'500});
  std::string why;
  int accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string m;
    const int kind = i % 4;
    const auto n = static_cast<std::size_t>(rng() % 64);
    if (kind == 0) {  // raw bytes
      for (std::size_t k = 0; k < n; ++k) {
        m += static_cast<char>(rng() & 0xff);
      }
    } else if (kind == 1) {  // prefix and base64-ish text
      m = "kc1:";
      for (std::size_t k = 0; k < n; ++k) {
        m += alphabet[rng() % alphabet.size()];
      }
    } else if (kind == 2) {  // prefix and valid base64 of random bytes
      std::string payload;
      for (std::size_t k = 0; k < n; ++k) {
        payload += static_cast<char>(rng() & 0xff);
      }
      if (!payload.empty() && rng() % 2 == 0) {
        payload[0] = static_cast<char>(0xe8);  // 1,000 as the commit point
        if (payload.size() > 1) {
          payload[1] = 0x07;
        }
      }
      m = kc1(payload);
    } else {  // a valid encoding, mutated or cut
      m = valid;
      const auto pos = 4 + static_cast<std::size_t>(rng() % (m.size() - 4));
      if (rng() % 2 == 0) {
        m[pos] = alphabet[rng() % alphabet.size()];
      } else {
        m.resize(pos);
      }
    }
    const std::int64_t committed = rng() % 8 == 0 ? kInt64Max - static_cast<std::int64_t>(rng() % 100) : 1'000;
    std::optional<DoneSet> set;
    ASSERT_NO_THROW(set = decode(m, committed, why));
    if (set) {
      ++accepted;
      expect_well_formed(*set, committed);
    } else {
      ASSERT_FALSE(why.empty());
    }
  }
  std::cout << "fuzz: " << accepted << " of 20000 inputs decoded\n";
}

// The tracker's done ranges beyond its commit point, after every step of a
// random walk with seek backs and a stuck offset, are the naive model's, and
// survive the trip through commit metadata: encode_done_ranges() gives the
// same text as encode_done_offsets() of every offset in them, and decodes to
// the same ranges.
TEST(OffsetMetadata, TrackerDoneRangesRoundTripThroughMetadata) {
  const unsigned s = seed();
  SCOPED_TRACE("KC_TEST_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  std::vector<OffsetRange> got;
  std::vector<std::int64_t> offsets;
  for (int round = 0; round < 300; ++round) {
    kc::test::WalkOptions opt;
    opt.seek_percent = round % 3 == 0 ? 0 : 10;
    opt.stuck = round % 2 == 0;
    kc::test::random_offsets_walk(
        rng,
        [&](const PartitionOffsets& t, const kc::test::OffsetsWalk& w) {
          got.clear();
          t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) { got.push_back({a, b}); });
          const auto expected = w.model.done_ranges();
          ASSERT_EQ(got.size(), expected.size()) << "round " << round;
          for (std::size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], (OffsetRange{expected[i].first, expected[i].second})) << "round " << round;
          }
          ASSERT_EQ(t.done_ranges_after_commit_point(), got.size());

          const auto point = t.commit_point();
          if (!point) {
            return;
          }
          offsets.clear();
          for (const auto& r : got) {
            for (std::int64_t o = r.first; o <= r.last; ++o) {
              offsets.push_back(o);
            }
          }
          const auto size = encoded_done_ranges_size(*point, got);
          ASSERT_EQ(size, encoded_done_offsets_size(*point, offsets));
          ASSERT_TRUE(encoded_size_fits(size));
          const std::string m = encode_done_ranges(*point, got);
          ASSERT_EQ(m, encode_done_offsets(*point, offsets));
          ASSERT_EQ(m.size(), size);
          std::string why;
          const auto set = decode_done_offsets(m, *point, why);
          ASSERT_TRUE(set) << why;
          ASSERT_EQ(std::vector<OffsetRange>(set->ranges().begin(), set->ranges().end()), got);
        },
        opt);
    if (HasFatalFailure()) {
      return;
    }
  }
}

// The range encoder and the offset-list encoder give exactly the same text
// and size for the same done set, whichever way it is cut into ranges
// (touching ranges are one run): runs and bitmap, near INT64_MAX, empty.
TEST(OffsetMetadata, RangeEncoderMatchesTheOffsetEncoder) {
  const unsigned s = seed();
  SCOPED_TRACE("KC_TEST_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  for (int round = 0; round < 400; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::int64_t commit = round % 10 == 0 ? kInt64Max - 5'000 : static_cast<std::int64_t>(rng() % 1'000'000'000);
    const unsigned pct = static_cast<unsigned>(rng() % 101);
    const std::int64_t span = 1 + static_cast<std::int64_t>(rng() % 3'000);
    std::vector<std::int64_t> done;
    bool on = false;
    for (std::int64_t o = commit + static_cast<std::int64_t>(rng() % 2); o <= commit + span; ++o) {
      if (rng() % 100 < 20) {
        on = rng() % 100 < pct;
      }
      if (on) {
        done.push_back(o);
      }
    }
    // Ranges over the same offsets, cut at random (so some touch).
    std::vector<OffsetRange> ranges;
    for (const std::int64_t o : done) {
      if (!ranges.empty() && ranges.back().last + 1 == o && rng() % 8 != 0) {
        ranges.back().last = o;
      } else {
        ranges.push_back({o, o});
      }
    }
    const auto size = encoded_done_ranges_size(commit, ranges);
    ASSERT_EQ(size, encoded_done_offsets_size(commit, done));
    const std::string m = encode_done_ranges(commit, ranges);
    ASSERT_EQ(m, encode_done_offsets(commit, done));
    ASSERT_EQ(m.size(), size);
  }
  // Runs and bitmap by construction; one long run costs what one offset does.
  std::vector<std::int64_t> alternating;
  std::vector<OffsetRange> alternating_ranges;
  for (std::int64_t o = 101; o < 100 + 10'000; o += 2) {
    alternating.push_back(o);
    alternating_ranges.push_back({o, o});
  }
  EXPECT_EQ(encode_done_ranges(100, alternating_ranges), encode_done_offsets(100, alternating));
  const std::vector<OffsetRange> million{{1'000'002, 2'000'001}};
  std::vector<std::int64_t> million_offsets;
  for (std::int64_t o = 1'000'002; o <= 2'000'001; ++o) {
    million_offsets.push_back(o);
  }
  EXPECT_EQ(encode_done_ranges(1'000'000, million), encode_done_offsets(1'000'000, million_offsets));
  EXPECT_LE(encoded_done_ranges_size(1'000'000, million), 20u);
  const std::vector<OffsetRange> top{{kInt64Max - 8, kInt64Max - 7}, {kInt64Max - 3, kInt64Max}};
  const std::vector<std::int64_t> top_offsets{kInt64Max - 8, kInt64Max - 7, kInt64Max - 3,
                                              kInt64Max - 2, kInt64Max - 1, kInt64Max};
  EXPECT_EQ(encode_done_ranges(kInt64Max - 10, top), encode_done_offsets(kInt64Max - 10, top_offsets));
  EXPECT_EQ(encode_done_ranges(42, {}), encode_done_offsets(42, {}));
  // A bitmap whose ranges start and end mid-byte and cover whole bytes.
  const std::vector<OffsetRange> bits{{3, 5}, {7, 30}, {32, 32}, {34, 34}, {36, 36}, {38, 38}, {40, 40}};
  std::vector<std::int64_t> bits_offsets;
  for (const auto& r : bits) {
    for (std::int64_t o = r.first; o <= r.last; ++o) {
      bits_offsets.push_back(o);
    }
  }
  EXPECT_EQ(encode_done_ranges(0, bits), encode_done_offsets(0, bits_offsets));
  std::string why;
  const auto decoded = decode_done_offsets(encode_done_ranges(0, bits), 0, why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(offsets_of(*decoded), bits_offsets);
}

TEST(OffsetMetadata, RangeEncoderMisuseThrowsAndTooWideDoesNotFit) {
  const std::vector<std::vector<OffsetRange>> bad{
      {{5, 4}},            // first > last
      {{3, 6}},            // below the commit point
      {{5, 8}, {8, 9}},    // overlapping
      {{10, 12}, {5, 6}},  // not ascending
  };
  for (const auto& v : bad) {
    try {
      (void)encoded_done_ranges_size(4, v);
      ADD_FAILURE() << "no exception for [" << v.front().first << ", " << v.front().last << "]...";
    } catch (const kc::Error& e) {
      EXPECT_EQ(e.code(), kc::errc::misuse);
    }
    EXPECT_THROW(encode_done_ranges(4, v), kc::Error);
  }
  EXPECT_THROW(encode_done_ranges(-1, {}), kc::Error);
  const std::vector<OffsetRange> wide{{5, 5 + kMaxDoneSpan}};
  EXPECT_EQ(encoded_done_ranges_size(4, wide), std::numeric_limits<std::size_t>::max());
  EXPECT_THROW(encode_done_ranges(4, wide), kc::Error);
}

TEST(OffsetMetadata, TrackerReportsNothingAfterAReset) {
  PartitionOffsets t;
  t.handed_out(1);
  t.handed_out(2);
  t.handed_out(3);
  ASSERT_TRUE(t.done(3));
  int calls = 0;
  t.for_each_done_range_after_commit_point([&](std::int64_t a, std::int64_t b) {
    EXPECT_EQ(a, 3);
    EXPECT_EQ(b, 3);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
  t.handed_out(2);  // seek back voids 2 and the done 3
  calls = 0;
  t.for_each_done_range_after_commit_point([&](std::int64_t, std::int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  t.handed_out(3);
  ASSERT_TRUE(t.done(3));
  t.reset();
  t.for_each_done_range_after_commit_point([&](std::int64_t, std::int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(t.done_after_commit_point(), 0u);
  EXPECT_EQ(t.done_ranges_after_commit_point(), 0u);
}
