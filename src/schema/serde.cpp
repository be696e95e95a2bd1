// Deserializer and Serializer: the wire header, the registry and the format
// modules put together.
#include <simdjson.h>

#include <chrono>
#include <unordered_map>
#include <variant>

#include "kc/error.hpp"
#include "kc/schema.hpp"
#include "schema/avro/avro.hpp"
#include "schema/jsonschema/jsonschema.hpp"
#include "schema/protobuf/protobuf.hpp"
#include "schema/wire.hpp"

namespace kc::schema {

namespace {

std::string_view format_name(Format f) noexcept {
  switch (f) {
    case Format::avro: return "Avro";
    case Format::protobuf: return "Protobuf";
    case Format::json: return "JSON Schema";
  }
  return "?";
}

struct AvroCompiled {
  std::shared_ptr<const detail::avro::Schema> writer;
  std::shared_ptr<const detail::avro::Resolution> resolution;  // null: no reader schema
};
using Compiled = std::variant<AvroCompiled, std::shared_ptr<const detail::protobuf::Schema>,
                              std::shared_ptr<const detail::jsonschema::Schema>>;

std::vector<std::string> avro_reference_texts(const std::vector<ResolvedReference>& refs) {
  std::vector<std::string> out;
  out.reserve(refs.size());
  for (const auto& r : refs) {
    out.push_back(r.schema->text);
  }
  return out;
}

template <class Named>
std::vector<Named> named_references(const std::vector<ResolvedReference>& refs) {
  std::vector<Named> out;
  out.reserve(refs.size());
  for (const auto& r : refs) {
    out.push_back(Named{r.name, r.schema->text});
  }
  return out;
}

// Parses a registered schema with its references. Throws kc::Error
// (schema_invalid, or the registry's errors while fetching references).
Compiled compile(Format format, SchemaRegistry& registry, const RegisteredSchema& s,
                 const std::shared_ptr<const detail::avro::Schema>& avro_reader) {
  const auto refs = s.references.empty() ? std::vector<ResolvedReference>{} : registry.resolve_references(s);
  switch (format) {
    case Format::avro: {
      AvroCompiled c;
      c.writer = detail::avro::parse(s.text, avro_reference_texts(refs));
      if (avro_reader) {
        c.resolution = detail::avro::resolve(c.writer, avro_reader);
      }
      return c;
    }
    case Format::protobuf:
      return detail::protobuf::parse(s.text, named_references<detail::protobuf::NamedSchema>(refs));
    case Format::json:
      return detail::jsonschema::parse(s.text, named_references<detail::jsonschema::NamedSchema>(refs));
  }
  throw Error(errc::misuse, "unknown schema format");
}

Value to_value(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      Value::Array a;
      for (auto x : e.get_array()) {
        a.push_back(to_value(x));
      }
      return a;
    }
    case simdjson::dom::element_type::OBJECT: {
      Value::Object o;
      for (auto [k, x] : e.get_object()) {
        o.emplace_back(std::string(k), to_value(x));
      }
      return o;
    }
    case simdjson::dom::element_type::INT64: return std::int64_t(e.get_int64());
    case simdjson::dom::element_type::UINT64: return static_cast<double>(std::uint64_t(e.get_uint64()));
    case simdjson::dom::element_type::DOUBLE: return double(e.get_double());
    case simdjson::dom::element_type::STRING: return std::string(std::string_view(e.get_string()));
    case simdjson::dom::element_type::BOOL: return bool(e.get_bool());
    case simdjson::dom::element_type::NULL_VALUE: return nullptr;
  }
  return nullptr;
}

// The generic value of a JSON text that a decoder produced (so it parses).
Value json_to_value(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS) {
    throw Error(errc::misuse, "decoder produced invalid JSON");
  }
  return to_value(doc);
}

}  // namespace

// ---------------------------------------------------------------- Deserializer

struct Deserializer::Impl {
  // Compiled schemas and schema failures by id. Ids never change meaning, so
  // a compiled schema is kept as long as there is room; a failure (an
  // unknown id, a schema that does not parse) is kept for a while so that a
  // flood of such records does not become a flood of registry requests.
  struct Entry {
    std::optional<Compiled> compiled;
    std::string error;
    std::chrono::steady_clock::time_point expires;
  };
  static constexpr std::size_t kMaxEntries = 10000;
  static constexpr std::chrono::seconds kFailureTtl{30};

  Format format;
  std::shared_ptr<SchemaRegistry> registry;
  DeserializerOptions options;
  std::shared_ptr<const detail::avro::Schema> avro_reader;
  std::unordered_map<std::int32_t, Entry> cache;
  JsonDecoder json;
  detail::WireHeader header;
  std::string text;  // Protobuf and JSON output for decode(Value&)
  simdjson::dom::parser value_parser;

