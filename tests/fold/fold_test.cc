// The fold's guarantees (spec section 3): determinism, duplicates, expected versions, unknown types, hash chain,
// and flat per-event cost by layout.
#include "engine/fold/fold.h"

#include <gtest/gtest.h>

#include <flatbuffers/flatbuffers.h>

#include "engine/base/hex.h"
#include "engine/fold/read.h"
#include "engine/view/view.h"
#include "statefold/schema/events_generated.h"

namespace statefold::fold {
namespace {

std::string id_hex(std::uint64_t n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

codec::Event event_from_json(const std::string& json) {
  auto bytes = codec::json_to_flatbuffers(json);
  EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message) << " in " << json;
  auto event = codec::decode(*bytes, codec::Encoding::flatbuffers);
  EXPECT_TRUE(event.ok());
  return std::move(event).value();
}

std::string envelope(std::uint64_t id, const std::string& session, const std::string& payload_type,
                     const std::string& payload, std::optional<std::uint64_t> expected = std::nullopt) {
  std::string json = R"({"event_id":")" + id_hex(id) + R"(","session_id":")" + session + R"(")";
  if (expected) json += R"(,"expected_version":)" + std::to_string(*expected);
  json += R"(,"occurred_at_us":)" + std::to_string(1767225600000000ull + id) + R"(,"payload_type":")" +
          payload_type + R"(","payload":)" + payload + "}";
  return json;
}

std::string open_event(std::uint64_t id, const std::string& session) {
  return envelope(id, session, "SessionOpened", R"({"model":"gpt-4o","system_prompt":"Be brief."})");
}

std::string user_message(std::uint64_t id, const std::string& session, const std::string& text,
                         std::optional<std::uint64_t> expected = std::nullopt) {
  return envelope(id, session, "Message", R"({"role":"user","content":[{"text":")" + text + R"("}]})", expected);
}

// Folds JSON events one batch each (or all in one batch) into a MemoryKv and returns the outcomes.
struct Harness {
  MemoryKv kv;
  std::int64_t offset = 0;

  std::vector<Applied> fold(const std::vector<std::string>& events, std::size_t batch_size = 1) {
    std::vector<Applied> out;
    for (std::size_t i = 0; i < events.size(); i += batch_size) {
      Folder folder(kv);
      for (std::size_t j = i; j < std::min(events.size(), i + batch_size); ++j) {
        out.push_back(folder.apply(event_from_json(events[j]), {0, offset++, 0}));
      }
      kv.apply(folder.finish());
    }
    return out;
  }
  std::string store_hash() const { return view::store_hash_hex(kv); }
};

std::vector<std::string> conversation() {
  std::vector<std::string> events = {open_event(1, "a"), open_event(2, "b")};
  for (std::uint64_t i = 0; i < 40; ++i) {
    events.push_back(user_message(100 + i, i % 2 ? "a" : "b", "message " + std::to_string(i)));
  }
  events.push_back(envelope(200, "a", "MemorySet", R"({"label":"name","value":"Ada","pinned":true})"));
  events.push_back(envelope(201, "a", "MemorySet", R"({"label":"name","value":"Ada L."})"));
  events.push_back(envelope(202, "b", "MemorySet", R"({"label":"city","value":"Paris"})"));
  events.push_back(envelope(203, "b", "MemoryDelete", R"({"label":"city"})"));
  events.push_back(envelope(204, "a", "Summary", R"({"text":"They talked.","through_version":10})"));
  return events;
}

TEST(Fold, SameEventsGiveByteIdenticalStateWhateverTheBatching) {
  Harness one_by_one;
  Harness batched;
  Harness all_at_once;
  one_by_one.fold(conversation(), 1);
  batched.fold(conversation(), 7);
  all_at_once.fold(conversation(), 1000);
  EXPECT_EQ(one_by_one.store_hash(), batched.store_hash());
  EXPECT_EQ(one_by_one.store_hash(), all_at_once.store_hash());
  EXPECT_NE(one_by_one.store_hash(), std::string(64, '0'));
  // Byte-identical, not just hash-identical: every key and value (history offsets are the same here).
  std::vector<std::pair<std::string, std::string>> a;
  std::vector<std::pair<std::string, std::string>> b;
  one_by_one.kv.scan("", [&](std::string_view k, std::string_view v) { a.emplace_back(k, v); return true; });
  all_at_once.kv.scan("", [&](std::string_view k, std::string_view v) { b.emplace_back(k, v); return true; });
  EXPECT_EQ(a, b);
}

