// Property tests over thousands of random conversations (fixed seeds): tool calls answered, unanswered, answered
// twice or late, long messages, images, memory blocks, summaries, random policies. For every one: the budget is
// respected, pinned content is present, no provider body has an orphan tool result or a dangling tool call, the
// kept history is a suffix cut at a turn or tool-group boundary, and the output is deterministic. For growing
// conversations: the cut only moves forward and, while it stays, each request starts with the previous one.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <random>
#include <set>

#include "connectors/context/render.h"
#include "connectors/providers/echo/echo.h"
#include "engine/base/json_writer.h"
#include "providers/dispatch.h"

namespace statefold::context {
namespace {

using providers::echo::echo_reply;
using providers::testing::render;

const ByteCounter kCounter;

struct Gen {
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  std::mt19937_64 rng;

  std::size_t between(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng); }

  std::string text(std::size_t lo, std::size_t hi) {
    static const std::vector<std::string> pieces = {"a", "b", "the ", "tool ", " ", "\n", "\"", "\\", "\t", "\x01",
                                                    "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "{", "}", "0", "9",
                                                    "</memory>", ",", "z"};
    const std::size_t n = between(lo, hi);
    std::string out;
    while (out.size() < n) out += pieces[between(0, pieces.size() - 1)];
    return out;
  }
};

Message make(std::uint64_t& version, Role role, std::string text) {
  Message m;
  m.version = ++version;
  m.role = role;
  if (!text.empty() || role == Role::user) m.content.push_back(Part{PartKind::text, std::move(text), {}});
  return m;
}

// Appends one "step" of a conversation. With `clean`, only complete turns and tool groups (for growth tests).
void append_step(Gen& g, std::vector<Message>& h, std::uint64_t& v, bool clean) {
  const std::size_t r = g.between(0, 99);
  if (r < 40) {
    Message m = make(v, Role::user, g.chance(0.05) ? g.text(2000, 6000) : g.text(0, 300));
    if (g.chance(0.05)) m.content.push_back(Part{PartKind::image_url, "https://img/" + g.text(1, 20), "image/png"});
    if (g.chance(0.1)) m.name = "user_" + std::to_string(g.between(0, 3));
    h.push_back(std::move(m));
  } else if (r < 65) {
    h.push_back(make(v, Role::assistant, g.chance(0.03) ? g.text(2000, 5000) : g.text(0, 400)));
  } else if (r < 88) {
    Message call = make(v, Role::assistant, g.chance(0.3) ? g.text(1, 80) : "");
    const std::size_t k = g.between(1, 3);
    for (std::size_t i = 0; i < k; ++i) {
      call.tool_calls.push_back(ToolCall{"call_" + std::to_string(v) + "_" + std::to_string(i),
                                         "tool" + std::to_string(i),
                                         g.chance(0.8) ? R"({"q":")" + std::to_string(g.between(0, 999)) + R"("})"
                                                       : g.text(0, 30)});
    }
    std::vector<std::string> ids;
    for (const auto& c : call.tool_calls) ids.push_back(c.id);
    h.push_back(std::move(call));
    std::shuffle(ids.begin(), ids.end(), g.rng);
    if (!clean && g.chance(0.05)) h.push_back(make(v, Role::user, "interrupt"));  // results become orphans
    for (const auto& id : ids) {
      if (!clean && g.chance(0.15)) continue;  // dangling
      Message res = make(v, Role::tool, g.chance(0.05) ? g.text(1500, 4000) : g.text(0, 200));
      res.tool_call_id = id;
      h.push_back(res);
      if (!clean && g.chance(0.05)) {  // answered twice
        res.version = ++v;
        h.push_back(res);
      }
    }
  } else if (r < 93) {
    if (clean) return;
    Message stray = make(v, Role::tool, g.text(0, 50));
    stray.tool_call_id = g.chance(0.5) ? "nobody" : "call_1_0";
    h.push_back(std::move(stray));
  } else {
    h.push_back(make(v, g.chance(0.5) ? Role::system : Role::developer, g.text(1, 200)));
  }
}

SessionState random_session(Gen& g) {
  SessionState s;
  s.session_id = "sess-" + std::to_string(g.between(0, 1000));
  s.model = g.chance(0.5) ? "gpt-4o" : "claude-x";
  s.policy.token_budget = static_cast<std::uint32_t>(g.between(1500, 12000));
  s.policy.output_reserve = static_cast<std::uint32_t>(g.between(0, s.policy.token_budget / 4));
  s.policy.cut_percent = static_cast<std::uint32_t>(std::vector<int>{0, 25, 50, 75, 90}[g.between(0, 4)]);
  s.policy.memory_percent = static_cast<std::uint32_t>(std::vector<int>{0, 10, 25, 50}[g.between(0, 3)]);
  if (g.chance(0.8)) s.system_prompt = g.text(1, 400);
  const std::size_t blocks = g.between(0, 5);
  for (std::size_t i = 0; i < blocks; ++i) {
    s.memory.push_back(MemoryBlock{g.chance(0.8) ? "m" + std::to_string(i) : g.text(1, 10), g.text(0, 300),
                                   g.chance(0.4)});
  }
  std::uint64_t v = 1;  // version 1: SessionOpened
  const std::size_t steps = g.between(0, 120);
  for (std::size_t i = 0; i < steps; ++i) append_step(g, s.history, v, false);
  // Now and then something that cannot fit: a newest message or a pinned block larger than the whole budget.
  const std::size_t too_big = std::size_t{s.policy.token_budget} * 4;
  if (g.chance(0.02)) s.history.push_back(make(v, Role::user, g.text(too_big, too_big + 10)));
  if (g.chance(0.02)) s.memory.push_back(MemoryBlock{"huge", g.text(too_big, too_big + 10), true});
  if (g.chance(0.3)) s.summary = Summary{g.text(10, 300), g.between(0, v)};
  s.version = v;
  if (g.chance(0.2)) s.extra_tokens = g.between(0, 500);
  if (g.chance(0.5)) {
    for (auto& m : s.history) m.tokens = static_cast<std::uint32_t>(message_tokens(m, kCounter));
  }
  return s;
}

std::string escaped(std::string_view text) {
  std::string out;
  base::append_json_string(out, text);
  return out.substr(1, out.size() - 2);
}

// --- Structural checks of each provider's body ---

void check_chat(const boost::json::value& body, std::size_t expected_messages) {
  const auto& messages = body.at("messages").as_array();
  EXPECT_EQ(messages.size(), expected_messages);
  std::set<std::string> pending;
  for (const auto& m : messages) {
    const auto& role = m.at("role").as_string();
    if (role == "tool") {
      const std::string id(m.at("tool_call_id").as_string());
      ASSERT_EQ(pending.erase(id), 1u) << "orphan tool result " << id;
      continue;
    }
    ASSERT_TRUE(pending.empty()) << "dangling tool call " << *pending.begin();
    if (role == "assistant" && m.as_object().contains("tool_calls")) {
      const auto& calls = m.at("tool_calls").as_array();
      ASSERT_FALSE(calls.empty());
      for (const auto& c : calls) pending.insert(std::string(c.at("id").as_string()));
    }
  }
  EXPECT_TRUE(pending.empty()) << "dangling tool call at the end";
}

void check_responses(const boost::json::value& body) {
  EXPECT_EQ(body.at("store"), false);
  std::set<std::string> pending;
  std::string_view previous;
  for (const auto& item : body.at("input").as_array()) {
    const std::string_view type = item.at("type").as_string();
    if (type == "function_call_output") {
      ASSERT_EQ(pending.erase(std::string(item.at("call_id").as_string())), 1u) << "orphan function_call_output";
    } else if (type == "function_call") {
      ASSERT_TRUE(previous != "function_call_output" || pending.empty()) << "dangling function_call";
      pending.insert(std::string(item.at("call_id").as_string()));
    } else {
      ASSERT_EQ(type, "message");
      ASSERT_TRUE(pending.empty()) << "dangling function_call before a message";
    }
    previous = type;
  }
  EXPECT_TRUE(pending.empty());
}

void check_anthropic(const boost::json::value& body, const std::string& text) {
  std::size_t breakpoints = 0;
  for (std::size_t pos = 0; (pos = text.find("\"cache_control\"", pos)) != std::string::npos; ++pos) ++breakpoints;
  EXPECT_LE(breakpoints, 4u);
  const auto& messages = body.at("messages").as_array();
  std::set<std::string> open;  // tool_use ids of the previous assistant message
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].at("role").as_string();
    if (i > 0) {
      ASSERT_NE(role, messages[i - 1].at("role").as_string()) << "roles must alternate";
    }
    const auto& content = messages[i].at("content").as_array();
    ASSERT_FALSE(content.empty());
    if (role == "assistant") {
      ASSERT_TRUE(open.empty()) << "dangling tool_use";
      for (const auto& b : content) {
        if (b.at("type") == "tool_use") {
          ASSERT_TRUE(b.at("input").is_object());
          open.insert(std::string(b.at("id").as_string()));
        }
        if (b.at("type") == "text") {
          ASSERT_FALSE(b.at("text").as_string().empty());
        }
      }
      continue;
    }
    bool seen_other = false;
    for (const auto& b : content) {
      if (b.at("type") == "tool_result") {
        ASSERT_FALSE(seen_other) << "tool_result blocks come first";
        ASSERT_EQ(open.erase(std::string(b.at("tool_use_id").as_string())), 1u) << "orphan tool_result";
      } else {
        seen_other = true;
        if (b.at("type") == "text") {
          ASSERT_FALSE(b.at("text").as_string().empty());
        }
      }
    }
    ASSERT_TRUE(open.empty()) << "tool_use not answered in the next message";
  }
  EXPECT_TRUE(open.empty());
}

