// `kc dlq inspect` and `kc dlq redrive` against the real broker.
//
// The dead letters are written by the test itself, with kc's text headers
// and Spring's binary ones (big-endian partition, offset and timestamp), so
// the tool is checked against the header formats rather than against kc's
// own dead-letter writer. Topics are written and read back with librdkafka
// directly, never through kc.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/common.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/records.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- dead letters

std::string be32(std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  return {static_cast<char>(u >> 24), static_cast<char>(u >> 16 & 0xff), static_cast<char>(u >> 8 & 0xff),
          static_cast<char>(u & 0xff)};
}

std::string be64(std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(u >> (56 - 8 * i) & 0xff);
  }
  return out;
}

struct Source {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp = 1700000000123;
  std::string group = "billing";
  std::string error_type = "kc::DecodeError";
  std::string error_message = "bad JSON at byte 3";
  int attempts = 1;
};

// kc's metadata headers, all text (see include/kc/deadletter.hpp).
std::vector<Header> kc_headers(const Source& s) {
  return {{"kc.dlq.source.topic", s.topic},
          {"kc.dlq.source.partition", std::to_string(s.partition)},
          {"kc.dlq.source.offset", std::to_string(s.offset)},
          {"kc.dlq.source.timestamp", std::to_string(s.timestamp)},
          {"kc.dlq.group", s.group},
          {"kc.dlq.error.type", s.error_type},
          {"kc.dlq.error.message", s.error_message},
          {"kc.dlq.attempts", std::to_string(s.attempts)},
          {"kc.dlq.failed.at", "2026-01-02T03:04:05.678Z"}};
}

// Spring Kafka's DeadLetterPublishingRecoverer headers: binary ints.
std::vector<Header> spring_headers(const Source& s) {
  return {{"kafka_dlt-original-topic", s.topic},
          {"kafka_dlt-original-partition", be32(s.partition)},
          {"kafka_dlt-original-offset", be64(s.offset)},
          {"kafka_dlt-original-timestamp", be64(s.timestamp)},
          {"kafka_dlt-original-timestamp-type", "CreateTime"},
          {"kafka_dlt-original-consumer-group", s.group},
          {"kafka_dlt-exception-fqcn", s.error_type},
          {"kafka_dlt-exception-message", s.error_message},
          {"kafka_dlt-exception-stacktrace", "java.lang.IllegalStateException: boom\n\tat com.example.Foo.bar"}};
}

// The dead letter of `original`: its key, value and headers, plus `meta`.
Record dead_letter(const Record& original, const std::vector<Header>& meta, std::int32_t dlq_partition) {
  Record r = original;
  r.headers.insert(r.headers.end(), meta.begin(), meta.end());
  r.partition = dlq_partition;
  return r;
}

bool is_dead_letter_header(const std::string& name) {
  return name.rfind("kc.dlq.", 0) == 0 || name.rfind("kafka_dlt-", 0) == 0 || name.rfind("kc.retry.", 0) == 0;
}

// ---------------------------------------------------------------- running the tool

