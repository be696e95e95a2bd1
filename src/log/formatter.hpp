// The spdlog formatter of kc's logger (kc/log.hpp). Private to kc; the
// tests use it to format a message without a sink.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string_view>

#include "kc/log.hpp"

namespace kc::detail {

/// The text format's spdlog pattern: what the kc tool always printed.
inline constexpr const char* kTextLogPattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v";

/// A formatter that masks registered secrets in the message, then formats it
/// as text (kTextLogPattern) or as one JSON object and a newline. Like every
/// spdlog formatter it is used under its sink's lock (not thread-safe itself).
std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format);

}  // namespace kc::detail
