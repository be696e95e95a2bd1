// Protobuf schemas and dynamic decoding over libprotobuf (3.21): descriptors
// built in a private pool per schema, messages parsed with
// DynamicMessageFactory prototypes, JSON through protobuf's own JSON mapping.
#include "schema/protobuf/protobuf.hpp"

#include <google/protobuf/arena.h>
#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include "kc/error.hpp"
#include "text/text.hpp"

namespace kc::schema::detail::protobuf {

namespace gp = google::protobuf;

namespace {

constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";
// The main file's name in its pool when the text does not carry one (.proto
// source has no name; a serialized FileDescriptorProto usually does).
constexpr std::string_view kMainFileName = "__kc_main__.proto";

// Confluent's own imports, for schemas written with Confluent's tooling that
// import them without registering them as references. Written from their
// field lists; only the declarations matter for decoding.
constexpr std::string_view kConfluentMeta = R"(syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
extend google.protobuf.OneofOptions { Meta oneof_meta = 1088; }
)";
constexpr std::string_view kConfluentDecimal = R"(syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
)";

std::string one_line(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return s;
}

std::string label_of(std::string_view name) {
  if (name.empty()) {
    return "main schema";
  }
  // Built with append, not operator+: GCC 12 -O3 warns -Wrestrict on the latter.
  std::string out;
  out.reserve(name.size() + 2);
  out.append(1, '"').append(name).append(1, '"');
  return out;
}

[[noreturn]] void fail_schema(const std::string& what) {
  throw Error(errc::schema_invalid, one_line("protobuf schema: " + what));
}

// Strict base64 (standard alphabet, '=' padding, optional trailing
// whitespace). Returns false on anything else: then the text is .proto source.
bool decode_base64(std::string_view in, std::string& out) {
  while (!in.empty() && (in.back() == '\n' || in.back() == '\r' || in.back() == ' ')) in.remove_suffix(1);
  if (in.empty() || in.size() % 4 != 0) return false;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    std::array<int, 4> v{};
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad > 0) return false;  // '=' only at the very end
      v[k] = kc::detail::base64_digit(c);
      if (v[k] < 0) return false;
    }
    const auto n = static_cast<unsigned>((v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xFFu));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFFu));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFFu));
  }
  return true;
}

class TextErrors final : public gp::io::ErrorCollector {
 public:
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    if (!text_.empty()) text_ += "; ";
    // The tokenizer counts from zero; editors count from one.
    text_ += std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  void AddWarning(int, gp::io::ColumnNumber, const std::string&) override {}
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

class PoolErrors final : public gp::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string&, const std::string& element_name, const gp::Message*, ErrorLocation,
                const std::string& message) override {
    if (!text_.empty()) text_ += "; ";
    text_ += element_name.empty() ? message : element_name + ": " + message;
  }
  void AddWarning(const std::string&, const std::string&, const gp::Message*, ErrorLocation,
                  const std::string&) override {}
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A registry text as a FileDescriptorProto: a base64 serialized
// FileDescriptorProto (confluent-kafka Python) or .proto source (Java, the
// registry's own form). `name` is the import path ("" for the main file).
gp::FileDescriptorProto to_file_proto(std::string_view name, std::string_view text) {
  gp::FileDescriptorProto proto;
  std::string binary;
  if (decode_base64(text, binary) && binary.size() <= INT_MAX && proto.ParseFromString(binary)) {
    if (!name.empty() || proto.name().empty())
      proto.set_name(name.empty() ? std::string(kMainFileName) : std::string(name));
    return proto;
  }
  proto.Clear();
  if (text.size() > INT_MAX) fail_schema(label_of(name) + " is too large");
  gp::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  TextErrors errors;
  gp::io::Tokenizer tokenizer(&input, &errors);
  gp::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.Parse(&tokenizer, &proto) || !errors.text().empty()) {
    fail_schema(label_of(name) + ": " + (errors.text().empty() ? std::string("does not parse") : errors.text()));
  }
  proto.set_name(name.empty() ? std::string(kMainFileName) : std::string(name));
  return proto;
}

