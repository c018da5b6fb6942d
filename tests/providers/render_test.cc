// Renderers: the exact bytes of each provider's body for a small conversation, extra parameters, images, the
// echo reply, the overview and the request hash. The bytes are hashed into receipts: they must not change.
#include "connectors/context/render.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "connectors/providers/echo/echo.h"
#include "context/fixtures.h"
#include "providers/dispatch.h"

namespace statefold::context {
namespace {

using testing::call_message;
using testing::text_message;
using testing::weather_session;
using providers::echo::echo_reply;
using providers::testing::render;

const ByteCounter kCounter;

std::string body_of(const SessionState& s, Provider provider, std::string_view extra = {}) {
  auto ctx = materialise(s, kCounter);
  EXPECT_TRUE(ctx.ok());
  auto body = render(*ctx, provider, RenderOptions{extra});
  EXPECT_TRUE(body.ok()) << (body.ok() ? "" : body.error().message);
  return body.ok() ? *body : std::string();
}

constexpr std::string_view kMemory =
    R"(<memory label=\"user\">\nName: Ada\n</memory>\n<memory label=\"notes\">\nlikes tea\n</memory>)";

std::string with_memory(std::string_view templ) {
  std::string out(templ);
  out.replace(out.find("MEMORY"), 6, kMemory);
  return out;
}

TEST(Render, OpenAIChat) {
  EXPECT_EQ(body_of(weather_session(), Provider::openai_chat),
            with_memory(
                R"({"model":"gpt-4o","max_completion_tokens":100,"messages":[)"
                R"({"role":"system","content":"Be brief."},{"role":"system","content":"MEMORY"},)"
                R"({"role":"user","content":"What's the weather in Paris?"},)"
                R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)"
                R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},)"
                R"({"role":"tool","tool_call_id":"call_1","content":"18C, sunny"},)"
                R"({"role":"assistant","content":"It is 18C and sunny."},{"role":"user","content":"Thanks!"}]})"));
}

TEST(Render, EchoSendsTheChatBody) {
  EXPECT_EQ(body_of(weather_session(), Provider::echo), body_of(weather_session(), Provider::openai_chat));
}

TEST(Render, OpenAIResponses) {
  EXPECT_EQ(body_of(weather_session(), Provider::openai_responses),
            with_memory(
                R"({"model":"gpt-4o","max_output_tokens":100,"store":false,"instructions":"Be brief.","input":[)"
                R"({"type":"message","role":"developer","content":"MEMORY"},)"
                R"({"type":"message","role":"user","content":"What's the weather in Paris?"},)"
                R"({"type":"function_call","call_id":"call_1","name":"get_weather",)"
                R"("arguments":"{\"city\":\"Paris\"}"},)"
                R"({"type":"function_call_output","call_id":"call_1","output":"18C, sunny"},)"
                R"({"type":"message","role":"assistant","content":"It is 18C and sunny."},)"
                R"({"type":"message","role":"user","content":"Thanks!"}]})"));
}

TEST(Render, Anthropic) {
  EXPECT_EQ(body_of(weather_session(), Provider::anthropic),
            with_memory(
                R"({"model":"gpt-4o","max_tokens":100,"system":[{"type":"text","text":"Be brief."},)"
                R"({"type":"text","text":"MEMORY","cache_control":{"type":"ephemeral"}}],"messages":[)"
                R"({"role":"user","content":[{"type":"text","text":"What's the weather in Paris?"}]},)"
                R"({"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather",)"
                R"("input":{"city":"Paris"}}]},)"
                R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C, sunny"}]},)"
                R"({"role":"assistant","content":[{"type":"text","text":"It is 18C and sunny.",)"
                R"("cache_control":{"type":"ephemeral"}}]},)"
                R"({"role":"user","content":[{"type":"text","text":"Thanks!",)"
                R"("cache_control":{"type":"ephemeral"}}]}]})"));
}

