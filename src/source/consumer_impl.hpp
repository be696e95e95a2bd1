// The poll loop's state, shared by consumer.cpp (the loop, commits,
// rebalances, the one-record-at-a-time path) and parallel.cpp (records in
// flight on workers or asynchronous handlers). Private to the library.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "deadletter/writer.hpp"
#include "dispatch/dispatcher.hpp"
#include "dispatch/workers.hpp"
#include "kc/consumer.hpp"
#include "kc/embedded.hpp"
#include "kc/metrics.hpp"
#include "offsets/metadata.hpp"
#include "offsets/tracker.hpp"
#include "rdkafka/handles.hpp"
#include "retry/backoff.hpp"
#include "retry/router.hpp"
#include "source/consumer_metrics.hpp"
#include "source/problems.hpp"

namespace kc {

namespace detail {

using Clock = std::chrono::steady_clock;

/// `num`/`den` of the time from now to `deadline` (now when it has passed).
Clock::time_point share_of(Clock::time_point deadline, int num, int den);

inline std::string describe(const std::vector<TopicPartition>& tps) {
  std::string out;
  for (const auto& tp : tps) {
    if (!out.empty()) {
      out += ' ';
    }
    out += tp.topic + "[" + std::to_string(to_int(tp.partition)) + "]";
  }
  return out;
}

inline std::string header_text(const rd_kafka_message_t* m, std::string_view name) {
  rd_kafka_headers_t* hdrs = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  // rd_kafka_message_headers takes a non-const message; it only parses.
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(m), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, std::string(name).c_str(), &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return {static_cast<const char*>(value), size};
}

inline std::int64_t header_int(const rd_kafka_message_t* m, std::string_view name) {
  const auto text = header_text(m, name);
  std::int64_t out = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && p == text.data() + text.size() && !text.empty() ? out : 0;
}

}  // namespace detail

using detail::Clock;

struct Consumer::Impl {
  struct PartitionState {
    TopicPartition tp;
    detail::TopicMetrics* metrics = nullptr;  // its topic's series
    detail::PartitionOffsets offsets;
    std::int64_t acked = -1;  // last commit point the broker acknowledged
    // The offset of the first record librdkafka delivered for it in this
    // assignment (-1: none yet): where an exactly-once rewind goes back to
    // when neither the sink nor the group stores an offset for it.
    std::int64_t first_offset = -1;
    bool halted = false;      // a handler failed here: paused, nothing past it is done
    // Retry: the record at retry_offset failed and is fetched again (seek
    // back) once the partition resumes at retry_due; retry_attempt is its
    // next handler call.
    bool waiting = false;
    std::int64_t retry_offset = -1;
    int retry_attempt = 1;
    Clock::time_point retry_due;
    bool dlq_paused = false;  // too many dead letters unacknowledged: paused until they drain
    // Exactly-once with a sink that cannot forward(): the offset whose dead
    // letter must be acknowledged before anything past it is processed
    // (paused; -1: none).
    std::int64_t dlq_hold = -1;
    // Exactly-once: a record of it was handled in the open transaction (its
    // offset goes to the sink's commit, fencing a zombie's output for it).
    bool in_txn = false;
    bool retry_topic = false;  // one of the non-blocking retry topics

    // Parallel processing only.
    detail::PartitionId pid;     // the dispatcher's name for it
    std::size_t running = 0;     // started records whose completion has not arrived
    std::int64_t next_offset = -1;  // after the last record kept (where a resume refetches)
    std::optional<detail::DoneSet> skip;  // done by the previous owner (commit metadata)
    bool buffer_paused = false;  // too many records buffered (dispatcher backpressure)
    bool metadata_paused = false;  // the done set would not fit the commit metadata
    bool kc_paused = false;      // paused by kc now (any of the reasons above, or halted/dlq_paused)
    bool revoking = false;       // being revoked: nothing more starts, failures are left undone
    bool metadata_dirty = false;  // completions since the last commit (the done set changed)
    std::size_t metadata_checked_at = 0;  // done_after_commit_point() at the last size check

