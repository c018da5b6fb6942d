// fold/read.h: typed reads of stored state, bounded history pages, and damage reported as an error naming what
// and where, never misread.
#include "engine/fold/read.h"

#include <gtest/gtest.h>

#include "engine/fold/layout.h"
#include "support/memory_fold.h"

namespace statefold::fold {
namespace {

using testing::MemoryFold;

// s: opened, 10 messages (versions 2..11), two memory entries; t: one message.
MemoryFold folded() {
  MemoryFold f;
  std::vector<std::string> lines = {testing::opened(1, "s")};
  for (std::uint64_t i = 0; i < 10; ++i) {
    std::string text = "m";
    text += std::to_string(i);  // not "m" + std::to_string(i): GCC 12 -O3 false -Wrestrict (GCC bug 105651)
    lines.push_back(testing::message(10 + i, "s", "user", text));
  }
  lines.push_back(testing::memory_set(30, "s", "zeta", "last"));
  lines.push_back(testing::memory_set(31, "s", "alpha", "first"));
  lines.push_back(testing::message(40, "t", "user", "other"));
  f.fold(lines);
  return f;
}

std::vector<std::uint64_t> versions(const Reader& reader, std::string_view sid, const HistoryBounds& bounds,
                                    std::optional<std::uint64_t>* next = nullptr) {
  std::vector<std::uint64_t> out;
  auto read = visit_history(reader, sid, bounds, [&](const HistoryRecord& r) {
    out.push_back(r.version());
    return true;
  });
  EXPECT_TRUE(read.ok()) << read.error().message;
  if (next != nullptr && read.ok()) *next = *read;
  return out;
}

TEST(Read, HeaderAndSummary) {
  const auto f = folded();
  auto header = read_header(f.kv, "s");
  ASSERT_TRUE(header.ok()) << header.error().message;
  ASSERT_TRUE(header->has_value());
  EXPECT_EQ((*header)->version, 13u);
  EXPECT_EQ((*header)->messages, 10u);
  EXPECT_EQ((*header)->model, "m");
  auto none = read_header(f.kv, "nobody");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  auto summary = read_summary(f.kv);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->sessions, 2u);
  EXPECT_EQ(summary->events_applied, 14u);
  auto empty = read_summary(MemoryKv());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->sessions, 0u);
  EXPECT_EQ(empty->store_hash, std::vector<std::uint8_t>(32, 0));
}

TEST(Read, HistoryPagesAreBoundedAndSayWhereTheNextStarts) {
  const auto f = folded();
  std::optional<std::uint64_t> next;
  EXPECT_EQ(versions(f.kv, "s", {.from = 3, .limit = 4}, &next), (std::vector<std::uint64_t>{3, 4, 5, 6}));
  EXPECT_EQ(next, 7u);
  EXPECT_EQ(versions(f.kv, "s", {.from = 10, .limit = 4}, &next), (std::vector<std::uint64_t>{10, 11, 12, 13}));
  EXPECT_EQ(next, std::nullopt) << "the last page has no next";
  EXPECT_EQ(versions(f.kv, "s", {.from = 2, .through = 4}, &next), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(next, std::nullopt);
  EXPECT_EQ(versions(f.kv, "s", {.from = 0, .limit = 1}, &next), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(next, 2u);
  EXPECT_EQ(versions(f.kv, "s", {.limit = 0}, &next), std::vector<std::uint64_t>{});
  EXPECT_EQ(next, 1u);
  EXPECT_EQ(versions(f.kv, "t", {}), (std::vector<std::uint64_t>{1})) << "another session's history stays apart";
  EXPECT_TRUE(versions(f.kv, "nobody", {}).empty());

  // The visitor stops the read; the typed event is there.
  std::vector<std::string> payloads;
  auto stopped = visit_history(f.kv, "s", {}, [&](const HistoryRecord& r) {
    payloads.push_back(codec::payload_type_name(static_cast<std::uint8_t>(r.event.payload_type())));
    return payloads.size() < 2;
  });
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(*stopped, std::nullopt);
  EXPECT_EQ(payloads, (std::vector<std::string>{"SessionOpened", "Message"}));
}

TEST(Read, HistoryEntryByVersion) {
  const auto f = folded();
  auto entry = read_history_entry(f.kv, "s", 5);
  ASSERT_TRUE(entry.ok());
  ASSERT_TRUE(entry->has_value());
  EXPECT_EQ((*entry)->version, 5u);
  EXPECT_EQ((*entry)->offset, 4);
  auto event = codec::decode((*entry)->event, codec::Encoding::flatbuffers);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->session_id(), "s");
  auto missing = read_history_entry(f.kv, "s", 14);
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(Read, MemoryInLabelOrderAndRefusalsInOrder) {
  auto f = folded();
  auto memory = read_memory(f.kv, "s");
  ASSERT_TRUE(memory.ok());
  ASSERT_EQ(memory->size(), 2u);
  EXPECT_EQ((*memory)[0].label, "alpha");
  EXPECT_EQ((*memory)[0].value, "first");
  EXPECT_EQ((*memory)[0].version, 13u);
  EXPECT_EQ((*memory)[1].label, "zeta");
  EXPECT_EQ((*memory)[1].version, 12u);

  // A duplicate of version 2's event, then a write expecting a stale version.
  f.fold({testing::message(10, "s", "user", "m0"), testing::event(50, "s", "Message", R"({"role":"user","content":[]})",
                                                                  R"("expected_version":3,)")});
  auto refusals = read_refusals(f.kv, "s");
  ASSERT_TRUE(refusals.ok());
  ASSERT_EQ(refusals->size(), 2u);
  EXPECT_EQ((*refusals)[0].kind, static_cast<std::uint8_t>(Outcome::duplicate));
  EXPECT_EQ((*refusals)[0].duplicate_of, 2u);
  EXPECT_EQ((*refusals)[1].kind, static_cast<std::uint8_t>(Outcome::rejected));
  EXPECT_EQ((*refusals)[1].actual_version, 13u);
  auto second = read_refusals(f.kv, "s", 2, 5);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].kind, static_cast<std::uint8_t>(Outcome::rejected));
  auto first = read_refusals(f.kv, "s", 1, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 1u);
}

