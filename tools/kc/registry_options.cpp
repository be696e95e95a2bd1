#include "registry_options.hpp"

namespace kc::tool {

void add_registry_options(CLI::App* app, RegistryOptions& o) {
  app->add_option("--schema-registry", o.url, "Schema Registry URL (env KC_SCHEMA_REGISTRY_URL)");
  app->add_option("--schema-registry-auth", o.auth,
                  "USER:PASSWORD for the registry (better: env KC_SCHEMA_REGISTRY_BASIC_AUTH, not in ps)");
  app->add_option("--schema-registry-token", o.token,
                  "bearer token for the registry (better: env KC_SCHEMA_REGISTRY_BEARER_TOKEN)");
  app->add_option("--schema-registry-ca", o.ca_file, "PEM CA bundle to verify the registry's certificate");
  app->add_option("--schema-registry-cert", o.cert_file, "client certificate (PEM) for mutual TLS");
  app->add_option("--schema-registry-key", o.key_file,
                  "client key (PEM); its password from env KC_SCHEMA_REGISTRY_KEY_PASSWORD");
}

void apply_registry_options(const RegistryOptions& o, ConsumerConfig& cfg) {
  const auto set = [&cfg](const std::optional<std::string>& v, const char* key, const char* flag) {
    if (v) {
      cfg.set(key, *v, flag);
    }
  };
  set(o.url, "schema_registry.url", "flag --schema-registry");
  set(o.auth, "schema_registry.basic_auth", "flag --schema-registry-auth");
  set(o.token, "schema_registry.bearer_token", "flag --schema-registry-token");
  set(o.ca_file, "schema_registry.ca_file", "flag --schema-registry-ca");
  set(o.cert_file, "schema_registry.cert_file", "flag --schema-registry-cert");
  set(o.key_file, "schema_registry.key_file", "flag --schema-registry-key");
}

}  // namespace kc::tool
