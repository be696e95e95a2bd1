// The secured test broker (scripts/kafka with KC_KAFKA_SECURE=1; `make test`
// starts one and exports KC_TEST_SECURE_STATE): its ways in (SASL_SSL,
// SASL_PLAINTEXT, mTLS over SSL), users and passwords, TLS files, and ACLs.
//
// The broker authorizes with StandardAuthorizer and
// allow.everyone.if.no.acl.found=false: a user can do nothing until a test
// grants it ACLs (create_acl). The PLAINTEXT listener (`bootstrap`) comes in
// as User:ANONYMOUS, a super user, so create_topic() and the other fixtures
// of kafka.hpp work on it unchanged.
//
// Everything goes through librdkafka directly (not through kc). ACL calls
// create their own short-lived admin client, block until done or their
// timeout, may be called from any thread, and throw kc::test::Failure.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "support/common.hpp"

namespace kc::test {

/// librdkafka configuration properties (name -> value).
using Properties = std::map<std::string, std::string>;

enum class AclResource { topic, group, transactional_id };
/// literal: the resource named exactly; prefixed: every resource whose name
/// starts with the ACL's name.
enum class AclPattern { literal, prefixed };
enum class AclOperation { all, read, write, create, delete_, alter, describe, describe_configs, alter_configs };

/// One ACL binding (Kafka's ResourcePattern + AccessControlEntry).
struct Acl {
  AclResource resource = AclResource::topic;
  std::string name;  ///< topic, group or transactional id (or its prefix)
  AclPattern pattern = AclPattern::literal;
  std::string principal;  ///< e.g. "User:alice" (see SecureBroker::principal())
  AclOperation operation = AclOperation::all;
  bool allow = true;  ///< false: a DENY
  std::string host = "*";
};

/// "ALLOW User:alice WRITE topic:literal:orders", for messages.
std::string to_string(const Acl& acl);

/// The secured broker of scripts/kafka (read from its state file). A plain
/// value: copy it freely.
struct SecureBroker {
  std::string state_file;  ///< where this was read from

  /// 127.0.0.1:PORT of each listener. `bootstrap` is PLAINTEXT: the tests'
  /// own admin way in (User:ANONYMOUS, a super user).
  std::string bootstrap;
  std::string sasl_ssl_address;        ///< SCRAM-SHA-256, SCRAM-SHA-512, PLAIN over TLS
  std::string sasl_plaintext_address;  ///< the same mechanisms without TLS
  std::string ssl_address;             ///< TLS with a required client certificate (mTLS)

  /// PEM files. `ca` signed the broker's certificate (SAN IP:127.0.0.1,
  /// DNS:localhost) and the client's; `other_ca` is unrelated (trusting it
  /// fails the handshake). `client_key` is unencrypted.
  std::string ca;
  std::string other_ca;
  std::string client_cert;
  std::string client_key;
  /// The principal the broker gives the mTLS client: "User:kc-client".
  std::string client_principal;

  /// SASL users (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN alike): `user`
  /// (alice) for the tests' normal client, `user2` (bob) never given ACLs by
  /// the script, `admin_user` (admin) a super user. Passwords are random per
  /// broker start.
  std::string user;
  std::string password;
  std::string user2;
  std::string password2;
  std::string admin_user;
  std::string admin_password;

  /// "User:" + name.
  static std::string principal(std::string_view name) { return "User:" + std::string(name); }

  /// Client properties for SASL over TLS on the SASL_SSL listener:
  /// bootstrap.servers, security.protocol=SASL_SSL, sasl.mechanisms
  /// (`mechanism`: "SCRAM-SHA-256", "SCRAM-SHA-512" or "PLAIN"),
  /// sasl.username=`username`, sasl.password=`secret`, ssl.ca.location=ca and hostname verification
  /// on. Override a key (e.g. ssl.ca.location=other_ca) to break one thing.
  Properties sasl_ssl(std::string_view mechanism, const std::string& username, const std::string& secret) const;
  /// The same for the SASL_PLAINTEXT listener (no ssl.* keys).
  Properties sasl_plaintext(std::string_view mechanism, const std::string& username, const std::string& secret) const;
  /// Client properties for the SSL listener with the client certificate:
  /// bootstrap.servers, security.protocol=SSL, ssl.ca.location,
  /// ssl.certificate.location, ssl.key.location, hostname verification on.
  /// The broker sees `client_principal`.
  Properties mtls() const;

  /// Creates the ACLs through the PLAINTEXT listener (rd_kafka_CreateAcls),
  /// then waits until the broker's authorizer shows each of them
  /// (rd_kafka_DescribeAcls with an exact filter), i.e. until they are in
  /// effect. Throws Failure on an error or when `timeout` passes.
  void create_acls(const std::vector<Acl>& acls, std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  void create_acl(const Acl& acl, std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    create_acls({acl}, timeout);
  }
  /// Deletes the ACLs that equal these exactly (rd_kafka_DeleteAcls; absent
  /// ones are no error), then waits until the authorizer no longer shows
  /// them. Throws Failure on an error or when `timeout` passes.
  void delete_acls(const std::vector<Acl>& acls, std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  void delete_acl(const Acl& acl, std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    delete_acls({acl}, timeout);
  }
};

/// The secured broker whose scripts/kafka state file KC_TEST_SECURE_STATE
/// names. Throws Failure (the test FAILS, it is not skipped) with
/// instructions when it is unset, when the file is missing or not a secure
/// broker's, or when that broker does not run.
SecureBroker secure_broker();

}  // namespace kc::test
