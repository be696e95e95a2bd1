// Parallel processing in the poll loop: records kept from fetch to finish,
// started by the dispatcher's rules on worker threads (a Handler with
// parallel.concurrency > 0) or as asynchronous work (an AsyncHandler), their
// completions drained back on the poll thread, which alone touches the
// consumer handle, the offsets and the dispatcher.
//
// Offsets: a record is handed out (PartitionOffsets) when it is kept, in
// fetch order, so the commit point is the lowest kept record not done,
// whatever order keys run and complete in. A dead letter waiting for its
// acknowledgement is finished for the dispatcher (its key flows on) and not
// done for the commit point (apply_dead_letter_acks marks it).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "kc/deadletter.hpp"
#include "kc/error.hpp"
#include "source/consumer_impl.hpp"
#include "text/text.hpp"

namespace kc {

using detail::describe;
using detail::header_int;
using detail::header_text;

namespace {

// The done set is encoded at every commit; it is kept well under the broker's
// limit so that the records still buffered when the partition pauses cannot
// push it over: pause above the first, resume below the second.
constexpr std::size_t kMetadataPauseBytes = detail::kMaxCommitMetadataBytes / 2;
constexpr std::size_t kMetadataResumeBytes = detail::kMaxCommitMetadataBytes / 4;
// Re-measure a partition's done set after this many more done records.
constexpr std::size_t kMetadataCheckEvery = 64;

}  // namespace

void Consumer::Impl::build_parallel() {
  auto& pc = config.parallel;
  parallel = static_cast<bool>(async_handler) || pc.concurrency > 0;
  if (!parallel) {
    if (pc.ordering != Ordering::partition) {
      throw Error(errc::config_invalid_value,
                  "parallel.ordering: key and unordered need parallel.concurrency >= 1 (worker threads) or an "
                  "asynchronous handler");
    }
    return;
  }
  detail::DispatcherConfig dc;
  dc.ordering = pc.ordering;
  dc.max_in_flight = pc.max_in_flight;
  dc.max_in_flight_per_partition =
      pc.max_in_flight_per_partition != 0 ? std::min(pc.max_in_flight_per_partition, pc.max_in_flight)
                                          : pc.max_in_flight;
  dc.max_buffered_per_partition = pc.max_buffered_per_partition != 0
                                      ? pc.max_buffered_per_partition
                                      : std::max<std::size_t>(2 * dc.max_in_flight_per_partition, 1000);
  dc.resume_below = std::max<std::size_t>(1, dc.max_buffered_per_partition / 2);
  dispatcher = std::make_unique<detail::Dispatcher>(dc);
}

void Consumer::Impl::start_parallel() {
  if (!parallel) {
    return;
  }
  // A completing thread wakes the poll thread out of its wait in librdkafka.
  wake_queue.reset(rd_kafka_queue_get_consumer(rk.get()));
  completions = std::make_shared<detail::CompletionQueue>([q = wake_queue.get()] { rd_kafka_queue_yield(q); });
  if (!async_handler) {
    // Jobs share the handler: a job left running past shutdown (detached)
    // keeps it alive after the consumer is gone.
    shared_handler = std::make_shared<const Handler>(handler);
    workers = std::make_unique<detail::WorkerPool>(config.parallel.concurrency, config.parallel.max_in_flight,
                                                   completions);
  }
}

Consumer::Impl::PartitionState* Consumer::Impl::state_of(const detail::PartitionId& p) const noexcept {
  if (p.slot >= by_slot.size()) {
    return nullptr;
  }
  PartitionState* st = by_slot[p.slot];
  return st != nullptr && st->pid == p ? st : nullptr;
}

bool Consumer::Impl::parallel_pending() const noexcept {
  // Work that will still happen by itself: records running, or a retry due
  // at a known time. Records stuck behind a failed one (held for good) are
  // not; nor are other queued ones once nothing runs (dispatch() would have
  // started them if it could).
  if (dispatcher->in_flight() > 0) {
    return true;
  }
  const auto due = dispatcher->next_due();
  return due && *due != Clock::time_point::max();
}

// ---------------------------------------------------------------- fetch side

bool Consumer::Impl::offer(PartitionState& st, rd_kafka_message_t* m) {
  if (m->offset < st.next_offset) {
    return false;  // fetched again after a pause: kept (or skipped) already
  }
  if (st.skip) {
    st.skip->drop_below(m->offset);
    if (st.skip->contains(m->offset)) {
      // Done by the previous owner (its commit metadata says so).
      st.offsets.handed_out(m->offset);
      st.offsets.done(m->offset);
      st.next_offset = m->offset + 1;
      st.metadata_dirty = true;
      ++stats.skipped;
      ++done_since_commit;
      return false;
    }
    if (st.skip->empty()) {
      st.skip.reset();
    }
  }
  std::optional<std::string_view> key;
  if (m->key != nullptr) {
    key = std::string_view(static_cast<const char*>(m->key), m->key_len);
  }
  if (!dispatcher->offer(st.pid, m->offset, key)) {
    return false;  // not after the last offered record (the check above makes this rare)
  }
  st.offsets.handed_out(m->offset);
  st.next_offset = m->offset + 1;
  kept.emplace(record_key(st.pid, m->offset), Kept{m, 1, false, false, {}});
  if (dispatcher->should_pause(st.pid)) {
    st.buffer_paused = true;
    update_pause(st);
  }
  return true;
}

void Consumer::Impl::update_pause(PartitionState& st) {
  const bool want = st.halted || st.dlq_paused || st.buffer_paused || st.metadata_paused;
  if (want == st.kc_paused) {
    return;
  }
  st.kc_paused = want;
  set_paused(st.tp, want);
  if (!want && st.next_offset >= 0) {
    // librdkafka does not wake its fetcher on resume (it would notice at its
    // next idle timeout, ~1 s); a seek to where it stands does.
    seek(st.tp, st.next_offset);
  }
}

// ---------------------------------------------------------------- start

void Consumer::Impl::dispatch(Clock::time_point now) {
  if (draining) {
    return;
  }
  while (auto d = dispatcher->next(now)) {
    PartitionState* st = state_of(d->partition);
    auto it = kept.find(record_key(d->partition, d->offset));
    if (st == nullptr || it == kept.end()) {
      // Cannot happen (revoked partitions are not dispatched); do not leak the slot.
      spdlog::error("kc: internal: dispatched record {} of an unknown partition", d->offset);
      dispatcher->complete(d->partition, d->offset);
      continue;
    }
    start(*st, *d, it->second);
    if (config.max_messages != 0 && started >= config.max_messages) {
      draining = true;  // the limit: nothing more starts; run() ends when the rest finished
      return;
    }
  }
}

void Consumer::Impl::start(PartitionState& st, const detail::Dispatch& d, Kept& k) {
  rd_kafka_message_t* m = k.msg;
  if (st.retry_topic) {
    // A record of a retry topic runs once its delay has passed; until then
    // it holds its key (key mode) or partition, like a retry in place.
    const auto due_ms = header_int(m, kHeaderRetryDue);
    k.attempt = static_cast<int>(std::max<std::int64_t>(header_int(m, kHeaderRetryAttempt), 2));
    const auto now_ms = detail::epoch_ms_now();
    if (due_ms > now_ms) {
      dispatcher->hold(d.partition, d.offset, Clock::now() + std::chrono::milliseconds(due_ms - now_ms));
      return;
    }
  }
  ++stats.consumed;  // every handler call, as on the poll thread
  ++st.metrics->consumed;
  k.began = Clock::now();
  if (!k.counted) {
    k.counted = true;
    ++started;
  }
  k.running = true;
  ++st.running;
  last_activity = Clock::now();
  const detail::CompletionKey ck{d.partition, d.offset};
  if (workers) {
    const int attempt = k.attempt;
    // The message stays kept (alive) until the completion is drained.
    if (!workers->submit(ck, [h = shared_handler, m, attempt] { return (*h)(Message(m, attempt)); })) {
      // Capacity is max_in_flight, which the dispatcher never exceeds.
      completions->push({ck, Outcome::retry,
                         std::make_exception_ptr(Error(errc::misuse, "internal: worker pool refused a record")),
                         true});
    }
    return;
  }
  Completion c(completions, ck);
  try {
    async_handler(Message(m, k.attempt), c);
  } catch (...) {
    c.fail(std::current_exception());  // false when the handler completed it before throwing
  }
}

// ---------------------------------------------------------------- finish side

std::size_t Consumer::Impl::drain_completions() {
  if (!completions) {
    return 0;
  }
  return completions->drain([this](detail::CompletionResult&& r) { on_completion(std::move(r)); });
}

void Consumer::Impl::finish_record(const RecordKey& key) {
  if (auto it = kept.find(key); it != kept.end()) {
    rd_kafka_message_destroy(it->second.msg);
    kept.erase(it);
  }
}

void Consumer::Impl::on_completion(detail::CompletionResult&& r) {
  const auto key = record_key(r.key.partition, r.key.offset);
  PartitionState* st = state_of(r.key.partition);
  auto it = kept.find(key);
  if (st == nullptr || it == kept.end() || !it->second.running) {
    // Its partition was revoked or lost meanwhile (or a second completion
    // of one record, which Completion prevents): dropped, never committed.
    dispatcher->complete(r.key.partition, r.key.offset);  // frees its max_in_flight slot
    if (it != kept.end()) {
      finish_record(key);
    }
    ++stats.late_completions;
    return;
  }
  Kept& k = it->second;
  k.running = false;
  --st->running;
  last_activity = Clock::now();
  metrics.observe(*st->metrics, k.began, last_activity, rd_kafka_message_timestamp(k.msg, nullptr));
  const std::int64_t offset = r.key.offset;
  if (r.outcome == Outcome::done && !r.thrown) {
    dispatcher->complete(st->pid, offset);
    st->offsets.done(offset);
    st->metadata_dirty = true;
    ++stats.done;
    ++st->metrics->processed;
    ++done_since_commit;
    finish_record(key);
    if (st->buffer_paused && dispatcher->should_resume(st->pid)) {
      st->buffer_paused = false;
      update_pause(*st);
    }
    return;
  }
  ++st->metrics->failed;
  if (st->revoking || stop_requested.load(std::memory_order_relaxed) != 0) {
    // Going away: a failure now is neither retried nor dead-lettered but
    // left not done for the next owner or run.
    dispatcher->complete(st->pid, offset);
    finish_record(key);
    return;
  }
  detail::Failure f;
  if (r.thrown || r.error) {
    f = detail::classify(r.error, config.retry);
    if (!r.thrown && r.outcome == Outcome::dead) {
      f.retriable = false;  // dead(e): dead whatever the exception's type
    } else if (!r.thrown && r.outcome == Outcome::retry) {
      f.retriable = true;  // retry(e): retried whatever the exception's type
    }
  } else {
    f.retriable = r.outcome == Outcome::retry;
    f.type = r.outcome == Outcome::retry ? "kc::Outcome::retry" : "kc::Outcome::dead";
    f.message = r.outcome == Outcome::retry ? "handler returned retry" : "handler returned dead";
  }
  rd_kafka_message_t* m = k.msg;
  const int attempt = k.attempt;
  const auto action = detail::route(config.retry, dlq != nullptr, f, attempt);
  if (action == detail::FailureAction::retry_in_place) {
    // In place: the record holds its key (key mode), its partition (partition
    // mode) or only itself (unordered) while it backs off; the rest flows.
    const auto delay = backoff.delay(config.retry, attempt + 1);
    dispatcher->hold(st->pid, offset, Clock::now() + delay);
    k.attempt = attempt + 1;
    ++stats.retried;
    ++st->metrics->retried;
    spdlog::info("kc: {}[{}] offset {}: {}: {}; attempt {} of {} in {} ms", st->tp.topic, to_int(st->tp.partition),
                 offset, f.type, f.message, attempt + 1, config.retry.max_attempts, delay.count());
    return;
  }
  if (action == detail::FailureAction::halt) {
    // No dead-letter topic: the record stays not done, holding the commit
    // point, and blocks its key (key mode) or partition for this run.
    dispatcher->hold(st->pid, offset, Clock::time_point::max());
    ++stats.failed;
    problems.raise(detail::ProblemKind::partition_halted, describe({st->tp}),
                   fmt::format("offset {}: {}: {}; nothing at or after this offset is committed (its {} is "
                               "stopped; configure a dead-letter topic to go on)",
                               offset, f.type, f.message,
                               config.parallel.ordering == Ordering::key         ? "key"
                               : config.parallel.ordering == Ordering::partition ? "partition"
                                                                                 : "record"),
                   Clock::now());
    return;
  }
  // To the next retry topic or the dead-letter topic: the record is done
  // for the commit point once that copy is acknowledged; its key flows on now.
  fail(*st, m, attempt, f);
  dispatcher->complete(st->pid, offset);
  finish_record(key);
}

// ---------------------------------------------------------------- metadata

void Consumer::Impl::add_metadata(PartitionState& st, std::int64_t point, rd_kafka_topic_partition_t* el) {
  // Ranges, not offsets: a record held for good with millions done behind it
  // is one range here (O(ranges) per commit, not O(done records)).
  done_scratch.clear();
  st.offsets.for_each_done_range_after_commit_point([&](std::int64_t first, std::int64_t last) {
    if (last > point) {
      done_scratch.push_back({std::max(first, point + 1), last});
    }
  });
  std::size_t n = done_scratch.size();
  auto size_of = [&](std::size_t count) {
    return detail::encoded_done_ranges_size(point, std::span<const detail::OffsetRange>(done_scratch.data(), count));
  };
  if (!detail::encoded_size_fits(size_of(n))) {
    // Backpressure should have kept it small; if not, record fewer done
    // ranges (the rest is processed again by a new owner: at least once).
    std::size_t lo = 0, hi = n;
    while (lo < hi) {
      const std::size_t mid = (lo + hi + 1) / 2;
      if (detail::encoded_size_fits(size_of(mid))) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    spdlog::warn("kc: {}[{}]: commit metadata lists {} of {} done ranges past {} (size limit)", st.tp.topic,
                 to_int(st.tp.partition), lo, n, point);
    n = lo;
  }
  const auto text = detail::encode_done_ranges(point, std::span<const detail::OffsetRange>(done_scratch.data(), n));
  // The list owns its metadata and frees it with free().
  void* md = std::malloc(text.size());
  if (md == nullptr) {
    throw std::bad_alloc();
  }
  std::memcpy(md, text.data(), text.size());
  el->metadata = md;
  el->metadata_size = text.size();
  st.metadata_dirty = false;
}

void Consumer::Impl::check_pressure(PartitionState& st) {
  const auto done = st.offsets.done_after_commit_point();
  const bool grew = done >= st.metadata_checked_at + kMetadataCheckEvery;
  const bool shrank = done < st.metadata_checked_at;
  if (!grew && !shrank && !(st.metadata_paused && done == 0)) {
    return;
  }
  st.metadata_checked_at = done;
  const auto point = st.offsets.commit_point();
  std::size_t size = 0;
  if (done > 0) {
    // O(ranges): the tracker keeps done records as ranges. The commit point
    // may be nullopt while the first kept record runs: measure against the
    // lowest done offset then (an upper bound is fine).
    done_scratch.clear();
    st.offsets.for_each_done_range_after_commit_point([&](std::int64_t first, std::int64_t last) {
      done_scratch.push_back({first, last});
    });
    const auto base = point ? *point : done_scratch.front().first;
    std::erase_if(done_scratch, [base](const detail::OffsetRange& r) { return r.last < base; });
    for (auto& r : done_scratch) {
      r.first = std::max(r.first, base);
    }
    size = detail::encoded_done_ranges_size(base, done_scratch);
  }
  if (!st.metadata_paused && size > kMetadataPauseBytes) {
    st.metadata_paused = true;
    spdlog::info("kc: {}[{}] paused: {} done offsets in {} ranges wait behind offset {} (commit metadata {} bytes)",
                 st.tp.topic, to_int(st.tp.partition), done, st.offsets.done_ranges_after_commit_point(),
                 point ? *point : -1, size);
    update_pause(st);
  } else if (st.metadata_paused && size < kMetadataResumeBytes) {
    st.metadata_paused = false;
    update_pause(st);
  }
}

void Consumer::Impl::check_pressure_all() {
  for (auto& [tp, st] : parts) {
    if (!st->revoking) {
      check_pressure(*st);
    }
  }
}

void Consumer::Impl::load_done_sets(const std::vector<PartitionState*>& fresh) {
  if (fresh.empty()) {
    return;
  }
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(fresh.size())));
  for (const auto* st : fresh) {
    rd_kafka_topic_partition_list_add(list.get(), st->tp.topic.c_str(), to_int(st->tp.partition));
  }
  // Blocking, bounded: the new owner needs the previous owner's done set
  // before its first record, or it processes them again (still at least once).
  const auto timeout = static_cast<int>(std::min<std::int64_t>(config.shutdown_timeout.count(), 10000));
  if (const auto err = rd_kafka_committed(rk.get(), list.get(), std::max(timeout, 1000));
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("kc: cannot read committed metadata of {} ({}): records done by the previous owner past "
                 "its commit point are processed again",
                 describe([&] {
                   std::vector<TopicPartition> v;
                   for (const auto* st : fresh) v.push_back(st->tp);
                   return v;
                 }()),
                 rd_kafka_err2str(err));
    return;
  }
  for (int i = 0; i < list->cnt; ++i) {
    const auto& el = list->elems[i];
    PartitionState* st = nullptr;
    for (auto* f : fresh) {
      if (f->tp.partition == Partition{el.partition} && f->tp.topic == el.topic) {
        st = f;
      }
    }
    if (st == nullptr || el.err != RD_KAFKA_RESP_ERR_NO_ERROR || el.offset < 0 || el.metadata_size == 0) {
      continue;
    }
    const std::string_view md(static_cast<const char*>(el.metadata), el.metadata_size);
    std::string why;
    auto set = detail::decode_done_offsets(md, el.offset, why);
    if (!set) {
      spdlog::warn("kc: {}[{}]: commit metadata ignored ({}); records past offset {} are processed again if the "
                   "previous owner did them",
                   st->tp.topic, el.partition, why, el.offset);
      continue;
    }
    if (!set->empty()) {
      spdlog::info("kc: {}[{}]: {} records past offset {} were done by the previous owner: skipped", st->tp.topic,
                   el.partition, set->count(), el.offset);
      st->skip = std::move(*set);
    }
  }
}

