// The Schema Registry client against tests/support/fake_registry.py (run with
// the system python3), with TLS material made by the openssl CLI.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kc/error.hpp"
#include "kc/schema.hpp"
#include "support/common.hpp"
#include "support/registry.hpp"
#include "support/subprocess.hpp"

namespace kc::schema {
namespace {

using namespace std::chrono_literals;
using test::Failure;
using test::Subprocess;
using test::TempDir;

// Planted in every secret the tests use; no error message or log line may
// contain them.
constexpr const char* kCanaryPassword = "canary-PW-5f3a9c";
constexpr const char* kCanaryToken = "canary-TOKEN-77e1b2";
constexpr const char* kCanaryKeyPassword = "canary-KEYPW-0d4e";

std::ostringstream& log_capture() {
  static std::ostringstream out;
  return out;
}

void expect_no_secret(const std::string& text) {
  for (const char* canary : {kCanaryPassword, kCanaryToken, kCanaryKeyPassword}) {
    EXPECT_EQ(text.find(canary), std::string::npos) << "secret leaked into: " << text;
  }
}

// Runs `f`, which must throw kc::Error with `code`; returns the error's
// message after checking it carries no secret and is one line.
template <class F>
std::string expect_error(F&& f, errc code, bool* retriable = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), make_error_code(code)) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    expect_no_secret(what);
    if (retriable != nullptr) {
      *retriable = e.retriable();
    }
    return what;
  }
  ADD_FAILURE() << "no kc::Error thrown";
  return {};
}

// Runs a command to completion (the openssl CLI); throws Failure on error.
void run(std::vector<std::string> args, const TempDir& dir) {
  Subprocess p("/usr/bin/env", std::move(args), dir / "cmd.out", dir / "cmd.err");
  const auto st = p.wait(60s);
  if (!st || !st->ok()) {
    throw Failure(p.command() + " failed: " + test::tail(p.stderr_text()));
  }
}

/// fake_registry.py on a free port; killed by the destructor.
class FakeRegistry {
 public:
  explicit FakeRegistry(std::vector<std::string> options = {}, std::string scheme = "http",
                        std::string admin_ca = {})
      : scheme_(std::move(scheme)), admin_ca_(std::move(admin_ca)) {
    std::vector<std::string> args = {"python3", KC_FAKE_REGISTRY, "--port", "0", "--port-file",
                                     (dir_ / "port").string()};
    args.insert(args.end(), options.begin(), options.end());
    proc_ = std::make_unique<Subprocess>("/usr/bin/env", args, dir_ / "registry.out", dir_ / "registry.err");
    if (!test::wait_until([&] { return test::file_size_or_zero(dir_ / "port") > 0 || !proc_->running(); }, 15s) ||
        !proc_->running()) {
      throw Failure("fake_registry.py did not start: " + test::tail(proc_->stderr_text()));
    }
    port_ = std::stoi(test::read_file(dir_ / "port"));
  }
  ~FakeRegistry() { expect_no_secret(proc_->stderr_text()); }

  std::string root() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  void fail(int status, int count) {
    test::registry_admin(root(), "POST", "/_admin/fail", fmt_json(status, count), admin_ca_);
  }
  void delay(int ms, int count) {
    test::registry_admin(root(), "POST", "/_admin/delay",
                         "{\"ms\":" + std::to_string(ms) + ",\"count\":" + std::to_string(count) + "}", admin_ca_);
  }
  /// Requests the fake has seen, in total or for one path.
  std::int64_t seen(const std::string& path = {}) {
    const auto stats = test::registry_stats(root(), admin_ca_);
    if (path.empty()) {
      return stats.requests;
    }
    const auto it = stats.by_path.find(path);
    return it == stats.by_path.end() ? 0 : it->second;
  }
  std::string log() const { return proc_->stderr_text(); }

 private:
  static std::string fmt_json(int status, int count) {
    return "{\"status\":" + std::to_string(status) + ",\"count\":" + std::to_string(count) + "}";
  }

  TempDir dir_{"kc-fake-registry"};
  std::string scheme_;
  std::string admin_ca_;
  std::unique_ptr<Subprocess> proc_;
  int port_ = 0;
};

RegistryConfig fast_config(const std::string& url) {
  RegistryConfig c;
  c.url = url;
  c.timeout = 5000ms;
  c.max_retries = 3;
  c.retry_backoff = 10ms;
  c.retry_backoff_max = 40ms;
  return c;
}

