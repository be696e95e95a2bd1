// Exactly-once: the poll loop's side of a TransactionalSink (see
// kc/exactly_once.hpp). Only with the one-record-at-a-time handler on the
// poll thread; everything here runs on that thread.
//
// A transaction opens before the first record after a commit; the handler
// writes into it; at each commit point (CommitPolicy) the sink commits it
// with the next offset of each partition that advanced. When anything of a
// transaction fails, the transaction is aborted and every partition is
// rewound: paused, its tracking dropped, and positioned again where the sink
// says it stands (resume()), with retries and a growing backoff while the
// sink is unreachable. Records fetched before a rewind are dropped
// (on_message skips partitions that are not live; librdkafka drops what a
// seek made outdated).
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kc/error.hpp"
#include "source/consumer_impl.hpp"
#include "text/text.hpp"

namespace kc {

using detail::describe;

namespace {

using Eos = Consumer::Impl::PartitionState::Eos;

// After a fencing, the group normally revokes the partition within a session
// timeout. If it still has not after this long, this consumer is the
// rightful owner after all (its claim was overtaken by a zombie's late one)
// and claims again.
constexpr auto kFencedReclaimAfter = std::chrono::seconds(30);
constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const noexcept { rd_kafka_consumer_group_metadata_destroy(m); }
};

bool is_fatal(const std::exception& e) {
  const auto* ke = dynamic_cast<const Error*>(&e);
  return ke != nullptr && ke->fatal();
}

}  // namespace

void Consumer::Impl::eos_claim(rd_kafka_topic_partition_list_t* list, const std::vector<TopicPartition>& tps) {
  if (tps.empty()) {
    return;
  }
  std::vector<SinkPosition> pos;
  try {
    pos = eos->claim(tps);
    if (pos.size() != tps.size()) {
      throw Error(errc::misuse,
                  "the sink's claim() returned " + std::to_string(pos.size()) + " positions for " +
                      std::to_string(tps.size()) + " partitions",
                  true);
    }
  } catch (const std::exception& e) {
    if (is_fatal(e)) {
      throw;  // stops the run (rebalance_trampoline)
    }
    // The sink is unreachable: take the partitions (the group gave them to
    // us) but process nothing of them until a claim succeeds.
    problems.raise(detail::ProblemKind::sink_stalled, "",
                   "the sink cannot claim " + describe(tps) + " yet (" + e.what() + "): paused until it can",
                   Clock::now());
    for (const auto& tp : tps) {
      parts.at(tp)->eos = Eos::unclaimed;
    }
    eos_stalled = true;
    eos_retry_at = Clock::now();
    return;
  }
  for (std::size_t i = 0; i < tps.size(); ++i) {
    auto& st = *parts.at(tps[i]);
    if (pos[i].next) {
      // The sink's offset takes precedence over the group's.
      list->elems[i].offset = to_int(*pos[i].next);
      st.acked = to_int(*pos[i].next);
    }
  }
}

bool Consumer::Impl::eos_record_begin(PartitionState& st) {
  if (st.eos != Eos::live) {
    return false;  // fetched before a rewind, or not ours to write for
  }
  try {
    if (!txn_open) {
      eos->begin();
      txn_open = true;
    }
    eos->record_begin();
    st.in_txn = true;
    return true;
  } catch (const std::exception& e) {
    eos_failed(e, "opening the transaction");
    return false;
  }
}

bool Consumer::Impl::eos_record_end(bool keep) {
  try {
    eos->record_end(keep);
    return true;
  } catch (const std::exception& e) {
    eos_failed(e, keep ? "keeping a record's output" : "undoing a failed record's output");
    return false;
  }
}

