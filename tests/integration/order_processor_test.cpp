// The order-processor example (examples/order_processor) end to end against
// the real broker, run as a subprocess the way a user runs it:
//  - its /metrics, scraped during the run and parsed with
//    kc::metrics::parse, count exactly what was produced and dead-lettered;
//  - every valid order lands in its SQLite table once, with every valid
//    update applied once (the `events` column counts them);
//  - every invalid record is a dead letter with its original key, value and
//    headers and kc's metadata headers (source, group, error type and reason);
//  - SIGTERM while records flow, then a restart: nothing lost, nothing
//    applied twice.
//
// Environment: KC_TEST_BOOTSTRAP (the broker); the test FAILS without it.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kc/deadletter.hpp"
#include "kc/metrics.hpp"
#include "support/common.hpp"
#include "support/http.hpp"
#include "support/kafka.hpp"
#include "support/kc_tool.hpp"
#include "support/records.hpp"
#include "support/subprocess.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;

constexpr int kPartitions = 4;

std::string processor_path() {
  const char* env = std::getenv("KC_TEST_ORDER_PROCESSOR");
  return env != nullptr && *env != '\0' ? env : KC_ORDER_PROCESSOR_PATH;
}

// ------------------------------------------------------------ the mix

// What the table must hold for one order at the end.
struct Expected {
  std::string status = "placed";
  std::int64_t events = 0;  // the placement and each valid update
  bool placed = false;      // customer_id set (a placement was applied)
};

// An invalid record: why the processor must reject it.
struct Invalid {
  std::string topic;
  Record record;
  std::string error_type;  // kc.dlq.error.type
  std::string reason;      // a part of kc.dlq.error.message
};

struct Mix {
  std::string placed_topic;
  std::string updated_topic;
  // In production order; each record carries its partition.
  std::vector<std::pair<std::string, Record>> records;
  std::map<std::string, Expected> orders;  // by order_id
  std::map<std::string, Invalid> invalid;  // by key (unique per invalid record)
  std::uint64_t placed = 0;                // records to each topic
  std::uint64_t updated = 0;
  std::uint64_t valid_placed = 0;
  std::uint64_t valid_updates = 0;

  std::uint64_t total() const { return placed + updated; }
  std::uint64_t dead(const std::string& topic) const {
    std::uint64_t n = 0;
    for (const auto& [k, i] : invalid) {
      n += i.topic == topic ? 1 : 0;
    }
    return n;
  }
};

std::string order_id(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ord-%08llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string placed_json(const std::string& id, std::uint64_t i, const std::string& amount = "30.25",
                        const std::string& items = R"([{"sku":"SKU-1","qty":2,"unit_price":12.5},)"
                                                   R"({"sku":"SKU-2","qty":1,"unit_price":5.25}])",
                        bool with_customer = true) {
  std::string s = R"({"order_id":")" + id + '"';
  if (with_customer) {
    s += R"(,"customer_id":"cust-)" + std::to_string(i % 997) + '"';
  }
  return s + R"(,"amount":)" + amount + R"(,"currency":"EUR","items":)" + items +
         R"(,"created_at":"2026-11-24T12:00:00Z"})";
}

std::string update_json(const std::string& id, const std::string& status) {
  return R"({"order_id":")" + id + R"(","status":")" + status + R"(","updated_at":"2026-11-25T08:00:00Z"})";
}

const char* const kDecodeError = "kc::DecodeError";
const char* const kInvalidOrder = "orders::InvalidOrder";

