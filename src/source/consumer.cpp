// The poll loop. One thread (the caller of run()) owns the librdkafka
// consumer handle and makes every call on it; librdkafka's callbacks
// (rebalance, commit, error, log with log.queue=true) are served from
// rd_kafka_consumer_poll on that same thread.
#include "kc/consumer.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <thread>

#include "kc/error.hpp"
#include "rdkafka/log.hpp"
#include "source/conf.hpp"
#include "source/consumer_impl.hpp"
#include "text/text.hpp"

namespace kc {

using detail::describe;
using detail::share_of;
using detail::header_int;
using detail::header_text;

namespace {

std::vector<TopicPartition> to_vector(const rd_kafka_topic_partition_list_t* parts) {
  std::vector<TopicPartition> out;
  out.reserve(static_cast<std::size_t>(parts->cnt));
  for (int i = 0; i < parts->cnt; ++i) {
    out.push_back({parts->elems[i].topic, Partition{parts->elems[i].partition}});
  }
  return out;
}

template <typename Fn>
void run_hook(const char* name, Fn&& fn) noexcept {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::error("kc: {} hook threw: {}", name, e.what());
  } catch (...) {
    spdlog::error("kc: {} hook threw a non-standard exception", name);
  }
}

}  // namespace

// ---------------------------------------------------------------- callbacks

namespace {

void rebalance_trampoline(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) noexcept {
  try {
    static_cast<Consumer::Impl*>(opaque)->on_rebalance(err, parts);
  } catch (const std::exception& e) {
    spdlog::critical("kc: rebalance handling failed: {}", e.what());
    static_cast<Consumer::Impl*>(opaque)->fatal_error = std::string("rebalance handling failed: ") + e.what();
    static_cast<Consumer::Impl*>(opaque)->stop_requested.store(1);
  }
}

int stats_trampoline(rd_kafka_t*, char* json, std::size_t len, void* opaque) noexcept {
  try {
    static_cast<Consumer::Impl*>(opaque)->metrics.rdkafka_stats(json, len);
  } catch (...) {
    spdlog::warn("kc: librdkafka statistics not understood");
  }
  return 0;  // librdkafka frees the JSON
}

// librdkafka logs a broker failure at error level as "FAIL" and reports the
// same failure to the error callback (rd_kafka_broker_set_error): on_error
// handles it (as a problem, or one line per error code a minute), so the
// log line would only say it twice.
void consumer_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf) noexcept {
  if (level <= 3 && fac != nullptr && std::strcmp(fac, "FAIL") == 0) {
    return;
  }
  detail::log_to_spdlog(rk, level, fac, buf);
}

void error_trampoline(rd_kafka_t*, int err, const char* reason, void* opaque) noexcept {
  try {
    static_cast<Consumer::Impl*>(opaque)->on_error(err, reason);
  } catch (...) {
    spdlog::error("kc: error handling failed");
  }
}

}  // namespace

void Consumer::Impl::build() {
  config.validate();
  build_parallel();
  eos = hooks.exactly_once;
  if (eos && parallel) {
    throw Error(errc::config_invalid_value,
                "exactly-once needs the one-record-at-a-time handler: parallel.concurrency must be 0 and the "
                "handler synchronous");
  }
  if (eos) {
    if (const auto it = config.librdkafka.find("isolation.level");
        it != config.librdkafka.end() && it->second != "read_committed") {
      throw Error(errc::config_invalid_value,
                  "librdkafka.isolation.level: '" + it->second +
                      "' under exactly-once: records of transactions that abort would be processed and committed; "
                      "use read_committed (kc's default)");
    }
  }
  if (eos && hooks.stored_offset) {
    throw Error(errc::misuse, "ConsumerHooks: stored_offset and exactly_once exclude each other (the sink stores the offsets)");
  }
  if (config.bootstrap_servers.empty()) {
    embedded = std::make_unique<EmbeddedBroker>(1);
    bootstrap = embedded->bootstrap_servers();
    spdlog::warn("kc: no bootstrap servers given: using an embedded mock broker at {} (in-process, "
                 "data is lost on exit)",
                 bootstrap);
  } else {
    bootstrap = config.bootstrap_servers;
  }

  detail::ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [k, v] : detail::consumer_conf(config, bootstrap)) {
    detail::conf_set(conf.get(), k, v);
  }
  {
    char buf[32];
    std::size_t size = sizeof buf;
    if (rd_kafka_conf_get(conf.get(), "max.poll.interval.ms", buf, &size) == RD_KAFKA_CONF_OK) {
      max_poll_interval = std::chrono::milliseconds(std::strtoll(buf, nullptr, 10));
    }
    size = sizeof buf;
    if (rd_kafka_conf_get(conf.get(), "statistics.interval.ms", buf, &size) == RD_KAFKA_CONF_OK &&
        std::strtoll(buf, nullptr, 10) > 0) {
      rd_kafka_conf_set_stats_cb(conf.get(), stats_trampoline);
    }
  }
  rd_kafka_conf_set_log_cb(conf.get(), consumer_log);
  rd_kafka_conf_set_rebalance_cb(conf.get(), rebalance_trampoline);
  rd_kafka_conf_set_error_cb(conf.get(), error_trampoline);
  rd_kafka_conf_set_opaque(conf.get(), this);

  rk = detail::make_handle(RD_KAFKA_CONSUMER, std::move(conf));
  // Logs, errors and rebalances all arrive on the consumer queue, served by
  // rd_kafka_consumer_poll on the poll thread.
  rd_kafka_set_log_queue(rk.get(), nullptr);
  rd_kafka_poll_set_consumer(rk.get());
  commit_queue.reset(rd_kafka_queue_new(rk.get()));
  if (config.dead_letter.active() || config.retry.use_topics) {
    dlq = std::make_unique<detail::DeadLetterWriter>(bootstrap, config.librdkafka, config.dead_letter, config.group);
  }
  if (config.metrics.port) {
    const auto max_gap =
        config.metrics.max_poll_gap.count() > 0 ? config.metrics.max_poll_gap : max_poll_interval / 2;
    server = std::make_unique<kc::metrics::Server>(
        kc::metrics::Server::Options{config.metrics.bind, *config.metrics.port}, metrics.registry(),
        [this, max_gap, interval = max_poll_interval] { return metrics.liveness(max_gap, interval); },
        [this] { return metrics.readiness(); });
    spdlog::info("kc: metrics on http://{}:{}/metrics (health: /healthz, /readyz)", config.metrics.bind,
                 server->port());
  }
}

void Consumer::Impl::publish_gauges(Clock::time_point now) {
  gauges_at = now;
  metrics.publish();
  std::size_t paused = 0;
  for (const auto& [tp, st] : parts) {
    if (st->kc_paused || st->waiting || st->halted || st->dlq_paused || st->eos != PartitionState::Eos::live) {
      ++paused;
    }
  }
  const double in_flight = parallel ? static_cast<double>(dispatcher->in_flight()) : 0.0;
  metrics.loop_state(in_flight, static_cast<double>(paused), static_cast<double>(parts.size()));
}

namespace {

// How long rd_kafka_destroy may take before the handle is left behind.
constexpr std::chrono::milliseconds kDestroyWait{1500};

// rd_kafka_destroy joins librdkafka's threads, which wait for a close in
// progress (a commit or a LeaveGroup to a broker that does not answer) and
// for every message of the handle to be destroyed. Bounded here: past
// `limit` the destroy goes on in the background and the caller goes on;
// returns false then.
bool destroy_within(rd_kafka_t* handle, int flags, std::chrono::milliseconds limit) {
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([handle, flags, done] {
    rd_kafka_destroy_flags(handle, flags);
    done->set_value();
  }).detach();
  return finished.wait_for(limit) == std::future_status::ready;
}

}  // namespace

