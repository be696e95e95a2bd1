// `kc top`: scrapes a consumer's Prometheus endpoint and shows what it is
// doing now.
//
// Rates are differences between two scrapes divided by the time between
// them, as Prometheus' rate() over the last interval. Latency percentiles
// are estimated from the histogram buckets the way histogram_quantile()
// does (linear within a bucket), from the observations of the last interval
// when there were any, otherwise from all since the start.
#include "top.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "kc/log.hpp"
#include "kc/metrics.hpp"

namespace kc::tool {

namespace {

using Clock = std::chrono::steady_clock;
using metrics::Sample;

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

struct Scrape {
  std::vector<Sample> samples;
  Clock::time_point at;
};

// ---------------------------------------------------------------- scraping

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  body->append(data, size * n);
  return size * n;
}

class Scraper {
 public:
  explicit Scraper(std::string url) : url_(std::move(url)), curl_(curl_easy_init(), &curl_easy_cleanup) {}

  // The samples, or the reason there are none.
  std::variant<std::vector<Sample>, std::string> scrape() {
    if (!curl_) {
      return std::string("cannot initialise libcurl");
    }
    CURL* c = curl_.get();
    std::string body;
    char error[CURL_ERROR_SIZE] = {};
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (const auto rc = curl_easy_perform(c); rc != CURLE_OK) {
      return fmt::format("GET {}: {}", url_, error[0] != '\0' ? error : curl_easy_strerror(rc));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      const auto first_line = body.substr(0, std::min(body.find('\n'), std::size_t{200}));
      return fmt::format("GET {}: HTTP {}{}{}", url_, status, first_line.empty() ? "" : ": ", first_line);
    }
    try {
      return metrics::parse(body);
    } catch (const std::exception& e) {
      return fmt::format("GET {}: not Prometheus text: {}", url_, e.what());
    }
  }

 private:
  std::string url_;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl_;
};

// ---------------------------------------------------------------- reading

// Sum of the samples called `name` (with `match`), or nothing when the
// endpoint exports no such sample.
std::optional<double> total(const std::vector<Sample>& s, std::string_view name,
                            const std::map<std::string, std::string>& match = {}) {
  const bool any = std::any_of(s.begin(), s.end(), [&](const Sample& x) { return x.name == name; });
  if (!any) {
    return std::nullopt;
  }
  return metrics::sum(s, name, match);
}

// Cumulative bucket counts of histogram `name` by upper bound, summed over
// its other labels (+Inf as infinity).
std::map<double, double> buckets(const std::vector<Sample>& s, const std::string& name) {
  std::map<double, double> out;
  const auto bucket = name + "_bucket";
  for (const auto& x : s) {
    if (x.name != bucket) {
      continue;
    }
    const auto le = x.labels.find("le");
    if (le == x.labels.end()) {
      continue;
    }
    try {
      const double bound = le->second == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(le->second);
      out[bound] += x.value;
    } catch (const std::exception&) {
      // a malformed le: ignore that bucket
    }
  }
  return out;
}

struct Quantile {
  double value = 0;
  bool above_last_bound = false;  // in the +Inf bucket: value is the last finite bound
};

// histogram_quantile(q) over cumulative buckets; nothing when empty.
std::optional<Quantile> quantile(const std::map<double, double>& cumulative, double q) {
  if (cumulative.empty()) {
    return std::nullopt;
  }
  const double count = cumulative.rbegin()->second;
  if (count <= 0) {
    return std::nullopt;
  }
  const double rank = q * count;
  double lower = 0;
  double below = 0;
  for (const auto& [bound, cum] : cumulative) {
    if (cum >= rank) {
      if (std::isinf(bound)) {
        return Quantile{lower, true};
      }
      const double in_bucket = cum - below;
      const double v = in_bucket > 0 ? lower + (bound - lower) * (rank - below) / in_bucket : bound;
      return Quantile{v, false};
    }
    lower = bound;
    below = cum;
  }
  return Quantile{lower, true};
}

// ---------------------------------------------------------------- showing

std::string number(std::optional<double> v) {
  if (!v) {
    return "-";
  }
  if (*v == std::floor(*v) && std::fabs(*v) < 1e15) {
    return fmt::format("{:.0f}", *v);
  }
  return fmt::format("{:.3g}", *v);
}

std::string as_seconds(std::optional<Quantile> q) {
  if (!q) {
    return "-";
  }
  const auto v = q->value;
  auto text = v < 1 ? fmt::format("{:.3g} ms", v * 1000) : fmt::format("{:.3g} s", v);
  return q->above_last_bound ? "> " + text : text;
}

class View {
 public:
  View(const std::string& url, std::chrono::milliseconds interval) {
    out_ = fmt::format("kc top  {}  every {:.1f} s\n", url, static_cast<double>(interval.count()) / 1000);
  }

