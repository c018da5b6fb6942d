// Client-facing output: golden bodies, chunk and event order, sequence numbers, and the stream-to-writer path.
#include <gtest/gtest.h>

#include <map>

#include <boost/json.hpp>

#include "connectors/protocol/protocol.h"
#include "protocol/fixtures.h"
#include "providers/dispatch.h"

namespace statefold::protocol {
namespace {

using context::Provider;
using providers::testing::StreamParser;  // the end-to-end test feeds real provider streams
namespace json = boost::json;

Reply text_reply() {
  Reply r;
  r.text = "Hello \"you\"";
  r.finish_reason = "stop";
  r.usage = Usage{12, 3, 8, 0};
  return r;
}

Reply tool_reply() {
  Reply r;
  r.tool_calls.push_back(ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"});
  r.tool_calls.push_back(ToolCall{"call_2", "get_time", "{}"});
  r.finish_reason = "tool_calls";
  r.usage = Usage{20, 5, 0, 0};
  return r;
}

// "data: ..." payloads of an SSE text, in order.
std::vector<std::string> data_lines(const std::string& sse) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    const std::size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "frame not terminated";
    if (end == std::string::npos) break;
    const std::string frame = sse.substr(pos, end - pos);
    const std::size_t d = frame.find("data: ");
    EXPECT_NE(d, std::string::npos);
    out.push_back(frame.substr(d + 6));
    pos = end + 2;
  }
  return out;
}

struct Event {
  std::string name;
  json::object data;
};

std::vector<Event> events(const std::string& sse) {
  std::vector<Event> out;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    const std::size_t end = sse.find("\n\n", pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "frame not terminated";
      break;
    }
    const std::string frame = sse.substr(pos, end - pos);
    EXPECT_TRUE(frame.starts_with("event: ")) << frame;
    const std::size_t nl = frame.find('\n');
    Event e;
    e.name = frame.substr(7, nl - 7);
    EXPECT_TRUE(frame.substr(nl + 1).starts_with("data: "));
    e.data = json::parse(frame.substr(nl + 7)).as_object();
    EXPECT_EQ(json::value_to<std::string>(e.data.at("type")), e.name);
    out.push_back(std::move(e));
    pos = end + 2;
  }
  return out;
}

void expect_sequence(const std::vector<Event>& evs) {
  for (std::size_t i = 0; i < evs.size(); ++i) {
    EXPECT_EQ(evs[i].data.at("sequence_number").as_int64(), static_cast<std::int64_t>(i)) << evs[i].name;
  }
}

std::vector<std::string> names(const std::vector<Event>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs) out.push_back(e.name);
  return out;
}

// --- Chat Completions ---

TEST(ChatCompletionJson, GoldenText) {
  EXPECT_EQ(chat_completion_json(text_reply(), "chatcmpl-1", "gpt-4o", 1700000000),
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o",)"
            R"("choices":[{"index":0,)"
            R"("message":{"role":"assistant","content":"Hello \"you\"","refusal":null},"logprobs":null,)"
            R"("finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,)"
            R"("prompt_tokens_details":{"cached_tokens":8}}})");
}

TEST(ChatCompletionJson, GoldenTools) {
  EXPECT_EQ(chat_completion_json(tool_reply(), "chatcmpl-2", "m", 1),
            R"({"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,)"
            R"("message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[)"
            R"({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},)"
            R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},)"
            R"("logprobs":null,"finish_reason":"tool_calls"}],)"
            R"("usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,)"
            R"("prompt_tokens_details":{"cached_tokens":0}}})");
}

TEST(ChatCompletionJson, UnknownFinishReasonBecomesValid) {
  Reply r = text_reply();
  r.finish_reason = "";
  EXPECT_NE(chat_completion_json(r, "c", "m", 0).find(R"("finish_reason":"stop")"), std::string::npos);
  r = tool_reply();
  r.finish_reason = "weird";
  EXPECT_NE(chat_completion_json(r, "c", "m", 0).find(R"("finish_reason":"tool_calls")"), std::string::npos);
}

