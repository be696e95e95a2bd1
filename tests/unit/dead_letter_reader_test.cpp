// The dead-letter reader (src/deadletter/reader.cpp) against the writer's
// own headers (append_dead_letter_headers in src/deadletter/writer.cpp): a
// dead letter is built as the writer builds it, in a librdkafka header list
// (no broker), and read back.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "deadletter/reader.hpp"
#include "deadletter/writer.hpp"
#include "kc/deadletter.hpp"
#include "rdkafka/handles.hpp"

namespace kc::detail {
namespace {

using HeaderList = std::vector<std::pair<std::string, std::optional<std::string>>>;

std::optional<Bytes> bytes_of(const std::optional<std::string>& s) {
  if (!s) {
    return std::nullopt;
  }
  return Bytes(reinterpret_cast<const std::byte*>(s->data()), s->size());
}

std::optional<std::string> string_of(const std::optional<Bytes>& b) {
  if (!b) {
    return std::nullopt;
  }
  return std::string(as_text(*b));
}

// A record with key, value and headers in librdkafka's own header list, as a
// consumer would see it; read() reads it back (views into this record).
struct Record {
  std::optional<std::string> key;
  std::optional<std::string> value;
  HeadersPtr headers{rd_kafka_headers_new(8)};

  Record(std::optional<std::string> k, std::optional<std::string> v, const HeaderList& hs)
      : key(std::move(k)), value(std::move(v)) {
    for (const auto& [name, val] : hs) {
      rd_kafka_header_add(headers.get(), name.data(), static_cast<ssize_t>(name.size()), val ? val->data() : nullptr,
                          val ? static_cast<ssize_t>(val->size()) : 0);
    }
  }
  DeadLetter read() const { return read_dead_letter(bytes_of(key), bytes_of(value), Headers(headers.get())); }
};

const std::string kBinaryKey("\xff\x00\xc3\x28\x80", 5);    // not UTF-8, a NUL inside
const std::string kBinaryValue("\x00\x01\xfe\xff\x00", 5);  // not UTF-8, NULs at both ends

// The original record's headers: text, binary, null and empty values.
const HeaderList kOriginalHeaders = {
    {"trace-id", "abc"}, {"bin", std::string("\x00\xff\x01", 3)}, {"h-null", std::nullopt}, {"h-empty", ""}};

DeadLetterMetadata metadata() {
  DeadLetterMetadata md;
  md.source_topic = "orders";
  md.source_partition = 3;
  md.source_offset = 123456789012;
  md.source_timestamp = 1700000000123;
  md.timestamp_type = RD_KAFKA_TIMESTAMP_CREATE_TIME;
  md.group = "billing";
  md.error_type = "kc::DecodeError";
  md.error_message = "bad JSON at byte 3";
  md.attempts = 4;
  md.failed_at = "2026-01-02T03:04:05.678Z";
  return md;
}

// A dead letter as the writer makes it: the original headers, then the metadata.
Record dead_letter(DeadLetterHeaders format, std::optional<std::string> key = kBinaryKey,
                   std::optional<std::string> value = kBinaryValue, HeaderList original = kOriginalHeaders) {
  append_dead_letter_headers(metadata(), format, original);
  return Record(std::move(key), std::move(value), original);
}

void expect_original_record(const DeadLetter& dl, const Record& r) {
  EXPECT_EQ(string_of(dl.key), r.key);
  EXPECT_EQ(string_of(dl.value), r.value);
  ASSERT_EQ(dl.headers.size(), kOriginalHeaders.size());
  for (std::size_t i = 0; i < kOriginalHeaders.size(); ++i) {
    EXPECT_EQ(dl.headers[i].name, kOriginalHeaders[i].first);
    EXPECT_EQ(string_of(dl.headers[i].value), kOriginalHeaders[i].second) << kOriginalHeaders[i].first;
  }
}

TEST(DeadLetterReader, ReadsBackWhatTheWriterWritesInEachFormat) {
  for (const auto& [format, name] :
       {std::pair{DeadLetterHeaders::kc, "kc"}, std::pair{DeadLetterHeaders::spring, "spring"},
        std::pair{DeadLetterHeaders::both, "kc+spring"}}) {
    SCOPED_TRACE(name);
    const auto r = dead_letter(format);
    const auto dl = r.read();
    expect_original_record(dl, r);
    EXPECT_EQ(dl.format(), name);
    EXPECT_EQ(dl.source_topic, "orders");
    EXPECT_EQ(dl.source_partition, 3);
    EXPECT_EQ(dl.source_offset, 123456789012);
    EXPECT_EQ(dl.source_timestamp, 1700000000123);
    EXPECT_EQ(dl.group, "billing");
    EXPECT_EQ(dl.error_type, "kc::DecodeError");
    EXPECT_EQ(dl.error_message, "bad JSON at byte 3");
    // Spring's headers have no attempt count and no time of failure.
    const bool kc = format != DeadLetterHeaders::spring;
    EXPECT_EQ(dl.attempts, kc ? std::optional<std::int64_t>(4) : std::nullopt);
    EXPECT_EQ(dl.failed_at, kc ? std::optional<std::string>("2026-01-02T03:04:05.678Z") : std::nullopt);
    EXPECT_FALSE(dl.retry_origin);
    EXPECT_FALSE(dl.redrive_count);
    EXPECT_TRUE(dl.errors.empty()) << dl.errors.front();
  }
}

TEST(DeadLetterReader, KcHeadersWinAndSpringsFillInWhatTheyLack) {
  HeaderList hs = {{std::string(kHeaderSourceTopic), "from-kc"},
                   {std::string(kSpringOriginalTopic), "from-spring"},
                   {std::string(kSpringOriginalConsumerGroup), "spring-group"}};
  const Record r(std::nullopt, std::nullopt, hs);
  const auto dl = r.read();
  EXPECT_EQ(dl.source_topic, "from-kc");
  EXPECT_EQ(dl.group, "spring-group");
}

TEST(DeadLetterReader, NullAndEmptyKeyAndValueStayApart) {
  auto r = dead_letter(DeadLetterHeaders::kc, std::nullopt, std::nullopt);
  auto dl = r.read();
  EXPECT_FALSE(dl.key);
  EXPECT_FALSE(dl.value);
  r = dead_letter(DeadLetterHeaders::kc, "", "");
  dl = r.read();
  ASSERT_TRUE(dl.key);
  EXPECT_TRUE(dl.key->empty());
  ASSERT_TRUE(dl.value);
  EXPECT_TRUE(dl.value->empty());
}

TEST(DeadLetterReader, AnExtremeSourceRoundTrips) {
  HeaderList hs;
  DeadLetterMetadata md = metadata();
  md.source_partition = 2147483647;
  md.source_offset = -1001;  // a logical offset
  md.source_timestamp = -1;  // no timestamp
  md.error_message = "line 1\nline 2\t\"quoted\" \xc3\xa9";
  append_dead_letter_headers(md, DeadLetterHeaders::both, hs);
  const Record r(std::nullopt, std::nullopt, hs);
  const auto dl = r.read();
  EXPECT_EQ(dl.source_partition, 2147483647);
  EXPECT_EQ(dl.source_offset, -1001);
  EXPECT_EQ(dl.source_timestamp, -1);
  EXPECT_EQ(dl.error_message, md.error_message);
  EXPECT_TRUE(dl.headers.empty());
}

TEST(DeadLetterReader, ARecordWithoutMetadataKeepsEveryHeader) {
  const Record r(kBinaryKey, kBinaryValue, kOriginalHeaders);
  const auto dl = r.read();
  expect_original_record(dl, r);
  EXPECT_EQ(dl.format(), "none");
  EXPECT_FALSE(dl.source_topic);
  EXPECT_FALSE(dl.source_partition);
  EXPECT_FALSE(dl.error_type);
  EXPECT_TRUE(dl.errors.empty());
}

TEST(DeadLetterReader, RetryTopicHeadersAreMetadataAndNameTheFirstTopic) {
  HeaderList original = kOriginalHeaders;
  original.emplace_back(std::string(kHeaderRetryAttempt), "3");
  original.emplace_back(std::string(kHeaderRetryDue), "1700000000999");
  original.emplace_back(std::string(kHeaderRetryTopic), "orders");
  HeaderList hs = original;
  DeadLetterMetadata md = metadata();
  md.source_topic = "orders.retry.2";
  append_dead_letter_headers(md, DeadLetterHeaders::kc, hs);
  const Record r(kBinaryKey, kBinaryValue, hs);
  const auto dl = r.read();
  expect_original_record(dl, r);
  EXPECT_EQ(dl.source_topic, "orders.retry.2");
  EXPECT_EQ(dl.retry_origin, "orders");
  EXPECT_TRUE(is_dead_letter_metadata(kHeaderRetryDue));
}

TEST(DeadLetterReader, TheHighestRedriveCountCountsAndStaysAnOriginalHeader) {
  HeaderList hs = {{std::string(kHeaderRedriveCount), "2"},
                   {std::string(kHeaderRedriveCount), "5"},
                   {std::string(kHeaderRedriveCount), "3"}};
  const Record r(std::nullopt, std::nullopt, hs);
  const auto dl = r.read();
  EXPECT_EQ(dl.redrive_count, 5);
  EXPECT_EQ(dl.headers.size(), 3u);
  EXPECT_FALSE(is_dead_letter_metadata(kHeaderRedriveCount));
}

TEST(DeadLetterReader, GarbledHeadersAreNamedNotFatal) {
  const std::string not_utf8("\xff\xfe", 2);
  HeaderList hs = {{std::string(kHeaderSourceTopic), not_utf8},
                   {std::string(kHeaderSourcePartition), "three"},
                   {std::string(kHeaderSourceOffset), "12x"},
                   {std::string(kHeaderAttempts), ""},
                   {std::string(kHeaderGroup), std::nullopt},
                   {std::string(kSpringOriginalOffset), std::string("\x01\x02\x03", 3)},
                   {std::string(kSpringOriginalPartition), std::string("\x00\x00\x00\x07", 4)},
                   {std::string(kHeaderRedriveCount), "many"},
                   {"kc.dlq.unknown", "ignored"}};
  const Record r(std::nullopt, std::nullopt, hs);
  const auto dl = r.read();
  EXPECT_EQ(dl.format(), "kc+spring");
  EXPECT_EQ(dl.source_topic, "hex:fffe") << "a text value that is not UTF-8 reads as hex";
  EXPECT_EQ(dl.source_partition, 7) << "Spring's partition fills in kc's garbled one";
  EXPECT_FALSE(dl.source_offset);
  EXPECT_FALSE(dl.attempts);
  EXPECT_FALSE(dl.group);
  EXPECT_FALSE(dl.redrive_count);
  const auto named = [&](std::string_view header) {
    return std::any_of(dl.errors.begin(), dl.errors.end(),
                       [&](const std::string& e) { return e.rfind(std::string(header) + ": ", 0) == 0; });
  };
  for (const auto h : {kHeaderSourcePartition, kHeaderSourceOffset, kHeaderAttempts, kHeaderGroup,
                       kSpringOriginalOffset, kHeaderRedriveCount}) {
    EXPECT_TRUE(named(h)) << h;
  }
  EXPECT_EQ(dl.errors.size(), 6u);
  EXPECT_NE(dl.errors.front().find("three"), std::string::npos) << dl.errors.front();
  ASSERT_EQ(dl.headers.size(), 1u) << "only kc.redrive.count is the original record's";
}

TEST(DeadLetterReader, ALongGarbledValueIsCutInItsError) {
  const HeaderList hs = {{std::string(kHeaderSourceOffset), std::string(10000, '9') + "x"}};
  const Record r(std::nullopt, std::nullopt, hs);
  const auto dl = r.read();
  ASSERT_EQ(dl.errors.size(), 1u);
  EXPECT_LT(dl.errors.front().size(), 200u);
  EXPECT_NE(dl.errors.front().find("(10001 bytes)"), std::string::npos) << dl.errors.front();
}

}  // namespace
}  // namespace kc::detail