// The kc tool, run to the end.
ToolRun run_kc(const TempDir& dir, const std::vector<std::string>& args, std::chrono::seconds timeout = 90s) {
  return run_tool(dir, args, timeout);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    out.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    at = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

// ---------------------------------------------------------------- JSON lines

struct JsonLine {
  simdjson::dom::element e;

  bool is_null(const char* k) const { return e[k].is_null(); }
  std::string str(const char* k) const {
    std::string_view v;
    if (e[k].get_string().get(v) != simdjson::SUCCESS) {
      throw Failure(std::string("JSON field ") + k + " is not a string: " + simdjson::to_string(e));
    }
    return std::string(v);
  }
  std::int64_t num(const char* k) const {
    std::int64_t v = 0;
    if (e[k].get_int64().get(v) != simdjson::SUCCESS) {
      throw Failure(std::string("JSON field ") + k + " is not an integer: " + simdjson::to_string(e));
    }
    return v;
  }
};

// simdjson's dom::parser reuses its document; keep one parser per line.
struct ParsedLines {
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers;
  std::vector<JsonLine> lines;

  explicit ParsedLines(const std::string& text) {
    for (const auto& l : lines_of(text)) {
      auto p = std::make_unique<simdjson::dom::parser>();
      simdjson::dom::element el;
      if (p->parse(l).get(el) != simdjson::SUCCESS || !el.is_object()) {
        throw Failure("not a JSON object line: " + l);
      }
      lines.push_back({el});
      parsers.push_back(std::move(p));
    }
  }
  // The line whose `field` (an integer) is `v`.
  const JsonLine& by(const char* field, std::int64_t v) const {
    for (const auto& l : lines) {
      std::int64_t got = 0;
      if (l.e[field].get_int64().get(got) == simdjson::SUCCESS && got == v) {
        return l;
      }
    }
    throw Failure(std::string("no JSON line with ") + field + "=" + std::to_string(v));
  }
};

// The original headers of a JSON line: name, value and encoding.
std::vector<std::tuple<std::string, std::optional<std::string>, std::string>> json_headers(const JsonLine& l) {
  std::vector<std::tuple<std::string, std::optional<std::string>, std::string>> out;
  simdjson::dom::array arr;
  if (l.e["headers"].get_array().get(arr) != simdjson::SUCCESS) {
    throw Failure("headers is not an array");
  }
  for (auto h : arr) {
    JsonLine hl{h};
    if (hl.is_null("value")) {
      out.emplace_back(hl.str("name"), std::nullopt, "null");
    } else {
      out.emplace_back(hl.str("name"), hl.str("value"), hl.str("value_encoding"));
    }
  }
  return out;
}

// ---------------------------------------------------------------- inspect

// Three dead letters: kc's headers with a text payload; kc's with a payload
// that is not UTF-8, a null key and a null header value; Spring's with binary
// ints and a key that is not UTF-8.
TEST(DlqInspect, ListsKcAndSpringDeadLettersWithTheirMetadata) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-inspect");
  create_topic(bs, dlq, 2);

  Record o0{"order-1", R"({"id":1})", {{"trace-id", "abc"}, {"bin", std::string("\x00\xff\x01", 3)}}};
  Record o1{std::nullopt, std::string("\xff\xfe\x00\x01\x80", 5), {{"h-null", std::nullopt}}};
  Record o2{std::string("\xc3\x28", 2), "hello spring", {{"spring_json_header_types", R"({"x":"java.lang.String"})"}}};
  Source s0{"orders", 3, 1234};
  Source s1{"orders", 1, 77, 1700000000999, "billing", "std::runtime_error", "timeout talking to the database", 3};
  Source s2{"payments",
            7,
            123456789012,
            1700000000456,
            "spring-app",
            "org.springframework.kafka.listener.ListenerExecutionFailedException",
            "Listener failed; nested exception is java.lang.IllegalStateException: boom"};
  produce_records(
      bs, dlq,
      {dead_letter(o0, kc_headers(s0), 0), dead_letter(o1, kc_headers(s1), 0), dead_letter(o2, spring_headers(s2), 1)});
  TempDir dir("kc-dlq-inspect");

  // --json: one object per line, every field.
  auto r = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs, "--json"});
  ASSERT_TRUE(r.status.ok()) << describe(r);
  ParsedLines json(r.out);
  ASSERT_EQ(json.lines.size(), 3u) << r.out;
  EXPECT_NE(r.err.find("shown 3 / 3 read"), std::string::npos) << r.err;

  const auto& j0 = json.by("source_offset", 1234);
  EXPECT_EQ(j0.str("topic"), dlq);
  EXPECT_EQ(j0.num("partition"), 0);
  EXPECT_EQ(j0.num("offset"), 0);
  EXPECT_EQ(j0.str("headers_format"), "kc");
  EXPECT_EQ(j0.str("source_topic"), "orders");
  EXPECT_EQ(j0.num("source_partition"), 3);
  EXPECT_EQ(j0.num("source_timestamp"), 1700000000123);
  EXPECT_EQ(j0.str("group"), "billing");
  EXPECT_EQ(j0.str("error_type"), "kc::DecodeError");
  EXPECT_EQ(j0.str("error_message"), "bad JSON at byte 3");
  EXPECT_EQ(j0.num("attempts"), 1);
  EXPECT_EQ(j0.str("failed_at"), "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j0.str("key"), "order-1");
  EXPECT_EQ(j0.str("key_encoding"), "text");
  EXPECT_EQ(j0.str("value"), R"({"id":1})");
  EXPECT_EQ(j0.str("value_encoding"), "text");
  const auto h0 = json_headers(j0);
  ASSERT_EQ(h0.size(), 2u) << "only the original headers are listed";
  EXPECT_EQ(h0[0], std::make_tuple(std::string("trace-id"), std::optional<std::string>("abc"), std::string("text")));
  EXPECT_EQ(h0[1], std::make_tuple(std::string("bin"), std::optional<std::string>("00ff01"), std::string("hex")));

  const auto& j1 = json.by("source_offset", 77);
  EXPECT_EQ(j1.num("offset"), 1);
  EXPECT_TRUE(j1.is_null("key"));
  EXPECT_TRUE(j1.is_null("key_encoding"));
  EXPECT_EQ(j1.str("value"), "fffe000180");
  EXPECT_EQ(j1.str("value_encoding"), "hex");
  EXPECT_EQ(j1.str("error_type"), "std::runtime_error");
  EXPECT_EQ(j1.num("attempts"), 3);
  const auto h1 = json_headers(j1);
  ASSERT_EQ(h1.size(), 1u);
  EXPECT_EQ(std::get<0>(h1[0]), "h-null");
  EXPECT_FALSE(std::get<1>(h1[0]).has_value());

  const auto& j2 = json.by("source_offset", 123456789012);
  EXPECT_EQ(j2.num("partition"), 1);
  EXPECT_EQ(j2.str("headers_format"), "spring");
  EXPECT_EQ(j2.str("source_topic"), "payments");
  EXPECT_EQ(j2.num("source_partition"), 7);
  EXPECT_EQ(j2.num("source_timestamp"), 1700000000456);
  EXPECT_EQ(j2.str("group"), "spring-app");
  EXPECT_EQ(j2.str("error_type"), "org.springframework.kafka.listener.ListenerExecutionFailedException");
  EXPECT_EQ(j2.str("error_message"), s2.error_message);
  EXPECT_TRUE(j2.is_null("attempts"));
  EXPECT_TRUE(j2.is_null("failed_at"));
  EXPECT_EQ(j2.str("key"), "c328");
  EXPECT_EQ(j2.str("key_encoding"), "hex");
  EXPECT_EQ(j2.str("value"), "hello spring");
  const auto h2 = json_headers(j2);
  ASSERT_EQ(h2.size(), 1u) << "kafka_dlt-* headers (stack trace included) are metadata, not original headers";
  EXPECT_EQ(std::get<0>(h2[0]), "spring_json_header_types");

  // Human-readable.
  r = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs});
  ASSERT_TRUE(r.status.ok()) << describe(r);
  for (const std::string want :
       {"orders[3]@1234", "orders[1]@77", "payments[7]@123456789012", "2023-11-14T22:13:20.123Z", "hex:fffe000180",
        "key: null", "hex:c328", "kc::DecodeError: bad JSON at byte 3", "bin=hex:00ff01", "trace-id=\"abc\"",
        "(spring headers)", "attempts: 3"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << "missing '" << want << "' in:\n" << r.out;
  }

  // Filters.
  auto count = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"dlq", "inspect", "--topic", dlq, "-b", bs, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto run = run_kc(dir, args);
    if (!run.status.ok()) {
      throw Failure("inspect failed" + describe(run));
    }
    ParsedLines pl(run.out);
    std::set<std::int64_t> offsets;
    for (const auto& l : pl.lines) {
      offsets.insert(l.num("source_offset"));
    }
    return offsets;
  };
  EXPECT_EQ(count({"--error-type", "kc::DecodeError"}), (std::set<std::int64_t>{1234}));
  EXPECT_EQ(count({"--error-type", "DecodeError"}), (std::set<std::int64_t>{1234}));
  EXPECT_EQ(count({"--error-type", "ListenerExecutionFailedException"}), (std::set<std::int64_t>{123456789012}));
  EXPECT_EQ(count({"--error-type", "NoSuchError"}), (std::set<std::int64_t>{}));
  EXPECT_EQ(count({"--source-partition", "7"}), (std::set<std::int64_t>{123456789012}));
  EXPECT_EQ(count({"--source-partition", "1"}), (std::set<std::int64_t>{77}));
  EXPECT_EQ(count({"--source-partition", "1", "--error-type", "DecodeError"}), (std::set<std::int64_t>{}));
  EXPECT_EQ(count({"--max", "2"}).size(), 2u);

  r = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs, "--error-type", "runtime"});
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("shown 1 / 3 read"), std::string::npos) << r.err;

  // A missing topic is a clear error, not a wait.
  r = run_kc(dir, {"dlq", "inspect", "--topic", unique_name("kc-it-no-such-topic"), "-b", bs});
  EXPECT_EQ(r.status.code, 2) << describe(r);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