RegisteredSchema avro(std::string text, std::vector<SchemaReference> refs = {}) {
  RegisteredSchema s;
  s.format = Format::avro;
  s.text = std::move(text);
  s.references = std::move(refs);
  return s;
}

const std::string kOrder =
    R"({"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]})";

class LogCapture : public ::testing::Environment {
 public:
  void SetUp() override {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_capture());
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  }
  void TearDown() override { expect_no_secret(log_capture().str()); }
};
[[maybe_unused]] const auto* const kLogEnv = ::testing::AddGlobalTestEnvironment(new LogCapture);

TEST(SchemaRegistry, RegistersLooksUpAndFetches) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  EXPECT_EQ(reg.display_url(), fake.root());

  const auto id = reg.register_schema("orders-value", avro(kOrder));
  EXPECT_EQ(id, 1);
  EXPECT_EQ(reg.lookup_schema("orders-value", avro(kOrder)), 1);

  const auto by_id = reg.schema_by_id(id);
  EXPECT_EQ(by_id->id, 1);
  EXPECT_EQ(by_id->format, Format::avro);
  EXPECT_EQ(by_id->text, kOrder);
  EXPECT_TRUE(by_id->references.empty());

  RegisteredSchema pb;
  pb.format = Format::protobuf;
  pb.text = "syntax = \"proto3\";\nmessage Order { int64 id = 1; }\n";
  EXPECT_EQ(reg.register_schema("orders-value", pb), 2);

  const auto v1 = reg.schema_by_version("orders-value", 1);
  EXPECT_EQ(v1->id, 1);
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->subject, "orders-value");
  const auto latest = reg.schema_by_version("orders-value", -1);
  EXPECT_EQ(latest->id, 2);
  EXPECT_EQ(latest->version, 2);
  EXPECT_EQ(latest->format, Format::protobuf);
  EXPECT_EQ(latest->text, pb.text);
}

TEST(SchemaRegistry, SameSchemaUnderAnotherSubjectKeepsItsId) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  EXPECT_EQ(reg.register_schema("a-value", avro(kOrder)), 1);
  EXPECT_EQ(reg.register_schema("b-value", avro(kOrder)), 1);
  EXPECT_EQ(reg.schema_by_version("b-value", 1)->id, 1);
}

TEST(SchemaRegistry, EscapesSchemaTextAndSubjects) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  RegisteredSchema s;
  s.format = Format::protobuf;  // not parsed by the fake: any text goes
  s.text = std::string("quote \" backslash \\ newline \n tab \t control \x01 utf-8 \xc3\xa9 end");
  const std::string subject = "weird/subject name%?#&+";
  const auto id = reg.register_schema(subject, s);
  EXPECT_EQ(reg.schema_by_id(id)->text, s.text);
  const auto v = reg.schema_by_version(subject, 1);
  EXPECT_EQ(v->subject, subject);
  EXPECT_EQ(v->text, s.text);
}

TEST(SchemaRegistry, CachesSchemasById) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  const auto id = reg.register_schema("orders-value", avro(kOrder));
  const auto before = reg.requests();
  const auto a = reg.schema_by_id(id);
  const auto b = reg.schema_by_id(id);
  EXPECT_EQ(a, b);
  EXPECT_EQ(reg.requests(), before + 1);
  EXPECT_EQ(fake.seen("/schemas/ids/1"), 1);
}

TEST(SchemaRegistry, CacheEvictsTheLeastRecentlyUsed) {
  FakeRegistry fake;
  auto config = fast_config(fake.root());
  config.cache_capacity = 2;
  SchemaRegistry reg(config);
  for (int i = 0; i < 3; ++i) {
    reg.register_schema("s", avro("{\"type\":\"fixed\",\"name\":\"F\",\"size\":" + std::to_string(i + 1) + "}"));
  }
  reg.schema_by_id(1);
  reg.schema_by_id(2);
  reg.schema_by_id(1);  // 1 is now the most recent
  reg.schema_by_id(3);  // evicts 2
  const auto before = reg.requests();
  reg.schema_by_id(1);
  reg.schema_by_id(3);
  EXPECT_EQ(reg.requests(), before);
  reg.schema_by_id(2);
  EXPECT_EQ(reg.requests(), before + 1);
}