void Consumer::Impl::release_handle(int destroy_flags) {
  // Kept records and the wake-up queue go before the handle they belong to.
  release_parallel(Clock::now());
  commit_queue.reset();
  rd_kafka_t* handle = rk.release();
  closed = true;
  if (handle == nullptr) {
    return;
  }
  if (messages_left_behind > 0) {
    // A handler still runs with its record: librdkafka's destroy would wait
    // for that record forever. The handle stays with it; the process ends soon.
    left_behind = true;
    spdlog::error("kc: {} records are still with handlers that did not return: the librdkafka handle is left "
                  "behind (not destroyed)",
                  messages_left_behind);
    return;
  }
  if (!destroy_within(handle, destroy_flags, kDestroyWait)) {
    left_behind = true;
    spdlog::error("kc: librdkafka did not finish closing within {} ms; its handle is left behind",
                  kDestroyWait.count());
  }
}

void Consumer::Impl::on_error(int err, const char* reason) {
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  const auto now = Clock::now();
  switch (code) {
    case RD_KAFKA_RESP_ERR__FATAL: {
      char buf[512];
      const auto orig = rd_kafka_fatal_error(rk.get(), buf, sizeof buf);
      fatal_error = std::string(rd_kafka_err2name(orig)) + ": " + buf;
      spdlog::critical("kc: fatal librdkafka error, stopping: {}", fatal_error);
      stop_requested.store(1);
      return;
    }
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      problems.raise(detail::ProblemKind::authentication, "",
                     std::string(reason) + " (check sasl.mechanism, sasl.username and sasl.password)", now);
      return;
    case RD_KAFKA_RESP_ERR__SSL:
      problems.raise(detail::ProblemKind::tls, "",
                     std::string(reason) +
                         " (check ssl.ca.location, the broker's certificate and host name, and the client certificate)",
                     now);
      return;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      problems.raise(detail::ProblemKind::authorization, "", std::string(rd_kafka_err2name(code)) + ": " + reason,
                     now);
      return;
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      problems.raise(detail::ProblemKind::brokers_down, "", std::string(reason) + "; still trying", now);
      return;
    default:
      break;
  }
  // Anything else (a broker closed a connection, a request timed out): one
  // line per error code a minute, with how many were not logged.
  auto& [last, skipped] = error_lines[err];
  if (last != Clock::time_point{} && now - last < std::chrono::minutes(1)) {
    ++skipped;
    return;
  }
  if (skipped > 0) {
    spdlog::warn("kc: librdkafka: {}: {} ({} more like it in the last minute)", rd_kafka_err2name(code), reason,
                 skipped);
  } else {
    spdlog::warn("kc: librdkafka: {}: {}", rd_kafka_err2name(code), reason);
  }
  last = now;
  skipped = 0;
}

void Consumer::Impl::connected(Clock::time_point now) {
  (void)now;
  problems.clear_all(detail::ProblemKind::authentication);
  problems.clear_all(detail::ProblemKind::tls);
  problems.clear_all(detail::ProblemKind::brokers_down);
}

// The longest a revoke waits for the revoked partitions' dead letters.
constexpr std::chrono::milliseconds kRevokeDeadLetterWait{1000};

void Consumer::Impl::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) {
  const bool coop = cooperative();
  auto tps = to_vector(list);
  cache_state = nullptr;
  cache_rkt = nullptr;

  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (eos && txn_open) {
      // An assignment is a commit point: the claims below then never run
      // inside a transaction of records (a cooperative round mid-batch).
      eos_commit();
    }
    if (dlq) {
      std::vector<std::string> topics;
      for (const auto& tp : tps) {
        topics.push_back(tp.topic);
      }
      try {
        ensure_targets(topics);
      } catch (const std::exception& e) {
        // Refused like at start, but the partitions are taken (and handed
        // back by the graceful stop) so that the group is left cleanly.
        if (fatal_error.empty()) {
          fatal_error = e.what();
          spdlog::critical("kc: {}; stopping", fatal_error);
        }
        stop_requested.store(1);
      }
    }
    std::vector<PartitionState*> fresh;
    for (int i = 0; i < list->cnt; ++i) {
      auto& el = list->elems[i];
      auto st = std::make_unique<PartitionState>();
      st->tp = tps[static_cast<std::size_t>(i)];
      st->metrics = metrics.topic(st->tp.topic);
      st->retry_topic = retry_topics.contains(st->tp.topic);
      if (hooks.stored_offset) {
        // A failure here must not fall back silently to the group's offset:
        // it propagates and stops the consumer (see rebalance_trampoline).
        if (auto off = hooks.stored_offset(st->tp)) {
          el.offset = to_int(*off);
        }
      }
      if (parallel) {
        st->pid = dispatcher->assign();
        if (by_slot.size() <= st->pid.slot) {
          by_slot.resize(st->pid.slot + 1, nullptr);
        }
        by_slot[st->pid.slot] = st.get();
        if (el.offset == RD_KAFKA_OFFSET_INVALID) {
          fresh.push_back(st.get());  // its start comes from the group: read the metadata too
        }
      }
      parts[st->tp] = std::move(st);
    }
    if (eos) {
      eos_claim(list, tps);
      outbox_maybe = dlq != nullptr;  // a previous owner may have left rows in the outbox
    }
    load_done_sets(fresh);
    if (coop) {
      detail::ErrorPtr e(rd_kafka_incremental_assign(rk.get(), list));
      if (e) {
        throw Error(errc::kafka, std::string("incremental assign failed: ") + rd_kafka_error_string(e.get()));
      }
    } else if (const auto e = rd_kafka_assign(rk.get(), list); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(errc::kafka, std::string("assign failed: ") + rd_kafka_err2str(e));
    }
    // librdkafka keeps a partition's pause (ours: a retry wait, a halt, a
    // full buffer, a rewind) across an unassign and a new assign: a
    // partition that comes back would stay paused for good. New state, new
    // pause: resume all, then pause what must wait.
    if (list->cnt > 0) {
      rd_kafka_resume_partitions(rk.get(), list);
    }
    for (const auto& tp : tps) {
      if (parts.at(tp)->eos != PartitionState::Eos::live) {
        set_paused(tp, true);  // the sink could not claim it yet
      }
    }
    metrics.rebalance("assign");
    metrics.joined(true);  // an empty assignment too: idle by design, still a member
    // The group works, so do the credentials, the certificates and the
    // group's ACLs; and an assigned topic exists and may be read.
    connected(Clock::now());
    problems.clear(detail::ProblemKind::authorization, "group " + config.group);
    for (const auto& tp : tps) {
      problems.clear(detail::ProblemKind::topic_missing, tp.topic);
      problems.clear(detail::ProblemKind::authorization, tp.topic);
    }
    if (!tps.empty()) {
      // The idle clock runs while partitions are held: it starts (again) at a
      // non-empty assignment, not at an empty one (cooperative rounds, a
      // stale member still in the group) and not while rejoining after a loss.
      last_activity = Clock::now();
      if (!first_assigned) {
        first_assigned = last_activity;
      }
      spdlog::info("kc: assigned {} ({})", describe(tps), coop ? "cooperative" : "eager");
    }
    if (hooks.on_assign) {
      run_hook("on_assign", [&] { hooks.on_assign(tps); });
    }
    return;
  }

  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    if (rd_kafka_assignment_lost(rk.get())) {
      // Someone else may own them already: committing now could move their
      // commit point backwards or past their work. Drop everything.
      spdlog::warn("kc: lost {} (nothing committed for them)", describe(tps));
      metrics.rebalance("lost");
      metrics.joined(false);
      if (parallel) {
        revoke_parallel(tps, true);
      }
      if (eos) {
        eos_revoke(tps, true);
      }
      drop_state(tps);
      if (hooks.on_lost) {
        run_hook("on_lost", [&] { hooks.on_lost(tps); });
      }
    } else {
      metrics.rebalance("revoke");
      // Handlers run on this thread; what can still be in flight is dead
      // letters: wait for those of the revoked partitions (a second at
      // most), then commit what is done. During a stop the deadline is the
      // stop's; past it (hurry) nothing is waited for or committed any more.
      if (parallel) {
        // Nothing more of them starts; their running records get a bounded
        // wait (parallel.revoke_timeout), then what is done is committed.
        revoke_parallel(tps, false);
      }
      const auto now = Clock::now();
      const auto deadline = stop_deadline ? *stop_deadline : now + config.shutdown_timeout;
      if (!hurry) {
        // A dead letter is normally acknowledged within milliseconds; one
        // that is not within a second is stuck (its topic gone, a broker
        // down), and the rebalance must not wait for it: the next owner
        // dead-letters its record again (at least once).
        drain_dead_letters(std::min(now + kRevokeDeadLetterWait, now + (deadline - now) / 2), &tps);
      }
      if (eos) {
        eos_revoke(tps, false);
      } else if (!hurry && !commit_sync(&tps, deadline)) {
        spdlog::warn("kc: commit on revoke of {} did not complete; the next owner re-reads from "
                     "the last committed offset",
                     describe(tps));
      }
      spdlog::info("kc: revoked {}", describe(tps));
      if (hooks.on_revoke) {
        run_hook("on_revoke", [&] { hooks.on_revoke(tps); });
      }
      drop_state(tps);
    }
    if (coop) {
      detail::ErrorPtr e(rd_kafka_incremental_unassign(rk.get(), list));
      if (e) {
        spdlog::error("kc: incremental unassign failed: {}", rd_kafka_error_string(e.get()));
      }
    } else {
      rd_kafka_assign(rk.get(), nullptr);
    }
    return;
  }

  spdlog::error("kc: rebalance error: {}", rd_kafka_err2str(err));
  if (coop) {
    detail::ErrorPtr e(rd_kafka_incremental_unassign(rk.get(), list));
  } else {
    rd_kafka_assign(rk.get(), nullptr);
  }
  if (parallel) {
    revoke_parallel(tps, true);
  }
  if (eos) {
    eos_revoke(tps, true);
  }
  drop_state(tps);
}

