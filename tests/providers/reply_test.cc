// Upstream replies, error bodies and streams, for every provider family.
#include <gtest/gtest.h>

#include "connectors/protocol/protocol.h"
#include "connectors/providers/provider.h"
#include "protocol/fixtures.h"
#include "providers/dispatch.h"

namespace statefold::protocol {
namespace {

using context::Provider;
using providers::error_message;
using providers::testing::parse_reply;
using providers::testing::StreamParser;
using namespace testing;  // NOLINT: fixtures

Reply parsed(Provider provider, const std::string& body) {
  auto r = parse_reply(provider, body);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Reply{};
}

// Feeds the whole stream and checks the deltas rebuild the reply's text and arguments.
Reply streamed(Provider provider, const Events& events, std::vector<Delta>* all = nullptr) {
  StreamParser parser(provider);
  std::string text;
  std::vector<std::string> args;
  for (const auto& [name, data] : events) {
    EXPECT_FALSE(parser.finished()) << "finished before " << data;
    auto deltas = parser.feed(name, data);
    EXPECT_TRUE(deltas.ok()) << deltas.error().message;
    if (!deltas.ok()) return {};
    for (const Delta& d : *deltas) {
      if (all != nullptr) all->push_back(d);
      if (d.tool_index < 0) {
        text += d.text;
        continue;
      }
      if (static_cast<std::size_t>(d.tool_index) >= args.size()) {
        EXPECT_EQ(static_cast<std::size_t>(d.tool_index), args.size()) << "tool indexes count from 0 in order";
        EXPECT_FALSE(d.tool_id.empty());
        EXPECT_FALSE(d.tool_name.empty());
        args.resize(static_cast<std::size_t>(d.tool_index) + 1);
      }
      args[static_cast<std::size_t>(d.tool_index)] += d.tool_arguments;
    }
  }
  EXPECT_TRUE(parser.finished());
  EXPECT_EQ(text, parser.reply().text);
  EXPECT_EQ(args.size(), parser.reply().tool_calls.size());
  return parser.reply();
}

void expect_same(const Reply& a, const Reply& b) {
  EXPECT_EQ(a.text, b.text);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id) << i;
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << i;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << i;
  }
  EXPECT_EQ(a.usage.input_tokens, b.usage.input_tokens);
  EXPECT_EQ(a.usage.output_tokens, b.usage.output_tokens);
  EXPECT_EQ(a.usage.cached_tokens, b.usage.cached_tokens);
  EXPECT_EQ(a.usage.cache_write_tokens, b.usage.cache_write_tokens);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.upstream_id, b.upstream_id);
}

// --- Whole replies ---

TEST(ParseReply, OpenAIChatText) {
  Reply r = parsed(Provider::openai_chat, kChatText);
  EXPECT_EQ(r.text, "Hello! How can I assist you today?");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.model, "gpt-4o-2024-08-06");
  EXPECT_EQ(r.upstream_id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
  EXPECT_EQ(r.usage.input_tokens, 19u);
  EXPECT_EQ(r.usage.output_tokens, 10u);
  EXPECT_EQ(r.usage.cached_tokens, 0u);
}

TEST(ParseReply, OpenAIChatTools) {
  Reply r = parsed(Provider::openai_chat, kChatTools);
  EXPECT_EQ(r.text, "");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_abc123");
  EXPECT_EQ(r.tool_calls[0].name, "get_current_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, "{\n\"location\": \"Boston, MA\"\n}");
  EXPECT_EQ(r.tool_calls[1].arguments, "{}");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.usage.cached_tokens, 64u);
}

TEST(ParseReply, OpenAIChatFinishReasons) {
  const auto with = [](std::string_view reason) {
    std::string body = R"({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
                       R"("finish_reason":")";
    body += reason;
    body += R"("}]})";
    return parsed(Provider::openai_chat, body).finish_reason;
  };
  EXPECT_EQ(with("length"), "length");
  EXPECT_EQ(with("content_filter"), "content_filter");
  EXPECT_EQ(with("function_call"), "tool_calls");
  EXPECT_EQ(with("stop"), "stop");
  auto refusal = parse_reply(Provider::openai_chat,
                             R"({"choices":[{"message":{"content":null,"refusal":"I can't help."},)"
                             R"("finish_reason":"stop"}]})");
  ASSERT_TRUE(refusal.ok());
  EXPECT_EQ(refusal->text, "I can't help.");
  EXPECT_FALSE(parse_reply(Provider::openai_chat, R"({"choices":[]})").ok());
}

TEST(ParseReply, ResponsesText) {
  Reply r = parsed(Provider::openai_responses, kResponsesText);
  EXPECT_EQ(r.text, "In a peaceful grove, a unicorn slept.");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.upstream_id, "resp_67ccd2bed1ec8190b14f964abc054267");
  EXPECT_EQ(r.model, "gpt-4.1-2025-04-14");
  EXPECT_EQ(r.usage.input_tokens, 36u);
  EXPECT_EQ(r.usage.output_tokens, 87u);
}

