#include "kc/error.hpp"

namespace kc {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "kc"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::config_unknown_key: return "unknown configuration key";
      case errc::config_invalid_value: return "invalid configuration value";
      case errc::config_missing: return "missing configuration";
      case errc::config_forbidden: return "configuration not allowed";
      case errc::kafka: return "kafka error";
      case errc::kafka_fatal: return "fatal kafka error";
      case errc::io: return "i/o error";
      case errc::misuse: return "misuse";
      case errc::schema_invalid: return "invalid schema";
      case errc::encode_failed: return "encode failed";
      case errc::registry_not_found: return "not found in the schema registry";
      case errc::registry_unavailable: return "schema registry unavailable";
      case errc::registry_rejected: return "schema registry rejected the request";
      case errc::queue_full: return "producer queue full";
    }
    return "unknown kc error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace kc
