// Bedrock Converse: the exact body bytes (hashed into receipts), the client's parameters in Converse's shape, the
// path with the model id encoded, whole replies, ConverseStream events (the same reply as the whole one, exceptions
// as errors) and the token margin.
#include "connectors/providers/bedrock_converse/bedrock_converse.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "context/fixtures.h"
#include "protocol/fixtures.h"

namespace statefold::providers {
namespace {

using context::Provider;
using context::testing::call_message;
using context::testing::text_message;
using context::testing::weather_session;
using protocol::Delta;
using protocol::Reply;

const Provider& kId = Provider::bedrock_converse;
const context::ByteCounter kCounter;

const providers::Provider& bedrock() { return get(kId); }

std::string body_of(const context::SessionState& s, std::string_view extra = {}) {
  auto ctx = context::materialise(s, kCounter);
  EXPECT_TRUE(ctx.ok());
  auto body = bedrock().render(*ctx, {extra});
  return body.ok() ? *body : "error: " + body.error().message;
}

constexpr std::string_view kMemory =
    R"(<memory label=\"user\">\nName: Ada\n</memory>\n<memory label=\"notes\">\nlikes tea\n</memory>)";

TEST(BedrockConverse, Body) {
  std::string expected =
      R"({"inferenceConfig":{"maxTokens":100},)"
      R"("toolConfig":{"tools":[{"toolSpec":{"inputSchema":{"json":{"properties":{},"type":"object"}},)"
      R"("name":"get_weather"}}]},)"
      R"("system":[{"text":"Be brief."},{"text":"MEMORY"}],"messages":[)"
      R"({"role":"user","content":[{"text":"What's the weather in Paris?"}]},)"
      R"({"role":"assistant","content":[{"toolUse":{"input":{"city":"Paris"},"name":"get_weather",)"
      R"("toolUseId":"call_1"}}]},)"
      R"({"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"18C, sunny"}]}}]},)"
      R"({"role":"assistant","content":[{"text":"It is 18C and sunny."}]},)"
      R"({"role":"user","content":[{"text":"Thanks!"}]}]})";
  expected.replace(expected.find("MEMORY"), 6, kMemory);
  // Without the client's tools, the tools the history uses are declared (Converse refuses tool blocks otherwise).
  EXPECT_EQ(body_of(weather_session()), expected);
  // The model is not in the body: it goes in the path.
  EXPECT_EQ(body_of(weather_session()).find("gpt-4o"), std::string::npos);
}

TEST(BedrockConverse, ExtrasMergeIntoInferenceConfigAndComeBeforeTheConversation) {
  const std::string body = body_of(
      weather_session(),
      R"({"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{}}}}]},)"
      R"("inferenceConfig":{"temperature":0.5,"topP":0.9,"stopSequences":["END"]},"additionalModelRequestFields":{"top_k":5}})");
  EXPECT_EQ(body.substr(0, body.find(R"(,"system")")),
            R"({"inferenceConfig":{"maxTokens":100,"stopSequences":["END"],"temperature":0.5,"topP":0.9},)"
            R"("additionalModelRequestFields":{"top_k":5},)"
            R"("toolConfig":{"tools":[{"toolSpec":{"inputSchema":{"json":{}},"name":"get_weather"}}]})");
  EXPECT_EQ(body_of(weather_session(), R"({"messages":[]})"),
            "error: context: extra request parameter \"messages\" is written by the renderer");
  EXPECT_EQ(body_of(weather_session(), R"({"inferenceConfig":{"maxTokens":5}})"),
            "error: context: extra request parameter \"inferenceConfig.maxTokens\" is written by the renderer");
  EXPECT_EQ(body_of(weather_session(), R"({"inferenceConfig":3})"),
            "error: context: extra inferenceConfig must be a JSON object");
  EXPECT_EQ(body_of(weather_session(), "[1]"), "error: context: extra request parameters must be a JSON object");
}