// Metadata a peer wrote is any bytes: an error message and a header name
// that are not UTF-8 (a Java client's default charset, a truncated string)
// must still give JSON lines that parse. The reader shows such an error
// message as hex; a header name keeps its valid part, each bad sequence as
// U+FFFD.
TEST(DlqInspect, JsonLinesParseWhateverBytesTheMetadataHolds) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-bytes");
  create_topic(bs, dlq, 1);
  Source s{"orders", 0, 5};
  s.error_message = std::string("caf\xe9 \xff\x7f", 7);  // Latin-1 e-acute, a stray byte, DEL
  Record o{"k", "v", {{std::string("h\xc3", 2), "x"}}};  // a header name cut inside a UTF-8 sequence
  produce_records(bs, dlq, {dead_letter(o, kc_headers(s), 0)});
  TempDir dir("kc-dlq-inspect-bytes");
  const auto r = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs, "--json"});
  ASSERT_TRUE(r.status.ok()) << describe(r);
  std::unique_ptr<ParsedLines> json;
  ASSERT_NO_THROW(json = std::make_unique<ParsedLines>(r.out)) << r.out;
  ASSERT_EQ(json->lines.size(), 1u) << r.out;
  const auto& l = json->lines[0];
  EXPECT_EQ(l.str("error_message"), "hex:636166e920ff7f");
  const auto headers = json_headers(l);
  ASSERT_FALSE(headers.empty());
  EXPECT_EQ(std::get<0>(headers[0]), "h\xef\xbf\xbd");
}

