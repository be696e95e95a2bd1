#include "kc/postgres_sink.hpp"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include "kc/error.hpp"
#include "sink/outbox.hpp"

namespace kc {
namespace {

namespace outbox = detail::outbox;

constexpr std::string_view kOffsetsTable = "kc_offsets";
// The built-in mapping's columns, in the order insert() encodes them.
const std::vector<std::string> kColumns = {"topic", "partition", "\"offset\"", "timestamp_ms", "key", "value"};
// kc_outbox's columns, in the order forward() encodes them (id is generated).
const std::vector<std::string> kOutboxColumns = {"grp",  "src_topic", "src_part", "src_offset", "topic",
                                                 "part", "key",       "value",    "headers"};
// COPY data goes to libpq in pieces of about this size (whole rows): one
// PQputCopyData call each, instead of one per row.
constexpr std::size_t kCopyChunk = std::size_t{1} << 20;
// Buffered rows of finished records are sent early (COPY inside the open
// transaction) once they reach this size, so a huge transaction does not
// hold all its rows in memory until commit().
constexpr std::size_t kFlushAt = std::size_t{8} << 20;
// Serialises table creation between processes that start at once: two
// concurrent CREATE TABLE IF NOT EXISTS of one name can both pass the
// existence check and one then fails on pg_type's unique index.
constexpr std::int64_t kSchemaLock = 0x6b632d736368656d;  // "kc-schem"

bool plain_identifier(std::string_view s) {
  if (s.empty() || s.size() > 63) {  // NAMEDATALEN - 1: longer names are truncated by the server
    return false;
  }
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  return alpha(s[0]) && std::all_of(s.begin() + 1, s.end(), [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

// The sink's own tables, refused as a records table in any case (a quoted
// "KC_OUTBOX" would be another table here, but not in SQLite: one rule for
// both sinks).
bool reserved(std::string_view s) {
  for (std::string_view name : {kOffsetsTable, outbox::kTable}) {
    if (s.size() == name.size() && std::equal(s.begin(), s.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      return true;
    }
  }
  return false;
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// COPY text format: backslash, newline, carriage return and tab escaped;
// every other byte as is (the session's client_encoding is UTF8). libpqxx
// 6's stream_to escapes every non-ASCII byte as three octal digits instead
// (4x the bytes for UTF-8 text) and makes a libpq call per row: measured on
// loopback, 500-row transactions of ~200-byte JSON rows, ~300k rows/s here
// against ~250k/s with stream_to (twice the client CPU) and ~100k/s with
// one multi-row INSERT per transaction.
void append_copy_text(std::string& out, std::string_view s) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const char* esc = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
    if (esc != nullptr) {
      out.append(s.data() + from, i - from);
      out.append(esc);
      from = i + 1;
    }
  }
  out.append(s.data() + from, s.size() - from);
}

// bytea in COPY text format: its hex input form \x0a1b..., with the
// backslash escaped for COPY; "\\x" alone is the empty bytea.
void append_copy_bytea(std::string& out, std::string_view b) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\\\x";
  for (const char c : b) {
    const auto u = static_cast<unsigned char>(c);
    out += kHex[u >> 4];
    out += kHex[u & 0x0F];
  }
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

std::string shorten(const std::string& s, std::size_t max = 240) {
  return s.size() <= max ? s : s.substr(0, max) + "...";
}

// A server message on one line: "ERROR:  x\nDETAIL:  y\n" -> "ERROR: x; DETAIL: y".
std::string one_line(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    const auto nl = s.find('\n');
    std::string line(s.substr(0, nl));
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
    for (auto p = line.find("  "); p != std::string::npos; p = line.find("  ", p)) {
      line.erase(p, 1);
    }
    const auto first = line.find_first_not_of(" \t\r");
    line.erase(0, first == std::string::npos ? line.size() : first);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.pop_back();
    }
    if (!line.empty()) {
      out += (out.empty() ? "" : "; ") + line;
    }
  }
  return out;
}

std::string describe(const TopicPartition& tp) {
  return tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]";
}

// SQLSTATEs worth retrying as they are: connection exceptions (08),
// serialization failures and deadlocks (40), insufficient resources (53),
// query_canceled (57014: statement_timeout), the server shutting down or
// starting (57P0x), lock_not_available (55P03).
bool retriable_sqlstate(std::string_view s) {
  return s.starts_with("08") || s.starts_with("40") || s.starts_with("53") || s == "57014" || s.starts_with("57P") ||
         s == "55P03";
}

// libpq reports a failed connection attempt as text only (no SQLSTATE):
// what the server refuses for good (credentials, a database that does not
// exist) and what libpq cannot parse is not worth retrying; refused
// connections, timeouts and a server starting up or shutting down are.
bool connect_retriable(std::string_view msg) {
  for (std::string_view permanent :
       {"authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied", "invalid ",
        "missing \"=\"", "unterminated quoted", "must be specified", "requires a password", "no password supplied"}) {
    if (msg.find(permanent) != std::string_view::npos) {
      return false;
    }
  }
  return true;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The connection string as given plus connect_timeout, the same without
// the password (for messages), and the password(s) it holds (scrubbed from
// any message that quotes them).
struct Conninfo {
  std::string full;
  std::string shown;
  std::vector<std::string> secrets;
  // The string as given and how to append a parameter to it, for a
  // connect_timeout shortened by set_deadline() (libpq keeps the last value
  // of a parameter given twice).
  std::string given;
  std::string separator;  // "?", "&" or " "

  std::string with_connect_timeout(std::int64_t secs) const {
    return given + separator + "connect_timeout=" + std::to_string(secs);
  }
};

Conninfo parse_conninfo(const std::string& s, std::chrono::milliseconds connect_timeout) {
  Conninfo c;
  c.given = s;
  // libpq takes whole seconds (and treats 1 as 2).
  const auto secs = std::max<std::int64_t>(1, (connect_timeout.count() + 999) / 1000);
  const bool has_timeout = s.find("connect_timeout") != std::string::npos;
  auto add_secret = [&](std::string v) {
    if (!v.empty()) {
      c.secrets.push_back(percent_decode(v));
      c.secrets.push_back(std::move(v));
    }
  };
  if (s.starts_with("postgresql://") || s.starts_with("postgres://")) {
    // scheme://[user[:password]@]host[:port][,...][/dbname][?key=value&...]
    const auto start = s.find("://") + 3;
    const auto query = s.find('?', start);
    const auto path = std::min(s.find('/', start), query);
    const auto authority_end = path == std::string::npos ? s.size() : path;
    std::string shown = s.substr(0, start);
    const auto at = s.rfind('@', authority_end == 0 ? 0 : authority_end - 1);
    std::size_t host_from = start;
    if (at != std::string::npos && at >= start) {
      const auto colon = s.find(':', start);
      if (colon != std::string::npos && colon < at) {
        add_secret(s.substr(colon + 1, at - colon - 1));
        shown += s.substr(start, colon - start);
      } else {
        shown += s.substr(start, at - start);
      }
      host_from = at;
    }
    shown += s.substr(host_from, (query == std::string::npos ? s.size() : query) - host_from);
    if (query != std::string::npos) {
      std::string kept;
      std::string_view rest(s);
      rest.remove_prefix(query + 1);
      while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto param = rest.substr(0, amp);
        if (param.starts_with("password=")) {
          add_secret(std::string(param.substr(9)));
        } else {
          kept += (kept.empty() ? "?" : "&") + std::string(param);
        }
        rest.remove_prefix(amp == std::string_view::npos ? rest.size() : amp + 1);
      }
      shown += kept;
    }
    c.shown = std::move(shown);
    c.separator = query == std::string::npos ? "?" : "&";
    c.full = has_timeout ? s : c.with_connect_timeout(secs);
  } else {
    // key=value pairs; a value may be single-quoted with backslash escapes.
    static const std::regex password(R"((^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S*))");
    for (auto it = std::sregex_iterator(s.begin(), s.end(), password); it != std::sregex_iterator(); ++it) {
      std::string v = (*it)[2].str();
      if (v.size() >= 2 && v.front() == '\'') {
        v = v.substr(1, v.size() - 2);
      }
      add_secret(std::move(v));
    }
    c.shown = std::regex_replace(s, password, "$1password=***");
    if (c.shown.empty()) {
      c.shown = "(libpq defaults)";
    }
    c.separator = " ";
    c.full = has_timeout ? s : c.with_connect_timeout(secs);
  }
  return c;
}

// Server notices and libpqxx's own warnings go to spdlog (libpqxx prints
// them to stderr otherwise).
class NoticeLog final : public pqxx::errorhandler {
 public:
  explicit NoticeLog(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
  bool operator()(const char msg[]) noexcept override {
    try {
      const std::string m = trim(msg);
      if (m.starts_with("NOTICE") || m.starts_with("DEBUG") || m.starts_with("INFO") || m.starts_with("LOG")) {
        spdlog::debug("kc: postgres: {}", m);
      } else {
        spdlog::warn("kc: postgres: {}", m);
      }
    } catch (...) {
    }
    return false;  // not to libpqxx's default handler (stderr)
  }
};

// One connection with its notice handler (declared after the connection:
// it unregisters before the connection closes).
struct Session {
  explicit Session(const std::string& conninfo) : conn(conninfo) {}
  pqxx::connection conn;
  NoticeLog notices{conn};
};

Error misuse(const std::string& what) {
  return Error(errc::misuse, "postgres sink: " + what);
}

}  // namespace

struct PostgresSink::Impl {
  Options options;
  Conninfo info;
  std::string table;  // quoted
  std::map<TopicPartition, std::int64_t> epochs;
  // The open transaction's rows in COPY text format, not sent yet; rows
  // from record_mark on belong to the record in progress.
  std::string rows;
  std::size_t record_mark = 0;
  bool in_record = false;
  // The open transaction's forward()ed records in COPY text format for
  // kc_outbox, sent at commit().
  std::string outbox_rows;
  // set_deadline(): statements and connections are bounded by the time left.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Member order: a transaction refers to the session's connection and the
  // subtransaction to the transaction, so they come after it (destroyed
  // first).
  std::unique_ptr<Session> session;
  std::unique_ptr<pqxx::work> tx;
  std::unique_ptr<pqxx::subtransaction> sub;

