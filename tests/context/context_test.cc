// materialise(): sections and token counts, the summary, pinned and unpinned memory, orphan and dangling tool
// messages, and the cache-aware cut against a sliding window.
#include "connectors/context/context.h"

#include <gtest/gtest.h>

#include "context/fixtures.h"

namespace statefold::context {
namespace {

using testing::call_message;
using testing::text_message;
using testing::tool_result;
using testing::weather_session;

const ByteCounter kCounter;

Context must(const SessionState& state) {
  auto ctx = materialise(state, kCounter);
  EXPECT_TRUE(ctx.ok()) << (ctx.ok() ? "" : ctx.error().message);
  return std::move(ctx).value();
}

TEST(Context, CountsEachSection) {
  const SessionState s = weather_session();
  const Context ctx = must(s);
  EXPECT_EQ(ctx.input_budget, 900u);
  EXPECT_EQ(ctx.system_text, "Be brief.");
  EXPECT_EQ(ctx.system_tokens, 3u + 3u);  // ceil(9/4) + kMessageOverhead
  EXPECT_EQ(ctx.memory_text,
            "<memory label=\"user\">\nName: Ada\n</memory>\n<memory label=\"notes\">\nlikes tea\n</memory>");
  EXPECT_EQ(ctx.memory_tokens, (ctx.memory_text.size() + 3) / 4 + 3);
  ASSERT_EQ(ctx.memory.size(), 2u);
  EXPECT_EQ(ctx.memory[0].label, "user");  // pinned first
  EXPECT_TRUE(ctx.memory[0].pinned);
  EXPECT_TRUE(ctx.memory[1].included);
  EXPECT_TRUE(ctx.summary_text.empty());
  ASSERT_EQ(ctx.history.size(), 5u);
  // user: 3 + ceil(28/4)
  EXPECT_EQ(ctx.history[0].tokens, 3u + 7u);
  // assistant call: 3 + (3 + id 2 + name 3 + args 4)
  EXPECT_EQ(ctx.history[1].tokens, 3u + 3u + 2u + 3u + 4u);
  // tool result: 3 + content 3 + tool_call_id 2
  EXPECT_EQ(ctx.history[2].tokens, 3u + 3u + 2u);
  std::size_t history = 0;
  for (const auto& item : ctx.history) history += item.tokens;
  EXPECT_EQ(ctx.history_tokens, history);
  EXPECT_EQ(ctx.total_tokens, ctx.system_tokens + ctx.memory_tokens + history + kReplyPriming);
  EXPECT_EQ(ctx.cut.messages, 0u);
  EXPECT_EQ(ctx.history_budget, ctx.input_budget - ctx.system_tokens - ctx.memory_tokens - kReplyPriming);
}

TEST(Context, CachedTokenCountsAreUsed) {
  SessionState s = weather_session();
  for (auto& m : s.history) m.tokens = 100;
  const Context ctx = must(s);
  EXPECT_EQ(ctx.history_tokens, 500u);
}

TEST(Context, ExtraParametersAreBudgeted) {
  SessionState s = weather_session();
  const Context without = must(s);
  s.extra_tokens = 120;  // e.g. the tool definitions the gateway passes in RenderOptions::extra
  const Context with = must(s);
  EXPECT_EQ(with.extra_tokens, 120u);
  EXPECT_EQ(with.history_budget, without.history_budget - 120);
  EXPECT_EQ(with.total_tokens, without.total_tokens + 120);
  s.extra_tokens = 900;
  EXPECT_FALSE(materialise(s, kCounter).ok());
}

TEST(Context, SummaryCoversEarlierVersions) {
  SessionState s = weather_session();
  s.summary = Summary{"Ada asked about the weather in Paris.", 4};
  const Context ctx = must(s);
  EXPECT_EQ(ctx.summary_text, "<summary>\nAda asked about the weather in Paris.\n</summary>");
  EXPECT_EQ(ctx.cut.covered_by_summary, 3u);
  ASSERT_EQ(ctx.history.size(), 2u);
  EXPECT_EQ(ctx.history[0].message->version, 5u);
}

TEST(Context, SummaryOrphansAResultWhoseCallItCovers) {
  SessionState s = weather_session();
  s.summary = Summary{"earlier", 3};
  const Context ctx = must(s);
  ASSERT_EQ(ctx.cut.orphan_tool_results.size(), 1u);
  EXPECT_EQ(ctx.cut.orphan_tool_results[0], 4u);
  EXPECT_EQ(ctx.history.front().message->version, 5u);
}

TEST(Context, UnpinnedMemoryOnlyWithinItsShare) {
  SessionState s = weather_session();
  s.policy.memory_percent = 3;  // 27 tokens: the system prompt and the pinned block take them
  const Context ctx = must(s);
  ASSERT_EQ(ctx.cut.memory_blocks.size(), 1u);
  EXPECT_EQ(ctx.cut.memory_blocks[0], "notes");
  EXPECT_FALSE(ctx.memory[1].included);
  EXPECT_EQ(ctx.memory_text, "<memory label=\"user\">\nName: Ada\n</memory>");
}

TEST(Context, PinnedSectionsTooLargeIsAnError) {
  SessionState s = weather_session();
  s.memory[0].value = std::string(4000, 'x');
  auto ctx = materialise(s, kCounter);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message.find("pinned memory"), std::string::npos);
}

TEST(Context, BadPolicyIsAnError) {
  SessionState s = weather_session();
  s.policy.output_reserve = s.policy.token_budget;
  EXPECT_FALSE(materialise(s, kCounter).ok());
  s = weather_session();
  s.policy.cut_percent = 95;
  EXPECT_FALSE(materialise(s, kCounter).ok());
}

TEST(Context, NewestMessageTooLargeIsAnError) {
  SessionState s = weather_session();
  s.history.back() = text_message(6, Role::user, std::string(8000, 'y'));
  auto ctx = materialise(s, kCounter);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message.find("newest message (version 6)"), std::string::npos);
}

