// Chat Completions replies: a whole chat.completion, or its chat.completion.chunk stream ending in [DONE].
#include "connectors/providers/internal/json.h"
#include "connectors/providers/openai_chat/openai_chat.h"

namespace statefold::providers::openai_chat {
namespace {

using protocol::Delta;
using protocol::Reply;
using protocol::ToolCall;
using protocol::Usage;
using namespace internal;  // NOLINT: the module's own helpers

std::string chat_finish(std::string_view reason) {
  if (reason == "function_call") return "tool_calls";
  if (reason == "length" || reason == "tool_calls" || reason == "content_filter") return std::string(reason);
  return "stop";
}

void chat_usage(const object& u, Usage& usage) {
  usage.input_tokens = uint_or(u, "prompt_tokens");
  usage.output_tokens = uint_or(u, "completion_tokens");
  if (const object* d = object_member(u, "prompt_tokens_details")) {
    usage.cached_tokens = uint_or(*d, "cached_tokens");
    usage.cache_write_tokens = uint_or(*d, "cache_write_tokens");
  }
}

base::Result<Reply> chat_reply(const object& o) {
  Reply r;
  r.upstream_id = string_or(o, "id");
  r.model = string_or(o, "model");
  const array* choices = array_member(o, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) {
    return base::make_error("openai_chat reply: no choices");
  }
  const object& choice = (*choices)[0].get_object();
  r.finish_reason = chat_finish(string_or(choice, "finish_reason"));
  if (const object* m = object_member(choice, "message")) {
    r.text = string_or(*m, "content");
    if (r.text.empty()) r.text = string_or(*m, "refusal");
    if (const array* calls = array_member(*m, "tool_calls")) {
      for (const value& c : *calls) {
        if (!c.is_object()) continue;
        ToolCall call;
        call.id = string_or(c.get_object(), "id");
        if (const object* f = object_member(c.get_object(), "function")) {
          call.name = string_or(*f, "name");
          call.arguments = string_or(*f, "arguments");
        }
        r.tool_calls.push_back(std::move(call));
      }
    }
  }
  if (const object* u = object_member(o, "usage")) chat_usage(*u, r.usage);
  return r;
}

class ChatDecoder final : public StreamDecoder {
 protected:
  base::Result<std::vector<Delta>> decode(std::string_view /*event_name*/, std::string_view data) override {
    std::vector<Delta> out;
    if (data == "[DONE]") {
      _finished = true;
      if (_reply.finish_reason.empty()) _reply.finish_reason = _reply.tool_calls.empty() ? "stop" : "tool_calls";
      return out;
    }
    auto v = parse(data, "openai_chat stream chunk");
    if (!v) return v.error();
    if (!v->is_object()) return base::make_error("openai_chat stream chunk: not an object");
    const object& o = v->get_object();
    if (member(o, "error") != nullptr) return base::make_error(error_text(o));
    if (_reply.upstream_id.empty()) _reply.upstream_id = string_or(o, "id");
    if (_reply.model.empty()) _reply.model = string_or(o, "model");
    if (const object* u = object_member(o, "usage")) chat_usage(*u, _reply.usage);
    const array* choices = array_member(o, "choices");
    if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) return out;
    const object& choice = (*choices)[0].get_object();
    if (const object* d = object_member(choice, "delta")) {
      std::string text = string_or(*d, "content");
      if (text.empty()) text = string_or(*d, "refusal");
      if (!text.empty()) {
        _reply.text += text;
        out.push_back(Delta{std::move(text), -1, {}, {}, {}});
      }
      if (const array* calls = array_member(*d, "tool_calls")) {
        for (const value& c : *calls) {
          if (!c.is_object()) continue;
          const object& co = c.get_object();
          const auto key = static_cast<std::int64_t>(uint_or(co, "index"));
          int slot = tool_slot(key);
          Delta delta;
          if (slot < 0) {
            slot = static_cast<int>(_tool_keys.size());
            _tool_keys.push_back(key);
            _reply.tool_calls.emplace_back();
          }
          ToolCall& call = _reply.tool_calls[static_cast<std::size_t>(slot)];
          delta.tool_index = slot;
          delta.tool_id = string_or(co, "id");
          if (call.id.empty()) call.id = delta.tool_id;
          if (const object* f = object_member(co, "function")) {
            delta.tool_name = string_or(*f, "name");
            delta.tool_arguments = string_or(*f, "arguments");
          }
          if (call.name.empty()) call.name = delta.tool_name;
          call.arguments += delta.tool_arguments;
          out.push_back(std::move(delta));
        }
      }
    }
    if (const value* f = member(choice, "finish_reason"); f != nullptr && f->is_string()) {
      _reply.finish_reason = chat_finish(f->get_string());
    }
    return out;
  }
};

}  // namespace

base::Result<Reply> OpenAIChat::parse_reply(std::string_view body) const {
  auto v = reply_object(body, name());
  if (!v) return v.error();
  return chat_reply(v->get_object());
}

std::unique_ptr<StreamDecoder> OpenAIChat::stream_decoder() const { return std::make_unique<ChatDecoder>(); }

}  // namespace statefold::providers::openai_chat