TEST(BedrockConverse, ImagesAndEmptyToolResults) {
  context::SessionState s;
  s.model = "m";
  s.policy.token_budget = 10000;
  s.policy.output_reserve = 50;
  context::Message user = text_message(1, context::Role::user, "look");
  user.content.push_back({context::PartKind::image_url, "data:image/png;base64,iVBORw0K", ""});
  user.content.push_back({context::PartKind::image_url, "https://example.com/cat.jpg", ""});
  s.history.push_back(user);
  s.history.push_back(call_message(2, {context::ToolCall{"t1", "noop", ""}}, "calling"));
  s.history.push_back(context::testing::tool_result(3, "t1", ""));
  EXPECT_EQ(
      body_of(s),
      R"({"inferenceConfig":{"maxTokens":50},"toolConfig":{"tools":[{"toolSpec":{"inputSchema":{"json":)"
      R"({"properties":{},"type":"object"}},"name":"noop"}}]},"messages":[{"role":"user","content":[)"
      R"({"text":"look"},{"image":{"format":"png","source":{"bytes":"iVBORw0K"}}},)"
      R"({"text":"[image: https://example.com/cat.jpg]"}]},)"
      R"({"role":"assistant","content":[{"text":"calling"},{"toolUse":{"input":{},"name":"noop","toolUseId":"t1"}}]},)"
      R"({"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"json":{}}]}}]}]})");
}

TEST(BedrockConverse, PathCarriesTheEncodedModelId) {
  EXPECT_EQ(bedrock().upstream_path("anthropic.claude-3-5-sonnet-20240620-v1:0", false),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  EXPECT_EQ(bedrock().upstream_path("meta.llama3-70b-instruct-v1:0", true),
            "/model/meta.llama3-70b-instruct-v1%3A0/converse-stream");
  EXPECT_EQ(bedrock().upstream_path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
                                    false),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-pro-v1%3A0"
            "/converse");
}

std::string extra(const protocol::Params& p) {
  auto r = bedrock().extra(p, true);
  return r.ok() ? *r : "error: " + r.error().message;
}

protocol::Params weather_params() {
  protocol::Params p;
  p.tools.push_back(protocol::Tool{"get_weather", "Weather now",
                                   R"({"properties":{"city":{"type":"string"}},"type":"object"})", true});
  p.tools.push_back(protocol::Tool{"noop", "", "", std::nullopt});
  p.tool_choice = "function";
  p.tool_choice_name = "get_weather";
  p.parallel_tool_calls = false;
  p.temperature = 1.5;
  p.top_p = 0.9;
  p.seed = 7;
  p.user = "u-1";
  return p;
}

TEST(BedrockConverse, Parameters) {
  // No "stream" key: streaming is the path. Seed, user and parallel_tool_calls have no Converse equivalent.
  EXPECT_EQ(extra(weather_params()),
            R"({"inferenceConfig":{"temperature":1,"topP":0.9},"toolConfig":{"toolChoice":{"tool":)"
            R"({"name":"get_weather"}},"tools":[{"toolSpec":{"description":"Weather now","inputSchema":{"json":)"
            R"({"properties":{"city":{"type":"string"}},"type":"object"}},"name":"get_weather"}},)"
            R"({"toolSpec":{"inputSchema":{"json":{"properties":{},"type":"object"}},"name":"noop"}}]}})");
  protocol::Params p = weather_params();
  p.tool_choice = "required";
  EXPECT_NE(extra(p).find(R"("toolChoice":{"any":{}})"), std::string::npos);
  p.tool_choice = "auto";
  EXPECT_NE(extra(p).find(R"("toolChoice":{"auto":{}})"), std::string::npos);
  p.tool_choice = "";
  EXPECT_EQ(extra(p).find("toolChoice"), std::string::npos);
  p.tool_choice = "none";  // Converse cannot forbid calls: no tools are sent
  EXPECT_EQ(extra(p).find("toolConfig"), std::string::npos);
  protocol::Params stop;
  stop.stop = {"END", "STOP"};
  EXPECT_EQ(extra(stop), R"({"inferenceConfig":{"stopSequences":["END","STOP"]}})");
  EXPECT_EQ(extra(protocol::Params{}), "{}");
  protocol::Params json;
  json.format.type = "json_schema";
  EXPECT_EQ(extra(json),
            "error: response_format: JSON output (json_schema) is not supported by the bedrock_converse "
            "upstream");
}

