// protocol: the wire formats the gateway speaks with its clients, as pure functions. Client requests in the OpenAI
// Chat Completions and Responses shapes are parsed into neutral structs (Params, ClientMessage); each provider
// (connectors/providers) writes the Params in its own shape and turns its replies into the neutral Reply and Delta;
// Replies are written back in the client's format (JSON bodies, chat.completion.chunk frames, Responses stream
// events). No I/O, no clocks: ids and timestamps come from the caller. See docs/connectors.md, "Gateway protocols".
//
//   auto request = protocol::parse_chat_request(body);          // errors name the field: "messages[2].role: ..."
//   if (!request) return openai_error_json(request.error().message, "invalid_request_error");
//   const auto& provider = providers::get(context::Provider::anthropic);
//   auto extra = provider.extra(request->params, request->stream);
//   std::string upstream_body = provider.render(ctx, {.extra = *extra}).value();
//   ... non-streamed: auto reply = provider.parse_reply(response.body);
//   ...               return protocol::chat_completion_json(*reply, id, model, now);
//   ... streamed:     auto decoder = provider.stream_decoder(); protocol::ChatChunkWriter out(id, model, now, usage);
//   ...               send(out.start()); for each SSE event: for (auto& d : *decoder->feed(e.event, e.data))
//   ...               send(out.delta(d)); then send(out.finish(decoder->reply()));
//
// Thread-safety: the free functions are pure and safe to call concurrently; a writer is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/context/context.h"
#include "connectors/context/render.h"
#include "engine/base/result.h"

namespace statefold::protocol {

using ToolCall = context::ToolCall;  // id, name, arguments (JSON text as the model produced it)

struct Usage {
  std::uint64_t input_tokens = 0;        // every prompt token, cached or not
  std::uint64_t output_tokens = 0;
  std::uint64_t cached_tokens = 0;       // of input_tokens, read from the provider's prompt cache
  std::uint64_t cache_write_tokens = 0;  // of input_tokens, written to it (Anthropic's cache_creation_input_tokens)
};

// A model's reply, whatever provider produced it.
struct Reply {
  std::string text;
  std::vector<ToolCall> tool_calls;
  Usage usage;
  std::string finish_reason;  // stop | length | tool_calls | content_filter
  std::string model;          // as the provider reported it
  std::string upstream_id;    // the provider's id for the reply (chatcmpl-.., resp_.., msg_..)
};

// --- 1. Client requests ---

struct Tool {
  std::string name;
  std::string description;
  std::string parameters;  // JSON Schema as compact JSON text, keys in the client's order; "" = none given
  std::optional<bool> strict;
};

// A structured-output request: Chat's response_format, Responses' text.format.
struct OutputFormat {
  std::string type;  // "" (none) | text | json_object | json_schema
  std::string name;  // json_schema only
  std::string description;
  std::string schema;  // JSON Schema as compact JSON text, keys in the client's order
  std::optional<bool> strict;
};

// The generation parameters a client may pass, in a neutral form. Each provider writes them in its shape
// (providers::Provider::extra).
struct Params {
  std::vector<Tool> tools;
  std::string tool_choice;       // "" (provider default) | auto | none | required | function
  std::string tool_choice_name;  // tool_choice == "function": the function to call
  std::optional<bool> parallel_tool_calls;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::vector<std::string> stop;
  OutputFormat format;
  // max_tokens / max_completion_tokens / max_output_tokens. Not written by Provider::extra(): the renderer writes
  // the context's output reserve, which the gateway sets from this (capped by the session's policy).
  std::optional<std::uint64_t> max_output_tokens;
  // Hints: passed to the providers that have them, dropped for the others.
  std::optional<std::int64_t> seed;
  std::optional<double> frequency_penalty;
  std::optional<double> presence_penalty;
  std::string reasoning_effort;  // chat reasoning_effort, responses reasoning.effort
  std::string user;              // user / safety_identifier; Anthropic metadata.user_id
  std::map<std::string, std::string> metadata;  // the client's metadata (session_id included); not sent upstream
  // Parameters the gateway does not know (a provider's own, as top_k, or newer ones): name and JSON text, in the
  // client's order. Each provider passes them on or refuses them (Provider::extra).
  std::vector<std::pair<std::string, std::string>> passthrough;
};

// One input message. Responses' function_call items become assistant messages with tool_calls (consecutive ones
// merged into one), function_call_output items tool messages.
struct ClientMessage {
  context::Role role = context::Role::user;
  std::vector<context::Part> content;  // text parts; image_url parts (Part::text = the URL)
  std::vector<ToolCall> tool_calls;    // assistant only
  std::string tool_call_id;            // tool only
  std::string name;