TEST(ChatChunkWriter, GoldenTextStream) {
  ChatChunkWriter w("chatcmpl-9", "m", 5, true);
  std::string out = w.start();
  out += w.delta(Delta{"Hel", -1, {}, {}, {}});
  out += w.delta(Delta{"", -1, {}, {}, {}});  // nothing
  out += w.delta(Delta{"lo", -1, {}, {}, {}});
  Reply r;
  r.text = "Hello";
  r.finish_reason = "stop";
  r.usage = Usage{4, 2, 0, 0};
  out += w.finish(r);
  const std::string head = R"(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":5,"model":"m",)";
  EXPECT_EQ(out, head + R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
                        R"("finish_reason":null}],"usage":null})" "\n\n" +
                     head + R"("choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,)"
                            R"("finish_reason":null}],"usage":null})" "\n\n" +
                     head + R"("choices":[{"index":0,"delta":{"content":"lo"},"logprobs":null,)"
                            R"("finish_reason":null}],"usage":null})" "\n\n" +
                     head + R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],)"
                            R"("usage":null})" "\n\n" +
                     head + R"("choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6,)"
                            R"("prompt_tokens_details":{"cached_tokens":0}}})" "\n\n"
                     "data: [DONE]\n\n");
}

TEST(ChatChunkWriter, ToolCallPieces) {
  ChatChunkWriter w("c", "m", 1, false);
  std::string out = w.start();
  out += w.delta(Delta{{}, 0, "call_1", "get_weather", ""});
  out += w.delta(Delta{{}, 0, {}, {}, R"({"city":)"});
  out += w.delta(Delta{{}, 0, {}, {}, ""});  // nothing
  out += w.delta(Delta{{}, 0, {}, {}, R"("Paris"})"});
  out += w.finish(tool_reply());  // call 1 was never streamed: sent whole
  auto lines = data_lines(out);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines.back(), "[DONE]");
  auto delta = [&](std::size_t i) { return json::parse(lines[i]).at("choices").at(0).at("delta"); };
  EXPECT_EQ(json::serialize(delta(1)),
            R"({"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather",)"
            R"("arguments":""}}]})");
  EXPECT_EQ(json::serialize(delta(2)), R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})");
  EXPECT_EQ(json::serialize(delta(4)),
            R"({"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time",)"
            R"("arguments":"{}"}}]})");
  EXPECT_EQ(json::serialize(json::parse(lines[5]).at("choices").at(0).at("finish_reason")), R"("tool_calls")");
  EXPECT_EQ(lines[5].find("usage"), std::string::npos);
}

TEST(ChatChunkWriter, WholeReplyWithoutDeltas) {
  ChatChunkWriter w("c", "m", 1, false);
  std::string out = w.start();
  out += w.finish(text_reply());
  auto lines = data_lines(out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(json::serialize(json::parse(lines[1]).at("choices").at(0).at("delta")), R"({"content":"Hello \"you\""})");
}

// --- Responses ---

ResponseMeta meta() {
  ResponseMeta m;
  m.id = "resp_abc";
  m.model = "gpt-4.1";
  m.created_at = 1741476542;
  m.previous_response_id = "resp_prev";
  m.conversation = "conv_1";
  m.instructions = "be brief";
  return m;
}

TEST(ResponseJson, GoldenText) {
  EXPECT_EQ(response_json(text_reply(), meta()),
            R"({"id":"resp_abc","object":"response","created_at":1741476542,"status":"completed","error":null,)"
            R"("incomplete_details":null,"instructions":"be brief","max_output_tokens":null,"model":"gpt-4.1",)"
            R"("output":[)"
            R"({"id":"msg_abc","type":"message","status":"completed","role":"assistant",)"
            R"("content":[{"type":"output_text",)"
            R"("text":"Hello \"you\"","annotations":[],"logprobs":[]}]}],"parallel_tool_calls":true,)"
            R"("previous_response_id":"resp_prev","conversation":{"id":"conv_1"},"store":true,"temperature":null,)"
            R"("text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"auto",)"
            R"("usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":8,"cache_write_tokens":0},)"
            R"("output_tokens":3,)"
            R"("output_tokens_details":{"reasoning_tokens":0},"total_tokens":15},"metadata":{}})");
}