TEST(Context, DanglingCallsAreLeftOut) {
  SessionState s = weather_session();
  // Two calls, one answered; then an assistant message whose only call is never answered.
  s.history[1].tool_calls.push_back(ToolCall{"call_2", "get_time", "{}"});
  s.history.push_back(call_message(7, {ToolCall{"call_3", "lookup", "{}"}}));
  const Context ctx = must(s);
  EXPECT_EQ(ctx.cut.dangling_tool_calls, (std::vector<std::string>{"call_2", "call_3"}));
  ASSERT_EQ(ctx.history.size(), 5u);  // the message with only a dangling call is not rendered at all
  EXPECT_FALSE(ctx.history[1].all_calls);
  EXPECT_EQ(ctx.history[1].calls, (std::vector<std::uint32_t>{0}));
  EXPECT_EQ(ctx.history[1].tokens, 3u + 3u + 2u + 3u + 4u);  // as if call_2 had never been made
}

TEST(Context, OrphanResultsAreLeftOut) {
  SessionState s = weather_session();
  s.history.insert(s.history.begin() + 1, tool_result(2, "nobody", "stray"));  // before any call
  s.history.insert(s.history.begin() + 4, tool_result(4, "call_1", "again"));  // a second answer to call_1
  s.history.push_back(tool_result(7, "call_1", "late"));                       // not right after its call
  for (std::size_t i = 0; i < s.history.size(); ++i) s.history[i].version = i + 1;
  const Context ctx = must(s);
  EXPECT_EQ(ctx.cut.orphan_tool_results, (std::vector<std::uint64_t>{2, 5, 8}));
  ASSERT_EQ(ctx.history.size(), 5u);
  EXPECT_EQ(ctx.history[2].message->role, Role::tool);
  EXPECT_EQ(ctx.history[2].message->content[0].text, "18C, sunny");
}

// --- The cut ---