// An empty dead-letter topic: nothing to show, exit at once.
TEST(DlqInspect, AnEmptyTopicShowsNothing) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-empty");
  create_topic(bs, dlq, 3);
  TempDir dir("kc-dlq-inspect-empty");
  const auto r = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs, "--json"}, 30s);
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("shown 0 / 0 read"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------- redrive

std::vector<std::string> redrive_args(const std::string& bs, const std::string& from, const std::string& group,
                                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"dlq",     "redrive", "--from",         from,  "-b", bs,
                                   "--group", group,     "--idle-exit-ms", "2000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Sum of offsets or watermarks; a partition without a committed offset (-1) counts 0.
std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0},
                         [](std::int64_t a, std::int64_t b) { return a + std::max<std::int64_t>(b, 0); });
}

// What a redriven copy of `original` must carry: the original headers byte
// for byte (an old kc.redrive.count replaced), then kc.redrive.count.
std::vector<Header> expected_headers(const Record& original, int count) {
  std::vector<Header> out;
  for (const auto& h : original.headers) {
    if (h.first != "kc.redrive.count") {
      out.push_back(h);
    }
  }
  out.emplace_back("kc.redrive.count", std::to_string(count));
  return out;
}

// Redriven records by their "id" header; a duplicate id fails.
std::map<std::string, Record> by_id(const std::vector<Record>& records) {
  std::map<std::string, Record> out;
  for (const auto& r : records) {
    const auto id = r.header("id");
    if (!id) {
      throw Failure("a redriven record has no id header");
    }
    if (!out.emplace(*id, r).second) {
      throw Failure("record id " + *id + " was redriven twice");
    }
  }
  return out;
}