TEST(SchemaRegistry, CachesFixedVersionsNotLatest) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  reg.register_schema("s", avro(kOrder));
  reg.schema_by_version("s", 1);
  reg.schema_by_version("s", 1);
  EXPECT_EQ(fake.seen("/subjects/s/versions/1"), 1);
  reg.schema_by_version("s", -1);
  reg.schema_by_version("s", -1);
  EXPECT_EQ(fake.seen("/subjects/s/versions/latest"), 2);
}

TEST(SchemaRegistry, CachesRegistrations) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  reg.register_schema("s", avro(kOrder));
  reg.register_schema("s", avro(kOrder));
  EXPECT_EQ(reg.lookup_schema("s", avro(kOrder)), 1);
  EXPECT_EQ(fake.seen(), 1);
}

TEST(SchemaRegistry, LookupOfAMissingSchemaIsNullopt) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  EXPECT_EQ(reg.lookup_schema("nobody", avro(kOrder)), std::nullopt);  // 40401
  reg.register_schema("s", avro(kOrder));
  EXPECT_EQ(reg.lookup_schema("s", avro(R"({"type":"string"})")), std::nullopt);  // 40403
}

TEST(SchemaRegistry, MissingSchemaIsNotFound) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  auto what = expect_error([&] { reg.schema_by_id(99); }, errc::registry_not_found);
  EXPECT_NE(what.find("40403"), std::string::npos) << what;
  EXPECT_NE(what.find("/schemas/ids/99"), std::string::npos) << what;
  what = expect_error([&] { reg.schema_by_version("nobody", 1); }, errc::registry_not_found);
  EXPECT_NE(what.find("40401"), std::string::npos) << what;
  reg.register_schema("s", avro(kOrder));
  what = expect_error([&] { reg.schema_by_version("s", 7); }, errc::registry_not_found);
  EXPECT_NE(what.find("40402"), std::string::npos) << what;
  EXPECT_EQ(fake.seen("/schemas/ids/99"), 1) << "a 404 is not retried";
}

TEST(SchemaRegistry, InvalidSchemaIsRejected) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  const auto what = expect_error([&] { reg.register_schema("s", avro("{not json")); }, errc::registry_rejected);
  EXPECT_NE(what.find("HTTP 422 (error_code 42201"), std::string::npos) << what;
  EXPECT_EQ(fake.seen(), 1) << "a 4xx is not retried";
}

TEST(SchemaRegistry, RetriesServerErrors) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  reg.register_schema("s", avro(kOrder));
  fake.fail(503, 2);
  const auto before = reg.requests();
  EXPECT_EQ(reg.schema_by_id(1)->text, kOrder);
  EXPECT_EQ(reg.requests(), before + 3);
  EXPECT_EQ(fake.seen("/schemas/ids/1"), 3);
}

TEST(SchemaRegistry, RetriesTooManyRequestsAndDroppedConnections) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  reg.register_schema("s", avro(kOrder));
  fake.fail(429, 1);
  EXPECT_EQ(reg.schema_by_version("s", 1)->id, 1);
  fake.fail(0, 2);  // the connection closes without an answer
  EXPECT_EQ(reg.schema_by_id(1)->id, 1);
}

TEST(SchemaRegistry, GivesUpAfterMaxRetriesWithBackoff) {
  FakeRegistry fake;
  auto config = fast_config(fake.root());
  config.max_retries = 3;
  config.retry_backoff = 40ms;
  config.retry_backoff_max = 80ms;
  SchemaRegistry reg(config);
  fake.fail(503, 1000);
  bool retriable = false;
  const auto start = std::chrono::steady_clock::now();
  const auto what = expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable, &retriable);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(retriable);
  EXPECT_NE(what.find("HTTP 503"), std::string::npos) << what;
  EXPECT_NE(what.find("after 4 attempts"), std::string::npos) << what;
  EXPECT_EQ(reg.requests(), 4U);
  EXPECT_EQ(fake.seen(), 4);
  // Backoffs 40, 80, 80 ms with equal jitter: at least 20 + 40 + 40.
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 3s);
}