TEST(Read, SessionsByPrefixAfterACursor) {
  auto f = folded();
  f.fold({testing::message(60, "s2", "user", "x"), testing::message(61, "u", "user", "y")});
  std::vector<std::string> ids;
  auto more = visit_sessions(f.kv, "s", "", 1, [&](std::string_view id, const state::SessionHeaderT&) {
    ids.emplace_back(id);
  });
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(*more);
  EXPECT_EQ(ids, (std::vector<std::string>{"s"}));
  ids.clear();
  more = visit_sessions(f.kv, "s", "s", 10, [&](std::string_view id, const state::SessionHeaderT&) {
    ids.emplace_back(id);
  });
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more) << "t and u do not start with s";
  EXPECT_EQ(ids, (std::vector<std::string>{"s2"}));
  ids.clear();
  more = visit_sessions(f.kv, "", "s2", 10, [&](std::string_view id, const state::SessionHeaderT&) {
    ids.emplace_back(id);
  });
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  EXPECT_EQ(ids, (std::vector<std::string>{"t", "u"}));
}

TEST(Read, ADamagedValueIsAnErrorNamingItNotAMisread) {
  auto f = folded();
  f.put_raw(key::history("s", 5), "not a flatbuffer at all, just text");
  std::vector<std::uint64_t> seen;
  auto read = visit_history(f.kv, "s", {}, [&](const HistoryRecord& r) {
    seen.push_back(r.version());
    return true;
  });
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.error().message.find("history entry of session s at version 5"), std::string::npos)
      << read.error().message;
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2, 3, 4})) << "nothing from the damaged entry on";
  auto by_version = read_history_entry(f.kv, "s", 5);
  EXPECT_FALSE(by_version.ok());

  // An entry that verifies but holds bytes that are not an event.
  state::HistoryEntryT entry;
  entry.version = 6;
  entry.event = {1, 2, 3};
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(state::HistoryEntry::Pack(builder, &entry));
  f.put_raw(key::history("s", 6), std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize()));
  auto event = read_history_entry(f.kv, "s", 6);
  ASSERT_FALSE(event.ok());
  EXPECT_NE(event.error().message.find("version 6"), std::string::npos) << event.error().message;

  f.put_raw(key::header("t"), std::string(3, '\xff'));
  auto header = read_header(f.kv, "t");
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.error().message.find("session header of session t"), std::string::npos) << header.error().message;
  auto sessions = visit_sessions(f.kv, "", "", 10, [](std::string_view, const state::SessionHeaderT&) {});
  EXPECT_FALSE(sessions.ok());

  f.put_raw(key::memory("s", "alpha"), "x");
  auto memory = read_memory(f.kv, "s");
  ASSERT_FALSE(memory.ok());
  EXPECT_NE(memory.error().message.find("memory entry of session s labelled \"alpha\""), std::string::npos)
      << memory.error().message;

  f.put_raw(std::string(key::kSummary), "");
  EXPECT_FALSE(read_summary(f.kv).ok());
}

}  // namespace
}  // namespace statefold::fold