  std::string text() const;  // the text parts joined with "\n"
};

struct ChatRequest {
  std::string model;  // required
  std::vector<ClientMessage> messages;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string session_id;      // metadata.session_id, may be empty
  Params params;
};

struct ResponsesRequest {
  std::string model;  // "" = not given (the gateway picks the session's)
  std::vector<ClientMessage> input;  // a string input is one user message
  std::string instructions;
  bool stream = false;
  bool store = true;
  std::string previous_response_id;
  std::string conversation;  // "conv_.." or {"id":"conv_.."}
  std::string session_id;    // metadata.session_id, may be empty
  // "auto" (statefold's default: it manages the context) or "disabled" (a turn that would leave history out is
  // refused). OpenAI's default is "disabled"; a gateway that keeps the conversation has to be able to cut it.
  std::string truncation = "auto";
  Params params;
};

// Errors name the field ("messages[2].role: must be one of system, developer, user, assistant, tool") and are
// meant for a 400 invalid_request_error. Unknown top-level parameters are refused; see docs for the list.
base::Result<ChatRequest> parse_chat_request(std::string_view body);
base::Result<ResponsesRequest> parse_responses_request(std::string_view body);

// The Conversations API's bodies: POST /v1/conversations {metadata?, items?}, POST /v1/conversations/{id}
// {metadata}, POST /v1/conversations/{id}/items {items}. Items are Responses input items (messages, function calls
// and their outputs). OpenAI's limits: 16 metadata pairs, keys up to 64 characters, values up to 512; 20 items.
struct ConversationRequest {
  std::optional<std::vector<std::pair<std::string, std::string>>> metadata;  // sent (null counts as not sent)
  std::optional<std::vector<ClientMessage>> items;
};
base::Result<ConversationRequest> parse_conversation_request(std::string_view body);

// --- 2. Upstream replies, in a neutral form (each provider parses its own: connectors/providers) ---

// One piece of a streamed reply. tool_index counts the reply's tool calls from 0 (whatever the provider's own
// numbering); tool_id and tool_name come with a call's first piece.
struct Delta {
  std::string text;
  int tool_index = -1;  // -1: a text piece
  std::string tool_id;
  std::string tool_name;
  std::string tool_arguments;  // a piece of the arguments
};

// The history messages the gateway appends (version and tokens left for it to set).
context::Message to_message(const ClientMessage& message);
context::Message to_message(const Reply& reply);  // an assistant message: the text and the tool calls

// --- 3. Client-facing output ---

std::string chat_completion_json(const Reply& reply, std::string_view id, std::string_view model,
                                 std::int64_t created);

// chat.completion.chunk SSE frames ("data: {...}\n\n"), as OpenAI streams them.
class ChatChunkWriter {
 public:
  ChatChunkWriter(std::string id, std::string model, std::int64_t created, bool include_usage);
  std::string start();                    // the role chunk
  std::string delta(const Delta& delta);  // text or a tool call piece
  // Whatever of `reply` was not streamed yet (so start() + finish() alone serve a whole reply), the
  // finish_reason chunk, the usage chunk when asked for, then "data: [DONE]\n\n".
  std::string finish(const Reply& reply);
  // An error after the stream started, as OpenAI sends it: one `data: {"error":{...}}` frame (the SDK raises
  // APIError on it); no [DONE] follows, the caller closes the stream.
  std::string error(std::string_view message, std::string_view type, std::string_view code = {});

 private:
  std::string chunk(std::string_view delta_json, std::string_view finish_reason);
  std::string _id, _model;
  std::int64_t _created;
  bool _include_usage;
  std::string _text;                       // streamed so far
  std::vector<std::string> _tool_args;     // streamed so far, per tool index
};

// What a Responses API object carries besides the Reply. Output item ids are derived from the response id:
// "msg_<suffix>" and "fc_<suffix>_<n>", where suffix is the id without its "resp_" prefix.
struct ResponseMeta {
  std::string id;  // "resp_..."
  std::string model;
  std::int64_t created_at = 0;
  std::string status;  // "" = from the reply (completed, or incomplete on length/content_filter) | failed | ...
  std::string error_code;  // status failed: server_error (the default, and for unknown codes) | rate_limit_exceeded
  std::string error_message;
  std::string previous_response_id;
  std::string conversation;  // conversation id, "" = none
  std::string instructions;
  bool store = true;
  std::string truncation = "auto";  // echoed: "auto", or "disabled" when the request said so
  Params params;  // echoed: tools, tool_choice, temperature, top_p, max_output_tokens, text.format, metadata
};

std::string response_json(const Reply& reply, const ResponseMeta& meta);

// Responses stream events ("event: X\ndata: {...}\n\n") with sequence_number from 0.
class ResponseEventWriter {
 public:
  explicit ResponseEventWriter(ResponseMeta meta);
  std::string start();  // response.created, response.in_progress
  // output_item.added (+ content_part.added) when an item first appears, then output_text.delta or
  // function_call_arguments.delta.
  std::string delta(const Delta& delta);
  // What was not streamed yet, then per item output_text.done + content_part.done / function_call_arguments.done,
  // output_item.done; then response.completed (response.incomplete, response.failed) with the whole object.
  std::string finish(const Reply& reply);
  // The upstream failed mid-stream: as finish(partial), ending with response.failed carrying the error. `code`
  // is one the SDK knows: server_error (also used for any other) or rate_limit_exceeded.
  std::string fail(const Reply& partial, std::string_view code, std::string_view message);
  std::uint64_t next_sequence_number() const { return _seq; }

 private:
  struct Item {
    int tool_index = -1;  // -1: the message
    std::string text;     // streamed text or arguments
    std::string call_id, name;
  };
  std::string event(std::string_view type, std::string body_members);
  Item& item(int tool_index, std::string* out, const Delta* first);
  ResponseMeta _meta;
  std::uint64_t _seq = 0;
  std::vector<Item> _items;  // output order
};

// An error as the OpenAI API shapes it: {"error":{"message","type","param","code"}} (code null when empty).
std::string openai_error_json(std::string_view message, std::string_view type, std::string_view code = {},
                              std::string_view param = {});

}  // namespace statefold::protocol
