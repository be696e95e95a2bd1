#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <string>
#include <thread>

#include "commands.hpp"

#include "kc/error.hpp"
#include "kc/producer.hpp"

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
  fmt::format_to(std::back_inserter(out),
                 R"({{"order_id":"ord-{:010d}","customer_id":"cust-{:05d}","status":"{}","amount":{:.2f},)"
                 R"("currency":"{}","items":[{{"sku":"SKU-{:04d}","qty":{},"unit_price":{:.2f}}},)"
                 R"({{"sku":"SKU-{:04d}","qty":{},"unit_price":{:.2f}}}],"created_at":"2026-11-24T12:{:02d}:{:02d}Z"}})",
                 i, (i * 7919) % 100000, kStatus[i % 4], static_cast<double>(qty1) * p1 + static_cast<double>(qty2) * p2,
                 kCurrency[i % 3], (i * 13) % 10000, qty1, p1, (i * 17) % 10000, qty2, p2, (i / 60) % 60, i % 60);
}

class Progress {
 public:
  explicit Progress(std::uint64_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void tick(std::uint64_t n, std::uint64_t acked) {
    if (!tty_) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) {
      return;
    }
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\rproduced %llu/%llu, acknowledged %llu (%.0f msg/s)   ", static_cast<unsigned long long>(n),
                 static_cast<unsigned long long>(total_), static_cast<unsigned long long>(acked),
                 secs > 0 ? static_cast<double>(n) / secs : 0.0);
  }
  void done() const {
    if (tty_) {
      std::fputc('\n', stderr);
    }
  }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::uint64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

Bytes bytes_of(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

}  // namespace

int run_produce(const ProduceOptions& o) {
  ProducerConfig cfg;
  if (o.bootstrap_servers) {
    cfg.bootstrap_servers = *o.bootstrap_servers;
  }
  for (const auto& kv : o.rdkafka) {
    cfg.librdkafka.insert(split_property(kv));
  }
  Producer producer(cfg);

  std::ifstream file;
  if (o.file) {
    file.open(*o.file);
    if (!file) {
      throw Error(errc::io, "--file " + *o.file + ": cannot open");
    }
  }
  const std::uint64_t total = o.file ? 0 : o.count;
  Progress progress(total);
  std::string value;
  std::string key;
  std::uint64_t n = 0;
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
    producer.produce(o.topic, k, bytes_of(value));
    if (o.rate > 0) {
      const auto due = start + std::chrono::duration<double>(static_cast<double>(n + 1) / o.rate);
      std::this_thread::sleep_until(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(due));
    }
    if ((n & 1023) == 0) {
      producer.poll();
      progress.tick(n, producer.stats().delivered);
    }
  }
  const bool flushed = producer.flush(std::chrono::seconds(60));
  progress.done();
  const auto& st = producer.stats();
  const double secs = progress.elapsed();
  std::fprintf(stderr, "kc produce: %llu records to %s, acknowledged %llu, failed %llu in %.2f s (%.0f msg/s)%s%s\n",
               static_cast<unsigned long long>(n), o.topic.c_str(), static_cast<unsigned long long>(st.delivered),
               static_cast<unsigned long long>(st.failed), secs, secs > 0 ? static_cast<double>(n) / secs : 0.0,
               st.last_error.empty() ? "" : "; last error: ", st.last_error.c_str());
  return flushed && st.failed == 0 && st.delivered == n ? 0 : 1;
}

}  // namespace kc::tool
