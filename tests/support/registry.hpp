// A Schema Registry for tests (tests/support/fake_registry.py, Confluent's
// REST subset) in a child process, and the Python of the test virtualenv
// (confluent-kafka with its serializers) for cross-checks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/common.hpp"
#include "support/subprocess.hpp"

namespace kc::test {

/// Starts fake_registry.py on a free loopback port with `extra_args` (e.g.
/// {"--basic-auth", "u:p"}) and waits until it listens. Stops it (SIGKILL)
/// on destruction. Throws kc::test::Failure when it does not come up within
/// 20 s.
class FakeRegistry {
 public:
  explicit FakeRegistry(std::vector<std::string> extra_args = {});
  ~FakeRegistry();
  FakeRegistry(const FakeRegistry&) = delete;
  FakeRegistry& operator=(const FakeRegistry&) = delete;

  /// http(s)://127.0.0.1:PORT
  const std::string& url() const noexcept { return url_; }
  /// Its stderr log (one line per request).
  std::string log() const;

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> proc_;
  std::string url_;
};

/// One HTTP request to a fake registry's test hooks (POST /_admin/fail,
/// /_admin/delay, /_admin/reset; GET /_admin/stats: see fake_registry.py),
/// made with libcurl, never through the client under test. `base_url` is the
/// registry's root (FakeRegistry::url()), `path` starts with '/', a non-empty
/// `body` is sent as JSON, and a non-empty `ca_file` verifies an https
/// registry. Blocks up to 10 s; callable from any thread. Returns the
/// answer's body; throws kc::test::Failure on a transport error or an answer
/// other than 2xx.
std::string registry_admin(const std::string& base_url, const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& ca_file = "");

/// What GET /_admin/stats reports: the API requests the fake has answered
/// since it started or was reset (its test hooks are not counted).
struct RegistryStats {
  std::int64_t requests = 0;                    ///< in total
  std::map<std::string, std::int64_t> by_path;  ///< by request path

  /// The requests whose path starts with `prefix`.
  std::int64_t starting_with(std::string_view prefix) const;
};

/// GET /_admin/stats through registry_admin() (same blocking, `ca_file` and
/// errors); also throws kc::test::Failure when the answer is not the
/// expected JSON.
RegistryStats registry_stats(const std::string& base_url, const std::string& ca_file = "");

/// The path of fake_registry.py in the source tree.
std::filesystem::path fake_registry_script();

/// The test virtualenv's python ($KC_CACHE/venv, made by
/// scripts/install-deps --python). Throws kc::test::Failure when missing.
std::string venv_python();

}  // namespace kc::test