  explicit Impl(Options o) : options(std::move(o)) {}

  std::string scrub(std::string msg) const {
    for (const auto& secret : info.secrets) {
      for (auto pos = msg.find(secret); !secret.empty() && pos != std::string::npos; pos = msg.find(secret, pos)) {
        msg.replace(pos, secret.size(), "***");
        pos += 3;
      }
    }
    return msg;
  }

  std::string where() const { return "postgres " + info.shown + ": "; }

  // Milliseconds left before the deadline (<= 0: passed).
  std::int64_t left_ms() const {
    return std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now()).count();
  }

  // After set_deadline(): the statements that follow in transaction `w`
  // get statement_timeout = the time left (at most the option's; 1 ms once
  // the deadline passed). SET LOCAL ends with the transaction, so the
  // session's own setting is never changed. Each statement then ends by the
  // deadline; called before each statement of the sink's own that may wait
  // (one more round trip each, only once a deadline is set).
  void limit(pqxx::transaction_base& w) {
    if (!deadline) {
      return;
    }
    std::int64_t ms = std::max<std::int64_t>(left_ms(), 1);
    if (options.statement_timeout.count() > 0) {
      ms = std::min<std::int64_t>(ms, options.statement_timeout.count());
    }
    w.exec("SET LOCAL statement_timeout = " + std::to_string(ms));
  }

