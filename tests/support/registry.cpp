#include "support/registry.hpp"

#include <curl/curl.h>
#include <simdjson.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace kc::test {

std::filesystem::path fake_registry_script() {
  return std::filesystem::path(KC_SOURCE_DIR) / "tests" / "support" / "fake_registry.py";
}

std::string venv_python() {
  const char* cache = std::getenv("KC_CACHE");
  const char* home = std::getenv("HOME");
  const std::filesystem::path base =
      cache != nullptr && *cache != '\0' ? std::filesystem::path(cache)
                                         : std::filesystem::path(home != nullptr ? home : "/root") / ".cache" / "kc";
  const auto python = base / "venv" / "bin" / "python";
  if (!std::filesystem::exists(python)) {
    throw Failure("no test virtualenv at " + python.string() + ": run scripts/install-deps --python (make test does)");
  }
  return python.string();
}

std::string registry_admin(const std::string& base_url, const std::string& method, const std::string& path,
                           const std::string& body, const std::string& ca_file) {
  const std::string url = base_url + path;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), &curl_easy_cleanup);
  const std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(
      curl_slist_append(nullptr, "Content-Type: application/json"), &curl_slist_free_all);
  if (!c || !headers) {
    throw Failure(method + " " + url + ": cannot set up libcurl");
  }
  std::string out;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, 10000L);
  if (!body.empty()) {
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.c_str());
  }
  if (!ca_file.empty()) {
    curl_easy_setopt(c.get(), CURLOPT_CAINFO, ca_file.c_str());
  }
  curl_easy_setopt(
      c.get(), CURLOPT_WRITEFUNCTION, +[](char* d, std::size_t s, std::size_t n, void* o) {
        static_cast<std::string*>(o)->append(d, s * n);
        return s * n;
      });
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &out);
  if (const auto rc = curl_easy_perform(c.get()); rc != CURLE_OK) {
    throw Failure(method + " " + url + ": " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    throw Failure(method + " " + url + ": HTTP " + std::to_string(status) + ": " + out);
  }
  return out;
}

std::int64_t RegistryStats::starting_with(std::string_view prefix) const {
  std::int64_t n = 0;
  for (const auto& [path, count] : by_path) {
    if (path.starts_with(prefix)) {
      n += count;
    }
  }
  return n;
}

RegistryStats registry_stats(const std::string& base_url, const std::string& ca_file) {
  const auto text = registry_admin(base_url, "GET", "/_admin/stats", "", ca_file);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object by_path;
  RegistryStats stats;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS || doc["requests"].get(stats.requests) != simdjson::SUCCESS ||
      doc["by_path"].get(by_path) != simdjson::SUCCESS) {
    throw Failure("GET " + base_url + "/_admin/stats: unexpected answer: " + text);
  }
  for (auto [path, count] : by_path) {
    std::int64_t n = 0;
    if (count.get(n) != simdjson::SUCCESS) {
      throw Failure("GET " + base_url + "/_admin/stats: unexpected answer: " + text);
    }
    stats.by_path[std::string(path)] = n;
  }
  return stats;
}

FakeRegistry::FakeRegistry(std::vector<std::string> extra_args) : dir_("kc-registry") {
  const auto port_file = dir_ / "port";
  std::vector<std::string> args = {fake_registry_script().string(), "--port", "0", "--port-file", port_file.string()};
  bool tls = false;
  for (const auto& a : extra_args) {
    tls = tls || a == "--tls-cert";
    args.push_back(a);
  }
  proc_ = std::make_unique<Subprocess>("/usr/bin/python3", args, dir_ / "stdout", dir_ / "stderr");
  std::string port;
  const bool up = wait_until(
      [&] {
        port = read_file(port_file);
        while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) {
          port.pop_back();
        }
        return !port.empty() || !proc_->running();
      },
      std::chrono::seconds(20));
  if (!up || port.empty()) {
    throw Failure("fake schema registry did not start: " + tail(read_file(dir_ / "stderr")));
  }
  url_ = std::string(tls ? "https" : "http") + "://127.0.0.1:" + port;
}

FakeRegistry::~FakeRegistry() = default;

std::string FakeRegistry::log() const {
  return read_file(proc_->stderr_path());
}

}  // namespace kc::test