TEST(Fold, DifferentEventsGiveDifferentStateHashes) {
  Harness x;
  Harness y;
  auto events = conversation();
  x.fold(events);
  events.back() = envelope(204, "a", "Summary", R"({"text":"They talked!","through_version":10})");
  y.fold(events);
  EXPECT_NE(x.store_hash(), y.store_hash());
  EXPECT_NE(load_header(x.kv, "a")->state_hash, load_header(y.kv, "a")->state_hash);
  EXPECT_EQ(load_header(x.kv, "b")->state_hash, load_header(y.kv, "b")->state_hash);
}

TEST(Fold, VersionsCountAcceptedEvents) {
  Harness h;
  auto out = h.fold({open_event(1, "s"), user_message(2, "s", "hi"), user_message(3, "s", "there")});
  ASSERT_EQ(out.size(), 3u);
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].outcome, Outcome::accepted);
    EXPECT_EQ(out[i].version, i + 1);
  }
  auto header = load_header(h.kv, "s");
  ASSERT_TRUE(header);
  EXPECT_EQ(header->version, 3u);
  EXPECT_EQ(header->messages, 2u);
  EXPECT_EQ(header->model, "gpt-4o");
}

TEST(Fold, DuplicateEventIdChangesNothingButTheDuplicateCount) {
  for (std::size_t batch : {1u, 100u}) {  // in a later batch, and within the same batch
    Harness h;
    auto out = h.fold({open_event(1, "s"), user_message(2, "s", "hi"), user_message(2, "s", "hi")}, batch);
    EXPECT_EQ(out[2].outcome, Outcome::duplicate);
    EXPECT_EQ(out[2].duplicate_of, 2u);
    EXPECT_EQ(out[2].version, 2u);
    EXPECT_NE(out[2].reason.find("already accepted at version 2"), std::string::npos);
    auto header = load_header(h.kv, "s");
    EXPECT_EQ(header->version, 2u);
    EXPECT_EQ(header->messages, 1u);
    EXPECT_EQ(header->duplicates, 1u);
    EXPECT_EQ(load_summary(h.kv).duplicates, 1u);
    EXPECT_EQ(load_summary(h.kv).events_applied, 2u);
    // The refusal is recorded and queryable.
    int refusals = 0;
    h.kv.scan(key::refusal_prefix("s"), [&](std::string_view, std::string_view v) {
      const auto* r = flatbuffers::GetRoot<state::Refusal>(v.data());
      EXPECT_EQ(r->kind(), static_cast<std::uint8_t>(Outcome::duplicate));
      EXPECT_EQ(r->duplicate_of(), 2u);
      ++refusals;
      return true;
    });
    EXPECT_EQ(refusals, 1);
  }
}

TEST(Fold, SameEventIdInAnotherSessionIsNotADuplicate) {
  Harness h;
  auto out = h.fold({open_event(1, "s"), open_event(1, "t")});
  EXPECT_EQ(out[1].outcome, Outcome::accepted);
}

TEST(Fold, ExpectedVersionMismatchIsRejectedWithTheCurrentVersion) {
  Harness h;
  auto out = h.fold({open_event(1, "s"), user_message(2, "s", "ok", 1), user_message(3, "s", "stale", 1),
                     user_message(4, "s", "future", 9), user_message(5, "s", "ok again", 2)});
  EXPECT_EQ(out[1].outcome, Outcome::accepted);
  EXPECT_EQ(out[2].outcome, Outcome::rejected);
  EXPECT_EQ(out[2].version, 2u);
  EXPECT_EQ(out[2].reason, "expected version 1, session is at version 2");
  EXPECT_EQ(out[3].outcome, Outcome::rejected);
  EXPECT_EQ(out[4].outcome, Outcome::accepted);
  EXPECT_EQ(out[4].version, 3u);
  auto header = load_header(h.kv, "s");
  EXPECT_EQ(header->rejections, 2u);
  EXPECT_EQ(header->version, 3u);
  // A rejected event's id is not taken: the producer may retry it with the right version.
  auto retry = h.fold({user_message(3, "s", "stale, retried", 3)});
  EXPECT_EQ(retry[0].outcome, Outcome::accepted);
  // Rejections are recorded with both versions.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> recorded;
  h.kv.scan(key::refusal_prefix("s"), [&](std::string_view, std::string_view v) {
    const auto* r = flatbuffers::GetRoot<state::Refusal>(v.data());
    recorded.emplace_back(r->expected_version(), r->actual_version());
    return true;
  });
  EXPECT_EQ(recorded, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 2}, {9, 2}}));
}