TEST(SchemaRegistry, ClientErrorsAreNotRetried) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  fake.fail(409, 5);
  bool retriable = true;
  const auto what = expect_error([&] { reg.schema_by_id(1); }, errc::registry_rejected, &retriable);
  EXPECT_FALSE(retriable);
  EXPECT_NE(what.find("HTTP 409 (error_code 40900: Injected failure 409)"), std::string::npos) << what;
  EXPECT_EQ(fake.seen(), 1);
}

TEST(SchemaRegistry, TimesOutSlowAnswers) {
  FakeRegistry fake;
  auto config = fast_config(fake.root());
  config.timeout = 300ms;
  config.max_retries = 0;
  SchemaRegistry reg(config);
  fake.delay(2000, 1);
  bool retriable = false;
  const auto start = std::chrono::steady_clock::now();
  const auto what = expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable, &retriable);
  EXPECT_TRUE(retriable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms) << what;
}

TEST(SchemaRegistry, UnreachableRegistryIsUnavailable) {
  int port = 0;
  {
    FakeRegistry gone;
    port = gone.port();
  }  // nothing listens there any more
  auto config = fast_config("http://127.0.0.1:" + std::to_string(port));
  config.max_retries = 1;
  SchemaRegistry reg(config);
  bool retriable = false;
  const auto what = expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable, &retriable);
  EXPECT_TRUE(retriable);
  EXPECT_NE(what.find("after 2 attempts"), std::string::npos) << what;
  EXPECT_EQ(reg.requests(), 0U) << "nothing was sent";
}

TEST(SchemaRegistry, BasicAuth) {
  FakeRegistry fake({"--basic-auth", std::string("alice:") + kCanaryPassword});
  {
    SchemaRegistry anonymous(fast_config(fake.root()));
    const auto what = expect_error([&] { anonymous.schema_by_id(1); }, errc::registry_rejected);
    EXPECT_NE(what.find("HTTP 401"), std::string::npos) << what;
  }
  {
    auto config = fast_config(fake.root());
    config.basic_auth = "alice:wrong";
    SchemaRegistry wrong(config);
    expect_error([&] { wrong.schema_by_id(1); }, errc::registry_rejected);
  }
  auto config = fast_config(fake.root());
  config.basic_auth = std::string("alice:") + kCanaryPassword;
  SchemaRegistry reg(config);
  EXPECT_EQ(reg.register_schema("s", avro(kOrder)), 1);
  expect_error([&] { reg.schema_by_id(42); }, errc::registry_not_found);
}

TEST(SchemaRegistry, CredentialsInTheUrlBecomeBasicAuth) {
  FakeRegistry fake({"--basic-auth", std::string("alice:") + kCanaryPassword, "--prefix", "/apis/ccompat/v7"});
  const std::string url =
      "http://alice:" + std::string(kCanaryPassword) + "@127.0.0.1:" + std::to_string(fake.port()) + "/apis/ccompat/v7/";
  SchemaRegistry reg(fast_config(url));
  EXPECT_EQ(reg.display_url(), fake.root() + "/apis/ccompat/v7");
  expect_no_secret(reg.display_url());
  EXPECT_EQ(reg.register_schema("s", avro(kOrder)), 1);
  const auto what = expect_error([&] { reg.schema_by_id(5); }, errc::registry_not_found);
  EXPECT_NE(what.find(fake.root() + "/apis/ccompat/v7: GET /schemas/ids/5"), std::string::npos) << what;
  // Percent-encoded credentials are decoded.
  FakeRegistry odd({"--basic-auth", "bob:p@ss:word"});
  SchemaRegistry reg2(fast_config("http://bob:p%40ss%3Aword@127.0.0.1:" + std::to_string(odd.port())));
  EXPECT_EQ(reg2.register_schema("s", avro(kOrder)), 1);
}

TEST(SchemaRegistry, BearerToken) {
  FakeRegistry fake({"--bearer", kCanaryToken});
  {
    SchemaRegistry anonymous(fast_config(fake.root()));
    expect_error([&] { anonymous.schema_by_id(1); }, errc::registry_rejected);
  }
  auto config = fast_config(fake.root());
  config.bearer_token = kCanaryToken;
  SchemaRegistry reg(config);
  EXPECT_EQ(reg.register_schema("s", avro(kOrder)), 1);
  fake.fail(503, 100);
  expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable);
}

