// order_processor: the running example of the Python guide
// (confluent-kafka's order processor) as a kc program.
//
// It reads orders.placed and orders.updated in group order-processor-v1,
// checks every order, and keeps the valid ones in an SQLite table, `orders`.
// What kc guarantees around the few lines of business logic below:
//
//  - Exactly once into SQLite. The rows a record writes and the offset of
//    that record commit in ONE SQLite transaction (kc::SqliteSink), and on
//    start kc resumes from the offsets stored in the database. A crash, a
//    kill -9 or a rebalance never loses an order nor applies one twice.
//  - Bad input never stops the stream. An order that can never be valid
//    (not JSON, a missing or ill-typed field) is thrown as a permanent error:
//    kc writes it to orders.dead-letter at once, byte for byte, with headers
//    saying where it came from and what was wrong, and goes on. Its offset
//    counts as done only once the broker has acknowledged the dead letter.
//  - Metrics. /metrics serves kc's counters (consumed, processed,
//    dead-lettered, commits, lag, ...) and this program's own.
//  - A clean stop. SIGTERM or SIGINT: kc stops fetching, commits the open
//    transaction, leaves the group and run() returns; a second signal exits
//    at once (nothing more is committed; the database stays consistent).
#include <sqlite3.h>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/retry.hpp"
#include "kc/sqlite_sink.hpp"

namespace orders {

// ------------------------------------------------------------ validation

/// An order that cannot be valid, however often it is retried. Derived from
/// kc::PermanentError: kc dead-letters the record at once, and the dead
/// letter's kc.dlq.error.type header names this class.
class InvalidOrder : public kc::PermanentError {
 public:
  using kc::PermanentError::PermanentError;
};

/// orders.placed: a new order. The views point into the parser's buffer.
struct Placed {
  std::string_view order_id;
  std::string_view customer_id;
  double amount = 0;
  std::string_view currency;
  std::int64_t items = 0;
  std::optional<std::string_view> created_at;
};

/// orders.updated: a new status for an order.
struct Update {
  std::string_view order_id;
  std::string_view status;
  std::optional<std::string_view> updated_at;
};

const std::set<std::string_view> kStatuses = {"placed", "paid", "shipped", "delivered", "cancelled"};

simdjson::dom::object parse_object(simdjson::dom::parser& parser, const kc::Message& m) {
  if (!m.value()) {
    throw InvalidOrder("no value (a tombstone)");
  }
  const auto text = kc::as_text(*m.value());
  simdjson::dom::element doc;
  if (const auto err = parser.parse(text.data(), text.size()).get(doc); err) {
    // Not JSON at all (or not UTF-8): kc's own type for undecodable records.
    throw kc::DecodeError(fmt::format("not JSON: {}", simdjson::error_message(err)));
  }
  simdjson::dom::object obj;
  if (doc.get(obj) != simdjson::SUCCESS) {
    throw InvalidOrder("not a JSON object");
  }
  return obj;
}

// A required field; `what` describes the expected type for the message.
template <class T>
T field(const simdjson::dom::object& o, std::string_view name, std::string_view what) {
  const auto f = o[name];
  if (f.error() == simdjson::NO_SUCH_FIELD) {
    throw InvalidOrder(fmt::format("missing field \"{}\"", name));
  }
  T v{};
  if (f.get(v) != simdjson::SUCCESS) {
    throw InvalidOrder(fmt::format("field \"{}\" is not {}", name, what));
  }
  return v;
}

std::string_view text_field(const simdjson::dom::object& o, std::string_view name) {
  const auto v = field<std::string_view>(o, name, "a string");
  if (v.empty()) {
    throw InvalidOrder(fmt::format("field \"{}\" is empty", name));
  }
  return v;
}

std::optional<std::string_view> optional_text(const simdjson::dom::object& o, std::string_view name) {
  if (o[name].error() == simdjson::NO_SUCH_FIELD) {
    return std::nullopt;
  }
  return field<std::string_view>(o, name, "a string");
}

Placed validate_placed(const simdjson::dom::object& o) {
  Placed p;
  p.order_id = text_field(o, "order_id");
  p.customer_id = text_field(o, "customer_id");
  p.amount = field<double>(o, "amount", "a number");
  if (!(p.amount > 0)) {
    throw InvalidOrder(fmt::format("amount {} is not positive", p.amount));
  }
  p.currency = text_field(o, "currency");
  if (p.currency.size() != 3) {
    throw InvalidOrder(fmt::format("currency \"{}\" is not a 3-letter code", p.currency));
  }
  const auto items = field<simdjson::dom::array>(o, "items", "an array");
  double total = 0;
  for (const auto item : items) {
    simdjson::dom::object i;
    if (item.get(i) != simdjson::SUCCESS) {
      throw InvalidOrder("an item is not an object");
    }
    text_field(i, "sku");
    const auto qty = field<std::int64_t>(i, "qty", "an integer");
    const auto price = field<double>(i, "unit_price", "a number");
    if (qty <= 0 || price < 0) {
      throw InvalidOrder(fmt::format("an item has qty {} and unit_price {}", qty, price));
    }
    total += static_cast<double>(qty) * price;
    ++p.items;
  }
  if (p.items == 0) {
    throw InvalidOrder("no items");
  }
  // The business rule: the amount is what the items cost (to the cent).
  if (std::abs(total - p.amount) > 0.005) {
    throw InvalidOrder(fmt::format("amount {:.2f} is not the items' total {:.2f}", p.amount, total));
  }
  p.created_at = optional_text(o, "created_at");
  return p;
}

Update validate_update(const simdjson::dom::object& o) {
  Update u;
  u.order_id = text_field(o, "order_id");
  u.status = text_field(o, "status");
  if (!kStatuses.contains(u.status)) {
    throw InvalidOrder(fmt::format("unknown status \"{}\"", u.status));
  }
  u.updated_at = optional_text(o, "updated_at");
  return u;
}

// ------------------------------------------------------------ the table

// One row per order. `events` counts the events applied to the order (its
// placement and each update): a record applied twice would show there.
constexpr const char* kSchema = R"(
  CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    customer_id TEXT,
    status      TEXT NOT NULL,
    amount      REAL,
    currency    TEXT,
    items       INTEGER,
    created_at  TEXT,
    updated_at  TEXT,
    events      INTEGER NOT NULL
  ))";