TEST(Fold, ExpectedPreviousEventChainsABatchSoItFoldsWholeOrNotAtAll) {
  auto chained = [](std::uint64_t id, std::uint64_t previous, std::optional<std::uint64_t> expected) {
    std::string text = "m";
    text += std::to_string(id);  // not "m" + std::to_string(id): GCC 12 -O3 false -Wrestrict (GCC bug 105651)
    std::string json = user_message(id, "s", text, expected);
    json.insert(json.size() - 1, R"(,"expected_previous_event_id":")" + id_hex(previous) + R"(")");
    return json;
  };
  Harness h;
  h.fold({open_event(1, "s"), user_message(2, "s", "x")});
  // A stale batch: its first event is rejected, and so is the rest, although the session is at the version the
  // second event would have expected.
  auto stale = h.fold({user_message(10, "s", "a", 1), chained(11, 10, std::nullopt)});
  EXPECT_EQ(stale[0].outcome, Outcome::rejected);
  EXPECT_EQ(stale[1].outcome, Outcome::rejected);
  EXPECT_NE(stale[1].reason.find("expected the previous event"), std::string::npos);
  EXPECT_EQ(load_header(h.kv, "s")->version, 2u);
  // A current batch folds whole.
  auto current = h.fold({user_message(20, "s", "a", 2), chained(21, 20, std::nullopt), chained(22, 21, std::nullopt)});
  for (const auto& a : current) EXPECT_EQ(a.outcome, Outcome::accepted);
  EXPECT_EQ(load_header(h.kv, "s")->version, 5u);
}

TEST(Fold, ClosedSessionsRefuseEvents) {
  Harness h;
  auto out = h.fold({open_event(1, "s"), envelope(2, "s", "SessionClosed", R"({"reason":"done"})"),
                     user_message(3, "s", "late")});
  EXPECT_EQ(out[2].outcome, Outcome::rejected);
  EXPECT_EQ(out[2].reason, "session is closed");
}

TEST(Fold, SummaryBeyondTheVersionIsRejected) {
  Harness h;
  auto out = h.fold({open_event(1, "s"), envelope(2, "s", "Summary", R"({"text":"x","through_version":5})")});
  EXPECT_EQ(out[1].outcome, Outcome::rejected);
}

// SessionAmended: metadata replaced; withdrawals of Messages accepted (in the same batch as the message too),
// anything else refused with a reason naming the version.
TEST(Fold, AmendmentsReplaceMetadataAndWithdrawOnlyMessages) {
  Harness h;
  auto out = h.fold({envelope(1, "s", "SessionOpened", R"({"metadata":[{"key":"topic","value":"a"}]})"),
                     user_message(2, "s", "hello"),
                     envelope(3, "s", "SessionAmended", R"({"metadata":[{"key":"topic","value":"b"}],)"
                                                        R"("withdraw_versions":[2],"reason":"item deleted"})"),
                     envelope(4, "s", "SessionAmended", R"({"withdraw_versions":[1]})"),
                     envelope(5, "s", "SessionAmended", R"({"withdraw_versions":[9]})"),
                     user_message(6, "s", "again"),
                     envelope(7, "s", "SessionAmended", R"({"withdraw_versions":[4]})")},
                    7);  // one batch: each withdrawal reads a history entry still pending in it
  ASSERT_EQ(out.size(), 7u);
  EXPECT_EQ(out[2].outcome, Outcome::accepted) << out[2].reason;
  EXPECT_EQ(out[3].outcome, Outcome::rejected);
  EXPECT_EQ(out[3].reason, "withdraw_versions: version 1 is a SessionOpened, not a Message");
  EXPECT_EQ(out[4].outcome, Outcome::rejected);
  EXPECT_EQ(out[4].reason, "withdraw_versions: version 9 is beyond the session's version 3");
  EXPECT_EQ(out[6].outcome, Outcome::accepted) << out[6].reason;
  auto header = load_header(h.kv, "s");
  ASSERT_TRUE(header);
  EXPECT_EQ(metadata_pairs(*header), (std::vector<std::pair<std::string, std::string>>{{"topic", "b"}}));
  EXPECT_EQ(header->version, 5u);
  EXPECT_EQ(header->messages, 2u) << "a withdrawn message is still in the history";
}

