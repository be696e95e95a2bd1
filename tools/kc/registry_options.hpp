// Schema Registry flags shared by kc consume and kc produce.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "kc/config.hpp"

namespace kc::tool {

struct RegistryOptions {
  std::optional<std::string> url;
  std::optional<std::string> auth;   // user:password
  std::optional<std::string> token;  // bearer
  std::optional<std::string> ca_file;
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
};

/// Adds --schema-registry, --schema-registry-auth, --schema-registry-token,
/// --schema-registry-ca, --schema-registry-cert and --schema-registry-key.
void add_registry_options(CLI::App* app, RegistryOptions& o);

/// Applies the flags over `cfg` (which already holds file and env values),
/// through ConsumerConfig::set so errors name the flag.
void apply_registry_options(const RegistryOptions& o, ConsumerConfig& cfg);

}  // namespace kc::tool
