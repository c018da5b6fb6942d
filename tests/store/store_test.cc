// The store against a real RocksDB: atomic state + offsets, scans, read-only opening, schema version refusal, and
// state kept per partition (a session's keys in its home partition, a partition taken or dropped as a unit).
#include "engine/store/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fold/layout.h"
#include "engine/log/log.h"
#include "support/temp_dir.h"

namespace statefold::store {
namespace {

constexpr int kPartitions = 4;

// Where the store keeps a session's keys: its home partition, as the producer places its events.
std::int32_t home(std::string_view session) { return log::partition_for_key(session, kPartitions); }

// Two sessions whose home partitions differ.
std::pair<std::string, std::string> sessions_apart() {
  for (int i = 1;; ++i) {
    std::string other = "s";
    other += std::to_string(i);  // not "s" + to_string: GCC 12 -O3 warns falsely (-Wrestrict)
    if (home(other) != home("s0")) return {"s0", other};
  }
}

std::unique_ptr<Store> open_store(const std::string& path, bool read_only = false, bool wal = true) {
  Options options;
  options.path = path;
  options.partitions = read_only ? 0 : kPartitions;
  options.read_only = read_only;
  options.wal = wal;
  options.memory_budget_bytes = 16 << 20;
  auto store = Store::open(options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(Store, CommitsStateAndOffsetsTogetherAndKeepsThemAcrossReopen) {
  testing::TempDir dir;
  {
    auto store = open_store(dir.path());
    fold::WriteSet writes;
    writes.put("hsession", "header");
    writes.put(fold::key::history("session", 1), "soon gone");
    ASSERT_TRUE(store->commit({{home("session"), &writes}}, {{0, 10}, {3, 7}}).ok());
    fold::WriteSet second;
    second.erase(fold::key::history("session", 1));
    ASSERT_TRUE(store->commit(home("session"), second, 11).ok());
    EXPECT_EQ(store->get("hsession"), "header");
    EXPECT_FALSE(store->get(fold::key::history("session", 1)));
  }
  auto store = open_store(dir.path());
  EXPECT_EQ(store->get("hsession"), "header");
  const std::int32_t p = home("session");
  std::map<std::int32_t, std::int64_t> expected{{0, 10}, {3, 7}};
  expected[p] = 11;
  EXPECT_EQ(store->offsets(), expected);
}

TEST(Store, VisitSerialisedNamesEveryKeyOfATappedBatchWithItsValueSize) {
  testing::TempDir dir;
  std::vector<std::string> tapped;
  Options options;
  options.path = dir.path();
  options.partitions = kPartitions;
  options.memory_budget_bytes = 16 << 20;
  options.batch_tap = [&tapped](std::string_view batch) { tapped.emplace_back(batch); };
  auto store = Store::open(options);
  ASSERT_TRUE(store.ok()) << store.error().message;
  fold::WriteSet writes;
  writes.put(fold::key::history("session", 1), "twelve bytes");
  writes.erase(fold::key::history("session", 0));
  ASSERT_TRUE(store.value()->commit(home("session"), writes, 5).ok());
  ASSERT_EQ(tapped.size(), 1u);

  std::vector<std::pair<std::string, std::size_t>> seen;
  auto visited = Store::visit_serialised(tapped.front(), [&seen](std::string_view key, std::size_t value_bytes) {
    seen.emplace_back(std::string(key), value_bytes);
  });
  ASSERT_TRUE(visited.ok()) << visited.error().message;
  const std::vector<std::pair<std::string, std::size_t>> expected = {
      {fold::key::history("session", 0), 0},  // the delete
      {fold::key::history("session", 1), 12},
      {fold::key::offset(home("session")), 8},
  };
  EXPECT_EQ(seen, expected);

  auto broken = Store::visit_serialised("not a write batch", [](std::string_view, std::size_t) {});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("serialised WriteBatch"), std::string::npos) << broken.error().message;
}

TEST(Store, ScanVisitsOnlyThePrefixInOrderFromStart) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  fold::WriteSet writes;
  for (std::uint64_t v : {3, 1, 2, 300}) writes.put(fold::key::history("s", v), std::to_string(v));
  writes.put(fold::key::history("s2", 1), "other session");
  writes.put(fold::key::history("r", 1), "before");
  ASSERT_TRUE(store->commit(home("s"), writes).ok());
  std::vector<std::string> seen;
  store->scan(fold::key::history_prefix("s"), [&](std::string_view, std::string_view v) {
    seen.emplace_back(v);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "3", "300"}));
  seen.clear();
  store->scan(fold::key::history_prefix("s"), fold::key::history("s", 3), [&](std::string_view, std::string_view v) {
    seen.emplace_back(v);
    return seen.size() < 1;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"3"}));
}

TEST(Store, ReadOnlyOpenSeesALiveStoreWithoutLockingIt) {
  testing::TempDir dir;
  auto writer = open_store(dir.path());
  fold::WriteSet writes;
  writes.put("hsession", "v1");
  ASSERT_TRUE(writer->commit(home("session"), writes, 1).ok());
  auto reader = open_store(dir.path(), true);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->partition_count(), kPartitions);
  EXPECT_EQ(reader->get("hsession"), "v1");
  EXPECT_EQ(reader->offsets().at(home("session")), 1);
}

