#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "kc/embedded.hpp"
#include "kc/log.hpp"

namespace kc::tool {

void add_broker_command(CLI::App& app, BrokerOptions& o) {
  auto* c = app.add_subcommand("broker", "run an embedded (librdkafka mock) broker until SIGINT/SIGTERM");
  c->add_option("--topic", o.topics, "create topic NAME or NAME:PARTITIONS (repeatable)");
  c->add_option("--brokers", o.brokers, "number of mock brokers (default 1)");
}

int run_broker(const BrokerOptions& o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Block before librdkafka starts threads so the signal comes to sigwait.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  EmbeddedBroker broker(o.brokers);
  for (const auto& t : o.topics) {
    const auto colon = t.rfind(':');
    const int parts = colon == std::string::npos ? 1 : std::stoi(t.substr(colon + 1));
    broker.create_topic(t.substr(0, colon), parts);
  }
  std::printf("%s\n", broker.bootstrap_servers().c_str());
  std::fflush(stdout);
  log::printf(LogLevel::info,
              "kc broker: embedded mock broker at %s (librdkafka mock cluster; not for production data)\n",
              broker.bootstrap_servers().c_str());
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}

}  // namespace kc::tool
