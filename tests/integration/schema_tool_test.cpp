// kc consume with a Schema Registry, at the level of the tool: keys and
// values decoded each with its own format, a registry outage that stops the
// consumer (exit 1, nothing dead-lettered, nothing committed) and a clean
// restart afterwards, credentials that never reach the output, and one
// registry request per schema id however many records use it.
//
// The records are encoded here with kc::schema::Serializer against the test
// registry (tests/support/fake_registry.py, started per test), written with
// produce_records (librdkafka directly), and read by build/bin/kc as a
// subprocess. The registry's admin hooks (/_admin/fail, /_admin/stats,
// /_admin/reset) are called with registry_admin() (support/registry.hpp).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kc/schema.hpp"
#include "support/common.hpp"
#include "support/json.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/records.hpp"
#include "support/registry.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kKeySchema = R"({"type":"record","name":"OrderKey","namespace":"kc.test.key","fields":[
  {"name":"customer_id","type":"long"},{"name":"region","type":"string"}]})";

constexpr std::string_view kValueAvro = R"({"type":"record","name":"OrderValue","namespace":"kc.test.value","fields":[
  {"name":"order_id","type":"string"},{"name":"qty","type":"int"},{"name":"amount","type":"double"},
  {"name":"tags","type":{"type":"array","items":"string"}}]})";

// Version 2 of kValueAvro: one more field, with a default.
constexpr std::string_view kValueAvroV2 = R"({"type":"record","name":"OrderValue","namespace":"kc.test.value","fields":[
  {"name":"order_id","type":"string"},{"name":"qty","type":"int"},{"name":"amount","type":"double"},
  {"name":"tags","type":{"type":"array","items":"string"}},{"name":"channel","type":"string","default":"web"}]})";

constexpr std::string_view kValueJsonSchema = R"({"$schema":"http://json-schema.org/draft-07/schema#",
  "title":"OrderValue","type":"object",
  "properties":{"order_id":{"type":"string"},"qty":{"type":"integer"},"amount":{"type":"number"},
                "tags":{"type":"array","items":{"type":"string"}}},
  "required":["order_id","qty","amount","tags"],"additionalProperties":false})";

std::string key_json(int i) {
  return R"({"customer_id":)" + std::to_string(100000 + i * 7) + R"(,"region":"eu-)" + std::to_string(i % 4) + R"("})";
}

std::string value_json(int i) {
  // amount: a multiple of 1/4, exact in binary, so no rounding is involved.
  return R"({"order_id":"ord-)" + std::to_string(i) + R"(","qty":)" + std::to_string(1 + i % 5) + R"(,"amount":)" +
         std::to_string(i) + ".25" + R"(,"tags":["t)" + std::to_string(i % 3) + R"(","x"]})";
}

// A registry client for the test's own Serializers.
std::shared_ptr<schema::SchemaRegistry> client(const std::string& url, std::string basic_auth = {}) {
  schema::RegistryConfig c;
  c.url = url;
  c.basic_auth = std::move(basic_auth);
  return std::make_shared<schema::SchemaRegistry>(std::move(c));
}

schema::Serializer serializer(schema::Format format, std::shared_ptr<schema::SchemaRegistry> registry,
                              std::string_view text, std::string subject) {
  schema::RegisteredSchema s;
  s.format = format;
  s.text = std::string(text);
  schema::SerializerOptions o;
  o.subject = std::move(subject);
  return schema::Serializer(format, std::move(registry), std::move(s), std::move(o));
}

std::string encode(schema::Serializer& s, const std::string& json) {
  std::string out;
  s.encode(json, out);
  return out;
}

struct Finished {
  ExitStatus status;
  std::string out;  // kc's stdout
  std::string err;  // kc's stderr
  std::string command;
};

// Runs kc with `args` and the environment assignments `env` ("NAME=value",
// through /usr/bin/env) to its end; throws Failure when it outlasts `timeout`.
Finished run_kc(const TempDir& dir, const std::string& name, const std::vector<std::string>& env,
                const std::vector<std::string>& args, std::chrono::seconds timeout = 120s) {
  std::vector<std::string> argv = env;
  argv.push_back(kc_tool_path());
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p("/usr/bin/env", argv, dir / (name + ".out"), dir / (name + ".err"));
  const auto st = p.wait(timeout);
  if (!st) {
    throw Failure(name + ": kc did not finish in " + std::to_string(timeout.count()) + " s: " + describe(p));
  }
  return {*st, p.stdout_text(), p.stderr_text(), p.command()};
}

