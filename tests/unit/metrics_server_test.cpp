// kc::metrics::Server over real HTTP on 127.0.0.1 (libcurl as the client).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "kc/error.hpp"
#include "kc/metrics.hpp"
#include "support/http.hpp"

namespace kc::metrics {
namespace {

// A GET through the tests' libcurl client; a failed request fails the test.
kc::test::HttpResponse get(std::uint16_t port, const std::string& path) {
  const auto url = "http://127.0.0.1:" + std::to_string(port) + path;
  auto r = kc::test::http_get(url);
  if (r.status == 0) {
    ADD_FAILURE() << "GET " << url << ": " << r.error;
  }
  return r;
}

Server::Options loopback(std::uint16_t port = 0) {
  Server::Options o;
  o.bind = "127.0.0.1";
  o.port = port;
  return o;
}

Health ok() {
  return {};
}

TEST(MetricsServer, ServesTheRegistryAsPrometheusText) {
  Registry registry;
  auto& c = registry.counter("kc_test_total", "t", {"topic"}).with({"orders"});
  Server server(loopback(), registry, ok, ok);
  ASSERT_NE(server.port(), 0);
  c.inc(41);
  auto r = get(server.port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << r.content_type;
  EXPECT_NE(r.body.find("kc_test_total{topic=\"orders\"} 41\n"), std::string::npos) << r.body;
  c.inc();
  r = get(server.port(), "/metrics");  // rendered per request, not cached
  EXPECT_NE(r.body.find("kc_test_total{topic=\"orders\"} 42\n"), std::string::npos) << r.body;
}

TEST(MetricsServer, HealthAndReadinessAnswerWhatTheCallbacksSay) {
  Registry registry;
  std::atomic<bool> live{true};
  std::atomic<bool> ready{false};
  Server server(
      loopback(), registry,
      [&] {
        return live ? Health{} : Health{false, "poll loop stalled for 31 s"};
      },
      [&] {
        return ready ? Health{} : Health{false, "no partitions assigned"};
      });

  auto r = get(server.port(), "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  r = get(server.port(), "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "no partitions assigned\n");

  live = false;
  ready = true;
  r = get(server.port(), "/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "poll loop stalled for 31 s\n");
  r = get(server.port(), "/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
}

TEST(MetricsServer, ThrowingHealthCheckIsNotHealthy) {
  Registry registry;
  Server server(
      loopback(), registry, []() -> Health { throw std::runtime_error("boom"); }, nullptr);
  auto r = get(server.port(), "/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("boom"), std::string::npos) << r.body;
  EXPECT_EQ(get(server.port(), "/readyz").status, 200);  // no callback: ok
}

TEST(MetricsServer, UnknownPathIs404) {
  Registry registry;
  Server server(loopback(), registry, ok, ok);
  EXPECT_EQ(get(server.port(), "/").status, 404);
  EXPECT_EQ(get(server.port(), "/metrics/extra").status, 404);
}

TEST(MetricsServer, SecondServerOnTheSamePortFailsWithKcError) {
  Registry registry;
  Server first(loopback(), registry, ok, ok);
  try {
    Server second(loopback(first.port()), registry, ok, ok);
    FAIL() << "a second server bound port " << first.port();
  } catch (const kc::Error& e) {
    EXPECT_EQ(e.code(), make_error_code(errc::config_invalid_value));
    const std::string what = e.what();
    EXPECT_NE(what.find("metrics.port"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(first.port())), std::string::npos) << what;
  }
  EXPECT_EQ(get(first.port(), "/healthz").status, 200);  // the first one is unharmed
}

TEST(MetricsServer, StartsAndStopsQuickly) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    Server server(loopback(), registry, ok, ok);
  }
  Server server(loopback(), registry, ok, ok);
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

}  // namespace
}  // namespace kc::metrics