bool Consumer::Impl::eos_commit() {
  auto list = commit_list(nullptr);
  if (list->cnt == 0 && !txn_open) {
    return true;
  }
  if (!before_commit()) {
    return false;
  }
  std::vector<SinkOffset> offsets;
  offsets.reserve(static_cast<std::size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    offsets.push_back({{list->elems[i].topic, Partition{list->elems[i].partition}}, Offset{list->elems[i].offset}});
  }
  // Every partition with output in this transaction goes to the commit, its
  // offset moved or not: the sink fences each one it is given (a zombie's
  // transaction then fails), and output without its partition's offset is
  // output nobody checked the ownership of.
  for (const auto& [tp, st] : parts) {
    if (!st->in_txn) {
      continue;
    }
    const auto point = st->offsets.commit_point();
    const std::int64_t at = point ? *point : st->acked;
    const bool listed = std::any_of(offsets.begin(), offsets.end(), [&](const SinkOffset& o) { return o.tp == tp; });
    if (!listed && at >= 0) {
      offsets.push_back({tp, Offset{at}});
    }
  }
  try {
    if (!txn_open) {
      // Progress without an open transaction: dead letters acknowledged
      // since the last commit. Their offsets still go through the sink.
      eos->begin();
      txn_open = true;
    }
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter> group(
        rd_kafka_consumer_group_metadata(rk.get()));
    eos->commit(offsets, group.get());
  } catch (const std::exception& e) {
    eos_failed(e, "committing the transaction");
    return false;
  }
  txn_open = false;
  ++stats.transactions;
  metrics.transaction(true);
  for (auto& [tp, st] : parts) {
    st->in_txn = false;
  }
  for (auto* t : forwarded_dead_metrics) {
    ++t->dead_lettered;
  }
  stats.dead_lettered += forwarded_dead_metrics.size();
  forwarded_dead_metrics.clear();
  for (const auto& o : offsets) {
    if (auto it = parts.find(o.tp); it != parts.end()) {
      it->second->acked = to_int(o.next);
    }
    stats.committed[o.tp] = o.next;
    metrics.committed(o.tp, to_int(o.next));
  }
  if (eos->commits_group_offsets()) {
    stats.commits_ok += offsets.empty() ? 0 : 1;
    if (!offsets.empty()) {
      metrics.commit(true);
    }
  } else if (!offsets.empty()) {
    eos_group_commit(nullptr);
  }
  return true;
}

// Exactly-once: a record that is dead (or goes on to a retry topic) leaves
// with the transaction. Its copy is written into it (TransactionalSink::
// forward) and the record is done there, so a transaction never carries
// records past one whose copy is not written, and an abort takes the copy
// back with everything else. A sink that cannot forward: the copy is
// produced here and the partition waits (dlq_hold, paused, nothing past the
// record processed) for its acknowledgement.
void Consumer::Impl::eos_fail(PartitionState& st, const rd_kafka_message_t* m, int attempt, const detail::Failure& f,
                              detail::FailureAction action) {
  const bool to_retry_topic = action == detail::FailureAction::retry_topic;
  std::unique_ptr<detail::DeadLetterWriter::Entry> copy;
  std::string where;
  if (to_retry_topic) {
    const auto delay = backoff.delay(config.retry, attempt + 1);
    const auto origin = detail::retry_origin(st.tp.topic, st.retry_topic, detail::header_text(m, kHeaderRetryTopic));
    where = config.retry.retry_topic_for(origin, attempt);
    copy = dlq->make_retry(m, where, attempt + 1, detail::epoch_ms_now() + delay.count(), origin);
    ++stats.retried;
    ++st.metrics->retried;
  } else {
    st.retry_offset = -1;
    copy = dlq->make_dead_letter(m, {f.type, f.message, attempt});
    where = "the dead-letter topic";
  }
  bool forwarded = false;
  try {
    if (!txn_open) {
      eos->begin();
      txn_open = true;
    }
    forwarded = eos->forward(dlq->as_forwarded(*copy));
  } catch (const std::exception& e) {
    eos_failed(e, "writing a failed record's copy into the transaction");
    return;
  }
  spdlog::info("kc: {}[{}] offset {}: {}: {}; to {} {} after {} attempt(s)", st.tp.topic, to_int(st.tp.partition),
               m->offset, f.type, f.message, where, forwarded ? "in the transaction" : "(then the partition goes on)",
               attempt);
  if (forwarded) {
    st.offsets.done(m->offset);
    st.in_txn = true;
    outbox_maybe = true;  // a database sink has a row to produce after the commit
    ++done_since_commit;
    if (!to_retry_topic) {
      forwarded_dead_metrics.push_back(st.metrics);
    }
    return;
  }
  dlq->send(std::move(copy));
  st.dlq_hold = m->offset;
  set_paused(st.tp, true);
}