  Impl(Format f, std::shared_ptr<SchemaRegistry> r, DeserializerOptions o)
      : format(f), registry(std::move(r)), options(std::move(o)), json(options.limits) {}

  // The compiled schema of `id`, or nullptr with `error` set. Throws the
  // registry's retriable errors (unreachable, refused): not the record's fault.
  const Compiled* schema_for(std::int32_t id, std::string& error) {
    const auto now = std::chrono::steady_clock::now();
    if (auto it = cache.find(id); it != cache.end()) {
      if (it->second.compiled) {
        return &*it->second.compiled;
      }
      if (now < it->second.expires) {
        error = it->second.error;
        return nullptr;
      }
      cache.erase(it);
    }
    if (cache.size() >= kMaxEntries) {
      // Failures go first (a flood of bad ids must not evict the schemas in
      // use); all of it only with ten thousand live schema ids.
      std::erase_if(cache, [](const auto& kv) { return !kv.second.compiled; });
      if (cache.size() >= kMaxEntries) {
        cache.clear();
      }
    }
    Entry e;
    std::shared_ptr<const RegisteredSchema> registered;
    try {
      registered = registry->schema_by_id(id);
    } catch (const Error& ex) {
      if (ex.code() != errc::registry_not_found) {
        throw;
      }
      e.error = "schema id " + std::to_string(id) + " not found in the schema registry " + registry->display_url();
    }
    if (registered && registered->format != format) {
      e.error = "schema id " + std::to_string(id) + " is a " + std::string(schema_type(registered->format)) +
                " schema, expected " + std::string(schema_type(format));
    } else if (registered) {
      try {
        e.compiled = compile(format, *registry, *registered, avro_reader);
      } catch (const Error& ex) {
        // A reference the registry does not have, or a schema that does not parse.
        if (ex.code() != errc::registry_not_found && ex.code() != errc::schema_invalid) {
          throw;
        }
        e.error = "schema id " + std::to_string(id) + ": " + ex.what();
      }
    }
    e.expires = now + kFailureTtl;
    auto& slot = cache[id] = std::move(e);
    if (!slot.compiled) {
      error = slot.error;
      return nullptr;
    }
    return &*slot.compiled;
  }

  // Decodes into `out` as JSON; see Deserializer::decode.
  bool decode_json(Bytes in, std::string& out, std::string& error) {
    if (in.size() > options.limits.max_bytes) {
      error = "value of " + std::to_string(in.size()) + " bytes exceeds the decode limit of " +
              std::to_string(options.limits.max_bytes);
      return false;
    }
    if (!detail::parse_wire_header(in, format == Format::protobuf, header, error)) {
      return false;
    }
    const Compiled* c = schema_for(header.schema_id, error);
    if (c == nullptr) {
      return false;
    }
    if (const auto* a = std::get_if<AvroCompiled>(c)) {
      return detail::avro::decode_json(*a->writer, a->resolution.get(), header.payload, options.limits, out, error);
    }
    if (const auto* p = std::get_if<std::shared_ptr<const detail::protobuf::Schema>>(c)) {
      return detail::protobuf::decode_json(**p, header.message_indexes, header.payload, options.limits, out, error);
    }
    const auto& js = std::get<std::shared_ptr<const detail::jsonschema::Schema>>(*c);
    const std::size_t at = out.size();
    if (!json.decode(header.payload, out, error)) {
      return false;
    }
    if (options.validate_json &&
        !detail::jsonschema::validate(*js, std::string_view(out).substr(at), error)) {
      out.resize(at);
      error = "does not match JSON schema id " + std::to_string(header.schema_id) + ": " + error;
      return false;
    }
    return true;
  }
};

Deserializer::Deserializer(Format format, std::shared_ptr<SchemaRegistry> registry, DeserializerOptions options)
    : impl_(std::make_unique<Impl>(format, std::move(registry), std::move(options))) {
  if (!impl_->registry) {
    throw Error(errc::misuse, "Deserializer: no schema registry");
  }
  if (!impl_->options.avro_reader_schema.empty()) {
    if (format != Format::avro) {
      throw Error(errc::misuse, "Deserializer: a reader schema applies to Avro only");
    }
    impl_->avro_reader = detail::avro::parse(impl_->options.avro_reader_schema);
  }
}

Deserializer::~Deserializer() = default;
Deserializer::Deserializer(Deserializer&&) noexcept = default;
Deserializer& Deserializer::operator=(Deserializer&&) noexcept = default;

