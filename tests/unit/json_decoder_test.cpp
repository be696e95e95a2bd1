#include <gtest/gtest.h>

#include <string>

#include "kc/decode.hpp"

namespace {
kc::Bytes bytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
}  // namespace

TEST(JsonDecoder, MinifiesValidDocumentsToOneLine) {
  kc::JsonDecoder d;
  std::string out = "prefix:";
  std::string err;
  ASSERT_TRUE(d.decode(bytes("{\n  \"a\" : [1, 2],\n  \"s\": \"x y\"\n}\n"), out, err)) << err;
  EXPECT_EQ(out, R"(prefix:{"a":[1,2],"s":"x y"})");
}

TEST(JsonDecoder, RejectsMalformedWithReasonAndLeavesOutputAlone) {
  kc::JsonDecoder d;
  std::string out = "keep";
  std::string err;
  for (std::string_view bad : {"{\"order_id\": \"1\", \"amount\": ", "", "{", "nul", "[1,]", "\"\xff\xfe\""}) {
    EXPECT_FALSE(d.decode(bytes(bad), out, err)) << bad;
    EXPECT_EQ(out, "keep");
    EXPECT_NE(err.find("JSON"), std::string::npos) << err;
  }
}

TEST(JsonDecoder, EnforcesSizeAndDepthLimits) {
  kc::JsonDecoder d(kc::DecodeLimits{64, 8});
  std::string out;
  std::string err;
  EXPECT_FALSE(d.decode(bytes(std::string(100, ' ')), out, err));
  EXPECT_NE(err.find("exceeds"), std::string::npos);
  EXPECT_FALSE(d.decode(bytes("[[[[[[[[[[[[1]]]]]]]]]]]]"), out, err));
  EXPECT_TRUE(d.decode(bytes("[[1]]"), out, err)) << err;
}

TEST(JsonDecoder, ReusesBuffersAcrossDocumentsOfGrowingSize) {
  kc::JsonDecoder d;
  std::string err;
  for (std::size_t n = 1; n < 5000; n *= 3) {
    std::string doc = "[\"" + std::string(n, 'a') + "\"]";
    std::string out;
    ASSERT_TRUE(d.decode(bytes(doc), out, err)) << err;
    EXPECT_EQ(out, doc);
  }
}

TEST(JsonDecoder, KeepsSingleLineDocumentsByteForByte) {
  kc::JsonDecoder d;
  std::string out;
  std::string err;
  ASSERT_TRUE(d.decode(bytes(R"( {"a": 1,  "b": "x\ny"} )"), out, err)) << err;
  EXPECT_EQ(out, R"( {"a": 1,  "b": "x\ny"} )");  // escaped \n is not a line break
}

TEST(JsonDecoder, ValidateChecksWithoutOutput) {
  kc::JsonDecoder d;
  std::string err;
  EXPECT_TRUE(d.validate(bytes(R"({"a":[1,2,{"b":null}]})"), err)) << err;
  EXPECT_FALSE(d.validate(bytes(R"({"a":[1,2,{"b":nul}]})"), err));
  EXPECT_NE(err.find("invalid JSON"), std::string::npos);
}