// `turns` turns of a user message and an assistant reply, 50 tokens each (cached counts), no fixed sections.
SessionState turns_session(std::size_t turns, std::uint32_t cut_percent) {
  SessionState s;
  s.model = "m";
  s.policy.token_budget = 1000;
  s.policy.output_reserve = 0;
  s.policy.cut_percent = cut_percent;
  for (std::size_t t = 0; t < turns; ++t) {
    s.history.push_back(text_message(2 * t + 1, Role::user, "question " + std::to_string(t)));
    s.history.push_back(text_message(2 * t + 2, Role::assistant, "answer " + std::to_string(t)));
  }
  for (auto& m : s.history) m.tokens = 50;
  return s;
}

TEST(Cut, FreesTheDocumentedFractionAtATurnBoundary) {
  // History budget 997. Ten turns (1,000 tokens) overflow it: the cut must leave at most 50 % of 997 = 498, at a
  // turn start: the oldest six turns go, four stay (400 tokens).
  const SessionState s = turns_session(10, 50);
  const Context ctx = must(s);
  EXPECT_EQ(ctx.history_budget, 997u);
  EXPECT_EQ(ctx.cut.messages, 12u);
  EXPECT_EQ(ctx.cut.tokens, 600u);
  EXPECT_EQ(ctx.cut.first_version, 1u);
  EXPECT_EQ(ctx.cut.last_version, 12u);
  EXPECT_EQ(ctx.history_tokens, 400u);
  EXPECT_EQ(ctx.history.front().message->role, Role::user);
}

TEST(Cut, StaysPutUntilTheBudgetOverflowsAgain) {
  std::size_t previous_cut = 0;
  std::size_t moves = 0;
  for (std::size_t turns = 1; turns <= 60; ++turns) {
    const SessionState s = turns_session(turns, 50);
    const Context ctx = must(s);
    EXPECT_LE(ctx.total_tokens, ctx.input_budget);
    EXPECT_GE(ctx.cut.messages, previous_cut);
    if (ctx.cut.messages != previous_cut) ++moves;
    previous_cut = ctx.cut.messages;
  }
  // 60 turns of 100 tokens, six turns freed per cut: a move at turns 10, 16, 22, ..., 58.
  EXPECT_LE(moves, 11u);
  EXPECT_GE(moves, 9u);
}

TEST(Cut, SlidingWindowMovesEveryTurn) {
  std::size_t previous_cut = 0;
  std::size_t moves = 0;
  for (std::size_t turns = 11; turns <= 60; ++turns) {
    const Context ctx = must(turns_session(turns, 0));
    EXPECT_EQ(ctx.history_tokens, 900u);  // drops only what overflows: the newest nine turns
    if (ctx.cut.messages != previous_cut) ++moves;
    previous_cut = ctx.cut.messages;
  }
  EXPECT_EQ(moves, 50u);
}

TEST(Cut, FallsBackToMessageBoundariesInsideAHugeTurn) {
  // One user message then a long agent loop of tool calls: no turn start to cut at but the first.
  SessionState s;
  s.model = "m";
  s.policy.token_budget = 1000;
  s.policy.output_reserve = 0;
  s.history.push_back(text_message(1, Role::user, "go"));
  for (std::uint64_t i = 0; i < 40; ++i) {
    std::string id = "c";
    id += std::to_string(i);  // not "c" + std::to_string(i): GCC 12 -O3 false -Wrestrict (GCC bug 105651)
    s.history.push_back(call_message(2 + 2 * i, {ToolCall{id, "step", "{}"}}));
    s.history.push_back(tool_result(3 + 2 * i, id, std::string(120, 'r')));
  }
  const Context ctx = must(s);
  EXPECT_LE(ctx.total_tokens, ctx.input_budget);
  EXPECT_GT(ctx.cut.messages, 0u);
  ASSERT_FALSE(ctx.history.empty());
  EXPECT_EQ(ctx.history.front().message->role, Role::assistant);  // a call with its result, never a lone result
  EXPECT_EQ(ctx.history.back().message->role, Role::tool);
}

}  // namespace
}  // namespace statefold::context
