// The store against a real RocksDB: atomic state + offsets, scans, read-only opening, schema version refusal.
#include "engine/store/store.h"

#include <gtest/gtest.h>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fold/layout.h"
#include "support/temp_dir.h"

namespace statefold::store {
namespace {

std::unique_ptr<Store> open_store(const std::string& path, bool read_only = false, bool wal = true) {
  Options options;
  options.path = path;
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
    writes.put("x-to-delete", "soon gone");
    ASSERT_TRUE(store->commit(writes, {{0, 10}, {3, 7}}).ok());
    fold::WriteSet second;
    second.erase("x-to-delete");
    ASSERT_TRUE(store->commit(second, {{0, 11}}).ok());
    EXPECT_EQ(store->get("hsession"), "header");
    EXPECT_FALSE(store->get("x-to-delete"));
  }
  auto store = open_store(dir.path());
  EXPECT_EQ(store->get("hsession"), "header");
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{0, 11}, {3, 7}}));
}

TEST(Store, ScanVisitsOnlyThePrefixInOrderFromStart) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  fold::WriteSet writes;
  for (std::uint64_t v : {3, 1, 2, 300}) writes.put(fold::key::history("s", v), std::to_string(v));
  writes.put(fold::key::history("s2", 1), "other session");
  writes.put(fold::key::history("r", 1), "before");
  ASSERT_TRUE(store->commit(writes, {}).ok());
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
  ASSERT_TRUE(writer->commit(writes, {{0, 1}}).ok());
  auto reader = open_store(dir.path(), true);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->get("hsession"), "v1");
  EXPECT_EQ(reader->offsets().at(0), 1);
}

TEST(Store, SnapshotReadsStayConsistentWhileBatchesCommit) {
  testing::TempDir dir;
  auto store = open_store(dir.path());
  fold::WriteSet first;
  first.put("hs", "v1");
  first.put(fold::key::history("s", 1), "e1");
  ASSERT_TRUE(store->commit(first, {{0, 1}}).ok());
  auto snapshot = store->snapshot();
  fold::WriteSet second;
  second.put("hs", "v2");
  second.put(fold::key::history("s", 2), "e2");
  ASSERT_TRUE(store->commit(second, {{0, 2}}).ok());
  EXPECT_EQ(snapshot->get("hs"), "v1");
  int entries = 0;
  snapshot->scan(fold::key::history_prefix("s"), [&](std::string_view, std::string_view) { return ++entries, true; });
  EXPECT_EQ(entries, 1);
  EXPECT_EQ(store->get("hs"), "v2");
}

TEST(Store, RefusesAStoreOfAnotherSchemaVersion) {
  testing::TempDir dir;
  {
    auto store = open_store(dir.path());
    fold::WriteSet writes;
    std::string v;
    fold::key::append_be64(v, fold::kStateSchemaVersion + 1);
    writes.put(std::string(fold::key::kSchemaVersion), v);
    ASSERT_TRUE(store->commit(writes, {}).ok());
  }
  Options options;
  options.path = dir.path();
  auto store = Store::open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("state schema version"), std::string::npos);
  EXPECT_NE(store.error().message.find("replay"), std::string::npos);
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
    ASSERT_TRUE(store->commit(writes, {{0, 10}}).ok());
  }  // closing flushes the memtable
  auto store = open_store(dir.path(), true);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->get("hsession"), "header");
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{0, 10}}));
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
  options.wal = false;
  auto store = Store::open(options);
  if (!store) ::_exit(2);
  fold::WriteSet first;
  first.put("hsession", "v1");
  if (!(*store)->commit(first, {{0, 10}})) ::_exit(3);
  (*store)->flush_unflushed();
  // The flush runs in the background; wait until it is in the files (a read-only open sees it).
  bool flushed = false;
  for (int i = 0; i < 3000 && !flushed; ++i) {
    Options ro = options;
    ro.read_only = true;
    ro.wal = true;
    auto seen = Store::open(ro);
    flushed = seen && (*seen)->get("hsession") == "v1";
    if (!flushed) ::usleep(10000);
  }
  if (!flushed) ::_exit(5);
  fold::WriteSet second;
  second.put("hsession", "v2");
  second.put("hother", "x");
  if (!(*store)->commit(second, {{0, 20}, {1, 5}})) ::_exit(4);
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
  EXPECT_EQ(store->get("hsession"), "v1");
  EXPECT_FALSE(store->get("hother"));
  EXPECT_EQ(store->offsets(), (std::map<std::int32_t, std::int64_t>{{0, 10}}));
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
