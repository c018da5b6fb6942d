// Erasure (docs/erasure.md): an ErasureRequest removes a session's personal content from state, history and
// checkpoints, keeps versions, hashes and counts so the chain still verifies, and is itself recorded.
#include <gtest/gtest.h>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/fold/as_of.h"
#include "engine/fold/fold.h"
#include "engine/view/view.h"
#include "statefold/schema/state_generated.h"

namespace statefold::fold {
namespace {

std::string id_hex(std::uint64_t n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

std::string event(std::uint64_t id, const std::string& session, const std::string& type, const std::string& payload) {
  return R"({"event_id":")" + id_hex(id) + R"(","session_id":")" + session + R"(","occurred_at_us":)" +
         std::to_string(1767225600000000ull + id) + R"(,"payload_type":")" + type + R"(","payload":)" + payload + "}";
}

std::string message(std::uint64_t id, const std::string& session, const std::string& role, const std::string& text) {
  return event(id, session, "Message", R"({"role":")" + role + R"(","content":[{"text":")" + text + R"("}]})");
}

// A session long enough to have checkpoints, with a secret in every kind of personal content.
std::vector<std::string> secret_session(const std::string& sid, std::uint64_t base) {
  std::vector<std::string> events = {
      event(base, sid, "SessionOpened", R"({"model":"m","system_prompt":"Be kind."})"),
      message(base + 1, sid, "user", "SECRET-message-" + sid),
      event(base + 2, sid, "Message",
            R"({"role":"assistant","content":[],"tool_calls":[{"id":"c1","name":"lookup","arguments":"{\"q\":\"SECRET-args-)" +
                sid + R"(\"}"}]})"),
      event(base + 3, sid, "Message",
            R"({"role":"tool","tool_call_id":"c1","content":[{"kind":"json","text":"SECRET-result-)" + sid + R"("}]})"),
      event(base + 4, sid, "MemorySet", R"({"label":"address","value":"SECRET-memory-)" + sid + R"(","pinned":true})"),
      event(base + 5, sid, "Custom", R"({"type_name":"app.note","data":[83,69,67,82,69,84]})"),
  };
  for (std::uint64_t i = 0; i < 150; ++i) events.push_back(message(base + 10 + i, sid, "user", "SECRET-turn-" + std::to_string(i)));
  events.push_back(event(base + 200, sid, "Summary", R"({"text":"SECRET-summary-)" + sid + R"(","through_version":100})"));
  return events;
}

struct Store {
  MemoryKv kv;
  std::int64_t offset = 0;
  std::vector<Applied> fold(const std::vector<std::string>& lines) {
    std::vector<Applied> out;
    Folder folder(kv);
    for (const auto& line : lines) {
      auto bytes = codec::json_to_flatbuffers(line);
      EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message);
      auto ev = codec::decode(*bytes, codec::Encoding::flatbuffers);
      EXPECT_TRUE(ev.ok());
      out.push_back(folder.apply(*ev, {0, offset++, 1000 + offset}));
    }
    kv.apply(folder.finish());
    return out;
  }
  std::vector<std::string> values_containing(std::string_view needle) const {
    std::vector<std::string> keys;
    kv.scan("", [&](std::string_view k, std::string_view v) {
      if (v.find(needle) != std::string_view::npos) keys.push_back(base::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(k.data()), k.size())));
      return true;
    });
    return keys;
  }
};

const std::string kErase = R"({"reason":"GDPR art. 17","requested_by":"dpo@example.com"})";

TEST(Erasure, RemovesEveryPersonalContentOfTheSessionAndNothingElse) {
  Store s;
  s.fold(secret_session("alice", 1000));
  s.fold(secret_session("bob", 5000));
  ASSERT_FALSE(s.values_containing("SECRET-memory-alice").empty());
  const auto before = *load_header(s.kv, "alice");
  ASSERT_GT(before.version, 2 * kCheckpointInterval);

  auto applied = s.fold({event(9000, "alice", "ErasureRequest", kErase)});
  ASSERT_EQ(applied[0].outcome, Outcome::accepted);

  for (const char* secret : {"SECRET-message-alice", "SECRET-args-alice", "SECRET-result-alice",
                             "SECRET-memory-alice", "SECRET-summary-alice", "SECRET-turn-", "SECRET"}) {
    // bob's content stays, so look for alice's keys only where the needle is not bob's.
    for (const auto& key : s.values_containing(secret)) {
      EXPECT_EQ(key.find(base::to_hex(std::string_view("alice"))), std::string::npos)
          << secret << " survives in key " << key;
    }
  }
  EXPECT_FALSE(s.values_containing("SECRET-memory-bob").empty());
  EXPECT_FALSE(s.values_containing("SECRET-summary-bob").empty());

  // Structure stays: versions, counts, chain; the erasure itself is the new version.
  const auto after = *load_header(s.kv, "alice");
  EXPECT_TRUE(after.erased);
  EXPECT_EQ(after.version, before.version + 1);
  EXPECT_EQ(after.messages, before.messages);
  EXPECT_EQ(after.memory_entries, before.memory_entries);
  EXPECT_EQ(after.memory_digest, before.memory_digest);
  const auto json = *view::session_json(s.kv, "alice");
  EXPECT_EQ(json.find("SECRET"), std::string::npos) << json;
  const auto history = *view::history_json(s.kv, "alice", 1, 1000);
  EXPECT_EQ(history.find("SECRET"), std::string::npos);
  EXPECT_NE(history.find("GDPR art. 17"), std::string::npos) << "the erasure itself is recorded";
}