// A TypeResolver that keeps what it resolved: protobuf's JSON printer asks
// for every type of a message on each call, and building google.protobuf.Type
// from descriptors costs far more than copying a cached one. Only types that
// exist in the pool are cached, so hostile Any type URLs cannot grow it.
class CachingTypeResolver final : public gp::util::TypeResolver {
 public:
  explicit CachingTypeResolver(const gp::DescriptorPool* pool)
      : inner_(gp::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), pool)) {}

  gp::util::Status ResolveMessageType(const std::string& type_url, gp::Type* type) override {
    return resolve(type_url, type, types_,
                   [this](const std::string& url, gp::Type* t) { return inner_->ResolveMessageType(url, t); });
  }
  gp::util::Status ResolveEnumType(const std::string& type_url, gp::Enum* enum_type) override {
    return resolve(type_url, enum_type, enums_,
                   [this](const std::string& url, gp::Enum* e) { return inner_->ResolveEnumType(url, e); });
  }

 private:
  template <class T, class F>
  gp::util::Status resolve(const std::string& url, T* out, std::unordered_map<std::string, T>& cache, F&& fill) {
    {
      std::shared_lock lock(mutex_);
      if (auto it = cache.find(url); it != cache.end()) {
        *out = it->second;
        return gp::util::Status();
      }
    }
    T fresh;
    gp::util::Status status = fill(url, &fresh);
    if (!status.ok()) return status;
    std::unique_lock lock(mutex_);
    auto [it, inserted] = cache.emplace(url, std::move(fresh));
    *out = it->second;
    return status;
  }

  std::unique_ptr<gp::util::TypeResolver> inner_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, gp::Type> types_;
  std::unordered_map<std::string, gp::Enum> enums_;
};

}  // namespace

/// What decoding a message type needs, built once per type at parse time.
struct MessageEntry {
  const gp::Message* prototype = nullptr;  // owned by Schema::factory_
  std::string type_url;
};

class Schema {
 public:
  Schema() = default;
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  // Member order is destruction order reversed: the factory's prototypes and
  // the resolver point into the pool, so the pool is declared first.
  gp::DescriptorPool pool_;
  const gp::FileDescriptor* file_ = nullptr;
  gp::DynamicMessageFactory factory_;
  // Every message type of the main file (nested ones too). Filled in parse()
  // and immutable after, so lookups need no lock.
  std::unordered_map<const gp::Descriptor*, MessageEntry> messages_;
  // Whether a message type has a map field, itself or in any message it can
  // hold (for every type reachable from the main file's messages).
  std::unordered_map<const gp::Descriptor*, bool> reaches_map_;
  mutable CachingTypeResolver resolver_{&pool_};
};

namespace {

class PoolBuilder {
 public:
  PoolBuilder(Schema& schema, const std::vector<NamedSchema>& references) : schema_(schema) {
    for (const auto& ref : references) {
      if (!refs_.emplace(ref.name, &ref).second) fail_schema("reference \"" + ref.name + "\" is given twice");
    }
  }

  void build_all(gp::FileDescriptorProto main) {
    // References the main file does not reach are still built (in name
    // order, so errors are stable): the registry lists only what is needed.
    for (const auto& [name, ref] : refs_) add_reference(name, "");
    main_name_ = main.name();
    schema_.file_ = build(main, "");
  }

 private:
  const gp::FileDescriptor* add_reference(const std::string& name, const std::string& importer) {
    if (const auto* done = schema_.pool_.FindFileByName(name)) return done;
    if (!in_progress_.insert(name).second) fail_schema("import cycle through \"" + name + "\"");
    const gp::FileDescriptor* file = nullptr;
    if (auto it = refs_.find(name); it != refs_.end()) {
      file = build(to_file_proto(name, it->second->text), name);
    } else if (const auto* known = gp::DescriptorPool::generated_pool()->FindFileByName(name)) {
      gp::FileDescriptorProto proto;
      known->CopyTo(&proto);
      file = build(proto, name);
    } else if (name == "confluent/meta.proto") {
      file = build(to_file_proto(name, kConfluentMeta), name);
    } else if (name == "confluent/type/decimal.proto") {
      file = build(to_file_proto(name, kConfluentDecimal), name);
    } else {
      fail_schema("unknown import \"" + name + "\" in " + label_of(importer) +
                  " (not among the references, not a well-known type)");
    }
    in_progress_.erase(name);
    return file;
  }

