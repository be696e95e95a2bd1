// Decodes arbitrary bytes against fixed schemas: a proto3 file with recursive
// messages, maps, oneofs and well-known types, and a proto2 file with groups,
// required fields and extensions. The first byte picks the message (index
// path) and the depth limit; the rest is the payload. A decoded record must be
// one line, and a proto3 one must survive a JSON round trip unchanged
// (libprotobuf 3.21's JSON converter drops proto2 groups and extensions, so
// proto2 records are only decoded).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kc/error.hpp"
#include "schema/protobuf/protobuf.hpp"

namespace pb = kc::schema::detail::protobuf;

namespace {

constexpr std::string_view kTree = R"(syntax = "proto3";
package fuzz;
import "google/protobuf/timestamp.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "common/leaf.proto";

message Tree {
  enum Kind { KIND_UNSPECIFIED = 0; LEAF = 1; BRANCH = 2; }
  message Edge { string label = 1; Tree to = 2; map<string, common.Leaf> tags = 3; }
  string id = 1;
  Kind kind = 2;
  repeated Tree children = 3;
  map<string, Tree> by_name = 4;
  map<int64, common.Leaf> leaves = 5;
  oneof value { common.Leaf leaf = 6; string text = 7; int64 number = 8; bool flag = 9; Edge edge = 18; }
  repeated int32 packed = 10;
  repeated fixed64 fixed = 11;
  google.protobuf.Timestamp at = 12;
  google.protobuf.Struct attrs = 13;
  google.protobuf.Any any = 14;
  google.protobuf.Duration took = 15;
  google.protobuf.StringValue note = 16;
  optional uint64 maybe = 17;
  repeated Kind kinds = 19;
}
message Forest { repeated Tree trees = 1; map<uint32, Forest> sub = 2; }
)";

constexpr std::string_view kLeaf = R"(syntax = "proto3";
package common;
message Leaf { string name = 1; bytes data = 2; sint64 weight = 3; fixed32 f32 = 4; double d = 5; float f = 6; }
)";

constexpr std::string_view kLegacy = R"(syntax = "proto2";
package legacy;
message Legacy {
  required int32 id = 1;
  optional group Item = 2 { optional string s = 3; repeated Legacy nested = 4; }
  repeated Legacy more = 5;
  optional string text = 6 [default = "x"];
  optional bytes raw = 7;
  extensions 100 to 200;
}
extend Legacy { optional string ext = 100; }
)";

struct Target {
  const pb::Schema* schema;
  std::vector<int> path;
};

// json -> binary -> json again; false when either step fails (with a message
// unless `quiet`).
bool round_trip(const pb::Schema& schema, const std::vector<int>& path, const std::string& json, std::string& out,
                bool quiet = false) {
  std::string binary;
  try {
    pb::encode_json(schema, path, json, binary);
  } catch (const kc::Error& e) {
    if (!quiet) std::fprintf(stderr, "re-encoding failed: %s\n%s\n", e.what(), json.c_str());
    return false;
  }
  std::string error;
  const kc::Bytes bytes(reinterpret_cast<const std::byte*>(binary.data()), binary.size());
  if (!pb::decode_json(schema, path, bytes, {}, out, error)) {
    std::fprintf(stderr, "re-decoding failed: %s\n%s\n", error.c_str(), json.c_str());
    return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto tree = pb::parse(kTree, {{"common/leaf.proto", std::string(kLeaf)}});
  static const auto legacy = pb::parse(kLegacy);
  static const std::vector<Target> targets = {
      {tree.get(), {0}},      {tree.get(), {0, 0}}, {tree.get(), {1}}, {legacy.get(), {0}},
      {legacy.get(), {0, 0}}, {tree.get(), {}},     {tree.get(), {2}}, {tree.get(), {0, 5}},
  };
  if (size == 0) return 0;
  const Target& target = targets[data[0] % targets.size()];
  kc::DecodeLimits limits;
  if (data[0] & 0x80) limits.max_depth = 8;
  const kc::Bytes payload(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  std::string out = "x";
  std::string error;
  if (!pb::decode_json(*target.schema, target.path, payload, limits, out, error)) {
    if (out != "x" || error.empty() || error.find('\n') != std::string::npos) std::abort();
    return 0;
  }
  const std::string json = out.substr(1);
  if (json.find('\n') != std::string::npos) std::abort();
  if (target.schema != tree.get()) return 0;

  // The JSON form encodes back, and after one such round trip the JSON is a
  // fixed point. (Not after zero: the first trip may normalise, e.g. a
  // double -0.0 prints as -0, which parses back as the default 0 and is then
  // omitted.) Any is exempt from the first trip: the printer renders an Any
  // with an empty value whatever its type URL, the parser insists on a
  // resolvable one.
  const bool has_any = json.find("\"@type\"") != std::string::npos;
  std::string json1;
  if (!round_trip(*target.schema, target.path, json, json1, has_any)) {
    if (has_any) return 0;
    std::abort();
  }
  std::string json2;
  if (!round_trip(*target.schema, target.path, json1, json2)) std::abort();
  if (json2 != json1) {
    std::fprintf(stderr, "JSON round trip is not stable:\n%s\n%s\n%s\n", json.c_str(), json1.c_str(), json2.c_str());
    std::abort();
  }
  return 0;
}