bool Deserializer::decode(Bytes in, std::string& out, std::string& error) {
  const std::size_t at = out.size();
  if (!impl_->decode_json(in, out, error)) {
    out.resize(at);
    if (error.empty()) {
      error = std::string(format_name(impl_->format)) + " decoding failed";
    }
    return false;
  }
  return true;
}

bool Deserializer::decode(Bytes in, Value& out, std::string& error) {
  auto& s = *impl_;
  if (s.format == Format::avro) {
    if (in.size() > s.options.limits.max_bytes) {
      error = "value of " + std::to_string(in.size()) + " bytes exceeds the decode limit of " +
              std::to_string(s.options.limits.max_bytes);
      return false;
    }
    if (!detail::parse_wire_header(in, false, s.header, error)) {
      return false;
    }
    const Compiled* c = s.schema_for(s.header.schema_id, error);
    if (c == nullptr) {
      return false;
    }
    const auto& a = std::get<AvroCompiled>(*c);
    return detail::avro::decode_value(*a.writer, a.resolution.get(), s.header.payload, s.options.limits, out, error);
  }
  s.text.clear();
  if (!decode(in, s.text, error)) {
    return false;
  }
  out = json_to_value(s.value_parser, s.text);
  return true;
}

std::size_t Deserializer::cached_schemas() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, e] : impl_->cache) {
    n += e.compiled ? 1 : 0;
  }
  return n;
}

// ---------------------------------------------------------------- Serializer

struct Serializer::Impl {
  Format format;
  std::shared_ptr<SchemaRegistry> registry;
  SerializerOptions options;
  std::int32_t id = -1;
  std::optional<Compiled> compiled;
  std::vector<int> indexes;  // Protobuf: the message's index path
  JsonDecoder json;
  std::string scratch;
};

Serializer::Serializer(Format format, std::shared_ptr<SchemaRegistry> registry, RegisteredSchema schema,
                       SerializerOptions options)
    : impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  s.format = format;
  s.registry = std::move(registry);
  s.options = std::move(options);
  if (!s.registry) {
    throw Error(errc::misuse, "Serializer: no schema registry");
  }
  if (s.options.subject.empty()) {
    throw Error(errc::misuse, "Serializer: no subject");
  }
  schema.format = format;
  // Parse locally first: a schema that does not compile is reported here,
  // before anything is registered.
  s.compiled = compile(format, *s.registry, schema, nullptr);
  if (format == Format::protobuf) {
    s.indexes = detail::protobuf::message_indexes(
        *std::get<std::shared_ptr<const detail::protobuf::Schema>>(*s.compiled), s.options.protobuf_message);
  }
  if (s.options.auto_register) {
    s.id = s.registry->register_schema(s.options.subject, schema);
  } else {
    const auto found = s.registry->lookup_schema(s.options.subject, schema);
    if (!found) {
      throw Error(errc::registry_not_found, "subject '" + s.options.subject + "' in the schema registry " +
                                                s.registry->display_url() + " does not have this schema");
    }
    s.id = *found;
  }
}

Serializer::~Serializer() = default;
Serializer::Serializer(Serializer&&) noexcept = default;
Serializer& Serializer::operator=(Serializer&&) noexcept = default;

void Serializer::encode(std::string_view json, std::string& out) {
  auto& s = *impl_;
  const std::size_t at = out.size();
  try {
    detail::append_wire_header(out, s.id);
    if (const auto* a = std::get_if<AvroCompiled>(&*s.compiled)) {
      detail::avro::encode_json(*a->writer, json, out);
    } else if (const auto* p = std::get_if<std::shared_ptr<const detail::protobuf::Schema>>(&*s.compiled)) {
      detail::append_message_indexes(out, s.indexes);
      detail::protobuf::encode_json(**p, s.indexes, json, out);
    } else {
      std::string error;
      const Bytes bytes(reinterpret_cast<const std::byte*>(json.data()), json.size());
      s.scratch.clear();
      if (!s.json.decode(bytes, s.scratch, error)) {
        throw Error(errc::encode_failed, error);
      }
      if (s.options.validate_json &&
          !detail::jsonschema::validate(*std::get<std::shared_ptr<const detail::jsonschema::Schema>>(*s.compiled),
                                        s.scratch, error)) {
        throw Error(errc::encode_failed, "does not match the JSON schema: " + error);
      }
      out += s.scratch;
    }
  } catch (...) {
    out.resize(at);
    throw;
  }
}

std::int32_t Serializer::schema_id() const noexcept {
  return impl_->id;
}

}  // namespace kc::schema
