#include "support/sinks.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <system_error>
#include <utility>

#include "support/common.hpp"
#include "support/rdkafka_handles.hpp"

namespace kc::test {
namespace {

// SQLite's "no such table" (the sink has not created it yet) reads as empty.
bool no_such_table(const std::string& why) {
  return why.find("no such table") != std::string::npos;
}

class SqliteSinkDatabase final : public SinkDatabase {
 public:
  SqliteSinkDatabase(std::filesystem::path path, std::string table)
      : path_(std::move(path)), table_(std::move(table)) {}
  ~SqliteSinkDatabase() override {
    if (db_ != nullptr) {
      sqlite3_close(db_);
    }
  }
  SqliteSinkDatabase(const SqliteSinkDatabase&) = delete;
  SqliteSinkDatabase& operator=(const SqliteSinkDatabase&) = delete;

  std::vector<SinkRecord> records() override {
    std::vector<SinkRecord> out;
    query("SELECT topic, \"partition\", \"offset\", value FROM \"" + table_ + "\"", {}, [&](sqlite3_stmt* st) {
      SinkRecord r;
      r.topic = text(st, 0).value_or("");
      r.partition = sqlite3_column_int(st, 1);
      r.offset = sqlite3_column_int64(st, 2);
      r.value = text(st, 3);
      out.push_back(std::move(r));
    });
    return out;
  }

  std::uint64_t count() override {
    std::uint64_t n = 0;
    query("SELECT count(*) FROM \"" + table_ + "\"", {},
          [&](sqlite3_stmt* st) { n = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)); });
    return n;
  }

  std::vector<std::int64_t> next_offsets(const std::string& group, const std::string& topic, int partitions) override {
    std::vector<std::int64_t> out(static_cast<std::size_t>(partitions), -1);
    query("SELECT part, next_offset FROM kc_offsets WHERE grp = ?1 AND topic = ?2", {group, topic},
          [&](sqlite3_stmt* st) {
            const int p = sqlite3_column_int(st, 0);
            if (p >= 0 && p < partitions && sqlite3_column_type(st, 1) != SQLITE_NULL) {
              out[static_cast<std::size_t>(p)] = sqlite3_column_int64(st, 1);
            }
          });
    return out;
  }

  std::string describe() const override { return "sqlite:" + path_.string() + " table " + table_; }

 private:
  static std::optional<std::string> text(sqlite3_stmt* st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
      return std::nullopt;
    }
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
    return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, col)));
  }

  // Opens the file once it exists; false while it does not.
  bool open() {
    if (db_ != nullptr) {
      return true;
    }
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) {
      return false;
    }
    // Read-write (never create): a reader of a WAL database whose writer was
    // killed may have to recover the -shm index, which needs write access.
    sqlite3* db = nullptr;
    if (const int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr); rc != SQLITE_OK) {
      const std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      sqlite3_close(db);
      throw Failure(describe() + ": cannot open: " + why);
    }
    sqlite3_busy_timeout(db, 10000);
    db_ = db;
    return true;
  }

  // Runs `sql` with text parameters, calling `row` for each result row.
  template <typename F>
  void query(const std::string& sql, const std::vector<std::string>& params, F&& row) {
    if (!open()) {
      return;
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      const std::string why = sqlite3_errmsg(db_);
      sqlite3_finalize(st);
      if (no_such_table(why)) {
        return;
      }
      throw Failure(describe() + ": " + sql + ": " + why);
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      sqlite3_bind_text(st, static_cast<int>(i + 1), params[i].c_str(), static_cast<int>(params[i].size()),
                        SQLITE_TRANSIENT);
    }
    int rc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      row(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      throw Failure(describe() + ": " + sql + ": " + sqlite3_errmsg(db_));
    }
  }

  std::filesystem::path path_;
  std::string table_;
  sqlite3* db_ = nullptr;
};

class PostgresSinkDatabase final : public SinkDatabase {
 public:
  PostgresSinkDatabase(std::string uri, std::string table) : uri_(std::move(uri)), table_(std::move(table)) {}