std::string explain(const Finished& f) {
  return "\n  command: " + f.command + "\n  status: " + f.status.to_string() + "\n  stderr ends with:\n" +
         tail(f.err, 30);
}

// The requests for schemas by id (GET /schemas/ids/N), by path.
std::map<std::string, std::int64_t> by_id_requests(const std::map<std::string, std::int64_t>& stats) {
  std::map<std::string, std::int64_t> out;
  for (const auto& [path, n] : stats) {
    if (path.starts_with("/schemas/ids/")) {
      out[path] = n;
    }
  }
  return out;
}

std::string show(const std::map<std::string, std::int64_t>& m) {
  std::string s = "{";
  for (const auto& [k, v] : m) {
    s += (s.size() > 1 ? ", " : "") + k + ": " + std::to_string(v);
  }
  return s + "}";
}

// One jsonl sink line: its key and value as minified JSON ("null" for null).
struct Line {
  std::string key;
  std::string value;
  std::string text;
};

// The sink's lines by (partition, offset); throws Failure on a line that is
// not JSON or has no key/value, or on a position seen twice.
std::map<std::pair<int, std::int64_t>, Line> sink_lines(const std::filesystem::path& file) {
  std::map<std::pair<int, std::int64_t>, Line> out;
  std::ifstream in(file);
  std::string text;
  simdjson::dom::parser parser;
  std::size_t n = 0;
  while (std::getline(in, text)) {
    ++n;
    simdjson::dom::element doc;
    std::int64_t partition = -1;
    std::int64_t offset = -1;
    simdjson::dom::element key;
    simdjson::dom::element value;
    if (parser.parse(text).get(doc) != simdjson::SUCCESS || doc["partition"].get(partition) != simdjson::SUCCESS ||
        doc["offset"].get(offset) != simdjson::SUCCESS || doc["key"].get(key) != simdjson::SUCCESS ||
        doc["value"].get(value) != simdjson::SUCCESS) {
      throw Failure(file.string() + ":" + std::to_string(n) + ": not a sink line with key and value: " + text);
    }
    Line l{simdjson::minify(key), simdjson::minify(value), text};
    if (!out.emplace(std::make_pair(static_cast<int>(partition), offset), std::move(l)).second) {
      throw Failure(file.string() + ": p" + std::to_string(partition) + " o" + std::to_string(offset) + " twice");
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

class KeysAndValues : public ::testing::TestWithParam<std::string> {};

// Keys (Avro, subject <topic>-key) and values (Avro or JSON Schema, subject
// <topic>-value) are decoded each with its own schema; a null key stays null
// and so does a null value.
TEST_P(KeysAndValues, KeysAndValuesDecodedWithTheirOwnFormats) {
  const std::string value_format = GetParam();
  const auto bs = bootstrap();
  TempDir dir("kc-sr-tool-kv");
  FakeRegistry registry;
  const auto topic = unique_name("sr-tool-kv");
  create_topic(bs, topic, 3);

  auto reg = client(registry.url());
  auto keys = serializer(schema::Format::avro, reg, kKeySchema, topic + "-key");
  auto values = value_format == "avro" ? serializer(schema::Format::avro, reg, kValueAvro, topic + "-value")
                                       : serializer(schema::Format::json, reg, kValueJsonSchema, topic + "-value");
  ASSERT_NE(keys.schema_id(), values.schema_id());

  constexpr int kCount = 60;
  std::vector<Record> records;
  std::map<std::pair<int, std::int64_t>, std::pair<std::string, std::string>> expected;  // (p, o) -> key, value
  for (int i = 0; i < kCount; ++i) {
    Record r;
    r.partition = i % 3;
    std::string k = "null";
    std::string v = "null";
    if (i % 10 != 3) {  // every tenth record has a null key
      k = key_json(i);
      r.key = encode(keys, k);
    }
    if (i % 10 != 7) {  // and every tenth a null value (a tombstone)
      v = value_json(i);
      r.value = encode(values, v);
    }
    expected[{i % 3, i / 3}] = {k, v};
    records.push_back(std::move(r));
  }
  produce_records(bs, topic, records);

  const auto sink = dir / "kc.jsonl";
  const auto kc = run_kc(dir, "kc-consume", {},
                         consume_args(bs, unique_name("sr-tool-group"), topic, sink, value_format,
                                      {"--key-format", "avro", "--schema-registry", registry.url(), "--max-messages",
                                       std::to_string(kCount), "--idle-exit-ms", "15000"}));
  ASSERT_TRUE(kc.status.ok()) << explain(kc);

  const auto lines = sink_lines(sink);
  EXPECT_EQ(lines.size(), expected.size());
  int null_keys = 0;
  int null_values = 0;
  for (const auto& [pos, kv] : expected) {
    const auto it = lines.find(pos);
    ASSERT_NE(it, lines.end()) << "p" << pos.first << " o" << pos.second << " is not in the sink";
    const auto& [k, v] = kv;
    EXPECT_TRUE(json_equal(it->second.key, k)) << "p" << pos.first << " o" << pos.second << ": key " << it->second.key
                                               << ", expected " << k << "\n  line: " << it->second.text;
    EXPECT_TRUE(json_equal(it->second.value, v))
        << "p" << pos.first << " o" << pos.second << ": value " << it->second.value << ", expected " << v
        << "\n  line: " << it->second.text;
    null_keys += k == "null" ? 1 : 0;
    null_values += v == "null" ? 1 : 0;
  }
  EXPECT_EQ(null_keys, kCount / 10);
  EXPECT_EQ(null_values, kCount / 10);
  EXPECT_NE(kc.err.find("malformed 0,"), std::string::npos) << "some records did not decode:" << explain(kc);
}

INSTANTIATE_TEST_SUITE_P(ValueFormats, KeysAndValues, ::testing::Values("avro", "jsonschema"),
                         [](const auto& p) { return p.param; });

// ---------------------------------------------------------------------------

// The registry answers 503 to everything from before kc starts: kc, which has
// never seen the schema id, cannot decode any record. That is not the
// records' fault: kc must stop with exit 1 naming the registry, dead-letter
// nothing and commit nothing. Once the registry is back, a second run in the
// same group reads every record.
TEST(SchemaRegistryOutage, RegistryOutageStopsTheConsumerWithoutDeadLettering) {
  const auto bs = bootstrap();
  TempDir dir("kc-sr-tool-outage");
  FakeRegistry registry;
  const auto topic = unique_name("sr-tool-outage");
  const auto dead = topic + ".dead-letter";
  constexpr int kPartitions = 3;
  constexpr int kCount = 30;
  create_topic(bs, topic, kPartitions);
  create_topic(bs, dead, 1);

  auto values = serializer(schema::Format::avro, client(registry.url()), kValueAvro, topic + "-value");
  std::vector<Record> records;
  for (int i = 0; i < kCount; ++i) {
    Record r;
    r.partition = i % kPartitions;
    r.key = "k-" + std::to_string(i);
    r.value = encode(values, value_json(i));
    records.push_back(std::move(r));
  }
  produce_records(bs, topic, records);

  registry_admin(registry.url(), "POST", "/_admin/reset");
  registry_admin(registry.url(), "POST", "/_admin/fail", R"({"status":503,"count":100000})");

  const auto group = unique_name("sr-tool-outage-group");
  const auto sink = dir / "kc.jsonl";
  const std::vector<std::string> env = {"KC_SCHEMA_REGISTRY_MAX_RETRIES=1", "KC_SCHEMA_REGISTRY_TIMEOUT_MS=2000"};
  const auto extra = std::vector<std::string>{
      "--schema-registry",  registry.url(), "--dlq-topic",    "{topic}.dead-letter",  "--max-retries",  "1",
      "--retry-backoff-ms", "200",          "--max-messages", std::to_string(kCount), "--idle-exit-ms", "20000"};
  const auto first = run_kc(dir, "kc-outage", env, consume_args(bs, group, topic, sink, "avro", extra));

  // kc asked for the schema and was refused (the outage was real).
  const auto during = by_id_requests(registry_stats(registry.url()).by_path);
  EXPECT_FALSE(during.empty()) << "kc never asked the registry for the schema id";

  EXPECT_FALSE(first.status.signaled) << explain(first);
  EXPECT_EQ(first.status.code, 1) << "expected exit 1 for a registry outage" << explain(first);
  EXPECT_NE(first.err.find("schema registry"), std::string::npos) << explain(first);
  EXPECT_NE(first.err.find("503"), std::string::npos) << "the registry's answer is not named" << explain(first);
  EXPECT_EQ(read_file(sink), "") << "records were written although none could be decoded";
  const auto dead_letters = read_topic(bs, dead);
  EXPECT_EQ(dead_letters.size(), 0u) << "good records were dead-lettered during the registry outage; first reason: "
                                     << (dead_letters.empty()
                                             ? std::string()
                                             : dead_letters[0].header("kc.dlq.error.message").value_or("?"));
  const auto committed = committed_offsets(bs, group, topic, kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_LE(committed[static_cast<std::size_t>(p)], 0)
        << "p" << p << ": committed past records that were never processed: " << join(committed);
  }

  // The registry is back: the same group reads every record, from the start.
  registry_admin(registry.url(), "POST", "/_admin/reset");
  const auto sink2 = dir / "kc2.jsonl";
  const auto second = run_kc(dir, "kc-after", env, consume_args(bs, group, topic, sink2, "avro", extra));
  ASSERT_TRUE(second.status.ok()) << explain(second);
  const auto lines = sink_lines(sink2);
  EXPECT_EQ(lines.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    const auto it = lines.find({i % kPartitions, i / kPartitions});
    ASSERT_NE(it, lines.end()) << "record " << i << " is missing after the restart";
    EXPECT_TRUE(json_equal(it->second.value, value_json(i))) << it->second.text;
  }
  EXPECT_EQ(read_topic(bs, dead).size(), 0u);
  EXPECT_EQ(sum(committed_offsets(bs, group, topic, kPartitions)), kCount);
}

// ---------------------------------------------------------------------------

// A wrong password (from the environment, or in the URL) is refused with 401:
// kc stops (exit 1) and says so, without ever printing the password, plain or
// as the base64 of an Authorization header. With the right one (a flag),
// records decode.
TEST(SchemaRegistryCredentials, CredentialsNeverAppearInOutput) {
  const auto bs = bootstrap();
  TempDir dir("kc-sr-tool-auth");
  const std::string right = "user:RIGHT-pw-" + unique_name("r");
  FakeRegistry registry({"--basic-auth", right});
  const auto topic = unique_name("sr-tool-auth");
  constexpr int kCount = 10;
  create_topic(bs, topic, 1);
  auto values = serializer(schema::Format::avro, client(registry.url(), right), kValueAvro, topic + "-value");
  std::vector<Record> records;
  for (int i = 0; i < kCount; ++i) {
    Record r;
    r.key = "k-" + std::to_string(i);
    r.value = encode(values, value_json(i));
    records.push_back(std::move(r));
  }
  produce_records(bs, topic, records);

  const std::string canary = "CANARY-s3cr3t-" + unique_name("c");
  const std::string port = registry.url().substr(registry.url().rfind(':') + 1);
  const auto forbidden = [&](const Finished& f, const std::string& secret) {
    for (const auto& s : {secret, base64("user:" + secret)}) {
      EXPECT_EQ(f.out.find(s), std::string::npos) << "stdout shows the secret " << s;
      EXPECT_EQ(f.err.find(s), std::string::npos) << "stderr shows the secret " << s << explain(f);
    }
  };
  const auto refused = [&](const Finished& f, const std::filesystem::path& sink) {
    EXPECT_FALSE(f.status.signaled) << explain(f);
    EXPECT_EQ(f.status.code, 1) << "a refused registry must stop the consumer" << explain(f);
    EXPECT_NE(f.err.find("schema registry"), std::string::npos) << explain(f);
    EXPECT_TRUE(f.err.find("401") != std::string::npos || f.err.find("nauthorized") != std::string::npos)
        << "stderr does not name the problem (401)" << explain(f);
    EXPECT_EQ(read_file(sink), "") << "records were written although none could be decoded";
  };
  const std::vector<std::string> quick = {"--max-messages", std::to_string(kCount), "--idle-exit-ms", "15000"};
  const auto args = [&](const std::filesystem::path& sink, const std::string& url,
                        const std::vector<std::string>& more) {
    std::vector<std::string> extra = {"--schema-registry", url};
    extra.insert(extra.end(), more.begin(), more.end());
    extra.insert(extra.end(), quick.begin(), quick.end());
    return consume_args(bs, unique_name("sr-tool-auth-group"), topic, sink, "avro", extra);
  };

  {
    SCOPED_TRACE("wrong password in KC_SCHEMA_REGISTRY_BASIC_AUTH");
    const auto sink = dir / "env.jsonl";
    const auto f = run_kc(dir, "kc-env", {"KC_SCHEMA_REGISTRY_BASIC_AUTH=user:" + canary + "-env"},
                          args(sink, registry.url(), {}));
    refused(f, sink);
    forbidden(f, canary + "-env");
  }
  {
    SCOPED_TRACE("wrong password in the URL");
    const auto sink = dir / "url.jsonl";
    const auto f = run_kc(dir, "kc-url", {}, args(sink, "http://user:" + canary + "-url@127.0.0.1:" + port, {}));
    refused(f, sink);
    forbidden(f, canary + "-url");
  }
  {
    SCOPED_TRACE("right password in --schema-registry-auth");
    const auto sink = dir / "right.jsonl";
    const auto f = run_kc(dir, "kc-right", {}, args(sink, registry.url(), {"--schema-registry-auth", right}));
    ASSERT_TRUE(f.status.ok()) << explain(f);
    forbidden(f, right.substr(5));
    const auto lines = sink_lines(sink);
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(kCount));
    for (int i = 0; i < kCount; ++i) {
      const auto it = lines.find({0, i});
      ASSERT_NE(it, lines.end()) << "offset " << i;
      EXPECT_TRUE(json_equal(it->second.value, value_json(i))) << it->second.text;
    }
  }
}

// ---------------------------------------------------------------------------

// 2,000 records written with two versions of a schema (two ids): kc asks the
// registry once per id, not once per record (nor per partition).
TEST(SchemaRegistryRequests, RegistryAskedOncePerSchemaIdNotPerRecord) {
  const auto bs = bootstrap();
  TempDir dir("kc-sr-tool-cache");
  FakeRegistry registry;
  const auto topic = unique_name("sr-tool-cache");
  constexpr int kPartitions = 3;
  constexpr int kCount = 2000;
  create_topic(bs, topic, kPartitions);
  auto reg = client(registry.url());
  auto v1 = serializer(schema::Format::avro, reg, kValueAvro, topic + "-value");
  auto v2 = serializer(schema::Format::avro, reg, kValueAvroV2, topic + "-value");
  ASSERT_NE(v1.schema_id(), v2.schema_id());
  std::vector<Record> records;
  for (int i = 0; i < kCount; ++i) {
    Record r;
    r.partition = i % kPartitions;
    r.key = "k-" + std::to_string(i);
    if (i % 2 == 0) {
      r.value = encode(v1, value_json(i));
    } else {
      auto v = value_json(i);
      v.insert(v.size() - 1, R"(,"channel":"app")");
      r.value = encode(v2, v);
    }
    records.push_back(std::move(r));
  }
  produce_records(bs, topic, records);
  registry_admin(registry.url(), "POST", "/_admin/reset");  // forget the test's own requests

  const auto sink = dir / "kc.jsonl";
  const auto kc = run_kc(dir, "kc-consume", {},
                         consume_args(bs, unique_name("sr-tool-cache-group"), topic, sink, "avro",
                                      {"--schema-registry", registry.url(), "--max-messages", std::to_string(kCount),
                                       "--idle-exit-ms", "15000"}));
  ASSERT_TRUE(kc.status.ok()) << explain(kc);
  const auto lines = sink_lines(sink);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kCount));
  std::size_t with_channel = 0;
  for (const auto& [pos, line] : lines) {
    with_channel += line.value.find(R"("channel":"app")") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(with_channel, static_cast<std::size_t>(kCount / 2)) << "both versions were not decoded";

  const auto stats = registry_stats(registry.url()).by_path;
  const auto by_id = by_id_requests(stats);
  const std::map<std::string, std::int64_t> want = {{"/schemas/ids/" + std::to_string(v1.schema_id()), 1},
                                                    {"/schemas/ids/" + std::to_string(v2.schema_id()), 1}};
  EXPECT_EQ(by_id, want) << "requests by id: " << show(by_id) << "; all requests: " << show(stats);
}

// JSON Schema documents that break their registered schema are dead letters
// (byte for byte) when validating, the default; --no-schema-validation lets
// them through as long as they are JSON.
TEST(SchemaValidation, InvalidJsonSchemaDocumentsAreDeadLetteredUnlessValidationIsOff) {
  const auto bs = bootstrap();
  TempDir dir("kc-sr-tool-validation");
  FakeRegistry registry;
  const auto topic = unique_name("sr-tool-validation");
  create_topic(bs, topic, 1);
  create_topic(bs, topic + ".dead-letter", 1);

  auto reg = client(registry.url());
  auto values = serializer(schema::Format::json, reg, kValueJsonSchema, topic + "-value");
  // The serializer validates too: frame the invalid documents by hand.
  std::string header(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8) {
    header += static_cast<char>((values.schema_id() >> shift) & 0xff);
  }
  std::vector<Record> records;
  constexpr int kCount = 20;
  std::set<int> invalid;
  for (int i = 0; i < kCount; ++i) {
    Record r;
    if (i % 5 == 2) {
      r.value = header + R"({"order_id":"ord-)" + std::to_string(i) + R"(","qty":"three","amount":1,"tags":[]})";
      invalid.insert(i);
    } else {
      r.value = encode(values, value_json(i));
    }
    records.push_back(std::move(r));
  }
  produce_records(bs, topic, records);

  const auto validated = run_kc(dir, "kc-validate", {},
                                consume_args(bs, unique_name("sr-tool-group"), topic, dir / "validated.jsonl",
                                             "jsonschema",
                                             {"--schema-registry", registry.url(), "--dlq-topic", "{topic}.dead-letter",
                                              "--max-messages", std::to_string(kCount), "--idle-exit-ms", "15000"}));
  ASSERT_TRUE(validated.status.ok()) << explain(validated);
  EXPECT_EQ(sink_lines(dir / "validated.jsonl").size(), kCount - invalid.size());
  const auto dead = read_topic(bs, topic + ".dead-letter");
  ASSERT_EQ(dead.size(), invalid.size());
  for (const auto& d : dead) {
    const auto offset = std::stoi(d.header("kc.dlq.source.offset").value_or("-1"));
    EXPECT_TRUE(invalid.count(offset)) << offset;
    EXPECT_EQ(d.value, records[static_cast<std::size_t>(offset)].value);
    EXPECT_NE(d.header("kc.dlq.error.message").value_or("").find("qty"), std::string::npos)
        << d.header("kc.dlq.error.message").value_or("");
  }

  const auto unchecked = run_kc(dir, "kc-no-validation", {},
                                consume_args(bs, unique_name("sr-tool-group"), topic, dir / "unchecked.jsonl",
                                             "jsonschema",
                                             {"--schema-registry", registry.url(), "--no-schema-validation",
                                              "--max-messages", std::to_string(kCount), "--idle-exit-ms", "15000"}));
  ASSERT_TRUE(unchecked.status.ok()) << explain(unchecked);
  const auto lines = sink_lines(dir / "unchecked.jsonl");
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kCount));
  EXPECT_TRUE(json_equal(lines.at({0, 2}).value, R"({"order_id":"ord-2","qty":"three","amount":1,"tags":[]})"))
      << lines.at({0, 2}).text;
}

}  // namespace
}  // namespace kc::test
