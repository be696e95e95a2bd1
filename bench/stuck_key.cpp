// stuck_key: one record held for good in front of millions of done ones
// (issue 16, item 10). Run by `KC_BENCH_SCENARIO=stuck bench/run`; a
// benchmark, never a timed test.
//
//   stuck_key produce -b B -t T --messages N --keys K
//       one record with key "stuck", then N records with keys key-0 ..
//       key-(K-1) in turn and small values (16 bytes), through kc::Producer
//       (idempotent, acks=all), so the partition holds them in that order.
//   stuck_key consume -b B -t T --messages N [--report-every R] [--concurrency C]
//                     [--budget-seconds S]
//       kc::Consumer in parallel mode, parallel.ordering = key,
//       parallel.concurrency C (2), no dead-letter topic. The handler returns
//       kc::Outcome::dead for key "stuck": without a dead-letter topic that
//       record is held for good (src/source/parallel.cpp, on_completion), so
//       the partition's commit point stays at it while every later record
//       completes. Every R (500,000) records done it prints one line:
//       records done, throughput over that slice (msg/s), CPU seconds of the
//       process over the slice, RSS and peak RSS (VmRSS, VmHWM of
//       /proc/self/status). It stops when N records are done or after S
//       seconds (then the last line is the partial slice).
//
// Output lines start with "stuck:"; bench/run keeps them in its results dir.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "kc/consumer.hpp"
#include "kc/error.hpp"
#include "kc/producer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

kc::Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// VmRSS and VmHWM of this process in MiB (from /proc/self/status).
std::pair<double, double> rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  double rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      rss = std::stod(line.substr(6)) / 1024.0;
    } else if (line.rfind("VmHWM:", 0) == 0) {
      hwm = std::stod(line.substr(6)) / 1024.0;
    }
  }
  return {rss, hwm};
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int produce(const std::string& bootstrap, const std::string& topic, std::uint64_t messages, std::uint64_t keys) {
  kc::ProducerConfig pc;
  pc.bootstrap_servers = bootstrap;
  pc.librdkafka["linger.ms"] = "20";
  pc.librdkafka["batch.size"] = "1000000";
  kc::Producer p(pc);
  const auto t0 = Clock::now();
  p.produce(topic, bytes("stuck"), bytes("the record that fails for good"));
  std::string key;
  char value[17];
  for (std::uint64_t i = 0; i < messages; ++i) {
    key = fmt::format("key-{}", i % keys);
    std::snprintf(value, sizeof value, "%016llx", static_cast<unsigned long long>(i));
    p.produce(topic, bytes(key), bytes(std::string_view(value, 16)));
  }
  const bool flushed = p.flush(std::chrono::minutes(5));
  const auto s = p.stats();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("stuck: produced 1 + %llu records to %s in %.1f s: delivered %llu, failed %llu%s%s\n",
              static_cast<unsigned long long>(messages), topic.c_str(), secs,
              static_cast<unsigned long long>(s.delivered), static_cast<unsigned long long>(s.failed),
              s.last_error.empty() ? "" : "; last error: ", s.last_error.c_str());
  return flushed && s.failed == 0 && s.delivered == messages + 1 ? 0 : 1;
}