TEST(DlqRedrive, CopiesKeyValueAndOriginalHeadersByteForByteWithoutDeadLetterHeaders) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-redrive");
  const auto target = unique_name("kc-it-dlq-target");
  const auto target2 = unique_name("kc-it-dlq-target2");
  create_topic(bs, dlq, 2);
  create_topic(bs, target, 2);
  create_topic(bs, target2, 2);

  std::mt19937 rng(test_seed());
  std::string big(100'000, '\0');
  for (auto& c : big) {
    c = static_cast<char>(rng() & 0xff);
  }
  // clang-format off
  const std::vector<Record> originals = {
      {"k0", "v0 text", {{"id", "0"}, {"trace", "abc"}}},
      {std::nullopt, std::string("\xff\x00\xfe binary", 10),
       {{"id", "1"}, {"bin", std::string("\x00\x01\xff", 3)}, {"dup", "a"}, {"dup", "b"}}},
      {"", "", {{"id", "2"}, {"empty", ""}}},
      {"k3", std::nullopt, {{"id", "3"}, {"kc.redrive.count", "1"}}},  // a tombstone redriven once before
      {std::string("\x80\x81", 2), big, {{"id", "4"}}},
  };
  // clang-format on
  std::vector<Record> dead = {
      dead_letter(originals[0], kc_headers({"orders", 0, 10}), 0),
      dead_letter(originals[1], kc_headers({"orders", 1, 11, 1, "g", "std::runtime_error", "boom", 3}), 1),
      dead_letter(originals[2], kc_headers({"orders", 5, 12}), 0),
      dead_letter(originals[3], spring_headers({"orders", 1, 13, 1, "g", "java.lang.IllegalStateException", "x"}), 1),
      dead_letter(originals[4], spring_headers({"orders", 0, 14, 1, "g", "java.lang.IllegalStateException", "y"}), 0),
  };
  // One with both header sets.
  for (const auto& h : spring_headers({"orders", 5, 12})) {
    dead[2].headers.push_back(h);
  }
  produce_records(bs, dlq, dead);
  TempDir dir("kc-dlq-redrive");

  const auto group = unique_name("kc-it-dlq-redrive-g");
  auto r = run_kc(dir, redrive_args(bs, dlq, group, {"--to", target}));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("kc dlq redrive: 5 records from " + dlq + " to " + target + ", acknowledged 5, failed 0"),
            std::string::npos)
      << r.err;

  const auto got = by_id(read_topic(bs, target));
  ASSERT_EQ(got.size(), originals.size());
  for (std::size_t i = 0; i < originals.size(); ++i) {
    const auto& o = originals[i];
    const auto it = got.find(std::to_string(i));
    ASSERT_NE(it, got.end()) << "record " << i << " was not redriven";
    const auto& c = it->second;
    EXPECT_EQ(c.key, o.key) << "record " << i;
    EXPECT_EQ(c.value, o.value) << "record " << i;
    EXPECT_EQ(c.headers, expected_headers(o, i == 3 ? 2 : 1)) << "record " << i;
    for (const auto& [n, v] : c.headers) {
      EXPECT_FALSE(is_dead_letter_header(n)) << "record " << i << " still has " << n;
    }
  }
  // Back to the source partition when the target has it.
  EXPECT_EQ(got.at("0").partition, 0);
  EXPECT_EQ(got.at("1").partition, 1);
  EXPECT_EQ(got.at("3").partition, 1);
  EXPECT_EQ(got.at("4").partition, 0);

  // Everything was committed: a second run finds nothing to do.
  EXPECT_EQ(committed_offsets(bs, group, dlq, 2), high_watermarks(bs, dlq, 2));
  r = run_kc(dir, redrive_args(bs, dlq, group, {"--to", target}));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("kc dlq redrive: 0 records"), std::string::npos) << r.err;
  EXPECT_EQ(read_topic(bs, target).size(), originals.size());

  // --error-type: only matching records; the others are skipped.
  const auto group2 = unique_name("kc-it-dlq-redrive-g2");
  r = run_kc(dir, redrive_args(bs, dlq, group2, {"--to", target2, "--error-type", "DecodeError"}));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("kc dlq redrive: 2 records"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("skipped 3"), std::string::npos) << r.err;
  const auto got2 = by_id(read_topic(bs, target2));
  EXPECT_EQ(got2.size(), 2u);
  EXPECT_TRUE(got2.contains("0") && got2.contains("2"));

  // --to the dead-letter topic itself would loop: refused.
  r = run_kc(dir, redrive_args(bs, dlq, unique_name("g"), {"--to", dlq}));
  EXPECT_EQ(r.status.code, 2) << describe(r);
  // A target that does not exist: refused up front (topics are not created).
  r = run_kc(dir, redrive_args(bs, dlq, unique_name("g"), {"--to", unique_name("kc-it-no-such-topic")}));
  EXPECT_EQ(r.status.code, 2) << describe(r);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

