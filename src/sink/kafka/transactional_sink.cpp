#include "kc/kafka_sink.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>

#include "kc/error.hpp"
#include "produce/conf.hpp"
#include "produce/producev.hpp"
#include "rdkafka/handles.hpp"
#include "rdkafka/log.hpp"

namespace kc {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A pause between two attempts of a transactional call that failed with a
// retriable error at once (coordinator loading, ...), so the retry loop does
// not spin; librdkafka's docs ask for "a shorter grace period".
constexpr auto kRetryPause = 100ms;

// The longest one transactional call blocks before kc looks at the stop
// flag (set_interrupt()) and its own deadline again.
constexpr int kSliceMs = 500;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, std::numeric_limits<int>::max()));
}

std::string describe(const rd_kafka_error_t* e) {
  return std::string(rd_kafka_error_name(e)) + ": " + rd_kafka_error_string(e);
}

// A record staged between record_begin() and record_end(): owns its bytes.
struct Staged {
  std::string topic;
  std::optional<std::vector<std::byte>> key;
  std::optional<std::vector<std::byte>> value;
  std::int32_t partition = -1;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

std::optional<Bytes> view(const std::optional<std::vector<std::byte>>& b) {
  if (!b) {
    return std::nullopt;
  }
  return Bytes(*b);
}

}  // namespace

struct KafkaTransactionalSink::Impl {
  enum class State {
    ready,    // rk is initialised for transactions
    rebuild,  // rk lost (or not yet initialised): recreate at the next resume()/begin()
    dead,     // lost with rebuild_on_fatal=false: every call throws fatal()
  };

  Options options;
  State state = State::rebuild;
  bool in_txn = false;
  bool staging = false;
  std::vector<Staged> staged;
  std::uint64_t created = 0;
  std::string lost_reason;
  // Failed deliveries of the open transaction (from the delivery report
  // callback, on this thread inside poll/commit); they explain an abortable
  // commit error.
  std::uint64_t failed_deliveries = 0;
  std::string first_delivery_error;
  // Last: the handle's callbacks use the members above (its opaque is this
  // Impl), so it is destroyed first.
  detail::HandlePtr rk;

  // set_deadline(): no call waits past it (a graceful stop's deadline).
  std::optional<Clock::time_point> hard_deadline;
  // set_interrupt(): the consumer's stop flag; a transactional call waits in
  // slices of kSlice and gives up once it is set.
  const std::atomic<int>* interrupt = nullptr;
  bool interrupted() const noexcept {
    return interrupt != nullptr && interrupt->load(std::memory_order_relaxed) != 0;
  }
  // The deadline of one blocking step: commit_timeout from now, or the
  // stop's deadline when that is sooner.
  Clock::time_point bound() const {
    const auto d = Clock::now() + options.commit_timeout;
    return hard_deadline ? std::min(d, *hard_deadline) : d;
  }

  explicit Impl(Options o) : options(std::move(o)) {}

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept;
  std::string name() const { return "kafka sink (transactional.id " + options.transactional_id + ")"; }

  detail::HandlePtr create_producer();
  void init_transactions();
  void ensure_ready();
  void drop_producer() noexcept;
  Error lose(const std::string& what);
  void require_open(const char* call);
  void send(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value, std::int32_t partition,
            const std::vector<std::pair<std::string, std::optional<std::string>>>& headers);
  template <typename Call>
  void run_txn_call(const char* what, Call call, Clock::time_point deadline);
  void abort_open(Clock::time_point deadline, const std::string& why);
};

void KafkaTransactionalSink::Impl::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
  // Purged records (abort_transaction, drop_producer) are not failures of
  // the transaction: they belong to one that is being abandoned anyway.
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
      m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
    return;
  }
  auto* impl = static_cast<Impl*>(opaque);
  try {
    // Not rd_kafka_message_errstr(): for a delivery report it returns the
    // payload (not NUL-terminated) rather than an error text.
    if (impl->failed_deliveries++ == 0) {
      const char* why = rd_kafka_message_produce_errstr(m);
      impl->first_delivery_error = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) +
                                   "]: " + rd_kafka_err2name(m->err) + ": " +
                                   (why != nullptr ? why : rd_kafka_err2str(m->err));
    }
  } catch (...) {
  }
}

