// kc's log formatter (src/log): JSON lines that parse back to what was
// logged, whatever the bytes; registered secrets masked in both formats; the
// text format exactly the tool's old pattern.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "kc/log.hpp"
#include "log/formatter.hpp"

namespace {

using kc::LogFormat;

spdlog::details::log_msg message(std::string_view payload, spdlog::level::level_enum level = spdlog::level::info,
                                 std::string_view logger = "kc") {
  return spdlog::details::log_msg(spdlog::string_view_t(logger.data(), logger.size()), level,
                                  spdlog::string_view_t(payload.data(), payload.size()));
}

std::string format(LogFormat f, const spdlog::details::log_msg& msg) {
  auto formatter = kc::detail::make_log_formatter(f);
  spdlog::memory_buf_t buf;
  formatter->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

struct JsonLine {
  std::string ts;
  std::string level;
  std::string logger;
  std::string msg;
  std::uint64_t thread = 0;
};

// Parses one formatted JSON line: exactly one object and one trailing newline.
JsonLine parse(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n') << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << line;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  const auto err = parser.parse(line).get_object().get(obj);
  if (err != simdjson::SUCCESS) {
    ADD_FAILURE() << "not a JSON object (" << simdjson::error_message(err) << "): " << line;
    return {};
  }
  EXPECT_EQ(obj.size(), 5u) << line;
  JsonLine out;
  std::string_view s;
  EXPECT_EQ(obj["ts"].get(s), simdjson::SUCCESS) << line;
  out.ts = s;
  EXPECT_EQ(obj["level"].get(s), simdjson::SUCCESS) << line;
  out.level = s;
  EXPECT_EQ(obj["logger"].get(s), simdjson::SUCCESS) << line;
  out.logger = s;
  EXPECT_EQ(obj["msg"].get(s), simdjson::SUCCESS) << line;
  out.msg = s;
  EXPECT_EQ(obj["thread"].get(out.thread), simdjson::SUCCESS) << line;
  return out;
}

TEST(LogFormat, JsonLineHasTheFieldsAndParses) {
  const auto msg = message("consumer started", spdlog::level::warn);
  const auto line = parse(format(LogFormat::json, msg));
  EXPECT_TRUE(std::regex_match(line.ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << line.ts;
  EXPECT_EQ(line.level, "warning");
  EXPECT_EQ(line.logger, "kc");
  EXPECT_EQ(line.msg, "consumer started");
  EXPECT_EQ(line.thread, msg.thread_id);
}

TEST(LogFormat, JsonTimestampIsUtcWithMilliseconds) {
  auto msg = message("x");
  // 2024-05-01T10:34:56.789Z
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1714559696789));
  EXPECT_EQ(parse(format(LogFormat::json, msg)).ts, "2024-05-01T10:34:56.789Z");
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1714559697005));
  EXPECT_EQ(parse(format(LogFormat::json, msg)).ts, "2024-05-01T10:34:57.005Z");
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(0));
  EXPECT_EQ(parse(format(LogFormat::json, msg)).ts, "1970-01-01T00:00:00.000Z");
}

TEST(LogFormat, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string payload = std::string("say \"hi\" C:\\tmp\nline2\r\t\b\f end") + '\x01' + '\x1f' + '\x7f' +
                              std::string(1, '\0') + "after nul";
  const auto formatted = format(LogFormat::json, message(payload));
  EXPECT_EQ(parse(formatted).msg, payload);
  EXPECT_NE(formatted.find(R"(\"hi\")"), std::string::npos) << formatted;
  EXPECT_NE(formatted.find(R"(C:\\tmp\nline2\r\t\b\f)"), std::string::npos) << formatted;
  EXPECT_NE(formatted.find(R"(\u0001\u001f\u007f\u0000after nul)"), std::string::npos) << formatted;
}

TEST(LogFormat, JsonKeepsValidUtf8) {
  const std::string payload = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";  // é € 😀 U+10FFFF
  EXPECT_EQ(parse(format(LogFormat::json, message(payload))).msg, payload);
}

TEST(LogFormat, JsonReplacesInvalidUtf8ByMaximalSubparts) {
  const std::string fffd = "\xef\xbf\xbd";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\xff"
       "b",
       "a" + fffd + "b"},                               // never valid
      {"a\xc3", "a" + fffd},                            // truncated at the end
      {"\xc3(x", fffd + "(x"},                          // bad continuation
      {"\xc0\xaf", fffd + fffd},                        // overlong lead byte
      {"\xe0\x80\xaf", fffd + fffd + fffd},             // overlong 3-byte
      {"\xed\xa0\x80", fffd + fffd + fffd},             // a surrogate
      {"\xf0\x9f\x98 ok", fffd + " ok"},                // truncated 4-byte: one replacement
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},  // above U+10FFFF
      {"\x80\x80", fffd + fffd},                        // lone continuations
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(parse(format(LogFormat::json, message(in))).msg, want) << "input bytes of size " << in.size();
  }
}

TEST(LogFormat, JsonEscapesTheLoggerName) {
  EXPECT_EQ(parse(format(LogFormat::json, message("m", spdlog::level::info, "odd \"name\"\n"))).logger,
            "odd \"name\"\n");
}