void Consumer::Impl::drop_state(const std::vector<TopicPartition>& tps) {
  for (const auto& tp : tps) {
    if (dlq) {
      dlq->forget(tp);  // the next owner dead-letters them again
    }
    if (auto it = parts.find(tp); it != parts.end()) {
      if (it->second->waiting) {
        --waiting_partitions;
      }
      problems.clear(detail::ProblemKind::partition_halted, describe({tp}));
      std::erase_if(forwards_in_flight, [&](const auto& f) { return f.second == tp; });  // dlq->forget()
      if (it->second->acked >= 0) {
        stats.committed[tp] = Offset{it->second->acked};
      }
      metrics.forget(tp);
      if (parallel && it->second->pid.slot < by_slot.size() && by_slot[it->second->pid.slot] == it->second.get()) {
        by_slot[it->second->pid.slot] = nullptr;  // its late completions find no partition
      }
      parts.erase(it);
    }
  }
  cache_state = nullptr;
  cache_rkt = nullptr;
}

void Consumer::Impl::on_commit_result(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets) {
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
    return;  // nothing to commit: not a failure
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    commit_failed(std::string("commit failed: ") + rd_kafka_err2str(err) + " (tracking kept; retried at the next commit)");
  } else {
    ++stats.commits_ok;
    metrics.commit(true);
    commit_failures_in_a_row = 0;
    problems.clear_all(detail::ProblemKind::commits_failing);
    connected(Clock::now());
  }
  if (offsets == nullptr) {
    return;
  }
  for (int i = 0; i < offsets->cnt; ++i) {
    const auto& el = offsets->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR || err != RD_KAFKA_RESP_ERR_NO_ERROR || el.offset < 0) {
      continue;
    }
    const TopicPartition tp{el.topic, Partition{el.partition}};
    if (auto it = parts.find(tp); it != parts.end()) {
      it->second->acked = std::max(it->second->acked, el.offset);
      metrics.committed(tp, it->second->acked);
    }
    auto& c = stats.committed[tp];
    c = Offset{std::max(to_int(c), el.offset)};
  }
}

// ---------------------------------------------------------------- commits

detail::PartitionListPtr Consumer::Impl::commit_list(const std::vector<TopicPartition>* only) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
  auto add = [&](PartitionState& st) {
    const auto point = st.offsets.commit_point();
    // In parallel mode the done set past the commit point travels in the
    // metadata: a commit is due when it changed, even at the same point.
    if (point && (*point > st.acked || (parallel && st.metadata_dirty))) {
      auto* el = rd_kafka_topic_partition_list_add(list.get(), st.tp.topic.c_str(), to_int(st.tp.partition));
      el->offset = *point;
      if (parallel) {
        add_metadata(st, *point, el);
      }
    }
  };
  if (only != nullptr) {
    for (const auto& tp : *only) {
      if (auto it = parts.find(tp); it != parts.end()) {
        add(*it->second);
      }
    }
  } else {
    for (auto& [tp, st] : parts) {
      add(*st);
    }
  }
  return list;
}

// At most one asynchronous commit is in flight. When a second commit span
// has accumulated while the previous commit is unanswered, the loop waits
// for that answer (bounded by kMaxCommitWait, once per commit). A commit then
// covers at most 2 * every_messages + one batch of records, and since the
// sink is flushed only when a commit is sent, that span bounds what a kill -9
// makes the group redo. Firing commits without waiting let them queue behind the coordinator
// (measured: 28 commits, 28k records redone after one kill at 1M records/s).
// A slow coordinator costs one bounded wait per commit, never a stall.
constexpr std::chrono::milliseconds kMaxCommitWait{250};

void Consumer::Impl::maybe_commit(Clock::time_point now) {
  serve_commit_results(std::chrono::milliseconds(0));
  const bool by_count = done_since_commit >= config.commit.every_messages;
  const bool by_time = now - last_commit >= config.commit.interval;
  if (!by_count && !by_time) {
    return;
  }
  if (eos) {
    // The sink's transaction is the commit; synchronous by nature.
    last_commit = now;
    done_since_commit = 0;
    eos_commit();
    return;
  }
  if (commit_in_flight) {
    // Keep processing while one more commit span accumulates; only then wait.
    if (done_since_commit < 2 * config.commit.every_messages || waited_for_commit) {
      return;
    }
    waited_for_commit = true;
    serve_commit_results(kMaxCommitWait);
    if (commit_in_flight) {
      return;
    }
  }
  last_commit = now;
  done_since_commit = 0;
  commit_async();
}

bool Consumer::Impl::before_commit() {
  if (commits_refused) {
    return false;
  }
  if (!hooks.before_commit) {
    return true;
  }
  try {
    hooks.before_commit();
    return true;
  } catch (const std::exception& e) {
    fatal_error = std::string("before_commit refused the commit: ") + e.what();
  } catch (...) {
    fatal_error = "before_commit refused the commit (non-standard exception)";
  }
  // What the hook guards (a sink, a producer) is not durable: commit nothing
  // more in this run, and stop.
  commits_refused = true;
  spdlog::critical("kc: {}; stopping without committing", fatal_error);
  stop_requested.store(1);
  return false;
}

void Consumer::Impl::serve_commit_results(std::chrono::milliseconds wait) {
  while (commit_in_flight) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(commit_queue.get(), static_cast<int>(wait.count()));
    if (ev == nullptr) {
      return;
    }
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
      on_commit_result(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
      commit_in_flight = false;
    }
    rd_kafka_event_destroy(ev);
  }
}