// Converse: user and assistant alternate, every block non-blank, toolUse inputs are objects, and every toolUse is
// answered by a toolResult in the next (user) message; toolConfig is there whenever tools are in the conversation.
void check_bedrock(const boost::json::value& body) {
  const auto& o = body.as_object();
  ASSERT_TRUE(o.at("inferenceConfig").at("maxTokens").is_number());
  ASSERT_FALSE(o.contains("model")) << "the model goes in the path";
  const auto& messages = o.at("messages").as_array();
  std::set<std::string> open;
  bool tools = false;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].at("role").as_string();
    if (i > 0) {
      ASSERT_NE(role, messages[i - 1].at("role").as_string()) << "roles must alternate";
    }
    const auto& content = messages[i].at("content").as_array();
    ASSERT_FALSE(content.empty());
    for (const auto& b : content) {
      const auto& block = b.as_object();
      ASSERT_EQ(block.size(), 1u) << "one member per content block";
      if (const auto* text = block.if_contains("text")) {
        ASSERT_FALSE(text->as_string().empty());
      } else if (const auto* use = block.if_contains("toolUse")) {
        ASSERT_EQ(role, "assistant");
        ASSERT_TRUE(use->at("input").is_object());
        open.insert(std::string(use->at("toolUseId").as_string()));
        tools = true;
      } else if (const auto* result = block.if_contains("toolResult")) {
        ASSERT_EQ(role, "user");
        ASSERT_EQ(open.erase(std::string(result->at("toolUseId").as_string())), 1u) << "orphan toolResult";
        ASSERT_FALSE(result->at("content").as_array().empty());
        tools = true;
      } else {
        ASSERT_TRUE(block.contains("image")) << boost::json::serialize(b);
      }
    }
    if (role == "user") {
      ASSERT_TRUE(open.empty()) << "toolUse not answered in the next message";
    }
  }
  EXPECT_TRUE(open.empty());
  if (tools) {
    EXPECT_TRUE(o.contains("toolConfig")) << "Converse refuses tool blocks without a toolConfig";
  }
}