  std::unique_ptr<Session> connect() {
    std::string conninfo = info.full;
    if (deadline) {
      // connect_timeout shortened to the time left (whole seconds; libpq's
      // minimum is 2 s); once the deadline passed, no attempt at all.
      const auto left = left_ms();
      if (left <= 0) {
        throw Error(errc::io, where() + "cannot connect: the deadline given by set_deadline() has passed", false,
                    true);
      }
      const auto option_secs = std::max<std::int64_t>(1, (options.connect_timeout.count() + 999) / 1000);
      conninfo = info.with_connect_timeout(std::min<std::int64_t>(option_secs, (left + 999) / 1000));
    }
    try {
      auto s = std::make_unique<Session>(conninfo);
      // Session settings through set_variable(): libpqxx re-applies them
      // should it re-open the connection by itself.
      s->conn.set_variable("statement_timeout",
                           std::to_string(std::max<std::int64_t>(0, options.statement_timeout.count())));
      s->conn.set_variable("client_encoding", "UTF8");
      return s;
    } catch (const std::exception& e) {
      const std::string msg = trim(e.what());
      throw Error(errc::io, where() + "cannot connect: " + scrub(one_line(msg)), false, connect_retriable(msg));
    }
  }

  // Opens the sink's connection when there is none or it broke; true when
  // it did. Only while no transaction is open (a transaction belongs to its
  // connection).
  bool connection() {
    if (session && session->conn.is_open()) {
      return false;
    }
    session.reset();
    session = connect();
    return true;
  }

