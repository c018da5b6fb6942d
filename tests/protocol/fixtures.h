// Realistic upstream bodies and SSE streams (shapes as the providers document them), shared by the protocol tests
// and the SDK check's sample writer. Each stream carries the same content as the body next to it.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace statefold::protocol::testing {

using Events = std::vector<std::pair<std::string, std::string>>;  // (event name, data)

// --- OpenAI Chat Completions ---

inline const std::string kChatText = R"({"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion",
"created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant",
"content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],
"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,
"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,
"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"})";

inline const std::string kChatTools = R"({"id":"chatcmpl-abc123","object":"chat.completion","created":1699896916,
"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
{"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":"{\n\"location\": \"Boston, MA\"\n}"}},
{"id":"call_def456","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,
"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
"prompt_tokens_details":{"cached_tokens":64}}})";

inline std::string chat_chunk(const std::string& choices_or_usage) {
  return R"({"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini",)"
         R"("system_fingerprint":"fp_44709d6fcb",)" +
         choices_or_usage + "}";
}

inline Events chat_text_stream() {
  return {
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null)")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"content":"Hello! How can I "},"logprobs":null,"finish_reason":null}],"usage":null)")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"content":"assist you today?"},"logprobs":null,"finish_reason":null}],"usage":null)")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null)")},
      {"", chat_chunk(R"("choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}})")},
      {"", "[DONE]"},
  };
}

inline Events chat_tool_stream() {
  return {
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}])")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\n\"location\": "}}]},"logprobs":null,"finish_reason":null}])")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Boston, MA\"\n}"}}]},"logprobs":null,"finish_reason":null}])")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_def456","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}])")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}])")},
      {"", chat_chunk(R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}])")},
      {"", chat_chunk(R"("choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":64}})")},
      {"", "[DONE]"},
  };
}

// --- OpenAI Responses ---

inline const std::string kResponsesText = R"({"id":"resp_67ccd2bed1ec8190b14f964abc054267","object":"response",
"created_at":1741476542,"status":"completed","error":null,"incomplete_details":null,"instructions":null,
"max_output_tokens":null,"model":"gpt-4.1-2025-04-14","output":[{"type":"message",
"id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","status":"completed","role":"assistant","content":[{"type":"output_text",
"text":"In a peaceful grove, a unicorn slept.","annotations":[]}]}],"parallel_tool_calls":true,
"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,
"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled",
"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,
"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123},"user":null,"metadata":{}})";

inline const std::string kResponsesToolsOutput = R"([{"type":"reasoning","id":"rs_1","summary":[]},
{"type":"function_call","id":"fc_12345xyz","call_id":"call_12345xyz","name":"get_weather",
"arguments":"{\"location\":\"Paris, France\"}","status":"completed"},
{"type":"function_call","id":"fc_67890abc","call_id":"call_67890abc","name":"get_weather",
"arguments":"{\"location\":\"Bogotá, Colombia\"}","status":"completed"}])";

inline std::string responses_tools_object(const std::string& status) {
  return R"({"id":"resp_tools1","object":"response","created_at":1741476600,"status":")" + status +
         R"(","model":"gpt-4.1","output":)" + kResponsesToolsOutput +
         R"(,"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"usage":{"input_tokens":291,)"
         R"("input_tokens_details":{"cached_tokens":256},"output_tokens":23,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":314}})";
}

inline const std::string kResponsesTools = responses_tools_object("completed");

inline const std::string kResponsesIncomplete = R"({"id":"resp_inc","object":"response","created_at":1,"status":"incomplete",
"incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-4.1","output":[{"type":"message","id":"msg_1",
"status":"incomplete","role":"assistant","content":[{"type":"output_text","text":"Once upon","annotations":[]}]}],
"usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7}})";