// A Converse response as the API documents it (no id and no model in the body).
const std::string kText = R"({"output":{"message":{"role":"assistant","content":[{"text":"Hello! "},)"
                          R"({"text":"How can I help?"}]}},"stopReason":"end_turn",)"
                          R"("usage":{"inputTokens":12,"outputTokens":7,"totalTokens":19,"cacheReadInputTokens":100,)"
                          R"("cacheWriteInputTokens":20},"metrics":{"latencyMs":321}})";
const std::string kTools = R"({"output":{"message":{"role":"assistant","content":[{"text":"Let me check."},)"
                           R"({"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"get_weather",)"
                           R"("input":{"city":"Paris","unit":"c"}}},{"toolUse":{"toolUseId":"tooluse_2",)"
                           R"("name":"noop","input":{}}}]}},"stopReason":"tool_use",)"
                           R"("usage":{"inputTokens":30,"outputTokens":15,"totalTokens":45}})";

Reply parsed(const std::string& body) {
  auto r = bedrock().parse_reply(body);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Reply{};
}

TEST(BedrockConverse, WholeReplies) {
  const Reply text = parsed(kText);
  EXPECT_EQ(text.text, "Hello! How can I help?");
  EXPECT_EQ(text.finish_reason, "stop");
  EXPECT_EQ(text.usage.input_tokens, 132u);  // cache reads and writes included
  EXPECT_EQ(text.usage.cached_tokens, 100u);
  EXPECT_EQ(text.usage.cache_write_tokens, 20u);
  EXPECT_EQ(text.usage.output_tokens, 7u);
  const Reply tools = parsed(kTools);
  EXPECT_EQ(tools.text, "Let me check.");
  EXPECT_EQ(tools.finish_reason, "tool_calls");
  ASSERT_EQ(tools.tool_calls.size(), 2u);
  EXPECT_EQ(tools.tool_calls[0].id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
  EXPECT_EQ(tools.tool_calls[0].name, "get_weather");
  EXPECT_EQ(tools.tool_calls[0].arguments, R"({"city":"Paris","unit":"c"})");
  EXPECT_EQ(tools.tool_calls[1].arguments, "{}");
  const auto finish = [](std::string_view reason) {
    return parsed(R"({"output":{"message":{"content":[]}},"stopReason":")" + std::string(reason) + "\"}").finish_reason;
  };
  EXPECT_EQ(finish("max_tokens"), "length");
  EXPECT_EQ(finish("stop_sequence"), "stop");
  EXPECT_EQ(finish("guardrail_intervened"), "content_filter");
  EXPECT_EQ(finish("content_filtered"), "content_filter");
  auto error = bedrock().parse_reply(R"({"message":"The provided model identifier is invalid."})");
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error().message, "The provided model identifier is invalid.");
  EXPECT_FALSE(bedrock().parse_reply("not json").ok());
  EXPECT_EQ(error_message(R"({"message":"Too many requests, please wait before trying again."})"),
            "Too many requests, please wait before trying again.");
}

using Events = protocol::testing::Events;

// ConverseStream as the upstream client hands it over: (:event-type, payload); real payloads carry a "p" padding.
Events text_stream() {
  return {{"messageStart", R"({"p":"abcd","role":"assistant"})"},
          {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hello! "},"p":"abcdefgh"})"},
          {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"How can I help?"}})"},
          {"contentBlockStop", R"({"contentBlockIndex":0})"},
          {"messageStop", R"({"stopReason":"end_turn"})"},
          {"metadata", R"({"usage":{"inputTokens":12,"outputTokens":7,"totalTokens":19,"cacheReadInputTokens":100,)"
                       R"("cacheWriteInputTokens":20},"metrics":{"latencyMs":321}})"}};
}

Events tool_stream() {
  return {
      {"messageStart", R"({"role":"assistant"})"},
      {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Let me check."}})"},
      {"contentBlockStop", R"({"contentBlockIndex":0})"},
      {"contentBlockStart", R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":)"
                            R"("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"get_weather"}}})"},
      {"contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\": \"Pa"}}})"},
      {"contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"ris\", \"unit\": \"c\"}"}}})"},
      {"contentBlockStop", R"({"contentBlockIndex":1})"},
      {"contentBlockStart", R"({"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_2","name":"noop"}}})"},
      {"contentBlockStop", R"({"contentBlockIndex":2})"},
      {"messageStop", R"({"stopReason":"tool_use"})"},
      {"metadata", R"({"usage":{"inputTokens":30,"outputTokens":15,"totalTokens":45},"metrics":{"latencyMs":9}})"}};
}