  // After a failure on the sink's connection: true (and the connection is
  // dropped) when it broke although it was open before the call. A
  // connection that died while idle (the server restarted) is noticed only
  // at its next use: the caller then tries once more on a new one, so the
  // first call after an outage succeeds. (libpqxx's own re-open of the
  // connection, PQreset, fails after a server restart: "Could not obtain
  // client encoding: not connected".)
  bool died_idle(bool fresh) {
    if (fresh || !session || session->conn.is_open()) {
      return false;
    }
    sub.reset();
    tx.reset();
    session.reset();
    return true;
  }

  // Ends the open transaction and drops the buffered rows. Never throws
  // (libpqxx's destructors swallow a failing ROLLBACK).
  void drop_transaction() noexcept {
    sub.reset();
    tx.reset();
    rows.clear();
    outbox_rows.clear();
    record_mark = 0;
    in_record = false;
  }

  // Rethrows the exception being handled as a kc::Error: retriable when the
  // connection `on` broke (or for a retriable SQLSTATE), naming `what`
  // otherwise. Call only from a catch block.
  [[noreturn]] void fail(std::string_view what, const Session* on) {
    std::string msg;
    bool retriable = false;
    try {
      throw;
    } catch (const Error&) {
      throw;
    } catch (const pqxx::broken_connection& e) {
      msg = std::string("connection lost: ") + e.what();
      retriable = true;
    } catch (const pqxx::in_doubt_error& e) {
      msg = std::string("connection lost during COMMIT; whether it committed is unknown (resume() tells): ") + e.what();
      retriable = true;
    } catch (const pqxx::transaction_rollback& e) {
      msg = e.what();  // serialization failure, deadlock
      retriable = true;
    } catch (const pqxx::sql_error& e) {
      msg = trim(e.what());
      if (!e.sqlstate().empty()) {
        msg += " (SQLSTATE " + e.sqlstate() + ")";
      }
      if (!e.query().empty()) {
        msg += " in: " + shorten(e.query());
      }
      retriable = retriable_sqlstate(e.sqlstate());
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
      msg = "unknown exception";
    }
    // Whatever failed, a connection that is gone makes it an outage.
    if (on != nullptr && !on->conn.is_open()) {
      retriable = true;
    }
    throw Error(errc::io, where() + std::string(what) + ": " + shorten(scrub(one_line(msg)), 1000), false, retriable);
  }

  // Runs `f` in a transaction of its own and commits it: on the sink's
  // connection, or, while the sink's transaction is open (claim() in a
  // cooperative rebalance), on a second connection for this call only.
  // Tx = pqxx::nontransaction: autocommit, for `f` of one statement.
  template <class Tx = pqxx::work, class F>
  auto own_transaction(std::string_view what, F&& f) {
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<Session> side;
      Session* s = nullptr;
      bool fresh = true;
      try {
        if (tx) {
          side = connect();
          s = side.get();
        } else {
          fresh = connection();
          s = session.get();
        }
        Tx w(s->conn, "kc_sink");
        if constexpr (!std::is_same_v<Tx, pqxx::nontransaction>) {
          limit(w);  // SET LOCAL needs a transaction block
        }
        auto out = f(w);
        w.commit();
        return out;
      } catch (...) {
        if (attempt == 0 && s == session.get() && died_idle(fresh)) {
          continue;
        }
        fail(what, s);
      }
    }
  }

  // Runs `f`, one statement, on the sink's connection outside its
  // transaction. A statement is atomic by itself: without a deadline it
  // runs in autocommit (one round trip, not BEGIN, statement, COMMIT: the
  // outbox is read after every commit that may have forwarded); with one,
  // in a transaction, for limit()'s SET LOCAL.
  template <class F>
  auto one_statement(std::string_view what, F&& f) {
    return deadline ? own_transaction<pqxx::work>(what, f) : own_transaction<pqxx::nontransaction>(what, f);
  }

  // Sends rows[0, upto) with one COPY into the open transaction.
  void flush(std::size_t upto) {
    copy(table, kColumns, rows, upto);
    record_mark -= std::min(record_mark, upto);
  }

  // Sends the forward()ed records with one COPY into kc_outbox.
  void flush_outbox() { copy(std::string(outbox::kTable), kOutboxColumns, outbox_rows, outbox_rows.size()); }