std::string tool_config(const std::string& body) {
  const boost::json::value parsed = boost::json::parse(body);
  const auto* config = parsed.as_object().if_contains("toolConfig");
  return config == nullptr ? std::string() : boost::json::serialize(*config);
}

std::vector<std::string> render_all(const Context& ctx) {
  std::vector<std::string> out;
  for (Provider p : kProviders) {
    auto body = render(ctx, p);
    EXPECT_TRUE(body.ok());
    out.push_back(body.ok() ? *body : std::string());
  }
  return out;
}

// The tokens of an item recomputed from scratch: only the calls it renders.
std::size_t item_tokens(const Item& item) {
  Message copy = *item.message;
  copy.tokens.reset();
  if (!item.all_calls) {
    std::vector<ToolCall> kept;
    for (std::uint32_t k : item.calls) kept.push_back(copy.tool_calls[k]);
    copy.tool_calls = kept;
  }
  return message_tokens(copy, kCounter);
}

void check_context(const SessionState& s, const Context& ctx) {
  // Budget.
  EXPECT_LE(ctx.total_tokens, ctx.input_budget);
  EXPECT_EQ(ctx.input_budget, s.policy.token_budget - s.policy.output_reserve);
  std::size_t history = 0;
  for (const auto& item : ctx.history) {
    EXPECT_EQ(item.tokens, item_tokens(item));
    history += item.tokens;
  }
  EXPECT_EQ(history, ctx.history_tokens);
  EXPECT_EQ(ctx.total_tokens, ctx.system_tokens + ctx.memory_tokens + ctx.summary_tokens + ctx.extra_tokens +
                                  ctx.history_tokens + kReplyPriming);
  EXPECT_LE(ctx.history_tokens, ctx.history_budget);

  // Pinned content.
  EXPECT_EQ(ctx.system_text, s.system_prompt);
  for (const auto& block : s.memory) {
    if (block.pinned) {
      EXPECT_NE(ctx.memory_text.find("\">\n" + block.value + "\n</memory>"), std::string::npos);
    }
  }
  if (s.summary && !s.summary->text.empty()) {
    EXPECT_NE(ctx.summary_text.find(s.summary->text), std::string::npos);
  }

  // The kept history is a suffix of the unsummarised history: in order, nothing missing but orphans and messages
  // whose every call dangles; it starts with no tool result; the newest message is kept.
  const std::uint64_t through = s.summary ? s.summary->through_version : 0;
  if (ctx.history.empty()) return;
  EXPECT_NE(ctx.history.front().message->role, Role::tool);
  std::size_t idx = ctx.cut.covered_by_summary + ctx.cut.messages;
  EXPECT_LE(idx, static_cast<std::size_t>(ctx.history.front().message - s.history.data()));
  if (ctx.cut.messages > 0) {
    EXPECT_EQ(idx, static_cast<std::size_t>(ctx.history.front().message - s.history.data()));
  }
  std::size_t item = 0;
  for (; idx < s.history.size(); ++idx) {
    const Message& m = s.history[idx];
    EXPECT_GT(m.version, through);
    if (item < ctx.history.size() && ctx.history[item].message == &m) {
      ++item;
      continue;
    }
    const bool orphan = m.role == Role::tool && std::count(ctx.cut.orphan_tool_results.begin(),
                                                           ctx.cut.orphan_tool_results.end(), m.version) == 1;
    const bool all_dangling = m.role == Role::assistant && !m.tool_calls.empty() &&
                              std::all_of(m.tool_calls.begin(), m.tool_calls.end(), [&](const ToolCall& c) {
                                return std::count(ctx.cut.dangling_tool_calls.begin(),
                                                  ctx.cut.dangling_tool_calls.end(), c.id) >= 1;
                              });
    EXPECT_TRUE(orphan || all_dangling) << "message " << m.version << " missing from the kept history";
  }
  EXPECT_EQ(item, ctx.history.size());
}