TEST(ResponseJson, ToolsParamsAndStatuses) {
  ResponseMeta m = meta();
  m.params.tools.push_back(Tool{"get_weather", "", R"({"type":"object"})", std::nullopt});
  m.params.tool_choice = "function";
  m.params.tool_choice_name = "get_weather";
  m.params.temperature = 0.5;
  m.params.max_output_tokens = 100;
  m.params.metadata["session_id"] = "s1";
  const auto o = json::parse(response_json(tool_reply(), m)).as_object();
  const auto& output = o.at("output").as_array();
  ASSERT_EQ(output.size(), 2u);  // no empty message next to the calls
  EXPECT_EQ(json::serialize(output[0]),
            R"({"id":"fc_abc_0","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather",)"
            R"("arguments":"{\"city\":\"Paris\"}"})");
  EXPECT_EQ(json::serialize(o.at("tools")),
            R"([{"type":"function","name":"get_weather","description":null,"parameters":{"type":"object"},)"
            R"("strict":null}])");
  EXPECT_EQ(json::serialize(o.at("tool_choice")), R"({"type":"function","name":"get_weather"})");
  EXPECT_EQ(json::serialize(o.at("temperature")), "5E-1");
  EXPECT_EQ(o.at("max_output_tokens").as_int64(), 100);
  EXPECT_EQ(json::serialize(o.at("metadata")), R"({"session_id":"s1"})");

  Reply cut = text_reply();
  cut.finish_reason = "length";
  const auto inc = json::parse(response_json(cut, meta())).as_object();
  EXPECT_EQ(inc.at("status").as_string(), "incomplete");
  EXPECT_EQ(json::serialize(inc.at("incomplete_details")), R"({"reason":"max_output_tokens"})");
  EXPECT_EQ(inc.at("output").at(0).at("status").as_string(), "incomplete");

  ResponseMeta f = meta();
  f.status = "failed";
  f.error_code = "rate_limit_exceeded";
  f.error_message = "rate limited: slow down";
  const auto failed = json::parse(response_json(Reply{}, f)).as_object();
  EXPECT_EQ(json::serialize(failed.at("error")), R"({"code":"rate_limit_exceeded",)"
                                                 R"("message":"rate limited: slow down"})");
}

TEST(ResponseEventWriter, TextStreamOrderAndSequence) {
  ResponseEventWriter w(meta());
  std::string out = w.start();
  out += w.delta(Delta{"Hello ", -1, {}, {}, {}});
  out += w.delta(Delta{"\"you\"", -1, {}, {}, {}});
  out += w.finish(text_reply());
  auto evs = events(out);
  EXPECT_EQ(names(evs), (std::vector<std::string>{
                            "response.created", "response.in_progress", "response.output_item.added",
                            "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                            "response.output_text.done", "response.content_part.done", "response.output_item.done",
                            "response.completed"}));
  expect_sequence(evs);
  EXPECT_EQ(w.next_sequence_number(), evs.size());
  EXPECT_EQ(evs[0].data.at("response").at("status").as_string(), "in_progress");
  EXPECT_EQ(evs[4].data.at("item_id").as_string(), "msg_abc");
  EXPECT_EQ(evs[6].data.at("text").as_string(), "Hello \"you\"");
  // The completed event carries the same object response_json() gives.
  EXPECT_EQ(json::serialize(evs.back().data.at("response")),
            json::serialize(json::parse(response_json(text_reply(), meta()))));
}

