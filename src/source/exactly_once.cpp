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

#include "kc/error.hpp"
#include "source/consumer_impl.hpp"

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
    spdlog::warn("kc: the sink cannot claim {} yet ({}): paused until it can", describe(tps), e.what());
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
  ++stats.transactions_aborted;
  metrics.transaction(false);
  if (is_fatal(e)) {
    fatal_error = std::string("exactly-once sink failed ") + during + ": " + e.what();
    spdlog::critical("kc: {}; stopping", fatal_error);
    stop_requested.store(1);
    return;
  }
  spdlog::warn("kc: {} failed ({}): transaction aborted; rewinding to the sink's offsets", during, e.what());
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
    st->halted = false;
    st->retry_offset = -1;
    st->dlq_paused = false;
    if (dlq) {
      dlq->forget(tp);  // acknowledgements of dropped records mean nothing now
    }
    set_paused(tp, true);
  }
  done_since_commit = 0;
  cache_state = nullptr;
  cache_rkt = nullptr;
  eos_stalled = true;
  eos_backoff = std::chrono::milliseconds(0);
  eos_retry_at = Clock::now();
}

// Where the group says a partition stands (the sink stores no offset for
// it): its committed offset, else auto.offset.reset. Blocking (bounded).
// Throws kc::Error (retriable) when the coordinator does not answer.
std::int64_t Consumer::Impl::group_position(const TopicPartition& tp) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), to_int(tp.partition));
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
  return config.from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
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
        group_offsets.push_back(p.owned && !p.next ? group_position(tps[i]) : -3);
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
    if (now - eos_last_warning >= std::chrono::seconds(10)) {
      eos_last_warning = now;
      spdlog::warn("kc: the sink is not available ({}); processing stays stalled, next try in {} ms", e.what(),
                   eos_backoff.count());
    }
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
      st.acked = offset >= 0 ? offset : -1;
      st.eos = Eos::live;
      seek(st.tp, offset);
      set_paused(st.tp, false);
      live.push_back(st.tp);
    }
  }
  if (!live.empty()) {
    spdlog::info("kc: {} positioned at the sink's offsets; processing goes on", describe(live));
  }
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