  // Sends buf[0, upto) (whole COPY text lines) with one COPY into `into`
  // and removes it from buf.
  void copy(const std::string& into, const std::vector<std::string>& columns, std::string& buf, std::size_t upto) {
    if (upto == 0) {
      return;
    }
    limit(*tx);
    {
      // tablewriter's constructor is deprecated in libpqxx 6 in favour of
      // stream_to, but it is the only class there that passes pre-encoded
      // COPY lines through (write_raw_line): many rows per libpq call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      pqxx::tablewriter w(*tx, into, columns.begin(), columns.end());
#pragma GCC diagnostic pop
      std::string_view rest(buf.data(), upto);
      std::string chunk;
      while (!rest.empty()) {
        // Every row ends with '\n' (escaped data holds none).
        auto cut = rest.size() <= kCopyChunk ? rest.size() - 1 : rest.rfind('\n', kCopyChunk - 1);
        if (cut == std::string_view::npos) {
          cut = rest.find('\n');  // one row longer than a chunk
        }
        chunk.assign(rest.substr(0, cut + 1));
        w.write_raw_line(chunk);
        rest.remove_prefix(cut + 1);
      }
      w.complete();
    }
    buf.erase(0, upto);
  }

  void create_tables() {
    own_transaction("creating the tables", [&](pqxx::work& w) {
      w.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLock) + ")");
      const auto r = w.exec("SELECT to_regclass(" + w.quote(std::string(kOffsetsTable)) + ") IS NULL, to_regclass(" +
                            w.quote(table) + ") IS NULL, to_regclass(" + w.quote(std::string(outbox::kTable)) +
                            ") IS NULL");
      if (r[0][0].as<bool>()) {
        w.exec("CREATE TABLE " + std::string(kOffsetsTable) +
               " (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT, "
               "epoch BIGINT NOT NULL, PRIMARY KEY (grp, topic, part))");
      }
      if (r[0][1].as<bool>()) {
        // No key on (topic, partition, "offset"): duplicates must stay
        // visible (an at-least-once run writes some; exactly-once none).
        w.exec("CREATE TABLE " + table +
               " (topic TEXT NOT NULL, partition INTEGER NOT NULL, \"offset\" BIGINT NOT NULL, "
               "timestamp_ms BIGINT, key TEXT, value JSONB)");
      }
      if (r[0][2].as<bool>()) {
        // Identity ids are never reused: a late or repeated forwards_sent()
        // cannot delete a newer forward. The index serves pending_forwards().
        w.exec(
            "CREATE TABLE kc_outbox (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, grp TEXT NOT NULL, "
            "src_topic TEXT NOT NULL, src_part INTEGER NOT NULL, src_offset BIGINT NOT NULL, topic TEXT NOT NULL, "
            "part INTEGER NOT NULL, key BYTEA, value BYTEA, headers BYTEA NOT NULL)");
        w.exec("CREATE INDEX kc_outbox_pending ON kc_outbox (grp, src_topic, src_part, id)");
      }
      return 0;
    });
  }

  // "(VALUES (...), ...) AS v(topic, part[, next_offset, epoch])" rows.
  std::string values_tp(pqxx::transaction_base& w, const TopicPartition& tp) const {
    return w.quote(tp.topic) + "::text, " + std::to_string(to_int(tp.partition)) + "::integer";
  }
};

PostgresSink::PostgresSink(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  auto& d = *impl_;
  if (!plain_identifier(d.options.table)) {
    throw Error(errc::config_invalid_value, "postgres sink: table '" + d.options.table +
                                                "' is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)");
  }
  if (reserved(d.options.table)) {
    throw Error(errc::config_invalid_value, "postgres sink: table '" + d.options.table + "' is reserved");
  }
  d.table = "\"" + d.options.table + "\"";
  d.info = parse_conninfo(d.options.uri, d.options.connect_timeout);
  d.create_tables();
}

PostgresSink::~PostgresSink() = default;

namespace {

// Rows of kc_offsets as (topic, part, next_offset, epoch), by partition.
using Stored = std::map<TopicPartition, std::pair<std::optional<std::int64_t>, std::int64_t>>;

Stored read_stored(const pqxx::result& rows) {
  Stored out;
  for (const auto& row : rows) {
    TopicPartition tp{row[0].as<std::string>(), Partition{row[1].as<std::int32_t>()}};
    out[std::move(tp)] = {row[2].is_null() ? std::nullopt : std::optional(row[2].as<std::int64_t>()),
                          row[3].as<std::int64_t>()};
  }
  return out;
}

}  // namespace