TEST(SchemaRegistry, BadConfigurationIsReportedWithoutSecrets) {
  auto config = fast_config("");
  expect_error([&] { SchemaRegistry r(config); }, errc::config_missing);
  config.url = std::string("ftp://u:") + kCanaryPassword + "@host";
  expect_error([&] { SchemaRegistry r(config); }, errc::config_invalid_value);
  config.url = std::string("http://u:") + kCanaryPassword + "@[bad";
  expect_error([&] { SchemaRegistry r(config); }, errc::config_invalid_value);
  config.url = "http://localhost:8081";
  config.basic_auth = kCanaryPassword;  // no colon
  expect_error([&] { SchemaRegistry r(config); }, errc::config_invalid_value);
  config.basic_auth = std::string("u:") + kCanaryPassword;
  config.bearer_token = kCanaryToken;
  expect_error([&] { SchemaRegistry r(config); }, errc::config_invalid_value);
}

TEST(SchemaRegistry, ResolvesReferencesDependenciesFirst) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  // d <- b, d <- c, b <- a, c <- a (a diamond), and e unrelated.
  const auto d = avro(R"({"type":"fixed","name":"shop.D","size":4})");
  reg.register_schema("d", d);
  const auto b = avro(R"({"type":"record","name":"shop.B","fields":[{"name":"d","type":"shop.D"}]})",
                      {{"shop.D", "d", 1}});
  reg.register_schema("b", b);
  const auto c = avro(R"({"type":"record","name":"shop.C","fields":[{"name":"d","type":"shop.D"}]})",
                      {{"shop.D", "d", 1}});
  reg.register_schema("c", c);
  const auto a = avro(R"({"type":"record","name":"shop.A","fields":[{"name":"b","type":"shop.B"},)"
                      R"({"name":"c","type":"shop.C"}]})",
                      {{"shop.B", "b", 1}, {"shop.C", "c", -1}});
  const auto a_id = reg.register_schema("a", a);

  const auto fetched = reg.schema_by_id(a_id);
  ASSERT_EQ(fetched->references.size(), 2U);
  EXPECT_EQ(fetched->references[1].version, -1);
  const auto resolved = reg.resolve_references(*fetched);
  std::vector<std::string> names;
  for (const auto& r : resolved) {
    names.push_back(r.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"shop.D", "shop.B", "shop.C"}));
  EXPECT_EQ(resolved[0].schema->text, d.text);
  EXPECT_EQ(resolved[2].schema->subject, "c");
  EXPECT_EQ(resolved[2].schema->version, 1);
  EXPECT_TRUE(reg.resolve_references(d).empty());

  // A reference to a subject that does not exist.
  const auto dangling = avro("{}", {{"x", "nowhere", 1}});
  expect_error([&] { reg.resolve_references(dangling); }, errc::registry_not_found);
}

TEST(SchemaRegistry, ReferenceCyclesEnd) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  // A cycle through "latest": p v2 -> q v1 -> p latest (= p v2).
  reg.register_schema("p", avro(R"({"type":"fixed","name":"P","size":1})"));
  reg.register_schema("q", avro(R"({"type":"record","name":"Q","fields":[{"name":"p","type":"P"}]})",
                                {{"P", "p", -1}}));
  const auto p2 = avro(R"({"type":"record","name":"P","fields":[{"name":"q","type":["null","Q"]}]})",
                       {{"Q", "q", 1}});
  reg.register_schema("p", p2);
  const auto resolved = reg.resolve_references(p2);
  ASSERT_EQ(resolved.size(), 2U);
  EXPECT_EQ(resolved[0].name, "P");
  EXPECT_EQ(resolved[0].schema->version, 2);
  EXPECT_EQ(resolved[1].name, "Q");
}

TEST(SchemaRegistry, ConcurrentCallersShareOneClient) {
  FakeRegistry fake;
  SchemaRegistry reg(fast_config(fake.root()));
  for (int i = 0; i < 4; ++i) {
    reg.register_schema("s", avro("{\"type\":\"fixed\",\"name\":\"F\",\"size\":" + std::to_string(i + 1) + "}"));
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (reg.schema_by_id(1 + (i % 4))->id == 1 + (i % 4)) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 80);
  EXPECT_EQ(fake.seen("/schemas/ids/1") + fake.seen("/schemas/ids/2") + fake.seen("/schemas/ids/3") +
                fake.seen("/schemas/ids/4"),
            4);
}

