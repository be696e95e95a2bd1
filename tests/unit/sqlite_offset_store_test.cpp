// SqliteOffsetStore: offsets stored with the sink's rows in one transaction,
// and the owner epoch that fences a zombie out.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>
#include <filesystem>
#include <string>
#include <vector>

#include "kc/error.hpp"
#include "sqlite_test_file.hpp"
#include "sink/sqlite/offset_store.hpp"

namespace {

using kc::detail::SqliteOffsetStore;

class SqliteOffsetStoreTest : public kc::test::SqliteFileTest {
 protected:
  SqliteOffsetStoreTest() : SqliteFileTest("kc-offsets-") {}

  static void insert_row(SqliteOffsetStore& s, int v) {
    const std::string sql = "INSERT INTO rows (v) VALUES (" + std::to_string(v) + ")";
    ASSERT_EQ(sqlite3_exec(s.handle(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  }
  static int count_rows(SqliteOffsetStore& s) {
    int n = -1;
    sqlite3_exec(
        s.handle(), "SELECT count(*) FROM rows",
        [](void* out, int, char** cols, char**) {
          *static_cast<int*>(out) = std::stoi(cols[0]);
          return 0;
        },
        &n, nullptr);
    return n;
  }

  const kc::TopicPartition tp_{"orders", kc::Partition{3}};
};

TEST_F(SqliteOffsetStoreTest, ClaimStartsEmptyThenReturnsWhatWasCommitted) {
  SqliteOffsetStore s(path_, "g");
  const auto first = s.claim(tp_);
  EXPECT_FALSE(first.next_offset.has_value());
  EXPECT_EQ(first.epoch, 1);
  s.begin();
  ASSERT_TRUE(s.store(tp_, 42, first.epoch));
  s.commit();
  SqliteOffsetStore again(path_, "g");
  const auto second = again.claim(tp_);
  ASSERT_TRUE(second.next_offset.has_value());
  EXPECT_EQ(*second.next_offset, 42);
  EXPECT_EQ(second.epoch, 2);
  // Another group has its own offsets in the same file.
  SqliteOffsetStore other(path_, "other");
  EXPECT_FALSE(other.claim(tp_).next_offset.has_value());
}

TEST_F(SqliteOffsetStoreTest, RowsAndOffsetsCommitOrRollBackTogether) {
  SqliteOffsetStore s(path_, "g");
  ASSERT_EQ(sqlite3_exec(s.handle(), "CREATE TABLE rows (v INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto c = s.claim(tp_);
  s.begin();
  insert_row(s, 1);
  ASSERT_TRUE(s.store(tp_, 1, c.epoch));
  s.rollback();
  EXPECT_EQ(count_rows(s), 0);
  s.begin();
  insert_row(s, 1);
  insert_row(s, 2);
  ASSERT_TRUE(s.store(tp_, 2, c.epoch));
  s.commit();
  EXPECT_EQ(count_rows(s), 2);
  SqliteOffsetStore reader(path_, "g");
  EXPECT_EQ(reader.claim(tp_).next_offset, 2);
}

// A consumer that lost the partition (paused, then resumed after a new owner
// claimed it) must not write: its store() finds another epoch, it rolls
// back, and none of its rows are kept.
TEST_F(SqliteOffsetStoreTest, ZombieIsFencedByTheNewOwnersEpoch) {
  SqliteOffsetStore zombie(path_, "g");
  ASSERT_EQ(sqlite3_exec(zombie.handle(), "CREATE TABLE rows (v INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto old_claim = zombie.claim(tp_);
  zombie.begin();
  insert_row(zombie, 1);
  ASSERT_TRUE(zombie.store(tp_, 1, old_claim.epoch));
  zombie.commit();

  SqliteOffsetStore owner(path_, "g");
  const auto new_claim = owner.claim(tp_);
  EXPECT_EQ(new_claim.next_offset, 1);
  EXPECT_GT(new_claim.epoch, old_claim.epoch);

  zombie.begin();
  insert_row(zombie, 2);
  EXPECT_FALSE(zombie.store(tp_, 2, old_claim.epoch)) << "a zombie's offset write must be refused";
  zombie.rollback();
  EXPECT_EQ(count_rows(owner), 1) << "the zombie's row must not be kept";

  owner.begin();
  insert_row(owner, 2);
  EXPECT_TRUE(owner.store(tp_, 2, new_claim.epoch));
  owner.commit();
  EXPECT_EQ(count_rows(owner), 2);
}

TEST_F(SqliteOffsetStoreTest, ReadDoesNotClaimAndBatchClaimTakesAllInOneTransaction) {
  SqliteOffsetStore s(path_, "g");
  const kc::TopicPartition other{"orders", kc::Partition{4}};
  const auto never = s.read(tp_);
  EXPECT_EQ(never.epoch, 0) << "never claimed";
  EXPECT_FALSE(never.next_offset.has_value());
  const std::vector<kc::TopicPartition> both{tp_, other};
  const auto claims = s.claim(both);
  ASSERT_EQ(claims.size(), 2u);
  EXPECT_EQ(claims[0].epoch, 1);
  EXPECT_EQ(claims[1].epoch, 1);
  s.begin();
  ASSERT_TRUE(s.store(other, 9, claims[1].epoch));
  s.commit();
  const auto r = s.read(other);
  EXPECT_EQ(r.epoch, 1) << "read() leaves the epoch alone";
  EXPECT_EQ(r.next_offset, 9);
  EXPECT_FALSE(s.in_transaction()) << "read() leaves no read transaction open";
}

TEST_F(SqliteOffsetStoreTest, AClaimInsideATransactionGoesWithIt) {
  SqliteOffsetStore s(path_, "g");
  s.claim(tp_);
  s.begin();
  EXPECT_EQ(s.claim_in_transaction(tp_).epoch, 2);
  EXPECT_EQ(s.read(tp_).epoch, 2) << "visible inside the transaction";
  s.rollback();
  EXPECT_EQ(s.read(tp_).epoch, 1) << "gone with the rollback";
  s.begin();
  const auto c = s.claim_in_transaction(tp_);
  EXPECT_TRUE(s.store(tp_, 3, c.epoch));
  s.commit();
  EXPECT_EQ(s.read(tp_).epoch, 2);
  EXPECT_EQ(s.read(tp_).next_offset, 3);
}

TEST_F(SqliteOffsetStoreTest, BusyDatabaseIsRetriable) {
  SqliteOffsetStore s(path_, "g", 20);
  SqliteOffsetStore other(path_, "g", 20);
  other.begin();
  try {
    s.claim(tp_);
    FAIL() << "claimed while another connection holds the write lock";
  } catch (const kc::Error& e) {
    EXPECT_TRUE(e.retriable()) << e.what();
  }
  other.rollback();
  EXPECT_EQ(s.claim(tp_).epoch, 1);
}

TEST_F(SqliteOffsetStoreTest, UnopenablePathIsNamedInTheError) {
  try {
    SqliteOffsetStore s("/nonexistent-dir/kc.db", "g");
    FAIL() << "expected an error";
  } catch (const kc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/kc.db"), std::string::npos) << e.what();
  }
}

}  // namespace