  const gp::FileDescriptor* build(const gp::FileDescriptorProto& proto, const std::string& label_name) {
    for (const auto& dep : proto.dependency()) {
      if (dep == proto.name() || (label_name.empty() && dep == main_name_)) {
        fail_schema(label_of(label_name) + " imports itself");
      }
      add_reference(dep, label_name);
    }
    PoolErrors errors;
    const auto* file = schema_.pool_.BuildFileCollectingErrors(proto, &errors);
    if (file == nullptr) {
      fail_schema(label_of(label_name) + ": " +
                  (errors.text().empty() ? std::string("does not build") : errors.text()));
    }
    return file;
  }

  Schema& schema_;
  std::map<std::string, const NamedSchema*> refs_;
  std::set<std::string> in_progress_;
  std::string main_name_;
};

void register_messages(Schema& schema, const gp::Descriptor* d) {
  MessageEntry entry;
  entry.prototype = schema.factory_.GetPrototype(d);
  entry.type_url = std::string(kTypeUrlPrefix) + "/" + d->full_name();
  schema.messages_.emplace(d, std::move(entry));
  for (int i = 0; i < d->nested_type_count(); ++i) register_messages(schema, d->nested_type(i));
}

// Fills schema.reaches_map_ for `d` and every type reachable from it. A type
// on the current path (recursion) counts as reaching no map for now: whatever
// it reaches is recorded at the outer visit of that type.
bool compute_reaches_map(Schema& schema, const gp::Descriptor* d) {
  if (auto it = schema.reaches_map_.find(d); it != schema.reaches_map_.end()) return it->second;
  schema.reaches_map_[d] = false;  // provisional, for recursive types
  bool reaches = false;
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_map()) reaches = true;
    if (compute_reaches_map(schema, f->message_type())) reaches = true;
  }
  schema.reaches_map_[d] = reaches;
  return reaches;
}

void fix_reaches_map(Schema& schema) {
  // A second pass settles recursive types whose provisional `false` was read
  // before they were complete: iterate to a fixed point (one more pass per
  // level of such cycles; the graph is small).
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& [d, reaches] : schema.reaches_map_) {
      if (reaches) continue;
      for (int i = 0; i < d->field_count() && !reaches; ++i) {
        const gp::FieldDescriptor* f = d->field(i);
        if (f->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) continue;
        reaches = f->is_map() || schema.reaches_map_.at(f->message_type());
      }
      changed = changed || reaches;
    }
  }
}

std::string map_key_text(const gp::Message& entry, const gp::FieldDescriptor* key) {
  const gp::Reflection* r = entry.GetReflection();
  switch (key->cpp_type()) {
    case gp::FieldDescriptor::CPPTYPE_STRING: return r->GetString(entry, key);
    case gp::FieldDescriptor::CPPTYPE_INT32: return std::to_string(r->GetInt32(entry, key));
    case gp::FieldDescriptor::CPPTYPE_INT64: return std::to_string(r->GetInt64(entry, key));
    case gp::FieldDescriptor::CPPTYPE_UINT32: return std::to_string(r->GetUInt32(entry, key));
    case gp::FieldDescriptor::CPPTYPE_UINT64: return std::to_string(r->GetUInt64(entry, key));
    case gp::FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(entry, key) ? "true" : "false";
    default: return {};  // protobuf allows no other key types
  }
}

