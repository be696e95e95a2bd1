// `kc lag`: committed offsets, end offsets, lag and owners of a group.
//
// Everything comes from the Admin API on one short-lived client that joins
// no group: ListConsumerGroupOffsets (what the group committed),
// DescribeConsumerGroups (state and members with their assignments; librdkafka
// 2.10+ answers it for KIP-848 "consumer" groups with ConsumerGroupDescribe
// and for classic groups with DescribeGroups) and ListOffsets (the high
// watermarks). Partitions come from the metadata, so a partition the group
// never committed shows "-" rather than going missing.
//
// The ends are high watermarks, not last stable offsets: ListOffsets takes
// its isolation level from the request, and lag is about what has been
// written (read_uncommitted), as kafka-consumer-groups.sh reports it.
#include "lag.hpp"

#include <librdkafka/rdkafka.h>

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "json_out.hpp"
#include "kc/config.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"
#include "rdkafka/handles.hpp"
#include "rdkafka/log.hpp"

extern char** environ;

namespace kc::tool {

namespace {

using detail::conf_set;
using detail::ConfPtr;
using detail::HandlePtr;
using detail::MetadataPtr;
using detail::PartitionListPtr;
using detail::QueuePtr;
using Clock = std::chrono::steady_clock;

struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const noexcept { rd_kafka_event_destroy(e); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const noexcept { rd_kafka_AdminOptions_destroy(o); }
};
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;

// Milliseconds left until `deadline`, at least 1.
int left_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 1, 24 * 3600 * 1000));
}

AdminOptionsPtr admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op, Clock::time_point deadline) {
  AdminOptionsPtr opts(rd_kafka_AdminOptions_new(rk, op));
  char err[512];
  if (rd_kafka_AdminOptions_set_request_timeout(opts.get(), left_ms(deadline), err, sizeof err) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka, std::string("admin request timeout: ") + err);
  }
  return opts;
}

// The result of an admin request on `q`; throws kc::Error on a request-level
// error or when nothing came by the deadline (plus a little slack: the
// request timeout itself produces an error event at the deadline).
EventPtr admin_result(rd_kafka_queue_t* q, Clock::time_point deadline, const std::string& what,
                      std::uint64_t timeout_ms) {
  EventPtr ev(rd_kafka_queue_poll(q, left_ms(deadline) + 1000));
  if (!ev) {
    throw Error(errc::kafka, fmt::format("{}: no answer from the brokers within {} ms", what, timeout_ms), false, true);
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(errc::kafka, fmt::format("{}: {}", what, rd_kafka_event_error_string(ev.get())), false, true);
  }
  return ev;
}

struct Owner {
  std::string member_id;
  std::string client_id;
  std::string host;
};

struct Row {
  std::string topic;
  std::int32_t partition = 0;
  std::optional<std::int64_t> committed;
  std::optional<std::int64_t> end;
  std::optional<Owner> owner;

  std::optional<std::int64_t> lag() const {
    if (committed && end) {
      return *end - *committed;
    }
    return std::nullopt;
  }
};

struct GroupInfo {
  bool found = true;
  std::string state = "Unknown";
  std::string type = "Unknown";
  std::size_t members = 0;
  std::map<std::pair<std::string, std::int32_t>, Owner> owners;
};