// Its own handle, not a kc::Producer: init/begin/commit/abort need one owner
// of the handle and of its delivery reports (served on this thread). What it
// shares with kc::Producer is the configuration (detail::producer_conf: kc's
// defaults, then the options, bad keys named) and the produce call
// (detail::produce_copy).
detail::HandlePtr KafkaTransactionalSink::Impl::create_producer() {
  // The first record of a transaction adds its partitions to it; while the
  // broker still writes the previous transaction's markers it answers
  // CONCURRENT_TRANSACTIONS, retried after retry.backoff.ms. librdkafka's
  // 100 ms default made every transaction take ~88 ms on loopback (391
  // transactions of 500 records: 5.8k msg/s); 20 ms (what Kafka's Java
  // producer uses for this case) gives ~11 ms. Options may override it.
  auto conf = detail::producer_conf(options.bootstrap_servers, options.librdkafka, {{"retry.backoff.ms", "20"}});
  detail::conf_set(conf.get(), "transactional.id", options.transactional_id);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  rd_kafka_conf_set_opaque(conf.get(), this);
  // Not detail::make_handle: it reports every failure as retriable, but
  // rd_kafka_new fails on inconsistent properties (enable.idempotence=false
  // or acks=1 with a transactional.id), which no retry fixes.
  char err[512];
  rd_kafka_t* h = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (h == nullptr) {
    throw Error(errc::config_invalid_value, name() + ": cannot create the producer: " + err);
  }
  (void)conf.release();  // owned by h now
  ++created;
  return detail::HandlePtr(h);
}

// Bounded by commit_timeout. init_transactions is resumable after a
// retriable error, so a handle whose init timed out is kept and the next
// attempt (resume()) resumes it instead of creating yet another producer.
void KafkaTransactionalSink::Impl::init_transactions() {
  const auto deadline = bound();
  for (;;) {
    detail::ErrorPtr e(rd_kafka_init_transactions(rk.get(), std::max(1, remaining_ms(deadline))));
    if (!e) {
      state = State::ready;
      return;
    }
    const bool retriable = rd_kafka_error_is_retriable(e.get()) != 0;
    if (retriable && Clock::now() + kRetryPause < deadline) {
      std::this_thread::sleep_for(kRetryPause);
      continue;
    }
    const std::string what = name() + ": init_transactions failed: " + describe(e.get());
    if (retriable) {
      throw Error(errc::kafka,
                  what + " (broker unreachable? retried for " + std::to_string(options.commit_timeout.count()) + " ms)",
                  false, true);
    }
    drop_producer();  // not resumable: the next attempt starts afresh
    throw Error(errc::kafka, what);
  }
}

void KafkaTransactionalSink::Impl::ensure_ready() {
  if (state == State::dead) {
    throw Error(errc::kafka_fatal, name() + " is unusable (rebuild_on_fatal=false): " + lost_reason, true);
  }
  if (state == State::ready) {
    return;
  }
  if (!rk) {
    rk = create_producer();
    spdlog::info("kc: {}: producer #{} created; initialising transactions (fences older producers with this id)",
                 name(), created);
  }
  init_transactions();
}