// Database sinks keep forwarded records in an outbox committed with the
// transaction; they are produced from there by the writer's producer and
// removed once the broker acknowledged them. Only outside a transaction (the
// removal is a transaction of the sink's own), one batch at a time; a look
// a second while none is in flight. A crash before the removal produces a
// row again: the dead-letter topic gets it at least once.
void Consumer::Impl::eos_relay(Clock::time_point now, bool now_please) {
  if (txn_open) {
    return;
  }
  if (!forwards_acked.empty()) {
    try {
      eos->forwards_sent(forwards_acked);
      forwards_acked.clear();
    } catch (const std::exception& e) {
      spdlog::warn("kc: removing sent records from the sink's outbox failed ({}); tried again later", e.what());
      relay_at = now + std::chrono::seconds(1);
      return;
    }
  }
  if ((now < relay_at && !now_please) || !forwards_in_flight.empty()) {
    return;
  }
  relay_at = now + std::chrono::seconds(1);
  std::vector<TopicPartition> owned;
  for (const auto& [tp, st] : parts) {
    if (st->eos == Eos::live) {
      owned.push_back(tp);
    }
  }
  if (owned.empty()) {
    return;
  }
  constexpr std::size_t kBatch = 500;
  std::vector<PendingForward> pending;
  try {
    pending = eos->pending_forwards(owned, kBatch);
  } catch (const std::exception& e) {
    spdlog::warn("kc: reading the sink's outbox failed ({}); tried again later", e.what());
    return;
  }
  for (const auto& p : pending) {
    forwards_in_flight.emplace(p.id, p.source);
    dlq->send_pending(p);
  }
  outbox_maybe = !pending.empty();
  if (pending.size() == kBatch) {
    relay_at = now;  // more are waiting: the next batch once these are acknowledged
  }
}

// At a graceful stop, after the final commit: what the outbox holds of this
// consumer's partitions goes out now (until `until`), so a stop does not
// leave dead letters for the next owner. What is left stays in the outbox.
void Consumer::Impl::eos_flush_outbox(Clock::time_point until) {
  if (!dlq || txn_open) {
    return;
  }
  outbox_maybe = true;
  while (Clock::now() < until) {
    eos_relay(Clock::now(), true);
    if (forwards_in_flight.empty() && !outbox_maybe) {
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    serve_dead_letters(std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(100)));
  }
  if (!forwards_acked.empty()) {
    try {
      eos->forwards_sent(forwards_acked);
      forwards_acked.clear();
    } catch (const std::exception& e) {
      spdlog::warn("kc: removing sent records from the sink's outbox failed ({}); they are sent again later",
                   e.what());
    }
  }
}

// The group's offsets follow the sink's (for lag monitoring; kc never reads
// them back while the sink stores offsets). Asynchronous, at most one in
// flight, or synchronous until `sync_deadline`.
void Consumer::Impl::eos_group_commit(Clock::time_point* sync_deadline) {
  if (eos->commits_group_offsets() || (sync_deadline == nullptr && commit_in_flight)) {
    return;
  }
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
  for (const auto& [tp, st] : parts) {
    if (st->acked >= 0 && st->eos == Eos::live) {
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), to_int(tp.partition))->offset = st->acked;
    }
  }
  if (list->cnt == 0) {
    return;
  }
  if (sync_deadline == nullptr) {
    if (rd_kafka_commit_queue(rk.get(), list.get(), commit_queue.get(), nullptr, nullptr) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      commit_in_flight = true;
      waited_for_commit = false;
    }
    return;
  }
  const auto left_ms = [&] {
    return std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(*sync_deadline - Clock::now()).count(), 1);
  };
  serve_commit_results(std::chrono::milliseconds(left_ms()));  // the asynchronous one in flight, if any
  detail::QueuePtr q(rd_kafka_queue_new(rk.get()));
  if (rd_kafka_commit_queue(rk.get(), list.get(), q.get(), nullptr, nullptr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return;
  }
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q.get(), static_cast<int>(left_ms()))) {
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
      on_commit_result(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
    }
    rd_kafka_event_destroy(ev);
  }
}