  std::vector<SinkRecord> records() override {
    std::vector<SinkRecord> out;
    run([&](pqxx::nontransaction& tx) {
      out.clear();
      if (!table_exists(tx)) {
        return;
      }
      const auto res = tx.exec("SELECT topic, \"partition\", \"offset\", value::text FROM \"" + table_ + "\"");
      out.reserve(res.size());
      for (const auto& row : res) {
        SinkRecord r;
        r.topic = row[0].c_str();
        r.partition = row[1].as<std::int32_t>();
        r.offset = row[2].as<std::int64_t>();
        if (!row[3].is_null()) {
          r.value = std::string(row[3].c_str(), row[3].size());
        }
        out.push_back(std::move(r));
      }
    });
    return out;
  }

  std::uint64_t count() override {
    std::uint64_t n = 0;
    run([&](pqxx::nontransaction& tx) {
      n = table_exists(tx) ? tx.exec1("SELECT count(*) FROM \"" + table_ + "\"")[0].as<std::uint64_t>() : 0;
    });
    return n;
  }

  std::vector<std::int64_t> next_offsets(const std::string& group, const std::string& topic, int partitions) override {
    std::vector<std::int64_t> out;
    run([&](pqxx::nontransaction& tx) {
      out.assign(static_cast<std::size_t>(partitions), -1);
      if (tx.exec1("SELECT to_regclass('kc_offsets') IS NOT NULL")[0].as<bool>()) {
        const auto res =
            tx.exec_params("SELECT part, next_offset FROM kc_offsets WHERE grp = $1 AND topic = $2", group, topic);
        for (const auto& row : res) {
          const int p = row[0].as<int>();
          if (p >= 0 && p < partitions && !row[1].is_null()) {
            out[static_cast<std::size_t>(p)] = row[1].as<std::int64_t>();
          }
        }
      }
    });
    return out;
  }

  std::string describe() const override { return "postgres:" + uri_ + " table " + table_; }

 private:
  bool table_exists(pqxx::nontransaction& tx) {
    return tx.exec1("SELECT to_regclass(" + tx.quote("\"" + table_ + "\"") + ") IS NOT NULL")[0].as<bool>();
  }

  // Runs `f` on the connection, (re)connecting first when there is none or
  // it broke; one retry on a fresh connection when an old one turns out broken.
  template <typename F>
  void run(F&& f) {
    for (int attempt = 0;; ++attempt) {
      try {
        if (!conn_ || !conn_->is_open()) {
          conn_.reset();
          conn_ = std::make_unique<pqxx::connection>(uri_);
        }
        pqxx::nontransaction tx(*conn_);
        f(tx);
        return;
      } catch (const pqxx::broken_connection& e) {
        conn_.reset();
        if (attempt == 0) {
          continue;
        }
        throw Failure(describe() + ": connection: " + e.what());
      } catch (const std::exception& e) {
        throw Failure(describe() + ": " + e.what());
      }
    }
  }

