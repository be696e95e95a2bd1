// Counters, gauges, histograms and their families, rendered in the Prometheus
// text format 0.0.4.
//
// Why not prometheus-cpp: Debian bookworm does not package it, and what kc
// needs (three metric types, labels, one text renderer) is a few hundred
// lines; the HTTP side is a library (cpp-httplib, server.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kc/metrics.hpp"

namespace kc::metrics {

// ---------------------------------------------------------------- values

void Gauge::add(double d) noexcept {
  value_.fetch_add(d, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i]))) {
      throw std::invalid_argument("histogram bounds must be finite and strictly ascending");
    }
  }
  counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

std::size_t Histogram::bucket_of(double v) const noexcept {
  // Buckets are "less than or equal": the first bound >= v. NaN goes above
  // every bound, as Prometheus' own clients count it.
  const auto it = std::isnan(v) ? bounds_.end() : std::lower_bound(bounds_.begin(), bounds_.end(), v);
  return static_cast<std::size_t>(it - bounds_.begin());
}

void Histogram::observe(double v) noexcept {
  counts_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::add(std::span<const std::uint64_t> counts, double sum) noexcept {
  if (counts.size() < bounds_.size() + 1) {
    return;
  }
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    if (counts[i] != 0) {
      counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
      n += counts[i];
    }
  }
  sum_.fetch_add(sum, std::memory_order_relaxed);
  count_.fetch_add(n, std::memory_order_relaxed);
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// ---------------------------------------------------------------- families

namespace {

bool valid_name(std::string_view s, bool colon) {
  if (s.empty()) {
    return false;
  }
  const auto ok = [&](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
  };
  if (!ok(s[0], true)) {
    return false;
  }
  return std::all_of(s.begin() + 1, s.end(), [&](char c) { return ok(c, false); });
}

template <class T>
std::unique_ptr<T> make_child(const std::vector<double>& bounds) {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(bounds);
  } else {
    (void)bounds;
    return std::make_unique<T>();
  }
}

}  // namespace

template <class T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds)
    : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), bounds_(std::move(bounds)) {
  if (labels_.empty()) {
    // A family without labels has exactly one child: export it at 0 from the
    // start, as Prometheus' own clients do, so a scrape sees it before the
    // first event.
    children_.emplace(LabelValues{}, make_child<T>(bounds_));
  }
}

template <class T>
T& Family<T>::with(const LabelValues& values) {
  if (values.size() != labels_.size()) {
    throw std::invalid_argument(fmt::format("metric {}: {} label value(s) given, {} label name(s) declared", name_,
                                            values.size(), labels_.size()));
  }
  std::lock_guard lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    it = children_.emplace(values, make_child<T>(bounds_)).first;
  }
  return *it->second;
}

