#include "support/registry.hpp"

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