// An event whose payload type a newer schema added: kept in history, hashed, counted.
codec::Event unknown_event(const std::string& session, std::uint64_t id) {
  flatbuffers::FlatBufferBuilder b;
  auto payload = b.CreateVector(std::vector<std::uint8_t>{1, 2, 3});
  // A table with one field, standing for a payload type this build does not know.
  auto start = b.StartTable();
  b.AddOffset(4, payload);
  auto table = flatbuffers::Offset<void>(b.EndTable(start));
  auto event_id = b.CreateString(id_hex(id));
  auto session_id = b.CreateString(session);
  schema::EventBuilder eb(b);
  eb.add_event_id(event_id);
  eb.add_session_id(session_id);
  eb.add_payload_type(static_cast<schema::Payload>(42));
  eb.add_payload(table);
  b.Finish(eb.Finish(), schema::EventIdentifier());
  std::vector<std::uint8_t> bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  auto event = codec::decode(bytes, codec::Encoding::flatbuffers);
  EXPECT_TRUE(event.ok()) << (event.ok() ? "" : event.error().message);
  EXPECT_FALSE(event->payload_known());
  return std::move(event).value();
}

TEST(Fold, UnknownPayloadTypesAreKeptAndCounted) {
  Harness h;
  h.fold({open_event(1, "s")});
  Folder folder(h.kv);
  auto applied = folder.apply(unknown_event("s", 2), {0, 10, 0});
  h.kv.apply(folder.finish());
  EXPECT_EQ(applied.outcome, Outcome::accepted);
  EXPECT_EQ(applied.version, 2u);
  auto header = load_header(h.kv, "s");
  EXPECT_EQ(header->unknown_events, 1u);
  EXPECT_EQ(load_summary(h.kv).unknown_events, 1u);
  auto stored = h.kv.get(key::history("s", 2));
  ASSERT_TRUE(stored);
  EXPECT_EQ(flatbuffers::GetRoot<state::HistoryEntry>(stored->data())->payload_type(), 42);
}

TEST(Fold, HashChainLinksEveryAcceptedEventInOrder) {
  Harness h;
  auto events = conversation();
  h.fold(events);
  // Recompute the chain of session "a" from its stored history: each link is sha256(previous || sha256(event)).
  base::Digest chain{};
  std::uint64_t expected_version = 1;
  h.kv.scan(key::history_prefix("a"), [&](std::string_view, std::string_view v) {
    const auto* entry = flatbuffers::GetRoot<state::HistoryEntry>(v.data());
    EXPECT_EQ(entry->version(), expected_version++);
    auto event_digest = base::sha256(std::span<const std::uint8_t>(entry->event()->data(), entry->event()->size()));
    chain = base::Sha256().update(chain).update(event_digest).finish();
    EXPECT_EQ(base::to_hex(chain), base::to_hex(std::span<const std::uint8_t>(entry->chain_hash()->data(), 32)));
    return true;
  });
  auto header = load_header(h.kv, "a");
  EXPECT_EQ(expected_version - 1, header->version);
  EXPECT_EQ(base::to_hex(chain), base::to_hex(header->chain_hash));
  EXPECT_EQ(base::to_hex(state_hash(*header)), base::to_hex(header->state_hash));
}

