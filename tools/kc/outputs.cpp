#include "outputs.hpp"

#include <utility>
#include <vector>

#include "kc/decode.hpp"
#include "kc/error.hpp"
#include "kc/kafka_sink.hpp"
#include "kc/postgres_sink.hpp"
#include "kc/producer.hpp"
#include "kc/sqlite_sink.hpp"
#include "text/text.hpp"

namespace kc::tool {

namespace {

bool textual(Bytes b) {
  return is_valid_utf8(b);
}

void append_base64(std::string& out, Bytes b) {
  detail::append_base64(out, {reinterpret_cast<const char*>(b.data()), b.size()});
}

// The built-in mapping of a record to a row: the key as text (base64 when it
// is not UTF-8), the value as one JSON text (the decoded document, a JSON
// string, or {"error","base64"} when it could not be decoded).
class RowBuilder {
 public:
  RowBuilder(KeyFormat key, ValueFormat value) : key_(key), value_(value) {}

  RecordRow build(const Message& m, const DecodedValue& v) {
    key_text_.clear();
    value_text_.clear();
    RecordRow row;
    row.topic = m.topic();
    row.partition = to_int(m.partition());
    row.offset = to_int(m.offset());
    row.timestamp_ms = m.timestamp().ms;
    if (key_ == KeyFormat::json && !v.key_json.empty()) {
      row.key = v.key_json;
    } else if (const auto k = m.key()) {
      if (key_ != KeyFormat::raw && textual(*k)) {
        row.key = as_text(*k);
      } else {
        append_base64(key_text_, *k);
        row.key = key_text_;
      }
    }
    const auto val = m.value();
    if (!v.error.empty()) {
      value_text_ = R"({"error":")";
      detail::append_json_escaped(value_text_, v.error);
      value_text_ += R"(","base64":")";
      if (val) {
        append_base64(value_text_, *val);
      }
      value_text_ += "\"}";
      row.value = value_text_;
    } else if (val && value_ == ValueFormat::json) {
      row.value = v.json;
    } else if (val) {
      value_text_ = '"';
      if (value_ == ValueFormat::string && textual(*val)) {
        detail::append_json_escaped(value_text_, as_text(*val));
      } else {
        append_base64(value_text_, *val);
      }
      value_text_ += '"';
      row.value = value_text_;
    }
    return row;
  }

 private:
  KeyFormat key_;
  ValueFormat value_;
  std::string key_text_;
  std::string value_text_;
};

// A database sink as a kc::Sink. At least once: write() opens a transaction
// when none is, flush() commits it (rows only; the group's offsets follow).
// Exactly once: the consumer opens and commits the transactions; write()
// only inserts.
template <class Db>
class DatabaseSink final : public Sink {
 public:
  DatabaseSink(std::shared_ptr<Db> db, bool exactly_once, KeyFormat key, ValueFormat value)
      : db_(std::move(db)), exactly_once_(exactly_once), rows_(key, value) {}
  ~DatabaseSink() override {
    if (open_) {
      db_->abort();  // not flushed: not committed either
    }
  }

  void write(const Message& m, const DecodedValue& v) override {
    if (!exactly_once_ && !open_) {
      db_->begin();
      open_ = true;
    }
    db_->insert(rows_.build(m, v));
  }
  void flush() override {
    if (!exactly_once_ && open_) {
      open_ = false;
      db_->commit({}, nullptr);
    }
  }
  void render(const Message&, const DecodedValue&, std::string&) const override {
    throw Error(errc::misuse, "database sinks write on the poll thread only (no --simulate-latency-ms)");
  }
  void write_rendered(std::string_view) override {
    throw Error(errc::misuse, "database sinks write on the poll thread only (no --simulate-latency-ms)");
  }

 private:
  std::shared_ptr<Db> db_;
  bool exactly_once_;
  bool open_ = false;
  RowBuilder rows_;
};

using HeaderList = std::vector<std::pair<std::string, std::optional<std::string>>>;

HeaderList copy_headers(const Message& m) {
  HeaderList out;
  const auto hs = m.headers();
  out.reserve(hs.size());
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto h = hs.at(i);
    out.emplace_back(std::string(h.name), h.value ? std::optional<std::string>(as_text(*h.value)) : std::nullopt);
  }
  return out;
}