  void error(const std::string& e) { out_ += fmt::format("\nscrape failed: {}\n", e); }

  void show(const Scrape& cur, const std::optional<Scrape>& prev) {
    const auto& s = cur.samples;
    const double dt = prev ? std::chrono::duration<double>(cur.at - prev->at).count() : 0;

    out_ += '\n';
    const auto processed_rate = rate(cur, prev, "kc_messages_processed_total", dt);
    out_ +=
        fmt::format("throughput {} msg/s processed\n\n", processed_rate ? fmt::format("{:.1f}", *processed_rate) : "-");

    out_ += fmt::format("{:<15} {:>14} {:>12} {:>12}\n", "MESSAGES", "TOTAL", "INTERVAL", "RATE/S");
    for (const auto& [label, name] :
         std::vector<std::pair<std::string, std::string>>{{"consumed", "kc_messages_consumed_total"},
                                                          {"processed", "kc_messages_processed_total"},
                                                          {"failed", "kc_messages_failed_total"},
                                                          {"retried", "kc_messages_retried_total"},
                                                          {"dead-lettered", "kc_messages_dead_lettered_total"}}) {
      const auto now = total(s, name);
      const auto delta = prev ? difference(now, total(prev->samples, name)) : std::nullopt;
      const auto r = rate(cur, prev, name, dt);
      out_ += fmt::format("{:<15} {:>14} {:>12} {:>12}\n", label, number(now), delta ? "+" + number(delta) : "-",
                          r ? fmt::format("{:.1f}", *r) : "-");
    }

    const auto poll_age = total(s, "kc_poll_age_seconds");
    out_ +=
        fmt::format("\nin flight {}   paused partitions {}   assigned partitions {}   fetch queue {}   poll age {}\n",
                    number(total(s, "kc_in_flight")), number(total(s, "kc_paused_partitions")),
                    number(total(s, "kc_assigned_partitions")), number(total(s, "kc_librdkafka_fetch_queue_messages")),
                    poll_age ? fmt::format("{:.3f} s", *poll_age) : "-");
    out_ += fmt::format("rebalances {} (assign {}, revoke {}, lost {})   commits {}   commit failures {}\n",
                        number(total(s, "kc_rebalances_total")),
                        number(total(s, "kc_rebalances_total", {{"event", "assign"}})),
                        number(total(s, "kc_rebalances_total", {{"event", "revoke"}})),
                        number(total(s, "kc_rebalances_total", {{"event", "lost"}})),
                        number(total(s, "kc_commits_total")), number(total(s, "kc_commit_failures_total")));
    latency("processing latency", "kc_processing_seconds", cur, prev);
    latency("end-to-end latency", "kc_end_to_end_latency_seconds", cur, prev);
    out_ += fmt::format("total lag {}\n", number(total(s, "kc_partition_lag")));
    partitions(s);
  }

  const std::string& text() const noexcept { return out_; }

 private:
  static std::optional<double> difference(std::optional<double> now, std::optional<double> before) {
    if (!now || !before || *now < *before) {  // missing, or the consumer restarted
      return std::nullopt;
    }
    return *now - *before;
  }

  static std::optional<double> rate(const Scrape& cur, const std::optional<Scrape>& prev, std::string_view name,
                                    double dt) {
    if (!prev || dt <= 0) {
      return std::nullopt;
    }
    const auto d = difference(total(cur.samples, name), total(prev->samples, name));
    if (!d) {
      return std::nullopt;
    }
    return *d / dt;
  }

  void latency(std::string_view label, const std::string& name, const Scrape& cur, const std::optional<Scrape>& prev) {
    auto now = buckets(cur.samples, name);
    std::string_view over = "since start";
    if (prev && !now.empty()) {
      auto delta = now;
      const auto before = buckets(prev->samples, name);
      bool ok = true;
      for (auto& [bound, cum] : delta) {
        const auto it = before.find(bound);
        cum -= it == before.end() ? 0 : it->second;
        ok = ok && cum >= 0;
      }
      if (ok && !delta.empty() && delta.rbegin()->second > 0) {
        now = std::move(delta);
        over = "last interval";
      }
    }
    out_ += fmt::format("{} p50 {}  p99 {}  ({})\n", label, as_seconds(quantile(now, 0.5)),
                        as_seconds(quantile(now, 0.99)), over);
  }

