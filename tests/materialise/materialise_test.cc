// materialise: what the gateway renders from its cache equals what audit renders from the store alone, at every
// version (else receipts would not re-check); the cache stays within its bounds.
#include "connectors/materialise/materialise.h"

#include <gtest/gtest.h>
#include <boost/json.hpp>

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
        RenderSpec spec{provider, "gpt-4o", "", provider == context::Provider::anthropic ? 1.15 : 1.0, "", 0, "", 0};
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
  RenderSpec spec{context::Provider::openai_responses,
                  "gpt-4.1",
                  "cl100k_base",
                  1.25,
                  R"({"temperature":0.2})",
                  512,
                  "Answer in French.",
                  700};
  auto back = RenderSpec::from_json(spec.to_json());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->to_json(), spec.to_json());
  EXPECT_FALSE(RenderSpec::from_json(R"({"context":"statefold-context/0"})").ok());
}

// The client's limit on the reply is the limit (issue 12, defect 2): above the policy's reserve too. The output
// reserve follows it, and the upstream is sent it; a receipt written before output_limit existed (max_output_tokens
// only ever lowered the reserve) still renders as it did, so its audit holds.
TEST(Materialise, TheOutputLimitIsTheReplysLimitAndTheReserve) {
  const Folded f = fold_workload(1, 40);
  const auto& [session, last] = *f.versions.begin();
  auto render_with = [&](RenderSpec spec) {
    auto state = load_state(f.kv, session, last);
    EXPECT_TRUE(state.ok()) << state.error().message;
    std::string counted;
    auto rendered = render(*state, spec, counted);
    EXPECT_TRUE(rendered.ok()) << rendered.error().message;
    return std::pair(
        rendered->context.output_reserve,
        boost::json::parse(rendered->body).as_object().at("max_completion_tokens").to_number<std::uint64_t>());
  };
  auto state = load_state(f.kv, session, last);
  ASSERT_TRUE(state.ok());
  const std::size_t reserve = state->policy.output_reserve;
  const std::size_t budget = state->policy.token_budget;
  ASSERT_GT(budget, 3 * reserve);
  using Pair = std::pair<std::size_t, std::uint64_t>;
  RenderSpec spec;
  spec.model = "gpt-4o";
  EXPECT_EQ(render_with(spec), Pair(reserve, reserve));  // no limit asked: the policy's reserve
  spec.max_output_tokens = spec.output_limit = 2 * reserve;
  EXPECT_EQ(render_with(spec), Pair(2 * reserve, 2 * reserve));
  spec.output_limit = 300;
  EXPECT_EQ(render_with(spec), Pair(300, 300));
  // The budget's input part shrinks with it.
  std::string counted;
  spec.output_limit = 3 * reserve;
  auto big = render(*state, spec, counted);
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->context.input_budget, budget - 3 * reserve);
  // Old receipts: no output_limit, and a max_output_tokens above the reserve rendered with the reserve.
  auto old = RenderSpec::from_json(R"({"context":")" + std::string(context::kContextVersion) +
                                   R"(","extra":"","instructions":"","margin":1,"max_output_tokens":)" +
                                   std::to_string(2 * reserve) +
                                   R"(,"model":"gpt-4o","provider":"openai_chat","tokenizer":""})");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->output_limit, 0u);
  EXPECT_EQ(render_with(*old), Pair(reserve, reserve));
  // A limit that leaves no room for any input is refused, naming it.
  spec.output_limit = budget;
  auto refused = render(*state, spec, counted);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find(std::to_string(budget)), std::string::npos) << refused.error().message;
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