    // Exactly-once only (exactly_once.cpp): whether records of it are
    // processed now, or why not.
    enum class Eos {
      live,       // claimed and positioned: records are processed
      unclaimed,  // the sink could not claim it yet (unreachable): paused
      rewind,     // a transaction failed: paused until resume() tells where it stands
      fenced,     // another consumer claimed it: paused until revoked (or reclaimed later)
    };
    Eos eos = Eos::live;
    Clock::time_point fenced_at;
  };

  // A record kept for parallel processing until it is finished: from its
  // fetch (queued in the dispatcher) through its runs (retries included).
  struct RecordKey {
    std::uint32_t slot;
    std::uint32_t generation;
    std::int64_t offset;
    friend bool operator==(const RecordKey&, const RecordKey&) = default;
  };
  struct RecordKeyHash {
    std::size_t operator()(const RecordKey& k) const noexcept {
      const auto a = (std::uint64_t{k.slot} << 32 | k.generation) * 0x9E3779B97F4A7C15ull;
      return static_cast<std::size_t>(a ^ (static_cast<std::uint64_t>(k.offset) * 0xC2B2AE3D27D4EB4Full));
    }
  };
  struct Kept {
    rd_kafka_message_t* msg = nullptr;  // owned: destroyed when the record is finished
    int attempt = 1;                    // of the run in progress or the next one
    bool running = false;               // a worker or the async work has it now
    bool counted = false;               // in `started` (its first run began)
    Clock::time_point began;            // of the run in progress (processing latency)
  };

  ConsumerConfig config;
  // Metrics and health: declared before everything that reports into them;
  // the endpoint (`server`, started by build() when metrics.port is set)
  // reads them from its own threads and is destroyed before them.
  detail::ConsumerMetrics metrics;
  detail::Problems problems{metrics};  // what keeps it from working: /readyz, kc_problem, the log
  std::unique_ptr<kc::metrics::Server> server;
  Clock::time_point gauges_at;  // when loop_state() last ran
  Clock::time_point record_clock;  // end of the last handler call (on_message)
  void publish_gauges(Clock::time_point now);
  std::chrono::milliseconds max_poll_interval{300000};
  Handler handler;
  AsyncHandler async_handler;
  ConsumerHooks hooks;

  // Member order encodes lifetime: the embedded broker (if any) must outlive
  // the consumer handle that talks to it, so it is declared first and
  // destroyed last.
  std::unique_ptr<EmbeddedBroker> embedded;
  std::string bootstrap;
  std::unique_ptr<detail::DeadLetterWriter> dlq;  // when dead letters go to a topic
  detail::HandlePtr rk;
  // Results of asynchronous commits arrive here, not on the consumer queue,
  // so the loop can wait for one without taking records. Declared after
  // `rk`: a queue must go before its handle (see release_handle()).
  detail::QueuePtr commit_queue;
  bool closed = false;

  // Parallel processing (see parallel.cpp); `parallel` is false for the
  // one-record-at-a-time path on the poll thread.
  bool parallel = false;
  std::unique_ptr<detail::Dispatcher> dispatcher;
  std::shared_ptr<detail::CompletionQueue> completions;
  // The consumer queue, for rd_kafka_queue_yield from completing threads.
  // Declared after `rk` (destroyed before it); `completions` is closed before
  // it goes (release_parallel()), so no thread yields a destroyed queue.
  detail::QueuePtr wake_queue;
  std::unique_ptr<detail::WorkerPool> workers;
  std::shared_ptr<const Handler> shared_handler;  // what worker jobs call
  std::vector<PartitionState*> by_slot;  // dispatcher slot -> partition (generation checked)
  std::unordered_map<RecordKey, Kept, RecordKeyHash> kept;
  std::vector<detail::OffsetRange> done_scratch;  // done ranges past a commit point (add_metadata, check_pressure)
  bool draining = false;  // stopping or max_messages reached: nothing more starts
  std::uint64_t started = 0;  // records whose first run began (max_messages counts these)
  bool parallel_released = false;  // release_parallel() ran
  // Set when a graceful shutdown begins: records in flight are waited for
  // until then, by the shutdown and by the revoke in close().
  std::optional<Clock::time_point> shutdown_deadline;
  // The stop's overall deadline (shutdown.timeout_ms from its start): a
  // revoke during the stop keeps to it. `hurry`: it has passed (or the stop
  // is for a fatal error): revokes are served without waits or commits.
  std::optional<Clock::time_point> stop_deadline;
  bool hurry = false;
  // Records still with handlers at the end (parallel.cpp's release): the
  // handle cannot be destroyed. `left_behind`: it was not (RunResult).
  std::size_t messages_left_behind = 0;
  bool left_behind = false;

