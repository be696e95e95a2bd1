// The official JSON-Schema-Test-Suite (Debian's json-schema-test-suite) run
// against kc's JSON Schema module, one gtest case per draft. Cases valijson
// gets wrong are listed with a reason in jsonschema_suite_known_failures.txt;
// an unlisted failure fails the test, and so does a listed case that passes
// (so the list stays honest). Remote refs (http://localhost:1234/...) are
// served from the suite's remotes/ folder through the references mechanism:
// no network.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "kc/error.hpp"
#include "schema/jsonschema/jsonschema.hpp"

namespace {

namespace fs = std::filesystem;
namespace js = kc::schema::detail::jsonschema;

const fs::path kSuite = KC_JSON_SCHEMA_TEST_SUITE;
const fs::path kKnownFailures = KC_JSON_SCHEMA_KNOWN_FAILURES;
constexpr const char* kRemoteBase = "http://localhost:1234/";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// draft, file, group description, test description
using CaseKey = std::tuple<std::string, std::string, std::string, std::string>;

std::string describe(const CaseKey& k) {
  return std::get<0>(k) + "/" + std::get<1>(k) + " | " + std::get<2>(k) + " | " + std::get<3>(k);
}

// Tab-separated: draft, file, group description, test description, reason.
// '#' starts a comment line.
std::map<CaseKey, std::string> load_known_failures() {
  std::map<CaseKey, std::string> out;
  std::ifstream in(kKnownFailures);
  EXPECT_TRUE(in) << "cannot read the known-failures list " << kKnownFailures;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (;;) {
      const auto tab = line.find('\t', start);
      f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    EXPECT_EQ(f.size(), 5u) << "malformed line in " << kKnownFailures << ": " << line;
    if (f.size() != 5) continue;
    EXPECT_FALSE(f[4].empty()) << "a known failure needs a reason: " << line;
    out.emplace(CaseKey{f[0], f[1], f[2], f[3]}, f[4]);
  }
  return out;
}

// Every file under remotes/, named as the suite's tests refer to it.
std::vector<js::NamedSchema> remotes() {
  std::vector<js::NamedSchema> out;
  const fs::path root = kSuite / "remotes";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file() || e.path().extension() != ".json") continue;
    out.push_back({kRemoteBase + fs::relative(e.path(), root).generic_string(), read_file(e.path())});
  }
  return out;
}

class JsonSchemaSuite : public ::testing::TestWithParam<std::string> {};

TEST(JsonSchemaSuiteInstall, SuiteIsInstalled) {
  // Never skip: without the suite this module is not tested against the
  // drafts it claims (apt-get install json-schema-test-suite).
  ASSERT_TRUE(fs::is_directory(kSuite / "tests"))
      << kSuite << " is missing: install Debian's json-schema-test-suite package";
  ASSERT_TRUE(fs::is_directory(kSuite / "remotes")) << kSuite / "remotes"
                                                    << " is missing";
}

TEST_P(JsonSchemaSuite, MatchesTheSuiteExceptKnownFailures) {
  const std::string draft = GetParam();
  const fs::path dir = kSuite / "tests" / draft;
  ASSERT_TRUE(fs::is_directory(dir)) << dir << " is missing: install Debian's json-schema-test-suite package (2.0.0)";

  const auto known = load_known_failures();
  const auto refs = remotes();
  ASSERT_FALSE(refs.empty()) << "no remote schemas under " << kSuite / "remotes";

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no test files in " << dir;

  std::size_t total = 0;
  std::size_t passed = 0;
  std::size_t known_failed = 0;
  std::set<CaseKey> seen;
  for (const auto& file : files) {
    const auto groups = nlohmann::json::parse(read_file(file));
    const std::string name = file.filename().string();
    for (const auto& group : groups) {
      const std::string group_desc = group.at("description").get<std::string>();
      std::shared_ptr<const js::Schema> schema;
      std::string parse_error;
      try {
        // The suite's schemas do not say their draft: the folder does.
        nlohmann::json schema_doc = group.at("schema");
        if (schema_doc.is_object() && !schema_doc.contains("$schema")) {
          schema_doc["$schema"] = "http://json-schema.org/" +
                                  std::string(draft == "draft4"   ? "draft-04"
                                              : draft == "draft6" ? "draft-06"
                                                                  : "draft-07") +
                                  "/schema#";
        }
        schema = js::parse(schema_doc.dump(), refs);
      } catch (const kc::Error& e) {
        parse_error = e.what();
      }
      for (const auto& test : group.at("tests")) {
        const CaseKey key{draft, name, group_desc, test.at("description").get<std::string>()};
        seen.insert(key);
        ++total;
        const bool want = test.at("valid").get<bool>();
        std::string error;
        bool ok = false;
        std::string why;
        if (!schema) {
          why = "schema rejected: " + parse_error;
        } else {
          const bool got = js::validate(*schema, test.at("data").dump(), error);
          ok = got == want;
          if (!ok) why = want ? "rejected a valid document: " + error : "accepted an invalid document";
        }
        const auto listed = known.find(key);
        if (ok) {
          ++passed;
          EXPECT_EQ(listed, known.end()) << "listed as a known failure but passes now (remove it from "
                                         << kKnownFailures.filename() << "): " << describe(key);
        } else if (listed != known.end()) {
          ++known_failed;
        } else {
          ADD_FAILURE() << "unexpected failure: " << describe(key) << "\n  " << why
                        << "\n  data: " << test.at("data").dump().substr(0, 200);
        }
      }
    }
  }
  for (const auto& [key, reason] : known) {
    if (std::get<0>(key) == draft) {
      EXPECT_TRUE(seen.contains(key)) << "known failure not in the suite (stale entry): " << describe(key);
    }
  }
  std::cout << draft << ": " << passed << "/" << total << " passed, " << known_failed << " known failures\n";
  RecordProperty("passed", static_cast<int>(passed));
  RecordProperty("total", static_cast<int>(total));
}

INSTANTIATE_TEST_SUITE_P(Drafts, JsonSchemaSuite, ::testing::Values("draft4", "draft6", "draft7"),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