TEST(Erasure, TheChainStillVerifiesFromTheKeptDigests) {
  Store s;
  const auto lines = secret_session("alice", 1000);
  s.fold(lines);
  s.fold({event(9000, "alice", "ErasureRequest", kErase)});
  base::Digest chain{};
  std::uint64_t redacted = 0;
  std::uint64_t version = 0;
  s.kv.scan(key::history_prefix("alice"), [&](std::string_view, std::string_view value) {
    state::HistoryEntryT e;
    flatbuffers::GetRoot<state::HistoryEntry>(value.data())->UnPackTo(&e);
    ++version;
    base::Digest digest{};
    if (e.redacted) {
      ++redacted;
      std::copy(e.event_digest.begin(), e.event_digest.end(), digest.begin());
      // The digest is the original event's: the record in Kafka still checks against it.
      auto original = codec::json_to_flatbuffers(lines[version - 1]);
      EXPECT_EQ(digest, base::sha256(*original)) << "version " << version;
    } else {
      digest = base::sha256(e.event);
    }
    chain = base::Sha256().update(chain).update(digest).finish();
    EXPECT_EQ(base::to_hex(chain), base::to_hex(e.chain_hash)) << "version " << version;
    return true;
  });
  EXPECT_EQ(redacted, lines.size());
  EXPECT_EQ(base::to_hex(chain), base::to_hex(load_header(s.kv, "alice")->chain_hash));
}

TEST(Erasure, IsAcceptedOnAClosedSessionAndEndsTheSession) {
  Store s;
  s.fold(secret_session("alice", 1000));
  s.fold({event(8000, "alice", "SessionClosed", R"({"reason":"done"})")});
  auto erased = s.fold({event(9000, "alice", "ErasureRequest", kErase)});
  EXPECT_EQ(erased[0].outcome, Outcome::accepted);
  auto later = s.fold({message(9001, "alice", "user", "again"), event(9002, "alice", "ErasureRequest", kErase)});
  EXPECT_EQ(later[0].outcome, Outcome::rejected);
  EXPECT_EQ(later[0].reason, "session is erased");
  EXPECT_EQ(later[1].reason, "session is erased");
  auto dup = s.fold({event(9000, "alice", "ErasureRequest", kErase)});
  EXPECT_EQ(dup[0].outcome, Outcome::duplicate);
}

TEST(Erasure, IsDeterministicAcrossBatchings) {
  Store whole;
  Store split;
  auto lines = secret_session("alice", 1000);
  lines.push_back(event(9000, "alice", "ErasureRequest", kErase));
  whole.fold(lines);
  for (const auto& line : lines) split.fold({line});
  std::vector<std::pair<std::string, std::string>> a;
  std::vector<std::pair<std::string, std::string>> b;
  whole.kv.scan("", [&](std::string_view k, std::string_view v) { a.emplace_back(k, v); return true; });
  split.kv.scan("", [&](std::string_view k, std::string_view v) { b.emplace_back(k, v); return true; });
  // Log times differ by batching in this harness only through offsets, which are the same: byte-identical.
  EXPECT_EQ(a, b);
}

TEST(Erasure, PastVersionsOfAnErasedSessionAreRebuiltWithoutContent) {
  Store s;
  s.fold(secret_session("alice", 1000));
  s.fold({event(9000, "alice", "ErasureRequest", kErase)});
  for (std::uint64_t v : {2u, 5u, 64u, 100u, 157u}) {
    auto past = SessionAsOf::open(s.kv, "alice", v);
    ASSERT_TRUE(past.ok()) << past.error().message;
    EXPECT_TRUE((*past)->redacted());
    const auto json = *view::session_json(**past, "alice");
    EXPECT_EQ(json.find("SECRET"), std::string::npos) << "version " << v << ": " << json;
    EXPECT_NE(json.find("\"version\":" + std::to_string(v)), std::string::npos);
  }
}

}  // namespace
}  // namespace statefold::fold
