// kc::Consumer: the poll loop, at-least-once commits and rebalance handling
// around a user handler.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "kc/completion.hpp"
#include "kc/config.hpp"
#include "kc/exactly_once.hpp"
#include "kc/message.hpp"
#include "kc/metrics.hpp"
#include "kc/types.hpp"

namespace kc {

/// The user's code. Without parallel processing (ParallelPolicy::concurrency
/// 0) it is called on the poll thread, in offset order per partition; with
/// concurrency N it is called on N worker threads, in offset order per
/// partition or per key as ParallelPolicy::ordering says, never on two
/// records of one partition (partition mode) or one key (key mode) at once.
/// The Message is valid during the call. Return Outcome::done when the
/// record is processed.
/// Failures (see kc/retry.hpp): kc::PermanentError, kc::DecodeError or
/// Outcome::dead mean dead at once; kc::RetriableError, Outcome::retry and by
/// default any other exception mean retry: the partition is paused, the
/// record is called again after a backoff (Message::attempt() counts), up to
/// RetryPolicy::max_attempts; then it is dead. A dead record goes to the
/// dead-letter topic when one is configured (it counts as done once the
/// broker acknowledged its dead letter); without one it stops its partition
/// (paused, nothing at or past it committed, other partitions go on).
using Handler = std::function<Outcome(const Message&)>;

/// The asynchronous (I/O-bound) form: called on the poll thread, it starts
/// the work and returns at once; the work completes the record later, from
/// any thread, through the Completion (done, retry, dead or fail). Ordering
/// and in-flight limits are as for a Handler with workers (ParallelPolicy):
/// the next record of the same key (key mode) or partition (partition mode)
/// is not started before this one completed. The Message is valid during the
/// call only: copy out what the work needs. Throwing from the call is a
/// failure of the record, classified like a Handler's exception. Must not
/// block: the poll loop waits for it.
using AsyncHandler = std::function<void(const Message&, Completion)>;

/// Optional hooks. All run on the poll thread; none may call back into the
/// Consumer except stop(). Exceptions thrown by on_assign, on_revoke and
/// on_lost are caught and logged; see stored_offset and before_commit for theirs.
struct ConsumerHooks {
  /// Partitions were assigned (after offsets from `stored_offset` were applied).
  std::function<void(std::span<const TopicPartition>)> on_assign;
  /// Partitions are being revoked; their done offsets were committed synchronously.
  std::function<void(std::span<const TopicPartition>)> on_revoke;
  /// Partitions were lost (session timeout, fencing): nothing was committed for them.
  std::function<void(std::span<const TopicPartition>)> on_lost;
  /// Returns the offset to start from for a newly assigned partition when the
  /// application keeps offsets itself (a database, say); nullopt uses the
  /// group's committed offset. Throwing stops the run (StopReason::fatal):
  /// falling back to the group's offset could skip or repeat records.
  std::function<std::optional<Offset>(const TopicPartition&)> stored_offset;
  /// Called before every commit (async, revoke, shutdown) so a sink can make
  /// what it wrote durable first. Blocking here delays the commit, not the
  /// correctness. Throwing refuses the commit: nothing more is committed in
  /// this run, and run() ends with StopReason::fatal and the hook's message.
  std::function<void()> before_commit;
  /// Exactly-once (see kc/exactly_once.hpp): the handler writes into this
  /// sink's open transaction, and each commit point commits the sink's
  /// transaction together with the partitions' next offsets, by the
  /// CommitPolicy's count and time (a batch per transaction). On
  /// assignment the sink claims the partitions (fencing earlier owners) and
  /// its stored offsets take precedence over the group's. When a
  /// transaction fails, kc aborts it, pauses the partitions, rewinds them
  /// to where the sink stands (resume()) and goes on once that succeeds, so
  /// a sink outage stalls processing without losing or repeating anything.
  /// A partition the sink reports as taken by another consumer stays paused
  /// (it is about to be revoked) and is claimed again after 30 s if the
  /// group still assigns it here. Lost partitions abort the open
  /// transaction. Needs the one-record-at-a-time handler (no
  /// parallel.concurrency, no AsyncHandler) and excludes stored_offset.
  std::shared_ptr<TransactionalSink> exactly_once;
};

/// What a run did, for summaries and tests.
struct RunStats {
  std::uint64_t consumed = 0;        ///< handler calls (a record retried twice counts 3)
  std::uint64_t done = 0;            ///< records whose handler returned done
  std::uint64_t failed = 0;          ///< records that stopped their partition (no dead-letter topic)
  std::uint64_t retried = 0;         ///< retries scheduled (a record retried twice counts 2)
  std::uint64_t dead_lettered = 0;   ///< records whose dead letter the broker acknowledged
  std::uint64_t commits_ok = 0;      ///< commit requests the broker acknowledged
  std::uint64_t commits_failed = 0;  ///< commit requests that failed (retried later)
  /// Records skipped because the commit metadata of a previous owner said
  /// they were done already (parallel processing only).
  std::uint64_t skipped = 0;
  /// Completions that arrived after their partition was revoked or lost:
  /// dropped, never committed (parallel processing only).
  std::uint64_t late_completions = 0;
  /// Exactly-once: sink transactions committed, and aborted (each abort
  /// rewinds the partitions to the sink's offsets).
  std::uint64_t transactions = 0;
  std::uint64_t transactions_aborted = 0;
  std::chrono::steady_clock::duration busy{};  ///< from first assignment to the last record handled
  /// Last acknowledged committed offset (next offset to read) per partition.
  std::map<TopicPartition, Offset> committed;
};

/// Why run() returned.
enum class StopReason {
  requested,     ///< stop() was called (e.g. SIGTERM)
  max_messages,  ///< the max_messages limit was reached
  idle,          ///< idle_exit passed without a message
  fatal,         ///< librdkafka reported a fatal error (see RunResult::error)
};

struct RunResult {
  StopReason reason = StopReason::requested;
  std::string error;  ///< set for StopReason::fatal
  RunStats stats;
  /// True when run() could not stop everything within its bounds and left
  /// it running: a handler call that did not return (its thread and record)
  /// or librdkafka's handle, whose destroy did not finish in time (a close
  /// that a broker does not answer). Nothing more is committed by it; a
  /// process should exit soon (the kc tool then exits at once, without
  /// running static destructors under librdkafka's threads).
  bool left_behind = false;
};

/// A consumer group member that runs `handler` on every record of its
/// assigned partitions and commits what is done.
///
/// Parallel processing (a Handler with parallel.concurrency > 0, or an
/// AsyncHandler): the commit point of a partition is the lowest offset handed
/// out and not done, whatever the completion order; the offsets done beyond
/// it travel in the commit's metadata ("kc1:..."), and a new owner of the
/// partition skips them (RunStats::skipped). Metadata that is not kc's is
/// ignored with a warning. A partition is paused (and resumed, only by kc)
/// when its buffered records reach parallel.max_buffered_per_partition or its
/// metadata would not fit the broker's 4 KiB limit. On revoke and shutdown,
/// kc stops starting records of the partitions going away, waits up to
/// parallel.revoke_timeout for their in-flight records, commits what is done
/// and lets go; completions that come later are dropped (never committed).
/// A retried record holds back only its key (key mode) or partition
/// (partition mode) while it backs off. Worker threads are started by run()
/// and joined before it returns (bounded by the timeouts; a handler still
/// running then is reported and left behind).
///
/// Threads: construct anywhere; run() makes the calling thread the poll
/// thread, the only one that touches the librdkafka handle. stop() and
/// stop_now() may be called from any thread and from a signal handler.
class Consumer {
 public:
  /// Validates `config` and creates the librdkafka consumer (no network I/O
  /// yet). When `config.bootstrap_servers` is empty, an embedded mock broker
  /// is started in-process and owned by this object. Throws kc::Error.
  Consumer(ConsumerConfig config, Handler handler, ConsumerHooks hooks = {});
  /// The same with an asynchronous handler: records are processed in
  /// parallel as `config.parallel` says (parallel.concurrency is ignored: the
  /// work runs wherever the handler puts it).
  Consumer(ConsumerConfig config, AsyncHandler handler, ConsumerHooks hooks = {});
  /// Closes without committing if run() was never called. Never throws.
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  /// Subscribes and runs the poll loop on the calling thread until stop(),
  /// max_messages, idle_exit or a fatal error; then commits synchronously
  /// what is done and closes the consumer (leaves the group), all bounded by
  /// shutdown_timeout. Blocks for the whole run. Call at most once.
  /// Throws kc::Error only for setup failures (e.g. subscribe rejected).
  RunResult run();