// kafka:TOPIC: copies each record (key, value, headers; the partitioner
// chooses the partition by key). At least once through an idempotent
// producer flushed before each commit; exactly once in the transaction.
class KafkaCopySink final : public Sink {
 public:
  KafkaCopySink(std::string topic, std::unique_ptr<Producer> producer, std::shared_ptr<KafkaTransactionalSink> txn)
      : topic_(std::move(topic)), producer_(std::move(producer)), txn_(std::move(txn)) {}

  void write(const Message& m, const DecodedValue&) override {
    if (txn_) {
      txn_->produce(topic_, m.key(), m.value(), -1, copy_headers(m));
    } else {
      producer_->produce(topic_, m.key(), m.value(), -1, copy_headers(m));
    }
  }
  void flush() override {
    if (producer_ && !producer_->flush(std::chrono::seconds(60))) {
      throw Error(errc::kafka, "sink kafka:" + topic_ + ": " + std::to_string(producer_->in_flight()) +
                                   " records not acknowledged within 60 s");
    }
    if (producer_ && producer_->stats().failed > 0) {
      throw Error(errc::kafka, "sink kafka:" + topic_ + ": delivery failed: " + producer_->stats().last_error);
    }
  }
  void render(const Message&, const DecodedValue&, std::string&) const override {
    throw Error(errc::misuse, "the kafka sink writes on the poll thread only (no --simulate-latency-ms)");
  }
  void write_rendered(std::string_view) override {
    throw Error(errc::misuse, "the kafka sink writes on the poll thread only (no --simulate-latency-ms)");
  }

 private:
  std::string topic_;
  std::unique_ptr<Producer> producer_;
  std::shared_ptr<KafkaTransactionalSink> txn_;
};

}  // namespace

Output make_output(const OutputOptions& o, KeyFormat key, ValueFormat value) {
  const std::string_view spec = o.spec;
  Output out;
  if (spec.starts_with("sqlite:") && spec.size() > 7) {
    auto db = std::make_shared<SqliteSink>(SqliteSink::Options{std::string(spec.substr(7)), o.group, o.table});
    out.sink = std::make_unique<DatabaseSink<SqliteSink>>(db, o.exactly_once, key, value);
    if (o.exactly_once) {
      out.transactional = db;
    }
    return out;
  }
  if ((spec.starts_with("postgres:") || spec.starts_with("postgresql:")) &&
      spec.find("://") != std::string_view::npos) {
    // postgres:postgresql://... or postgresql://... both name the URI.
    const auto uri = spec.starts_with("postgres:") && !spec.starts_with("postgres://") ? spec.substr(9) : spec;
    PostgresSink::Options po;
    po.uri = std::string(uri);
    po.group = o.group;
    po.table = o.table;
    auto db = std::make_shared<PostgresSink>(std::move(po));
    out.sink = std::make_unique<DatabaseSink<PostgresSink>>(db, o.exactly_once, key, value);
    if (o.exactly_once) {
      out.transactional = db;
    }
    return out;
  }
  if (spec.starts_with("kafka:") && spec.size() > 6) {
    const std::string topic(spec.substr(6));
    if (o.exactly_once) {
      KafkaTransactionalSink::Options ko;
      ko.bootstrap_servers = o.bootstrap_servers;
      ko.transactional_id = o.transactional_id;
      ko.commit_timeout = o.commit_timeout;
      ko.rebuild_on_fatal = o.rebuild_on_fatal;
      auto txn = std::make_shared<KafkaTransactionalSink>(std::move(ko));
      out.sink = std::make_unique<KafkaCopySink>(topic, nullptr, txn);
      out.transactional = txn;
    } else {
      out.sink = std::make_unique<KafkaCopySink>(
          topic, std::make_unique<Producer>(ProducerConfig{o.bootstrap_servers, {}}), nullptr);
    }
    return out;
  }
  if (o.exactly_once) {
    throw Error(errc::config_invalid_value, "--exactly-once: the sink '" + o.spec +
                                                "' has no transactions; use sqlite:PATH, postgres:URI or kafka:TOPIC");
  }
  out.sink = make_sink(spec, key, value);
  return out;
}

}  // namespace kc::tool
