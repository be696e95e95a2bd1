// Confluent's wire-format header from arbitrary bytes, in both modes. A
// header that parses must re-encode to bytes that parse to the same header,
// no longer than what was consumed (equal when the input used minimal
// varints and not the [0] shorthand's long form), with the payload intact.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "schema/wire.hpp"

namespace {

using kc::Bytes;
using kc::schema::detail::WireHeader;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void one_mode(Bytes in, bool protobuf) {
  WireHeader h;
  std::string error;
  if (!kc::schema::detail::parse_wire_header(in, protobuf, h, error)) {
    check(!error.empty() && error.find('\n') == std::string::npos);
    return;
  }
  check(h.schema_id >= 0);
  check(h.message_indexes.size() <= kc::schema::detail::kMaxMessageIndexes);
  check(protobuf || h.message_indexes.empty());
  check(h.payload.data() + h.payload.size() == in.data() + in.size());
  const std::size_t consumed = in.size() - h.payload.size();

  std::string encoded;
  kc::schema::detail::append_wire_header(encoded, h.schema_id);
  if (protobuf) {
    kc::schema::detail::append_message_indexes(encoded, h.message_indexes);
  }
  check(encoded.size() <= consumed);
  // The first five bytes are fixed-width: always identical.
  check(std::equal(encoded.begin(), encoded.begin() + 5, reinterpret_cast<const char*>(in.data())));
  if (!protobuf) {
    check(encoded.size() == consumed);
  }
  encoded.append(reinterpret_cast<const char*>(h.payload.data()), h.payload.size());

  WireHeader again;
  const Bytes re{reinterpret_cast<const std::byte*>(encoded.data()), encoded.size()};
  check(kc::schema::detail::parse_wire_header(re, protobuf, again, error));
  check(again.schema_id == h.schema_id);
  check(again.message_indexes == h.message_indexes);
  check(again.payload.size() == h.payload.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in{reinterpret_cast<const std::byte*>(data), size};
  one_mode(in, false);
  one_mode(in, true);
  return 0;
}