TEST(ResponseEventWriter, ToolsInStreamOrder) {
  ResponseEventWriter w(meta());
  std::string out = w.start();
  out += w.delta(Delta{{}, 0, "call_1", "get_weather", ""});
  out += w.delta(Delta{{}, 0, {}, {}, R"({"city":"Paris"})"});
  out += w.delta(Delta{"Let me check", -1, {}, {}, {}});  // text after a call: a later output item
  Reply r = tool_reply();
  r.text = "Let me check";
  out += w.finish(r);
  auto evs = events(out);
  EXPECT_EQ(names(evs), (std::vector<std::string>{
                            "response.created", "response.in_progress",
                            "response.output_item.added", "response.function_call_arguments.delta",
                            "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                            // call 2, sent by finish()
                            "response.output_item.added", "response.function_call_arguments.delta",
                            "response.function_call_arguments.done", "response.output_item.done",
                            "response.output_text.done", "response.content_part.done", "response.output_item.done",
                            "response.function_call_arguments.done", "response.output_item.done",
                            "response.completed"}));
  EXPECT_EQ(evs[2].data.at("output_index").as_int64(), 0);
  EXPECT_EQ(evs[4].data.at("output_index").as_int64(), 1);
  EXPECT_EQ(evs[7].data.at("output_index").as_int64(), 2);
  EXPECT_EQ(evs[3].data.at("item_id").as_string(), "fc_abc_0");
  const auto& output = evs.back().data.at("response").at("output").as_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[0].at("type").as_string(), "function_call");
  EXPECT_EQ(output[1].at("type").as_string(), "message");
  EXPECT_EQ(output[2].at("call_id").as_string(), "call_2");
}

TEST(ResponseEventWriter, WholeReplyAndIncomplete) {
  ResponseEventWriter w(meta());
  Reply r = text_reply();
  r.finish_reason = "length";
  std::string out = w.start();  // before finish(): sequence numbers follow the calls
  out += w.finish(r);
  auto evs = events(out);
  ASSERT_EQ(evs.size(), 9u);
  EXPECT_EQ(evs[4].name, "response.output_text.delta");
  EXPECT_EQ(evs.back().name, "response.incomplete");
  EXPECT_EQ(evs.back().data.at("response").at("status").as_string(), "incomplete");

  ResponseEventWriter empty(meta());
  out = empty.start();
  out += empty.finish(Reply{});
  auto e = events(out);
  expect_sequence(e);
  EXPECT_EQ(names(e), (std::vector<std::string>{"response.created", "response.in_progress",
                                                "response.output_item.added",
                                                "response.content_part.added", "response.output_text.done",
                                                "response.content_part.done", "response.output_item.done",
                                                "response.completed"}));
}