// Purge first: rd_kafka_destroy would otherwise wait for queued records of a
// transaction that is abandoned anyway. librdkafka 2.14 has no public
// RD_KAFKA_DESTROY_F_IMMEDIATE (it is internal), so a plain destroy; for a
// producer it does not flush, and with nothing queued it returns promptly.
void KafkaTransactionalSink::Impl::drop_producer() noexcept {
  if (rk) {
    rd_kafka_purge(rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
    rk.reset();
  }
  in_txn = false;
  staging = false;
  staged.clear();
}

// The producer cannot go on (fatal error, or a transaction whose outcome is
// unknown after commit_timeout): Kafka's advice is to recreate it; the new
// one's init_transactions fences the old epoch and completes or aborts the
// open transaction on the broker.
Error KafkaTransactionalSink::Impl::lose(const std::string& what) {
  const bool rebuild = options.rebuild_on_fatal;
  spdlog::error("kc: {}: {}; producer destroyed, {}", name(), what,
                rebuild ? "a new one with the same transactional.id is created at the next resume()/begin()"
                        : "rebuild_on_fatal=false: the sink is unusable");
  drop_producer();
  state = rebuild ? State::rebuild : State::dead;
  lost_reason = what;
  return Error(errc::kafka_fatal, name() + ": " + what, !rebuild, rebuild);
}

void KafkaTransactionalSink::Impl::require_open(const char* call) {
  if (state == State::dead) {
    throw Error(errc::kafka_fatal, name() + " is unusable (rebuild_on_fatal=false): " + lost_reason, true);
  }
  if (!rk || state != State::ready) {
    throw Error(errc::kafka,
                name() + ": " + call + ": the producer was lost in this transaction (" + lost_reason +
                    "); nothing is committed, it is recreated at the next resume()/begin()",
                false, true);
  }
  if (!in_txn) {
    throw Error(errc::misuse, name() + ": " + call + " outside a transaction (call begin() first)");
  }
}

void KafkaTransactionalSink::Impl::send(
    std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value, std::int32_t partition,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& headers) {
  const std::string t(topic);
  const auto deadline = bound();
  for (;;) {
    const auto err = detail::produce_copy(rk.get(), t, key, value, partition, headers);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_poll(rk.get(), 0);  // serve delivery reports
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && Clock::now() < deadline) {
      rd_kafka_poll(rk.get(), 100);
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char buf[512] = {0};
      rd_kafka_fatal_error(rk.get(), buf, sizeof buf);
      throw lose("produce to " + t + " failed: fatal error: " + buf);
    }
    // __STATE: the transaction already failed (abortable); commit() will say
    // why. __QUEUE_FULL past the deadline: the broker does not take records.
    const bool retriable = err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__QUEUE_FULL;
    throw Error(errc::kafka,
                name() + ": produce to " + t + " failed: " + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err),
                false, retriable);
  }
}

// One transactional call, retried while it fails retriably and time is
// left. `call(timeout_ms)` returns librdkafka's error object.
template <typename Call>
void KafkaTransactionalSink::Impl::run_txn_call(const char* what, Call call, Clock::time_point deadline) {
  // The stop flag cuts a call that began before the stop; one made during
  // the stop keeps to its deadline (set_deadline()).
  const bool interruptible = !interrupted();
  for (;;) {
    // In slices (librdkafka's transactional calls may be called again after
    // a __TIMED_OUT), so that a stop is noticed between them.
    detail::ErrorPtr e(call(std::max(1, std::min(remaining_ms(deadline), kSliceMs))));
    if (!e) {
      return;
    }
    if (rd_kafka_error_is_fatal(e.get()) != 0) {
      // The originating fatal error, when it is not the one returned.
      char buf[512] = {0};
      rd_kafka_fatal_error(rk.get(), buf, sizeof buf);
      const bool same = std::string_view(buf) == rd_kafka_error_string(e.get());
      throw lose(std::string(what) + " failed with a fatal error: " + describe(e.get()) +
                 (buf[0] != 0 && !same ? std::string(" (") + buf + ")" : std::string()));
    }
    if (rd_kafka_error_txn_requires_abort(e.get()) != 0) {
      std::string why = std::string(what) + " failed: " + describe(e.get());
      if (failed_deliveries > 0) {
        why += "; " + std::to_string(failed_deliveries) + " deliveries failed, first: " + first_delivery_error;
      }
      abort_open(bound(), why);
      spdlog::warn("kc: {}: transaction aborted: {}", name(), why);
      throw Error(errc::kafka, name() + ": transaction aborted: " + why, false, true);
    }
    if (rd_kafka_error_is_retriable(e.get()) != 0) {
      const bool timed_out = rd_kafka_error_code(e.get()) == RD_KAFKA_RESP_ERR__TIMED_OUT;
      if (Clock::now() + kRetryPause < deadline && !(interruptible && interrupted())) {
        if (!timed_out) {
          std::this_thread::sleep_for(kRetryPause);
        }
        continue;
      }
      throw lose(std::string(what) + " did not finish in time (commit_timeout " +
                 std::to_string(options.commit_timeout.count()) + " ms" +
                 (hard_deadline ? std::string(", or the stop's deadline") : std::string()) + "; last error " +
                 describe(e.get()) + "): the transaction's outcome is unknown");
    }
    // Neither retriable nor abortable: librdkafka recommends treating it as fatal.
    throw lose(std::string(what) + " failed: " + describe(e.get()) + " (neither retriable nor abortable)");
  }
}