// ---------------------------------------------------------------- revoke and shutdown

void Consumer::Impl::wait_in_flight(const std::vector<PartitionState*>& going, Clock::time_point deadline) {
  auto running = [&] {
    std::size_t n = 0;
    for (const auto* st : going) {
      n += st->running;
    }
    return n;
  };
  while (running() > 0 && Clock::now() < deadline) {
    if (drain_completions() == 0) {
      // Completions arrive from other threads; this wait is short and rare
      // (revoke, shutdown), so a plain sleep beats another wake-up channel.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    serve_dead_letters(std::chrono::milliseconds(0));
  }
  if (const auto n = running(); n > 0) {
    spdlog::warn("kc: {} records still in flight after the wait: not committed; their completions will be "
                 "dropped",
                 n);
  }
}

void Consumer::Impl::revoke_parallel(const std::vector<TopicPartition>& tps, bool lost) {
  std::vector<PartitionState*> going;
  for (const auto& tp : tps) {
    if (auto it = parts.find(tp); it != parts.end()) {
      PartitionState* st = it->second.get();
      st->revoking = true;
      dispatcher->revoke(st->pid);  // nothing more of it starts
      going.push_back(st);
    }
  }
  // Records queued or held (not running) are finished now; running ones
  // when their completion arrives (or never, when it comes too late).
  std::erase_if(kept, [&](const auto& entry) {
    if (entry.second.running) {
      return false;
    }
    for (const auto* st : going) {
      if (entry.first.slot == st->pid.slot && entry.first.generation == st->pid.generation) {
        rd_kafka_message_destroy(entry.second.msg);
        return true;
      }
    }
    return false;
  });
  if (!lost) {
    auto deadline = Clock::now() + config.parallel.revoke_timeout;
    if (shutdown_deadline) {
      deadline = std::min(deadline, *shutdown_deadline);
    }
    wait_in_flight(going, deadline);
  }
}

void Consumer::Impl::release_parallel(Clock::time_point deadline) {
  if (!parallel || parallel_released) {
    return;
  }
  parallel_released = true;
  std::size_t still_running = 0;
  if (workers) {
    still_running = workers->stop(deadline).still_running;
  }
  if (completions) {
    completions->close();  // no more wake-ups: the queue below can go
  }
  wake_queue.reset();
  for (auto& [key, k] : kept) {
    if (k.running && workers && still_running > 0) {
      // A worker may still be reading it: leave it (a leak, never a crash),
      // and with it the handle (release_handle()).
      ++messages_left_behind;
      continue;
    }
    rd_kafka_message_destroy(k.msg);
  }
  kept.clear();
  if (still_running > 0) {
    left_behind = true;
    spdlog::error("kc: {} handler calls were still running at shutdown; their threads were left behind",
                  still_running);
  }
}

}  // namespace kc
