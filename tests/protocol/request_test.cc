// Client request parsing (each provider's extra parameters: tests/providers/params_test.cc).
#include <gtest/gtest.h>

#include <string>

#include "connectors/protocol/protocol.h"

namespace statefold::protocol {
namespace {

using context::PartKind;
using context::Provider;
using context::Role;

std::string error_of(std::string_view body) {
  auto r = parse_chat_request(body);
  return r.ok() ? std::string("(ok)") : r.error().message;
}

std::string responses_error_of(std::string_view body) {
  auto r = parse_responses_request(body);
  return r.ok() ? std::string("(ok)") : r.error().message;
}

TEST(ChatRequest, ParsesMessagesToolsAndParameters) {
  auto r = parse_chat_request(R"({
    "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
    "metadata": {"session_id": "alice", "team": "x"},
    "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "look"},
                                   {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
      {"role": "assistant", "content": null,
       "tool_calls": [{"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
      {"role": "user", "name": "bob", "content": "thanks"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
               "strict": true}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": false, "temperature": 0.5, "top_p": 1, "stop": "END", "max_tokens": 300, "seed": 7,
    "user": "u-1", "n": 1, "logprobs": false, "store": true, "frequency_penalty": null,
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}}
  })");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->session_id, "alice");
  ASSERT_EQ(r->messages.size(), 5u);
  EXPECT_EQ(r->messages[0].role, Role::system);
  EXPECT_EQ(r->messages[0].text(), "be brief");
  ASSERT_EQ(r->messages[1].content.size(), 2u);
  EXPECT_EQ(r->messages[1].content[1].kind, PartKind::image_url);
  EXPECT_EQ(r->messages[1].content[1].text, "https://x/y.png");
  EXPECT_TRUE(r->messages[2].content.empty());
  ASSERT_EQ(r->messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(r->messages[2].tool_calls[0].id, "call_1");
  EXPECT_EQ(r->messages[2].tool_calls[0].name, "get_weather");
  EXPECT_EQ(r->messages[2].tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r->messages[3].role, Role::tool);
  EXPECT_EQ(r->messages[3].tool_call_id, "call_1");
  EXPECT_EQ(r->messages[4].name, "bob");
  const Params& p = r->params;
  ASSERT_EQ(p.tools.size(), 1u);
  EXPECT_EQ(p.tools[0].name, "get_weather");
  EXPECT_EQ(p.tools[0].description, "Weather now");
  // Compact, in the client's key order (a schema's property order is the order a model writes them in).
  EXPECT_EQ(p.tools[0].parameters, R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})");
  EXPECT_EQ(p.tools[0].strict, true);
  EXPECT_EQ(p.tool_choice, "function");
  EXPECT_EQ(p.tool_choice_name, "get_weather");
  EXPECT_EQ(p.parallel_tool_calls, false);
  EXPECT_EQ(p.temperature, 0.5);
  EXPECT_EQ(p.top_p, 1.0);
  EXPECT_EQ(p.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(p.max_output_tokens, 300u);
  EXPECT_EQ(p.seed, 7);
  EXPECT_EQ(p.user, "u-1");
  EXPECT_FALSE(p.frequency_penalty.has_value());
  EXPECT_EQ(p.format.type, "json_schema");
  EXPECT_EQ(p.format.name, "w");
  EXPECT_EQ(p.format.schema, R"({"type":"object"})");
  EXPECT_EQ(p.metadata.at("team"), "x");
}

TEST(ChatRequest, MaxCompletionTokensAndDefaults) {
  auto r = parse_chat_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.max_output_tokens, 9u);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
  EXPECT_TRUE(r->session_id.empty());
  EXPECT_TRUE(r->params.tools.empty());
}

TEST(ChatRequest, ErrorsNameTheField) {
  EXPECT_EQ(error_of("not json"), "request body is not valid JSON: syntax error");
  EXPECT_EQ(error_of("[1]"), "request body must be a JSON object");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"x"}]})"), "model: required");
  EXPECT_EQ(error_of(R"({"model":"m"})"), "messages: required");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[]})"), "messages: must not be empty");
  EXPECT_EQ(error_of(R"({"model":"m","messages":{}})"), "messages: must be an array");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},)"
                     R"({"role":"robot","content":"c"}]})"),
            "messages[2].role: must be one of system, developer, user, assistant, tool");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"content":"a"}]})"), "messages[0].role: required");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user"}]})"), "messages[0].content: required");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"assistant"}]})"),
            "messages[0].content: required unless tool_calls is given");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"tool","content":"x"}]})"),
            "messages[0].tool_call_id: required");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio",)"
                     R"("input_audio":{}}]}]})"),
            "messages[0].content[0].type: content part type \"input_audio\" is not supported here");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function",)"
                     R"("function":{"arguments":"{}"}}]}]})"),
            "messages[0].tool_calls[0].function.name: required");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})"),
            "temperature: must be between 0 and 2");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})"),
            "temperature: must be a number");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})"), "n: only 1 is supported");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom",)"
                     R"("custom":{}}]})"),
            "tools[0].type: only function tools are supported");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",)"
                     R"("function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}})"),
            "tool_choice: no tool named \"b\"");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})"),
            "tool_choice: must be one of auto, none, required, or a function");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})"),
            "max_tokens: must be at least 1");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
                     R"("response_format":{"type":"json_schema"}})"),
            "response_format.json_schema: required when type is json_schema");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"session_id":5}})"),
            "metadata.session_id: must be a string");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})"),
            "stop: at most 4 sequences");
}