void Consumer::Impl::commit_async() {
  auto list = commit_list(nullptr);
  if (list->cnt == 0) {
    return;
  }
  if (!before_commit()) {
    return;
  }
  const auto err = rd_kafka_commit_queue(rk.get(), list.get(), commit_queue.get(), nullptr, nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    commit_failed(std::string("commit request failed: ") + rd_kafka_err2str(err) + " (retried at the next commit)");
    return;
  }
  commit_in_flight = true;
  waited_for_commit = false;
}

namespace {

// Commit errors that say a rebalance is settling (the member is still in
// the group; librdkafka rejoins by itself and takes the new generation).
bool rebalancing(rd_kafka_resp_err_t e) noexcept {
  return e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
         e == RD_KAFKA_RESP_ERR_STALE_MEMBER_EPOCH;
}

// The error (the request's or a partition's) that says a rebalance is
// settling, or NO_ERROR.
rd_kafka_resp_err_t rebalancing(rd_kafka_resp_err_t e, const rd_kafka_topic_partition_list_t* offsets) noexcept {
  if (rebalancing(e)) {
    return e;
  }
  for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
    if (rebalancing(offsets->elems[i].err)) {
      return offsets->elems[i].err;
    }
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

// Between two tries of a stop's commit that met a rebalance.
constexpr std::chrono::milliseconds kRebalanceRetry{200};

}  // namespace

bool Consumer::Impl::commit_sync(const std::vector<TopicPartition>* only, Clock::time_point deadline,
                                 bool through_rebalance) {
  // An asynchronous commit still in flight is answered first: sent after
  // it, this one lands after it, so a partition's committed offset never
  // goes back (librdkafka retries a commit that failed retriably).
  if (commit_in_flight) {
    serve_commit_results(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max<Clock::duration>(share_of(deadline, 1, 2) - Clock::now(), Clock::duration::zero())));
  }
  bool told = false;
  for (;;) {
    auto list = commit_list(only);
    if (list->cnt == 0) {
      return true;
    }
    if (!before_commit()) {
      return false;
    }
    // A private queue instead of a blocking rd_kafka_commit: the wait is
    // bounded by `deadline`.
    detail::QueuePtr q(rd_kafka_queue_new(rk.get()));
    const auto err = rd_kafka_commit_queue(rk.get(), list.get(), q.get(), nullptr, nullptr);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      commit_failed(std::string("synchronous commit failed: ") + rd_kafka_err2str(err));
      return false;
    }
    rd_kafka_event_t* ev = nullptr;
    while (ev == nullptr && Clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      ev = rd_kafka_queue_poll(q.get(), static_cast<int>(std::max<std::int64_t>(left.count(), 1)));
      if (ev != nullptr && rd_kafka_event_type(ev) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
        rd_kafka_event_destroy(ev);
        ev = nullptr;
      }
    }
    if (ev == nullptr) {
      commit_failed("synchronous commit timed out");
      return false;
    }
    const auto e = rd_kafka_event_error(ev);
    const auto* offsets = rd_kafka_event_topic_partition_list(ev);
    const auto settling = rebalancing(e, offsets);
    if (through_rebalance && settling != RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_assignment_lost(rk.get()) == 0 &&
        Clock::now() + kRebalanceRetry < deadline) {
      // A stop that meets a rebalance (a member joined or left just then):
      // the member still owns its partitions (nobody gets them before it
      // let go, and it has not) and librdkafka rejoins by itself, so the
      // commit goes through once the new generation is settled. Giving up
      // here had the next owner redo everything since the last commit.
      // When librdkafka says the assignment is lost (the member was put
      // out of the group), the partitions may be someone else's: no retry.
      if (!told) {
        told = true;
        spdlog::info("kc: the final commit met a rebalance ({}); trying again until it settles",
                     rd_kafka_err2str(settling));
      }
      rd_kafka_event_destroy(ev);
      std::this_thread::sleep_for(kRebalanceRetry);
      continue;
    }
    on_commit_result(e, offsets);
    rd_kafka_event_destroy(ev);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
}

// Counted once per failed commit (RunStats, kc_commit_failures_total); the
// second failure in a row is a problem (/readyz) until a commit succeeds.
void Consumer::Impl::commit_failed(const std::string& why) {
  ++stats.commits_failed;
  metrics.commit(false);
  spdlog::warn("kc: {}", why);
  if (++commit_failures_in_a_row >= 2) {
    problems.raise(detail::ProblemKind::commits_failing, "",
                   fmt::format("{} commits in a row failed, the last: {}", commit_failures_in_a_row, why),
                   Clock::now());
  }
}

// ---------------------------------------------------------------- messages

Consumer::Impl::PartitionState* Consumer::Impl::state_of(const rd_kafka_message_t* m) {
  if (m->rkt == cache_rkt && m->partition == cache_partition && cache_state != nullptr) {
    return cache_state;
  }
  const TopicPartition tp{rd_kafka_topic_name(m->rkt), Partition{m->partition}};
  auto it = parts.find(tp);
  if (it == parts.end()) {
    return nullptr;
  }
  cache_rkt = m->rkt;
  cache_partition = m->partition;
  cache_state = it->second.get();
  return cache_state;
}

void Consumer::Impl::halt(PartitionState& st, std::int64_t offset, const std::string& why) {
  st.halted = true;
  ++stats.failed;
  problems.raise(detail::ProblemKind::partition_halted, describe({st.tp}),
                 fmt::format("offset {}: {}; the partition is stopped, nothing at or after this offset is "
                             "committed (configure a dead-letter topic to go on)",
                             offset, why),
                 Clock::now());
  set_paused(st.tp, true);
}

void Consumer::Impl::on_message_error(const rd_kafka_message_t* m) {
  const std::string topic = m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "";
  switch (m->err) {
    case RD_KAFKA_RESP_ERR__FATAL:
      // Delivered as a consumer error, not through the error callback:
      // the handle is unusable (e.g. a static member fenced), stop.
      on_error(m->err, rd_kafka_message_errstr(m));
      return;
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
      spdlog::debug("kc: end of {}[{}] at offset {}", topic, m->partition, m->offset);
      return;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      // Shown until the topic is assigned (it may be created later).
      problems.raise(detail::ProblemKind::topic_missing, topic,
                     "the subscribed topic does not exist (or is not visible to this client): " +
                         std::string(rd_kafka_message_errstr(m)),
                     Clock::now());
      return;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      // A configuration error: run() ends after health.fatal_after_ms
      // unless the ACLs change and the topic gets assigned meanwhile.
      problems.raise(detail::ProblemKind::authorization, topic,
                     "not authorized to read the subscribed topic (grant READ and DESCRIBE on it to this "
                     "principal): " +
                         std::string(rd_kafka_message_errstr(m)),
                     Clock::now());
      return;
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
      problems.raise(detail::ProblemKind::authorization, "group " + config.group,
                     "not authorized to use the consumer group (grant READ on it to this principal): " +
                         std::string(rd_kafka_message_errstr(m)),
                     Clock::now());
      return;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      on_error(m->err, rd_kafka_message_errstr(m));
      return;
    default:
      spdlog::warn("kc: consumer error on {}[{}]: {}", topic, m->partition, rd_kafka_message_errstr(m));
  }
}

