// kc::metrics: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format (0.0.4), and the HTTP endpoint that
// serves them with the health checks.
//
// Debian bookworm has no prometheus-cpp, so kc keeps its own small registry;
// the HTTP server is cpp-httplib (Debian's libcpp-httplib-dev).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kc::metrics {

/// Label values in the order of the family's label names.
using LabelValues = std::vector<std::string>;

/// A monotonically increasing count. Lock-free; any thread.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. Lock-free; any thread.
class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept;
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (upper bounds, ascending; +Inf is
/// implicit), with their sum. Lock-free observe(); any thread. A scrape that
/// races an observation may see the count one ahead of a bucket: Prometheus
/// tolerates that.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v) noexcept;
  /// The bucket observe(v) counts `v` in (bounds().size(): above the last
  /// bound, NaN too).
  std::size_t bucket_of(double v) const noexcept;
  /// Adds observations counted elsewhere (a hot path that accumulates
  /// without atomics and publishes now and then): `counts` per bucket
  /// (bounds().size() + 1 entries; fewer are ignored), their `sum`.
  void add(std::span<const std::uint64_t> counts, double sum) noexcept;
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  /// Non-cumulative count of bucket i (i == bounds().size(): above the last bound).
  std::uint64_t bucket(std::size_t i) const noexcept { return counts_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

/// Bucket bounds for latencies in seconds: 0.5 ms .. 60 s.
std::vector<double> latency_buckets();

enum class Type { counter, gauge, histogram };

/// One metric name with its help text, label names and one child per set of
/// label values. A child lives until remove() of its label values, or else
/// as long as the family (the registry), so memory is bounded by the series
/// that exist now, however often series come and go. Keep the reference from
/// with() on the hot path instead of looking it up per record, for series
/// nobody removes (kc's own: per topic and label-free ones); look up with()
/// each time a series that remove() may drop (per partition).
/// Threads: any; with() and remove() take the family's mutex, and so does
/// rendering, which thus never sees a removed child.
template <class T>
class Family {
 public:
  /// The child for these label values (created at 0 on first use, and
  /// again after remove()). The reference is valid until remove() of these
  /// values or the registry's end. Throws std::invalid_argument when the
  /// number of values does not match the label names; std::bad_alloc.
  T& with(const LabelValues& values = {});
  /// Drops a child and frees it (a partition no longer assigned): it is no
  /// longer rendered, and references to it from with() dangle. Unknown
  /// values: nothing happens. A family without labels keeps its one child
  /// (remove({}) does nothing). Never throws.
  void remove(const LabelValues& values) noexcept;

  // Used by Registry; not for users.
  Family(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds = {});
  const std::string& name() const noexcept { return name_; }
  const std::string& help() const noexcept { return help_; }
  const std::vector<std::string>& labels() const noexcept { return labels_; }
  /// Calls f(values, child) for each child, under the mutex, in label order.
  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) {
      f(values, *child);
    }
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;
};

/// A set of metric families. Threads: any (families are created under a
/// mutex; asking twice for the same name returns the same family, and asking
/// with another type or other labels throws std::invalid_argument).
/// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; counters should end in _total.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& counter(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                               std::vector<std::string> labels = {});

  /// Called at the start of every render(), before the text is built, to
  /// refresh gauges computed on demand. Runs on the rendering thread (the
  /// HTTP server's); must be thread-safe and must not call render().
  void on_collect(std::function<void()> f);

  /// Every family in the Prometheus text format 0.0.4: `# HELP`, `# TYPE`,
  /// one line per child (histograms: _bucket{le=...} cumulative with +Inf,
  /// _sum, _count), label values escaped (\\, \", \n). Families in the order
  /// they were created. Does not block beyond the families' mutexes.
  std::string render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One sample of a scrape: `name{labels} value`.
struct Sample {
  std::string name;  ///< with its _bucket/_sum/_count suffix for histograms
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Parses Prometheus text format (comments and blank lines skipped, escapes
/// in label values undone, NaN/+Inf/-Inf understood, an optional timestamp
/// ignored). Throws std::runtime_error naming the line number for a line it
/// cannot read. For tests and `kc top`.
std::vector<Sample> parse(std::string_view text);

/// Sum of the values of samples called `name` whose labels include all of
/// `match` (0 when none).
double sum(const std::vector<Sample>& samples, std::string_view name,
           const std::map<std::string, std::string>& match = {});

/// A health check's answer: ok, or not with a reason (the response body).
struct Health {
  bool ok = true;
  std::string reason;
};

/// The HTTP endpoint: GET /metrics (text/plain; version=0.0.4), /healthz
/// (liveness) and /readyz (readiness): 200 "ok\n" or 503 with the reason;
/// anything else 404. Threads: the server runs on its own threads (started by
/// the constructor, joined by the destructor); the callbacks run there and
/// must be thread-safe.
class Server {
 public:
  struct Options {
    std::string bind = "0.0.0.0";
    /// 0: an ephemeral port (see port()).
    std::uint16_t port = 0;
  };
  /// Binds and starts serving; returns once the socket listens. Throws
  /// kc::Error (config_invalid_value naming metrics.port) when it cannot bind.
  /// `registry` must outlive the server.
  Server(Options options, const Registry& registry, std::function<Health()> liveness,
         std::function<Health()> readiness);
  /// Stops accepting, waits for requests in progress (each is short). Never throws.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The port the server listens on (the chosen one when Options::port was 0).
  std::uint16_t port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kc::metrics