  std::string uri_;
  std::string table_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace

std::unique_ptr<SinkDatabase> open_sqlite_sink(std::filesystem::path path, std::string table) {
  return std::make_unique<SqliteSinkDatabase>(std::move(path), std::move(table));
}

std::unique_ptr<SinkDatabase> open_postgres_sink(std::string uri, std::string table) {
  return std::make_unique<PostgresSinkDatabase>(std::move(uri), std::move(table));
}

void drop_postgres_sink(const std::string& uri, const std::string& table, const std::string& group) {
  try {
    pqxx::connection conn(uri);
    pqxx::nontransaction tx(conn);
    tx.exec("DROP TABLE IF EXISTS \"" + table + "\"");
    if (tx.exec1("SELECT to_regclass('kc_offsets') IS NOT NULL")[0].as<bool>()) {
      tx.exec_params("DELETE FROM kc_offsets WHERE grp = $1", group);
    }
  } catch (const std::exception& e) {
    throw Failure("postgres:" + uri + ": dropping table " + table + ": " + e.what());
  }
}

struct WatermarkWatch::Impl {
  rdk::RkPtr rk;
  std::string topic;
  int partitions = 0;
};

WatermarkWatch::WatermarkWatch(const std::string& bootstrap, std::string topic, int partitions)
    : impl_(std::make_unique<Impl>()) {
  // read_uncommitted: the ListOffsets request carries the client's isolation
  // level; read_committed would answer the last stable offset.
  impl_->rk = rdk::make_client(RD_KAFKA_CONSUMER, bootstrap, {{"isolation.level", "read_uncommitted"}});
  impl_->topic = std::move(topic);
  impl_->partitions = partitions;
}

WatermarkWatch::~WatermarkWatch() = default;

std::vector<std::int64_t> WatermarkWatch::high() {
  std::vector<std::int64_t> out;
  for (int p = 0; p < impl_->partitions; ++p) {
    std::int64_t low = -1;
    std::int64_t high = -1;
    const auto err = rd_kafka_query_watermark_offsets(impl_->rk.get(), impl_->topic.c_str(), p, &low, &high, 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure("WatermarkWatch " + impl_->topic + "[" + std::to_string(p) + "]: " + rd_kafka_err2name(err));
    }
    out.push_back(high);
  }
  return out;
}

struct CommittedWatch::Impl {
  rdk::RkPtr rk;
  std::string group;
  std::string topic;
  int partitions = 0;
};

CommittedWatch::CommittedWatch(const std::string& bootstrap, const std::string& group, std::string topic,
                               int partitions)
    : impl_(std::make_unique<Impl>()) {
  impl_->rk =
      rdk::make_client(RD_KAFKA_CONSUMER, bootstrap,
                       {{"group.id", group}, {"enable.auto.commit", "false"}, {"isolation.level", "read_uncommitted"}});
  impl_->group = group;
  impl_->topic = std::move(topic);
  impl_->partitions = partitions;
}

CommittedWatch::~CommittedWatch() = default;

std::vector<std::int64_t> CommittedWatch::offsets(std::chrono::milliseconds timeout) {
  rdk::ListPtr list(rd_kafka_topic_partition_list_new(impl_->partitions));
  for (int p = 0; p < impl_->partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), impl_->topic.c_str(), p);
  }
  const auto what = "CommittedWatch " + impl_->group + " " + impl_->topic;
  if (const auto err = rd_kafka_committed(impl_->rk.get(), list.get(), static_cast<int>(timeout.count()));
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(what + ": " + rd_kafka_err2name(err));
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(impl_->partitions), -1);
  for (int i = 0; i < list->cnt; ++i) {
    const auto& el = list->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure(what + "[" + std::to_string(el.partition) + "]: " + rd_kafka_err2name(el.err));
    }
    if (el.partition >= 0 && el.partition < impl_->partitions && el.offset >= 0) {
      out[static_cast<std::size_t>(el.partition)] = el.offset;
    }
  }
  return out;
}

std::string unique_table_name(std::string_view prefix) {
  auto name = unique_name(prefix);
  for (auto& c : name) {
    c = c == '-' || c == '.' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string ValueCoverage::to_string() const {
  return "values=" + std::to_string(values) + " expected=" + std::to_string(expected) +
         " missing=" + std::to_string(missing) + " duplicates=" + std::to_string(duplicates) +
         " unexpected=" + std::to_string(unexpected) + (first_missing.empty() ? "" : " first_missing=" + first_missing);
}

ValueCoverage value_coverage(const std::vector<std::string>& values, std::string_view prefix, std::uint64_t n) {
  ValueCoverage c;
  c.values = values.size();
  c.expected = n;
  std::vector<std::uint32_t> seen(static_cast<std::size_t>(n), 0);
  for (const auto& v : values) {
    std::uint64_t i = 0;
    const char* first = v.data() + prefix.size();
    const char* last = v.data() + v.size();
    if (!std::string_view(v).starts_with(prefix) || first == last) {
      ++c.unexpected;
      continue;
    }
    const auto [end, ec] = std::from_chars(first, last, i);
    if (ec != std::errc() || end != last || i >= n) {
      ++c.unexpected;
      continue;
    }
    if (++seen[static_cast<std::size_t>(i)] > 1) {
      ++c.duplicates;
    }
  }
  std::int64_t gap_start = -1;
  for (std::uint64_t i = 0; i <= n; ++i) {
    const bool present = i < n && seen[static_cast<std::size_t>(i)] > 0;
    if (i < n && !present) {
      ++c.missing;
      if (gap_start < 0) {
        gap_start = static_cast<std::int64_t>(i);
      }
    } else if (gap_start >= 0) {
      if (c.first_missing.empty()) {
        c.first_missing = std::string(prefix) + std::to_string(gap_start) + ".." + std::string(prefix) +
                          std::to_string(i - 1) + " (" + std::to_string(static_cast<std::int64_t>(i) - gap_start) + ")";
      }
      gap_start = -1;
    }
  }
  return c;
}

}  // namespace kc::test