void Consumer::Impl::on_message(rd_kafka_message_t* m) {
  PartitionState* st = state_of(m);
  if (st != nullptr && st->first_offset < 0) {
    st->first_offset = m->offset;
  }
  if (st == nullptr || st->halted || st->waiting || st->dlq_hold >= 0) {
    // Fetched before a revoke, a halt or a retry's seek back: it is read
    // again (by the owner, or after the retry).
    return;
  }
  int attempt = m->offset == st->retry_offset ? st->retry_attempt : 1;
  if (st->retry_topic) {
    // A record from a retry topic: handled once its delay has passed; until
    // then its partition waits (the topic is in due order per level).
    const auto due_ms = header_int(m, kHeaderRetryDue);
    attempt = static_cast<int>(std::max<std::int64_t>(header_int(m, kHeaderRetryAttempt), 2));
    const auto now_ms = detail::epoch_ms_now();
    if (due_ms > now_ms) {
      wait_for(*st, m->offset, attempt, Clock::now() + std::chrono::milliseconds(due_ms - now_ms));
      return;
    }
  }
  if (eos && !eos_record_begin(*st)) {
    return;
  }
  st->offsets.handed_out(m->offset);
  ++stats.consumed;
  ++st->metrics->consumed;
  Outcome outcome = Outcome::retry;
  std::exception_ptr error;
  // One clock read per record: a record's processing starts where the
  // previous one's ended (record_clock; the loop sets it per batch), so the
  // figure includes kc's own per-record work, tens of nanoseconds.
  const auto began = record_clock;
  try {
    outcome = handler(Message(m, attempt));
  } catch (...) {
    error = std::current_exception();
  }
  record_clock = Clock::now();
  metrics.observe(*st->metrics, began, record_clock, rd_kafka_message_timestamp(m, nullptr));
  if (record_clock - began > max_poll_interval / 2 && !warned_slow_handler) {
    // Batches are cut by time, but a single call this long comes close to
    // max.poll.interval.ms by itself; past it the group evicts this member.
    warned_slow_handler = true;
    spdlog::warn("kc: {}[{}] offset {}: the handler took {} ms, more than half of max.poll.interval.ms ({} ms); "
                 "a longer call costs this member its partitions: raise max.poll.interval.ms or use parallel "
                 "processing (parallel.concurrency, an asynchronous handler)",
                 st->tp.topic, to_int(st->tp.partition), m->offset,
                 std::chrono::duration_cast<std::chrono::milliseconds>(record_clock - began).count(),
                 max_poll_interval.count());
  }
  if (eos && !eos_record_end(!error && outcome == Outcome::done)) {
    return;  // the transaction failed: everything since the last commit is redone
  }
  if (!error && outcome == Outcome::done) {
    st->offsets.done(m->offset);
    st->retry_offset = -1;
    ++stats.done;
    ++st->metrics->processed;
    ++done_since_commit;
    return;
  }
  ++st->metrics->failed;
  if (stop_requested.load(std::memory_order_relaxed) != 0) {
    // Stopping: a record that fails now is neither retried nor dead-lettered
    // but left for the next run; being not done, it holds the commit point.
    // (A handler may stop() the consumer and then throw, e.g. when the
    // Schema Registry stays unreachable: the record is not at fault.)
    return;
  }
  detail::Failure f;
  if (error) {
    f = detail::classify(error, config.retry);
  } else {
    f.retriable = outcome == Outcome::retry;
    f.type = outcome == Outcome::retry ? "kc::Outcome::retry" : "kc::Outcome::dead";
    f.message = outcome == Outcome::retry ? "handler returned retry" : "handler returned dead";
  }
  fail(*st, m, attempt, f);
}

void Consumer::Impl::give_back(rd_kafka_message_t** msgs, std::size_t n) {
  // librdkafka counted the whole batch as consumed (its application
  // position is past it), so each partition is sought back to its first
  // record given back, unless a retry, a halt or a rewind positions it
  // already (they seek or pause it themselves).
  std::vector<const PartitionState*> sought;
  for (std::size_t i = 0; i < n; ++i) {
    rd_kafka_message_t* m = msgs[i];
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      on_message_error(m);
    } else if (PartitionState* st = state_of(m); st != nullptr && !st->halted && !st->waiting &&
                                                 st->eos == PartitionState::Eos::live &&
                                                 std::find(sought.begin(), sought.end(), st) == sought.end()) {
      seek(st->tp, m->offset);
      sought.push_back(st);
    }
    rd_kafka_message_destroy(m);
  }
}

void Consumer::Impl::resume_fetching(PartitionState& st) {
  set_paused(st.tp, false);
  // librdkafka does not wake its fetcher on resume (it notices at its next
  // idle timeout, ~1 s); a seek to where the partition stands does: the
  // record a retry waits for, else the position after the last record handed out.
  std::int64_t at = st.retry_offset;
  if (at < 0) {
    detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), st.tp.topic.c_str(), to_int(st.tp.partition));
    if (rd_kafka_position(rk.get(), list.get()) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      at = list->elems[0].offset;
    }
  }
  if (at >= 0) {
    seek(st.tp, at);
  }
  last_activity = Clock::now();  // records are on their way again: not idle yet
}

bool Consumer::Impl::held(const PartitionState& st) const noexcept {
  return st.halted || st.waiting || st.dlq_paused || st.dlq_hold >= 0 || st.eos != PartitionState::Eos::live;
}

void Consumer::Impl::set_paused(const TopicPartition& tp, bool paused) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), to_int(tp.partition));
  const auto err = paused ? rd_kafka_pause_partitions(rk.get(), list.get()) : rd_kafka_resume_partitions(rk.get(), list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::error("kc: cannot {} {}[{}]: {}", paused ? "pause" : "resume", tp.topic, to_int(tp.partition),
                  rd_kafka_err2str(err));
  }
}

void Consumer::Impl::wait_for(PartitionState& st, std::int64_t offset, int attempt, Clock::time_point due) {
  // Pause the partition and seek back to the record: the poll loop keeps
  // running (other partitions flow, the group sees us alive), and the
  // record is fetched again when the partition resumes at `due`.
  st.waiting = true;
  ++waiting_partitions;
  st.retry_offset = offset;
  st.retry_attempt = attempt;
  st.retry_due = due;
  set_paused(st.tp, true);
  seek(st.tp, offset);
}

void Consumer::Impl::seek(const TopicPartition& tp, std::int64_t offset) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), to_int(tp.partition))->offset = offset;
  // Asynchronous (timeout 0): the partition is paused or about to fetch anyway.
  detail::ErrorPtr e(rd_kafka_seek_partitions(rk.get(), list.get(), 0));
  if (e) {
    spdlog::error("kc: seek of {}[{}] to {} failed: {}", tp.topic, to_int(tp.partition), offset,
                  rd_kafka_error_string(e.get()));
  }
}

bool Consumer::Impl::seek_now(const TopicPartition& tp, std::int64_t offset) {
  detail::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), to_int(tp.partition))->offset = offset;
  // Synchronous: librdkafka refuses a seek (__STATE) until the partition's
  // fetcher has started, which an assignment does only once the group's
  // committed offsets are read; with timeout 0 that refusal is silent and
  // the partition would go on from the group's offset instead.
  detail::ErrorPtr e(rd_kafka_seek_partitions(rk.get(), list.get(), 2000));
  const auto err = e ? rd_kafka_error_code(e.get()) : list->elems[0].err;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    return true;
  }
  spdlog::debug("kc: seek of {}[{}] to {} not possible yet: {}", tp.topic, to_int(tp.partition), offset,
                rd_kafka_err2str(err));
  return false;
}