// Kafka orders records within a partition, not across the two topics: an
// update may be read before its order was placed. It is stored anyway (a row
// with the status only); the placement fills in the rest and keeps the
// status an update set.
constexpr const char* kInsertPlaced = R"(
  INSERT INTO orders (order_id, customer_id, status, amount, currency, items, created_at, events)
  VALUES (?1, ?2, 'placed', ?3, ?4, ?5, ?6, 1)
  ON CONFLICT (order_id) DO UPDATE SET
    customer_id = excluded.customer_id, amount = excluded.amount, currency = excluded.currency,
    items = excluded.items, created_at = excluded.created_at, events = events + 1)";

constexpr const char* kApplyUpdate = R"(
  INSERT INTO orders (order_id, status, updated_at, events) VALUES (?1, ?2, ?3, 1)
  ON CONFLICT (order_id) DO UPDATE SET
    status = excluded.status, updated_at = excluded.updated_at, events = events + 1)";

struct FinalizeStatement {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;

Statement prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
    throw std::runtime_error(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
  }
  return Statement(s);
}

void bind(sqlite3_stmt* s, int i, std::optional<std::string_view> v) {
  if (v) {
    sqlite3_bind_text(s, i, v->data(), static_cast<int>(v->size()), SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_null(s, i);
  }
}

// Runs a bound statement. A failing write is not the order's fault: thrown
// as retriable, kc retries the record (and rolls back what it wrote).
void run(sqlite3* db, sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    throw kc::RetriableError(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
  }
}

std::int64_t count_rows(sqlite3* db) {
  const Statement s = prepare(db, "SELECT count(*) FROM orders");
  return sqlite3_step(s.get()) == SQLITE_ROW ? sqlite3_column_int64(s.get(), 0) : -1;
}

}  // namespace orders