// TLS material: a CA, a server certificate for 127.0.0.1 signed by it, a
// client certificate with an encrypted key, and an unrelated CA.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("kc-registry-tls");
    const auto& d = *dir_;
    const auto p = [&](const char* name) { return (d / name).string(); };
    {
      std::FILE* f = std::fopen(p("server.ext").c_str(), "w");
      std::fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\n", f);
      std::fclose(f);
    }
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"};
    const auto req = [&](std::vector<std::string> extra) {
      std::vector<std::string> a = {"openssl", "req"};
      a.insert(a.end(), ec.begin(), ec.end());
      a.insert(a.end(), extra.begin(), extra.end());
      run(a, d);
    };
    req({"-x509", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=kc test CA"});
    req({"-x509", "-nodes", "-keyout", p("other.key"), "-out", p("other.pem"), "-days", "2", "-subj", "/CN=other CA"});
    req({"-nodes", "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=localhost"});
    run({"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
         "-CAcreateserial", "-out", p("server.pem"), "-days", "2", "-extfile", p("server.ext")},
        d);
    req({"-keyout", p("client.key"), "-passout", std::string("pass:") + kCanaryKeyPassword, "-out", p("client.csr"),
         "-subj", "/CN=kc client"});
    run({"openssl", "x509", "-req", "-in", p("client.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
         "-CAcreateserial", "-out", p("client.pem"), "-days", "2"},
        d);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string file(const char* name) { return (*dir_ / name).string(); }

  static TempDir* dir_;
};
TempDir* Tls::dir_ = nullptr;

TEST_F(Tls, VerifiesTheServerWithTheConfiguredCa) {
  FakeRegistry fake({"--tls-cert", file("server.pem"), "--tls-key", file("server.key")}, "https", file("ca.pem"));
  auto config = fast_config(fake.root());
  config.ca_file = file("ca.pem");
  SchemaRegistry reg(config);
  EXPECT_EQ(reg.register_schema("s", avro(kOrder)), 1);
  EXPECT_EQ(reg.schema_by_id(1)->text, kOrder);
}

TEST_F(Tls, WrongCaFailsAtOnce) {
  FakeRegistry fake({"--tls-cert", file("server.pem"), "--tls-key", file("server.key")}, "https", file("ca.pem"));
  for (const std::string& ca : {file("other.pem"), std::string()}) {  // another CA; the system store
    auto config = fast_config(fake.root());
    config.ca_file = ca;
    SchemaRegistry reg(config);
    bool retriable = true;
    const auto what = expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable, &retriable);
    EXPECT_FALSE(retriable) << what;
    EXPECT_EQ(reg.requests(), 0U);
  }
  auto config = fast_config(fake.root());
  config.verify_tls = false;
  SchemaRegistry insecure(config);
  EXPECT_EQ(insecure.register_schema("s", avro(kOrder)), 1);
}

TEST_F(Tls, MutualTls) {
  FakeRegistry fake({"--tls-cert", file("server.pem"), "--tls-key", file("server.key"), "--tls-client-ca",
                     file("ca.pem"), "--basic-auth", std::string("u:") + kCanaryPassword},
                    "https");
  auto config = fast_config(fake.root());
  config.ca_file = file("ca.pem");
  config.basic_auth = std::string("u:") + kCanaryPassword;
  config.max_retries = 1;
  {
    SchemaRegistry no_cert(config);
    expect_error([&] { no_cert.schema_by_id(1); }, errc::registry_unavailable);
  }
  {
    auto wrong = config;
    wrong.cert_file = file("client.pem");
    wrong.key_file = file("client.key");
    wrong.key_password = std::string(kCanaryKeyPassword) + "x";
    SchemaRegistry reg(wrong);
    bool retriable = true;
    expect_error([&] { reg.schema_by_id(1); }, errc::registry_unavailable, &retriable);
    EXPECT_FALSE(retriable);
  }
  config.cert_file = file("client.pem");
  config.key_file = file("client.key");
  config.key_password = kCanaryKeyPassword;
  SchemaRegistry reg(config);
  EXPECT_EQ(reg.register_schema("s", avro(kOrder)), 1);
  expect_error([&] { reg.schema_by_id(9); }, errc::registry_not_found);
}

}  // namespace
}  // namespace kc::schema
