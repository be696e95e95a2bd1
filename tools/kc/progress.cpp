#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace kc::tool {

namespace {

using Clock = std::chrono::steady_clock;

// At most 4 redraws a second: readable, and cheap next to the work.
constexpr auto kRedrawEvery = std::chrono::milliseconds(250);

std::string duration_text(double seconds) {
  const auto s = static_cast<std::uint64_t>(seconds + 0.5);
  if (s >= 3600) {
    return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  }
  if (s >= 60) {
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  }
  return fmt::format("{}s", s);
}

}  // namespace

Progress::Progress(std::string label, std::optional<std::uint64_t> total, std::optional<bool> enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled.value_or(isatty(STDERR_FILENO) != 0)),
      start_(Clock::now()),
      last_(start_) {}

Progress::~Progress() {
  clear();
}

bool Progress::due() const noexcept {
  return enabled_ && Clock::now() - last_ >= kRedrawEvery;
}

void Progress::draw(std::uint64_t done, std::string_view detail) {
  const auto now = Clock::now();
  last_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  std::string line = label_ + ": ";
  if (total_) {
    const double pct =
        *total_ > 0 ? 100.0 * static_cast<double>(std::min(done, *total_)) / static_cast<double>(*total_) : 100.0;
    line += fmt::format("{}/{} ({:.0f}%), {:.0f}/s", done, *total_, pct, rate);
    if (done < *total_) {
      line += rate > 0 ? ", ETA " + duration_text(static_cast<double>(*total_ - done) / rate) : ", ETA ?";
    }
  } else {
    line += fmt::format("{}, {:.0f}/s", done, rate);
  }
  if (!detail.empty()) {
    line += ", ";
    line += detail;
  }
  // \033[K erases what a longer previous line left.
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Progress::clear() noexcept {
  if (shown_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }
}

double Progress::elapsed() const noexcept {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

}  // namespace kc::tool
