// Converse replies: a whole response (output.message.content, stopReason, usage), or the ConverseStream events the
// upstream client decodes from their event-stream frames (messageStart, contentBlockStart/Delta/Stop, messageStop,
// then metadata with the usage). An exception in the stream (throttlingException, modelStreamErrorException...) is
// an error. Usage counts cache reads and writes apart from inputTokens; ours includes them.
#include "connectors/providers/bedrock_converse/bedrock_converse.h"
#include "connectors/providers/internal/json.h"

namespace statefold::providers::bedrock_converse {
namespace {

using protocol::Delta;
using protocol::Reply;
using protocol::ToolCall;
using protocol::Usage;
using namespace internal;  // NOLINT: the module's own helpers

// Tool arguments as parse_reply and the stream decoder both write them: the input object compact, in the model's
// key order.
std::string arguments_text(const value& input) { return json::serialize(input); }

std::string converse_finish(std::string_view reason) {
  if (reason == "max_tokens" || reason == "model_context_window_exceeded") return "length";
  if (reason == "tool_use") return "tool_calls";
  if (reason == "guardrail_intervened" || reason == "content_filtered") return "content_filter";
  return "stop";  // end_turn, stop_sequence
}

void converse_usage(const object& u, Usage& usage) {
  usage.cached_tokens = uint_or(u, "cacheReadInputTokens");
  usage.cache_write_tokens = uint_or(u, "cacheWriteInputTokens");
  usage.input_tokens = uint_or(u, "inputTokens") + usage.cached_tokens + usage.cache_write_tokens;
  usage.output_tokens = uint_or(u, "outputTokens");
}

// "<type>: <message>" of an exception's payload ({"message":"..."}), "rate limited: ..." for throttling.
std::string exception_text(std::string_view type, std::string_view payload) {
  std::string message;
  boost::system::error_code ec;
  value v = json::parse(payload, ec);
  if (!ec && v.is_object()) message = string_or(v.get_object(), "message");
  if (message.empty()) message = payload.empty() ? "(no message)" : std::string(payload);
  if (type == "throttlingException") return "rate limited: " + message;
  return std::string(type) + ": " + message;
}

base::Result<Reply> converse_reply(const object& o) {
  const object* output = object_member(o, "output");
  const object* message = output == nullptr ? nullptr : object_member(*output, "message");
  if (message == nullptr) {
    const std::string text = string_or(o, "message");
    return base::make_error(text.empty() ? "bedrock_converse reply: no output.message" : text);
  }
  Reply r;
  r.finish_reason = converse_finish(string_or(o, "stopReason"));
  if (const array* content = array_member(*message, "content")) {
    for (const value& block : *content) {
      if (!block.is_object()) continue;
      const object& b = block.get_object();
      if (const value* text = member(b, "text"); text != nullptr && text->is_string()) {
        r.text += text->get_string();
      } else if (const object* use = object_member(b, "toolUse")) {
        const value* input = member(*use, "input");
        r.tool_calls.push_back(ToolCall{string_or(*use, "toolUseId"), string_or(*use, "name"),
                                        input == nullptr ? std::string("{}") : arguments_text(*input)});
      }
    }
  }
  if (const object* u = object_member(o, "usage")) converse_usage(*u, r.usage);
  return r;
}

// Tool input comes in string pieces; sent whole, once re-serialised as parse_reply() writes it, when its block
// stops. Finished on the metadata event, which follows messageStop and carries the usage.
class ConverseDecoder final : public StreamDecoder {
 protected:
  base::Result<std::vector<Delta>> decode(std::string_view event_name, std::string_view data) override {
    std::vector<Delta> out;
    if (event_name == "error" || event_name.ends_with("Exception")) {
      return base::make_error(exception_text(event_name, data));
    }
    auto v = parse(data, "bedrock_converse stream event");
    if (!v) return v.error();
    if (!v->is_object()) return base::make_error("bedrock_converse stream event: not an object");
    const object& o = v->get_object();
    if (event_name == "contentBlockStart") {
      const object* start = object_member(o, "start");
      const object* use = start == nullptr ? nullptr : object_member(*start, "toolUse");
      if (use == nullptr) return out;
      const int slot = static_cast<int>(_tool_keys.size());
      _tool_keys.push_back(static_cast<std::int64_t>(uint_or(o, "contentBlockIndex")));
      _reply.tool_calls.push_back(ToolCall{string_or(*use, "toolUseId"), string_or(*use, "name"), {}});
      _json.emplace_back();
      out.push_back(Delta{{}, slot, _reply.tool_calls.back().id, _reply.tool_calls.back().name, {}});
    } else if (event_name == "contentBlockDelta") {
      const object* delta = object_member(o, "delta");
      if (delta == nullptr) return out;
      if (const value* text = member(*delta, "text"); text != nullptr && text->is_string()) {
        std::string piece(text->get_string());
        if (!piece.empty()) {
          _reply.text += piece;
          out.push_back(Delta{std::move(piece), -1, {}, {}, {}});
        }
      } else if (const object* use = object_member(*delta, "toolUse")) {
        const int slot = tool_slot(static_cast<std::int64_t>(uint_or(o, "contentBlockIndex")));
        if (slot < 0) return base::make_error("bedrock_converse stream: toolUse input for a block that is no toolUse");
        _json[static_cast<std::size_t>(slot)] += string_or(*use, "input");
      }
    } else if (event_name == "contentBlockStop") {
      const int slot = tool_slot(static_cast<std::int64_t>(uint_or(o, "contentBlockIndex")));
      if (slot >= 0) {
        const std::string& text = _json[static_cast<std::size_t>(slot)];
        std::string& args = _reply.tool_calls[static_cast<std::size_t>(slot)].arguments;
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
          args = "{}";
        } else {
          boost::system::error_code ec;
          value input = json::parse(text, ec);
          args = ec ? text : arguments_text(input);
        }
        out.push_back(Delta{{}, slot, {}, {}, args});
      }
    } else if (event_name == "messageStop") {
      _reply.finish_reason = converse_finish(string_or(o, "stopReason"));
      _stopped = true;
    } else if (event_name == "metadata") {
      if (const object* u = object_member(o, "usage")) converse_usage(*u, _reply.usage);
      if (!_stopped) return base::make_error("bedrock_converse stream: metadata before messageStop");
      _finished = true;
    }
    // messageStart (the role) and events this build does not know (reasoning content...) change nothing.
    return out;
  }

 private:
  std::vector<std::string> _json;  // toolUse input pieces of each tool call
  bool _stopped = false;           // messageStop seen
};

}  // namespace

base::Result<Reply> BedrockConverse::parse_reply(std::string_view body) const {
  auto v = parse(body, "bedrock_converse reply");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error("bedrock_converse reply: not an object");
  return converse_reply(v->get_object());
}

std::unique_ptr<StreamDecoder> BedrockConverse::stream_decoder() const { return std::make_unique<ConverseDecoder>(); }

}  // namespace statefold::providers::bedrock_converse
