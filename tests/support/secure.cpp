#include "support/secure.hpp"

#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "support/rdkafka_handles.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using namespace kc::test::rdk;  // RkPtr, ..., make_client

constexpr const char* kHowToStart =
    "Start a secured broker with\n"
    "  export KC_TEST_SECURE_STATE=/tmp/kc-secure.state\n"
    "  KC_KAFKA_SECURE=1 KC_KAFKA_STATE=$KC_TEST_SECURE_STATE scripts/kafka start\n"
    "and stop it afterwards with `KC_KAFKA_STATE=$KC_TEST_SECURE_STATE scripts/kafka stop` (or run `make test`, "
    "which does both).";

struct AclDeleter {
  void operator()(rd_kafka_AclBinding_t* a) const noexcept { rd_kafka_AclBinding_destroy(a); }
};
using AclPtr = std::unique_ptr<rd_kafka_AclBinding_t, AclDeleter>;

rd_kafka_ResourceType_t to_rdk(AclResource r) {
  switch (r) {
    case AclResource::topic: return RD_KAFKA_RESOURCE_TOPIC;
    case AclResource::group: return RD_KAFKA_RESOURCE_GROUP;
    case AclResource::transactional_id: return RD_KAFKA_RESOURCE_TRANSACTIONAL_ID;
  }
  return RD_KAFKA_RESOURCE_UNKNOWN;
}

rd_kafka_ResourcePatternType_t to_rdk(AclPattern p) {
  return p == AclPattern::prefixed ? RD_KAFKA_RESOURCE_PATTERN_PREFIXED : RD_KAFKA_RESOURCE_PATTERN_LITERAL;
}

rd_kafka_AclOperation_t to_rdk(AclOperation o) {
  switch (o) {
    case AclOperation::all: return RD_KAFKA_ACL_OPERATION_ALL;
    case AclOperation::read: return RD_KAFKA_ACL_OPERATION_READ;
    case AclOperation::write: return RD_KAFKA_ACL_OPERATION_WRITE;
    case AclOperation::create: return RD_KAFKA_ACL_OPERATION_CREATE;
    case AclOperation::delete_: return RD_KAFKA_ACL_OPERATION_DELETE;
    case AclOperation::alter: return RD_KAFKA_ACL_OPERATION_ALTER;
    case AclOperation::describe: return RD_KAFKA_ACL_OPERATION_DESCRIBE;
    case AclOperation::describe_configs: return RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS;
    case AclOperation::alter_configs: return RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS;
  }
  return RD_KAFKA_ACL_OPERATION_UNKNOWN;
}

// A binding (filter = false) or an exact filter matching only that binding
// (filter = true). Throws Failure on invalid input.
AclPtr make_binding(const Acl& acl, bool filter) {
  char err[512] = "";
  const auto permission = acl.allow ? RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW : RD_KAFKA_ACL_PERMISSION_TYPE_DENY;
  rd_kafka_AclBinding_t* b =
      filter ? rd_kafka_AclBindingFilter_new(to_rdk(acl.resource), acl.name.c_str(), to_rdk(acl.pattern),
                                             acl.principal.c_str(), acl.host.c_str(), to_rdk(acl.operation), permission,
                                             err, sizeof err)
             : rd_kafka_AclBinding_new(to_rdk(acl.resource), acl.name.c_str(), to_rdk(acl.pattern),
                                       acl.principal.c_str(), acl.host.c_str(), to_rdk(acl.operation), permission, err,
                                       sizeof err);
  if (b == nullptr) {
    throw Failure("ACL " + to_string(acl) + ": " + err);
  }
  return AclPtr(b);
}

// How many ACLs the broker's authorizer shows that equal `acl` exactly.
std::size_t count_acls(rd_kafka_t* rk, const Acl& acl, std::chrono::milliseconds timeout) {
  auto filter = make_binding(acl, true);
  auto opts = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk));
  rd_kafka_DescribeAcls(rk, filter.get(), opts.get(), q.get());
  auto ev = admin_result(q.get(), timeout, "describe ACL " + to_string(acl));
  std::size_t cnt = 0;
  rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev.get()), &cnt);
  return cnt;
}