// Protobuf's rule for a map key that occurs twice on the wire is "the last
// one wins", but a dynamic message keeps parsed entries as a list and
// serializes that list, so the JSON printer would print the key twice. Drop
// the earlier duplicates, in place, in every map of the message.
void dedupe_map_keys(const Schema& schema, gp::Message& message) {
  const gp::Reflection* r = message.GetReflection();
  std::vector<const gp::FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  for (const gp::FieldDescriptor* f : fields) {
    if (f->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const bool value_reaches = [&] {
      auto it = schema.reaches_map_.find(f->message_type());
      return it != schema.reaches_map_.end() && it->second;
    }();
    if (f->is_map()) {
      const int n = r->FieldSize(message, f);
      const gp::FieldDescriptor* key = f->message_type()->map_key();
      std::unordered_map<std::string, int> last;
      for (int i = 0; i < n; ++i) last[map_key_text(r->GetRepeatedMessage(message, f, i), key)] = i;
      if (static_cast<int>(last.size()) != n) {
        int kept = 0;
        for (int i = 0; i < n; ++i) {
          if (last[map_key_text(r->GetRepeatedMessage(message, f, i), key)] != i) continue;
          if (i != kept) r->SwapElements(&message, f, kept, i);
          ++kept;
        }
        for (int i = kept; i < n; ++i) r->RemoveLast(&message, f);
      }
      const gp::FieldDescriptor* value = f->message_type()->map_value();
      const bool map_value_reaches = [&] {
        if (value->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) return false;
        auto it = schema.reaches_map_.find(value->message_type());
        return it != schema.reaches_map_.end() && it->second;
      }();
      if (!map_value_reaches) continue;
      for (int i = 0, size = r->FieldSize(message, f); i < size; ++i) {
        gp::Message* entry = r->MutableRepeatedMessage(&message, f, i);
        const gp::Reflection* er = entry->GetReflection();
        if (er->HasField(*entry, value)) dedupe_map_keys(schema, *er->MutableMessage(entry, value));
      }
    } else if (!value_reaches) {
      continue;
    } else if (f->is_repeated()) {
      for (int i = 0, size = r->FieldSize(message, f); i < size; ++i) {
        dedupe_map_keys(schema, *r->MutableRepeatedMessage(&message, f, i));
      }
    } else {
      dedupe_map_keys(schema, *r->MutableMessage(&message, f));
    }
  }
}

std::string path_text(const std::vector<int>& indexes) {
  std::string s = "[";
  for (std::size_t i = 0; i < indexes.size(); ++i) s += (i ? ", " : "") + std::to_string(indexes[i]);
  return s + "]";
}

// The message at an index path (Confluent's message indexes), or null. An
// empty path is the first message, as the wire format's single 0 means.
const MessageEntry* find_message(const Schema& schema, const std::vector<int>& indexes) {
  const gp::FileDescriptor* file = schema.file_;
  const gp::Descriptor* d = nullptr;
  if (indexes.empty()) {
    if (file->message_type_count() == 0) return nullptr;
    d = file->message_type(0);
  }
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    const int n = indexes[i];
    const int count = i == 0 ? file->message_type_count() : d->nested_type_count();
    if (n < 0 || n >= count) return nullptr;
    d = i == 0 ? file->message_type(n) : d->nested_type(n);
  }
  auto it = schema.messages_.find(d);
  return it == schema.messages_.end() ? nullptr : &it->second;
}

int clamp_int(std::size_t v) {
  return v > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(v);
}

}  // namespace

std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<NamedSchema>& references) {
  // The parser warns on stderr about a missing `syntax` line (proto2 is
  // assumed, as protoc does); errors reach the caller through kc::Error.
  gp::LogSilencer silence;
  auto schema = std::make_shared<Schema>();
  PoolBuilder builder(*schema, references);
  builder.build_all(to_file_proto("", text));
  for (int i = 0; i < schema->file_->message_type_count(); ++i)
    register_messages(*schema, schema->file_->message_type(i));
  for (const auto& [d, entry] : schema->messages_) compute_reaches_map(*schema, d);
  fix_reaches_map(*schema);
  return schema;
}

std::vector<int> message_indexes(const Schema& schema, std::string_view full_name) {
  const gp::FileDescriptor* file = schema.file_;
  if (full_name.empty()) {
    if (file->message_type_count() == 0) fail_schema("the main schema declares no message");
    return {0};
  }
  if (full_name.front() == '.') full_name.remove_prefix(1);
  const gp::Descriptor* d = schema.pool_.FindMessageTypeByName(std::string(full_name));
  if (d == nullptr) fail_schema("no message \"" + std::string(full_name) + "\"");
  if (d->file() != file) {
    fail_schema("message \"" + std::string(full_name) + "\" is declared in \"" + d->file()->name() +
                "\", not in the main schema");
  }
  std::vector<int> path;
  for (; d != nullptr; d = d->containing_type()) path.push_back(d->index());
  std::reverse(path.begin(), path.end());
  return path;
}

