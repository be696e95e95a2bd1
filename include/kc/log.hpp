// kc's logging: human-readable lines by default, JSON lines on request, and
// secrets masked in every line as a defence in depth.
//
// kc logs through spdlog's default logger (the library, librdkafka's log
// callback and the kc tool). install() replaces that logger with one writing
// to stderr in the chosen format. Whatever the format, each message has
// every registered secret replaced by "[redacted]" before it is written:
// ConsumerConfig::set() registers the value of every secret key
// (ConsumerConfig::is_secret_key()), the Schema Registry client registers its
// credentials, and an application may register its own.
#pragma once

#include <string>
#include <string_view>

namespace kc {

/// How log lines look.
enum class LogFormat {
  /// `2024-05-01T12:34:56.789 info kc: message` (local time; the level in
  /// colour when stderr is a terminal).
  text,
  /// One JSON object per line: {"ts": "2024-05-01T10:34:56.789Z" (UTC),
  /// "level": "info", "logger": "kc", "msg": "...", "thread": 12345}; the
  /// level names are the text format's (trace, debug, info, warning, error,
  /// critical).
  /// Strings are escaped (quotes, backslashes, control characters); bytes
  /// that are not valid UTF-8 become U+FFFD.
  json,
};

/// Severity, lowest first; `off` logs nothing.
enum class LogLevel { trace, debug, info, warn, error, critical, off };

namespace log {

/// "text" or "json". Throws kc::Error (errc::config_invalid_value) naming
/// `what` (e.g. "--log-format") otherwise. Does not block.
LogFormat parse_format(std::string_view name, std::string_view what = "log format");

/// "trace", "debug", "info", "warn" (or "warning"), "error", "critical" or
/// "off". Throws kc::Error (errc::config_invalid_value) naming `what`
/// otherwise. Does not block.
LogLevel parse_level(std::string_view name, std::string_view what = "log level");

/// Makes spdlog's default logger (named "kc") write to stderr at `level` and
/// above, in `format`, with secrets masked; it replaces any default logger
/// set before. Call it early, before consumers are created, from one thread
/// (spdlog's default logger must not be swapped while other threads log).
/// Each line is written and flushed under the sink's mutex. Throws
/// std::bad_alloc only.
void install(LogLevel level, LogFormat format = LogFormat::text);

/// The format given to the last install() (text if never called). Any thread.
LogFormat installed_format() noexcept;

/// Adds `value` to the process-wide set of secrets that every log line
/// written through install()'s logger, redact() and print() masks. Values
/// shorter than 4 bytes are ignored (they would mask ordinary words); an
/// empty value is a no-op. Secrets are kept until the process ends (a copy;
/// the caller keeps ownership of `value`). Thread-safe; takes a lock
/// briefly. Throws std::bad_alloc only.
void register_secret(std::string_view value);

/// `text` with every registered secret replaced by "[redacted]" (longest
/// secrets first). Thread-safe (a shared lock while it scans); returns a
/// copy; throws std::bad_alloc only.
std::string redact(std::string_view text);

/// For what a command-line tool reports on stderr outside the log (errors,
/// summaries): with the text format (or before install()), `text` and a
/// newline, masked, written with one fwrite after flushing the default
/// logger; with the json format, each line of `text` as a JSON log line at
/// `level`. Thread-safe; blocks on the stderr write only. Never throws.
void print(LogLevel level, std::string_view text) noexcept;

/// print() with printf formatting (one trailing newline of the result is
/// dropped: print() adds its own), so that a tool's
/// `std::fprintf(stderr, ...)` becomes `log::printf(LogLevel::info, ...)`.
/// Thread-safe; never throws.
void printf(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace log
}  // namespace kc