// Partition counts of every topic in the cluster. Retries until the deadline
// (the first request can come before any broker connection is up).
std::map<std::string, int> topic_partitions(rd_kafka_t* rk, Clock::time_point deadline, const std::string& brokers,
                                            std::uint64_t timeout_ms) {
  for (;;) {
    const rd_kafka_metadata_t* raw = nullptr;
    const auto err = rd_kafka_metadata(rk, 1, nullptr, &raw, left_ms(deadline));
    MetadataPtr md(raw);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::map<std::string, int> out;
      for (int i = 0; i < md->topic_cnt; ++i) {
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          out[md->topics[i].topic] = md->topics[i].partition_cnt;
        }
      }
      return out;
    }
    if (Clock::now() >= deadline) {
      throw Error(errc::kafka,
                  fmt::format("cannot get metadata from the brokers at {} within {} ms: {}", brokers, timeout_ms,
                              rd_kafka_err2str(err)),
                  false, true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// State, type and the owner of each assigned partition.
GroupInfo describe_group(rd_kafka_t* rk, const std::string& group, Clock::time_point deadline,
                         std::uint64_t timeout_ms) {
  auto opts = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, deadline);
  QueuePtr q(rd_kafka_queue_new(rk));
  const char* groups[] = {group.c_str()};
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, opts.get(), q.get());
  const auto what = fmt::format("describing group '{}'", group);
  auto ev = admin_result(q.get(), deadline, what, timeout_ms);
  std::size_t cnt = 0;
  const auto** descs =
      rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &cnt);
  if (cnt != 1) {
    throw Error(errc::kafka, fmt::format("{}: expected one group in the answer, got {}", what, cnt));
  }
  const auto* d = descs[0];
  GroupInfo info;
  if (const auto* e = rd_kafka_ConsumerGroupDescription_error(d); e != nullptr) {
    if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
      info.found = false;
      info.state = "Dead";
      return info;
    }
    throw Error(errc::kafka, fmt::format("{}: {}", what, rd_kafka_error_string(e)), false, true);
  }
  const auto state = rd_kafka_ConsumerGroupDescription_state(d);
  info.found = state != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
  info.state = rd_kafka_consumer_group_state_name(state);
  info.type = rd_kafka_consumer_group_type_name(rd_kafka_ConsumerGroupDescription_type(d));
  info.members = rd_kafka_ConsumerGroupDescription_member_count(d);
  for (std::size_t i = 0; i < info.members; ++i) {
    const auto* m = rd_kafka_ConsumerGroupDescription_member(d, i);
    const auto str = [](const char* s) { return s != nullptr ? s : ""; };
    Owner owner{str(rd_kafka_MemberDescription_consumer_id(m)), str(rd_kafka_MemberDescription_client_id(m)),
                str(rd_kafka_MemberDescription_host(m))};
    const auto* a = rd_kafka_MemberDescription_assignment(m);
    const auto* parts = a != nullptr ? rd_kafka_MemberAssignment_partitions(a) : nullptr;
    for (int j = 0; parts != nullptr && j < parts->cnt; ++j) {
      info.owners[{parts->elems[j].topic, parts->elems[j].partition}] = owner;
    }
  }
  return info;
}

// The group's committed offsets: of `partitions`, or of every partition it
// committed when `partitions` is null. Partitions without a commit are left out.
std::map<std::pair<std::string, std::int32_t>, std::int64_t> committed_offsets(
    rd_kafka_t* rk, const std::string& group, const rd_kafka_topic_partition_list_t* partitions,
    Clock::time_point deadline, std::uint64_t timeout_ms) {
  auto opts = admin_options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, deadline);
  QueuePtr q(rd_kafka_queue_new(rk));
  rd_kafka_ListConsumerGroupOffsets_t* req = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), partitions);
  rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, opts.get(), q.get());
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  const auto what = fmt::format("committed offsets of group '{}'", group);
  auto ev = admin_result(q.get(), deadline, what, timeout_ms);
  std::size_t cnt = 0;
  const auto** groups =
      rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &cnt);
  if (cnt != 1) {
    throw Error(errc::kafka, fmt::format("{}: expected one group in the answer, got {}", what, cnt));
  }
  if (const auto* e = rd_kafka_group_result_error(groups[0]); e != nullptr) {
    throw Error(errc::kafka, fmt::format("{}: {}", what, rd_kafka_error_string(e)), false, true);
  }
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> out;
  const auto* got = rd_kafka_group_result_partitions(groups[0]);
  for (int i = 0; got != nullptr && i < got->cnt; ++i) {
    const auto& el = got->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(errc::kafka, fmt::format("{}: {}[{}]: {}", what, el.topic, el.partition, rd_kafka_err2str(el.err)),
                  false, true);
    }
    if (el.offset >= 0) {
      out[{el.topic, el.partition}] = el.offset;
    }
  }
  return out;
}

