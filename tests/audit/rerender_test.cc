// rerender: a session's receipts rendered again as sent and under a counterfactual policy or provider, over a
// MemoryKv folded from made-up events whose receipts were rendered by materialise as the gateway renders them.
#include "connectors/audit/rerender.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "connectors/materialise/materialise.h"
#include "support/memory_fold.h"

namespace statefold::audit {
namespace {

using testing::MemoryFold;

materialise::RenderSpec sent_spec() {
  materialise::RenderSpec spec;
  spec.provider = context::Provider::openai_chat;
  spec.model = "gpt-4o";
  spec.tokenizer = "o200k_base";
  return spec;
}

// A receipt for the session's current version, rendered as the gateway would; `tamper` changes the recorded hash.
std::string receipt_for(const MemoryFold& f, std::uint64_t id, std::uint64_t state_version, bool tamper = false,
                        bool record_render = true) {
  auto state = materialise::load_state(f.kv, "s", state_version);
  EXPECT_TRUE(state.ok()) << state.error().message;
  std::string counted;
  auto rendered = materialise::render(*state, sent_spec(), counted);
  EXPECT_TRUE(rendered.ok()) << rendered.error().message;
  std::string hash = rendered->hash;
  if (tamper) hash[0] = hash[0] == '0' ? '1' : '0';
  boost::json::object payload{{"request_hash", hash}, {"state_version", state_version}, {"provider", "openai_chat"}};
  if (record_render) payload["render"] = sent_spec().to_json();
  return testing::event(id, "s", "InferenceReceipt", boost::json::serialize(payload));
}

// 30 messages of about 60 tokens each, with a receipt after every tenth; the session's own budget is the default.
MemoryFold conversation(std::uint64_t& version) {
  MemoryFold f;
  f.fold({testing::opened(1, "s")});
  version = 1;
  std::uint64_t id = 2;
  for (int turn = 0; turn < 3; ++turn) {
    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i) {
      std::string text = "message ";
      text += std::to_string(turn * 10 + i);
      text += ": the quick brown fox jumps over the lazy dog, again and again, while the reviewers read the log";
      text += " of every call it made and every answer it was given, version by version, byte for byte.";
      lines.push_back(testing::message(id++, "s", i % 2 == 0 ? "user" : "assistant", text));
    }
    f.fold(lines);
    version += 10;
    f.fold({receipt_for(f, id++, version)});
    ++version;
  }
  return f;
}

TEST(Rerender, SentRequestsMatchTheirReceiptsAndASmallerBudgetCuts) {
  std::uint64_t version = 0;
  const MemoryFold f = conversation(version);
  Counterfactual what_if;
  what_if.token_budget = 1200;
  what_if.output_reserve = 200;
  auto report = rerender_session(f.kv, "s", what_if);
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_TRUE(report->has_value());
  const auto& r = **report;
  ASSERT_EQ(r.turns.size(), 3u);
  for (std::size_t i = 0; i < r.turns.size(); ++i) {
    const auto& t = r.turns[i];
    ASSERT_TRUE(t.actual && t.counterfactual) << t.problem;
    EXPECT_TRUE(t.problem.empty()) << t.problem;
    EXPECT_TRUE(t.actual_matches) << "turn at version " << t.version;
    EXPECT_EQ(t.actual->cut_messages, 0u);
    EXPECT_EQ(t.actual->history_messages, 10 * (i + 1));  // every message so far; receipts are no messages
    EXPECT_LE(t.counterfactual->tokens, 1000u);
  }
  // The last turn has about 1,800 tokens of history: the counterfactual drops the oldest messages.
  const auto& last = r.turns.back();
  EXPECT_GT(last.counterfactual->cut_messages, 0u);
  EXPECT_LT(last.counterfactual->tokens, last.actual->tokens);
  EXPECT_EQ(last.only_actual.size(), last.counterfactual->cut_messages);
  EXPECT_EQ(last.only_actual.front(), 2u);  // the oldest message goes first
  EXPECT_TRUE(last.only_counterfactual.empty());
  // Sent as is, each request repeats the previous one up to the messages it adds.
  EXPECT_EQ(r.turns[0].actual->prefix_reused_bytes, 0u);
  EXPECT_GT(r.turns[1].actual->prefix_reused_bytes, r.turns[0].actual->bytes / 2);
  EXPECT_LT(r.turns[1].actual->prefix_reused_bytes, r.turns[1].actual->bytes);

  const std::string text = to_text(r);
  EXPECT_NE(text.find("hash matches the receipt"), std::string::npos) << text;
  EXPECT_NE(text.find("differs: messages only sent 2-"), std::string::npos) << text;
  auto json = boost::json::parse(to_json(r)).as_object();
  EXPECT_EQ(json.at("turns").as_array().size(), 3u);
  EXPECT_EQ(json.at("counterfactual").at("token_budget").as_int64(), 1200);
}

TEST(Rerender, NothingChangedRendersTheSameBytes) {
  std::uint64_t version = 0;
  const MemoryFold f = conversation(version);
  auto report = rerender_session(f.kv, "s", {});
  ASSERT_TRUE(report.ok() && report->has_value());
  for (const auto& t : (*report)->turns) {
    ASSERT_TRUE(t.actual && t.counterfactual);
    EXPECT_EQ(t.actual->hash, t.counterfactual->hash);
    EXPECT_EQ(t.counterfactual->hash, t.recorded_hash);
  }
  EXPECT_NE(to_text(**report).find("nothing changed"), std::string::npos);
}

TEST(Rerender, AnotherProviderRendersOtherBytesFromTheSameHistory) {
  std::uint64_t version = 0;
  const MemoryFold f = conversation(version);
  Counterfactual what_if;
  what_if.provider = context::Provider::anthropic;
  auto report = rerender_session(f.kv, "s", what_if);
  ASSERT_TRUE(report.ok() && report->has_value());
  for (const auto& t : (*report)->turns) {
    ASSERT_TRUE(t.actual && t.counterfactual) << t.problem;
    EXPECT_NE(t.actual->hash, t.counterfactual->hash);
    EXPECT_EQ(t.actual->versions, t.counterfactual->versions);  // the same history, in another shape
  }
}

TEST(Rerender, TurnsThatCannotBeCheckedSayWhy) {
  std::uint64_t version = 0;
  MemoryFold f = conversation(version);
  f.fold({receipt_for(f, 900, version, /*tamper=*/true), receipt_for(f, 901, version, false, /*record_render=*/false)});
  auto report = rerender_session(f.kv, "s", {});
  ASSERT_TRUE(report.ok() && report->has_value());
  const auto& turns = (*report)->turns;
  ASSERT_EQ(turns.size(), 5u);
  ASSERT_TRUE(turns[3].actual);
  EXPECT_FALSE(turns[3].actual_matches);
  EXPECT_NE(to_text(**report).find("HASH DIFFERS from the receipt's"), std::string::npos);
  EXPECT_FALSE(turns[4].actual);
  EXPECT_EQ(turns[4].problem, "not re-renderable: the receipt does not record how its request was rendered");

  auto none = rerender_session(f.kv, "nobody", {});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace statefold::audit
