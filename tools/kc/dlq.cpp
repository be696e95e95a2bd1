// `kc dlq`: the command and what its subcommands share. `kc dlq inspect` is
// in dlq_inspect.cpp, `kc dlq redrive` in dlq_redrive.cpp; both read dead
// letters with detail::read_dead_letter (src/deadletter/reader.hpp).
#include "dlq.hpp"

#include <algorithm>
#include <thread>
#include <utility>

#include "dlq_common.hpp"
#include "kc/error.hpp"
#include "rdkafka/log.hpp"
#include "rdkafka/metadata.hpp"

namespace kc::tool {

detail::HandlePtr make_logged_handle(rd_kafka_type_t type, detail::ConfPtr conf) {
  rd_kafka_conf_set_log_cb(conf.get(), detail::log_to_spdlog);
  return detail::make_handle(type, std::move(conf));
}

std::optional<int> partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto n = detail::topic_partition_count(rk, topic, std::max(left, std::chrono::milliseconds(1000)));
    if (n.partitions || n.missing) {
      return n.partitions;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(errc::kafka, "metadata of topic '" + topic + "': " + rd_kafka_err2str(n.err), false, true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

bool error_type_matches(const detail::DeadLetter& dl, const std::optional<std::string>& want) {
  return !want || (dl.error_type && dl.error_type->find(*want) != std::string::npos);
}

void add_dlq_command(CLI::App& app, DlqOptions& o) {
  auto* dlq = app.add_subcommand("dlq", "inspect or redrive a dead-letter topic");
  dlq->require_subcommand(1);
  o.inspect_command = add_dlq_inspect_command(*dlq, o.inspect);
  o.redrive_command = add_dlq_redrive_command(*dlq, o.redrive);
}

int run_dlq(const DlqOptions& o) {
  if (o.inspect_command != nullptr && o.inspect_command->parsed()) {
    return run_dlq_inspect(o.inspect);
  }
  if (o.redrive_command != nullptr && o.redrive_command->parsed()) {
    return run_dlq_redrive(o.redrive);
  }
  throw Error(errc::misuse, "kc dlq: expected a subcommand (inspect or redrive)");
}

}  // namespace kc::tool