void Consumer::Impl::fail(PartitionState& st, const rd_kafka_message_t* m, int attempt, const detail::Failure& f) {
  const auto action = detail::route(config.retry, dlq != nullptr, f, attempt);
  if (eos && (action == detail::FailureAction::retry_topic || action == detail::FailureAction::dead_letter)) {
    eos_fail(st, m, attempt, f, action);
    return;
  }
  if (action == detail::FailureAction::retry_topic) {
    // Non-blocking: forward to the retry topic of this level; the record is
    // done once that copy is acknowledged, and the partition goes on.
    const auto delay = backoff.delay(config.retry, attempt + 1);
    const auto origin = detail::retry_origin(st.tp.topic, st.retry_topic, header_text(m, kHeaderRetryTopic));
    const auto topic = config.retry.retry_topic_for(origin, attempt);
    const auto due = detail::epoch_ms_now() + delay.count();
    dlq->write_retry(m, topic, attempt + 1, due, origin);
    ++stats.retried;
    ++st.metrics->retried;
    spdlog::info("kc: {}[{}] offset {}: {}: {}; to {} for attempt {} of {} in {} ms", st.tp.topic,
                 to_int(st.tp.partition), m->offset, f.type, f.message, topic, attempt + 1, config.retry.max_attempts,
                 delay.count());
    return;
  }
  if (action == detail::FailureAction::retry_in_place) {
    const auto delay = backoff.delay(config.retry, attempt + 1);
    wait_for(st, m->offset, attempt + 1, Clock::now() + delay);
    ++stats.retried;
    ++st.metrics->retried;
    spdlog::info("kc: {}[{}] offset {}: {}: {}; attempt {} of {} in {} ms", st.tp.topic, to_int(st.tp.partition),
                 m->offset, f.type, f.message, attempt + 1, config.retry.max_attempts, delay.count());
    return;
  }
  st.retry_offset = -1;
  if (action == detail::FailureAction::halt) {
    halt(st, m->offset, f.type + ": " + f.message);
    return;
  }
  // The record stays not-done (holding the commit point) until the broker
  // acknowledged its dead letter; later records go on meanwhile.
  dlq->write(m, {f.type, f.message, attempt});
  spdlog::info("kc: {}[{}] offset {}: {}: {}; to the dead-letter topic after {} attempt(s)", st.tp.topic,
               to_int(st.tp.partition), m->offset, f.type, f.message, attempt);
  constexpr std::size_t kMaxDeadLettersInFlight = 1000;  // per partition; each holds a copy of its record
  if (!st.dlq_paused && dlq->in_flight(st.tp) >= kMaxDeadLettersInFlight) {
    st.dlq_paused = true;
    if (parallel) {
      update_pause(st);
    } else {
      set_paused(st.tp, true);
    }
    spdlog::warn("kc: {}[{}] paused: {} dead letters are not acknowledged yet", st.tp.topic, to_int(st.tp.partition),
                 kMaxDeadLettersInFlight);
  }
}

void Consumer::Impl::resume_due_retries(Clock::time_point now) {
  if (waiting_partitions == 0) {
    return;
  }
  for (auto& [tp, st] : parts) {
    if (st->waiting && st->retry_due <= now) {
      st->waiting = false;
      --waiting_partitions;
      // Resumed only when nothing else holds it: a partition paused for too
      // many unacknowledged dead letters stays paused until they drain.
      if (!held(*st)) {
        set_paused(tp, false);
      }
      // librdkafka does not wake its fetcher on resume (it would notice only
      // at its next idle timeout, ~1 s); a seek does. Same offset as before.
      seek(tp, st->retry_offset);
      last_activity = now;  // the record is on its way again: not idle yet
    }
  }
}

int Consumer::Impl::poll_timeout_ms() const {
  // Block at most 100 ms (stop requests, commit timers), and not past the
  // next retry that falls due.
  std::int64_t ms = 100;
  if (parallel) {
    if (completions->size() > 0) {
      return 0;  // results to take in first
    }
    if (const auto due = dispatcher->next_due(); due && !draining) {
      ms = std::min<std::int64_t>(
          ms, std::max<std::int64_t>(
                  0, std::chrono::duration_cast<std::chrono::milliseconds>(*due - Clock::now()).count() + 1));
    }
  }
  if (waiting_partitions > 0) {
    const auto now = Clock::now();
    for (const auto& [tp, st] : parts) {
      if (st->waiting) {
        ms = std::min<std::int64_t>(
            ms, std::max<std::int64_t>(
                    0, std::chrono::duration_cast<std::chrono::milliseconds>(st->retry_due - now).count()));
      }
    }
  }
  return static_cast<int>(ms);
}

void Consumer::Impl::serve_dead_letters(std::chrono::milliseconds wait) {
  if (!dlq) {
    return;
  }
  dlq_acks.clear();
  dlq->poll(dlq_acks, wait);
  apply_dead_letter_acks();
  if (dlq->changes() != dlq_changes_seen) {
    dlq_changes_seen = dlq->changes();
    const auto missing = dlq->missing_topics();
    problems.clear_all(detail::ProblemKind::dead_letter_topic_missing);
    for (const auto& t : missing) {
      problems.raise(detail::ProblemKind::dead_letter_topic_missing, t,
                     "the topic does not exist (deleted?): dead letters for it wait, and the commit point of "
                     "their partitions stays before them",
                     Clock::now());
    }
  }
}

// Before the first record of a topic can fail, its dead-letter and retry
// topics must exist: a missing one would hold every commit point behind its
// first dead letter. Literal topics are checked by run() before it
// subscribes (an error stops it there); a regex's topics, and topics that
// did not exist yet, when they are first assigned.
void Consumer::Impl::ensure_targets(const std::vector<std::string>& sources) {
  std::vector<detail::TargetTopic> targets;
  std::vector<std::string> asked;
  for (const auto& t : sources) {
    if (t.starts_with('^') || retry_topics.contains(t) || checked_sources.contains(t) ||
        std::find(asked.begin(), asked.end(), t) != asked.end()) {
      continue;
    }
    asked.push_back(t);
    if (config.dead_letter.active()) {
      targets.push_back({config.dead_letter.topic_for(t), t, "dead-letter"});
    }
    for (int n = 1; config.retry.use_topics && n < config.retry.max_attempts; ++n) {
      targets.push_back({config.retry.retry_topic_for(t, n), t, "retry"});
    }
  }
  if (targets.empty()) {
    return;
  }
  std::vector<std::string> deferred;
  const auto found = detail::ensure_topics(bootstrap, config.librdkafka, targets, config.auto_create_topics,
                                           std::chrono::seconds(30), deferred);
  for (const auto& [name, n] : found) {
    dlq->known_partitions(name, n);
  }
  for (const auto& t : asked) {
    if (std::find(deferred.begin(), deferred.end(), t) == deferred.end()) {
      checked_sources.insert(t);
    }
  }
}

void Consumer::Impl::apply_dead_letter_acks() {
  for (const auto& ack : dlq_acks) {
    if (ack.forward_id >= 0) {
      forwards_acked.push_back(ack.forward_id);  // an outbox row sent (eos_relay())
      forwards_in_flight.erase(ack.forward_id);
      continue;
    }
    auto it = parts.find(ack.source);
    if (it == parts.end()) {
      continue;  // revoked meanwhile
    }
    auto& st = *it->second;
    if (st.dlq_hold == ack.offset) {
      // Exactly-once with a sink that cannot forward: the partition waited
      // for this acknowledgement; it goes on after the record.
      st.dlq_hold = -1;
      seek(st.tp, ack.offset + 1);
      if (!held(st)) {
        set_paused(st.tp, false);
        last_activity = Clock::now();
      }
    }
    if (st.offsets.done(ack.offset)) {
      stats.dead_lettered += ack.retry ? 0 : 1;
      st.metrics->dead_lettered += ack.retry ? 0 : 1;
      ++done_since_commit;
      st.metadata_dirty = true;
    }
    if (st.dlq_paused && dlq->in_flight(st.tp) == 0) {
      st.dlq_paused = false;
      if (parallel) {
        update_pause(st);
      } else if (!held(st)) {
        resume_fetching(st);
      }
    }
  }
}

