// A test fixture owning a fresh SQLite database path per test (the file and
// its -wal/-shm companions removed before and after), shared by the SQLite
// sink and offset store tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace kc::test {

class SqliteFileTest : public ::testing::Test {
 protected:
  /// `prefix` names the file: <tmp>/<prefix><pid>-<test name>.db
  explicit SqliteFileTest(const char* prefix) : prefix_(prefix) {}

  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             (prefix_ + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    remove();
  }
  void TearDown() override { remove(); }
  void remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }

  std::string path_;

 private:
  std::string prefix_;
};

}  // namespace kc::test
