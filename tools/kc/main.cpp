// kc: the command-line tool. A thin layer over the library: it parses flags,
// builds a kc::ConsumerConfig / kc::Producer and prints summaries.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "config_check.hpp"
#include "dlq.hpp"
#include "lag.hpp"
#include "top.hpp"
#include "kc/error.hpp"
#include "kc/log.hpp"

int main(int argc, char** argv) {
  kc::log::install(kc::LogLevel::info, kc::LogFormat::text);  // until the flags are parsed

  CLI::App app{"kc: a Kafka consumer framework on librdkafka"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->envname("KC_LOG_LEVEL");
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text (default) or json: one JSON object per stderr line (ts, level, logger, msg, thread)")
      ->check(CLI::IsMember({"text", "json"}))
      ->envname("KC_LOG_FORMAT");

  kc::tool::ConsumeOptions consume;
  kc::tool::add_consume_command(app, consume);
  kc::tool::ProduceOptions produce;
  kc::tool::add_produce_command(app, produce);
  kc::tool::BrokerOptions broker;
  kc::tool::add_broker_command(app, broker);
  kc::tool::DlqOptions dlq;
  kc::tool::add_dlq_command(app, dlq);
  kc::tool::LagOptions lag;
  kc::tool::add_lag_command(app, lag);
  kc::tool::TopOptions top;
  kc::tool::add_top_command(app, top);
  kc::tool::ConfigCheckOptions config_check;
  kc::tool::add_config_command(app, config_check);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  kc::log::install(kc::log::parse_level(log_level, "--log-level"), kc::log::parse_format(log_format, "--log-format"));

  try {
    if (app.got_subcommand("consume")) {
      return kc::tool::run_consume(consume);
    }
    if (app.got_subcommand("produce")) {
      return kc::tool::run_produce(produce);
    }
    if (app.got_subcommand("broker")) {
      return kc::tool::run_broker(broker);
    }
    if (app.got_subcommand("dlq")) {
      return kc::tool::run_dlq(dlq);
    }
    if (app.got_subcommand("lag")) {
      return kc::tool::run_lag(lag);
    }
    if (app.got_subcommand("top")) {
      return kc::tool::run_top(top);
    }
    if (app.got_subcommand("config")) {
      return kc::tool::run_config_check(config_check);
    }
  } catch (const kc::Error& e) {
    const bool config = e.code().value() <= static_cast<int>(kc::errc::config_forbidden);
    // kc::log::print masks secrets and follows --log-format.
    kc::log::print(kc::LogLevel::error,
                   std::string("kc: ") + (config ? "configuration error: " : "error: ") + e.what());
    return config ? 2 : 1;
  } catch (const std::exception& e) {
    kc::log::print(kc::LogLevel::error, std::string("kc: error: ") + e.what());
    return 1;
  }
  return 0;
}