TEST(Render, AnthropicMergesSameRoleAndShapesToolInput) {
  SessionState s = weather_session();
  s.system_prompt.clear();
  s.memory.clear();
  s.history.clear();
  s.history.push_back(text_message(1, Role::user, "a"));
  s.history.push_back(text_message(2, Role::user, "b"));
  s.history.push_back(call_message(3, {ToolCall{"x", "f", R"( {"b":1, "a":[true,null]} )"},
                                       ToolCall{"y", "g", ""}, ToolCall{"z", "h", "not json"}},
                                   "calling"));
  s.history.push_back(testing::tool_result(4, "y", "ry"));
  s.history.push_back(testing::tool_result(5, "x", ""));
  s.history.push_back(testing::tool_result(6, "z", "rz"));
  s.history.push_back(text_message(7, Role::user, "c"));
  EXPECT_EQ(body_of(s, Provider::anthropic),
            R"({"model":"gpt-4o","max_tokens":100,"messages":[)"
            R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
            R"({"role":"assistant","content":[{"type":"text","text":"calling"},)"
            R"({"type":"tool_use","id":"x","name":"f","input":{"a":[true,null],"b":1}},)"
            R"({"type":"tool_use","id":"y","name":"g","input":{}},)"
            R"({"type":"tool_use","id":"z","name":"h","input":{"raw_arguments":"not json"})"
            R"(,"cache_control":{"type":"ephemeral"}}]},)"
            R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"y","content":"ry"},)"
            R"({"type":"tool_result","tool_use_id":"x"},{"type":"tool_result","tool_use_id":"z","content":"rz"},)"
            R"({"type":"text","text":"c","cache_control":{"type":"ephemeral"}}]}]})");
}