std::vector<SinkPosition> PostgresSink::claim(std::span<const TopicPartition> tps) {
  auto& d = *impl_;
  if (tps.empty()) {
    return {};
  }
  // Sorted and distinct: one row per partition (ON CONFLICT cannot touch a
  // row twice) and row locks taken in one order by every claimer.
  const std::set<TopicPartition> keys(tps.begin(), tps.end());
  const Stored got = d.own_transaction("claim", [&](pqxx::work& w) {
    std::string sql =
        "INSERT INTO " + std::string(kOffsetsTable) + " AS o (grp, topic, part, next_offset, epoch) VALUES ";
    const std::string grp = w.quote(d.options.group);
    bool first = true;
    for (const auto& tp : keys) {
      sql += (first ? "(" : ", (") + grp + ", " + d.values_tp(w, tp) + ", NULL, 1)";
      first = false;
    }
    sql +=
        " ON CONFLICT (grp, topic, part) DO UPDATE SET epoch = o.epoch + 1 RETURNING topic, part, next_offset, epoch";
    return read_stored(w.exec(sql));
  });
  std::vector<SinkPosition> pos;
  pos.reserve(tps.size());
  for (const auto& tp : tps) {
    const auto it = got.find(tp);
    if (it == got.end()) {
      throw Error(errc::io, d.where() + "claim: no row came back for " + describe(tp));
    }
    d.epochs[tp] = it->second.second;
    pos.push_back({true, it->second.first ? std::optional(Offset{*it->second.first}) : std::nullopt});
  }
  return pos;
}

std::vector<SinkPosition> PostgresSink::resume(std::span<const TopicPartition> tps) {
  auto& d = *impl_;
  if (tps.empty()) {
    return {};
  }
  const std::set<TopicPartition> keys(tps.begin(), tps.end());
  const Stored got = d.own_transaction("resume", [&](pqxx::work& w) {
    std::string sql =
        "SELECT o.topic, o.part, o.next_offset, o.epoch FROM " + std::string(kOffsetsTable) + " o JOIN (VALUES ";
    bool first = true;
    for (const auto& tp : keys) {
      sql += (first ? "(" : ", (") + d.values_tp(w, tp) + ")";
      first = false;
    }
    sql += ") AS v(topic, part) ON o.topic = v.topic AND o.part = v.part WHERE o.grp = " + w.quote(d.options.group);
    return read_stored(w.exec(sql));
  });
  std::vector<SinkPosition> pos;
  pos.reserve(tps.size());
  for (const auto& tp : tps) {
    const auto it = got.find(tp);
    if (it == got.end()) {
      pos.push_back({false, std::nullopt});  // never claimed by anyone
      continue;
    }
    const auto mine = d.epochs.find(tp);
    pos.push_back({mine != d.epochs.end() && mine->second == it->second.second,
                   it->second.first ? std::optional(Offset{*it->second.first}) : std::nullopt});
  }
  return pos;
}

void PostgresSink::release(std::span<const TopicPartition> tps) {
  for (const auto& tp : tps) {
    impl_->epochs.erase(tp);
  }
}

void PostgresSink::begin() {
  auto& d = *impl_;
  if (d.tx) {
    throw misuse("begin() while a transaction is open (commit() or abort() it first)");
  }
  d.drop_transaction();
  for (int attempt = 0;; ++attempt) {
    bool fresh = true;
    try {
      fresh = d.connection();
      d.tx = std::make_unique<pqxx::work>(d.session->conn, "kc_sink");
      d.limit(*d.tx);  // the handler's statements too: by the time left now
      return;
    } catch (...) {
      d.tx.reset();
      if (attempt == 0 && d.died_idle(fresh)) {
        continue;
      }
      d.fail("BEGIN", d.session.get());
    }
  }
}

void PostgresSink::record_begin() {
  auto& d = *impl_;
  if (!d.tx) {
    throw misuse("record_begin() outside a transaction (call begin() first)");
  }
  if (d.in_record) {
    throw misuse("record_begin() twice without record_end()");
  }
  d.in_record = true;
  d.record_mark = d.rows.size();
}

void PostgresSink::record_end(bool keep) {
  auto& d = *impl_;
  if (!d.in_record) {
    throw misuse("record_end() without record_begin()");
  }
  d.in_record = false;
  if (!keep) {
    d.rows.resize(d.record_mark);
  }
  if (d.sub) {
    const auto sub = std::move(d.sub);
    try {
      if (keep) {
        sub->commit();  // RELEASE SAVEPOINT; throws if a statement of the record failed
      } else {
        sub->abort();  // ROLLBACK TO SAVEPOINT; libpqxx swallows its failure...
        if (!d.session->conn.is_open()) {
          throw pqxx::broken_connection("the connection broke while rolling back to the record's savepoint");
        }
      }
    } catch (...) {
      d.fail(keep ? "keeping the record's writes (RELEASE SAVEPOINT; did a statement of the record fail?)"
                  : "undoing the record's writes (ROLLBACK TO SAVEPOINT)",
             d.session.get());
    }
  }
}