TEST(ParseReply, ResponsesToolsAndIncomplete) {
  Reply r = parsed(Provider::openai_responses, kResponsesTools);
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_12345xyz");  // call_id, not the item id
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[1].arguments, R"({"location":"Bogotá, Colombia"})");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.usage.cached_tokens, 256u);
  Reply inc = parsed(Provider::openai_responses, kResponsesIncomplete);
  EXPECT_EQ(inc.text, "Once upon");
  EXPECT_EQ(inc.finish_reason, "length");
  auto failed = parse_reply(Provider::openai_responses,
                            R"({"id":"r","status":"failed","error":{"code":"server_error","message":"boom"},)"
                            R"("output":[]})");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "openai_responses reply failed: server_error: boom");
}

TEST(ParseReply, AnthropicText) {
  Reply r = parsed(Provider::anthropic, kAnthropicText);
  EXPECT_EQ(r.text, "Hi! My name is Claude.");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.model, "claude-sonnet-4-5-20250929");
  EXPECT_EQ(r.upstream_id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
  EXPECT_EQ(r.usage.input_tokens, 2095u);
  EXPECT_EQ(r.usage.output_tokens, 503u);
}

TEST(ParseReply, AnthropicToolsAndCacheUsage) {
  Reply r = parsed(Provider::anthropic, kAnthropicTools);
  EXPECT_EQ(r.text, "I'll check the weather.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
  EXPECT_EQ(r.tool_calls[0].arguments, R"({"location":"San Francisco, CA","unit":"celsius"})");
  EXPECT_EQ(r.tool_calls[1].arguments, "{}");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.usage.input_tokens, 472u + 100u + 2000u);
  EXPECT_EQ(r.usage.cached_tokens, 2000u);
  EXPECT_EQ(r.usage.cache_write_tokens, 100u);
  EXPECT_EQ(r.usage.output_tokens, 89u);
}

TEST(ParseReply, AnthropicStopReasons) {
  const auto with = [](std::string_view reason) {
    std::string body = R"({"type":"message","content":[{"type":"text","text":"x"}],"stop_reason":")";
    body += reason;
    body += R"("})";
    return parsed(Provider::anthropic, body).finish_reason;
  };
  EXPECT_EQ(with("end_turn"), "stop");
  EXPECT_EQ(with("stop_sequence"), "stop");
  EXPECT_EQ(with("max_tokens"), "length");
  EXPECT_EQ(with("tool_use"), "tool_calls");
  EXPECT_EQ(with("refusal"), "content_filter");
}

TEST(ParseReply, ErrorsAndBadBodies) {
  auto e = parse_reply(Provider::anthropic,
                       R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "overloaded: Overloaded");
  EXPECT_FALSE(parse_reply(Provider::openai_chat, "<html>").ok());
  EXPECT_FALSE(parse_reply(Provider::echo, "{}").ok());
}

TEST(ErrorMessage, Shapes) {
  EXPECT_EQ(error_message(R"({"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,)"
                          R"("code":"rate_limit_exceeded"}})"),
            "rate limited: Rate limit reached for gpt-4o");
  EXPECT_EQ(error_message(R"({"type":"error","error":{"type":"rate_limit_error",)"
                          R"("message":"Number of requests exceeded"}})"),
            "rate limited: Number of requests exceeded");
  EXPECT_EQ(error_message(R"({"error":{"message":"Invalid 'messages[0].role'","type":"invalid_request_error",)"
                          R"("param":"messages[0].role","code":null}})"),
            "invalid_request_error: Invalid 'messages[0].role'");
  EXPECT_EQ(error_message(R"({"error":{"message":"No such model","type":"invalid_request_error",)"
                          R"("code":"model_not_found"}})"),
            "invalid_request_error (model_not_found): No such model");
  EXPECT_EQ(error_message(R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})"),
            "authentication_error: invalid x-api-key");
  EXPECT_EQ(error_message("\n<html>502 Bad Gateway</html>\nmore"), "<html>502 Bad Gateway</html>");
  EXPECT_EQ(error_message(""), "empty error body");
  EXPECT_EQ(error_message(std::string(500, 'x')).size(), 200u);
}

// --- Streams: the assembled reply equals the whole body's ---

TEST(StreamParser, OpenAIChatText) {
  Reply whole = parsed(Provider::openai_chat, kChatText);
  whole.model = "gpt-4o-mini";
  whole.upstream_id = "chatcmpl-123";
  std::vector<Delta> deltas;
  expect_same(streamed(Provider::openai_chat, chat_text_stream(), &deltas), whole);
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_EQ(deltas[0].text, "Hello! How can I ");
}