  std::unordered_map<TopicPartition, std::unique_ptr<PartitionState>> parts;
  // One-entry cache: records arrive in runs from one partition.
  const rd_kafka_topic_t* cache_rkt = nullptr;
  std::int32_t cache_partition = -1;
  PartitionState* cache_state = nullptr;

  std::atomic<int> stop_requested{0};  // 1: graceful, 2: at once
  std::string fatal_error;

  std::size_t done_since_commit = 0;
  Clock::time_point last_commit = Clock::now();
  bool commit_in_flight = false;  // one asynchronous commit at a time
  bool commits_refused = false;   // before_commit threw: no more commits this run
  bool waited_for_commit = false;  // the in-flight one was already waited for
  std::optional<Clock::time_point> first_assigned;
  Clock::time_point last_activity = Clock::now();
  RunStats stats;
  detail::Backoff backoff;
  std::size_t waiting_partitions = 0;
  std::set<std::string> retry_topics;  // subscribed non-blocking retry topics
  // Source topics whose dead-letter and retry topics were checked (created
  // when missing) by ensure_targets(); the writer's missing topics as last seen.
  std::set<std::string> checked_sources;
  std::uint64_t dlq_changes_seen = 0;
  void ensure_targets(const std::vector<std::string>& sources);
  std::vector<detail::DeadLetterAck> dlq_acks;  // scratch, reused

  void build();
  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void on_commit_result(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets);
  void on_error(int err, const char* reason);
  // Connection-level errors that are not problems of their own (a broker
  // dropped the connection, ...): one line per error code per minute.
  std::map<int, std::pair<Clock::time_point, std::uint64_t>> error_lines;
  // The consumer works (a record came, a rebalance or a commit answered):
  // problems of the connection are over.
  void connected(Clock::time_point now);
  std::uint32_t commit_failures_in_a_row = 0;
  void commit_failed(const std::string& why);
  void on_message(rd_kafka_message_t* m);
  void on_message_error(const rd_kafka_message_t* m);
  void give_back(rd_kafka_message_t** msgs, std::size_t n);
  bool warned_slow_handler = false;  // one warning per run
  PartitionState* state_of(const rd_kafka_message_t* m);
  void halt(PartitionState& st, std::int64_t offset, const std::string& why);
  void fail(PartitionState& st, const rd_kafka_message_t* m, int attempt, const detail::Failure& f);
  void wait_for(PartitionState& st, std::int64_t offset, int attempt, Clock::time_point due);
  void set_paused(const TopicPartition& tp, bool paused);
  // One-record-at-a-time: whether something keeps the partition paused (a
  // halt, a retry wait, too many dead letters unacknowledged, exactly-once
  // not live).
  bool held(const PartitionState& st) const noexcept;
  // Resumes a partition kc paused (one record at a time) and wakes its fetcher.
  void resume_fetching(PartitionState& st);
  void seek(const TopicPartition& tp, std::int64_t offset);
  // A synchronous seek (bounded): false when librdkafka refuses it now
  // (the fetcher has not started: the assignment is still reading offsets).
  bool seek_now(const TopicPartition& tp, std::int64_t offset);
  void resume_due_retries(Clock::time_point now);
  int poll_timeout_ms() const;
  void serve_dead_letters(std::chrono::milliseconds wait);
  void drain_dead_letters(Clock::time_point deadline, const std::vector<TopicPartition>* only = nullptr);
  void apply_dead_letter_acks();
  void drop_state(const std::vector<TopicPartition>& tps);