TEST(DlqRedrive, DefaultsToEachRecordsSourceTopicAndPartition) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-default");
  const auto src_a = unique_name("kc-it-dlq-src-a");
  const auto src_b = unique_name("kc-it-dlq-src-b");
  create_topic(bs, dlq, 1);
  create_topic(bs, src_a, 3);
  create_topic(bs, src_b, 1);
  produce_records(
      bs, dlq,
      {dead_letter({"a", "0", {{"id", "0"}}}, kc_headers({src_a, 2, 100}), 0),
       dead_letter({"b", "1", {{"id", "1"}}}, spring_headers({src_b, 0, 101}), 0),
       dead_letter({"c", "2", {{"id", "2"}}}, kc_headers({src_a, 0, 102}), 0),
       dead_letter({"d", "3", {{"id", "3"}}}, kc_headers({src_a, 9, 103}), 0),  // no partition 9
       // Failed in a retry topic (see kc's non-blocking retries): its
       // kc.retry.* headers are metadata too, and it goes home to src_a.
       dead_letter(
           {"e",
            "4",
            {{"id", "4"}, {"kc.retry.attempt", "3"}, {"kc.retry.due", "1700000000000"}, {"kc.retry.topic", src_a}}},
           kc_headers({src_a + ".retry.2", 1, 104}), 0)});
  TempDir dir("kc-dlq-default");
  const auto inspect = run_kc(dir, {"dlq", "inspect", "--topic", dlq, "-b", bs, "--json"});
  ASSERT_TRUE(inspect.status.ok()) << describe(inspect);
  ParsedLines json(inspect.out);
  EXPECT_TRUE(json.by("source_offset", 100).is_null("retry_origin_topic"));
  EXPECT_EQ(json.by("source_offset", 104).str("retry_origin_topic"), src_a);
  EXPECT_EQ(json_headers(json.by("source_offset", 104)).size(), 1u) << "kc.retry.* headers are metadata";

  const auto r = run_kc(dir, redrive_args(bs, dlq, unique_name("kc-it-dlq-default-g")));
  ASSERT_TRUE(r.status.ok()) << describe(r);
  EXPECT_NE(r.err.find("5 records from " + dlq + " to their source topics, acknowledged 5, failed 0"),
            std::string::npos)
      << r.err;
  const auto a = by_id(read_topic(bs, src_a));
  const auto b = by_id(read_topic(bs, src_b));
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a.at("4").partition, 1);
  EXPECT_EQ(a.at("4").headers, (std::vector<Header>{{"id", "4"}, {"kc.redrive.count", "1"}}));
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a.at("0").partition, 2);
  EXPECT_EQ(a.at("2").partition, 0);
  EXPECT_TRUE(a.contains("3"));
  EXPECT_EQ(b.at("1").value, "1");
  EXPECT_EQ(a.at("0").headers, (std::vector<Header>{{"id", "0"}, {"kc.redrive.count", "1"}}));
}

