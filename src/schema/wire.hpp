// Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then
// (Protobuf only) the message-index path, then the payload.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kc/types.hpp"

namespace kc::schema::detail {

/// The most message indexes a Protobuf header may carry (nesting depth of
/// the message in its file); longer lists are a decode error.
inline constexpr std::size_t kMaxMessageIndexes = 64;

struct WireHeader {
  std::int32_t schema_id = 0;
  /// Protobuf only: the path to the message type in the schema's file
  /// ([0] = first top-level message; [1, 0] = first nested type of the
  /// second top-level message). The single byte 0 on the wire stands for [0].
  std::vector<int> message_indexes;
  Bytes payload;  ///< the rest of the input (a view into it)
};

/// Parses the header. `protobuf` selects whether an index list follows the
/// id. Returns false with a one-line reason in `error` for a short buffer,
/// a wrong magic byte, a negative id or a bad/oversized index list.
/// Pure; any thread; never throws (but std::bad_alloc).
bool parse_wire_header(Bytes in, bool protobuf, WireHeader& out, std::string& error);

/// Appends magic byte and id.
void append_wire_header(std::string& out, std::int32_t schema_id);

/// Appends the index list (count then indexes, zigzag varints; [0] as the
/// single byte 0, as Confluent's serializers write it).
void append_message_indexes(std::string& out, const std::vector<int>& indexes);

}  // namespace kc::schema::detail
