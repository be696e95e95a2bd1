// `kc top`: a live view of a running kc consumer from its /metrics endpoint.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace kc::tool {

struct TopOptions {
  std::string metrics_url;                  ///< e.g. http://127.0.0.1:9464/metrics
  std::uint64_t interval_ms = 1000;         ///< time between scrapes
  std::optional<std::uint64_t> iterations;  ///< stop after this many views (default: until Ctrl-C)
};

/// Adds `top` to `app`; the parsed flags land in `o`, which must outlive the
/// parse and run_top().
void add_top_command(CLI::App& app, TopOptions& o);

/// Scrapes --metrics-url every --interval-ms (each scrape times out after
/// 2 s) and prints a view: rates, totals, gauges, latency percentiles and a
/// per-partition table. On a terminal it redraws in place; otherwise each
/// view is followed by a blank line. A failed scrape is shown in the view
/// and retried at the next interval. Runs until SIGINT/SIGTERM (it installs
/// handlers for both) or --iterations views; call from the main thread.
/// Returns 0, or 1 when --iterations was given and every scrape failed.
/// Never throws for an unreachable or broken endpoint.
int run_top(const TopOptions& o);

}  // namespace kc::tool