void PostgresSink::insert(const RecordRow& row) {
  auto& d = *impl_;
  if (!d.tx) {
    throw misuse("insert() outside a transaction (call begin() first)");
  }
  auto& out = d.rows;
  append_copy_text(out, row.topic);
  out += '\t';
  append_int(out, row.partition);
  out += '\t';
  append_int(out, row.offset);
  out += '\t';
  if (row.timestamp_ms >= 0) {
    append_int(out, row.timestamp_ms);
  } else {
    out += "\\N";
  }
  out += '\t';
  if (row.key) {
    append_copy_text(out, *row.key);
  } else {
    out += "\\N";
  }
  out += '\t';
  if (row.value) {
    append_copy_text(out, *row.value);
  } else {
    out += "\\N";
  }
  out += '\n';
  const std::size_t done = d.in_record ? d.record_mark : out.size();
  if (done >= kFlushAt && !d.sub) {
    try {
      d.flush(done);
    } catch (...) {
      d.fail("COPY into " + d.table, d.session.get());
    }
  }
}

pqxx::dbtransaction& PostgresSink::transaction() {
  auto& d = *impl_;
  if (!d.tx) {
    throw misuse("transaction() outside a transaction (call begin() first)");
  }
  if (!d.in_record) {
    return *d.tx;
  }
  if (!d.sub) {
    try {
      d.sub = std::make_unique<pqxx::subtransaction>(*d.tx, "kc_record");
    } catch (...) {
      d.sub.reset();
      d.fail("SAVEPOINT for the record", d.session.get());
    }
  }
  return *d.sub;
}

void PostgresSink::commit(std::span<const SinkOffset> offsets, const rd_kafka_consumer_group_metadata_s* group) {
  (void)group;  // the offsets live in kc_offsets
  auto& d = *impl_;
  if (!d.tx) {
    throw misuse("commit() without an open transaction (call begin() first)");
  }
  if (d.in_record) {
    d.drop_transaction();
    throw misuse("commit() inside a record (record_end() was not called): the transaction was rolled back");
  }
  std::vector<std::int64_t> mine;
  mine.reserve(offsets.size());
  for (const auto& o : offsets) {
    const auto it = d.epochs.find(o.tp);
    if (it == d.epochs.end()) {
      d.drop_transaction();
      throw misuse("commit(): " + describe(o.tp) +
                   " was not claimed by this sink (claim() it first): the transaction was rolled back");
    }
    mine.push_back(it->second);
  }
  std::string step = "COPY into " + d.table;
  try {
    d.flush(d.rows.size());
    step = "COPY into kc_outbox";
    d.flush_outbox();
    if (!offsets.empty()) {
      // One statement for all partitions: each row is updated only where
      // its epoch is still the one this sink claimed (compare-and-set).
      step = "storing the offsets in " + std::string(kOffsetsTable);
      std::string sql = "UPDATE " + std::string(kOffsetsTable) + " AS o SET next_offset = v.next FROM (VALUES ";
      for (std::size_t i = 0; i < offsets.size(); ++i) {
        sql += (i == 0 ? "(" : ", (") + d.values_tp(*d.tx, offsets[i].tp) + ", " +
               std::to_string(to_int(offsets[i].next)) + "::bigint, " + std::to_string(mine[i]) + "::bigint)";
      }
      sql += ") AS v(topic, part, next, epoch) WHERE o.grp = " + d.tx->quote(d.options.group) +
             " AND o.topic = v.topic AND o.part = v.part AND o.epoch = v.epoch RETURNING o.topic, o.part";
      d.limit(*d.tx);  // the statement that waits for another claimer's row locks
      std::set<TopicPartition> stored;
      for (const auto& row : d.tx->exec(sql)) {
        stored.insert({row[0].as<std::string>(), Partition{row[1].as<std::int32_t>()}});
      }
      for (const auto& o : offsets) {
        if (!stored.contains(o.tp)) {
          throw Error(errc::io, d.where() + "commit fenced: " + describe(o.tp) +
                                    " was claimed by another consumer since this one claimed it (epoch " +
                                    std::to_string(d.epochs[o.tp]) +
                                    " is no longer the partition's); the transaction was rolled back");
        }
      }
    }
    step = "COMMIT";
    d.tx->commit();
    d.drop_transaction();
  } catch (...) {
    d.drop_transaction();
    d.fail(step, d.session.get());
  }
}

void PostgresSink::abort() noexcept {
  impl_->drop_transaction();
}