  void partitions(const std::vector<Sample>& s) {
    struct Row {
      std::optional<double> committed, high_watermark, lag;
    };
    // By topic, then partition number.
    std::map<std::pair<std::string, long long>, Row> rows;
    const auto fill = [&](std::string_view name, std::optional<double> Row::*field) {
      for (const auto& x : s) {
        if (x.name != name) {
          continue;
        }
        const auto t = x.labels.find("topic");
        const auto p = x.labels.find("partition");
        if (t == x.labels.end() || p == x.labels.end()) {
          continue;
        }
        long long id = 0;
        try {
          id = std::stoll(p->second);
        } catch (const std::exception&) {
          continue;
        }
        rows[{t->second, id}].*field = x.value;
      }
    };
    fill("kc_partition_committed_offset", &Row::committed);
    fill("kc_partition_high_watermark", &Row::high_watermark);
    fill("kc_partition_lag", &Row::lag);
    if (rows.empty()) {
      out_ += "\nno partitions\n";
      return;
    }
    std::size_t width = 5;
    for (const auto& [key, row] : rows) {
      width = std::max(width, key.first.size());
    }
    out_ += fmt::format("\n{:<{}}  {:>9}  {:>14}  {:>14}  {:>12}\n", "TOPIC", width, "PARTITION", "COMMITTED",
                        "HIGH WATERMARK", "LAG");
    for (const auto& [key, row] : rows) {
      out_ += fmt::format("{:<{}}  {:>9}  {:>14}  {:>14}  {:>12}\n", key.first, width, key.second,
                          number(row.committed), number(row.high_watermark), number(row.lag));
    }
  }

  std::string out_;
};

// Sleeps until `until` or a signal.
void sleep_until_or_stop(Clock::time_point until) {
  while (!g_stop && Clock::now() < until) {
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
}

}  // namespace

void add_top_command(CLI::App& app, TopOptions& o) {
  auto* cmd = app.add_subcommand("top", "live view of a running kc consumer from its Prometheus /metrics endpoint");
  cmd->add_option("--metrics-url", o.metrics_url, "e.g. http://127.0.0.1:9464/metrics")->required();
  cmd->add_option("--interval-ms", o.interval_ms, "time between scrapes (default 1000)")
      ->check(CLI::Range(std::uint64_t{50}, std::uint64_t{3600000}));
  cmd->add_option("--iterations", o.iterations, "stop after N views (default: until Ctrl-C)")
      ->check(CLI::PositiveNumber);
  cmd->footer(
      "Rates and INTERVAL are differences between the last two scrapes; latency percentiles are estimated\n"
      "from the histogram buckets. On a terminal the view is redrawn in place; otherwise each view is\n"
      "printed followed by a blank line. Exit 1 when --iterations was given and every scrape failed.");
}

int run_top(const TopOptions& o) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  const auto interval = std::chrono::milliseconds(o.interval_ms);

  Scraper scraper(o.metrics_url);
  std::optional<Scrape> last_good;
  std::uint64_t views = 0;
  std::uint64_t failures = 0;
  std::string last_error;
  while (!g_stop && (!o.iterations || views < *o.iterations)) {
    // The time a scrape starts is the time of its values: then two scrapes
    // are at least --interval-ms apart, however long each one takes.
    const auto at = Clock::now();
    auto result = scraper.scrape();
    View view(o.metrics_url, interval);
    if (auto* samples = std::get_if<std::vector<Sample>>(&result)) {
      Scrape cur{std::move(*samples), at};
      view.show(cur, last_good);
      last_good = std::move(cur);
    } else {
      last_error = std::get<std::string>(result);
      ++failures;
      view.error(last_error);
    }
    ++views;
    if (terminal) {
      std::fputs("\033[H\033[2J", stdout);
      std::fputs(view.text().c_str(), stdout);
    } else {
      std::fputs(view.text().c_str(), stdout);
      std::fputs("\n", stdout);
    }
    std::fflush(stdout);
    if (o.iterations && views >= *o.iterations) {
      break;
    }
    sleep_until_or_stop(at + interval);
  }
  curl_global_cleanup();
  if (o.iterations && views > 0 && failures == views) {
    log::printf(LogLevel::error, "kc top: every scrape failed; last: %s\n", last_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace kc::tool