// Why a removed child is freed, not kept for references still held: a
// consumer whose partitions come and go with every rebalance would keep one
// child per partition per rebalance, for ever. Its users look per-partition
// series up with with() each time instead (consumer_metrics.cpp,
// rdkafka_stats.cpp).
template <class T>
void Family<T>::remove(const LabelValues& values) noexcept {
  if (labels_.empty()) {
    return;  // the label-free child is exported from the start and held by pointer
  }
  std::lock_guard lock(mu_);
  const auto it = children_.find(values);
  if (it != children_.end()) {
    children_.erase(it);  // under the mutex: a render in progress is not reading it
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------- registry

struct Registry::Impl {
  using AnyFamily = std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
                                 std::unique_ptr<Family<Histogram>>>;
  mutable std::mutex mu;
  struct Entry {
    AnyFamily family;
    std::vector<double> bounds;  // histograms: to refuse the same name with other buckets
  };
  std::vector<Entry> families;  // creation order
  std::vector<std::function<void()>> collectors;

  // The family called `name`, created by `make` when there is none; throws
  // when one exists with another type, other labels or other bounds.
  template <class T, class Make>
  Family<T>& get(std::string_view name, const std::vector<std::string>& labels, const std::vector<double>& bounds,
                 Make make) {
    if (!valid_name(name, true)) {
      throw std::invalid_argument(fmt::format("metric name '{}' is not [a-zA-Z_:][a-zA-Z0-9_:]*", name));
    }
    for (const auto& l : labels) {
      if (!valid_name(l, false) || l.starts_with("__")) {
        throw std::invalid_argument(fmt::format("metric {}: label name '{}' is not [a-zA-Z_][a-zA-Z0-9_]*", name, l));
      }
      if constexpr (std::is_same_v<T, Histogram>) {
        if (l == "le") {
          throw std::invalid_argument(fmt::format("metric {}: a histogram cannot have a label 'le'", name));
        }
      }
    }
    std::lock_guard lock(mu);
    for (auto& e : families) {
      const bool same_name = std::visit([&](const auto& p) { return p->name() == name; }, e.family);
      if (!same_name) {
        continue;
      }
      auto* mine = std::get_if<std::unique_ptr<Family<T>>>(&e.family);
      if (mine == nullptr) {
        throw std::invalid_argument(fmt::format("metric {} already exists with another type", name));
      }
      if ((*mine)->labels() != labels) {
        throw std::invalid_argument(fmt::format("metric {} already exists with other label names", name));
      }
      if (e.bounds != bounds) {
        throw std::invalid_argument(fmt::format("metric {} already exists with other buckets", name));
      }
      return **mine;
    }
    auto made = make();
    auto& ref = *made;
    families.push_back(Entry{std::move(made), bounds});
    return ref;
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Family<Counter>& Registry::counter(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  return impl_->get<Counter>(name, labels, {}, [&] {
    return std::make_unique<Family<Counter>>(std::string(name), std::string(help), labels);
  });
}

Family<Gauge>& Registry::gauge(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  return impl_->get<Gauge>(
      name, labels, {}, [&] { return std::make_unique<Family<Gauge>>(std::string(name), std::string(help), labels); });
}

Family<Histogram>& Registry::histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                                       std::vector<std::string> labels) {
  Histogram check(bounds);  // validates the bounds before anything is registered
  return impl_->get<Histogram>(name, labels, bounds, [&] {
    return std::make_unique<Family<Histogram>>(std::string(name), std::string(help), labels, bounds);
  });
}

void Registry::on_collect(std::function<void()> f) {
  std::lock_guard lock(impl_->mu);
  impl_->collectors.push_back(std::move(f));
}

// ---------------------------------------------------------------- render

namespace {

using Out = std::back_insert_iterator<std::string>;

// Integers (exactly representable ones) without exponent or fraction; other
// values in the shortest form that reads back to the same double.
void put_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::trunc(v) && std::fabs(v) <= 9007199254740992.0) {  // 2^53
    fmt::format_to(Out(out), "{}", static_cast<std::int64_t>(v));
  } else {
    fmt::format_to(Out(out), "{}", v);
  }
}

// `s` with backslash, double quote and newline escaped (label values);
// HELP text escapes only backslash and newline.
void put_escaped(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"': out += quote ? "\\\"" : "\""; break;
      default: out += c;
    }
  }
}

// `{a="x",b="y"}` (with `extra` = `le="..."` last), or nothing without labels.
void put_labels(std::string& out, const std::vector<std::string>& names, const LabelValues& values,
                std::string_view extra = {}) {
  if (names.empty() && extra.empty()) {
    return;
  }
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += names[i];
    out += "=\"";
    put_escaped(out, values[i], true);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) {
      out += ',';
    }
    out += extra;
  }
  out += '}';
}

void put_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  put_escaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void render_family(std::string& out, const Family<Counter>& f) {
  put_header(out, f.name(), f.help(), "counter");
  f.for_each([&](const LabelValues& values, const Counter& c) {
    out += f.name();
    put_labels(out, f.labels(), values);
    fmt::format_to(Out(out), " {}\n", c.value());
  });
}

void render_family(std::string& out, const Family<Gauge>& f) {
  put_header(out, f.name(), f.help(), "gauge");
  f.for_each([&](const LabelValues& values, const Gauge& g) {
    out += f.name();
    put_labels(out, f.labels(), values);
    out += ' ';
    put_number(out, g.value());
    out += '\n';
  });
}

void render_family(std::string& out, const Family<Histogram>& f) {
  put_header(out, f.name(), f.help(), "histogram");
  std::string le;
  f.for_each([&](const LabelValues& values, const Histogram& h) {
    // _count is the +Inf bucket, both from the bucket counts read once, so
    // a scrape racing observe() is still self-consistent.
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
      cumulative += h.bucket(i);
      le = "le=\"";
      if (i < h.bounds().size()) {
        put_number(le, h.bounds()[i]);
      } else {
        le += "+Inf";
      }
      le += '"';
      out += f.name();
      out += "_bucket";
      put_labels(out, f.labels(), values, le);
      fmt::format_to(Out(out), " {}\n", cumulative);
    }
    out += f.name();
    out += "_sum";
    put_labels(out, f.labels(), values);
    out += ' ';
    put_number(out, h.sum());
    out += '\n';
    out += f.name();
    out += "_count";
    put_labels(out, f.labels(), values);
    fmt::format_to(Out(out), " {}\n", cumulative);
  });
}

}  // namespace

std::string Registry::render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(impl_->mu);
    collectors = impl_->collectors;
  }
  // Outside the registry's mutex: a collector may create families.
  for (const auto& c : collectors) {
    c();
  }
  std::string out;
  std::lock_guard lock(impl_->mu);
  out.reserve(128 * impl_->families.size() + 4096);
  for (const auto& e : impl_->families) {
    std::visit([&](const auto& f) { render_family(out, *f); }, e.family);
  }
  return out;
}

}  // namespace kc::metrics