int consume(const std::string& bootstrap, const std::string& topic, const std::string& group, std::uint64_t messages,
            std::uint64_t report_every, std::size_t concurrency, double budget_seconds) {
  kc::ConsumerConfig cfg;
  cfg.bootstrap_servers = bootstrap;
  cfg.group = group;
  cfg.topics = {topic};
  cfg.from_beginning = true;
  cfg.parallel.ordering = kc::Ordering::key;
  cfg.parallel.concurrency = concurrency;

  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> stuck_calls{0};
  std::mutex mu;  // guards the slice start and the output
  auto slice_at = Clock::now();
  double slice_cpu = cpu_seconds();
  std::uint64_t slice_from = 0;
  const auto start = Clock::now();
  bool started = false;

  std::printf("stuck: %12s %12s %10s %10s %10s %10s\n", "records_done", "slice_msg_s", "slice_cpu_s", "rss_mib",
              "peak_mib", "elapsed_s");
  std::fflush(stdout);
  auto report = [&](std::uint64_t n) {  // with `mu` held
    const auto now = Clock::now();
    const double secs = std::chrono::duration<double>(now - slice_at).count();
    const double cpu = cpu_seconds();
    const auto [rss, hwm] = rss_mib();
    std::printf("stuck: %12llu %12.0f %10.2f %10.1f %10.1f %10.1f\n", static_cast<unsigned long long>(n),
                secs > 0 ? static_cast<double>(n - slice_from) / secs : 0.0, cpu - slice_cpu, rss, hwm,
                std::chrono::duration<double>(now - start).count());
    std::fflush(stdout);
    slice_at = now;
    slice_cpu = cpu;
    slice_from = n;
  };

  std::unique_ptr<kc::Consumer> consumer;
  std::mutex end_mu;
  std::condition_variable end_cv;
  bool finished = false;
  consumer = std::make_unique<kc::Consumer>(cfg, [&](const kc::Message& m) {
    const auto key = m.key();
    if (key && kc::as_text(*key) == "stuck") {
      ++stuck_calls;
      return kc::Outcome::dead;  // no dead-letter topic: held for good
    }
    const auto n = done.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n == 1) {
      std::lock_guard lock(mu);
      if (!started) {  // the slices start at the first record, not at the group join
        started = true;
        slice_at = Clock::now();
        slice_cpu = cpu_seconds();
      }
    }
    if (n % report_every == 0 || n == messages) {
      std::lock_guard lock(mu);
      report(n);
    }
    if (n == messages) {
      {
        std::lock_guard lock(end_mu);
        finished = true;
      }
      end_cv.notify_all();
      consumer->stop();
    }
    return kc::Outcome::done;
  });

  // The budget: stop after budget_seconds, reporting the partial slice.
  std::thread watchdog([&] {
    std::unique_lock lock(end_mu);
    if (!end_cv.wait_for(lock, std::chrono::duration<double>(budget_seconds), [&] { return finished; })) {
      {
        std::lock_guard l(mu);
        const auto n = done.load();
        if (n != slice_from) {
          report(n);
        }
        std::printf("stuck: budget of %.0f s reached at %llu of %llu records: stopping\n", budget_seconds,
                    static_cast<unsigned long long>(n), static_cast<unsigned long long>(messages));
        std::fflush(stdout);
      }
      consumer->stop();
    }
  });
  const auto result = consumer->run();
  {
    std::lock_guard lock(end_mu);
    finished = true;
  }
  end_cv.notify_all();
  watchdog.join();
  const auto n = done.load();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const auto committed = result.stats.committed.empty() ? -1 : kc::to_int(result.stats.committed.begin()->second);
  std::printf(
      "stuck: done %llu of %llu records in %.1f s (stuck record called %llu times; committed offset %lld; "
      "%s)\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(messages), secs,
      static_cast<unsigned long long>(stuck_calls.load()), static_cast<long long>(committed),
      n == messages ? "complete" : "stopped by the budget");
  return n == messages ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stuck_key: one record held for good in front of millions of done ones"};
  app.require_subcommand(1);
  std::string bootstrap, topic, group;
  std::uint64_t messages = 5'000'000, keys = 10'000, report_every = 500'000;
  std::size_t concurrency = 2;
  double budget = 3600;
  auto* p = app.add_subcommand("produce", "one \"stuck\" record, then N keyed ones");
  auto* c = app.add_subcommand("consume", "consume in parallel key mode; report every R records");
  for (auto* s : {p, c}) {
    s->add_option("-b,--bootstrap-servers", bootstrap, "brokers")->required();
    s->add_option("-t,--topic", topic, "topic")->required();
    s->add_option("--messages", messages, "records after the stuck one (default 5000000)");
  }
  p->add_option("--keys", keys, "keys key-0..key-(K-1) in turn (default 10000)");
  c->add_option("--group", group, "consumer group (default: stuck-<pid>)");
  c->add_option("--report-every", report_every, "records per report line (default 500000)");
  c->add_option("--concurrency", concurrency, "parallel.concurrency (default 2)");
  c->add_option("--budget-seconds", budget, "stop after this long (default 3600)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (p->parsed()) {
      return produce(bootstrap, topic, messages, keys == 0 ? 1 : keys);
    }
    if (group.empty()) {
      group = fmt::format("stuck-{}", static_cast<long>(getpid()));
    }
    return consume(bootstrap, topic, group, messages, report_every == 0 ? messages : report_every, concurrency, budget);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stuck_key: %s\n", e.what());
    return 1;
  }
}