// High watermarks of `rows` (read_uncommitted), filled into row.end.
void fill_end_offsets(rd_kafka_t* rk, std::vector<Row>& rows, Clock::time_point deadline, std::uint64_t timeout_ms) {
  if (rows.empty()) {
    return;
  }
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(rows.size())));
  for (const auto& r : rows) {
    rd_kafka_topic_partition_list_add(list.get(), r.topic.c_str(), r.partition)->offset = RD_KAFKA_OFFSET_SPEC_LATEST;
  }
  auto opts = admin_options(rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS, deadline);
  detail::ErrorPtr iso(
      rd_kafka_AdminOptions_set_isolation_level(opts.get(), RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED));
  if (iso) {
    throw Error(errc::kafka, std::string("ListOffsets isolation level: ") + rd_kafka_error_string(iso.get()));
  }
  QueuePtr q(rd_kafka_queue_new(rk));
  rd_kafka_ListOffsets(rk, list.get(), opts.get(), q.get());
  auto ev = admin_result(q.get(), deadline, "end offsets", timeout_ms);
  std::size_t cnt = 0;
  const auto** infos = rd_kafka_ListOffsets_result_infos(rd_kafka_event_ListOffsets_result(ev.get()), &cnt);
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;
  for (std::size_t i = 0; i < cnt; ++i) {
    const auto* tp = rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
    if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(errc::kafka,
                  fmt::format("end offset of {}[{}]: {}", tp->topic, tp->partition, rd_kafka_err2str(tp->err)), false,
                  true);
    }
    ends[{tp->topic, tp->partition}] = tp->offset;
  }
  for (auto& r : rows) {
    if (const auto it = ends.find({r.topic, r.partition}); it != ends.end()) {
      r.end = it->second;
    }
  }
}

std::string or_dash(const std::optional<std::int64_t>& v) {
  return v ? std::to_string(*v) : "-";
}

void print_json(const std::string& group, const GroupInfo& info, const std::vector<Row>& rows, std::int64_t total) {
  JsonArray partitions;
  for (const auto& r : rows) {
    JsonObject row;
    row.str("topic", r.topic).num("partition", r.partition).num("committed", r.committed).num("end", r.end);
    row.num("lag", r.lag());
    if (r.owner) {
      row.raw("owner", JsonObject()
                           .str("member_id", r.owner->member_id)
                           .str("client_id", r.owner->client_id)
                           .str("host", r.owner->host)
                           .done());
    } else {
      row.raw("owner", "null");
    }
    partitions.raw(row.done());
  }
  const auto out = JsonObject()
                       .str("group", group)
                       .str("state", info.state)
                       .str("type", info.type)
                       .raw("partitions", partitions.done())
                       .num("total_lag", total)
                       .done() +
                   "\n";
  std::fputs(out.c_str(), stdout);
}

void print_table(const std::string& group, const GroupInfo& info, const std::vector<Row>& rows, std::int64_t total) {
  std::vector<std::vector<std::string>> cells{
      {"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "OWNER (CLIENT-ID / MEMBER-ID)"}};
  for (const auto& r : rows) {
    cells.push_back({r.topic, std::to_string(r.partition), or_dash(r.committed), or_dash(r.end), or_dash(r.lag()),
                     r.owner ? r.owner->client_id + " / " + r.owner->member_id : "-"});
  }
  std::vector<std::size_t> width(cells[0].size(), 0);
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) {
      width[c] = std::max(width[c], line[c].size());
    }
  }
  std::string out;
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) {
      // Text columns left-aligned, numbers right-aligned, the last one unpadded.
      const bool number = c >= 1 && c <= 4;
      if (c + 1 == line.size()) {
        out += line[c];
      } else if (number) {
        out += fmt::format("{:>{}}  ", line[c], width[c]);
      } else {
        out += fmt::format("{:<{}}  ", line[c], width[c]);
      }
    }
    out += '\n';
  }
  out += fmt::format("total lag: {}\n", total);
  // librdkafka 2.14 has no names for KIP-848's transitional states
  // (Assigning, Reconciling): it reports them as Unknown.
  const bool transitional = info.state == "Unknown" && info.type == "Consumer";
  out += fmt::format("group {}: state {}{}, type {}, {} member{}\n", group, info.state,
                     transitional ? " (a rebalance in progress)" : "", info.type, info.members,
                     info.members == 1 ? "" : "s");
  std::fputs(out.c_str(), stdout);
}

}  // namespace

void add_lag_command(CLI::App& app, LagOptions& o) {
  auto* cmd = app.add_subcommand(
      "lag", "per-partition committed offset, end offset, lag and owner of a consumer group (joins nothing)");
  cmd->add_option("-g,--group", o.group, "the consumer group")->required();
  cmd->add_option("-t,--topic", o.topics,
                  "only this topic (repeatable; default: every topic the group committed or owns)");
  cmd->add_option("-b,--bootstrap-servers", o.bootstrap_servers, "brokers (or KC_BOOTSTRAP_SERVERS)");
  cmd->add_flag("--json", o.json, "one JSON object instead of the table");
  cmd->add_option("--timeout-ms", o.timeout_ms, "give up after N ms (default 10000)");
  cmd->add_option("-X", o.rdkafka, "librdkafka property key=value (repeatable)");
  cmd->add_option("--config", o.config_file, "TOML configuration file (brokers and [librdkafka] only)");
  cmd->footer(
      "END is the high watermark (read_uncommitted); LAG = END - COMMITTED where the group committed.\n"
      "A partition without a commit shows '-'. OWNER is the member the partition is assigned to now.\n"
      "Exit 1 when the group does not exist, a --topic is unknown or the brokers do not answer in time.");
}