// Aborts the open transaction; retries retriable errors until `deadline`.
// On failure the producer is lost (lose()) and its Error thrown.
void KafkaTransactionalSink::Impl::abort_open(Clock::time_point deadline, const std::string& why) {
  for (;;) {
    detail::ErrorPtr e(rd_kafka_abort_transaction(rk.get(), std::max(1, remaining_ms(deadline))));
    if (!e) {
      in_txn = false;
      return;
    }
    if (rd_kafka_error_is_retriable(e.get()) != 0 && rd_kafka_error_is_fatal(e.get()) == 0 &&
        Clock::now() + kRetryPause < deadline) {
      std::this_thread::sleep_for(kRetryPause);
      continue;
    }
    throw lose(why + "; abort_transaction failed: " + describe(e.get()));
  }
}

KafkaTransactionalSink::KafkaTransactionalSink(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  const auto& o = impl_->options;
  if (o.transactional_id.empty()) {
    throw Error(errc::config_missing,
                "transactional_id: required by the Kafka transactional sink (stable per consumer instance)");
  }
  if (o.bootstrap_servers.empty() && !o.librdkafka.contains("bootstrap.servers")) {
    throw Error(errc::config_missing, "bootstrap_servers: required by the Kafka transactional sink");
  }
  if (o.librdkafka.contains("transactional.id")) {
    throw Error(errc::config_forbidden,
                "librdkafka.transactional.id: set KafkaTransactionalSink::Options::transactional_id instead");
  }
  if (o.commit_timeout <= std::chrono::milliseconds::zero()) {
    throw Error(errc::config_invalid_value, "commit_timeout: must be positive");
  }
  impl_->ensure_ready();
}

KafkaTransactionalSink::~KafkaTransactionalSink() {
  if (impl_) {
    abort();  // an open transaction would hold back read_committed readers until transaction.timeout.ms
    impl_->drop_producer();
  }
}

std::vector<SinkPosition> KafkaTransactionalSink::claim(std::span<const TopicPartition> tps) {
  return std::vector<SinkPosition>(tps.size(), SinkPosition{true, std::nullopt});
}

std::vector<SinkPosition> KafkaTransactionalSink::resume(std::span<const TopicPartition> tps) {
  impl_->ensure_ready();
  return std::vector<SinkPosition>(tps.size(), SinkPosition{true, std::nullopt});
}

void KafkaTransactionalSink::begin() {
  auto& s = *impl_;
  if (s.in_txn) {
    throw Error(errc::misuse, s.name() + ": begin() while a transaction is open");
  }
  s.ensure_ready();
  rd_kafka_poll(s.rk.get(), 0);  // reports of the previous transaction, before the counts reset
  s.failed_deliveries = 0;
  s.first_delivery_error.clear();
  s.staging = false;
  s.staged.clear();
  detail::ErrorPtr e(rd_kafka_begin_transaction(s.rk.get()));
  if (e) {
    if (rd_kafka_error_is_fatal(e.get()) != 0) {
      throw s.lose("begin_transaction failed with a fatal error: " + describe(e.get()));
    }
    throw Error(errc::kafka, s.name() + ": begin_transaction failed: " + describe(e.get()), false,
                rd_kafka_error_is_retriable(e.get()) != 0);
  }
  s.in_txn = true;
}