bool PostgresSink::forward(const ForwardedRecord& r) {
  auto& d = *impl_;
  if (!d.tx) {
    throw misuse("forward() outside a transaction (call begin() first)");
  }
  if (d.in_record) {
    throw misuse("forward() inside a record (call it between records)");
  }
  const std::string headers = outbox::encode_headers(r.headers);
  auto& out = d.outbox_rows;
  append_copy_text(out, d.options.group);
  out += '\t';
  append_copy_text(out, r.source.topic);
  out += '\t';
  append_int(out, to_int(r.source.partition));
  out += '\t';
  append_int(out, r.source_offset);
  out += '\t';
  append_copy_text(out, r.topic);
  out += '\t';
  append_int(out, r.partition);
  for (const auto& bytes : {r.key, r.value}) {
    out += '\t';
    if (bytes) {
      append_copy_bytea(out, outbox::as_chars(*bytes));
    } else {
      out += "\\N";
    }
  }
  out += '\t';
  append_copy_bytea(out, headers);
  out += '\n';
  if (out.size() >= kFlushAt) {
    try {
      d.flush_outbox();
    } catch (...) {
      d.fail("COPY into kc_outbox", d.session.get());
    }
  }
  return true;
}

std::vector<PendingForward> PostgresSink::pending_forwards(std::span<const TopicPartition> owned, std::size_t max) {
  auto& d = *impl_;
  if (d.tx) {
    throw misuse("pending_forwards() while a transaction is open (call it after commit() or abort())");
  }
  if (owned.empty() || max == 0) {
    return {};
  }
  const std::string limit = std::to_string(std::min<std::size_t>(max, std::numeric_limits<std::int64_t>::max()));
  const std::set<TopicPartition> keys(owned.begin(), owned.end());
  // Per partition the oldest `max` by the index (LATERAL ... LIMIT), then
  // the oldest `max` of those: never more than partitions x max rows read.
  const pqxx::result rows = d.one_statement("reading kc_outbox", [&](pqxx::transaction_base& w) {
    std::string sql =
        "SELECT o.id, o.topic, o.part, o.key, o.value, o.headers, o.src_topic, o.src_part, o.src_offset FROM (VALUES ";
    bool first = true;
    for (const auto& tp : keys) {
      sql += (first ? "(" : ", (") + d.values_tp(w, tp) + ")";
      first = false;
    }
    sql += ") AS v(topic, part) CROSS JOIN LATERAL (SELECT * FROM kc_outbox k WHERE k.grp = " +
           w.quote(d.options.group) + " AND k.src_topic = v.topic AND k.src_part = v.part ORDER BY k.id LIMIT " +
           limit + ") o ORDER BY o.id LIMIT " + limit;
    return w.exec(sql);
  });
  std::vector<PendingForward> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    PendingForward f;
    f.id = row[0].as<std::int64_t>();
    f.topic = row[1].as<std::string>();
    f.partition = row[2].as<std::int32_t>();
    if (!row[3].is_null()) {
      f.key = pqxx::binarystring(row[3]).str();
    }
    if (!row[4].is_null()) {
      f.value = pqxx::binarystring(row[4]).str();
    }
    auto headers = outbox::decode_headers(pqxx::binarystring(row[5]).str());
    if (!headers) {
      throw Error(errc::io, d.where() + "kc_outbox row " + std::to_string(f.id) +
                                ": its headers are not in kc's encoding (version 1)");
    }
    f.headers = std::move(*headers);
    f.source = TopicPartition{row[6].as<std::string>(), Partition{row[7].as<std::int32_t>()}};
    f.source_offset = row[8].as<std::int64_t>();
    out.push_back(std::move(f));
  }
  return out;
}

void PostgresSink::forwards_sent(std::span<const std::int64_t> ids) {
  auto& d = *impl_;
  if (d.tx) {
    throw misuse("forwards_sent() while a transaction is open (call it after commit() or abort())");
  }
  if (ids.empty()) {
    return;
  }
  std::string list;
  for (const auto id : ids) {
    if (!list.empty()) {
      list += ',';
    }
    append_int(list, id);
  }
  d.one_statement("deleting from kc_outbox", [&](pqxx::transaction_base& w) {
    w.exec("DELETE FROM kc_outbox WHERE grp = " + w.quote(d.options.group) + " AND id = ANY (ARRAY[" + list +
           "]::bigint[])");
    return 0;
  });
}

void PostgresSink::set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
  impl_->deadline = deadline;
}

}  // namespace kc
