// Generic test fixtures: the broker address, unique names, waiting for a
// condition, scratch directories.
//
// Errors are thrown as kc::test::Failure (a std::runtime_error). GoogleTest
// reports an exception that leaves a test body as a failure of that test with
// the exception's message, and the test stops there; that is how these
// helpers fail a test (never by skipping it).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace kc::test {

/// Thrown by the fixtures; the message says what went wrong and how to fix it.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The real broker's bootstrap address from KC_TEST_BOOTSTRAP. Throws Failure
/// (so the test FAILS, it is not skipped) with instructions when it is unset.
std::string bootstrap();

/// The test PostgreSQL server's URI from KC_TEST_POSTGRES_URI, and the
/// state file of scripts/postgres that runs it from KC_TEST_POSTGRES_STATE
/// (for tests that take it down and bring it back). Each throws Failure (the
/// test FAILS, it is not skipped) with instructions when unset.
std::string postgres_uri();
std::string postgres_state();

/// A name nobody else uses: `<prefix>-<pid>-<counter>-<random>`; valid as a
/// Kafka topic or group name when `prefix` is. Thread-safe.
std::string unique_name(std::string_view prefix);

/// Calls `pred` every `every` until it returns true (returns true) or
/// `timeout` has passed (returns false, after one last call).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(50));

/// Seed for a test's randomness: KC_TEST_SEED if set (to replay a run), else
/// random. Tests print the seed they use.
unsigned test_seed();

/// `size` random bytes: a record that stays larger than `size` - a few bytes
/// when a producer compresses it (lz4 by default in kc), for tests that need
/// the broker to refuse a record as too large.
std::string incompressible(std::size_t size);

/// A fresh directory under $TMPDIR (or /tmp), removed by the destructor unless
/// the current test failed or KC_TEST_KEEP is set; then it is kept and its
/// path printed so its files (logs, sink output) can be inspected.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "kc-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Environment variables for the processes a test starts (they inherit the
/// test's environment): set by the constructor, unset by the destructor.
/// Use from the test's thread while no librdkafka client of the fixtures runs.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

/// The whole content of a file ("" if it does not exist).
std::string read_file(const std::filesystem::path& path);

/// The size of a file, 0 if it does not exist (yet).
std::uintmax_t file_size_or_zero(const std::filesystem::path& path);

/// The last `max_lines` lines of `text`, for failure messages.
std::string tail(std::string_view text, std::size_t max_lines = 40);

/// Sum of `v`, and `v` as "a,b,c" (for messages about offsets per partition).
std::int64_t sum(const std::vector<std::int64_t>& v);
std::string join(const std::vector<std::int64_t>& v);

}  // namespace kc::test