  detail::PartitionListPtr commit_list(const std::vector<TopicPartition>* only);
  void maybe_commit(Clock::time_point now);
  void commit_async();
  void serve_commit_results(std::chrono::milliseconds wait);
  bool before_commit();
  void release_handle(int destroy_flags);
  // `through_rebalance` (a stop's final commit, outside a rebalance
  // callback): commit errors that say a rebalance is settling are retried
  // until `deadline`.
  bool commit_sync(const std::vector<TopicPartition>* only, Clock::time_point deadline,
                   bool through_rebalance = false);
  void close(Clock::time_point deadline);
  // parallel.cpp
  void build_parallel();
  void start_parallel();
  bool offer(PartitionState& st, rd_kafka_message_t* m);
  void dispatch(Clock::time_point now);
  void start(PartitionState& st, const detail::Dispatch& d, Kept& k);
  std::size_t drain_completions();
  void on_completion(detail::CompletionResult&& r);
  void finish_record(const RecordKey& key);
  void update_pause(PartitionState& st);
  void check_pressure(PartitionState& st);
  void check_pressure_all();
  void load_done_sets(const std::vector<PartitionState*>& fresh);
  void wait_in_flight(const std::vector<PartitionState*>& going, Clock::time_point deadline);
  void revoke_parallel(const std::vector<TopicPartition>& tps, bool lost);
  void add_metadata(PartitionState& st, std::int64_t point, rd_kafka_topic_partition_t* el);
  void release_parallel(Clock::time_point deadline);
  PartitionState* state_of(const detail::PartitionId& p) const noexcept;
  bool parallel_pending() const noexcept;
  static RecordKey record_key(const detail::PartitionId& p, std::int64_t offset) noexcept {
    return {p.slot, p.generation, offset};
  }

  // Exactly-once (exactly_once.cpp); `eos` is hooks.exactly_once.
  std::shared_ptr<TransactionalSink> eos;
  bool txn_open = false;
  bool eos_stalled = false;  // some partition is not live: eos_recover() runs
  Clock::time_point eos_retry_at;
  std::chrono::milliseconds eos_backoff{0};
  void eos_claim(rd_kafka_topic_partition_list_t* list, const std::vector<TopicPartition>& tps);
  bool eos_record_begin(PartitionState& st);
  bool eos_record_end(bool keep);
  bool eos_commit();
  void eos_fail(PartitionState& st, const rd_kafka_message_t* m, int attempt, const detail::Failure& f,
                detail::FailureAction action);
  // Dead letters forwarded into the open transaction, by their topic's
  // series: counted as dead-lettered once it commits.
  std::vector<detail::TopicMetrics*> forwarded_dead_metrics;
  // Outbox relay (database sinks): rows handed to the writer and not yet
  // acknowledged, acknowledged ones not yet removed, the next look.
  std::unordered_map<std::int64_t, TopicPartition> forwards_in_flight;
  std::vector<std::int64_t> forwards_acked;
  Clock::time_point relay_at;
  bool outbox_maybe = false;  // the outbox may hold rows of ours (not idle yet)
  void eos_relay(Clock::time_point now, bool now_please = false);
  void eos_flush_outbox(Clock::time_point until);
  void eos_failed(const std::exception& e, const char* during);
  void eos_rewind_all();
  void eos_recover(Clock::time_point now);
  void eos_revoke(const std::vector<TopicPartition>& tps, bool lost);
  void eos_group_commit(Clock::time_point* sync_deadline);
  std::int64_t rewind_position(const PartitionState& st);

  bool cooperative() const { return std::strcmp(rd_kafka_rebalance_protocol(rk.get()), "COOPERATIVE") == 0; }
};

}  // namespace kc