TEST(Store, SnapshotReadsStayConsistentWhileBatchesCommit) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  fold::WriteSet first;
  first.put("hs", "v1");
  first.put(fold::key::history("s", 1), "e1");
  ASSERT_TRUE(store->commit(home("s"), first, 1).ok());
  auto snapshot = store->snapshot();
  fold::WriteSet second;
  second.put("hs", "v2");
  second.put(fold::key::history("s", 2), "e2");
  ASSERT_TRUE(store->commit(home("s"), second, 2).ok());
  EXPECT_EQ(snapshot->get("hs"), "v1");
  int entries = 0;
  snapshot->scan(fold::key::history_prefix("s"), [&](std::string_view, std::string_view) { return ++entries, true; });
  EXPECT_EQ(entries, 1);
  EXPECT_EQ(store->get("hs"), "v2");
}

TEST(Store, RefusesAStoreOfAnotherSchemaVersion) {
  testing::TempDir dir;
  {
    // A store of the last layout (version 4: one keyspace, no partitions) as that build left it.
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    fold::key::append_be64(v, 4);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string(fold::key::kSchemaVersion), v).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "hsession", "a version 4 header").ok());
  }
  Options options;
  options.path = dir.path();
  auto store = Store::open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("state schema version 4"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("replay"), std::string::npos);
}

TEST(Store, RefusesAStoreWrittenForAnotherPartitionCount) {
  testing::TempDir dir;
  {
    auto store = open_store(dir.path());
    fold::WriteSet writes;
    writes.put("hsession", "header");
    ASSERT_TRUE(store->commit(home("session"), writes, 1).ok());
  }
  Options options;
  options.path = dir.path();
  options.partitions = kPartitions * 2;
  auto store = Store::open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("4 partitions"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("has 8"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("replay"), std::string::npos);
}

TEST(Store, RefusesAPartitionTheTopicDoesNotHave) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  fold::WriteSet writes;
  writes.put("hsession", "header");
  auto committed = store->commit(kPartitions, writes, 1);
  ASSERT_FALSE(committed.ok());
  EXPECT_NE(committed.error().message.find("partition 4"), std::string::npos) << committed.error().message;
  EXPECT_TRUE(store->partitions().empty()) << "nothing of a refused batch is made";
}

// A session's keys are found in its home partition whatever view reads them; a partition's view holds only its
// own sessions; store-wide reads merge the partitions in key order, a key kept by several (a usage row, the
// summary) once for each.
TEST(Store, KeepsEachPartitionsStateApartAndMergesThemForStoreWideReads) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  const auto [a, b] = sessions_apart();
  fold::WriteSet in_a;
  in_a.put(fold::key::header(a), "header a");
  in_a.put(fold::key::history(a, 1), "a1");
  in_a.put("u-row", "a's partition");
  fold::WriteSet in_b;
  in_b.put(fold::key::header(b), "header b");
  in_b.put("u-row", "b's partition");
  ASSERT_TRUE(store->commit({{home(a), &in_a}, {home(b), &in_b}}, {{home(a), 5}, {home(b), 9}}).ok());

  EXPECT_EQ(store->get(fold::key::header(a)), "header a");
  EXPECT_EQ(store->get(fold::key::header(b)), "header b");
  EXPECT_EQ(store->partition(home(a))->get(fold::key::header(a)), "header a");
  EXPECT_FALSE(store->partition(home(a))->get(fold::key::header(b))) << "b lives in its own partition";
  EXPECT_FALSE(store->partition(home(b))->get(fold::key::history(a, 1)));
  EXPECT_EQ(store->partitions(), (std::vector<std::int32_t>{std::min(home(a), home(b)), std::max(home(a), home(b))}));

  std::vector<std::string> headers;
  store->scan(std::string(1, fold::key::kHeader), [&](std::string_view k, std::string_view) {
    headers.emplace_back(k.substr(1));
    return true;
  });
  EXPECT_EQ(headers, (std::vector<std::string>{a, b})) << "every partition's sessions, in id order";
  std::vector<std::string> rows;
  store->scan("u", [&](std::string_view, std::string_view v) {
    rows.emplace_back(v);
    return true;
  });
  std::vector<std::string> expected{"a's partition", "b's partition"};
  if (home(b) < home(a)) std::swap(expected[0], expected[1]);
  EXPECT_EQ(rows, expected) << "a key two partitions hold is visited once for each, in partition order";
}