TEST(ContextProperties, RandomConversations) {
  Gen g(20261127);
  std::size_t ok = 0, cut = 0, errors = 0;
  constexpr std::size_t kConversations = 3000;
  for (std::size_t n = 0; n < kConversations; ++n) {
    const SessionState s = random_session(g);
    auto ctx = materialise(s, kCounter);
    if (!ctx.ok()) {
      ++errors;
      const auto& msg = ctx.error().message;
      EXPECT_TRUE(msg.find("newest message") != std::string::npos || msg.find("pinned memory") != std::string::npos)
          << msg;
      continue;
    }
    ++ok;
    if (ctx->cut.messages > 0) ++cut;
    SCOPED_TRACE("conversation " + std::to_string(n));
    check_context(s, *ctx);

    const auto bodies = render_all(*ctx);
    for (std::size_t p = 0; p < bodies.size(); ++p) {
      boost::system::error_code ec;
      const auto json = boost::json::parse(bodies[p], ec);
      ASSERT_FALSE(ec) << provider_name(kProviders[p]) << ": " << bodies[p];
      // Pinned content is in every body.
      if (!s.system_prompt.empty()) {
        EXPECT_NE(bodies[p].find(escaped(s.system_prompt)), std::string::npos);
      }
      for (const auto& block : s.memory) {
        if (block.pinned) {
          EXPECT_NE(bodies[p].find(escaped(block.value)), std::string::npos);
        }
      }
      if (!ctx->summary_text.empty()) {
        EXPECT_NE(bodies[p].find(escaped(ctx->summary_text)), std::string::npos);
      }
      switch (kProviders[p]) {
        case Provider::openai_chat:
        case Provider::echo:
          check_chat(json, ctx->history.size() + (ctx->system_text.empty() ? 0 : 1) +
                               (ctx->memory_text.empty() ? 0 : 1) + (ctx->summary_text.empty() ? 0 : 1));
          break;
        case Provider::openai_responses: check_responses(json); break;
        case Provider::anthropic: check_anthropic(json, bodies[p]); break;
        case Provider::bedrock_converse: check_bedrock(json); break;
      }
    }

    // Determinism: again, from a deep copy, and with or without cached token counts.
    EXPECT_EQ(render_all(*ctx), bodies);
    SessionState copy = s;
    for (auto& m : copy.history) {
      m.tokens = m.tokens ? std::optional<std::uint32_t>() : std::optional<std::uint32_t>(message_tokens(m, kCounter));
    }
    auto again = materialise(copy, kCounter);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(render_all(*again), bodies);
    const std::string body = bodies[0];
    EXPECT_EQ(overview_json(*ctx, Provider::openai_chat, body), overview_json(*again, Provider::openai_chat, body));
    EXPECT_EQ(echo_reply(*ctx), echo_reply(*again));
  }
  // The generator should exercise both paths a lot.
  EXPECT_GT(ok, kConversations * 8 / 10);
  EXPECT_GT(errors, 0u);
  EXPECT_GT(cut, kConversations / 5);
  std::printf("random conversations: %zu rendered (%zu of them cut), %zu refused\n", ok, cut, errors);
}

