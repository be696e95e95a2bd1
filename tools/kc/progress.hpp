// A one-line progress report for the kc tool's long commands (kc produce,
// kc dlq redrive, kc dlq inspect).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace kc::tool {

/// "<label>: <done>/<total> (<pct>%), <rate>/s, ETA <eta>[, <detail>]" on
/// stderr, redrawn in place (\r) at most 4 times a second. Only when enabled
/// (by default: stderr is a terminal); otherwise every call does nothing, so
/// output captured by scripts and tests has no progress in it.
/// Without a total: "<label>: <done>, <rate>/s[, <detail>]".
/// Threads: one thread. Blocks only on the stderr write.
class Progress {
 public:
  /// `enabled`: nullopt means isatty(STDERR_FILENO).
  explicit Progress(std::string label, std::optional<std::uint64_t> total = std::nullopt,
                    std::optional<bool> enabled = std::nullopt);
  /// Erases the line if one is shown.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Whether anything is shown at all (see the class comment).
  bool enabled() const noexcept { return enabled_; }
  void set_total(std::optional<std::uint64_t> total) noexcept { total_ = total; }

  /// True when enabled and the last redraw is at least 250 ms old: the caller
  /// may then gather what show() needs (cheap to call per record).
  bool due() const noexcept;

  /// Redraws with `done` records when due(); the detail (a fmt format and
  /// its arguments) is formatted only then.
  void update(std::uint64_t done) {
    if (due()) {
      draw(done, {});
    }
  }
  template <typename... Args>
  void update(std::uint64_t done, fmt::format_string<Args...> detail, Args&&... args) {
    if (due()) {
      draw(done, fmt::format(detail, std::forward<Args>(args)...));
    }
  }

  /// Erases the line (before other output to stderr, and at the end).
  void clear() noexcept;

  /// Seconds since construction.
  double elapsed() const noexcept;

 private:
  void draw(std::uint64_t done, std::string_view detail);

  std::string label_;
  std::optional<std::uint64_t> total_;
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;  // of the last redraw; the first comes 250 ms after the start
};

}  // namespace kc::tool
