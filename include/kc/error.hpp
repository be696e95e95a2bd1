// kc::Error: the one exception type kc throws, for construction, configuration
// and misuse. Per-message conditions on the hot path are values (kc::Outcome),
// never exceptions.
#pragma once

#include <string>
#include <system_error>

namespace kc {

/// Error codes of kc's own category. Kafka errors keep librdkafka's code in
/// the message text; `kafka` marks them.
enum class errc {
  config_unknown_key = 1,  ///< a configuration key that kc does not know
  config_invalid_value,    ///< a known key with a value that does not parse
  config_missing,          ///< a required setting is absent
  config_forbidden,        ///< a setting kc owns (enable.auto.commit=true, ...)
  kafka,                   ///< librdkafka reported an error
  kafka_fatal,             ///< librdkafka reported a fatal error: the client is unusable
  io,                      ///< file or socket error outside librdkafka
  misuse,                  ///< an API called in a state that does not allow it
  schema_invalid,          ///< a schema that does not parse, or two that do not resolve
  encode_failed,           ///< a value that does not match the schema it is encoded with
  registry_not_found,      ///< the Schema Registry has no such schema, subject or version
  registry_unavailable,    ///< the Schema Registry could not be reached or failed (5xx); retriable
  registry_rejected,       ///< the Schema Registry refused a request (4xx: auth, incompatible, ...)
  queue_full,              ///< a producer's local queue is full (queue.buffering.max.messages/kbytes); retriable
};

/// The error category of kc::errc; name "kc".
const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Thrown by kc for construction, configuration and misuse.
/// `fatal()` says the object that threw cannot be used any more;
/// `retriable()` says the same call may succeed later (e.g. a broker was down).
class Error : public std::system_error {
 public:
  Error(errc code, const std::string& what, bool fatal = false, bool retriable = false)
      : std::system_error(make_error_code(code), what), fatal_(fatal), retriable_(retriable) {}

  bool fatal() const noexcept { return fatal_; }
  bool retriable() const noexcept { return retriable_; }

 private:
  bool fatal_;
  bool retriable_;
};

}  // namespace kc

template <>
struct std::is_error_code_enum<kc::errc> : std::true_type {};