TEST(ResponsesRequest, StringInput) {
  auto r = parse_responses_request(R"({"model":"gpt-4.1","input":"hello","instructions":"be nice",
                                       "previous_response_id":"resp_1","stream":true,"store":false,
                                       "max_output_tokens":50,"reasoning":{"effort":"low"}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->model, "gpt-4.1");
  ASSERT_EQ(r->input.size(), 1u);
  EXPECT_EQ(r->input[0].role, Role::user);
  EXPECT_EQ(r->input[0].text(), "hello");
  EXPECT_EQ(r->instructions, "be nice");
  EXPECT_EQ(r->previous_response_id, "resp_1");
  EXPECT_TRUE(r->stream);
  EXPECT_FALSE(r->store);
  EXPECT_EQ(r->params.max_output_tokens, 50u);
  EXPECT_EQ(r->params.reasoning_effort, "low");
}

TEST(ResponsesRequest, ItemsBecomeMessages) {
  auto r = parse_responses_request(R"({"model":"m","conversation":{"id":"conv_9"},"metadata":{"session_id":"s"},
    "input":[
      {"role":"user","content":"weather in Paris and Rome?"},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking.","annotations":[]}]},
      {"type":"function_call","call_id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}","id":"fc_1"},
      {"type":"function_call","call_id":"call_b","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
      {"type":"reasoning","id":"rs_1","summary":[]},
      {"type":"function_call_output","call_id":"call_a","output":"18C"},
      {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"21C"}]},
      {"type":"message","role":"user",
       "content":[{"type":"input_text","text":"and"},{"type":"input_image","image_url":"https://i/x.png"}]}
    ],
    "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"},"strict":false}],
    "tool_choice":"required","text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"}}}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->conversation, "conv_9");
  EXPECT_EQ(r->session_id, "s");
  ASSERT_EQ(r->input.size(), 5u);
  EXPECT_EQ(r->input[1].role, Role::assistant);
  EXPECT_EQ(r->input[1].text(), "Checking.");
  ASSERT_EQ(r->input[1].tool_calls.size(), 2u);
  EXPECT_EQ(r->input[1].tool_calls[1].id, "call_b");
  EXPECT_EQ(r->input[1].tool_calls[1].arguments, R"({"city":"Rome"})");
  EXPECT_EQ(r->input[2].role, Role::tool);
  EXPECT_EQ(r->input[2].tool_call_id, "call_a");
  EXPECT_EQ(r->input[3].text(), "21C");
  ASSERT_EQ(r->input[4].content.size(), 2u);
  EXPECT_EQ(r->input[4].content[1].kind, PartKind::image_url);
  ASSERT_EQ(r->params.tools.size(), 1u);
  EXPECT_EQ(r->params.tools[0].strict, false);
  EXPECT_EQ(r->params.tool_choice, "required");
  EXPECT_EQ(r->params.format.type, "json_schema");
  EXPECT_EQ(r->params.format.name, "out");
}

TEST(ResponsesRequest, ErrorsNameTheField) {
  EXPECT_EQ(responses_error_of(R"({"model":"m"})"), "input: required");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})"),
            "input[0].call_id: required");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":[{"role":"user","content":"a"},{"type":"item_reference",)"
                               R"("id":"x"}]})"),
            "input[1].type: item_reference is not supported; use previous_response_id or conversation");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":[{"role":"tool","content":"a"}]})"),
            "input[0].role: must be one of user, assistant, system, developer");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":"x","tools":[{"type":"web_search"}]})"),
            "tools[0].type: only function tools are supported");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":"x","previous_response_id":"resp_1","conversation":"conv_1"})"),
            "previous_response_id: cannot be used together with conversation");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":"x","background":true})"),
            "background: background responses are not supported");
  EXPECT_EQ(responses_error_of(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file",)"
                               R"("file_id":"f"}]}]})"),
            "input[0].content[0].type: content part type \"input_file\" is not supported here");
}

// Issue 12, defect 11: parameters the gateway does not know are kept, as given, for the provider to pass on or
// refuse (providers_test has the rule per provider).
TEST(ParseRequest, UnknownParametersAreKeptAsGiven) {
  auto chat = parse_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_k":5,"logit_bias":{"1":2},"verbosity":"low"})");
  ASSERT_TRUE(chat) << chat.error().message;
  EXPECT_EQ(chat->params.passthrough,
            (std::vector<std::pair<std::string, std::string>>{{"top_k", "5"}, {"logit_bias", R"({"1":2})"},
                                                              {"verbosity", R"("low")"}}));
  auto responses = parse_responses_request(R"({"model":"m","input":"x","prompt":{"id":"p"}})");
  ASSERT_TRUE(responses) << responses.error().message;
  ASSERT_EQ(responses->params.passthrough.size(), 1u);
  EXPECT_EQ(responses->params.passthrough[0].first, "prompt");
}

}  // namespace
}  // namespace statefold::protocol
