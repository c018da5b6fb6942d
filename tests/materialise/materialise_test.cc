// materialise: what the gateway renders from its cache equals what audit renders from the store alone, at every
// version (else receipts would not re-check); the cache stays within its bounds.
#include "connectors/materialise/materialise.h"

#include <gtest/gtest.h>

#include "engine/fold/fold.h"
#include "engine/workload/workload.h"

namespace statefold::materialise {
namespace {

// A folded workload: a few sessions with messages, tool calls, memory and summaries.
struct Folded {
  fold::MemoryKv kv;
  std::map<std::string, std::uint64_t> versions;
};

Folded fold_workload(std::uint64_t sessions, std::uint64_t events) {
  Folded f;
  std::int64_t offset = 0;
  workload::generate({.sessions = sessions, .events = events, .seed = 4, .duplicate_rate = 0, .stale_rate = 0},
                     [&](std::string_view line) {
                       auto event = codec::decode(
                           std::span(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()),
                           codec::Encoding::json);
                       ASSERT_TRUE(event.ok());
                       fold::Folder folder(f.kv);
                       auto applied = folder.apply(*event, {0, offset++, offset});
                       f.kv.apply(folder.finish());
                       if (applied.outcome == fold::Outcome::accepted) {
                         f.versions[std::string(event->session_id())] = applied.version;
                       }
                     });
  return f;
}

TEST(Materialise, TheCachedRenderEqualsAFreshOneAtEveryVersion) {
  const Folded f = fold_workload(2, 400);
  StateCache cache;
  for (const auto& [session, last] : f.versions) {
    std::string counted_cached;
    for (std::uint64_t v = 1; v <= last; ++v) {
      for (const auto provider : {context::Provider::openai_chat, context::Provider::anthropic}) {
        RenderSpec spec{provider, "gpt-4o", "", provider == context::Provider::anthropic ? 1.15 : 1.0, "", 0, ""};
        std::string cached_hash;
        auto ok = cache.with_state(f.kv, session, v, [&](context::SessionState& state, std::string& counted) {
          auto rendered = render(state, spec, counted);
          ASSERT_TRUE(rendered.ok()) << rendered.error().message;
          cached_hash = rendered->hash;
        });
        ASSERT_TRUE(ok.ok()) << ok.error().message;
        // What audit does: the store alone, the spec read back from the receipt's JSON.
        auto fresh = load_state(f.kv, session, v);
        ASSERT_TRUE(fresh.ok()) << fresh.error().message;
        auto again = RenderSpec::from_json(spec.to_json());
        ASSERT_TRUE(again.ok()) << again.error().message;
        std::string counted_fresh;
        auto rendered = render(*fresh, *again, counted_fresh);
        ASSERT_TRUE(rendered.ok()) << rendered.error().message;
        ASSERT_EQ(rendered->hash, cached_hash) << session << " at version " << v;
      }
    }
  }
}

TEST(Materialise, ARenderSpecSurvivesItsJson) {
  RenderSpec spec{context::Provider::openai_responses, "gpt-4.1", "cl100k_base", 1.25, R"({"temperature":0.2})", 512,
                  "Answer in French."};
  auto back = RenderSpec::from_json(spec.to_json());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->to_json(), spec.to_json());
  EXPECT_FALSE(RenderSpec::from_json(R"({"context":"statefold-context/0"})").ok());
}

TEST(Materialise, TheCacheStaysWithinItsBytes) {
  const Folded f = fold_workload(12, 1200);
  StateCache cache(256, 64 << 10);
  for (const auto& [session, last] : f.versions) {
    auto ok = cache.with_state(f.kv, session, last, [](context::SessionState&, std::string&) {});
    ASSERT_TRUE(ok.ok());
    // The session just used may exceed the budget alone; the others make room for it.
    EXPECT_TRUE(cache.sessions() == 1 || cache.bytes() <= (64u << 10)) << cache.sessions() << " sessions, "
                                                                         << cache.bytes() << " bytes";
  }
  EXPECT_LT(cache.sessions(), f.versions.size());
  EXPECT_GT(cache.sessions(), 0u);
}

}  // namespace
}  // namespace statefold::materialise
