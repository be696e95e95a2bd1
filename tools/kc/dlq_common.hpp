// What `kc dlq inspect` (dlq_inspect.cpp) and `kc dlq redrive`
// (dlq_redrive.cpp) share; defined in dlq.cpp.
#pragma once

#include <librdkafka/rdkafka.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "deadletter/reader.hpp"
#include "dlq.hpp"
#include "rdkafka/handles.hpp"

namespace kc::tool {

/// What both subcommands need the brokers for (client_settings()'s `needs`).
inline constexpr const char* kDlqNeedsBrokers = "kc dlq needs the brokers that hold the dead-letter topic";

/// detail::make_handle with librdkafka's log going to spdlog. Throws kc::Error.
detail::HandlePtr make_logged_handle(rd_kafka_type_t type, detail::ConfPtr conf);

/// Partition count of a topic; nullopt when it does not exist. Retries
/// transport errors for up to `timeout` (each request waits at least 1 s),
/// then throws kc::Error (retriable). Blocks; the thread that uses `rk`.
std::optional<int> partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout);

/// The filter --error-type: the error type contains `want` (an exact name
/// matches too); everything matches without `want`.
bool error_type_matches(const detail::DeadLetter& dl, const std::optional<std::string>& want);

/// Add `inspect` and `redrive` to the `dlq` command; the parsed flags land
/// in `o`, which must outlive the parse and the run. Return the subcommand.
CLI::App* add_dlq_inspect_command(CLI::App& dlq, DlqInspectOptions& o);
CLI::App* add_dlq_redrive_command(CLI::App& dlq, DlqRedriveOptions& o);

}  // namespace kc::tool