  /// Asks run() to finish gracefully. Async-signal-safe, any thread. Once
  /// asked, a record whose handler fails is neither retried nor
  /// dead-lettered: it stays not done (holding its partition's commit point)
  /// for the next run. So a handler that cannot go on for reasons outside the
  /// record (a dependency down) may call stop() and then throw.
  void stop() noexcept;
  /// Asks run() to return at once: no further commit, the group is left by
  /// session timeout. Async-signal-safe, any thread.
  void stop_now() noexcept;

  /// The bootstrap servers in use (the embedded broker's when it runs).
  const std::string& bootstrap_servers() const noexcept;

  /// The consumer's metrics (see README "Metrics and health"): what
  /// /metrics serves when metrics.port is set, kept whether or not it is.
  /// Add the application's own families here to serve them on the same
  /// endpoint. Lives as long as the Consumer; any thread.
  metrics::Registry& metrics() noexcept;
  /// The port of the metrics endpoint (the chosen one when metrics.port is
  /// 0), started by the constructor; 0 when metrics.port is not set.
  std::uint16_t metrics_port() const noexcept;

  struct Impl;  // opaque; declared public only so librdkafka's C callbacks can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

/// Installs SIGINT/SIGTERM handlers: the first signal calls consumer.stop()
/// (a graceful stop); a second one _exits with 130 straight away, committing
/// nothing more. A repeat of the first signal within 1 s does not count as a
/// second one: process managers that signal a process and its process group
/// (GNU timeout, some init systems) deliver one request twice, microseconds
/// apart. So: SIGTERM then SIGTERM within a second is one graceful stop;
/// SIGTERM then SIGINT, or a repeat a second or more later, ends at once.
/// Only one consumer at a time; calling it again replaces the target.
void stop_on_signals(Consumer& consumer) noexcept;

}  // namespace kc
