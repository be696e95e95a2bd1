// kc: the command-line tool. A thin layer over the library: it parses flags,
// builds a kc::ConsumerConfig / kc::Producer and prints summaries.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "dlq.hpp"
#include "lag.hpp"
#include "kc/error.hpp"

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("kc");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"kc: a Kafka consumer framework on librdkafka"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->check(
      CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

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
  } catch (const kc::Error& e) {
    const bool config = e.code().value() <= static_cast<int>(kc::errc::config_forbidden);
    std::fprintf(stderr, "kc: %s%s\n", config ? "configuration error: " : "error: ", e.what());
    return config ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kc: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
