// The secured test broker (scripts/kafka with KC_KAFKA_SECURE=1, fixture
// support/secure.hpp) with plain librdkafka clients, not kc: each way in
// (SCRAM-SHA-512 over SASL_SSL, SCRAM-SHA-256 over SASL_PLAINTEXT, PLAIN over
// SASL_SSL, mTLS) writes and reads a topic once ACLs allow it; a wrong
// password fails authentication, an untrusted CA fails the TLS handshake, a
// user without ACLs (or whose ACL was deleted) may not produce, a consumer
// without READ on its group may not join it.
//
// Needs KC_TEST_SECURE_STATE (`make test` sets it); without it every test
// fails with instructions.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/common.hpp"
#include "support/kafka.hpp"
#include "support/secure.hpp"

namespace kc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kRecords = 10;

int to_ms(std::chrono::milliseconds d) {
  return static_cast<int>(d.count());
}

Properties with(Properties props, const Properties& more) {
  for (const auto& [k, v] : more) {
    props[k] = v;
  }
  return props;
}

// A librdkafka client that records what its error callback and delivery
// reports said. Callbacks run inside rd_kafka_poll / rd_kafka_consumer_poll /
// rd_kafka_flush on the calling thread; the mutex only guards the accessors.
class Client {
 public:
  Client(rd_kafka_type_t type, const Properties& props) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (const auto& [k, v] : props) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw Failure("client config " + k + ": " + err);
      }
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (type == RD_KAFKA_PRODUCER) {
      rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    }
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(type, conf, err, sizeof err);
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);  // rd_kafka_new frees the conf only on success
      throw Failure(std::string("cannot create a client: ") + err);
    }
    if (type == RD_KAFKA_CONSUMER) {
      rd_kafka_poll_set_consumer(rk_);
    }
  }
  // The handle goes first: its callbacks use the members below.
  ~Client() { rd_kafka_destroy(rk_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  rd_kafka_t* get() const noexcept { return rk_; }

  bool saw_error(rd_kafka_resp_err_t err) const {
    std::lock_guard lock(mu_);
    for (const auto& [e, _] : errors_) {
      if (e == err) {
        return true;
      }
    }
    return false;
  }
  // Every error seen so far, "NAME: reason" one per line (for messages).
  std::string errors() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [e, why] : errors_) {
      out += std::string("  ") + rd_kafka_err2name(e) + ": " + why + "\n";
    }
    return out.empty() ? "  (none)\n" : out;
  }
  int delivered() const {
    std::lock_guard lock(mu_);
    return delivered_;
  }
  std::vector<rd_kafka_resp_err_t> delivery_errors() const {
    std::lock_guard lock(mu_);
    return delivery_errors_;
  }

  // Polls (serving the callbacks) until `err` was reported or `timeout`
  // passed; returns whether it was.
  bool wait_for_error(rd_kafka_resp_err_t err, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!saw_error(err) && Clock::now() < deadline) {
      rd_kafka_poll(rk_, 100);
    }
    return saw_error(err);
  }

 private:
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Client*>(opaque);
    std::lock_guard lock(self->mu_);
    self->errors_.emplace_back(static_cast<rd_kafka_resp_err_t>(err), reason != nullptr ? reason : "");
  }
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Client*>(opaque);
    std::lock_guard lock(self->mu_);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++self->delivered_;
    } else {
      self->delivery_errors_.push_back(m->err);
    }
  }

  mutable std::mutex mu_;
  std::vector<std::pair<rd_kafka_resp_err_t, std::string>> errors_;
  int delivered_ = 0;
  std::vector<rd_kafka_resp_err_t> delivery_errors_;
  rd_kafka_t* rk_ = nullptr;
};

std::string names(const std::vector<rd_kafka_resp_err_t>& errs) {
  std::string out;
  for (auto e : errs) {
    out += (out.empty() ? "" : ", ") + std::string(rd_kafka_err2name(e));
  }
  return out.empty() ? "(none)" : out;
}