// The fold builds history entries straight from the event's bytes; a store written that way must hold the very bytes
// the object API packs, so stores written before and after agree byte for byte.
TEST(Fold, HistoryEntriesAreTheBytesTheObjectApiPacks) {
  Harness h;
  auto events = conversation();
  events.push_back(user_message(300, "a", "after a refusal", 1));  // rejected: the next entry counts it
  events.push_back(user_message(301, "a", "counted"));
  h.fold(events, 7);
  std::size_t entries = 0;
  for (const char* session : {"a", "b"}) {
    h.kv.scan(key::history_prefix(session), [&](std::string_view, std::string_view v) {
      state::HistoryEntryT object;
      flatbuffers::GetRoot<state::HistoryEntry>(v.data())->UnPackTo(&object);
      flatbuffers::FlatBufferBuilder builder;
      builder.Finish(state::HistoryEntry::Pack(builder, &object));
      EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize()), v)
          << "version " << object.version << " of " << session;
      ++entries;
      return true;
    });
  }
  EXPECT_EQ(entries, events.size() - 1);
}

TEST(Fold, ReorderedEventsGiveADifferentChain) {
  Harness x;
  Harness y;
  x.fold({open_event(1, "s"), user_message(2, "s", "one"), user_message(3, "s", "two")});
  y.fold({open_event(1, "s"), user_message(3, "s", "two"), user_message(2, "s", "one")});
  EXPECT_NE(load_header(x.kv, "s")->chain_hash, load_header(y.kv, "s")->chain_hash);
}

TEST(Fold, MemoryDigestFollowsLiveEntriesOnly) {
  Harness x;
  Harness y;
  x.fold({open_event(1, "s"), envelope(2, "s", "MemorySet", R"({"label":"k","value":"v"})"),
          envelope(3, "s", "MemoryDelete", R"({"label":"k"})")});
  y.fold({open_event(1, "s"), envelope(2, "s", "MemorySet", R"({"label":"other","value":"v"})"),
          envelope(3, "s", "MemoryDelete", R"({"label":"other"})")});
  EXPECT_EQ(load_header(x.kv, "s")->memory_digest, load_header(y.kv, "s")->memory_digest);
  EXPECT_EQ(load_header(x.kv, "s")->memory_entries, 0u);
  EXPECT_FALSE(x.kv.get(key::memory("s", "k")));
}

TEST(Fold, StoreHashIsTheXorOfSessionTerms) {
  Harness h;
  h.fold(conversation());
  std::vector<std::uint8_t> acc(32, 0);
  h.kv.scan(std::string(1, key::kHeader), [&](std::string_view k, std::string_view) {
    auto header = load_header(h.kv, k.substr(1));
    auto term = store_hash_term(k.substr(1), state_hash(*header));
    for (int i = 0; i < 32; ++i) acc[i] ^= term[i];
    return true;
  });
  EXPECT_EQ(base::to_hex(acc), h.store_hash());
  EXPECT_EQ(load_summary(h.kv).sessions, 2u);
}

TEST(Fold, AnEventTouchesAFixedNumberOfKeysWhateverTheSessionLength) {
  Harness h;
  std::vector<std::string> events = {open_event(1, "long")};
  for (std::uint64_t i = 0; i < 2000; ++i) events.push_back(user_message(10 + i, "long", "m"));
  h.fold(events, 500);
  Folder folder(h.kv);
  folder.apply(event_from_json(user_message(99999, "long", "one more")), {0, 5000, 0});
  // history entry, event id, header, summary: nothing proportional to the 2,000 earlier messages.
  EXPECT_EQ(folder.finish().entries().size(), 4u);
}

std::string receipt(std::uint64_t id, const std::string& session, const std::string& model, const std::string& caller,
                    int status, std::uint64_t input, std::uint64_t output, std::int64_t occurred_at_us) {
  std::string json = R"({"event_id":")" + id_hex(id) + R"(","session_id":")" + session +
                     R"(","occurred_at_us":)" + std::to_string(occurred_at_us) +
                     R"(,"payload_type":"InferenceReceipt","payload":{"model":")" + model + R"(","status":)" +
                     std::to_string(status) + R"(,"usage":{"input_tokens":)" + std::to_string(input) +
                     R"(,"output_tokens":)" + std::to_string(output) + R"(,"cached_tokens":1})";
  if (!caller.empty()) json += R"(,"caller":")" + caller + R"(")";
  return json + "}}";
}

