// Schema Registry: the client, and the serializers and deserializers of
// Confluent's wire format for Avro, Protobuf and JSON Schema.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kc/decode.hpp"
#include "kc/types.hpp"

namespace kc {

/// A decoded value for C++ handlers: what the JSON rendering shows, with
/// bytes kept as bytes. Records and maps are objects (fields in schema order).
class Value {
 public:
  struct Blob {
    std::string data;  ///< raw bytes (Avro bytes/fixed)
    bool operator==(const Blob&) const = default;
  };
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;
  using Variant = std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Blob, Array, Object>;

  Value() = default;
  template <class T>
    requires std::is_constructible_v<Variant, T&&>
  Value(T&& v) : v_(std::forward<T>(v)) {}  // NOLINT(google-explicit-constructor)

  const Variant& variant() const noexcept { return v_; }
  Variant& variant() noexcept { return v_; }
  bool is_null() const noexcept { return std::holds_alternative<std::nullptr_t>(v_); }
  /// The field `name` of an object, or nullptr (also when not an object).
  const Value* find(std::string_view name) const noexcept;
  /// JSON text (bytes in base64), one line.
  std::string to_json() const;
  bool operator==(const Value&) const = default;

 private:
  Variant v_;
};

namespace schema {

enum class Format { avro, protobuf, json };

/// "avro" | "protobuf" | "jsonschema" (also "json"); throws kc::Error(config_invalid_value).
Format parse_format(std::string_view name);
/// The registry's schemaType: "AVRO" | "PROTOBUF" | "JSON".
std::string_view schema_type(Format f) noexcept;

/// How to reach the registry. Secrets (basic_auth, bearer_token,
/// key_password) never appear in logs or error messages.
struct RegistryConfig {
  std::string url;                 ///< base URL, e.g. http://localhost:8081 or https://host/apis/ccompat/v7
  std::string basic_auth;          ///< "user:password" (empty: none)
  std::string bearer_token;        ///< sent as Authorization: Bearer (empty: none)
  std::string ca_file;             ///< PEM bundle to verify the server (empty: system store)
  std::string cert_file;           ///< client certificate (PEM) for mutual TLS
  std::string key_file;            ///< its private key (PEM)
  std::string key_password;
  bool verify_tls = true;
  std::chrono::milliseconds timeout{10000};     ///< per HTTP request
  int max_retries = 3;                          ///< after the first try, on 5xx/429 and network errors
  std::chrono::milliseconds retry_backoff{200};  ///< doubled each retry, with jitter
  std::chrono::milliseconds retry_backoff_max{5000};
  std::size_t cache_capacity = 1000;  ///< schemas kept by id (least recently used go first)
};

/// A reference from one schema to another, as the registry stores it.
struct SchemaReference {
  std::string name;     ///< Avro: the full type name; Protobuf: the import path; JSON: the $ref URI
  std::string subject;
  int version = 0;
};

/// A schema as the registry returns it.
struct RegisteredSchema {
  std::int32_t id = -1;             ///< -1 when not known (not registered yet)
  Format format = Format::avro;
  std::string text;                 ///< as registered
  std::vector<SchemaReference> references;
  std::string subject;              ///< when fetched by subject/version
  int version = 0;
};

/// The referenced schemas of a schema, resolved transitively, dependencies
/// first (each appears once).
struct ResolvedReference {
  std::string name;
  std::shared_ptr<const RegisteredSchema> schema;
};

/// A Schema Registry client (Confluent's REST API) over libcurl.
/// Threads: all methods may be called from any thread; requests are
/// serialised on one connection. Blocking: each call may do HTTP requests,
/// up to (max_retries + 1) * timeout plus backoff; cached answers return at
/// once. Errors: kc::Error with registry_not_found (404), registry_rejected
/// (other 4xx), registry_unavailable (5xx, 429, network, after the retries;
/// retriable() is true), schema_invalid (an answer that does not parse).
class SchemaRegistry {
 public:
  explicit SchemaRegistry(RegistryConfig config);
  ~SchemaRegistry();
  SchemaRegistry(const SchemaRegistry&) = delete;
  SchemaRegistry& operator=(const SchemaRegistry&) = delete;