int main(int argc, char** argv) {
  CLI::App app{"order_processor: the guide's order processor on kc (exactly once into SQLite)"};
  std::string bootstrap;
  std::string db_path = "orders.db";
  int metrics_port = 9464;
  std::string metrics_bind = "0.0.0.0";
  std::string group = "order-processor-v1";
  std::string placed_topic = "orders.placed";
  std::string updated_topic = "orders.updated";
  std::string dead_letter_topic = "orders.dead-letter";
  bool from_beginning = false;
  std::uint64_t idle_exit_ms = 0;
  std::vector<std::string> rdkafka;
  std::string log_format = "text";
  app.add_option("-b,--bootstrap-servers", bootstrap, "Kafka brokers; none: an embedded broker (its address printed)");
  app.add_option("--db", db_path, "SQLite database file (default orders.db)");
  app.add_option("--metrics-port", metrics_port, "port of /metrics (default 9464; 0: any free port; -1: none)");
  app.add_option("--metrics-bind", metrics_bind, "address of /metrics (default 0.0.0.0)");
  app.add_option("-g,--group", group, "consumer group (default order-processor-v1)");
  app.add_option("--placed-topic", placed_topic, "default orders.placed");
  app.add_option("--updated-topic", updated_topic, "default orders.updated");
  app.add_option("--dead-letter-topic", dead_letter_topic, "default orders.dead-letter");
  app.add_flag("--from-beginning", from_beginning, "read from the start where nothing was stored yet");
  app.add_option("--idle-exit-ms", idle_exit_ms, "stop after this long without a record (0: never)");
  app.add_option("-X", rdkafka, "librdkafka property key=value (repeatable)");
  app.add_option("--log-format", log_format, "text (default) or json: one JSON object per log line")
      ->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);
  // kc's logger, on stderr (stdout carries only the lines meant for scripts
  // and the summary); secrets in the configuration are masked in every line.
  kc::log::install(kc::LogLevel::info, kc::log::parse_format(log_format));

  try {
    // No brokers given: an embedded (librdkafka mock) broker with the
    // topics, for trying the program out; feed it with `kc produce -b ADDR`.
    std::optional<kc::EmbeddedBroker> embedded;
    if (bootstrap.empty()) {
      embedded.emplace();
      for (const auto& t : {placed_topic, updated_topic, dead_letter_topic}) {
        embedded->create_topic(t, 4);
      }
      bootstrap = embedded->bootstrap_servers();
      std::printf("bootstrap=%s\n", bootstrap.c_str());
    }

    // The same settings `kc consume` takes, each checked by name.
    kc::ConsumerConfig cfg;
    cfg.bootstrap_servers = bootstrap;
    cfg.group = group;
    cfg.topics = {placed_topic, updated_topic};
    cfg.from_beginning = from_beginning;
    cfg.set("dlq.topic", dead_letter_topic, "flag --dead-letter-topic");
    cfg.set("idle_exit_ms", std::to_string(idle_exit_ms), "flag --idle-exit-ms");
    if (metrics_port >= 0) {
      cfg.set("metrics.port", std::to_string(metrics_port), "flag --metrics-port");
      cfg.set("metrics.bind", metrics_bind, "flag --metrics-bind");
    }
    for (const auto& kv : rdkafka) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) {
        throw kc::Error(kc::errc::config_invalid_value, "-X " + kv + ": expected key=value");
      }
      cfg.set("librdkafka." + kv.substr(0, eq), kv.substr(eq + 1), "flag -X");
    }

    // The database: kc's sink keeps the offsets (table kc_offsets) next to
    // our table, in the same transactions.
    auto sink = std::make_shared<kc::SqliteSink>(kc::SqliteSink::Options{db_path, group});
    if (sqlite3_exec(sink->db(), orders::kSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw std::runtime_error(fmt::format("{}: {}", db_path, sqlite3_errmsg(sink->db())));
    }
    // Declared after the sink: finalized before it closes the database.
    const auto insert_placed = orders::prepare(sink->db(), orders::kInsertPlaced);
    const auto apply_update = orders::prepare(sink->db(), orders::kApplyUpdate);

    simdjson::dom::parser parser;
    // Filled in once the consumer exists (the handler runs only in run()).
    kc::metrics::Counter* placed_written = nullptr;
    kc::metrics::Counter* updates_written = nullptr;

    // The handler: called on the poll thread for every record, in offset
    // order per partition, inside the sink's open transaction. Throwing
    // InvalidOrder dead-letters the record; what it wrote (nothing, here:
    // it checks before it writes) is rolled back.
    kc::Handler handler = [&](const kc::Message& m) {
      const auto doc = orders::parse_object(parser, m);
      if (m.topic() == placed_topic) {
        const auto p = orders::validate_placed(doc);
        sqlite3* db = sink->db();  // in every record, before writing (see SqliteSink::db())
        sqlite3_stmt* s = insert_placed.get();
        orders::bind(s, 1, p.order_id);
        orders::bind(s, 2, p.customer_id);
        sqlite3_bind_double(s, 3, p.amount);
        orders::bind(s, 4, p.currency);
        sqlite3_bind_int64(s, 5, p.items);
        orders::bind(s, 6, p.created_at);
        orders::run(db, s);
        placed_written->inc();
      } else {
        const auto u = orders::validate_update(doc);
        sqlite3* db = sink->db();
        sqlite3_stmt* s = apply_update.get();
        orders::bind(s, 1, u.order_id);
        orders::bind(s, 2, u.status);
        orders::bind(s, 3, u.updated_at);
        orders::run(db, s);
        updates_written->inc();
      }
      return kc::Outcome::done;
    };

    kc::ConsumerHooks hooks;
    hooks.exactly_once = sink;
    kc::Consumer consumer(std::move(cfg), std::move(handler), std::move(hooks));

    // Our own metric, served on the same /metrics as kc's. It counts handler
    // calls that wrote: if a transaction fails, kc rewinds and its orders are
    // written (and counted) again; the table itself never has them twice.
    auto& written = consumer.metrics().counter(
        "orders_written_total", "Orders written to the orders table, by event (placed, updated)", {"event"});
    placed_written = &written.with({"placed"});
    updates_written = &written.with({"updated"});

    // First lines on stdout, for scripts: where the metrics are.
    if (consumer.metrics_port() != 0) {
      std::printf("metrics_port=%u\n", static_cast<unsigned>(consumer.metrics_port()));
      spdlog::info("order_processor: metrics on http://{}:{}/metrics", metrics_bind, consumer.metrics_port());
    }
    std::fflush(stdout);

    kc::stop_on_signals(consumer);  // SIGTERM/SIGINT: a graceful stop
    const kc::RunResult result = consumer.run();

    const auto& st = result.stats;
    std::printf("order_processor: %s\n", result.reason == kc::StopReason::requested ? "stopped on request"
                                         : result.reason == kc::StopReason::idle    ? "stopped when idle"
                                         : result.reason == kc::StopReason::fatal   ? "stopped by a fatal error"
                                                                                    : "stopped");
    std::printf("  consumed %llu, written %llu (placed %llu, updates %llu), dead-lettered %llu, retried %llu\n",
                static_cast<unsigned long long>(st.consumed), static_cast<unsigned long long>(st.done),
                static_cast<unsigned long long>(placed_written->value()),
                static_cast<unsigned long long>(updates_written->value()),
                static_cast<unsigned long long>(st.dead_lettered), static_cast<unsigned long long>(st.retried));
    std::printf("  transactions %llu (aborted %llu), orders in %s: %lld\n",
                static_cast<unsigned long long>(st.transactions),
                static_cast<unsigned long long>(st.transactions_aborted), db_path.c_str(),
                static_cast<long long>(orders::count_rows(sink->db())));
    std::string committed;
    for (const auto& [tp, next] : st.committed) {
      committed += fmt::format(" {}[{}]={}", tp.topic, kc::to_int(tp.partition), kc::to_int(next));
    }
    std::printf("  committed offsets:%s\n", committed.empty() ? " (none)" : committed.c_str());
    if (result.reason == kc::StopReason::fatal) {
      std::fprintf(stderr, "order_processor: %s\n", result.error.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "order_processor: %s\n", e.what());
    return 2;
  }
}