void Consumer::Impl::drain_dead_letters(Clock::time_point deadline, const std::vector<TopicPartition>* only) {
  if (!dlq || dlq->in_flight() == 0) {
    return;
  }
  dlq_acks.clear();
  if (!dlq->drain(dlq_acks, deadline, only)) {
    spdlog::warn("kc: {} dead letters still unacknowledged: their records stay uncommitted", dlq->in_flight());
  }
  apply_dead_letter_acks();
}

Clock::time_point detail::share_of(Clock::time_point deadline, int num, int den) {
  const auto now = Clock::now();
  return deadline <= now ? now : now + (deadline - now) * num / den;
}

// ---------------------------------------------------------------- close

// A graceful close may take until `deadline`; past it, close() waits no
// more: a revoke that arrives is served at once without a commit or a wait
// (librdkafka's close cannot finish while a revoke is not served, and a
// handle destroyed then never finishes either, confluentinc/librdkafka: the
// group handler waits for the application's unassign), and after
// kCloseSlack more the handle goes without the close.
constexpr std::chrono::milliseconds kCloseSlack{1000};

void Consumer::Impl::close(Clock::time_point deadline) {
  if (closed || !rk) {
    return;
  }
  closed = true;
  stop_deadline = deadline;
  detail::QueuePtr q(rd_kafka_queue_new(rk.get()));
  detail::ErrorPtr e(rd_kafka_consumer_close_queue(rk.get(), q.get()));
  if (e) {
    spdlog::warn("kc: close: {}", rd_kafka_error_string(e.get()));
  }
  // Serve the revoke (which commits) and other events until closed.
  while (!rd_kafka_consumer_closed(rk.get())) {
    const auto now = Clock::now();
    if (now >= deadline && !hurry) {
      hurry = true;
      spdlog::warn("kc: the shutdown timeout has passed: leaving the group without waiting for anything more");
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline + kCloseSlack - now).count();
    if (left <= 0) {
      spdlog::warn("kc: close did not finish within the shutdown timeout (+{} ms); leaving without it",
                   kCloseSlack.count());
      q.reset();  // a queue goes before its handle
      release_handle(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
      return;
    }
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q.get(), static_cast<int>(std::min<std::int64_t>(left, 100)));
    if (ev == nullptr) {
      continue;
    }
    switch (rd_kafka_event_type(ev)) {
      case RD_KAFKA_EVENT_REBALANCE:
        try {
          on_rebalance(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
        } catch (const std::exception& ex) {
          spdlog::error("kc: rebalance during close: {}", ex.what());
        }
        break;
      case RD_KAFKA_EVENT_OFFSET_COMMIT:
        on_commit_result(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
        break;
      case RD_KAFKA_EVENT_ERROR:
        on_error(rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
        break;
      default:
        break;
    }
    rd_kafka_event_destroy(ev);
  }
}

// ---------------------------------------------------------------- public

namespace {
// The consumer that SIGINT/SIGTERM stop (see stop_on_signals).
std::atomic<Consumer*> g_signal_target{nullptr};
std::atomic<int> g_first_signal{0};  // the first stop signal's number (0: none yet)
std::atomic<std::int64_t> g_first_signal_at{0};  // and when it came (CLOCK_MONOTONIC, ns)
}  // namespace

Consumer::Consumer(ConsumerConfig config, Handler handler, ConsumerHooks hooks)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->handler = std::move(handler);
  impl_->hooks = std::move(hooks);
  impl_->build();
}

Consumer::~Consumer() {
  // A signal after this point must not reach a destroyed consumer.
  Consumer* self = this;
  g_signal_target.compare_exchange_strong(self, nullptr);
  if (impl_ && impl_->rk && !impl_->closed) {
    // Never ran, or run() threw: leave without committing anything new.
    impl_->release_parallel(Clock::now() + impl_->config.shutdown_timeout);
    impl_->release_handle(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
}

Consumer::Consumer(ConsumerConfig config, AsyncHandler handler, ConsumerHooks hooks)
    : impl_(std::make_unique<Impl>()) {
  if (!handler) {
    throw Error(errc::misuse, "Consumer: empty asynchronous handler");
  }
  impl_->config = std::move(config);
  impl_->async_handler = std::move(handler);
  impl_->hooks = std::move(hooks);
  impl_->build();
}

const std::string& Consumer::bootstrap_servers() const noexcept { return impl_->bootstrap; }

metrics::Registry& Consumer::metrics() noexcept { return impl_->metrics.registry(); }

std::uint16_t Consumer::metrics_port() const noexcept { return impl_->server ? impl_->server->port() : 0; }

void Consumer::stop() noexcept {
  int expected = 0;
  impl_->stop_requested.compare_exchange_strong(expected, 1);
}

void Consumer::stop_now() noexcept { impl_->stop_requested.store(2); }

RunResult Consumer::run() {
  auto& s = *impl_;
  rd_kafka_t* rk = s.rk.get();
  {
    std::vector<std::string> names = s.config.topics;
    if (s.config.retry.use_topics) {
      // Each level's retry topic joins the subscription (regex subscriptions
      // are left alone: the pattern decides).
      for (const auto& t : s.config.topics) {
        for (int n = 1; !t.starts_with('^') && n < s.config.retry.max_attempts; ++n) {
          s.retry_topics.insert(s.config.retry.retry_topic_for(t, n));
        }
      }
      names.insert(names.end(), s.retry_topics.begin(), s.retry_topics.end());
    }
    if (s.dlq) {
      s.ensure_targets(s.config.topics);  // throws kc::Error naming a topic that is missing for good
    }
    detail::PartitionListPtr topics(rd_kafka_topic_partition_list_new(static_cast<int>(names.size())));
    for (const auto& t : names) {
      rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (const auto err = rd_kafka_subscribe(rk, topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(errc::kafka, std::string("subscribe failed: ") + rd_kafka_err2str(err));
    }
  }

  RunResult result;
  if (s.eos) {
    // A sink call that waits when a stop comes gives up then (cleared below).
    s.eos->set_interrupt(&s.stop_requested);
  }
  // Records are taken in batches of what is already fetched (no wait), which
  // halves the per-record queue locking of one rd_kafka_consumer_poll per
  // record; when nothing is queued, rd_kafka_consumer_poll blocks for the
  // next one, so a quiet topic costs no latency. Both serve the consumer
  // queue, so rebalances, commit results, errors and logs still arrive here.
  detail::QueuePtr queue(rd_kafka_queue_get_consumer(rk));
  s.start_parallel();
  constexpr std::size_t kBatch = 512;
  std::array<rd_kafka_message_t*, kBatch> batch{};
  // One record at a time: a batch's handlers all run between two polls, and
  // librdkafka evicts a member that has not polled for max.poll.interval.ms
  // (its partitions are lost and the batch is redone by the next owner, over
  // and over with a slow handler). So a batch is cut by time: past
  // `batch_budget` the records not handled yet are given back (give_back())
  // and the next batch asks for about as many records as fitted.
  const auto batch_budget = std::min<Clock::duration>(std::chrono::seconds(1), s.max_poll_interval / 4);
  std::size_t batch_limit = kBatch;
  auto limit_reached = [&] {
    if (s.parallel) {
      // Nothing more starts past the limit (dispatch()); done when the rest finished.
      return s.draining && s.dispatcher->in_flight() == 0;
    }
    return s.config.max_messages != 0 && s.stats.done >= s.config.max_messages;
  };
  s.metrics.running(true);
  while (s.stop_requested.load(std::memory_order_relaxed) == 0) {
    s.metrics.polled();
    auto n = rd_kafka_consume_batch_queue(queue.get(), 0, batch.data(), batch_limit);
    if (n <= 0) {
      batch[0] = rd_kafka_consumer_poll(rk, s.poll_timeout_ms());
      n = batch[0] != nullptr ? 1 : 0;
    }
    const auto now = Clock::now();
    s.metrics.clock(now);
    s.record_clock = now;
    if (n > 0 && !s.problems.empty()) {
      s.connected(now);  // a record (or a broker's error about one) came: the connection works
    }
    std::size_t i = 0;
    for (; i < static_cast<std::size_t>(n); ++i) {
      if (!s.parallel && i > 0 && s.record_clock - now > batch_budget) {
        break;  // out of time: the rest is given back below
      }
      rd_kafka_message_t* m = batch[i];
      // Past a stop or the max-messages limit, records are left unprocessed
      // (and uncommitted): the next owner reads them.
      if (limit_reached() || s.draining || s.stop_requested.load(std::memory_order_relaxed) != 0) {
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        s.on_message_error(m);
      } else if (s.parallel) {
        if (auto* st = s.state_of(m); st != nullptr && s.offer(*st, m)) {
          s.last_activity = now;
          continue;  // kept until finished
        }
      } else {
        s.on_message(m);
        s.last_activity = now;
      }
      rd_kafka_message_destroy(m);
    }
    if (i < static_cast<std::size_t>(n)) {
      s.give_back(batch.data() + i, static_cast<std::size_t>(n) - i);
      batch_limit = std::max<std::size_t>(i, 1);
    } else if (batch_limit < kBatch && static_cast<std::size_t>(n) == batch_limit &&
               s.record_clock - now < batch_budget / 2) {
      batch_limit = std::min(kBatch, 2 * batch_limit);  // the handler is faster again
    }
    if (s.parallel) {
      s.drain_completions();
      s.dispatch(Clock::now());
      s.check_pressure_all();
    }
    s.serve_dead_letters(std::chrono::milliseconds(0));
    s.resume_due_retries(now);
    if (s.eos) {
      s.eos_recover(now);
    }
    s.maybe_commit(now);
    if (s.eos && s.dlq) {
      s.eos_relay(now);
    }
    if (now - s.gauges_at >= std::chrono::milliseconds(250)) {
      s.publish_gauges(now);
    }
    if (!s.problems.empty()) {
      s.problems.remind(now);
      if (auto why = s.problems.overdue(now, s.config.fatal_after)) {
        // Credentials, certificates or ACLs that stay wrong do not heal by
        // themselves: end with the cause named instead of retrying forever.
        s.fatal_error = *why;
        spdlog::critical("kc: {}; stopping", s.fatal_error);
        break;
      }
    }
    if (limit_reached()) {
      result.reason = StopReason::max_messages;
      break;
    }
    // Idle means nothing left to do: partitions are held, no record arrived
    // for idle_exit, and no retry or dead letter is still pending.
    const bool pending = s.parts.empty() || s.waiting_partitions > 0 || (s.dlq && s.dlq->in_flight() > 0) ||
                         (s.parallel && s.parallel_pending()) || s.eos_stalled ||
                         (s.eos && s.dlq && (s.outbox_maybe || !s.forwards_acked.empty()));
    if (s.config.idle_exit.count() > 0 && s.first_assigned && !pending && now - s.last_activity >= s.config.idle_exit) {
      result.reason = StopReason::idle;
      break;
    }
  }

  queue.reset();  // before the handle goes, in every path below
  s.metrics.stopping();

  const int stop = s.stop_requested.load();
  if (!s.fatal_error.empty()) {
    result.reason = StopReason::fatal;
    result.error = s.fatal_error;
    s.metrics.failed(s.fatal_error);
  } else if (stop == 1) {
    result.reason = StopReason::requested;
  }

  const auto end = Clock::now();
  if (stop == 2) {
    // At once: commit nothing new, do not wait for the group.
    s.release_handle(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  } else if (result.reason == StopReason::fatal) {
    // The handle is unusable; commits would fail. Leave without them.
    if (s.eos && s.txn_open) {
      s.eos->abort();
      s.txn_open = false;
    }
    s.stop_deadline = end + std::chrono::milliseconds(1000);
    s.hurry = true;
    if (s.eos) {
      s.eos->set_deadline(*s.stop_deadline);
    }
    s.close(*s.stop_deadline);
  } else {
    // Graceful, within shutdown.timeout_ms (`deadline`): records in flight,
    // then dead letters, then the commit, then leaving the group. Each step
    // gets a share of the time left, so one that cannot finish (a
    // dead-letter topic that is gone, a coordinator that does not answer)
    // never takes the commit's or the close's time; a revoke inside close()
    // keeps to the same deadline, and past it close() waits no more.
    const auto deadline = end + s.config.shutdown_timeout;
    s.stop_deadline = deadline;
    if (s.parallel) {
      // Records in flight get at most half the shutdown timeout (and no more
      // than a revoke would give them): the commit and the group leave need
      // the rest, or the group waits out our session for nothing.
      s.draining = true;
      s.shutdown_deadline = end + std::min<Clock::duration>(s.config.parallel.revoke_timeout,
                                                            s.config.shutdown_timeout / 2);
      std::vector<Impl::PartitionState*> all;
      for (auto& [tp, st] : s.parts) {
        all.push_back(st.get());
      }
      s.wait_in_flight(all, *s.shutdown_deadline);
    }
    s.drain_dead_letters(share_of(deadline, 1, 2));
    if (s.eos) {
      // The sink's own bounds (a busy timeout, commit_timeout) may be longer
      // than what is left: its calls end by then, the close gets the rest.
      s.eos->set_deadline(share_of(deadline, 2, 3));
      if (s.eos_commit()) {
        auto lag_deadline = share_of(deadline, 1, 2);
        s.eos_group_commit(&lag_deadline);
        s.eos_flush_outbox(share_of(deadline, 1, 2));
      }
    } else {
      s.commit_sync(nullptr, share_of(deadline, 2, 3), true);
    }
    s.close(deadline);
  }
  if (s.rk) {
    // Closed (or never closed: a handle left over by an error path).
    s.release_handle(s.closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
  result.left_behind = s.left_behind;
  if (s.eos) {
    s.eos->set_interrupt(nullptr);
  }
  for (auto& [tp, st] : s.parts) {
    if (st->acked >= 0) {
      s.stats.committed[tp] = Offset{st->acked};
    }
  }
  if (s.first_assigned) {
    // Up to the last record handled: a run that ends by idling does not
    // count its idle tail.
    s.stats.busy = (s.stats.consumed > 0 ? s.last_activity : end) - *s.first_assigned;
  }
  result.stats = s.stats;
  s.publish_gauges(Clock::now());
  s.metrics.running(false);
  return result;
}

// ---------------------------------------------------------------- signals

namespace {

// A repeat of the first signal within this long is the same request
// delivered twice, not a second one: a process manager that signals both a
// process and its process group (GNU timeout does) sends two SIGTERMs
// microseconds apart, and taking the second as "exit at once" lost the
// final commit.
constexpr std::int64_t kRepeatWindowNs = 1'000'000'000;

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

extern "C" void on_stop_signal(int sig) {
  const auto now = monotonic_ns();
  int none = 0;
  if (g_first_signal.compare_exchange_strong(none, sig)) {
    g_first_signal_at.store(now);
    if (auto* c = g_signal_target.load()) {
      c->stop();
    }
    return;
  }
  if (sig == g_first_signal.load() && now - g_first_signal_at.load() < kRepeatWindowNs) {
    return;
  }
  _exit(130);  // a second signal: out at once, nothing more is committed
}
}  // namespace

void stop_on_signals(Consumer& consumer) noexcept {
  g_signal_target.store(&consumer);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace kc
