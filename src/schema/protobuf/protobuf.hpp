// Protobuf: schemas from the registry (.proto text or a base64 serialized
// FileDescriptorProto, as confluent-kafka Python registers them), imports
// resolved through references, dynamic decoding to protobuf's JSON mapping.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kc/decode.hpp"
#include "kc/schema.hpp"

namespace kc::schema::detail::protobuf {

/// A named schema text: `name` is the import path ("common/money.proto").
struct NamedSchema {
  std::string name;
  std::string text;
};

/// A parsed file with its own descriptor pool. Immutable; shared between
/// threads.
class Schema;

/// Parses `text` (the main file) with `references` (the files it imports,
/// directly or not, any order). google/protobuf/*.proto well-known imports
/// resolve without references. Throws kc::Error(errc::schema_invalid).
std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<NamedSchema>& references = {});

/// The index path of message `full_name` (package-qualified; empty: the
/// first message of the file). Throws kc::Error(errc::schema_invalid).
std::vector<int> message_indexes(const Schema& schema, std::string_view full_name = {});

/// Decodes `payload` as the message at `indexes` and appends it as one line
/// of JSON (protobuf's JSON mapping: lowerCamelCase names, int64 as strings,
/// default values omitted) to `out`. On failure leaves `out` as it was, sets
/// `error` and returns false. Never throws but std::bad_alloc.
bool decode_json(const Schema& schema, const std::vector<int>& indexes, Bytes payload, const DecodeLimits& limits,
                 std::string& out, std::string& error);

/// Encodes a JSON document (protobuf's JSON mapping) as the message at
/// `indexes`, appended to `out` (without any wire header).
/// Throws kc::Error(errc::encode_failed).
void encode_json(const Schema& schema, const std::vector<int>& indexes, std::string_view json, std::string& out);

}  // namespace kc::schema::detail::protobuf