void Consumer::Impl::eos_failed(const std::exception& e, const char* during) {
  eos->abort();
  txn_open = false;
  forwarded_dead_metrics.clear();  // their copies went with the transaction
  ++stats.transactions_aborted;
  metrics.transaction(false);
  if (is_fatal(e)) {
    fatal_error = std::string("exactly-once sink failed ") + during + ": " + e.what();
    spdlog::critical("kc: {}; stopping", fatal_error);
    stop_requested.store(1);
    return;
  }
  problems.raise(detail::ProblemKind::sink_stalled, "",
                 std::string(during) + " failed (" + e.what() +
                     "): transaction aborted; rewinding to the sink's offsets, processing waits until the sink "
                     "answers",
                 Clock::now());
  eos_rewind_all();
}

// Every partition drops what it tracked and waits, paused, to be positioned
// where the sink stands: nothing of the aborted transaction is kept, so
// everything after the sink's offsets is processed again.
void Consumer::Impl::eos_rewind_all() {
  for (auto& [tp, st] : parts) {
    if (st->eos == Eos::live) {
      st->eos = Eos::rewind;
    }
    st->offsets = detail::PartitionOffsets{};
    if (st->waiting) {
      st->waiting = false;
      --waiting_partitions;
    }
    if (st->halted) {
      problems.clear(detail::ProblemKind::partition_halted, describe({tp}));
    }
    st->halted = false;
    st->retry_offset = -1;
    st->dlq_paused = false;
    st->dlq_hold = -1;
    st->in_txn = false;
    if (dlq) {
      dlq->forget(tp);  // acknowledgements of dropped records mean nothing now
    }
    set_paused(tp, true);
  }
  done_since_commit = 0;
  forwards_in_flight.clear();  // the writer forgot them: the outbox still has them
  cache_state = nullptr;
  cache_rkt = nullptr;
  eos_stalled = true;
  eos_backoff = std::chrono::milliseconds(0);
  eos_retry_at = Clock::now();
}

// Where a partition goes back to when the sink stores no offset for it: the
// group's committed offset, else the first record this assignment handed out
// (its position then was resolved once, by auto.offset.reset; resolving it
// again now could skip everything that arrived meanwhile: with "latest",
// every record of the failed transaction). RD_KAFKA_OFFSET_INVALID when
// nothing was delivered yet: the partition is still where it started and
// needs no seek. Blocking (bounded). Throws kc::Error (retriable) when the
// coordinator does not answer.
std::int64_t Consumer::Impl::rewind_position(const PartitionState& st) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), st.tp.topic.c_str(), to_int(st.tp.partition));
  if (const auto err = rd_kafka_committed(rk.get(), list.get(), 5000); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka, std::string("reading the committed offset failed: ") + rd_kafka_err2str(err), false, true);
  }
  const auto& el = list->elems[0];
  if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka, std::string("reading the committed offset failed: ") + rd_kafka_err2str(el.err), false,
                true);
  }
  if (el.offset >= 0) {
    return el.offset;
  }
  return st.first_offset >= 0 ? st.first_offset : RD_KAFKA_OFFSET_INVALID;
}

