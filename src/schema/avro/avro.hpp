// Avro: schemas parsed from their JSON text, the binary decoder (with
// writer-to-reader resolution) and the encoder from JSON. Bounded against
// hostile input: see README.md.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kc/decode.hpp"
#include "kc/schema.hpp"

namespace kc::schema::detail::avro {

/// A parsed, immutable Avro schema. Shared between threads.
class Schema;

/// Parses `text` (an Avro schema in JSON). `references` are the texts of
/// schemas it refers to by name (Schema Registry references), in dependency
/// order: their named types are visible to the ones that follow and to `text`.
/// Throws kc::Error(errc::schema_invalid) naming what is wrong.
std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<std::string>& references = {});

/// Compiled writer-to-reader resolution (Avro spec "Schema Resolution").
/// Throws kc::Error(errc::schema_invalid) when the two do not match.
class Resolution;
std::shared_ptr<const Resolution> resolve(std::shared_ptr<const Schema> writer, std::shared_ptr<const Schema> reader);

/// Decodes one Avro binary datum written with `writer` (read as `reader`'s
/// shape when `resolution` is given) and appends it as one line of JSON to
/// `out` (rendering documented in README.md). On failure leaves `out` as it
/// was, sets a one-line `error` and returns false. Never throws but
/// std::bad_alloc. The whole payload must be consumed (trailing bytes are an
/// error). Thread-safe for distinct `out`.
bool decode_json(const Schema& writer, const Resolution* resolution, Bytes payload, const DecodeLimits& limits,
                 std::string& out, std::string& error);

/// Same, into a generic value.
bool decode_value(const Schema& writer, const Resolution* resolution, Bytes payload, const DecodeLimits& limits,
                  Value& out, std::string& error);

/// Encodes a JSON document (in the rendering decode_json produces; unions
/// also as Avro's JSON encoding {"type": value}) as an Avro binary datum
/// appended to `out`. Throws kc::Error(errc::encode_failed) naming the field
/// path on mismatch.
void encode_json(const Schema& schema, std::string_view json, std::string& out);

}  // namespace kc::schema::detail::avro