// Upstream stream -> StreamParser -> writers, for every provider: what the client assembles is the reply.
TEST(EndToEnd, EveryProviderStreamThroughBothWriters) {
  struct Case {
    Provider provider;
    testing::Events events;
  };
  const std::vector<Case> cases = {
      {Provider::openai_chat, testing::chat_text_stream()},    {Provider::openai_chat, testing::chat_tool_stream()},
      {Provider::openai_responses, testing::responses_text_stream()},
      {Provider::openai_responses, testing::responses_tool_stream()},
      {Provider::anthropic, testing::anthropic_text_stream()}, {Provider::anthropic, testing::anthropic_tool_stream()},
  };
  for (const Case& c : cases) {
    StreamParser parser(c.provider);
    ChatChunkWriter chat("c", "m", 1, true);
    ResponseEventWriter resp(meta());
    std::string chat_out = chat.start();
    std::string resp_out = resp.start();
    for (const auto& [name, data] : c.events) {
      auto deltas = parser.feed(name, data);
      ASSERT_TRUE(deltas.ok()) << deltas.error().message;
      for (const Delta& d : *deltas) {
        chat_out += chat.delta(d);
        resp_out += resp.delta(d);
      }
    }
    ASSERT_TRUE(parser.finished());
    chat_out += chat.finish(parser.reply());
    resp_out += resp.finish(parser.reply());
    // Chat: concatenated content and arguments.
    std::string text;
    std::vector<std::string> args;
    for (const auto& line : data_lines(chat_out)) {
      if (line == "[DONE]") continue;
      const auto chunk = json::parse(line).as_object();
      if (chunk.at("choices").as_array().empty()) continue;
      const auto& delta = chunk.at("choices").at(0).at("delta").as_object();
      const auto* content = delta.if_contains("content");
      if (content != nullptr && content->is_string()) text += content->as_string();
      if (const auto* calls = delta.if_contains("tool_calls")) {
        for (const auto& call : calls->as_array()) {
          const auto k = static_cast<std::size_t>(call.at("index").as_int64());
          if (k >= args.size()) args.resize(k + 1);
          args[k] += call.at("function").at("arguments").as_string();
        }
      }
    }
    const Reply& reply = parser.reply();
    EXPECT_EQ(text, reply.text);
    ASSERT_EQ(args.size(), reply.tool_calls.size());
    for (std::size_t k = 0; k < args.size(); ++k) EXPECT_EQ(args[k], reply.tool_calls[k].arguments);
    // Responses: sequence numbers, and the deltas put together by output_index are the final object's items.
    auto evs = events(resp_out);
    std::map<std::int64_t, std::string> streamed;
    for (std::size_t i = 0; i < evs.size(); ++i) {
      EXPECT_EQ(evs[i].data.at("sequence_number").as_int64(), static_cast<std::int64_t>(i));
      if (evs[i].name == "response.output_text.delta" || evs[i].name == "response.function_call_arguments.delta") {
        streamed[evs[i].data.at("output_index").as_int64()] += evs[i].data.at("delta").as_string();
      }
    }
    const auto& output = evs.back().data.at("response").at("output").as_array();
    for (std::size_t i = 0; i < output.size(); ++i) {
      const auto& item = output[i].as_object();
      const std::string want = item.at("type") == "message"
                                   ? std::string(item.at("content").at(0).at("text").as_string())
                                   : std::string(item.at("arguments").as_string());
      EXPECT_EQ(streamed[static_cast<std::int64_t>(i)], want) << i;
    }
    EXPECT_EQ(evs.back().name, "response.completed");
  }
}

TEST(ResponseEventWriter, FailMidStream) {
  ResponseEventWriter w(meta());
  std::string out = w.start();
  out += w.delta(Delta{"Half", -1, {}, {}, {}});
  Reply partial;
  partial.text = "Half";
  out += w.fail(partial, "weird_code", "upstream: overloaded");
  auto evs = events(out);
  EXPECT_EQ(evs.back().name, "response.failed");
  EXPECT_EQ(json::serialize(evs.back().data.at("response").at("error")),
            R"({"code":"server_error","message":"upstream: overloaded"})");
  EXPECT_EQ(evs.back().data.at("response").at("output").at(0).at("content").at(0).at("text").as_string(), "Half");
}

TEST(ChatChunkWriter, ErrorFrame) {
  ChatChunkWriter w("c", "m", 1, false);
  EXPECT_EQ(w.error("upstream: overloaded", "server_error"),
            "data: {\"error\":{\"message\":\"upstream: overloaded\",\"type\":\"server_error\","
            "\"param\":null,\"code\":null}}\n\n");
}

TEST(OpenAIErrorJson, Shape) {
  EXPECT_EQ(openai_error_json("messages[2].role: bad", "invalid_request_error"),
            R"({"error":{"message":"messages[2].role: bad","type":"invalid_request_error","param":null,"code":null}})");
  EXPECT_EQ(openai_error_json("slow down", "rate_limit_error", "rate_limit_exceeded", "model"),
            R"({"error":{"message":"slow down","type":"rate_limit_error","param":"model",)"
            R"("code":"rate_limit_exceeded"}})");
}

}  // namespace
}  // namespace statefold::protocol
