#include <map>
#include <string>

#include "commands.hpp"
#include "kc/config.hpp"
#include "kc/error.hpp"

extern char** environ;

namespace kc::tool {

ClientSettings client_settings(const std::optional<std::string>& bootstrap, const std::vector<std::string>& rdkafka,
                               const std::optional<std::string>& config_file, std::string_view needs) {
  ConsumerConfig cfg;
  if (config_file) {
    cfg.load_file(*config_file);
  }
  cfg.load_env(environ);
  if (bootstrap) {
    cfg.set("bootstrap_servers", *bootstrap, "flag --bootstrap-servers");
  }
  for (const auto& kv : rdkafka) {
    const auto [k, v] = split_property(kv);
    cfg.set("librdkafka." + k, v, "flag -X");
  }
  if (cfg.bootstrap_servers.empty()) {
    throw Error(errc::config_missing,
                "bootstrap_servers: " + std::string(needs) + " (-b/--bootstrap-servers or KC_BOOTSTRAP_SERVERS)");
  }
  return {cfg.bootstrap_servers, cfg.librdkafka};
}

}  // namespace kc::tool