// A record that cannot be redriven (no source topic, or a source topic that
// is gone) stops its partition there: nothing at or after it is committed,
// the other partitions go on, and the exit code says so. Running again
// republishes nothing twice.
TEST(DlqRedrive, ARecordWithoutATargetStopsItsPartitionAndIsNeverCommittedPast) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-unroutable");
  const auto src = unique_name("kc-it-dlq-src");
  create_topic(bs, dlq, 2);
  create_topic(bs, src, 1);
  produce_records(bs, dlq,
                  {dead_letter({"k", "0", {{"id", "0"}}}, kc_headers({src, 0, 1}), 0),
                   dead_letter({"k", "1", {{"id", "1"}}}, {{"kc.dlq.error.type", "kc::DecodeError"}}, 0),
                   dead_letter({"k", "2", {{"id", "2"}}}, kc_headers({src, 0, 3}), 0),
                   dead_letter({"k", "3", {{"id", "3"}}}, kc_headers({src, 0, 4}), 1),
                   dead_letter({"k", "4", {{"id", "4"}}}, kc_headers({unique_name("kc-it-gone"), 0, 5}), 1),
                   dead_letter({"k", "5", {{"id", "5"}}}, kc_headers({src, 0, 6}), 1)});
  TempDir dir("kc-dlq-unroutable");
  const auto group = unique_name("kc-it-dlq-unroutable-g");
  for (int run = 0; run < 2; ++run) {
    const auto r = run_kc(dir, redrive_args(bs, dlq, group));
    EXPECT_EQ(r.status.code, 1) << "run " << run << describe(r);
    EXPECT_NE(r.err.find("no source topic"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("failed 2"), std::string::npos) << r.err;
    const auto got = by_id(read_topic(bs, src));  // throws on a record redriven twice
    EXPECT_EQ(got.size(), 2u) << "run " << run;
    EXPECT_TRUE(got.contains("0") && got.contains("3")) << "run " << run;
    EXPECT_EQ(committed_offsets(bs, group, dlq, 2), (std::vector<std::int64_t>{1, 1})) << "run " << run;
  }
}

// The broker rejects a republished record (larger than the target topic's
// max.message.bytes): the redrive must not commit past it, and says so.
TEST(DlqRedrive, AFailedDeliveryIsNeverCommitted) {
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-toolarge");
  const auto target = unique_name("kc-it-dlq-small");
  create_topic(bs, dlq, 1);
  create_topic(bs, target, 1);
  set_topic_config(bs, target, {{"max.message.bytes", "1024"}});
  // Incompressible: the redrive's producer compresses (lz4), and 8000
  // equal bytes would fit in 1024 once compressed.
  const auto large = incompressible(8000);
  produce_records(bs, dlq,
                  {dead_letter({"k", "small-0", {{"id", "0"}}}, kc_headers({"orders", 0, 1}), 0),
                   dead_letter({"k", large, {{"id", "1"}}}, kc_headers({"orders", 0, 2}), 0),
                   dead_letter({"k", "small-2", {{"id", "2"}}}, kc_headers({"orders", 0, 3}), 0)});
  TempDir dir("kc-dlq-toolarge");
  const auto group = unique_name("kc-it-dlq-toolarge-g");
  const auto r = run_kc(dir, redrive_args(bs, dlq, group, {"--to", target}));
  EXPECT_EQ(r.status.code, 1) << describe(r);
  EXPECT_EQ(r.err.find("failed 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not committing"), std::string::npos) << r.err;
  const auto committed = committed_offsets(bs, group, dlq, 1);
  EXPECT_LE(committed[0], 1) << "committed past the record whose copy the broker rejected";
  for (const auto& rec : read_topic(bs, target)) {
    EXPECT_NE(rec.header("id"), std::optional<std::string>("1"));
  }
}

