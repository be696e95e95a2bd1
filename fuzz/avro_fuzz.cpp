// libFuzzer target for the Avro decoder. The first byte picks the case:
//   0: a record using every type and logical type (writer schema only),
//   1: a recursive tree type (depth and item limits),
//   2: writer-to-reader resolution (reordering, skips, defaults, promotions,
//      enum and union mapping).
// For cases 0 and 1 a successful decode must also re-encode (encode_json)
// and decode again to the same JSON: the encoder accepts exactly what the
// decoder renders.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kc/error.hpp"
#include "schema/avro/avro.hpp"

namespace avro_fuzz {

inline constexpr const char* kRich = R"({"type":"record","name":"Rich","namespace":"fz","fields":[
  {"name":"b","type":"boolean"},
  {"name":"i","type":"int"},
  {"name":"l","type":"long"},
  {"name":"f","type":"float"},
  {"name":"d","type":"double"},
  {"name":"s","type":"string"},
  {"name":"by","type":"bytes"},
  {"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
  {"name":"a","type":{"type":"array","items":["null","long","string"]}},
  {"name":"m","type":{"type":"map","values":"double"}},
  {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":4}},
  {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":2}},
  {"name":"date","type":{"type":"int","logicalType":"date"}},
  {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
  {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
  {"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
  {"name":"u","type":{"type":"string","logicalType":"uuid"}},
  {"name":"n","type":["null",{"type":"record","name":"Sub","fields":[
    {"name":"x","type":"null"},{"name":"y","type":{"type":"array","items":"null"}}]}]}]})";

inline constexpr const char* kTree = R"({"type":"record","name":"Tree","fields":[
  {"name":"label","type":["null","string"]},
  {"name":"kids","type":{"type":"array","items":"Tree"}},
  {"name":"attrs","type":{"type":"map","values":["null","Tree"]}}]})";

inline constexpr const char* kWriter = R"({"type":"record","name":"Order","namespace":"v1","fields":[
  {"name":"id","type":"string"},
  {"name":"qty","type":"int"},
  {"name":"legacy","type":{"type":"array","items":{"type":"map","values":"bytes"}}},
  {"name":"price","type":"float"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","LOST"]}},
  {"name":"u","type":["null","int","string"]}]})";

inline constexpr const char* kReader = R"({"type":"record","name":"Order","namespace":"v2","fields":[
  {"name":"price","type":"double"},
  {"name":"id","type":"bytes"},
  {"name":"currency","type":"string","default":"EUR"},
  {"name":"qty","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["UNKNOWN","PAID","NEW"],"default":"UNKNOWN"}},
  {"name":"u","type":["string","double","null"]},
  {"name":"extra","type":{"type":"array","items":"int"},"default":[1,2]}]})";

}  // namespace avro_fuzz

namespace {

namespace avro = kc::schema::detail::avro;

struct Schemas {
  std::shared_ptr<const avro::Schema> rich = avro::parse(avro_fuzz::kRich);
  std::shared_ptr<const avro::Schema> tree = avro::parse(avro_fuzz::kTree);
  std::shared_ptr<const avro::Schema> writer = avro::parse(avro_fuzz::kWriter);
  std::shared_ptr<const avro::Schema> reader = avro::parse(avro_fuzz::kReader);
  std::shared_ptr<const avro::Resolution> resolution = avro::resolve(writer, reader);
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Schemas s;
  if (size == 0) {
    return 0;
  }
  kc::DecodeLimits limits;
  limits.max_bytes = 4096;
  limits.max_depth = 24;
  limits.max_items = 512;
  const kc::Bytes payload(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const int which = data[0] % 3;
  const avro::Schema& writer = which == 0 ? *s.rich : which == 1 ? *s.tree : *s.writer;
  const avro::Resolution* resolution = which == 2 ? s.resolution.get() : nullptr;

  std::string json = "[";
  std::string error;
  const bool ok = avro::decode_json(writer, resolution, payload, limits, json, error);
  if (!ok && (json != "[" || error.empty())) {
    std::abort();  // failure must leave the output alone and say why
  }
  kc::Value value;
  if (avro::decode_value(writer, resolution, payload, limits, value, error) != ok) {
    std::abort();  // the two outputs share one walker: same verdict
  }
  if (!ok || resolution != nullptr) {
    return 0;
  }
  const std::string text = json.substr(1);
  std::string binary;
  try {
    avro::encode_json(writer, text, binary);
  } catch (const kc::Error&) {
    std::abort();  // the encoder must accept what the decoder renders
  }
  std::string again;
  kc::DecodeLimits roomy = limits;
  roomy.max_bytes = binary.size() + 1;
  if (!avro::decode_json(writer, nullptr, kc::Bytes(reinterpret_cast<const std::byte*>(binary.data()), binary.size()),
                         roomy, again, error) ||
      again != text) {
    std::abort();
  }
  return 0;
}