void Consumer::Impl::eos_recover(Clock::time_point now) {
  if (!eos_stalled || now < eos_retry_at) {
    return;
  }
  std::vector<TopicPartition> to_claim;
  std::vector<TopicPartition> to_resume;
  auto next_fenced_check = Clock::time_point::max();
  for (const auto& [tp, st] : parts) {
    switch (st->eos) {
      case Eos::live: break;
      case Eos::unclaimed: to_claim.push_back(tp); break;
      case Eos::rewind: to_resume.push_back(tp); break;
      case Eos::fenced:
        if (now - st->fenced_at >= kFencedReclaimAfter) {
          spdlog::warn("kc: {}[{}] is still assigned here {} s after it was fenced: claiming it again", tp.topic,
                       to_int(tp.partition), kFencedReclaimAfter.count());
          to_claim.push_back(tp);
        } else {
          next_fenced_check = std::min(next_fenced_check, st->fenced_at + kFencedReclaimAfter);
        }
        break;
    }
  }
  std::vector<SinkPosition> claimed;
  std::vector<SinkPosition> resumed;
  std::vector<std::int64_t> group_offsets;  // per partition in to_claim then to_resume; -3: none needed
  try {
    claimed = to_claim.empty() ? std::vector<SinkPosition>{} : eos->claim(to_claim);
    resumed = to_resume.empty() ? std::vector<SinkPosition>{} : eos->resume(to_resume);
    if (claimed.size() != to_claim.size() || resumed.size() != to_resume.size()) {
      throw Error(errc::misuse, "the sink returned a wrong number of positions", true);
    }
    for (const auto* set : {&claimed, &resumed}) {
      const auto& tps = set == &claimed ? to_claim : to_resume;
      for (std::size_t i = 0; i < set->size(); ++i) {
        const auto& p = (*set)[i];
        group_offsets.push_back(p.owned && !p.next ? rewind_position(*parts.at(tps[i])) : -3);
      }
    }
  } catch (const std::exception& e) {
    if (is_fatal(e)) {
      fatal_error = std::string("exactly-once sink failed while recovering: ") + e.what();
      spdlog::critical("kc: {}; stopping", fatal_error);
      stop_requested.store(1);
      return;
    }
    eos_backoff = std::min(std::max(eos_backoff * 2, kFirstBackoff), kMaxBackoff);
    eos_retry_at = now + eos_backoff;
    problems.raise(detail::ProblemKind::sink_stalled, "",
                   std::string("the sink is not available (") + e.what() + "); processing stays stalled", now);
    return;
  }
  std::size_t k = 0;
  std::vector<TopicPartition> live;
  for (const auto* set : {&claimed, &resumed}) {
    const auto& tps = set == &claimed ? to_claim : to_resume;
    for (std::size_t i = 0; i < set->size(); ++i, ++k) {
      const auto& p = (*set)[i];
      auto& st = *parts.at(tps[i]);
      if (!p.owned) {
        st.eos = Eos::fenced;
        st.fenced_at = now;
        next_fenced_check = std::min(next_fenced_check, now + kFencedReclaimAfter);
        spdlog::warn(
            "kc: {}[{}] was claimed by another consumer (this one is a zombie for it): paused, nothing "
            "written for it, until the group revokes it",
            st.tp.topic, to_int(st.tp.partition));
        continue;
      }
      const auto offset = p.next ? to_int(*p.next) : group_offsets[k];
      if (offset != RD_KAFKA_OFFSET_INVALID && !seek_now(st.tp, offset)) {
        // Not fetching yet (the assignment still reads the group's offsets):
        // positioned at the next try, a moment later.
        next_fenced_check = std::min(next_fenced_check, now + std::chrono::milliseconds(100));
        continue;
      }
      st.acked = offset >= 0 ? offset : -1;
      st.eos = Eos::live;
      set_paused(st.tp, false);
      live.push_back(st.tp);
    }
  }
  if (!live.empty()) {
    spdlog::info("kc: {} positioned at the sink's offsets; processing goes on", describe(live));
  }
  problems.clear_all(detail::ProblemKind::sink_stalled);
  eos_backoff = std::chrono::milliseconds(0);
  eos_stalled = next_fenced_check != Clock::time_point::max();
  eos_retry_at = next_fenced_check;
  last_activity = now;
}

// Partitions going away. Revoked: the open transaction commits first (all
// partitions' progress; a failure rewinds the others). Lost: someone else
// may own them already, so the open transaction is aborted and the other
// partitions rewind.
void Consumer::Impl::eos_revoke(const std::vector<TopicPartition>& tps, bool lost) {
  if (lost) {
    if (txn_open) {
      eos->abort();
      txn_open = false;
      forwarded_dead_metrics.clear();
      ++stats.transactions_aborted;
      metrics.transaction(false);
      drop_state(tps);
      spdlog::warn("kc: the open transaction was aborted (partitions lost); rewinding the others");
      eos_rewind_all();
    } else {
      drop_state(tps);
    }
  } else {
    eos_commit();
  }
  try {
    eos->release(tps);
  } catch (const std::exception& e) {
    spdlog::warn("kc: the sink's release of {} failed: {}", describe(tps), e.what());
  }
}

}  // namespace kc