TEST(ContextProperties, GrowingConversationsKeepTheirPrefix) {
  Gen g(42);
  std::size_t turns = 0, reused = 0, cut_moves = 0;
  for (std::size_t n = 0; n < 150; ++n) {
    SessionState s;
    s.model = "m";
    s.system_prompt = g.text(0, 200);
    s.memory.push_back(MemoryBlock{"pinned", g.text(0, 200), true});
    s.policy.token_budget = static_cast<std::uint32_t>(g.between(4000, 10000));
    s.policy.output_reserve = 500;
    s.policy.cut_percent = static_cast<std::uint32_t>(std::vector<int>{25, 50, 75}[g.between(0, 2)]);
    std::vector<Message> all;
    std::uint64_t v = 1;
    for (std::size_t i = 0; i < 80; ++i) append_step(g, all, v, true);
    std::vector<std::string> previous;
    std::size_t previous_cut = 0;
    // Render after every complete step: a user message, an assistant reply, or a call with all its results.
    for (std::size_t end = 1; end <= all.size(); ++end) {
      if (end < all.size() && all[end].role == Role::tool) continue;  // the group is not complete yet
      s.history.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(end));
      auto ctx = materialise(s, kCounter);
      if (!ctx.ok()) break;  // a message larger than the whole budget: the conversation cannot go on
      const auto bodies = render_all(*ctx);
      EXPECT_GE(ctx->cut.messages, previous_cut) << "the cut moved back";
      if (!previous.empty()) {
        ++turns;
        if (ctx->cut.messages == previous_cut) {
          for (std::size_t p = 0; p < bodies.size(); ++p) {
            // Bedrock declares the tools the history uses when the client sent none: a new tool there is a new
            // prompt prefix for the model as well (tools come first in its prompt).
            if (kProviders[p] == Provider::bedrock_converse && tool_config(previous[p]) != tool_config(bodies[p])) {
              continue;
            }
            EXPECT_TRUE(prefix_reused(previous[p], bodies[p])) << provider_name(kProviders[p]);
          }
          ++reused;
        } else {
          ++cut_moves;
        }
      }
      previous = bodies;
      previous_cut = ctx->cut.messages;
    }
  }
  std::printf("growing conversations: %zu requests, %zu reuse the previous one as prefix, %zu cut moves\n", turns,
              reused, cut_moves);
  EXPECT_GT(cut_moves, 50u);
  EXPECT_GE(static_cast<double>(reused) / static_cast<double>(turns), 0.85);
}

}  // namespace
}  // namespace statefold::context
