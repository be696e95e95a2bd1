// kc::metrics::Server over real HTTP on 127.0.0.1 (libcurl as the client).
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "kc/error.hpp"
#include "kc/metrics.hpp"

namespace kc::metrics {
namespace {

struct Response {
  long status = 0;
  std::string content_type;
  std::string body;
};

std::size_t append(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

Response get(std::uint16_t port, const std::string& path) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  Response r;
  const auto url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const auto rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    ADD_FAILURE() << "GET " << url << ": " << curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &r.status);
  const char* ct = nullptr;
  curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_TYPE, &ct);
  r.content_type = ct != nullptr ? ct : "";
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