// Waits until every ACL is shown (present = true) or none is (false).
void wait_acls(rd_kafka_t* rk, const std::vector<Acl>& acls, bool present, std::chrono::milliseconds timeout,
               const std::string& what) {
  for (const auto& acl : acls) {
    const bool ok = wait_until([&] { return (count_acls(rk, acl, 5s) > 0) == present; }, timeout, 100ms);
    if (!ok) {
      throw Failure(what + " " + to_string(acl) + ": the broker's authorizer " +
                    (present ? "did not show it" : "still showed it") + " within " + std::to_string(timeout.count()) +
                    " ms");
    }
  }
}

std::string error_text(const rd_kafka_error_t* e) {
  return std::string(rd_kafka_error_name(e)) + ": " + rd_kafka_error_string(e);
}

std::map<std::string, std::string> read_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw Failure("KC_TEST_SECURE_STATE=" + path + ": cannot read it (no secured broker runs with this state file?). " +
                  kHowToStart);
  }
  std::map<std::string, std::string> kv;
  std::string line;
  while (std::getline(in, line)) {
    if (const auto eq = line.find('='); eq != std::string::npos) {
      kv.emplace(line.substr(0, eq), line.substr(eq + 1));
    }
  }
  return kv;
}

}  // namespace

std::string to_string(const Acl& acl) {
  static constexpr const char* kResources[] = {"topic", "group", "transactional_id"};
  static constexpr const char* kOperations[] = {"ALL",    "READ",     "WRITE",            "CREATE",       "DELETE",
                                                "ALTER",  "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"};
  return std::string(acl.allow ? "ALLOW " : "DENY ") + acl.principal + " " +
         kOperations[static_cast<int>(acl.operation)] + " " + kResources[static_cast<int>(acl.resource)] + ":" +
         (acl.pattern == AclPattern::prefixed ? "prefixed:" : "literal:") + acl.name +
         (acl.host == "*" ? "" : " from " + acl.host);
}

Properties SecureBroker::sasl_ssl(std::string_view mechanism, const std::string& username,
                                  const std::string& secret) const {
  return {{"bootstrap.servers", sasl_ssl_address},
          {"security.protocol", "SASL_SSL"},
          {"sasl.mechanisms", std::string(mechanism)},
          {"sasl.username", username},
          {"sasl.password", secret},
          {"ssl.ca.location", ca},
          {"ssl.endpoint.identification.algorithm", "https"}};
}

Properties SecureBroker::sasl_plaintext(std::string_view mechanism, const std::string& username,
                                        const std::string& secret) const {
  return {{"bootstrap.servers", sasl_plaintext_address},
          {"security.protocol", "SASL_PLAINTEXT"},
          {"sasl.mechanisms", std::string(mechanism)},
          {"sasl.username", username},
          {"sasl.password", secret}};
}

Properties SecureBroker::mtls() const {
  return {{"bootstrap.servers", ssl_address},
          {"security.protocol", "SSL"},
          {"ssl.ca.location", ca},
          {"ssl.certificate.location", client_cert},
          {"ssl.key.location", client_key},
          {"ssl.endpoint.identification.algorithm", "https"}};
}

