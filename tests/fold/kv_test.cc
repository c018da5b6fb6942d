// fold::Overlay: the engine folds batch n+1 through the writes of batch n while the store commits them, so the
// overlay must read exactly what the store will hold once batch n is in.
#include "engine/fold/kv.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace statefold::fold {
namespace {

std::vector<std::pair<std::string, std::string>> scan_all(const Reader& reader, std::string_view prefix,
                                                          std::string_view start) {
  std::vector<std::pair<std::string, std::string>> out;
  reader.scan(prefix, start, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  return out;
}

class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteSet base_writes;
    base_writes.put("a1", "base-a1");
    base_writes.put("a2", "base-a2");
    base_writes.put("a4", "base-a4");
    base_writes.put("b1", "base-b1");
    base.apply(base_writes);
    pending.put("a2", "pending-a2");  // overwrites
    pending.erase("a4");              // deletes
    pending.put("a3", "pending-a3");  // adds between
    pending.put("a9", "pending-a9");  // adds after the last stored key
    pending.erase("a7");              // deletes what the base never had
    pending.put("c1", "pending-c1");  // outside the scanned prefix
  }
  MemoryKv base;
  WriteSet pending;
};

TEST_F(OverlayTest, ReadsWhatTheStoreHoldsOnceThePendingBatchIsIn) {
  Overlay overlay(pending, base);
  MemoryKv committed = base;
  committed.apply(pending);
  for (const char* key : {"a1", "a2", "a3", "a4", "a7", "a9", "b1", "c1", "zz"}) {
    EXPECT_EQ(overlay.get(key), committed.get(key)) << key;
  }
  for (auto [prefix, start] : {std::pair{"a", "a"}, {"a", "a25"}, {"a", "a4"}, {"", ""}, {"b", "b"}, {"c", "c"},
                               {"d", "d"}}) {
    EXPECT_EQ(scan_all(overlay, prefix, start), scan_all(committed, prefix, start)) << prefix << " from " << start;
  }
}

TEST_F(OverlayTest, ScanStopsWhenTheVisitorSaysSo) {
  Overlay overlay(pending, base);
  std::vector<std::string> seen;
  overlay.scan("a", [&](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a1", "a2"}));
}

}  // namespace
}  // namespace statefold::fold
