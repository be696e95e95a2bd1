#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "kc/error.hpp"
#include "kc/sink.hpp"

namespace {

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
  const auto p = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
  return p;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(JsonLinesSink, OpeningDropsAPartialLastLine) {
  const auto p = temp_file("kc-trim", "{\"a\":1}\n{\"b\":2}\n{\"topic\":\"t\",\"parti");
  { auto sink = kc::make_sink("jsonl:" + p.string(), kc::KeyFormat::string, kc::ValueFormat::json); }
  EXPECT_EQ(read(p), "{\"a\":1}\n{\"b\":2}\n");
  std::filesystem::remove(p);
}

TEST(JsonLinesSink, OpeningKeepsCompleteFilesAndDropsALoneFragment) {
  const auto whole = temp_file("kc-whole", "{\"a\":1}\n");
  { auto sink = kc::make_sink("jsonl:" + whole.string(), kc::KeyFormat::string, kc::ValueFormat::json); }
  EXPECT_EQ(read(whole), "{\"a\":1}\n");
  // A fragment longer than one read chunk, with no newline at all.
  const auto lone = temp_file("kc-lone", std::string(200000, 'x'));
  { auto sink = kc::make_sink("jsonl:" + lone.string(), kc::KeyFormat::string, kc::ValueFormat::json); }
  EXPECT_EQ(read(lone), "");
  // A newline more than one chunk before the end.
  const auto far = temp_file("kc-far", "{}\n" + std::string(100000, 'y'));
  { auto sink = kc::make_sink("jsonl:" + far.string(), kc::KeyFormat::string, kc::ValueFormat::json); }
  EXPECT_EQ(read(far), "{}\n");
  std::filesystem::remove(whole);
  std::filesystem::remove(lone);
  std::filesystem::remove(far);
}

TEST(JsonLinesSink, UnknownSpecIsNamed) {
  try {
    kc::make_sink("kafka:out", kc::KeyFormat::string, kc::ValueFormat::json);
    FAIL();
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("kafka:out"), std::string::npos);
  }
}
