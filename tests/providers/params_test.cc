// Each provider's extra parameters: the client's Params in the provider's own shape, and accepted by its renderer.
#include <gtest/gtest.h>

#include <string>

#include "connectors/providers/provider.h"
#include "providers/dispatch.h"

namespace statefold::protocol {
namespace {

using context::PartKind;
using context::Provider;
using providers::testing::upstream_extra;

// --- upstream_extra ---

Params weather_params() {
  Params p;
  p.tools.push_back(Tool{"get_weather", "Weather now", R"({"properties":{"city":{"type":"string"}},"type":"object"})",
                         true});
  p.tools.push_back(Tool{"noop", "", "", std::nullopt});
  p.tool_choice = "function";
  p.tool_choice_name = "get_weather";
  p.parallel_tool_calls = false;
  p.temperature = 1.5;
  p.top_p = 0.9;
  p.user = "u-1";
  return p;
}

std::string extra(const Params& p, Provider provider, bool stream) {
  auto r = upstream_extra(p, provider, stream);
  return r.ok() ? *r : "error: " + r.error().message;
}

// Issue 12, defect 11: parameters statefold does not know go as given to OpenAI-compatible endpoints (vLLM's top_k,
// OpenAI's verbosity); a provider with its own API takes only those it documents (Anthropic: top_k) and refuses the
// rest naming them.
TEST(UpstreamExtra, UnknownParametersPassToOpenAICompatibleEndpointsOnly) {
  Params p;
  p.temperature = 0.5;
  p.passthrough = {{"top_k", "5"}, {"verbosity", R"("low")"}, {"temperature", "2"}};
  EXPECT_EQ(extra(p, Provider::openai_chat, false), R"({"temperature":0.5,"top_k":5,"verbosity":"low"})")
      << "a known parameter the gateway writes is not overridden";
  EXPECT_EQ(extra(p, Provider::openai_responses, false), R"({"temperature":0.5,"top_k":5,"verbosity":"low"})");
  EXPECT_EQ(extra(p, Provider::anthropic, false),
            "error: verbosity: not a parameter statefold knows or the anthropic endpoint takes (parameters statefold "
            "does not know pass through only to openai_chat and openai_responses endpoints)");
  p.passthrough = {{"top_k", "5"}};
  EXPECT_EQ(extra(p, Provider::anthropic, false), R"({"temperature":0.5,"top_k":5})");
  const std::string bedrock = extra(p, Provider::bedrock_converse, false);
  EXPECT_TRUE(bedrock.starts_with("error: top_k: not a parameter")) << bedrock;
}

TEST(UpstreamExtra, ToolsForOpenAIChat) {
  EXPECT_EQ(extra(weather_params(), Provider::openai_chat, true),
            R"({"parallel_tool_calls":false,"stream":true,"stream_options":{"include_usage":true},"temperature":1.5,)"
            R"("tool_choice":{"function":{"name":"get_weather"},"type":"function"},)"
            R"("tools":[{"function":{"description":"Weather now","name":"get_weather",)"
            R"("parameters":{"properties":{"city":{"type":"string"}},"type":"object"},"strict":true},)"
            R"("type":"function"},)"
            R"({"function":{"name":"noop"},"type":"function"}],"top_p":0.9,"user":"u-1"})");
  EXPECT_EQ(extra(weather_params(), Provider::echo, true), extra(weather_params(), Provider::openai_chat, true));
}

TEST(UpstreamExtra, ToolsForResponses) {
  EXPECT_EQ(extra(weather_params(), Provider::openai_responses, true),
            R"({"parallel_tool_calls":false,"stream":true,"temperature":1.5,)"
            R"("tool_choice":{"name":"get_weather","type":"function"},)"
            R"("tools":[{"description":"Weather now","name":"get_weather",)"
            R"("parameters":{"properties":{"city":{"type":"string"}},"type":"object"},"strict":true,)"
            R"("type":"function"},)"
            R"({"name":"noop","parameters":{"properties":{},"type":"object"},"type":"function"}],"top_p":0.9,)"
            R"("user":"u-1"})");
}

TEST(UpstreamExtra, ToolsForAnthropic) {
  EXPECT_EQ(extra(weather_params(), Provider::anthropic, false),
            R"({"metadata":{"user_id":"u-1"},"temperature":1,)"
            R"("tool_choice":{"disable_parallel_tool_use":true,"name":"get_weather","type":"tool"},)"
            R"("tools":[{"description":"Weather now","input_schema":{"properties":{"city":{"type":"string"}},)"
            R"("type":"object"},"name":"get_weather"},)"
            R"({"input_schema":{"properties":{},"type":"object"},"name":"noop"}],"top_p":0.9})");
  Params p = weather_params();
  p.tool_choice = "required";
  p.parallel_tool_calls.reset();
  EXPECT_NE(extra(p, Provider::anthropic, true).find(R"("tool_choice":{"type":"any"})"), std::string::npos);
  p.tool_choice = "";
  p.parallel_tool_calls = false;
  EXPECT_NE(extra(p, Provider::anthropic, true).find(R"("tool_choice":{"disable_parallel_tool_use":true,)"
                                                     R"("type":"auto"})"),
            std::string::npos);
  p.tool_choice = "none";
  EXPECT_NE(extra(p, Provider::anthropic, true).find(R"("tool_choice":{"type":"none"})"), std::string::npos);
  EXPECT_NE(extra(p, Provider::anthropic, true).find(R"("stream":true)"), std::string::npos);
}

TEST(UpstreamExtra, StopFormatAndHints) {
  Params p;
  p.stop = {"END", "STOP"};
  p.seed = 3;
  p.frequency_penalty = 0.5;
  p.reasoning_effort = "low";
  EXPECT_EQ(extra(p, Provider::openai_chat, false),
            R"({"frequency_penalty":0.5,"reasoning_effort":"low","seed":3,"stop":["END","STOP"]})");
  EXPECT_EQ(extra(p, Provider::anthropic, false), R"({"stop_sequences":["END","STOP"]})");
  EXPECT_EQ(extra(p, Provider::openai_responses, false), "error: stop: not supported by the openai_responses upstream");
  p.stop.clear();
  EXPECT_EQ(extra(p, Provider::openai_responses, false), R"({"reasoning":{"effort":"low"}})");
  Params f;
  f.format = OutputFormat{"json_schema", "out", "", R"({"type":"object"})", true};
  EXPECT_EQ(extra(f, Provider::openai_chat, false),
            R"({"response_format":{"json_schema":{"name":"out","schema":{"type":"object"},"strict":true},)"
            R"("type":"json_schema"}})");
  EXPECT_EQ(extra(f, Provider::openai_responses, false),
            R"({"text":{"format":{"name":"out","schema":{"type":"object"},"strict":true,"type":"json_schema"}}})");
  EXPECT_EQ(extra(f, Provider::anthropic, false),
            "error: response_format: JSON output (json_schema) is not supported by the anthropic upstream");
  f.format = OutputFormat{"text", "", "", "", std::nullopt};
  EXPECT_EQ(extra(f, Provider::anthropic, false), "{}");
  EXPECT_EQ(extra(Params{}, Provider::openai_chat, false), "{}");
}

TEST(UpstreamExtra, ToolChoiceWithoutToolsIsDropped) {
  Params p;
  p.tool_choice = "required";
  p.parallel_tool_calls = true;
  EXPECT_EQ(extra(p, Provider::openai_chat, false), "{}");
  EXPECT_EQ(extra(p, Provider::anthropic, false), "{}");
}

// What a chat request gives, rendered by the context module: the renderer accepts every key (none is its own).
TEST(UpstreamExtra, RendererAcceptsItForEveryProvider) {
  auto req = parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":64,
    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto",
    "temperature":0.2,"user":"u"})");
  ASSERT_TRUE(req.ok()) << req.error().message;
  context::SessionState state;
  state.model = "m";
  context::Message m;
  m.version = 1;
  m.content.push_back(context::Part{PartKind::text, "hi", {}});
  state.history.push_back(m);
  context::ByteCounter counter;
  auto ctx = context::materialise(state, counter);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  for (Provider provider : {Provider::openai_chat, Provider::openai_responses, Provider::anthropic, Provider::echo}) {
    for (bool stream : {false, true}) {
      auto e = upstream_extra(req->params, provider, stream);
      ASSERT_TRUE(e.ok()) << e.error().message;
      auto body = providers::testing::render(*ctx, provider, {.extra = *e});
      EXPECT_TRUE(body.ok()) << context::provider_name(provider) << ": " << body.error().message;
    }
  }
}

}  // namespace
}  // namespace statefold::protocol