// Adds invalid record number `k` (13 kinds, 8 to orders.placed and 5 to
// orders.updated) to `mix`.
void add_invalid(Mix& mix, std::uint64_t k) {
  const auto kind = k % 13;
  Invalid inv;
  const std::string key = "bad-" + std::to_string(k) + "-kind-" + std::to_string(kind);
  inv.record.key = key;
  inv.record.partition = static_cast<std::int32_t>(k % kPartitions);
  // An original header, which the dead letter must keep as it was.
  inv.record.headers = {{"trace-id", "t-" + std::to_string(k)}, {"null-header", std::nullopt}};
  const auto id = "bad-order-" + std::to_string(k);
  inv.topic = kind < 8 ? mix.placed_topic : mix.updated_topic;
  inv.error_type = kInvalidOrder;
  switch (kind) {
    case 0:
      inv.record.value = R"({"order_id":")" + id + R"(","customer_id":)";  // cut short
      inv.error_type = kDecodeError;
      inv.reason = "not JSON: ";
      break;
    case 1:
      inv.record.value = placed_json(id, k, "30.25",
                                     R"([{"sku":"SKU-1","qty":2,"unit_price":12.5},)"
                                     R"({"sku":"SKU-2","qty":1,"unit_price":5.25}])",
                                     false);
      inv.reason = R"(missing field "customer_id")";
      break;
    case 2:
      inv.record.value = placed_json(id, k, R"("30.25")");
      inv.reason = R"(field "amount" is not a number)";
      break;
    case 3:
      inv.record.value = placed_json(id, k, "99.99");
      inv.reason = "is not the items' total";
      break;
    case 4:
      inv.record.value = placed_json(id, k, "30.25", "[]");
      inv.reason = "no items";
      break;
    case 5:
      inv.record.value = std::nullopt;  // a tombstone
      inv.reason = "no value";
      break;
    case 6:
      inv.record.value = std::string("\xff\xfe{\"order_id\":\"") + id + "\"}";  // not UTF-8
      inv.error_type = kDecodeError;
      inv.reason = "not JSON: ";
      break;
    case 7:
      inv.record.value = placed_json(id, k, "30.25", R"([{"sku":"SKU-1","qty":1.5,"unit_price":12.5}])");
      inv.reason = R"(field "qty" is not an integer)";
      break;
    case 8:
      inv.record.value = update_json(id, "lost-in-space");
      inv.reason = R"(unknown status "lost-in-space")";
      break;
    case 9:
      inv.record.value = R"({"status":"paid"})";
      inv.reason = R"(missing field "order_id")";
      break;
    case 10:
      inv.record.value = R"({"order_id":")" + id + R"(","status":3})";
      inv.reason = R"(field "status" is not a string)";
      break;
    case 11:
      inv.record.value = R"({"order_id":")" + id + R"(","status":"shipp)";
      inv.error_type = kDecodeError;
      inv.reason = "not JSON: ";
      break;
    default:
      inv.record.value = R"([")" + id + R"(","paid"])";  // JSON, but not an object
      inv.reason = "not a JSON object";
      break;
  }
  (kind < 8 ? mix.placed : mix.updated) += 1;
  mix.records.emplace_back(inv.topic, inv.record);
  mix.invalid.emplace(key, std::move(inv));
}

// `orders` valid orders; order i gets i % 3 updates (paid, then shipped),
// all keyed by order_id so an order's updates share a partition; every
// `invalid_every`th record is followed by an invalid one; and one update for
// an order that is never placed (the example stores it anyway).
Mix make_mix(const std::string& placed_topic, const std::string& updated_topic, std::uint64_t orders,
             std::uint64_t invalid_every) {
  Mix mix;
  mix.placed_topic = placed_topic;
  mix.updated_topic = updated_topic;
  std::uint64_t k = 0;
  const auto maybe_invalid = [&] {
    if (mix.records.size() % invalid_every == invalid_every - 1) {
      add_invalid(mix, k++);
    }
  };
  for (std::uint64_t i = 0; i < orders; ++i) {
    const auto id = order_id(i);
    const auto part = static_cast<std::int32_t>(i % kPartitions);
    auto& e = mix.orders[id];
    mix.records.push_back({placed_topic, Record{id, placed_json(id, i), {}, part}});
    ++mix.placed;
    ++mix.valid_placed;
    e.placed = true;
    ++e.events;
    maybe_invalid();
    static const char* const kStatus[] = {"paid", "shipped"};
    for (std::uint64_t u = 0; u < i % 3; ++u) {
      mix.records.push_back({updated_topic, Record{id, update_json(id, kStatus[u]), {}, part}});
      ++mix.updated;
      ++mix.valid_updates;
      e.status = kStatus[u];
      ++e.events;
      maybe_invalid();
    }
  }
  const std::string ghost = "ord-never-placed";
  mix.records.push_back({updated_topic, Record{ghost, update_json(ghost, "cancelled"), {}, 0}});
  ++mix.updated;
  ++mix.valid_updates;
  mix.orders[ghost] = Expected{"cancelled", 1, false};
  return mix;
}