TEST(Render, ImagesAndNames) {
  SessionState s = weather_session();
  s.system_prompt.clear();
  s.memory.clear();
  s.history.clear();
  Message m = text_message(1, Role::user, "look");
  m.content.push_back(Part{PartKind::image_url, "https://x/cat.png", "image/png"});
  m.name = "ada";
  s.history.push_back(m);
  EXPECT_EQ(body_of(s, Provider::openai_chat),
            R"({"model":"gpt-4o","max_completion_tokens":100,"messages":[{"role":"user","name":"ada","content":[)"
            R"({"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x/cat.png"}}]}]})");
  EXPECT_EQ(body_of(s, Provider::openai_responses),
            R"({"model":"gpt-4o","max_output_tokens":100,"store":false,"input":[{"type":"message","role":"user",)"
            R"("content":[{"type":"input_text","text":"look"},)"
            R"({"type":"input_image","image_url":"https://x/cat.png","detail":"auto"}]}]})");
  EXPECT_EQ(body_of(s, Provider::anthropic),
            R"({"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":[)"
            R"({"type":"text","text":"look"},{"type":"image","source":{"type":"url","url":"https://x/cat.png"})"
            R"(,"cache_control":{"type":"ephemeral"}}]}]})");
}

TEST(Render, ExtraParametersAreCanonicalAndSitBeforeTheConversation) {
  const std::string extra =
      R"({ "tools": [{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}],)"
      R"( "temperature": 0.2, "stream": true })";
  const std::string body = body_of(weather_session(), Provider::openai_chat, extra);
  EXPECT_EQ(body.substr(0, body.find(R"(,"messages")")),
            R"({"model":"gpt-4o","max_completion_tokens":100,"stream":true,"temperature":0.2,)"
            R"("tools":[{"function":{"name":"f","parameters":{"properties":{},"type":"object"}},"type":"function"}])");
}

TEST(Render, BadExtraParametersAreRefused) {
  const SessionState s = weather_session();
  auto ctx = materialise(s, kCounter);
  ASSERT_TRUE(ctx.ok());
  EXPECT_FALSE(render(*ctx, Provider::openai_chat, {R"({"model":"other"})"}).ok());
  EXPECT_FALSE(render(*ctx, Provider::openai_responses, {R"({"store":true})"}).ok());
  EXPECT_FALSE(render(*ctx, Provider::anthropic, {R"({"system":"x"})"}).ok());
  EXPECT_FALSE(render(*ctx, Provider::openai_chat, {R"([1,2])"}).ok());
  EXPECT_FALSE(render(*ctx, Provider::openai_chat, {R"({"a":)"}).ok());
  EXPECT_TRUE(render(*ctx, Provider::openai_chat, {"{}"}).ok());
}

TEST(Render, EscapesControlCharactersAndKeepsUtf8) {
  SessionState s = weather_session();
  s.system_prompt = "tab\there \"quoted\" \\ caf\xc3\xa9 \x01";
  const std::string body = body_of(s, Provider::openai_chat);
  EXPECT_NE(body.find(R"("content":"tab\there \"quoted\" \\ caf)"
                      "\xc3\xa9"
                      R"( \u0001")"),
            std::string::npos);
  EXPECT_NO_THROW(boost::json::parse(body));
}

TEST(Render, ProviderNames) {
  for (Provider p : {Provider::openai_chat, Provider::openai_responses, Provider::anthropic, Provider::echo}) {
    EXPECT_EQ(parse_provider(provider_name(p)), p);
  }
  EXPECT_FALSE(parse_provider("gemini").has_value());
}

TEST(Render, RequestHashIsHexSha256) {
  EXPECT_EQ(request_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Render, EchoReplyDescribesTheContext) {
  SessionState s = weather_session();
  s.summary = Summary{"earlier talk", 1};
  auto ctx = materialise(s, kCounter);
  ASSERT_TRUE(ctx.ok());
  const std::string reply = echo_reply(*ctx);
  EXPECT_EQ(reply.rfind("echo: I received 8 messages, ", 0), 0u) << reply;
  EXPECT_NE(reply.find("- system prompt: 6 tokens\n"), std::string::npos) << reply;
  EXPECT_NE(reply.find("- memory: 2 of 2 blocks, "), std::string::npos) << reply;
  EXPECT_NE(reply.find(", through version 1\n"), std::string::npos) << reply;
  EXPECT_NE(reply.find("- history: 5 messages, "), std::string::npos) << reply;
  EXPECT_NE(reply.find("(versions 2..6)\n- cut: nothing\n"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Last user message: \"Thanks!\""), std::string::npos) << reply;
  EXPECT_EQ(reply, echo_reply(*ctx));
}

TEST(Render, OverviewEmbedsTheBody) {
  const SessionState s = weather_session();
  auto ctx = materialise(s, kCounter);
  ASSERT_TRUE(ctx.ok());
  const std::string body = *render(*ctx, Provider::anthropic);
  const auto overview = boost::json::parse(overview_json(*ctx, Provider::anthropic, body)).as_object();
  EXPECT_EQ(overview.at("session_id"), "s1");
  EXPECT_EQ(overview.at("provider"), "anthropic");
  EXPECT_EQ(overview.at("context_version"), kContextVersion.data());
  EXPECT_EQ(overview.at("budget").at("input_budget").to_number<std::uint64_t>(), 900u);
  EXPECT_EQ(overview.at("budget").at("used").to_number<std::uint64_t>(), ctx->total_tokens);
  const auto& sections = overview.at("sections").as_array();
  ASSERT_EQ(sections.size(), 6u);
  std::uint64_t sum = 0;
  for (const auto& sec : sections) sum += sec.at("tokens").to_number<std::uint64_t>();
  EXPECT_EQ(sum, ctx->total_tokens);
  EXPECT_EQ(sections[1].at("blocks").as_array().size(), 2u);
  EXPECT_EQ(sections[3].at("messages").to_number<std::uint64_t>(), 5u);
  EXPECT_EQ(overview.at("cut").at("messages").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(overview.at("request_hash"), request_hash(body).c_str());
  EXPECT_EQ(overview.at("body"), boost::json::parse(body));
}

TEST(Render, PrefixReused) {
  EXPECT_TRUE(prefix_reused(R"({"m":[{"a":1}]})", R"({"m":[{"a":1},{"b":2}]})"));
  EXPECT_FALSE(prefix_reused(R"({"m":[{"a":1}]})", R"({"m":[{"a":2},{"b":2}]})"));
  EXPECT_TRUE(prefix_reused(R"({"m":[{"a":1,"cache_control":{"type":"ephemeral"}}]})",
                            R"({"m":[{"a":1},{"b":2,"cache_control":{"type":"ephemeral"}}]})"));
}

}  // namespace
}  // namespace statefold::context