TEST(LogFormat, TextIsTheToolsPatternUnchanged) {
  for (const auto level : {spdlog::level::debug, spdlog::level::info, spdlog::level::warn, spdlog::level::err}) {
    const auto msg = message("kc: assigned orders[0] orders[1]", level);
    spdlog::pattern_formatter reference("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::memory_buf_t want;
    const auto copy = msg;
    reference.format(copy, want);
    EXPECT_EQ(format(LogFormat::text, msg), std::string(want.data(), want.size()));
    // The colour range lands where the colour sink expects it (the level).
    EXPECT_EQ(msg.color_range_start, copy.color_range_start);
    EXPECT_EQ(msg.color_range_end, copy.color_range_end);
    EXPECT_LT(msg.color_range_start, msg.color_range_end);
  }
}

TEST(LogFormat, RegisteredSecretsAreMaskedInBothFormats) {
  kc::log::register_secret("kc-unit-secret-7Qx");
  const std::string payload = "sasl.password=kc-unit-secret-7Qx; again kc-unit-secret-7Qx.";
  const auto text = format(LogFormat::text, message(payload));
  EXPECT_EQ(text.find("kc-unit-secret-7Qx"), std::string::npos) << text;
  EXPECT_NE(text.find("sasl.password=[redacted]; again [redacted]."), std::string::npos) << text;
  const auto json = parse(format(LogFormat::json, message(payload)));
  EXPECT_EQ(json.msg, "sasl.password=[redacted]; again [redacted].");
}

TEST(LogFormat, RedactMasksLongestFirstAndIgnoresShortValues) {
  kc::log::register_secret("pw-core-91");
  kc::log::register_secret("user:pw-core-91-and-more");
  kc::log::register_secret("abc");  // below 4 bytes: ignored
  kc::log::register_secret("");
  EXPECT_EQ(kc::log::redact("auth user:pw-core-91-and-more, bare pw-core-91, abc"),
            "auth [redacted], bare [redacted], abc");
  EXPECT_EQ(kc::log::redact("nothing secret here"), "nothing secret here");
}

TEST(LogFormat, SecretsAreMaskedThroughALogger) {
  kc::log::register_secret("kc-through-logger-55");
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(kc::detail::make_log_formatter(LogFormat::json));
  spdlog::logger logger("kc", sink);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&logger, t] {
      for (int i = 0; i < 100; ++i) {
        logger.info("thread {} token kc-through-logger-55 line {}", t, i);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::istringstream lines(out.str());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    const auto parsed = parse(line + "\n");
    EXPECT_EQ(parsed.msg.find("kc-through-logger-55"), std::string::npos) << line;
    EXPECT_NE(parsed.msg.find("token [redacted] line"), std::string::npos) << line;
  }
  EXPECT_EQ(n, 400);
}

TEST(LogFormat, ParsesFormatAndLevelNames) {
  EXPECT_EQ(kc::log::parse_format("json"), LogFormat::json);
  EXPECT_EQ(kc::log::parse_format("text"), LogFormat::text);
  EXPECT_EQ(kc::log::parse_level("warn"), kc::LogLevel::warn);
  EXPECT_EQ(kc::log::parse_level("warning"), kc::LogLevel::warn);
  EXPECT_EQ(kc::log::parse_level("off"), kc::LogLevel::off);
  try {
    kc::log::parse_format("yaml", "--log-format");
    FAIL() << "yaml accepted";
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), kc::make_error_code(kc::errc::config_invalid_value));
    EXPECT_NE(std::string(e.what()).find("--log-format"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kc::log::parse_level("verbose"), kc::Error);
}

// print() and printf() write what the tool reports outside the log: JSON
// lines whatever the log level with the json format, the text itself with
// the text format; secrets masked in both.
TEST(LogFormat, PrintFollowsTheInstalledFormat) {
  std::fflush(stderr);
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  std::FILE* capture = std::tmpfile();
  ASSERT_NE(capture, nullptr);
  ::dup2(::fileno(capture), 2);
  kc::log::register_secret("kc-print-secret-42");
  kc::log::install(kc::LogLevel::error, LogFormat::json);  // a report is printed whatever the level
  kc::log::print(kc::LogLevel::info, "summary line 1\n  line 2 kc-print-secret-42");
  kc::log::printf(kc::LogLevel::warn, "n=%d %s\n", 7, "x");
  kc::log::install(kc::LogLevel::info, LogFormat::text);
  kc::log::print(kc::LogLevel::error, "kc: error: plain kc-print-secret-42");
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string text;
  std::rewind(capture);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, capture)) > 0;) {
    text.append(buf, n);
  }
  std::fclose(capture);
  std::istringstream in(text);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 4u) << text;
  EXPECT_EQ(parse(lines[0] + "\n").msg, "summary line 1");
  EXPECT_EQ(parse(lines[1] + "\n").msg, "  line 2 [redacted]");
  EXPECT_EQ(parse(lines[1] + "\n").level, "info");
  EXPECT_EQ(parse(lines[2] + "\n").msg, "n=7 x");
  EXPECT_EQ(parse(lines[2] + "\n").level, "warning");
  EXPECT_EQ(lines[3], "kc: error: plain [redacted]");
}

TEST(LogFormat, InstallSetsTheDefaultLogger) {
  kc::log::install(kc::LogLevel::warn, LogFormat::json);
  EXPECT_EQ(kc::log::installed_format(), LogFormat::json);
  EXPECT_EQ(spdlog::default_logger()->name(), "kc");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  kc::log::install(kc::LogLevel::info, LogFormat::text);
  EXPECT_EQ(kc::log::installed_format(), LogFormat::text);
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
}

}  // namespace
