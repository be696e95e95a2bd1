// kc::metrics registry, rendering and parsing: the Prometheus text format
// as Prometheus reads it, and the registry's rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kc/metrics.hpp"

// Live heap allocations of this test program, to see what a family keeps:
// every operator new/delete of the program goes through these two (the
// array, nothrow and sized forms call them).
namespace {
std::atomic<std::int64_t> g_live_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  g_live_allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void operator delete(void* p) noexcept {
  if (p != nullptr) {
    g_live_allocations.fetch_sub(1, std::memory_order_relaxed);
    std::free(p);
  }
}

void operator delete(void* p, std::size_t) noexcept {
  ::operator delete(p);
}

namespace kc::metrics {
namespace {

TEST(MetricsRegistry, RendersCountersAndGaugesWithHelpTypeAndLabels) {
  Registry r;
  r.counter("kc_things_total", "Things done", {"topic"}).with({"orders"}).inc(3);
  r.gauge("kc_level", "A level").with().set(2.5);
  EXPECT_EQ(r.render(),
            "# HELP kc_things_total Things done\n"
            "# TYPE kc_things_total counter\n"
            "kc_things_total{topic=\"orders\"} 3\n"
            "# HELP kc_level A level\n"
            "# TYPE kc_level gauge\n"
            "kc_level 2.5\n");
}

TEST(MetricsRegistry, EscapesLabelValuesAndHelp) {
  Registry r;
  r.gauge("g", "a \\ back\nslash \"quoted\"", {"l"}).with({"a\\b\"c\nd"}).set(1);
  const auto text = r.render();
  EXPECT_NE(text.find("# HELP g a \\\\ back\\nslash \"quoted\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{l=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, FormatsNumbers) {
  Registry r;
  auto& f = r.gauge("g", "h", {"k"});
  f.with({"int"}).set(1e15);
  f.with({"neg"}).set(-42);
  f.with({"frac"}).set(0.1);
  f.with({"big"}).set(1e300);
  f.with({"inf"}).set(std::numeric_limits<double>::infinity());
  f.with({"ninf"}).set(-std::numeric_limits<double>::infinity());
  f.with({"nan"}).set(std::nan(""));
  const auto text = r.render();
  EXPECT_NE(text.find("g{k=\"int\"} 1000000000000000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"neg\"} -42\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"frac\"} 0.1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"big\"} 1e+300\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"inf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"ninf\"} -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{k=\"nan\"} NaN\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  auto& h = r.histogram("lat_seconds", "Latency", {0.125, 1}, {"topic"}).with({"t"});
  for (const double v : {0.0625, 0.125, 0.5, 2.0, 3.0}) {
    h.observe(v);
  }
  EXPECT_EQ(h.bucket(0), 2u);  // <= 0.125, the bound itself included
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(2), 2u);
  EXPECT_EQ(r.render(),
            "# HELP lat_seconds Latency\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{topic=\"t\",le=\"0.125\"} 2\n"
            "lat_seconds_bucket{topic=\"t\",le=\"1\"} 3\n"
            "lat_seconds_bucket{topic=\"t\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{topic=\"t\"} 5.6875\n"
            "lat_seconds_count{topic=\"t\"} 5\n");
}

TEST(MetricsRegistry, HistogramAddsCountsKeptElsewhereAsObserveWould) {
  Registry r;
  auto& observed = r.histogram("a_seconds", "a", {0.125, 1}).with();
  auto& added = r.histogram("b_seconds", "b", {0.125, 1}).with();
  std::vector<std::uint64_t> counts(3, 0);
  double sum = 0;
  for (const double v : {0.0625, 0.125, 0.5, 2.0, 3.0, std::nan("")}) {
    observed.observe(v);
    ++counts[added.bucket_of(v)];
    sum += std::isnan(v) ? 0.0 : v;
  }
  added.add(counts, sum);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(added.bucket(i), observed.bucket(i)) << i;
  }
  EXPECT_EQ(added.count(), 6u);
  EXPECT_EQ(added.sum(), 5.6875);
  added.add(std::vector<std::uint64_t>{1, 1}, 1.0);  // too few buckets: ignored
  EXPECT_EQ(added.count(), 6u);
}

TEST(MetricsRegistry, HistogramWithoutLabelsHasOnlyLe) {
  Registry r;
  r.histogram("h", "x", {1}).with().observe(0.5);
  const auto text = r.render();
  EXPECT_NE(text.find("h_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_count 1\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, LatencyBucketsAscendFromHalfAMillisecondToAMinute) {
  const auto b = latency_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0005);
  EXPECT_DOUBLE_EQ(b.back(), 60);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(MetricsRegistry, LabelFreeFamilyIsExportedAtZeroBeforeFirstUse) {
  Registry r;
  r.counter("c_total", "c");
  EXPECT_NE(r.render().find("\nc_total 0\n"), std::string::npos) << r.render();
}

TEST(MetricsRegistry, SameNameTwiceReturnsTheSameFamily) {
  Registry r;
  auto& a = r.counter("c_total", "c", {"x"});
  auto& b = r.counter("c_total", "other help", {"x"});
  EXPECT_EQ(&a, &b);
  a.with({"1"}).inc();
  EXPECT_EQ(b.with({"1"}).value(), 1u);
  EXPECT_EQ(&r.histogram("h", "h", {1, 2}), &r.histogram("h", "h", {1, 2}));
}

TEST(MetricsRegistry, TypeLabelOrBucketMismatchThrows) {
  Registry r;
  r.counter("m_total", "m", {"a"});
  EXPECT_THROW(r.gauge("m_total", "m", {"a"}), std::invalid_argument);
  EXPECT_THROW(r.counter("m_total", "m", {"b"}), std::invalid_argument);
  EXPECT_THROW(r.counter("m_total", "m"), std::invalid_argument);
  r.histogram("h", "h", {1, 2});
  EXPECT_THROW(r.histogram("h", "h", {1, 3}), std::invalid_argument);
}

TEST(MetricsRegistry, InvalidNamesLabelsAndBoundsThrow) {
  Registry r;
  EXPECT_THROW(r.counter("1abc", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("a-b", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "x", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok2_total", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h1", "x", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h2", "x", {2, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h3", "x", {1, 1}), std::invalid_argument);
  // None of the failed ones was registered.
  EXPECT_EQ(r.render(), "");
}

TEST(MetricsRegistry, WrongNumberOfLabelValuesThrows) {
  Registry r;
  auto& f = r.gauge("g", "g", {"a", "b"});
  EXPECT_THROW(f.with({"x"}), std::invalid_argument);
  EXPECT_THROW(f.with({"x", "y", "z"}), std::invalid_argument);
  EXPECT_NO_THROW(f.with({"x", "y"}));
}

TEST(MetricsRegistry, RemovedChildDisappearsAndComesBackAtZero) {
  Registry r;
  auto& f = r.gauge("g", "g", {"p"});
  f.with({"0"}).set(7);
  f.with({"1"}).set(1);
  f.remove({"0"});
  f.remove({"never"});  // unknown: nothing happens
  const auto text = r.render();
  EXPECT_EQ(text.find("g{p=\"0\"}"), std::string::npos) << text;
  EXPECT_NE(text.find("g{p=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(f.with({"0"}).value(), 0);  // a new child
  EXPECT_NE(r.render().find("g{p=\"0\"} 0\n"), std::string::npos);
}

TEST(MetricsRegistry, LabelFreeChildIsNeverRemoved) {
  Registry r;
  auto& f = r.counter("c_total", "c");
  auto& kept = f.with();
  kept.inc(2);
  f.remove({});
  kept.inc();  // still the family's child
  EXPECT_EQ(f.with().value(), 3u);
  EXPECT_NE(r.render().find("c_total 3\n"), std::string::npos);
}

// A consumer whose partitions are assigned and revoked over and over: the
// series of a revoked partition are removed, and nothing of them stays.
TEST(MetricsRegistry, RemovedChildrenAreFreedSoChurnDoesNotGrowMemory) {
  Registry r;
  auto& lag = r.gauge("kc_lag", "l", {"topic", "partition"});
  auto& latency = r.histogram("kc_latency_seconds", "l", {0.1, 1}, {"partition"});
  auto& events = r.counter("kc_events_total", "e", {"partition"});
  const auto rebalance = [&] {
    for (int p = 0; p < 8; ++p) {
      const auto id = std::to_string(p);
      lag.with({"orders", id}).set(p);
      latency.with({id}).observe(0.5);
      events.with({id}).inc();
    }
    for (int p = 0; p < 8; ++p) {
      const auto id = std::to_string(p);
      lag.remove({"orders", id});
      latency.remove({id});
      events.remove({id});
    }
  };
  rebalance();  // first use: whatever is allocated once
  const auto before = g_live_allocations.load();
  for (int i = 0; i < 1000; ++i) {
    rebalance();
  }
  const auto grown = g_live_allocations.load() - before;
  EXPECT_LE(grown, 0) << grown << " allocations still held after 1000 rebalances of 8 partitions";
  // And none of them is rendered.
  lag.with({"orders", "live"}).set(1);
  const auto text = r.render();
  EXPECT_EQ(text.find("kc_lag{topic=\"orders\",partition=\"0\"}"), std::string::npos) << text;
  EXPECT_EQ(text.find("kc_latency_seconds_count{"), std::string::npos) << text;
  EXPECT_EQ(text.find("kc_events_total{"), std::string::npos) << text;
  EXPECT_NE(text.find("kc_lag{topic=\"orders\",partition=\"live\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, ChildrenRenderInLabelOrderAndFamiliesInCreationOrder) {
  Registry r;
  auto& z = r.gauge("z", "z", {"p"});
  r.gauge("a", "a");
  z.with({"b"}).set(2);
  z.with({"a"}).set(1);
  const auto text = r.render();
  EXPECT_LT(text.find("z{p=\"a\"}"), text.find("z{p=\"b\"}"));
  EXPECT_LT(text.find("# TYPE z"), text.find("# TYPE a"));
}

TEST(MetricsRegistry, ConcurrentIncrementsSumExactly) {
  Registry r;
  auto& family = r.counter("c_total", "c", {"t"});
  auto& gauge = r.gauge("g", "g").with();
  auto& hist = r.histogram("h", "h", {0.5}).with();
  constexpr int kThreads = 4;
  constexpr int kEach = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        family.with({"x"}).inc();
        gauge.add(1);
        hist.observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(family.with({"x"}).value(), std::uint64_t{kThreads} * kEach);
  EXPECT_EQ(gauge.value(), double{kThreads} * kEach);
  EXPECT_EQ(hist.count(), std::uint64_t{kThreads} * kEach);
  EXPECT_EQ(hist.bucket(0), std::uint64_t{kThreads} * kEach / 2);
  EXPECT_DOUBLE_EQ(hist.sum(), kThreads * (kEach / 2) * 1.25);
}

TEST(MetricsRegistry, OnCollectRunsBeforeEachRender) {
  Registry r;
  auto& g = r.gauge("g", "g").with();
  int calls = 0;
  r.on_collect([&] { g.set(++calls); });
  EXPECT_NE(r.render().find("\ng 1\n"), std::string::npos);
  EXPECT_NE(r.render().find("\ng 2\n"), std::string::npos);
}

TEST(MetricsText, ParseOfRenderRoundTrips) {
  Registry r;
  r.counter("c_total", "c", {"topic", "x"}).with({"a \"q\" \\ \n", "2"}).inc(7);
  r.gauge("g", "g").with().set(-0.125);
  r.gauge("inf", "i").with().set(std::numeric_limits<double>::infinity());
  r.histogram("h", "h", {0.001, 10}, {"topic"}).with({"t"}).observe(5);
  const auto samples = parse(r.render());
  ASSERT_EQ(samples.size(), 1u + 1 + 1 + 5);
  EXPECT_EQ(samples[0].name, "c_total");
  EXPECT_EQ(samples[0].labels.at("topic"), "a \"q\" \\ \n");
  EXPECT_EQ(samples[0].labels.at("x"), "2");
  EXPECT_EQ(samples[0].value, 7);
  EXPECT_EQ(samples[1].value, -0.125);
  EXPECT_TRUE(std::isinf(samples[2].value) && samples[2].value > 0);
  EXPECT_EQ(sum(samples, "h_bucket", {{"le", "0.001"}}), 0);
  EXPECT_EQ(sum(samples, "h_bucket", {{"le", "10"}}), 1);
  EXPECT_EQ(sum(samples, "h_bucket", {{"le", "+Inf"}}), 1);
  EXPECT_EQ(sum(samples, "h_sum"), 5);
  EXPECT_EQ(sum(samples, "h_count", {{"topic", "t"}}), 1);
}

TEST(MetricsText, ParsesForeignSyntax) {
  const auto s = parse(
      "# a comment\n"
      "\n"
      "  m{a=\"1\" , b=\"2\",} 1.5e3 1700000000000\r\n"
      "n NaN\n"
      "o -Inf\n"
      "p +7\n");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].labels.size(), 2u);
  EXPECT_EQ(s[0].value, 1500);
  EXPECT_TRUE(std::isnan(s[1].value));
  EXPECT_TRUE(std::isinf(s[2].value) && s[2].value < 0);
  EXPECT_EQ(s[3].value, 7);
}

TEST(MetricsText, SumAddsMatchingSamplesOnly) {
  const auto s = parse(
      "x{topic=\"a\",p=\"0\"} 1\n"
      "x{topic=\"a\",p=\"1\"} 2\n"
      "x{topic=\"b\",p=\"0\"} 4\n"
      "y{topic=\"a\"} 8\n");
  EXPECT_EQ(sum(s, "x"), 7);
  EXPECT_EQ(sum(s, "x", {{"topic", "a"}}), 3);
  EXPECT_EQ(sum(s, "x", {{"topic", "a"}, {"p", "1"}}), 2);
  EXPECT_EQ(sum(s, "x", {{"nope", "a"}}), 0);
  EXPECT_EQ(sum(s, "z"), 0);
}

TEST(MetricsText, ParseErrorsNameTheLine) {
  const auto error_of = [](std::string_view text) -> std::string {
    try {
      parse(text);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error_of("ok 1\n# c\nbad{x=\"1\" 2\n").find("line 3"), std::string::npos)
      << error_of("ok 1\n# c\nbad{x=\"1\" 2\n");
  EXPECT_NE(error_of("ok 1\nm abc\n").find("line 2"), std::string::npos);
  EXPECT_NE(error_of("m\n").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("m{x=\"unterminated} 1\n").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("m{x=\"\\q\"} 1\n").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("m 1 notatimestamp\n").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("{x=\"1\"} 1\n").find("line 1"), std::string::npos);
}

}  // namespace
}  // namespace kc::metrics
