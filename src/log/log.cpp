// kc's logger: formats, the secret registry, install() and print().
//
// Why a formatter and not a wrapper around the logging calls: the library,
// librdkafka's log callback (src/rdkafka/log.hpp) and the tool all log
// through spdlog's default logger with ordinary spdlog calls; a formatter on
// its sink sees every one of them, so no call site can forget to mask or to
// escape.
//
// Why the message is masked before it is formatted (and not the formatted
// line): the colour sink reads the colour range the pattern formatter sets on
// the message, as offsets into the line; masking after formatting would move
// them. Only the message can carry a secret (time, level, logger name and
// thread id cannot).
//
// Why the secrets live in a leaked singleton: log lines may be written while
// static objects are destroyed at exit (a consumer owned by a static), and
// the registry must outlive them.
#include "kc/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "kc/error.hpp"
#include "log/formatter.hpp"
#include "text/text.hpp"

namespace kc {
namespace {

constexpr std::string_view kRedacted = "[redacted]";
constexpr std::size_t kMinSecretSize = 4;

struct Secrets {
  std::shared_mutex mu;
  std::vector<std::string> values;  // longest first, no duplicates
  std::atomic<bool> any{false};     // lets redact() skip the lock when there are none
};

Secrets& secrets() {
  static auto* s = new Secrets;  // leaked on purpose, see the top of the file
  return *s;
}

std::atomic<LogFormat> g_format{LogFormat::text};

spdlog::level::level_enum to_spdlog(LogLevel l) noexcept {
  switch (l) {
    case LogLevel::trace: return spdlog::level::trace;
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
    case LogLevel::critical: return spdlog::level::critical;
    case LogLevel::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

void append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

// "2024-05-01T10:34:56.789Z". The calendar part is cached per second: the
// formatter is used under its sink's lock, one thread at a time.
class UtcClock {
 public:
  void append_iso(spdlog::log_clock::time_point tp, spdlog::memory_buf_t& out) {
    const auto since = tp.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
    auto whole = static_cast<std::time_t>(secs.count());
    if (ms < 0) {  // before 1970: the millisecond part counts forward from the second below
      ms += 1000;
      whole -= 1;
    }
    if (whole != cached_second_ || cached_.empty()) {
      std::tm tm{};
      gmtime_r(&whole, &tm);
      char buf[32];
      const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
      cached_.assign(buf, n);
      cached_second_ = whole;
    }
    append(out, cached_);
    const char frac[] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                         static_cast<char>('0' + ms % 10), 'Z'};
    out.append(frac, frac + sizeof frac);
  }

 private:
  std::time_t cached_second_ = 0;
  std::string cached_;
};

class KcFormatter final : public spdlog::formatter {
 public:
  explicit KcFormatter(LogFormat format)
      : format_(format), text_(std::make_unique<spdlog::pattern_formatter>(detail::kTextLogPattern)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string masked;
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (secrets().any.load(std::memory_order_acquire)) {
      masked = log::redact(payload);
      payload = masked;
    }
    if (format_ == LogFormat::text) {
      spdlog::details::log_msg copy(msg);
      copy.payload = spdlog::string_view_t(payload.data(), payload.size());
      text_->format(copy, dest);
      msg.color_range_start = copy.color_range_start;  // what the colour sink reads
      msg.color_range_end = copy.color_range_end;
      return;
    }
    append(dest, R"({"ts":")");
    clock_.append_iso(msg.time, dest);
    append(dest, R"(","level":")");
    const auto& level = spdlog::level::to_string_view(msg.level);
    append(dest, std::string_view(level.data(), level.size()));
    append(dest, R"(","logger":")");
    detail::append_json_escaped_lossy(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    append(dest, R"(","msg":")");
    detail::append_json_escaped_lossy(dest, payload);
    append(dest, R"(","thread":)");
    append(dest, std::to_string(msg.thread_id));
    append(dest, "}\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<KcFormatter>(format_); }

 private:
  LogFormat format_;
  std::unique_ptr<spdlog::pattern_formatter> text_;
  UtcClock clock_;
};

}  // namespace

namespace detail {

std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format) {
  return std::make_unique<KcFormatter>(format);
}

}  // namespace detail

namespace log {

LogFormat parse_format(std::string_view name, std::string_view what) {
  if (name == "text") {
    return LogFormat::text;
  }
  if (name == "json") {
    return LogFormat::json;
  }
  throw Error(errc::config_invalid_value,
              std::string(what) + ": expected text or json, got '" + std::string(name) + "'");
}

LogLevel parse_level(std::string_view name, std::string_view what) {
  static constexpr std::pair<std::string_view, LogLevel> kNames[] = {
      {"trace", LogLevel::trace},       {"debug", LogLevel::debug},  {"info", LogLevel::info},
      {"warn", LogLevel::warn},         {"warning", LogLevel::warn}, {"error", LogLevel::error},
      {"critical", LogLevel::critical}, {"off", LogLevel::off}};
  for (const auto& [n, l] : kNames) {
    if (n == name) {
      return l;
    }
  }
  throw Error(errc::config_invalid_value, std::string(what) +
                                              ": expected trace, debug, info, warn, error, critical or off, got '" +
                                              std::string(name) + "'");
}

void install(LogLevel level, LogFormat format) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (format == LogFormat::text) {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();  // colour only on a terminal
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  sink->set_formatter(detail::make_log_formatter(format));
  auto logger = std::make_shared<spdlog::logger>("kc", std::move(sink));
  logger->set_level(to_spdlog(level));
  spdlog::set_default_logger(std::move(logger));
  g_format.store(format, std::memory_order_release);
}

LogFormat installed_format() noexcept {
  return g_format.load(std::memory_order_acquire);
}

void register_secret(std::string_view value) {
  if (value.size() < kMinSecretSize) {
    return;
  }
  auto& s = secrets();
  std::unique_lock lock(s.mu);
  if (std::find(s.values.begin(), s.values.end(), value) != s.values.end()) {
    return;
  }
  // Longest first: a secret that contains another is masked whole.
  const auto at =
      std::find_if(s.values.begin(), s.values.end(), [&](const std::string& v) { return v.size() < value.size(); });
  s.values.insert(at, std::string(value));
  s.any.store(true, std::memory_order_release);
}

std::string redact(std::string_view text) {
  std::string out(text);
  auto& s = secrets();
  if (!s.any.load(std::memory_order_acquire)) {
    return out;
  }
  std::shared_lock lock(s.mu);
  for (const auto& secret : s.values) {
    for (auto pos = out.find(secret); pos != std::string::npos; pos = out.find(secret, pos + kRedacted.size())) {
      out.replace(pos, secret.size(), kRedacted);
    }
  }
  return out;
}

void print(LogLevel level, std::string_view text) noexcept {
  try {
    auto* logger = spdlog::default_logger_raw();
    if (installed_format() == LogFormat::json && logger != nullptr) {
      // One JSON line per line of text; the formatter masks and escapes.
      // Straight to the sinks: a report is printed whatever the log level,
      // as in the text format.
      std::size_t start = 0;
      while (start < text.size()) {
        auto nl = text.find('\n', start);
        if (nl == std::string_view::npos) {
          nl = text.size();
        }
        const auto line = text.substr(start, nl - start);
        if (!line.empty()) {
          const spdlog::details::log_msg msg(logger->name(), to_spdlog(level),
                                             spdlog::string_view_t(line.data(), line.size()));
          for (const auto& sink : logger->sinks()) {
            sink->log(msg);
          }
        }
        start = nl + 1;
      }
      logger->flush();
      return;
    }
    if (logger != nullptr) {
      logger->flush();  // earlier log lines first
    }
    std::string out = redact(text);
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stderr);
    std::fflush(stderr);
  } catch (...) {
  }
}

void printf(LogLevel level, const char* format, ...) noexcept {
  std::va_list args;
  va_start(args, format);
  std::va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text;
  bool ok = n >= 0;
  if (ok) {
    try {
      text.resize(static_cast<std::size_t>(n) + 1);
    } catch (...) {
      ok = false;
    }
  }
  if (ok) {
    std::vsnprintf(text.data(), text.size(), format, again);
  }
  va_end(again);
  if (!ok) {
    return;
  }
  text.resize(static_cast<std::size_t>(n));
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  print(level, text);
}

}  // namespace log
}  // namespace kc