void KafkaTransactionalSink::record_begin() {
  impl_->staging = true;
  impl_->staged.clear();
}

void KafkaTransactionalSink::record_end(bool keep) {
  auto& s = *impl_;
  s.staging = false;
  auto staged = std::move(s.staged);
  s.staged.clear();
  if (!keep || staged.empty()) {
    return;
  }
  s.require_open("record_end");
  for (const auto& r : staged) {
    s.send(r.topic, view(r.key), view(r.value), r.partition, r.headers);
  }
}

void KafkaTransactionalSink::produce(std::string_view topic, std::optional<Bytes> key, std::optional<Bytes> value,
                                     std::int32_t partition,
                                     const std::vector<std::pair<std::string, std::optional<std::string>>>& headers) {
  auto& s = *impl_;
  s.require_open("produce");
  if (!s.staging) {
    s.send(topic, key, value, partition, headers);
    return;
  }
  Staged r;
  r.topic = std::string(topic);
  if (key) {
    r.key.emplace(key->begin(), key->end());
  }
  if (value) {
    r.value.emplace(value->begin(), value->end());
  }
  r.partition = partition;
  r.headers = headers;
  s.staged.push_back(std::move(r));
}

void KafkaTransactionalSink::commit(std::span<const SinkOffset> offsets,
                                    const rd_kafka_consumer_group_metadata_s* group) {
  auto& s = *impl_;
  s.require_open("commit");
  // A record that was begun but never ended keeps nothing.
  s.staging = false;
  s.staged.clear();
  const auto deadline = s.bound();
  if (!offsets.empty()) {
    if (group == nullptr) {
      throw Error(errc::misuse, s.name() + ": commit() with offsets needs the consumer's group metadata");
    }
    detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
    for (const auto& o : offsets) {
      rd_kafka_topic_partition_list_add(list.get(), o.tp.topic.c_str(), to_int(o.tp.partition))->offset =
          to_int(o.next);
    }
    // Retried with the same list and metadata, as librdkafka asks (the call
    // is retriable but not resumable).
    s.run_txn_call(
        "send_offsets_to_transaction",
        [&](int ms) { return rd_kafka_send_offsets_to_transaction(s.rk.get(), list.get(), group, ms); }, deadline);
  }
  s.run_txn_call(
      "commit_transaction", [&](int ms) { return rd_kafka_commit_transaction(s.rk.get(), ms); }, deadline);
  s.in_txn = false;
}

void KafkaTransactionalSink::abort() noexcept {
  auto& s = *impl_;
  try {
    s.staging = false;
    s.staged.clear();
    if (!s.in_txn || !s.rk) {
      s.in_txn = false;
      return;
    }
    s.abort_open(s.bound(), "abort()");
  } catch (...) {
    // abort_open() failed: lose() logged it and marked the producer for rebuild.
    s.in_txn = false;
  }
}

bool KafkaTransactionalSink::forward(const ForwardedRecord& r) {
  auto& s = *impl_;
  s.require_open("forward");
  if (s.staging) {
    throw Error(errc::misuse, s.name() + ": forward() inside a record (between record_begin and record_end)");
  }
  const std::vector<std::pair<std::string, std::optional<std::string>>> headers(r.headers.begin(), r.headers.end());
  s.send(r.topic, r.key, r.value, r.partition, headers);
  return true;
}

void KafkaTransactionalSink::set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
  impl_->hard_deadline = deadline;
}

void KafkaTransactionalSink::set_interrupt(const std::atomic<int>* stop) noexcept {
  impl_->interrupt = stop;
}

std::uint64_t KafkaTransactionalSink::producers_created() const noexcept {
  return impl_->created;
}

}  // namespace kc