// Produces the mix, `rate` records per second (0: at once). Blocks until
// every record is acknowledged.
void produce_mix(const std::string& bs, const Mix& mix, double rate = 0) {
  RecordProducer producer(bs);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t n = 0;
  for (const auto& [topic, r] : mix.records) {
    producer.enqueue(topic, r);
    if (rate > 0 && ++n % 50 == 0) {
      std::this_thread::sleep_until(
          start + std::chrono::microseconds(static_cast<std::int64_t>(static_cast<double>(n) * 1e6 / rate)));
      producer.poll();
    }
  }
  producer.flush(mix.placed_topic + " and " + mix.updated_topic, mix.total());
}

// ------------------------------------------------------------ reading back

// GET `url` (libcurl, not through kc); throws Failure unless 200.
std::string scrape(const std::string& url) {
  const auto r = http_get(url, 5s);
  if (r.status != 200) {
    throw Failure("GET " + url + ": " + (r.status == 0 ? r.error : "HTTP " + std::to_string(r.status)));
  }
  return r.body;
}

// The port from the processor's first stdout line "metrics_port=N".
int metrics_port(Subprocess& p) {
  int port = 0;
  const bool up = wait_until(
      [&] {
        const auto out = p.stdout_text();
        const auto at = out.find("metrics_port=");
        if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
          port = std::stoi(out.substr(at + 13));
        }
        return port > 0 || !p.running();
      },
      30s);
  if (!up || port <= 0) {
    throw Failure("order_processor printed no metrics_port= line\n" + describe(p));
  }
  return port;
}

struct Row {
  std::string status;
  std::int64_t events = 0;
  bool placed = false;
};

// The orders table by order_id, read with SQLite's C API (not through kc).
// A database or table that does not exist yet reads as empty.
std::map<std::string, Row> read_orders(const std::filesystem::path& db_path) {
  std::map<std::string, Row> out;
  if (!std::filesystem::exists(db_path)) {
    return out;
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, sqlite3_close);
  if (rc != SQLITE_OK) {
    throw Failure("open " + db_path.string() + ": " + sqlite3_errmsg(raw));
  }
  sqlite3_busy_timeout(db.get(), 5000);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.get(), "SELECT order_id, status, events, customer_id IS NOT NULL FROM orders", -1, &s,
                         nullptr) != SQLITE_OK) {
    return out;  // no table yet
  }
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(s, sqlite3_finalize);
  while (sqlite3_step(s) == SQLITE_ROW) {
    Row r;
    r.status = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
    r.events = sqlite3_column_int64(s, 2);
    r.placed = sqlite3_column_int(s, 3) != 0;
    out.emplace(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), r);
  }
  return out;
}

// The table against the mix: orders missing, applied more (a duplicate) or
// fewer times (a lost update) than expected, in a wrong state, or unexpected.
struct TableCheck {
  std::uint64_t rows = 0;
  std::uint64_t missing = 0;
  std::uint64_t applied_twice = 0;  // more events than produced for the order
  std::uint64_t lost_events = 0;    // fewer
  std::uint64_t wrong_state = 0;    // status or placement not as produced
  std::uint64_t unexpected = 0;     // rows of orders that were never valid
  std::string first_problem;
};