TEST(Store, DropsAPartitionWholeAndLeavesTheOthers) {
  testing::TempDir dir;
  const auto [a, b] = sessions_apart();
  {
    auto store = open_store(dir.path());
    fold::WriteSet in_a;
    in_a.put(fold::key::header(a), "header a");
    fold::WriteSet in_b;
    in_b.put(fold::key::header(b), "header b");
    ASSERT_TRUE(store->commit({{home(a), &in_a}, {home(b), &in_b}}, {{home(a), 5}, {home(b), 9}}).ok());
    auto reading = store->partition(home(a));  // a read under way when the partition goes
    ASSERT_TRUE(store->drop_partition(home(a)).ok());
    EXPECT_FALSE(store->get(fold::key::header(a)));
    EXPECT_EQ(store->get(fold::key::header(b)), "header b");
    EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{home(b), 9}}));
    EXPECT_EQ(store->partitions(), std::vector<std::int32_t>{home(b)});
    EXPECT_EQ(reading->get(fold::key::header(a)), "header a") << "a reader that had the partition finishes on it";
    EXPECT_TRUE(store->drop_partition(home(a)).ok()) << "dropping what is not there is no error";
    // Gained again later, it starts empty and is folded from the log.
    fold::WriteSet again;
    again.put(fold::key::header(a), "header a, refolded");
    ASSERT_TRUE(store->commit(home(a), again, 5).ok());
  }
  auto store = open_store(dir.path());
  EXPECT_EQ(store->get(fold::key::header(a)), "header a, refolded");
  EXPECT_EQ(store->get(fold::key::header(b)), "header b");
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{home(a), 5}, {home(b), 9}}));
}

TEST(Store, WalOffIsRefusedWithSyncWrites) {
  testing::TempDir dir;
  Options options;
  options.path = dir.path();
  options.wal = false;
  options.sync_writes = true;
  auto store = Store::open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, base::ErrorCode::invalid_argument);
  EXPECT_NE(store.error().message.find("WAL"), std::string::npos);
}

TEST(Store, WalOffKeepsEverythingAcrossACleanClose) {
  testing::TempDir dir;
  {
    auto store = open_store(dir.path(), false, false);
    fold::WriteSet writes;
    writes.put("hsession", "header");
    ASSERT_TRUE(store->commit(home("session"), writes, 10).ok());
  }  // closing flushes the memtable
  auto store = open_store(dir.path(), true);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->get("hsession"), "header");
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{home("session"), 10}}));
}

// The writer of the test below, run as a process of its own (a forked child would have none of RocksDB's
// background threads, which the parent's earlier tests started): commits, flushes, commits again, then dies
// without closing the store, as after a kill -9.
TEST(StoreChild, WalOffWriterDiesAfterAFlushAndOneMoreBatch) {
  const char* dir = std::getenv("STATEFOLD_STORE_CHILD_DIR");
  if (dir == nullptr) GTEST_SKIP() << "run by WalOffAfterACrashComesBackAtTheLastFlushWithItsOffsets";
  Options options;
  options.path = dir;
  options.memory_budget_bytes = 16 << 20;
  options.partitions = kPartitions;
  options.wal = false;
  auto store = Store::open(options);
  if (!store) ::_exit(2);
  const auto [a, b] = sessions_apart();
  fold::WriteSet first;
  first.put(fold::key::header(a), "v1");
  if (!(*store)->commit(home(a), first, 10)) ::_exit(3);
  (*store)->flush_unflushed();
  // The flush runs in the background; wait until it is in the files (a read-only open sees it).
  bool flushed = false;
  for (int i = 0; i < 3000 && !flushed; ++i) {
    Options ro = options;
    ro.read_only = true;
    ro.wal = true;
    auto seen = Store::open(ro);
    flushed = seen && (*seen)->get(fold::key::header(a)) == "v1";
    if (!flushed) ::usleep(10000);
  }
  if (!flushed) ::_exit(5);
  // The next batch spans two partitions, one of them new: neither may survive without the other.
  fold::WriteSet second_a;
  second_a.put(fold::key::header(a), "v2");
  fold::WriteSet second_b;
  second_b.put(fold::key::header(b), "x");
  if (!(*store)->commit({{home(a), &second_a}, {home(b), &second_b}}, {{home(a), 20}, {home(b), 5}})) ::_exit(4);
  ::_exit(0);  // no destructor: what a kill -9 leaves
}

// A process killed with the WAL off: the store comes back at its last flush, state and offsets of the same batches
// (a prefix), never a batch's state without its offsets.
TEST(Store, WalOffAfterACrashComesBackAtTheLastFlushWithItsOffsets) {
  testing::TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv("STATEFOLD_STORE_CHILD_DIR", dir.path().c_str(), 1);
    ::execl("/proc/self/exe", "store_test", "--gtest_filter=StoreChild.*", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the writer ended with status " << status;
  auto store = open_store(dir.path(), false, false);
  ASSERT_TRUE(store);
  const auto [a, b] = sessions_apart();
  EXPECT_EQ(store->get(fold::key::header(a)), "v1");
  EXPECT_FALSE(store->get(fold::key::header(b)));
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{home(a), 10}}));
}

TEST(Store, ReadOnlyOpenOfAMissingStoreFailsClearly) {
  testing::TempDir dir;
  Options options;
  options.path = dir.path() + "/nothing-here";
  options.read_only = true;
  auto store = Store::open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("nothing-here"), std::string::npos);
}

}  // namespace
}  // namespace statefold::store