bool decode_json(const Schema& schema, const std::vector<int>& indexes, Bytes payload, const DecodeLimits& limits,
                 std::string& out, std::string& error) {
  if (payload.size() > limits.max_bytes || payload.size() > static_cast<std::size_t>(INT_MAX)) {
    error = "protobuf: payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
            std::to_string(limits.max_bytes);
    return false;
  }
  const MessageEntry* entry = find_message(schema, indexes);
  if (entry == nullptr) {
    error = "protobuf: message index path " + path_text(indexes) + " does not name a message of the schema";
    return false;
  }

  // libprotobuf logs (to stderr) what it rejects, e.g. invalid UTF-8 in a
  // proto3 string; a bad record is reported through `error` instead. The
  // silencer is process-wide and costs a mutex lock, cheap next to a parse.
  gp::LogSilencer silence;

  // One arena per call, its first block on the stack: small records parse
  // without touching the heap for the message itself.
  alignas(std::max_align_t) char first_block[4096];
  gp::ArenaOptions arena_options;
  arena_options.initial_block = first_block;
  arena_options.initial_block_size = sizeof(first_block);
  gp::Arena arena(arena_options);
  gp::Message* message = entry->prototype->New(&arena);

  gp::io::CodedInputStream input(reinterpret_cast<const std::uint8_t*>(payload.data()),
                                 static_cast<int>(payload.size()));
  input.SetRecursionLimit(clamp_int(limits.max_depth));
  input.SetTotalBytesLimit(clamp_int(limits.max_bytes));
  // MergePartialFromCodedStream stops at a zero tag or an end-group tag and
  // still returns true: only ConsumedEntireMessage() says the whole payload
  // was one message.
  if (!message->MergePartialFromCodedStream(&input) || !input.ConsumedEntireMessage()) {
    error = "protobuf: payload is not a valid " + message->GetDescriptor()->full_name() +
            " (truncated, malformed, nested deeper than " + std::to_string(limits.max_depth) +
            ", or a string that is not UTF-8)";
    return false;
  }
  if (!message->IsInitialized()) {
    error = one_line("protobuf: " + message->GetDescriptor()->full_name() +
                     " lacks required fields: " + message->InitializationErrorString());
    return false;
  }

  if (schema.reaches_map_.at(message->GetDescriptor())) dedupe_map_keys(schema, *message);

  // Re-serialize rather than print the input bytes: that resolves repeated
  // occurrences of a singular field (last one wins) and drops unknown fields,
  // as MessageToJsonString does.
  thread_local std::string binary;
  binary.clear();
  if (!message->AppendToString(&binary)) {
    error = "protobuf: " + message->GetDescriptor()->full_name() + " does not serialize";
    return false;
  }
  const std::size_t old_size = out.size();
  const gp::util::Status status =
      gp::util::BinaryToJsonString(&schema.resolver_, entry->type_url, binary, &out, gp::util::JsonPrintOptions());
  if (binary.capacity() > (1u << 20)) std::string().swap(binary);  // do not pin a huge buffer per thread
  if (!status.ok()) {
    out.resize(old_size);
    error = one_line("protobuf: " + message->GetDescriptor()->full_name() +
                     " has no JSON form: " + std::string(status.message()));
    return false;
  }
  return true;
}

void encode_json(const Schema& schema, const std::vector<int>& indexes, std::string_view json, std::string& out) {
  const MessageEntry* entry = find_message(schema, indexes);
  if (entry == nullptr) {
    throw Error(errc::encode_failed,
                "protobuf: message index path " + path_text(indexes) + " does not name a message of the schema");
  }
  const std::string& name = entry->prototype->GetDescriptor()->full_name();
  std::string binary;
  gp::util::JsonParseOptions options;  // unknown JSON fields are errors
  const gp::util::Status status = gp::util::JsonToBinaryString(
      &schema.resolver_, entry->type_url, gp::StringPiece(json.data(), json.size()), &binary, options);
  if (!status.ok()) {
    throw Error(errc::encode_failed,
                one_line("protobuf: JSON does not fit " + name + ": " + std::string(status.message())));
  }
  // Through a message: it checks proto2 required fields and serializes in
  // field-number order, as every other protobuf serializer does (the JSON
  // converter writes fields in the document's order).
  gp::Arena arena;
  gp::Message* message = entry->prototype->New(&arena);
  if (!message->ParsePartialFromString(binary)) {
    throw Error(errc::encode_failed, "protobuf: JSON does not fit " + name);
  }
  if (!message->IsInitialized()) {
    throw Error(errc::encode_failed, one_line("protobuf: JSON does not fit " + name + ": missing required fields " +
                                              message->InitializationErrorString()));
  }
  if (!message->AppendToString(&out)) throw Error(errc::encode_failed, "protobuf: " + name + " does not serialize");
}

}  // namespace kc::schema::detail::protobuf