TableCheck check_table(const Mix& mix, const std::map<std::string, Row>& rows) {
  TableCheck c;
  c.rows = rows.size();
  const auto note = [&](const std::string& what) {
    if (c.first_problem.empty()) {
      c.first_problem = what;
    }
  };
  for (const auto& [id, e] : mix.orders) {
    const auto it = rows.find(id);
    if (it == rows.end()) {
      ++c.missing;
      note(id + " missing");
      continue;
    }
    const auto& r = it->second;
    if (r.events > e.events) {
      ++c.applied_twice;
      note(id + ": " + std::to_string(r.events) + " events, produced " + std::to_string(e.events));
    } else if (r.events < e.events) {
      ++c.lost_events;
      note(id + ": " + std::to_string(r.events) + " events, produced " + std::to_string(e.events));
    }
    if (r.status != e.status || r.placed != e.placed) {
      ++c.wrong_state;
      note(id + ": status " + r.status + ", expected " + e.status);
    }
  }
  for (const auto& [id, r] : rows) {
    if (!mix.orders.contains(id)) {
      ++c.unexpected;
      note("unexpected row " + id);
    }
  }
  return c;
}

// The dead letters against the mix's invalid records.
struct DeadLetterCheck {
  std::uint64_t read = 0;
  std::uint64_t missing = 0;     // invalid records without a dead letter
  std::uint64_t duplicates = 0;  // dead letters beyond the first of a record
  std::uint64_t wrong = 0;       // a valid record dead-lettered, or bytes/metadata not as expected
  std::string first_problem;
};

DeadLetterCheck check_dead_letters(const std::string& bs, const Mix& mix, const std::string& dlq,
                                   const std::string& group) {
  // Where each record landed: key -> (topic, partition, offset).
  std::map<std::string, Record> sources;
  for (const auto& topic : {mix.placed_topic, mix.updated_topic}) {
    for (auto& r : read_topic(bs, topic)) {
      if (r.key && mix.invalid.contains(*r.key)) {
        sources.emplace(*r.key, std::move(r));
      }
    }
  }
  DeadLetterCheck c;
  const auto wrong = [&](const std::string& what) {
    ++c.wrong;
    if (c.first_problem.empty()) {
      c.first_problem = what;
    }
  };
  std::map<std::string, int> seen;
  for (const auto& d : read_topic(bs, dlq)) {
    ++c.read;
    const auto key = d.key.value_or("(null key)");
    const auto it = mix.invalid.find(key);
    if (it == mix.invalid.end()) {
      wrong("dead letter of a valid record, key " + key);
      continue;
    }
    if (++seen[key] > 1) {
      ++c.duplicates;
    }
    const auto& inv = it->second;
    const auto& src = sources.at(key);
    // The original bytes, as produced: value and headers.
    if (d.value != inv.record.value) {
      wrong(key + ": value changed");
    }
    for (const auto& h : inv.record.headers) {
      if (std::find(d.headers.begin(), d.headers.end(), h) == d.headers.end()) {
        wrong(key + ": original header " + h.first + " lost");
      }
    }
    // kc's metadata.
    const auto expect = [&](std::string_view name, const std::string& value) {
      const auto v = d.header(name);
      if (v != value) {
        wrong(key + ": header " + std::string(name) + " = " + v.value_or("(none)") + ", expected " + value);
      }
    };
    expect(kHeaderSourceTopic, inv.topic);
    expect(kHeaderSourcePartition, std::to_string(src.partition));
    expect(kHeaderSourceOffset, std::to_string(src.offset));
    expect(kHeaderGroup, group);
    expect(kHeaderErrorType, inv.error_type);
    expect(kHeaderAttempts, "1");  // permanent: never retried
    if (d.header(kHeaderErrorMessage).value_or("").find(inv.reason) == std::string::npos) {
      wrong(key + ": error message \"" + d.header(kHeaderErrorMessage).value_or("(none)") + "\" lacks \"" + inv.reason +
            "\"");
    }
    if (!d.header(kHeaderFailedAt) || !d.header(kHeaderSourceTimestamp)) {
      wrong(key + ": no failed-at or source timestamp header");
    }
  }
  for (const auto& [key, inv] : mix.invalid) {
    if (!seen.contains(key)) {
      ++c.missing;
      if (c.first_problem.empty()) {
        c.first_problem = key + ": no dead letter";
      }
    }
  }
  return c;
}

