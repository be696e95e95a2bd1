#include "support/common.hpp"
#include <numeric>

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

namespace kc::test {

std::string bootstrap() {
  const char* v = std::getenv("KC_TEST_BOOTSTRAP");
  if (v == nullptr || *v == '\0') {
    throw Failure(
        "KC_TEST_BOOTSTRAP is not set: this test needs the real Kafka broker. Start one with\n"
        "  export KC_TEST_BOOTSTRAP=$(scripts/kafka start)\n"
        "and stop it afterwards with `scripts/kafka stop` (or run `make test`, which does both).");
  }
  return v;
}

std::string postgres_uri() {
  const char* v = std::getenv("KC_TEST_POSTGRES_URI");
  if (v == nullptr || *v == '\0') {
    throw Failure(
        "KC_TEST_POSTGRES_URI is not set: this test needs a PostgreSQL server. Start one with\n"
        "  export KC_TEST_POSTGRES_STATE=/tmp/kc-postgres.state\n"
        "  export KC_TEST_POSTGRES_URI=$(KC_POSTGRES_STATE=$KC_TEST_POSTGRES_STATE scripts/postgres start)\n"
        "and stop it afterwards with `KC_POSTGRES_STATE=$KC_TEST_POSTGRES_STATE scripts/postgres stop` (or run "
        "`make test`, which does both).");
  }
  return v;
}

std::string postgres_state() {
  const char* v = std::getenv("KC_TEST_POSTGRES_STATE");
  if (v == nullptr || *v == '\0') {
    throw Failure(
        "KC_TEST_POSTGRES_STATE is not set: this test takes the PostgreSQL server down and brings it back with\n"
        "scripts/postgres, which needs the state file the server was started with:\n"
        "  export KC_TEST_POSTGRES_STATE=/tmp/kc-postgres.state\n"
        "  export KC_TEST_POSTGRES_URI=$(KC_POSTGRES_STATE=$KC_TEST_POSTGRES_STATE scripts/postgres start)\n"
        "(`make test` sets both).");
  }
  return v;
}

std::string unique_name(std::string_view prefix) {
  static std::atomic<unsigned> counter{0};
  static const unsigned salt = std::random_device{}();
  const unsigned n = counter.fetch_add(1);
  char rnd[16];
  std::snprintf(rnd, sizeof rnd, "%06x", (salt ^ (n * 2654435761u)) & 0xffffffu);
  return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n) + "-" + rnd;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout, std::chrono::milliseconds every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(every);
  }
  return pred();
}

unsigned test_seed() {
  if (const char* s = std::getenv("KC_TEST_SEED"); s != nullptr && *s != '\0') {
    return static_cast<unsigned>(std::strtoul(s, nullptr, 10));
  }
  return std::random_device{}();
}

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + std::string(prefix) + ".XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw Failure("cannot create a temporary directory from " + templ + ": " +
                  std::error_code(errno, std::generic_category()).message());
  }
  path_ = templ;
}

std::string incompressible(std::size_t size) {
  std::mt19937 rng(test_seed());
  std::string out(size, '\0');
  for (auto& c : out) {
    c = static_cast<char>(rng() & 0xff);
  }
  return out;
}

ScopedEnv::ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) : vars_(std::move(vars)) {
  for (const auto& [k, v] : vars_) {
    ::setenv(k.c_str(), v.c_str(), 1);
  }
}

ScopedEnv::~ScopedEnv() {
  for (const auto& [k, v] : vars_) {
    ::unsetenv(k.c_str());
  }
}

TempDir::~TempDir() {
  const bool failed = ::testing::Test::HasFailure();
  if (failed || std::getenv("KC_TEST_KEEP") != nullptr) {
    std::fprintf(stderr, "kept test files in %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {};
  }
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

std::uintmax_t file_size_or_zero(const std::filesystem::path& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

std::string tail(std::string_view text, std::size_t max_lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') {
    --pos;
  }
  std::size_t lines = 0;
  while (pos > 0) {
    const auto nl = text.rfind('\n', pos - 1);
    ++lines;
    if (nl == std::string_view::npos) {
      pos = 0;
      break;
    }
    if (lines == max_lines) {
      pos = nl + 1;
      break;
    }
    pos = nl;
  }
  return std::string(text.substr(pos));
}

std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0});
}

std::string join(const std::vector<std::int64_t>& v) {
  std::string out;
  for (auto x : v) {
    out += (out.empty() ? "" : ",") + std::to_string(x);
  }
  return out;
}

}  // namespace kc::test