// 20,000 dead letters; the redrive is stopped twice with a signal (SIGTERM,
// then SIGINT) while it works and restarted; in the end every record is in
// the target exactly once.
TEST(DlqRedrive, AnInterruptedRedriveRepublishesEveryRecordExactlyOnce) {
  constexpr int kRecords = 20'000;
  constexpr int kPartitions = 4;
  const auto bs = bootstrap();
  const auto dlq = unique_name("kc-it-dlq-interrupt");
  const auto target = unique_name("kc-it-dlq-interrupt-target");
  create_topic(bs, dlq, kPartitions);
  create_topic(bs, target, kPartitions);
  std::vector<Record> dead;
  dead.reserve(kRecords);
  for (int i = 0; i < kRecords; ++i) {
    Source s{"orders", i % kPartitions, i};
    s.error_type = i % 3 == 0 ? "kc::DecodeError" : "std::runtime_error";
    dead.push_back(dead_letter(
        {"key-" + std::to_string(i % 100), "dl-" + std::to_string(i), {{"id", std::to_string(i)}, {"bin", be32(i)}}},
        kc_headers(s), i % kPartitions));
  }
  produce_records(bs, dlq, dead);
  ASSERT_EQ(sum(high_watermarks(bs, dlq, kPartitions)), kRecords);

  TempDir dir("kc-dlq-interrupt");
  const auto group = unique_name("kc-it-dlq-interrupt-g");
  const auto args = redrive_args(bs, dlq, group, {"--to", target, "--rate", "4000"});
  std::int64_t committed_before = 0;
  for (const auto& [sig, stop_at] : {std::pair{SIGTERM, 3000}, std::pair{SIGINT, 9000}}) {
    Subprocess p(kc_tool_path(), args, dir / ("sig" + std::to_string(sig) + ".out"),
                 dir / ("sig" + std::to_string(sig) + ".err"));
    ASSERT_TRUE(
        wait_until([&] { return sum(high_watermarks(bs, target, kPartitions)) >= stop_at || !p.running(); }, 60s, 20ms))
        << "the redrive did not republish " << stop_at << " records within 60 s";
    ASSERT_TRUE(p.running()) << "the redrive ended before it could be interrupted: " << tail(p.stderr_text());
    p.signal(sig);
    const auto st = p.wait(30s);
    ASSERT_TRUE(st.has_value()) << "no graceful exit within 30 s of signal " << sig << ": " << tail(p.stderr_text());
    EXPECT_TRUE(st->ok()) << st->to_string() << "\n" << tail(p.stderr_text());
    EXPECT_NE(p.stderr_text().find("interrupted"), std::string::npos) << tail(p.stderr_text());
    const auto committed = sum(committed_offsets(bs, group, dlq, kPartitions));
    const auto written = sum(high_watermarks(bs, target, kPartitions));
    std::printf("DLQ-INTERRUPT: signal %d: %lld written, %lld committed\n", sig, static_cast<long long>(written),
                static_cast<long long>(committed));
    EXPECT_GT(committed, committed_before);
    EXPECT_LT(committed, kRecords) << "the run was meant to be interrupted mid-way";
    // A graceful stop commits exactly what was acknowledged.
    EXPECT_EQ(committed, written);
    committed_before = committed;
  }
  const auto r = run_kc(dir, redrive_args(bs, dlq, group, {"--to", target}), 120s);
  ASSERT_TRUE(r.status.ok()) << describe(r);

  const auto got = read_topic(bs, target);
  std::map<std::string, int> seen;
  for (const auto& rec : got) {
    ++seen[rec.value.value_or("<null>")];
  }
  int duplicates = 0;
  int missing = 0;
  int mismatched = 0;
  for (int i = 0; i < kRecords; ++i) {
    const auto it = seen.find("dl-" + std::to_string(i));
    if (it == seen.end()) {
      ++missing;
    } else if (it->second > 1) {
      duplicates += it->second - 1;
    }
  }
  for (const auto& rec : got) {
    const auto id = rec.header("id");
    if (!id || rec.value != "dl-" + *id ||
        rec.headers != std::vector<Header>{{"id", *id}, {"bin", be32(std::stoi(*id))}, {"kc.redrive.count", "1"}}) {
      ++mismatched;
    }
  }
  std::printf("DLQ-INTERRUPT: %zu records in the target, %d duplicates, %d missing, %d mismatched\n", got.size(),
              duplicates, missing, mismatched);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(mismatched, 0);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kRecords));
  EXPECT_EQ(committed_offsets(bs, group, dlq, kPartitions), high_watermarks(bs, dlq, kPartitions));
}

}  // namespace
}  // namespace kc::test