void SecureBroker::create_acls(const std::vector<Acl>& acls, std::chrono::milliseconds timeout) const {
  if (acls.empty()) {
    return;
  }
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  std::vector<AclPtr> owned;
  std::vector<rd_kafka_AclBinding_t*> bindings;
  for (const auto& acl : acls) {
    owned.push_back(make_binding(acl, false));
    bindings.push_back(owned.back().get());
  }
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_CREATEACLS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_CreateAcls(rk.get(), bindings.data(), bindings.size(), opts.get(), q.get());
  auto ev = admin_result(q.get(), timeout, "create_acls");
  std::size_t cnt = 0;
  const auto** results = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev.get()), &cnt);
  if (cnt != acls.size()) {
    throw Failure("create_acls: " + std::to_string(acls.size()) + " ACLs sent, " + std::to_string(cnt) +
                  " results received");
  }
  for (std::size_t i = 0; i < cnt; ++i) {
    if (const auto* e = rd_kafka_acl_result_error(results[i]); e != nullptr) {
      throw Failure("create_acl " + to_string(acls[i]) + ": " + error_text(e));
    }
  }
  wait_acls(rk.get(), acls, true, timeout, "create_acl");
}

void SecureBroker::delete_acls(const std::vector<Acl>& acls, std::chrono::milliseconds timeout) const {
  if (acls.empty()) {
    return;
  }
  auto rk = make_client(RD_KAFKA_PRODUCER, bootstrap, {});
  std::vector<AclPtr> owned;
  std::vector<rd_kafka_AclBindingFilter_t*> filters;
  for (const auto& acl : acls) {
    owned.push_back(make_binding(acl, true));
    filters.push_back(owned.back().get());
  }
  auto opts = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_DELETEACLS, timeout);
  QueuePtr q(rd_kafka_queue_new(rk.get()));
  rd_kafka_DeleteAcls(rk.get(), filters.data(), filters.size(), opts.get(), q.get());
  auto ev = admin_result(q.get(), timeout, "delete_acls");
  std::size_t cnt = 0;
  const auto** responses = rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev.get()), &cnt);
  for (std::size_t i = 0; i < cnt; ++i) {
    if (const auto* e = rd_kafka_DeleteAcls_result_response_error(responses[i]); e != nullptr) {
      throw Failure("delete_acl " + (i < acls.size() ? to_string(acls[i]) : std::string("?")) + ": " + error_text(e));
    }
  }
  wait_acls(rk.get(), acls, false, timeout, "delete_acl");
}

SecureBroker secure_broker() {
  const char* v = std::getenv("KC_TEST_SECURE_STATE");
  if (v == nullptr || *v == '\0') {
    throw Failure(std::string("KC_TEST_SECURE_STATE is not set: this test needs the secured Kafka broker "
                              "(SASL_SSL, SASL_PLAINTEXT, mTLS, ACLs). ") +
                  kHowToStart);
  }
  const std::string path = v;
  const auto kv = read_state(path);
  auto get = [&](const char* key) {
    const auto it = kv.find(key);
    if (it == kv.end() || it->second.empty()) {
      throw Failure("KC_TEST_SECURE_STATE=" + path + ": no `" + key +
                    "` in it: not the state file of a secured broker of scripts/kafka. " + kHowToStart);
    }
    return it->second;
  };
  if (get("secure") != "1") {
    throw Failure("KC_TEST_SECURE_STATE=" + path + ": the broker of this state file is a plain one (secure=" +
                  get("secure") + "). " + kHowToStart);
  }
  // A stopped broker: one clear message here rather than connection errors
  // in every client later.
  const long pid = std::strtol(get("pid").c_str(), nullptr, 10);
  if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) {
    throw Failure("KC_TEST_SECURE_STATE=" + path + ": its broker (pid " + get("pid") + ") does not run. " +
                  kHowToStart);
  }
  SecureBroker b;
  b.state_file = path;
  b.bootstrap = get("bootstrap");
  b.sasl_ssl_address = get("sasl_ssl");
  b.sasl_plaintext_address = get("sasl_plaintext");
  b.ssl_address = get("ssl");
  b.ca = get("ca");
  b.other_ca = get("other_ca");
  b.client_cert = get("client_cert");
  b.client_key = get("client_key");
  b.client_principal = get("client_principal");
  b.user = get("user");
  b.password = get("password");
  b.user2 = get("user2");
  b.password2 = get("password2");
  b.admin_user = get("admin_user");
  b.admin_password = get("admin_password");
  return b;
}

}  // namespace kc::test
