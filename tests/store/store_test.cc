// The store against a real RocksDB: atomic state + offsets, scans, read-only opening, schema version refusal.
#include "engine/store/store.h"

#include <gtest/gtest.h>

#include "engine/fold/layout.h"
#include "support/temp_dir.h"

namespace statefold::store {
namespace {

std::unique_ptr<Store> open_store(const std::string& path, bool read_only = false) {
  Options options;
  options.path = path;
  options.read_only = read_only;
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