// Produces values prefix0..prefix(n-1) to partition 0 and waits for every
// delivery report (at most `timeout`). Idempotent: the broker checks WRITE on
// the topic for InitProducerId too (KIP-679).
void produce_values(const Properties& props, const std::string& topic, const std::string& prefix, int n,
                    std::chrono::milliseconds timeout = 20s) {
  Client p(RD_KAFKA_PRODUCER, with(props, {{"enable.idempotence", "true"},
                                           {"acks", "all"},
                                           {"linger.ms", "5"},
                                           {"message.timeout.ms", std::to_string(timeout.count())}}));
  for (int i = 0; i < n; ++i) {
    const std::string value = prefix + std::to_string(i);
    const auto err = rd_kafka_producev(p.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2name(err);
  }
  rd_kafka_flush(p.get(), to_ms(timeout + 5s));
  ASSERT_EQ(p.delivered(), n) << "delivery errors: " << names(p.delivery_errors()) << "\nclient errors:\n"
                              << p.errors();
}

// Reads `n` records of `topic` as a member of `group` (subscribe, classic
// protocol: JoinGroup/SyncGroup/OffsetFetch need READ on the group), then
// commits synchronously (OffsetCommit). Returns the values in order.
std::vector<std::string> consume_values(const Properties& props, const std::string& topic, const std::string& group,
                                        int n, std::chrono::milliseconds timeout = 30s) {
  Client c(RD_KAFKA_CONSUMER, with(props, {{"group.id", group},
                                           {"auto.offset.reset", "earliest"},
                                           {"enable.auto.commit", "false"}}));
  rd_kafka_topic_partition_list_t* subs = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(subs, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto sub_err = rd_kafka_subscribe(c.get(), subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (sub_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure(std::string("subscribe: ") + rd_kafka_err2name(sub_err));
  }
  std::vector<std::string> values;
  const auto deadline = Clock::now() + timeout;
  while (static_cast<int>(values.size()) < n) {
    if (Clock::now() > deadline) {
      throw Failure("consumed " + std::to_string(values.size()) + " of " + std::to_string(n) + " records of " + topic +
                    " within " + std::to_string(timeout.count()) + " ms; client errors:\n" + c.errors());
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 100);
    if (m == nullptr) {
      continue;
    }
    const auto err = m->err;
    std::string value = m->payload != nullptr ? std::string(static_cast<const char*>(m->payload), m->len) : "";
    const std::string why = err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_message_errstr(m) : "";
    rd_kafka_message_destroy(m);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure("consume " + topic + ": " + rd_kafka_err2name(err) + ": " + why);
    }
    values.push_back(std::move(value));
  }
  if (const auto err = rd_kafka_commit(c.get(), nullptr, 0); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("commit of group " + group + ": " + rd_kafka_err2name(err) + "\nclient errors:\n" + c.errors());
  }
  rd_kafka_consumer_close(c.get());
  return values;
}

// WRITE and READ on the topic, READ on the group, for `principal`.
std::vector<Acl> read_write_acls(const std::string& principal, const std::string& topic, const std::string& group,
                                 AclPattern pattern) {
  return {
      Acl{.resource = AclResource::topic, .name = topic, .pattern = pattern, .principal = principal,
          .operation = AclOperation::write},
      Acl{.resource = AclResource::topic, .name = topic, .pattern = pattern, .principal = principal,
          .operation = AclOperation::read},
      Acl{.resource = AclResource::group, .name = group, .pattern = pattern, .principal = principal,
          .operation = AclOperation::read},
  };
}

// A fresh topic and group, ACLs for `principal` on them (literal: on their
// names; prefixed: on a prefix both share), kRecords produced and consumed
// back through `props`, the ACLs deleted again.
void round_trip(const SecureBroker& sb, const Properties& props, const std::string& principal, AclPattern pattern) {
  const auto base = unique_name("kc-it-secure");
  const auto topic = base + "-t";
  const auto group = base + "-g";
  create_topic(sb.bootstrap, topic, 1);
  const auto acls = pattern == AclPattern::prefixed ? read_write_acls(principal, base, base, pattern)
                                                    : read_write_acls(principal, topic, group, pattern);
  sb.create_acls(acls);

  const auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(produce_values(props, topic, "v-", kRecords));
  const auto values = consume_values(props, topic, group, kRecords);
  std::vector<std::string> expected;
  for (int i = 0; i < kRecords; ++i) {
    expected.push_back("v-" + std::to_string(i));
  }
  EXPECT_EQ(values, expected);
  std::printf("%s as %s via %s: %d records written and read back in %lld ms\n", topic.c_str(), principal.c_str(),
              props.at("security.protocol").c_str(), kRecords,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
  sb.delete_acls(acls);
}

// A producer with `props` that is expected to fail to connect: waits until
// its error callback reports `err`.
void expect_connection_error(const Properties& props, rd_kafka_resp_err_t err) {
  // A producer connects to a bootstrap broker at once for its first
  // metadata request: nothing needs to be sent.
  Client p(RD_KAFKA_PRODUCER, props);
  const auto start = Clock::now();
  const bool seen = p.wait_for_error(err, 15s);
  EXPECT_TRUE(seen) << "expected " << rd_kafka_err2name(err) << " within 15 s; client errors:\n" << p.errors();
  if (seen) {
    std::printf(
        "%s after %lld ms\n", rd_kafka_err2name(err),
        static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()));
  }
}

// A non-idempotent producer sends one record to `topic`; returns its delivery
// report's error (and the client's errors, for messages).
std::pair<std::optional<rd_kafka_resp_err_t>, std::string> produce_one(const Properties& props,
                                                                        const std::string& topic) {
  Client p(RD_KAFKA_PRODUCER, with(props, {{"enable.idempotence", "false"}, {"message.timeout.ms", "15000"}}));
  const std::string value = "refused";
  const auto err = rd_kafka_producev(p.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return {err, p.errors()};
  }
  rd_kafka_flush(p.get(), 20000);
  if (p.delivered() == 1) {
    return {RD_KAFKA_RESP_ERR_NO_ERROR, p.errors()};
  }
  const auto errs = p.delivery_errors();
  if (errs.empty()) {
    return {std::nullopt, p.errors()};
  }
  return {errs.front(), p.errors()};
}

TEST(SecureBroker, ScramSha512OverSaslSslWritesAndReadsWithAcls) {
  const auto sb = secure_broker();
  round_trip(sb, sb.sasl_ssl("SCRAM-SHA-512", sb.user, sb.password), SecureBroker::principal(sb.user),
             AclPattern::literal);
}

TEST(SecureBroker, ScramSha256OverSaslPlaintextWritesAndReadsWithAcls) {
  const auto sb = secure_broker();
  round_trip(sb, sb.sasl_plaintext("SCRAM-SHA-256", sb.user, sb.password), SecureBroker::principal(sb.user),
             AclPattern::literal);
}

TEST(SecureBroker, PlainOverSaslSslWritesAndReadsWithPrefixedAcls) {
  const auto sb = secure_broker();
  round_trip(sb, sb.sasl_ssl("PLAIN", sb.user, sb.password), SecureBroker::principal(sb.user), AclPattern::prefixed);
}

TEST(SecureBroker, MtlsWritesAndReadsAsTheCertificatesPrincipal) {
  const auto sb = secure_broker();
  EXPECT_EQ(sb.client_principal, "User:kc-client");
  round_trip(sb, sb.mtls(), sb.client_principal, AclPattern::literal);
}

TEST(SecureBroker, WrongScramPasswordFailsAuthentication) {
  const auto sb = secure_broker();
  expect_connection_error(sb.sasl_ssl("SCRAM-SHA-512", sb.user, sb.password + "x"), RD_KAFKA_RESP_ERR__AUTHENTICATION);
}

TEST(SecureBroker, WrongPlainPasswordFailsAuthentication) {
  const auto sb = secure_broker();
  expect_connection_error(sb.sasl_plaintext("PLAIN", sb.user, "not-" + sb.password),
                          RD_KAFKA_RESP_ERR__AUTHENTICATION);
}

TEST(SecureBroker, UntrustedCaFailsTheTlsHandshake) {
  const auto sb = secure_broker();
  expect_connection_error(with(sb.sasl_ssl("SCRAM-SHA-512", sb.user, sb.password), {{"ssl.ca.location", sb.other_ca}}),
                          RD_KAFKA_RESP_ERR__SSL);
  expect_connection_error(with(sb.mtls(), {{"ssl.ca.location", sb.other_ca}}), RD_KAFKA_RESP_ERR__SSL);
}

TEST(SecureBroker, UserWithoutAclsMayNotProduce) {
  const auto sb = secure_broker();
  const auto topic = unique_name("kc-it-secure-bob");
  create_topic(sb.bootstrap, topic, 1);
  const auto [err, errors] = produce_one(sb.sasl_ssl("SCRAM-SHA-512", sb.user2, sb.password2), topic);
  ASSERT_TRUE(err.has_value()) << "no delivery report; client errors:\n" << errors;
  EXPECT_EQ(*err, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) << rd_kafka_err2name(*err) << "\n" << errors;
}

TEST(SecureBroker, DeletedAclTakesAccessAway) {
  const auto sb = secure_broker();
  const auto topic = unique_name("kc-it-secure-revoke");
  create_topic(sb.bootstrap, topic, 1);
  const auto props = sb.sasl_plaintext("SCRAM-SHA-512", sb.user, sb.password);
  const Acl write{.resource = AclResource::topic,
                  .name = topic,
                  .principal = SecureBroker::principal(sb.user),
                  .operation = AclOperation::write};
  sb.create_acl(write);
  {
    const auto [err, errors] = produce_one(props, topic);
    ASSERT_TRUE(err.has_value()) << errors;
    ASSERT_EQ(*err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2name(*err) << "\n" << errors;
  }
  sb.delete_acl(write);
  const auto [err, errors] = produce_one(props, topic);
  ASSERT_TRUE(err.has_value()) << "no delivery report; client errors:\n" << errors;
  EXPECT_EQ(*err, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) << rd_kafka_err2name(*err) << "\n" << errors;
}

TEST(SecureBroker, ConsumerWithoutTheGroupAclIsRefused) {
  const auto sb = secure_broker();
  const auto topic = unique_name("kc-it-secure-nogroup");
  create_topic(sb.bootstrap, topic, 1);
  const auto principal = SecureBroker::principal(sb.user);
  const std::vector<Acl> acls = {
      Acl{.resource = AclResource::topic, .name = topic, .principal = principal, .operation = AclOperation::read}};
  sb.create_acls(acls);
  Client c(RD_KAFKA_CONSUMER, with(sb.sasl_ssl("SCRAM-SHA-256", sb.user, sb.password),
                                   {{"group.id", topic + "-g"}, {"auto.offset.reset", "earliest"}}));
  rd_kafka_topic_partition_list_t* subs = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(subs, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto sub_err = rd_kafka_subscribe(c.get(), subs);
  rd_kafka_topic_partition_list_destroy(subs);
  ASSERT_EQ(sub_err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2name(sub_err);
  // librdkafka reports it as a consumer error (a message with err set) or
  // on the error callback, depending on the request that met it first.
  bool refused = false;
  const auto deadline = Clock::now() + 15s;
  while (!refused && Clock::now() < deadline) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 100); m != nullptr) {
      refused = m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
      rd_kafka_message_destroy(m);
    }
    refused = refused || c.saw_error(RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  }
  EXPECT_TRUE(refused) << "no GROUP_AUTHORIZATION_FAILED within 15 s; client errors:\n" << c.errors();
  rd_kafka_consumer_close(c.get());
  sb.delete_acls(acls);
}

// The fixture fails (never skips) without its environment.
TEST(SecureBrokerFixture, FailsWithInstructionsWithoutItsStateFile) {
  const char* old = std::getenv("KC_TEST_SECURE_STATE");
  const std::optional<std::string> saved = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
  ::unsetenv("KC_TEST_SECURE_STATE");
  try {
    secure_broker();
    ADD_FAILURE() << "secure_broker() returned without KC_TEST_SECURE_STATE";
  } catch (const Failure& e) {
    EXPECT_NE(std::string(e.what()).find("KC_KAFKA_SECURE=1"), std::string::npos) << e.what();
  }
  if (saved) {
    ::setenv("KC_TEST_SECURE_STATE", saved->c_str(), 1);
  }
}

}  // namespace
}  // namespace kc::test