inline Events responses_text_stream() {
  const std::string created =
      R"({"type":"response.created","sequence_number":0,"response":{"id":"resp_67ccd2bed1ec8190b14f964abc054267","object":"response","created_at":1741476542,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}})";
  return {
      {"response.created", created},
      {"response.in_progress", R"({"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_67ccd2bed1ec8190b14f964abc054267","object":"response","created_at":1741476542,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[]}})"},
      {"response.output_item.added", R"({"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","type":"message","status":"in_progress","role":"assistant","content":[]}})"},
      {"response.content_part.added", R"({"type":"response.content_part.added","sequence_number":3,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}})"},
      {"response.output_text.delta", R"({"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","output_index":0,"content_index":0,"delta":"In a peaceful grove, "})"},
      {"response.output_text.delta", R"({"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","output_index":0,"content_index":0,"delta":"a unicorn slept."})"},
      {"response.output_text.done", R"({"type":"response.output_text.done","sequence_number":6,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","output_index":0,"content_index":0,"text":"In a peaceful grove, a unicorn slept."})"},
      {"response.content_part.done", R"({"type":"response.content_part.done","sequence_number":7,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","output_index":0,"content_index":0,"part":{"type":"output_text","text":"In a peaceful grove, a unicorn slept.","annotations":[]}})"},
      {"response.output_item.done", R"({"type":"response.output_item.done","sequence_number":8,"output_index":0,"item":{"id":"msg_67ccd2bf17f0819081ff3bb2cf6508e6","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove, a unicorn slept.","annotations":[]}]}})"},
      {"response.completed", R"({"type":"response.completed","sequence_number":9,"response":)" + kResponsesText + "}"},
  };
}

inline Events responses_tool_stream() {
  return {
      {"response.created", R"({"type":"response.created","sequence_number":0,"response":{"id":"resp_tools1","object":"response","created_at":1741476600,"status":"in_progress","model":"gpt-4.1","output":[]}})"},
      {"response.output_item.added", R"({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}})"},
      {"response.output_item.done", R"({"type":"response.output_item.done","sequence_number":2,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}})"},
      {"response.output_item.added", R"({"type":"response.output_item.added","sequence_number":3,"output_index":1,"item":{"type":"function_call","id":"fc_12345xyz","call_id":"call_12345xyz","name":"get_weather","arguments":"","status":"in_progress"}})"},
      {"response.function_call_arguments.delta", R"({"type":"response.function_call_arguments.delta","sequence_number":4,"item_id":"fc_12345xyz","output_index":1,"delta":"{\"location\":"})"},
      {"response.function_call_arguments.delta", R"({"type":"response.function_call_arguments.delta","sequence_number":5,"item_id":"fc_12345xyz","output_index":1,"delta":"\"Paris, France\"}"})"},
      {"response.function_call_arguments.done", R"({"type":"response.function_call_arguments.done","sequence_number":6,"item_id":"fc_12345xyz","output_index":1,"arguments":"{\"location\":\"Paris, France\"}"})"},
      {"response.output_item.added", R"({"type":"response.output_item.added","sequence_number":7,"output_index":2,"item":{"type":"function_call","id":"fc_67890abc","call_id":"call_67890abc","name":"get_weather","arguments":"","status":"in_progress"}})"},
      {"response.function_call_arguments.delta", R"({"type":"response.function_call_arguments.delta","sequence_number":8,"item_id":"fc_67890abc","output_index":2,"delta":"{\"location\":\"Bogotá, Colombia\"}"})"},
      {"response.completed", R"({"type":"response.completed","sequence_number":9,"response":)" + kResponsesTools + "}"},
  };
}

// --- Anthropic Messages ---

inline const std::string kAnthropicText = R"({"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",
"model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn",
"stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
"output_tokens":503}})";

inline const std::string kAnthropicTools = R"({"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant",
"model":"claude-sonnet-4-5","content":[{"type":"text","text":"I'll check the weather."},{"type":"tool_use",
"id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA","unit":"celsius"}},
{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}],"stop_reason":"tool_use","stop_sequence":null,
"usage":{"input_tokens":472,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":89}})";

inline Events anthropic_text_stream() {
  return {
      {"message_start", R"({"type":"message_start","message":{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})"},
      {"content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
      {"ping", R"({"type":"ping"})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi! My name"}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" is Claude."}})"},
      {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
      {"message_delta", R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":503}})"},
      {"message_stop", R"({"type":"message_stop"})"},
  };
}

inline Events anthropic_tool_stream() {
  return {
      {"message_start", R"({"type":"message_start","message":{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}})"},
      {"content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll check "}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the weather."}})"},
      {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
      {"content_block_start", R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{}}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}})"},
      {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\", \"unit\": \"celsius\"}"}})"},
      {"content_block_stop", R"({"type":"content_block_stop","index":1})"},
      {"content_block_start", R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}})"},
      {"content_block_stop", R"({"type":"content_block_stop","index":2})"},
      {"message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}})"},
      {"message_stop", R"({"type":"message_stop"})"},
  };
}

}  // namespace statefold::protocol::testing