TEST(Fold, ReceiptsAddUpToUsageRowsPerTenantDayKeyAndModelWhateverTheBatching) {
  constexpr std::int64_t kDec3 = 1764720000000000;  // 2025-12-03T00:00:00Z
  constexpr std::int64_t kDay = 86400000000;
  const std::vector<std::string> events = {
      receipt(1, "acme/a", "gpt-4o", "app", 200, 10, 5, kDec3 + 5),
      receipt(2, "acme/b", "gpt-4o", "app", 200, 20, 7, kDec3 + kDay - 1),  // same day, another session
      receipt(3, "acme/a", "gpt-4o", "app", 502, 0, 0, kDec3 + kDay),       // the next day, failed
      receipt(4, "acme/a", "claude", "ops", 200, 3, 2, kDec3 + 10),
      receipt(5, "globex/x", "gpt-4o", "app", 200, 100, 50, kDec3 + 20),
      receipt(6, "no-tenant", "gpt-4o", "", 200, 1, 1, kDec3 + 30),
      user_message(7, "acme/a", "not a receipt"),
  };
  Harness one_by_one;
  one_by_one.fold(events, 1);
  Harness together;
  together.fold(events, events.size());

  for (const Harness* h : {&one_by_one, &together}) {
    std::vector<state::UsageT> acme;
    ASSERT_TRUE(visit_usage(h->kv, "acme", "2025-12-01", "2025-12-31", [&](const state::UsageT& r) {
      acme.push_back(r);
    }));
    ASSERT_EQ(acme.size(), 3u);
    // Day, then key, then model order.
    EXPECT_EQ(acme[0].day, "2025-12-03");
    EXPECT_EQ(acme[0].caller, "app");
    EXPECT_EQ(acme[0].model, "gpt-4o");
    EXPECT_EQ(acme[0].calls, 2u);
    EXPECT_EQ(acme[0].failed, 0u);
    EXPECT_EQ(acme[0].input_tokens, 30u);
    EXPECT_EQ(acme[0].output_tokens, 12u);
    EXPECT_EQ(acme[0].cached_tokens, 2u);
    EXPECT_EQ(acme[1].caller, "ops");
    EXPECT_EQ(acme[1].model, "claude");
    EXPECT_EQ(acme[2].day, "2025-12-04");
    EXPECT_EQ(acme[2].failed, 1u);
    EXPECT_EQ(acme[2].tenant, "acme");

    auto app_today = sum_usage(h->kv, "acme", "2025-12-03", "2025-12-03", "app");
    ASSERT_TRUE(app_today);
    EXPECT_EQ(app_today->calls, 2u);
    EXPECT_EQ(app_today->input_tokens + app_today->output_tokens, 42u);
    auto app_later = sum_usage(h->kv, "acme", "2025-12-04", "2025-12-31", "app");
    ASSERT_TRUE(app_later);
    EXPECT_EQ(app_later->calls, 1u);

    std::vector<std::string> tenants;
    ASSERT_TRUE(visit_usage(h->kv, std::nullopt, "2025-12-03", "2025-12-03",
                            [&](const state::UsageT& r) { tenants.push_back(r.tenant); }));
    EXPECT_EQ(tenants, (std::vector<std::string>{"", "acme", "acme", "globex"}));
  }
  // Usage rows are not session state: the store hash is the sessions' alone, and the same either way.
  EXPECT_EQ(one_by_one.store_hash(), together.store_hash());
}

TEST(Fold, UsageKeysStayApartWhateverTheNamesHold) {
  // A NUL inside a model name must not make ("a\0b", "c") and ("a", "b\0c") one row.
  Harness h;
  h.fold({receipt(1, "t/s", "b\\u0000c", "a", 200, 1, 0, 0), receipt(2, "t/s", "c", "a\\u0000b", 200, 2, 0, 0)}, 2);
  std::vector<state::UsageT> rows;
  ASSERT_TRUE(visit_usage(h.kv, "t", "1970-01-01", "1970-01-01", [&](const state::UsageT& r) { rows.push_back(r); }));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].input_tokens + rows[1].input_tokens, 3u);
  EXPECT_EQ(utc_day(-1), "1969-12-31");
  EXPECT_EQ(utc_day(1764806399999999), "2025-12-03");
}

}  // namespace
}  // namespace statefold::fold