int run_lag(const LagOptions& o) {
  const auto [brokers, librdkafka] =
      client_settings(o.bootstrap_servers, o.rdkafka, o.config_file, "kc lag needs the brokers of the group");
  const auto timeout_ms = std::max<std::uint64_t>(o.timeout_ms, 100);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);

  ConfPtr conf(rd_kafka_conf_new());
  conf_set(conf.get(), "bootstrap.servers", brokers);
  for (const auto& [k, v] : librdkafka) {
    conf_set(conf.get(), k, v);
  }
  // The end offsets are high watermarks whatever the client's default says.
  conf_set(conf.get(), "isolation.level", "read_uncommitted");
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  // A consumer handle that never subscribes, assigns or commits: it only
  // carries the admin requests (no group.id needed for them).
  const HandlePtr rk = detail::make_handle(RD_KAFKA_CONSUMER, std::move(conf));

  const auto topics = topic_partitions(rk.get(), deadline, brokers, timeout_ms);
  for (const auto& t : o.topics) {
    if (!topics.contains(t)) {
      log::printf(LogLevel::error, "kc: error: topic '%s' does not exist\n", t.c_str());
      return 1;
    }
  }
  const auto info = describe_group(rk.get(), o.group, deadline, timeout_ms);

  std::map<std::pair<std::string, std::int32_t>, std::int64_t> committed;
  if (o.topics.empty()) {
    committed = committed_offsets(rk.get(), o.group, nullptr, deadline, timeout_ms);
  } else {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(0));
    for (const auto& t : std::set<std::string>(o.topics.begin(), o.topics.end())) {
      for (int p = 0; p < topics.at(t); ++p) {
        rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p);
      }
    }
    committed = committed_offsets(rk.get(), o.group, list.get(), deadline, timeout_ms);
  }
  if (!info.found && committed.empty()) {
    log::printf(LogLevel::error, "kc: error: group '%s' does not exist (no members and no committed offsets)\n",
                o.group.c_str());
    return 1;
  }

  // The topics to show: those asked for, else every topic the group
  // committed in or has assigned; all of their partitions.
  std::set<std::string> shown(o.topics.begin(), o.topics.end());
  if (o.topics.empty()) {
    for (const auto& [tp, off] : committed) {
      shown.insert(tp.first);
    }
    for (const auto& [tp, owner] : info.owners) {
      shown.insert(tp.first);
    }
  }
  std::set<std::pair<std::string, std::int32_t>> partitions;
  for (const auto& t : shown) {
    if (const auto it = topics.find(t); it != topics.end()) {
      for (int p = 0; p < it->second; ++p) {
        partitions.insert({t, p});
      }
    }
  }
  // A committed partition the metadata does not show (a deleted topic)
  // still gets its row, without an end.
  for (const auto& [tp, off] : committed) {
    if (shown.contains(tp.first)) {
      partitions.insert(tp);
    }
  }

  std::vector<Row> rows;
  for (const auto& tp : partitions) {  // a std::set: sorted by topic, then partition
    Row r{tp.first, tp.second, std::nullopt, std::nullopt, std::nullopt};
    if (const auto it = committed.find(tp); it != committed.end()) {
      r.committed = it->second;
    }
    if (const auto it = info.owners.find(tp); it != info.owners.end()) {
      r.owner = it->second;
    }
    rows.push_back(std::move(r));
  }
  std::vector<Row> known;
  std::vector<Row> unknown;
  for (auto& r : rows) {
    (topics.contains(r.topic) ? known : unknown).push_back(std::move(r));
  }
  fill_end_offsets(rk.get(), known, deadline, timeout_ms);
  rows = std::move(known);
  rows.insert(rows.end(), std::make_move_iterator(unknown.begin()), std::make_move_iterator(unknown.end()));
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition); });

  std::int64_t total = 0;
  for (const auto& r : rows) {
    total += r.lag().value_or(0);
  }
  if (o.json) {
    print_json(o.group, info, rows, total);
  } else {
    print_table(o.group, info, rows, total);
  }
  return 0;
}

}  // namespace kc::tool