std::vector<std::string> processor_args(const std::string& bs, const Mix& mix, const std::string& dlq,
                                        const std::string& group, const std::filesystem::path& db,
                                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--bootstrap-servers",
                                   bs,
                                   "--group",
                                   group,
                                   "--db",
                                   db.string(),
                                   "--placed-topic",
                                   mix.placed_topic,
                                   "--updated-topic",
                                   mix.updated_topic,
                                   "--dead-letter-topic",
                                   dlq,
                                   "--from-beginning",
                                   "--metrics-port",
                                   "0",
                                   "--metrics-bind",
                                   "127.0.0.1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

struct Topics {
  std::string placed;
  std::string updated;
  std::string dlq;
  std::string group;
};

Topics make_topics(const std::string& bs, const std::string& prefix) {
  Topics t{unique_name(prefix + "-placed"), unique_name(prefix + "-updated"), unique_name(prefix + "-dlq"),
           unique_name(prefix + "-g")};
  for (const auto& name : {t.placed, t.updated, t.dlq}) {
    create_topic(bs, name, kPartitions);
  }
  return t;
}

// ------------------------------------------------------------ the tests

// The whole mix produced first; the processor's /metrics, scraped while it
// runs, reaches exactly the produced and dead-lettered counts; SIGTERM then
// stops it cleanly; the table and the dead-letter topic hold what they must.
TEST(OrderProcessor, MetricsCountWhatWasProducedAndDeadLettered) {
  const auto bs = bootstrap();
  const auto t = make_topics(bs, "kc-it-orders");
  const auto mix = make_mix(t.placed, t.updated, 400, 25);
  produce_mix(bs, mix);
  TempDir dir("kc-orders");

  Subprocess p(processor_path(), processor_args(bs, mix, t.dlq, t.group, dir / "orders.db"), dir / "run.out",
               dir / "run.err");
  const auto url = "http://127.0.0.1:" + std::to_string(metrics_port(p)) + "/metrics";
  std::vector<metrics::Sample> samples;
  std::uint64_t scrapes = 0;
  const auto finished = [&] {
    samples = metrics::parse(scrape(url));
    ++scrapes;
    return metrics::sum(samples, "kc_messages_processed_total") +
               metrics::sum(samples, "kc_messages_dead_lettered_total") >=
           static_cast<double>(mix.total());
  };
  ASSERT_TRUE(wait_until(finished, 60s, 100ms)) << "not everything processed within 60 s\n" << describe(p);
  // Commits are asynchronous; give the last ones a moment before the final scrape.
  std::this_thread::sleep_for(300ms);
  samples = metrics::parse(scrape(url));

  const auto value = [&](const char* name, std::map<std::string, std::string> labels = {}) {
    return static_cast<std::uint64_t>(metrics::sum(samples, name, labels));
  };
  const std::uint64_t dead = mix.invalid.size();
  std::printf(
      "ORDERS METRICS: produced placed=%llu updated=%llu (valid placed=%llu updates=%llu, invalid=%llu); scraped "
      "%llu times: consumed=%llu processed=%llu dead_lettered=%llu failed=%llu retried=%llu "
      "orders_written{placed}=%llu orders_written{updated}=%llu transactions=%llu commits=%llu\n",
      static_cast<unsigned long long>(mix.placed), static_cast<unsigned long long>(mix.updated),
      static_cast<unsigned long long>(mix.valid_placed), static_cast<unsigned long long>(mix.valid_updates),
      static_cast<unsigned long long>(dead), static_cast<unsigned long long>(scrapes),
      static_cast<unsigned long long>(value("kc_messages_consumed_total")),
      static_cast<unsigned long long>(value("kc_messages_processed_total")),
      static_cast<unsigned long long>(value("kc_messages_dead_lettered_total")),
      static_cast<unsigned long long>(value("kc_messages_failed_total")),
      static_cast<unsigned long long>(value("kc_messages_retried_total")),
      static_cast<unsigned long long>(value("orders_written_total", {{"event", "placed"}})),
      static_cast<unsigned long long>(value("orders_written_total", {{"event", "updated"}})),
      static_cast<unsigned long long>(value("kc_transactions_total")),
      static_cast<unsigned long long>(value("kc_commits_total")));
  std::fflush(stdout);

  for (const auto& topic : {mix.placed_topic, mix.updated_topic}) {
    const auto produced = topic == mix.placed_topic ? mix.placed : mix.updated;
    const std::map<std::string, std::string> of{{"topic", topic}};
    EXPECT_EQ(value("kc_messages_consumed_total", of), produced) << topic;
    EXPECT_EQ(value("kc_messages_processed_total", of), produced - mix.dead(topic)) << topic;
    EXPECT_EQ(value("kc_messages_dead_lettered_total", of), mix.dead(topic)) << topic;
    // Handler calls that failed: each invalid record once (never retried).
    EXPECT_EQ(value("kc_messages_failed_total", of), mix.dead(topic)) << topic;
    EXPECT_EQ(value("kc_messages_retried_total", of), 0u) << topic;
  }
  EXPECT_EQ(value("orders_written_total", {{"event", "placed"}}), mix.valid_placed);
  EXPECT_EQ(value("orders_written_total", {{"event", "updated"}}), mix.valid_updates);
  EXPECT_EQ(value("kc_assigned_partitions"), 2u * kPartitions);
  EXPECT_GT(value("kc_transactions_total"), 0u);
  EXPECT_EQ(value("kc_transactions_aborted_total"), 0u);
  EXPECT_GT(value("kc_commits_total"), 0u);  // the group's offsets follow the database's (for lag)
  EXPECT_EQ(value("kc_commit_failures_total"), 0u);

  p.signal(SIGTERM);
  const auto st = p.wait(30s);
  ASSERT_TRUE(st.has_value()) << "no exit within 30 s of SIGTERM\n" << describe(p);
  ASSERT_TRUE(st->ok()) << describe(p);
  EXPECT_NE(p.stdout_text().find("stopped on request"), std::string::npos) << describe(p);

  const auto table = check_table(mix, read_orders(dir / "orders.db"));
  const auto dl = check_dead_letters(bs, mix, t.dlq, t.group);
  std::printf(
      "ORDERS TABLE: rows=%llu (expected %zu) missing=%llu applied_twice=%llu lost_events=%llu "
      "wrong_state=%llu unexpected=%llu; DEAD LETTERS: read=%llu (expected %llu) missing=%llu "
      "duplicates=%llu wrong=%llu\n",
      static_cast<unsigned long long>(table.rows), mix.orders.size(), static_cast<unsigned long long>(table.missing),
      static_cast<unsigned long long>(table.applied_twice), static_cast<unsigned long long>(table.lost_events),
      static_cast<unsigned long long>(table.wrong_state), static_cast<unsigned long long>(table.unexpected),
      static_cast<unsigned long long>(dl.read), static_cast<unsigned long long>(dead),
      static_cast<unsigned long long>(dl.missing), static_cast<unsigned long long>(dl.duplicates),
      static_cast<unsigned long long>(dl.wrong));
  std::fflush(stdout);
  EXPECT_EQ(table.rows, mix.orders.size()) << table.first_problem;
  EXPECT_EQ(table.missing + table.applied_twice + table.lost_events + table.wrong_state + table.unexpected, 0u)
      << table.first_problem;
  EXPECT_EQ(dl.read, dead) << dl.first_problem;
  EXPECT_EQ(dl.missing + dl.duplicates + dl.wrong, 0u) << dl.first_problem;
}

// Records flow while the processor gets SIGTERM; a second run takes over
// from what the first committed into SQLite and drains the stream. In the
// end every order is in the table once with every update applied once, and
// every invalid record has its dead letter.
TEST(OrderProcessor, SigtermMidStreamThenRestartLosesNothingAndAppliesNothingTwice) {
  const auto bs = bootstrap();
  const auto t = make_topics(bs, "kc-it-orders-term");
  const auto mix = make_mix(t.placed, t.updated, 10'000, 80);
  TempDir dir("kc-orders-term");
  const auto db = dir / "orders.db";

  // ~4 s of records, so the signal lands while they arrive.
  std::exception_ptr produce_error;
  std::thread producer([&] {
    try {
      produce_mix(bs, mix, static_cast<double>(mix.total()) / 4.0);
    } catch (...) {
      produce_error = std::current_exception();
    }
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) {
        t.join();
      }
    }
  } join{producer};

  Subprocess first(processor_path(), processor_args(bs, mix, t.dlq, t.group, db), dir / "run-0.out", dir / "run-0.err");
  // Once the first transactions are in the table, a moment more, then stop.
  ASSERT_TRUE(wait_until([&] { return !read_orders(db).empty() || !first.running(); }, 60s))
      << "no order in the table within 60 s\n"
      << describe(first);
  std::this_thread::sleep_for(500ms);
  first.signal(SIGTERM);
  const auto st1 = first.wait(30s);
  ASSERT_TRUE(st1.has_value()) << "no exit within 30 s of SIGTERM\n" << describe(first);
  ASSERT_TRUE(st1->ok()) << describe(first);
  const auto after_first = read_orders(db).size();

  Subprocess second(processor_path(), processor_args(bs, mix, t.dlq, t.group, db, {"--idle-exit-ms", "3000"}),
                    dir / "run-1.out", dir / "run-1.err");
  producer.join();
  if (produce_error) {
    std::rethrow_exception(produce_error);
  }
  const auto st2 = second.wait(60s);
  ASSERT_TRUE(st2.has_value()) << "the second run did not exit within 60 s\n" << describe(second);
  ASSERT_TRUE(st2->ok()) << describe(second);

  const auto table = check_table(mix, read_orders(db));
  const auto dl = check_dead_letters(bs, mix, t.dlq, t.group);
  std::printf(
      "ORDERS SIGTERM: produced=%llu (orders=%zu valid updates=%llu invalid=%zu); rows after the first "
      "run=%zu; TABLE rows=%llu missing=%llu applied_twice=%llu lost_events=%llu wrong_state=%llu "
      "unexpected=%llu; DEAD LETTERS read=%llu missing=%llu duplicates=%llu wrong=%llu\n",
      static_cast<unsigned long long>(mix.total()), mix.orders.size(),
      static_cast<unsigned long long>(mix.valid_updates), mix.invalid.size(), after_first,
      static_cast<unsigned long long>(table.rows), static_cast<unsigned long long>(table.missing),
      static_cast<unsigned long long>(table.applied_twice), static_cast<unsigned long long>(table.lost_events),
      static_cast<unsigned long long>(table.wrong_state), static_cast<unsigned long long>(table.unexpected),
      static_cast<unsigned long long>(dl.read), static_cast<unsigned long long>(dl.missing),
      static_cast<unsigned long long>(dl.duplicates), static_cast<unsigned long long>(dl.wrong));
  std::fflush(stdout);
  EXPECT_GT(after_first, 0u);
  EXPECT_LT(after_first, mix.orders.size()) << "the SIGTERM came after the whole stream: not a mid-way stop";
  EXPECT_EQ(table.rows, mix.orders.size()) << table.first_problem;
  EXPECT_EQ(table.missing, 0u) << table.first_problem;
  EXPECT_EQ(table.applied_twice, 0u) << table.first_problem;
  EXPECT_EQ(table.lost_events + table.wrong_state + table.unexpected, 0u) << table.first_problem;
  // Dead letters are written to Kafka outside the SQLite transaction: at
  // least once. A graceful stop leaves none twice.
  EXPECT_EQ(dl.missing, 0u) << dl.first_problem;
  EXPECT_EQ(dl.wrong, 0u) << dl.first_problem;
  EXPECT_EQ(dl.duplicates, 0u) << dl.first_problem;
}

}  // namespace
}  // namespace kc::test
