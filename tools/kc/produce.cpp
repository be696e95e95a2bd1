#include <fmt/format.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "progress.hpp"

#include "kc/config.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/producer.hpp"
#include "kc/schema.hpp"

extern char** environ;

namespace kc::tool {

void add_produce_command(CLI::App& app, ProduceOptions& o) {
  auto* c = app.add_subcommand("produce", "produce generated load or a file's lines (idempotent, acks=all)");
  c->add_option("-b,--bootstrap-servers", o.bootstrap_servers, "brokers; none: an embedded mock broker");
  c->add_option("-t,--topic", o.topic, "topic")->required();
  c->add_option("--count", o.count, "records to generate (default 1000)");
  c->add_option("--size", o.size, "value size in bytes for generated non-JSON records (default 100)");
  c->add_option("--keys", o.keys, "key cardinality: keys key-0..key-(N-1); 0: no keys");
  c->add_flag("--json", o.json, "generate order-like JSON documents (~220 bytes)");
  c->add_option("--malformed-every", o.malformed_every, "with --json: make every Nth document invalid JSON");
  c->add_option("--file", o.file, "send each line of this file as one record (instead of generating)");
  c->add_option("--rate", o.rate, "records per second (default: as fast as possible)");
  c->add_option("-X", o.rdkafka, "librdkafka property key=value (repeatable)");
  c->add_option("--value-format", o.value_format,
                "raw: send the bytes as they are; avro|protobuf|jsonschema: encode each JSON value (a --file line "
                "or --json document) with --schema in Confluent's wire format")
      ->check(CLI::IsMember({"raw", "avro", "protobuf", "jsonschema"}));
  c->add_option("--schema", o.schema_file,
                "schema file (.avsc, .proto or JSON Schema) for --value-format; a .proto's imports are read "
                "from its directory and registered as references (subject = import path)");
  c->add_option("--subject", o.subject, "registry subject (default <topic>-value)");
  c->add_option("--protobuf-message", o.protobuf_message,
                "Protobuf message type to encode, package-qualified (default: the file's first message)");
  c->add_flag("--no-auto-register", o.no_auto_register,
              "look the schema up in the subject instead of registering it (fail when missing)");
  add_registry_options(c, o.registry);
}

namespace {

// A realistic order document like the guide's; deterministic per index.
void order_json(std::string& out, std::uint64_t i) {
  static constexpr const char* kStatus[] = {"placed", "paid", "shipped", "updated"};
  static constexpr const char* kCurrency[] = {"EUR", "USD", "GBP"};
  const auto qty1 = 1 + i % 3;
  const auto qty2 = 1 + (i / 3) % 4;
  const double p1 = 5.0 + static_cast<double>((i * 37) % 9000) / 100.0;
  const double p2 = 1.0 + static_cast<double>((i * 91) % 5000) / 100.0;
  out.clear();
  fmt::format_to(
      std::back_inserter(out),
      R"({{"order_id":"ord-{:010d}","customer_id":"cust-{:05d}","status":"{}","amount":{:.2f},)"
      R"("currency":"{}","items":[{{"sku":"SKU-{:04d}","qty":{},"unit_price":{:.2f}}},)"
      R"({{"sku":"SKU-{:04d}","qty":{},"unit_price":{:.2f}}}],"created_at":"2026-11-24T12:{:02d}:{:02d}Z"}})",
      i, (i * 7919) % 100000, kStatus[i % 4], static_cast<double>(qty1) * p1 + static_cast<double>(qty2) * p2,
      kCurrency[i % 3], (i * 13) % 10000, qty1, p1, (i * 17) % 10000, qty2, p2, (i / 60) % 60, i % 60);
}

Bytes bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The files a .proto text imports (google/protobuf/* excepted: every
// registry and client knows those).
std::vector<std::string> proto_imports(const std::string& text) {
  static const std::regex kImport(R"re(^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;)re", std::regex::multiline);
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kImport); it != std::sregex_iterator(); ++it) {
    if (!(*it)[1].str().starts_with("google/protobuf/")) {
      out.push_back((*it)[1].str());
    }
  }
  return out;
}

// Registers the files `text` imports (found next to the schema file, as
// protoc -I DIR would) under subjects named by their import path, imports
// first, as Confluent's serializers do (with `auto_register` false, only
// checks that the subjects' latest versions are these files); returns the
// references for `text`.
std::vector<schema::SchemaReference> register_proto_imports(schema::SchemaRegistry& registry, const std::string& text,
                                                            const std::filesystem::path& dir, bool auto_register,
                                                            int depth) {
  if (depth > 32) {
    throw Error(errc::schema_invalid, "imports nested deeper than 32 (a cycle?)");
  }
  std::vector<schema::SchemaReference> refs;
  for (const auto& name : proto_imports(text)) {
    std::ifstream in(dir / name, std::ios::binary);
    if (!in) {
      throw Error(errc::schema_invalid, "import \"" + name + "\": no file " + (dir / name).string());
    }
    schema::RegisteredSchema imported;
    imported.format = schema::Format::protobuf;
    imported.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    imported.references = register_proto_imports(registry, imported.text, dir, auto_register, depth + 1);
    if (auto_register) {
      registry.register_schema(name, imported);
    }
    // The version just registered (or the one that already had this text).
    const auto latest = registry.schema_by_version(name, -1);
    if (latest->text != imported.text) {
      throw Error(errc::schema_invalid, "import \"" + name + "\": subject " + name +
                                            " does not have this file as its latest version; register it by hand");
    }
    refs.push_back({name, name, latest->version});
  }
  return refs;
}

// The serializer for --value-format avro|protobuf|jsonschema: registers (or
// looks up) the schema before the first record is produced.
std::optional<schema::Serializer> make_serializer(const ProduceOptions& o) {
  if (o.value_format == "raw") {
    if (o.schema_file || o.registry.url) {
      throw Error(errc::config_invalid_value,
                  "--schema/--schema-registry: need --value-format avro|protobuf|jsonschema");
    }
    return std::nullopt;
  }
  if (!o.schema_file) {
    throw Error(errc::config_missing, "--value-format " + o.value_format + ": needs --schema FILE");
  }
  // Registry settings: env (KC_SCHEMA_REGISTRY_*) < flags, with the consumer's
  // key table so names, checks and secret handling are the same.
  ConsumerConfig cfg;
  cfg.load_env(environ);
  apply_registry_options(o.registry, cfg);
  if (cfg.schema_registry.url.empty()) {
    throw Error(errc::config_missing,
                "--value-format " + o.value_format + ": needs --schema-registry URL (or KC_SCHEMA_REGISTRY_URL)");
  }
  std::ifstream in(*o.schema_file, std::ios::binary);
  if (!in) {
    throw Error(errc::config_invalid_value, "--schema " + *o.schema_file + ": cannot open");
  }
  schema::RegisteredSchema s;
  s.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const auto format = schema::parse_format(o.value_format);
  schema::SerializerOptions opts;
  opts.subject = o.subject ? *o.subject : o.topic + "-value";
  opts.auto_register = !o.no_auto_register;
  if (o.protobuf_message) {
    opts.protobuf_message = *o.protobuf_message;
  }
  auto registry = std::make_shared<schema::SchemaRegistry>(cfg.schema_registry);
  try {
    if (format == schema::Format::protobuf) {
      s.references = register_proto_imports(*registry, s.text, std::filesystem::path(*o.schema_file).parent_path(),
                                            opts.auto_register, 0);
    }
    return schema::Serializer(format, registry, std::move(s), std::move(opts));
  } catch (const Error& e) {
    // e.what() ends with the category's text (std::system_error); keep one.
    std::string what = e.what();
    const std::string suffix = ": " + e.code().message();
    if (what.ends_with(suffix)) {
      what.resize(what.size() - suffix.size());
    }
    throw Error(static_cast<errc>(e.code().value()), "--schema " + *o.schema_file + ": " + what);
  }
}

}  // namespace

int run_produce(const ProduceOptions& o) {
  ProducerConfig cfg;
  if (o.bootstrap_servers) {
    cfg.bootstrap_servers = *o.bootstrap_servers;
  }
  for (const auto& kv : o.rdkafka) {
    cfg.librdkafka.insert(split_property(kv));
  }
  auto serializer = make_serializer(o);
  Producer producer(cfg);

  std::ifstream file;
  if (o.file) {
    file.open(*o.file);
    if (!file) {
      throw Error(errc::io, "--file " + *o.file + ": cannot open");
    }
  }
  // Done = records with a delivery report; the total is known when generating.
  Progress progress("kc produce", o.file ? std::nullopt : std::optional<std::uint64_t>(o.count));
  std::string value;
  std::string encoded;
  std::string key;
  std::uint64_t n = 0;
  std::uint64_t not_encoded = 0;
  const auto start = std::chrono::steady_clock::now();
  for (;; ++n) {
    if (o.file) {
      if (!std::getline(file, value)) {
        break;
      }
    } else {
      if (n >= o.count) {
        break;
      }
      if (o.json) {
        order_json(value, n);
        if (o.malformed_every != 0 && n % o.malformed_every == o.malformed_every - 1) {
          value.resize(value.size() / 2);  // cut mid-document: invalid JSON
        }
      } else {
        value.assign(o.size, 'x');
        const auto stamp = fmt::format("{:012d}", n);
        value.replace(0, std::min(value.size(), stamp.size()), stamp, 0, std::min(value.size(), stamp.size()));
      }
    }
    std::optional<Bytes> k;
    if (o.keys != 0) {
      key = fmt::format("key-{}", n % o.keys);
      k = bytes_of(key);
    }
    if (serializer) {
      encoded.clear();
      try {
        serializer->encode(value, encoded);
      } catch (const Error& e) {
        // Not sent; the others go on and the exit status says so.
        ++not_encoded;
        progress.clear();
        log::printf(LogLevel::error, "kc produce: %s %llu not sent: %s\n", o.file ? "line" : "record",
                    static_cast<unsigned long long>(n + 1), e.what());
        continue;
      }
      producer.produce(o.topic, k, bytes_of(encoded));
    } else {
      producer.produce(o.topic, k, bytes_of(value));
    }
    if (o.rate > 0) {
      const auto due = start + std::chrono::duration<double>(static_cast<double>(n + 1) / o.rate);
      std::this_thread::sleep_until(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(due));
    }
    if (progress.due()) {
      const auto st = producer.stats();
      progress.update(st.delivered + st.failed, "enqueued {}", n + 1 - not_encoded);
    }
  }
  // In slices, so the progress line goes on while the last records settle.
  const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool flushed = false;
  while (!(flushed = producer.flush(std::chrono::milliseconds(250))) &&
         std::chrono::steady_clock::now() < flush_deadline) {
    const auto st = producer.stats();
    progress.update(st.delivered + st.failed, "enqueued {}", n - not_encoded);
  }
  progress.clear();
  const auto st = producer.stats();
  const double secs = progress.elapsed();
  const auto sent = n - not_encoded;
  if (not_encoded > 0) {
    log::printf(LogLevel::error, "kc produce: %llu records could not be encoded with --schema and were not sent\n",
                static_cast<unsigned long long>(not_encoded));
  }
  log::printf(LogLevel::info,
              "kc produce: %llu records to %s, acknowledged %llu, failed %llu in %.2f s (%.0f msg/s)%s%s\n",
              static_cast<unsigned long long>(sent), o.topic.c_str(), static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.failed), secs, secs > 0 ? static_cast<double>(n) / secs : 0.0,
              st.last_error.empty() ? "" : "; last error: ", st.last_error.c_str());
  return flushed && st.failed == 0 && st.delivered == sent && not_encoded == 0 ? 0 : 1;
}

}  // namespace kc::tool
