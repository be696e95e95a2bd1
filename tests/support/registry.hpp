// A Schema Registry for tests (tests/support/fake_registry.py, Confluent's
// REST subset) in a child process, and the Python of the test virtualenv
// (confluent-kafka with its serializers) for cross-checks.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
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

/// The path of fake_registry.py in the source tree.
std::filesystem::path fake_registry_script();

/// The test virtualenv's python ($KC_CACHE/venv, made by
/// scripts/install-deps --python). Throws kc::test::Failure when missing.
std::string venv_python();

}  // namespace kc::test