  /// GET /schemas/ids/{id}; cached (a schema id never changes meaning).
  std::shared_ptr<const RegisteredSchema> schema_by_id(std::int32_t id);
  /// GET /subjects/{subject}/versions/{version} (version -1: latest); cached
  /// for fixed versions.
  std::shared_ptr<const RegisteredSchema> schema_by_version(std::string_view subject, int version);
  /// The references of `s`, transitively, dependencies first.
  std::vector<ResolvedReference> resolve_references(const RegisteredSchema& s);
  /// POST /subjects/{subject}/versions: registers (or finds) the schema and
  /// returns its id.
  std::int32_t register_schema(std::string_view subject, const RegisteredSchema& s);
  /// POST /subjects/{subject}: the id of an already registered schema, or
  /// nullopt when the subject does not have it.
  std::optional<std::int32_t> lookup_schema(std::string_view subject, const RegisteredSchema& s);

  /// HTTP requests made so far (for tests and metrics).
  std::uint64_t requests() const noexcept;
  /// The URL without credentials, for messages.
  const std::string& display_url() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Options of a deserializer.
struct DeserializerOptions {
  DecodeLimits limits;
  /// Avro: the reader schema (JSON text) to resolve every writer schema to
  /// (schema evolution). Empty: decode with the writer schema as is.
  std::string avro_reader_schema;
  /// JSON Schema: validate each document against its registered schema
  /// (invalid ones fail to decode).
  bool validate_json = true;
};

/// Decodes Confluent-framed records: reads the schema id, fetches and
/// compiles the schema once per id (through the shared registry client) and
/// decodes the payload.
/// Threads: one thread at a time per object (keep one per thread); the
/// registry may be shared. Blocking: only on a schema id seen for the first
/// time (registry requests).
class Deserializer {
 public:
  Deserializer(Format format, std::shared_ptr<SchemaRegistry> registry, DeserializerOptions options = {});
  ~Deserializer();
  Deserializer(Deserializer&&) noexcept;
  Deserializer& operator=(Deserializer&&) noexcept;

  /// Appends the decoded record as one line of JSON to `out`. Returns false
  /// with a one-line reason in `error` (and `out` unchanged) when the bytes
  /// are not a valid record: bad framing, unknown schema id, a payload that
  /// does not match its schema, a limit exceeded. Throws kc::Error when the
  /// registry fails (registry_unavailable, retriable; registry_rejected, e.g.
  /// a 401): that is not the record's fault. An id the registry did not know
  /// is remembered for 30 s (records with it fail at once meanwhile).
  bool decode(Bytes in, std::string& out, std::string& error);
  /// Same, into a generic value (Avro natively; Protobuf and JSON through
  /// their JSON rendering).
  bool decode(Bytes in, Value& out, std::string& error);

  /// Schemas compiled so far (one per schema id).
  std::size_t cached_schemas() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Options of a serializer.
struct SerializerOptions {
  /// Registry subject (Confluent's TopicNameStrategy: "<topic>-value" or
  /// "<topic>-key").
  std::string subject;
  /// Register the schema when the subject does not have it (else look it up
  /// and fail when missing).
  bool auto_register = true;
  /// Protobuf: the message type to encode (package-qualified); empty: the
  /// first message in the file.
  std::string protobuf_message;
  /// JSON Schema: validate before encoding.
  bool validate_json = true;
};

/// Encodes JSON documents into Confluent-framed records with one schema.
/// Construction registers or looks up the schema (blocking; throws
/// kc::Error). Threads: one thread at a time.
class Serializer {
 public:
  Serializer(Format format, std::shared_ptr<SchemaRegistry> registry, RegisteredSchema schema,
             SerializerOptions options);
  ~Serializer();
  Serializer(Serializer&&) noexcept;
  Serializer& operator=(Serializer&&) noexcept;

  /// Appends the framed record for `json` to `out`. Throws
  /// kc::Error(encode_failed) naming the field when `json` does not fit the
  /// schema (`out` unchanged).
  void encode(std::string_view json, std::string& out);
  std::int32_t schema_id() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace schema
}  // namespace kc