TEST(StreamParser, OpenAIChatTools) {
  Reply whole = parsed(Provider::openai_chat, kChatTools);
  whole.model = "gpt-4o-mini";
  whole.upstream_id = "chatcmpl-123";
  std::vector<Delta> deltas;
  expect_same(streamed(Provider::openai_chat, chat_tool_stream(), &deltas), whole);
  ASSERT_GE(deltas.size(), 4u);
  EXPECT_EQ(deltas[0].tool_index, 0);
  EXPECT_EQ(deltas[0].tool_id, "call_abc123");
  EXPECT_EQ(deltas[0].tool_name, "get_current_weather");
}

TEST(StreamParser, ResponsesText) {
  expect_same(streamed(Provider::openai_responses, responses_text_stream()),
              parsed(Provider::openai_responses, kResponsesText));
}

TEST(StreamParser, ResponsesToolsSkipReasoningItems) {
  std::vector<Delta> deltas;
  expect_same(streamed(Provider::openai_responses, responses_tool_stream(), &deltas),
              parsed(Provider::openai_responses, kResponsesTools));
  ASSERT_FALSE(deltas.empty());
  EXPECT_EQ(deltas[0].tool_index, 0);  // output_index 1, after a reasoning item
  EXPECT_EQ(deltas[0].tool_id, "call_12345xyz");
  EXPECT_EQ(deltas.back().tool_index, 1);
}

TEST(StreamParser, AnthropicText) {
  expect_same(streamed(Provider::anthropic, anthropic_text_stream()), parsed(Provider::anthropic, kAnthropicText));
}

TEST(StreamParser, AnthropicTools) {
  std::vector<Delta> deltas;
  expect_same(streamed(Provider::anthropic, anthropic_tool_stream(), &deltas),
              parsed(Provider::anthropic, kAnthropicTools));
  // Tool indexes are ours (0, 1), not Anthropic's content block indexes (1, 2); the arguments come whole, as
  // parse_reply writes them, when the block ends.
  std::vector<std::string> pieces;
  for (const Delta& d : deltas) {
    if (d.tool_index < 0 || d.tool_arguments.empty()) continue;
    pieces.push_back(std::to_string(d.tool_index) + d.tool_arguments);
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{R"(0{"location":"San Francisco, CA","unit":"celsius"})", "1{}"}));
}

TEST(StreamParser, ErrorsInStreams) {
  StreamParser anthropic(Provider::anthropic);
  auto r = anthropic.feed("error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "overloaded: Overloaded");
  StreamParser chat(Provider::openai_chat);
  EXPECT_FALSE(chat.feed("", "{not json").ok());
  auto e = chat.feed("", R"({"error":{"message":"The server had an error","type":"server_error"}})");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "server_error: The server had an error");
  StreamParser responses(Provider::openai_responses);
  auto f = responses.feed("response.failed",
                          R"({"type":"response.failed","sequence_number":3,"response":{"id":"r","status":"failed",)"
                          R"("error":{"code":"server_error","message":"boom"}}})");
  ASSERT_FALSE(f.ok());
  auto g = responses.feed("error", R"({"type":"error","sequence_number":1,"code":"rate_limit_exceeded",)"
                                   R"("message":"slow down"})");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message, "rate limited: slow down");
}

TEST(StreamParser, ChatWithoutUsageChunkOrFinishReason) {
  StreamParser p(Provider::openai_chat);
  ASSERT_TRUE(p.feed("", chat_chunk(R"("choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}])")).ok());
  EXPECT_FALSE(p.finished());
  ASSERT_TRUE(p.feed("", "[DONE]").ok());
  EXPECT_TRUE(p.finished());
  EXPECT_EQ(p.reply().finish_reason, "stop");
  EXPECT_EQ(p.reply().text, "hi");
  auto after = p.feed("", chat_chunk(R"("choices":[{"index":0,"delta":{"content":"late"}}])"));
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
}

TEST(ToMessage, ClientMessagesAndReplies) {
  auto req = parse_chat_request(R"({"model":"m","messages":[{"role":"tool","tool_call_id":"call_1",)"
                                R"("content":"18C"}]})");
  ASSERT_TRUE(req.ok());
  context::Message tool = to_message(req->messages[0]);
  EXPECT_EQ(tool.role, context::Role::tool);
  EXPECT_EQ(tool.tool_call_id, "call_1");
  ASSERT_EQ(tool.content.size(), 1u);
  EXPECT_EQ(tool.content[0].text, "18C");
  context::Message assistant = to_message(parsed(Provider::anthropic, kAnthropicTools));
  EXPECT_EQ(assistant.role, context::Role::assistant);
  ASSERT_EQ(assistant.content.size(), 1u);
  EXPECT_EQ(assistant.tool_calls.size(), 2u);
  EXPECT_TRUE(to_message(parsed(Provider::openai_chat, kChatTools)).content.empty());
}

}  // namespace
}  // namespace statefold::protocol
