// audit: a session's history checked against made-up log records (no broker), and verify's comparison of two
// sets of state hashes. The end-to-end runs against Kafka are in tests/replay.
#include "connectors/audit/audit.h"

#include <gtest/gtest.h>

#include "connectors/audit/verify.h"
#include "support/memory_fold.h"

namespace statefold::audit {
namespace {

using testing::MemoryFold;

MemoryFold folded() {
  MemoryFold f;
  f.fold({testing::opened(1, "s"), testing::message(2, "s", "user", "hello"), testing::message(3, "s", "assistant", "hi"),
          testing::message(4, "other", "user", "x")});
  f.fold({testing::message(2, "s", "user", "hello")});  // a duplicate: refused, listed
  return f;
}

// The log as the records folded: partition 0, by offset; `edit` may change or drop them.
RecordSource log_of(const MemoryFold& f, std::function<void(std::map<std::int64_t, log::StoredRecord>&)> edit = {}) {
  return [&f, edit](std::int32_t partition, const std::vector<std::int64_t>& offsets) {
    std::map<std::int64_t, log::StoredRecord> out;
    for (auto offset : offsets) {
      auto it = f.records.find(offset);
      if (partition != 0 || it == f.records.end()) continue;
      out[offset] = log::StoredRecord{partition, offset, 0, std::nullopt, it->second, ""};
    }
    if (edit) edit(out);
    return base::Result<std::map<std::int64_t, log::StoredRecord>>(std::move(out));
  };
}

TEST(Audit, UntouchedHistoryMatchesTheLog) {
  const auto f = folded();
  auto report = audit_session(f.kv, "s", log_of(f));
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_TRUE(report->has_value());
  const auto& r = **report;
  EXPECT_TRUE(r.ok()) << r.problem;
  EXPECT_EQ(r.version, 3u);
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[1].payload_type, "Message");
  EXPECT_EQ(r.events[2].offset, 2);
  ASSERT_EQ(r.refusals.size(), 1u);
  EXPECT_EQ(r.refusals[0].kind, "duplicate");
  EXPECT_EQ(r.refusals[0].offset, 4);
  EXPECT_NE(to_text(r).find("OK: the history matches the log\n"), std::string::npos) << to_text(r);
  EXPECT_NE(to_json(r).find(R"("ok":true)"), std::string::npos);
}

TEST(Audit, NamesTheFirstBadVersion) {
  const auto f = folded();
  // The record of version 2 replaced by another session's event, and version 3's gone.
  auto report = audit_session(f.kv, "s", log_of(f, [&](auto& records) {
    records[1].value = f.records.at(3);
    records.erase(2);
  }));
  ASSERT_TRUE(report.ok() && report->has_value());
  const auto& r = **report;
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.first_bad_version, 2u);
  EXPECT_EQ(r.problem, "the record belongs to session other");
  EXPECT_TRUE(r.events[0].problem.empty());
  EXPECT_EQ(r.events[2].problem, "no record at partition 0 offset 2");
  EXPECT_NE(to_text(r).find("MISMATCH at version 2: the record belongs to session other\n"), std::string::npos);
}

TEST(Audit, NoSessionAndUnreadableLogAreTold) {
  const auto f = folded();
  auto none = audit_session(f.kv, "nobody", log_of(f));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto failing = audit_session(f.kv, "s", [](std::int32_t, const std::vector<std::int64_t>&) {
    return base::Result<std::map<std::int64_t, log::StoredRecord>>(base::make_error("broker down"));
  });
  ASSERT_FALSE(failing.ok());
  EXPECT_EQ(failing.error().message, "broker down");
}

TEST(Verify, ComparesStateHashesBothWays) {
  const auto f = folded();
  auto hashes = state_hashes(f.kv);
  ASSERT_TRUE(hashes.ok());
  ASSERT_EQ(hashes->size(), 2u);
  auto same = compare(*hashes, *hashes);
  EXPECT_TRUE(same.ok());
  EXPECT_EQ(same.live_store_hash, same.rebuilt_store_hash);

  auto rebuilt = *hashes;
  rebuilt["s"] = std::string(64, '0');
  rebuilt.erase("other");
  rebuilt["extra"] = std::string(64, '1');
  auto report = compare(*hashes, rebuilt);
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.differing.size(), 3u);
  EXPECT_EQ(report.differing[0].session_id, "other");
  EXPECT_FALSE(report.differing[0].rebuilt.has_value());
  EXPECT_EQ(report.differing[1].session_id, "s");
  EXPECT_EQ(report.differing[2].session_id, "extra");
  EXPECT_FALSE(report.differing[2].live.has_value());
  EXPECT_NE(to_text(report, 7, 1).find("MISMATCH: 3 session(s) differ\n"), std::string::npos);
  EXPECT_EQ(to_text(report, 7, 1).find("DIFFERS s:"), std::string::npos) << "--show bounds the list";
}

}  // namespace
}  // namespace statefold::audit
