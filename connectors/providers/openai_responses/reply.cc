// Responses replies: a whole response object, or its typed event stream, whose final response.completed object is
// authoritative.
#include <algorithm>

#include "connectors/providers/internal/json.h"
#include "connectors/providers/openai_responses/openai_responses.h"

namespace statefold::providers::openai_responses {
namespace {

using protocol::Delta;
using protocol::Reply;
using protocol::ToolCall;
using protocol::Usage;
using namespace internal;  // NOLINT: the module's own helpers

void responses_usage(const object& u, Usage& usage) {
  usage.input_tokens = uint_or(u, "input_tokens");
  usage.output_tokens = uint_or(u, "output_tokens");
  if (const object* d = object_member(u, "input_tokens_details")) {
    usage.cached_tokens = uint_or(*d, "cached_tokens");
    usage.cache_write_tokens = uint_or(*d, "cache_write_tokens");
  }
}

base::Result<Reply> responses_reply(const object& o) {
  Reply r;
  r.upstream_id = string_or(o, "id");
  r.model = string_or(o, "model");
  const std::string status = string_or(o, "status");
  if (status == "failed") {
    std::string why = error_text(o);
    return base::make_error("openai_responses reply failed" + (why.empty() ? std::string() : ": " + why));
  }
  if (const array* output = array_member(o, "output")) {
    for (const value& item : *output) {
      if (!item.is_object()) continue;
      const object& it = item.get_object();
      const std::string type = string_or(it, "type");
      if (type == "message") {
        if (const array* content = array_member(it, "content")) {
          for (const value& part : *content) {
            if (!part.is_object()) continue;
            const std::string ptype = string_or(part.get_object(), "type");
            if (ptype == "output_text") r.text += string_or(part.get_object(), "text");
            if (ptype == "refusal") r.text += string_or(part.get_object(), "refusal");
          }
        }
      } else if (type == "function_call") {
        r.tool_calls.push_back(ToolCall{string_or(it, "call_id"), string_or(it, "name"), string_or(it, "arguments")});
      }
    }
  }
  if (status == "incomplete") {
    const object* d = object_member(o, "incomplete_details");
    const std::string reason = d == nullptr ? std::string() : string_or(*d, "reason");
    r.finish_reason = reason == "content_filter" ? "content_filter" : "length";
  } else {
    r.finish_reason = r.tool_calls.empty() ? "stop" : "tool_calls";
  }
  if (const object* u = object_member(o, "usage")) responses_usage(*u, r.usage);
  return r;
}

class ResponsesDecoder final : public StreamDecoder {
 protected:
  base::Result<std::vector<Delta>> decode(std::string_view event_name, std::string_view data) override {
    std::vector<Delta> out;
    if (data == "[DONE]") return out;
    auto v = parse(data, "openai_responses stream event");
    if (!v) return v.error();
    if (!v->is_object()) return base::make_error("openai_responses stream event: not an object");
    const object& o = v->get_object();
    std::string type = string_or(o, "type");
    if (type.empty()) type = std::string(event_name);
    if (type == "error") {
      std::string message = string_or(o, "message");
      if (message.empty()) message = error_text(o);
      const std::string code = string_or(o, "code");
      return base::make_error(code == "rate_limit_exceeded" ? "rate limited: " + message
                                                            : (code.empty() ? "error" : code) + ": " + message);
    }
    if (type == "response.created" || type == "response.in_progress") {
      if (const object* r = object_member(o, "response")) {
        _reply.upstream_id = string_or(*r, "id");
        _reply.model = string_or(*r, "model");
      }
    } else if (type == "response.output_item.added") {
      const object* item = object_member(o, "item");
      if (item != nullptr && string_or(*item, "type") == "function_call") {
        const auto key = static_cast<std::int64_t>(uint_or(o, "output_index"));
        const int slot = static_cast<int>(_tool_keys.size());
        _tool_keys.push_back(key);
        _item_ids.push_back(string_or(*item, "id"));
        ToolCall call{string_or(*item, "call_id"), string_or(*item, "name"), string_or(*item, "arguments")};
        out.push_back(Delta{{}, slot, call.id, call.name, call.arguments});
        _reply.tool_calls.push_back(std::move(call));
      }
    } else if (type == "response.output_text.delta" || type == "response.refusal.delta") {
      std::string text = string_or(o, "delta");
      if (!text.empty()) {
        _reply.text += text;
        out.push_back(Delta{std::move(text), -1, {}, {}, {}});
      }
    } else if (type == "response.function_call_arguments.delta") {
      int slot = tool_slot(static_cast<std::int64_t>(uint_or(o, "output_index", UINT64_MAX)));
      if (slot < 0) {
        const std::string item_id = string_or(o, "item_id");
        auto it = std::find(_item_ids.begin(), _item_ids.end(), item_id);
        if (it != _item_ids.end()) slot = static_cast<int>(it - _item_ids.begin());
      }
      if (slot < 0) return base::make_error("openai_responses stream: arguments for an unknown function call");
      std::string piece = string_or(o, "delta");
      _reply.tool_calls[static_cast<std::size_t>(slot)].arguments += piece;
      out.push_back(Delta{{}, slot, {}, {}, std::move(piece)});
    } else if (type == "response.completed" || type == "response.incomplete" || type == "response.failed") {
      const object* r = object_member(o, "response");
      if (r == nullptr) return base::make_error("openai_responses stream: " + type + " without a response");
      auto whole = responses_reply(*r);
      if (!whole) return whole.error();
      // The final object is authoritative; it holds all that the deltas did.
      _reply = std::move(*whole);
      _finished = true;
    }
    return out;
  }

 private:
  std::vector<std::string> _item_ids;  // item id of each tool call
};

}  // namespace

base::Result<Reply> OpenAIResponses::parse_reply(std::string_view body) const {
  auto v = reply_object(body, name());
  if (!v) return v.error();
  return responses_reply(v->get_object());
}

std::unique_ptr<StreamDecoder> OpenAIResponses::stream_decoder() const { return std::make_unique<ResponsesDecoder>(); }

}  // namespace statefold::providers::openai_responses