Reply streamed(const Events& events, std::vector<Delta>* all = nullptr) {
  auto decoder = bedrock().stream_decoder();
  for (const auto& [name, data] : events) {
    EXPECT_FALSE(decoder->finished()) << name;
    auto deltas = decoder->feed(name, data);
    EXPECT_TRUE(deltas.ok()) << deltas.error().message;
    if (!deltas.ok()) return {};
    if (all != nullptr) all->insert(all->end(), deltas->begin(), deltas->end());
  }
  EXPECT_TRUE(decoder->finished());
  return decoder->reply();
}

void expect_same(const Reply& a, const Reply& b) {
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.usage.input_tokens, b.usage.input_tokens);
  EXPECT_EQ(a.usage.output_tokens, b.usage.output_tokens);
  EXPECT_EQ(a.usage.cached_tokens, b.usage.cached_tokens);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id);
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name);
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments);
  }
}

TEST(BedrockConverse, StreamsGiveTheWholeReply) {
  std::vector<Delta> deltas;
  expect_same(streamed(text_stream(), &deltas), parsed(kText));
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_EQ(deltas[0].text, "Hello! ");
  deltas.clear();
  expect_same(streamed(tool_stream(), &deltas), parsed(kTools));
  // Text, then each tool call announced (id, name) and its arguments whole once its block stops.
  ASSERT_EQ(deltas.size(), 5u);
  EXPECT_EQ(deltas[1].tool_index, 0);
  EXPECT_EQ(deltas[1].tool_id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
  EXPECT_EQ(deltas[1].tool_name, "get_weather");
  EXPECT_EQ(deltas[2].tool_arguments, R"({"city":"Paris","unit":"c"})");
  EXPECT_EQ(deltas[4].tool_index, 1);
  EXPECT_EQ(deltas[4].tool_arguments, "{}");
}

TEST(BedrockConverse, StreamExceptionsAreErrors) {
  auto decoder = bedrock().stream_decoder();
  ASSERT_TRUE(decoder->feed("messageStart", R"({"role":"assistant"})").ok());
  auto throttled = decoder->feed("throttlingException", R"({"message":"Too many tokens, please wait."})");
  ASSERT_FALSE(throttled.ok());
  EXPECT_EQ(throttled.error().message, "rate limited: Too many tokens, please wait.");
  auto model =
      bedrock().stream_decoder()->feed("modelStreamErrorException", R"({"message":"boom","originalStatusCode":500})");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().message, "modelStreamErrorException: boom");
  auto framing = bedrock().stream_decoder()->feed("error", "InternalFailure: broken");
  ASSERT_FALSE(framing.ok());
  EXPECT_EQ(framing.error().message, "error: InternalFailure: broken");
  // Unknown events are skipped; a stream without its metadata is not finished; metadata before messageStop is bad.
  auto unfinished = bedrock().stream_decoder();
  ASSERT_TRUE(unfinished->feed("someFutureEvent", "{}").ok());
  ASSERT_TRUE(unfinished->feed("messageStop", R"({"stopReason":"end_turn"})").ok());
  EXPECT_FALSE(unfinished->finished());
  EXPECT_FALSE(bedrock().stream_decoder()->feed("metadata", R"({"usage":{}})").ok());
  EXPECT_FALSE(bedrock().stream_decoder()->feed("contentBlockDelta", "not json").ok());
  EXPECT_FALSE(bedrock()
                   .stream_decoder()
                   ->feed("contentBlockDelta", R"({"contentBlockIndex":4,"delta":{"toolUse":{"input":"{"}}})")
                   .ok());
}

TEST(BedrockConverse, RegisteredWithASafeCalibratedMargin) {
  EXPECT_EQ(get(kId).name(), "bedrock_converse");
  EXPECT_EQ(find("bedrock_converse"), &get(kId));
  EXPECT_FALSE(get(kId).offline());
  EXPECT_GT(get(kId).token_margin(), 1.0);
  EXPECT_DOUBLE_EQ(get(kId).token_margin(), bedrock_converse::kMargin);
  EXPECT_TRUE(get(kId).calibrated_margin());
}

}  // namespace
}  // namespace statefold::providers
