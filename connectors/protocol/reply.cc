// Upstream replies: whole bodies, error bodies and SSE streams of the three provider families, into one Reply.
#include <algorithm>

#include "connectors/protocol/internal/json.h"
#include "connectors/protocol/protocol.h"

namespace statefold::protocol {
namespace {

using detail::json::array;
using detail::json::object;
using detail::json::value;
using context::Provider;

const object* object_member(const object& o, std::string_view name) {
  const value* v = detail::member(o, name);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

const array* array_member(const object& o, std::string_view name) {
  const value* v = detail::member(o, name);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

// Tool arguments as parse_reply and the stream parser both write them: Anthropic's input object compact, in the
// provider's key order.
std::string arguments_text(const value& input) { return detail::json::serialize(input); }

std::string chat_finish(std::string_view reason) {
  if (reason == "function_call") return "tool_calls";
  if (reason == "length" || reason == "tool_calls" || reason == "content_filter") return std::string(reason);
  return "stop";
}

std::string anthropic_finish(std::string_view reason) {
  if (reason == "max_tokens" || reason == "model_context_window_exceeded") return "length";
  if (reason == "tool_use") return "tool_calls";
  if (reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

void chat_usage(const object& u, Usage& usage) {
  usage.input_tokens = detail::uint_or(u, "prompt_tokens");
  usage.output_tokens = detail::uint_or(u, "completion_tokens");
  if (const object* d = object_member(u, "prompt_tokens_details")) {
    usage.cached_tokens = detail::uint_or(*d, "cached_tokens");
    usage.cache_write_tokens = detail::uint_or(*d, "cache_write_tokens");
  }
}

void responses_usage(const object& u, Usage& usage) {
  usage.input_tokens = detail::uint_or(u, "input_tokens");
  usage.output_tokens = detail::uint_or(u, "output_tokens");
  if (const object* d = object_member(u, "input_tokens_details")) {
    usage.cached_tokens = detail::uint_or(*d, "cached_tokens");
    usage.cache_write_tokens = detail::uint_or(*d, "cache_write_tokens");
  }
}

// Anthropic counts cache reads and writes apart from input_tokens; ours includes them. Fields absent from `u`
// (a message_delta usage carries only what changed) keep their value.
void anthropic_usage(const object& u, Usage& usage, std::uint64_t& plain_input) {
  if (detail::member(u, "input_tokens") != nullptr) plain_input = detail::uint_or(u, "input_tokens");
  if (detail::member(u, "cache_read_input_tokens") != nullptr) {
    usage.cached_tokens = detail::uint_or(u, "cache_read_input_tokens");
  }
  if (detail::member(u, "cache_creation_input_tokens") != nullptr) {
    usage.cache_write_tokens = detail::uint_or(u, "cache_creation_input_tokens");
  }
  if (detail::member(u, "output_tokens") != nullptr) usage.output_tokens = detail::uint_or(u, "output_tokens");
  usage.input_tokens = plain_input + usage.cached_tokens + usage.cache_write_tokens;
}

std::string error_text(const object& o) {
  const object* e = object_member(o, "error");
  if (e == nullptr) return {};
  const std::string type = detail::string_or(*e, "type");
  const std::string code = detail::string_or(*e, "code");
  std::string message = detail::string_or(*e, "message");
  if (message.empty()) message = "(no message)";
  if (type == "rate_limit_error" || code == "rate_limit_exceeded" || type == "rate_limit_exceeded") {
    return "rate limited: " + message;
  }
  if (type == "overloaded_error") return "overloaded: " + message;
  if (!code.empty() && code != type) return (type.empty() ? code : type + " (" + code + ")") + ": " + message;
  if (!type.empty()) return type + ": " + message;
  return message;
}

base::Result<Reply> chat_reply(const object& o) {
  Reply r;
  r.upstream_id = detail::string_or(o, "id");
  r.model = detail::string_or(o, "model");
  const array* choices = array_member(o, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) {
    return base::make_error("openai_chat reply: no choices");
  }
  const object& choice = (*choices)[0].get_object();
  r.finish_reason = chat_finish(detail::string_or(choice, "finish_reason"));
  if (const object* m = object_member(choice, "message")) {
    r.text = detail::string_or(*m, "content");
    if (r.text.empty()) r.text = detail::string_or(*m, "refusal");
    if (const array* calls = array_member(*m, "tool_calls")) {
      for (const value& c : *calls) {
        if (!c.is_object()) continue;
        ToolCall call;
        call.id = detail::string_or(c.get_object(), "id");
        if (const object* f = object_member(c.get_object(), "function")) {
          call.name = detail::string_or(*f, "name");
          call.arguments = detail::string_or(*f, "arguments");
        }
        r.tool_calls.push_back(std::move(call));
      }
    }
  }
  if (const object* u = object_member(o, "usage")) chat_usage(*u, r.usage);
  return r;
}

base::Result<Reply> responses_reply(const object& o) {
  Reply r;
  r.upstream_id = detail::string_or(o, "id");
  r.model = detail::string_or(o, "model");
  const std::string status = detail::string_or(o, "status");
  if (status == "failed") {
    std::string why = error_text(o);
    return base::make_error("openai_responses reply failed" + (why.empty() ? std::string() : ": " + why));
  }
  if (const array* output = array_member(o, "output")) {
    for (const value& item : *output) {
      if (!item.is_object()) continue;
      const object& it = item.get_object();
      const std::string type = detail::string_or(it, "type");
      if (type == "message") {
        if (const array* content = array_member(it, "content")) {
          for (const value& part : *content) {
            if (!part.is_object()) continue;
            const std::string ptype = detail::string_or(part.get_object(), "type");
            if (ptype == "output_text") r.text += detail::string_or(part.get_object(), "text");
            if (ptype == "refusal") r.text += detail::string_or(part.get_object(), "refusal");
          }
        }
      } else if (type == "function_call") {
        r.tool_calls.push_back(ToolCall{detail::string_or(it, "call_id"), detail::string_or(it, "name"),
                                        detail::string_or(it, "arguments")});
      }
    }
  }
  if (status == "incomplete") {
    const object* d = object_member(o, "incomplete_details");
    const std::string reason = d == nullptr ? std::string() : detail::string_or(*d, "reason");
    r.finish_reason = reason == "content_filter" ? "content_filter" : "length";
  } else {
    r.finish_reason = r.tool_calls.empty() ? "stop" : "tool_calls";
  }
  if (const object* u = object_member(o, "usage")) responses_usage(*u, r.usage);
  return r;
}

base::Result<Reply> anthropic_reply(const object& o) {
  if (detail::string_or(o, "type") == "error") return base::make_error(error_text(o));
  Reply r;
  r.upstream_id = detail::string_or(o, "id");
  r.model = detail::string_or(o, "model");
  r.finish_reason = anthropic_finish(detail::string_or(o, "stop_reason"));
  if (const array* content = array_member(o, "content")) {
    for (const value& block : *content) {
      if (!block.is_object()) continue;
      const object& b = block.get_object();
      const std::string type = detail::string_or(b, "type");
      if (type == "text") {
        r.text += detail::string_or(b, "text");
      } else if (type == "tool_use") {
        const value* input = detail::member(b, "input");
        r.tool_calls.push_back(ToolCall{detail::string_or(b, "id"), detail::string_or(b, "name"),
                                        input == nullptr ? std::string("{}") : arguments_text(*input)});
      }
    }
  }
  std::uint64_t plain = 0;
  if (const object* u = object_member(o, "usage")) anthropic_usage(*u, r.usage, plain);
  return r;
}

}  // namespace

base::Result<Reply> parse_reply(Provider provider, std::string_view body) {
  auto v = detail::parse(body, std::string(context::provider_name(provider)) + " reply");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error(std::string(context::provider_name(provider)) + " reply: not an object");
  const object& o = v->get_object();
  if (detail::member(o, "error") != nullptr && detail::member(o, "choices") == nullptr &&
      detail::member(o, "output") == nullptr && detail::member(o, "content") == nullptr) {
    return base::make_error(error_text(o));
  }
  switch (provider) {
    case Provider::openai_chat: return chat_reply(o);
    case Provider::openai_responses: return responses_reply(o);
    case Provider::anthropic: return anthropic_reply(o);
    case Provider::echo: break;
  }
  return base::make_error("echo replies are built by the gateway, not parsed");
}

std::string error_message(std::string_view body) {
  boost::system::error_code ec;
  value v = detail::json::parse(body, ec);
  if (!ec && v.is_object()) {
    std::string text = error_text(v.get_object());
    if (!text.empty()) return text;
    std::string message = detail::string_or(v.get_object(), "message");
    if (!message.empty()) return message;
  }
  // Not a JSON error: the first non-blank line, at most 200 bytes.
  const auto start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "empty error body";
  std::string_view line = body.substr(start);
  line = line.substr(0, std::min(line.find_first_of("\r\n"), std::size_t{200}));
  return std::string(line);
}

context::Message to_message(const ClientMessage& message) {
  context::Message m;
  m.role = message.role;
  m.content = message.content;
  m.tool_calls = message.tool_calls;
  m.tool_call_id = message.tool_call_id;
  m.name = message.name;
  return m;
}

context::Message to_message(const Reply& reply) {
  context::Message m;
  m.role = context::Role::assistant;
  if (!reply.text.empty()) m.content.push_back(context::Part{context::PartKind::text, reply.text, {}});
  m.tool_calls = reply.tool_calls;
  return m;
}

// --- Streams ---

StreamParser::StreamParser(Provider provider) : _provider(provider) {}

int StreamParser::tool_slot(std::int64_t provider_index) {
  for (std::size_t i = 0; i < _tool_keys.size(); ++i) {
    if (_tool_keys[i] == provider_index) return static_cast<int>(i);
  }
  return -1;
}

base::Result<std::vector<Delta>> StreamParser::feed(std::string_view event_name, std::string_view data) {
  if (_finished) return std::vector<Delta>{};
  switch (_provider) {
    case Provider::openai_chat:
    case Provider::echo: return chat(data);
    case Provider::openai_responses: return responses(event_name, data);
    case Provider::anthropic: return anthropic(event_name, data);
  }
  return base::make_error("unknown provider");
}

base::Result<std::vector<Delta>> StreamParser::chat(std::string_view data) {
  std::vector<Delta> out;
  if (data == "[DONE]") {
    _finished = true;
    if (_reply.finish_reason.empty()) _reply.finish_reason = _reply.tool_calls.empty() ? "stop" : "tool_calls";
    return out;
  }
  auto v = detail::parse(data, "openai_chat stream chunk");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error("openai_chat stream chunk: not an object");
  const object& o = v->get_object();
  if (detail::member(o, "error") != nullptr) return base::make_error(error_text(o));
  if (_reply.upstream_id.empty()) _reply.upstream_id = detail::string_or(o, "id");
  if (_reply.model.empty()) _reply.model = detail::string_or(o, "model");
  if (const object* u = object_member(o, "usage")) chat_usage(*u, _reply.usage);
  const array* choices = array_member(o, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) return out;
  const object& choice = (*choices)[0].get_object();
  if (const object* d = object_member(choice, "delta")) {
    std::string text = detail::string_or(*d, "content");
    if (text.empty()) text = detail::string_or(*d, "refusal");
    if (!text.empty()) {
      _reply.text += text;
      out.push_back(Delta{std::move(text), -1, {}, {}, {}});
    }
    if (const array* calls = array_member(*d, "tool_calls")) {
      for (const value& c : *calls) {
        if (!c.is_object()) continue;
        const object& co = c.get_object();
        const auto key = static_cast<std::int64_t>(detail::uint_or(co, "index"));
        int slot = tool_slot(key);
        Delta delta;
        if (slot < 0) {
          slot = static_cast<int>(_tool_keys.size());
          _tool_keys.push_back(key);
          _reply.tool_calls.emplace_back();
        }
        ToolCall& call = _reply.tool_calls[static_cast<std::size_t>(slot)];
        delta.tool_index = slot;
        delta.tool_id = detail::string_or(co, "id");
        if (call.id.empty()) call.id = delta.tool_id;
        if (const object* f = object_member(co, "function")) {
          delta.tool_name = detail::string_or(*f, "name");
          delta.tool_arguments = detail::string_or(*f, "arguments");
        }
        if (call.name.empty()) call.name = delta.tool_name;
        call.arguments += delta.tool_arguments;
        out.push_back(std::move(delta));
      }
    }
  }
  if (const value* f = detail::member(choice, "finish_reason"); f != nullptr && f->is_string()) {
    _reply.finish_reason = chat_finish(f->get_string());
  }
  return out;
}

base::Result<std::vector<Delta>> StreamParser::responses(std::string_view event_name, std::string_view data) {
  std::vector<Delta> out;
  if (data == "[DONE]") return out;
  auto v = detail::parse(data, "openai_responses stream event");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error("openai_responses stream event: not an object");
  const object& o = v->get_object();
  std::string type = detail::string_or(o, "type");
  if (type.empty()) type = std::string(event_name);
  if (type == "error") {
    std::string message = detail::string_or(o, "message");
    if (message.empty()) message = error_text(o);
    const std::string code = detail::string_or(o, "code");
    return base::make_error(code == "rate_limit_exceeded" ? "rate limited: " + message
                                                          : (code.empty() ? "error" : code) + ": " + message);
  }
  if (type == "response.created" || type == "response.in_progress") {
    if (const object* r = object_member(o, "response")) {
      _reply.upstream_id = detail::string_or(*r, "id");
      _reply.model = detail::string_or(*r, "model");
    }
  } else if (type == "response.output_item.added") {
    const object* item = object_member(o, "item");
    if (item != nullptr && detail::string_or(*item, "type") == "function_call") {
      const auto key = static_cast<std::int64_t>(detail::uint_or(o, "output_index"));
      const int slot = static_cast<int>(_tool_keys.size());
      _tool_keys.push_back(key);
      _item_ids.push_back(detail::string_or(*item, "id"));
      ToolCall call{detail::string_or(*item, "call_id"), detail::string_or(*item, "name"),
                    detail::string_or(*item, "arguments")};
      out.push_back(Delta{{}, slot, call.id, call.name, call.arguments});
      _reply.tool_calls.push_back(std::move(call));
    }
  } else if (type == "response.output_text.delta" || type == "response.refusal.delta") {
    std::string text = detail::string_or(o, "delta");
    if (!text.empty()) {
      _reply.text += text;
      out.push_back(Delta{std::move(text), -1, {}, {}, {}});
    }
  } else if (type == "response.function_call_arguments.delta") {
    int slot = tool_slot(static_cast<std::int64_t>(detail::uint_or(o, "output_index", UINT64_MAX)));
    if (slot < 0) {
      const std::string item_id = detail::string_or(o, "item_id");
      auto it = std::find(_item_ids.begin(), _item_ids.end(), item_id);
      if (it != _item_ids.end()) slot = static_cast<int>(it - _item_ids.begin());
    }
    if (slot < 0) return base::make_error("openai_responses stream: arguments for an unknown function call");
    std::string piece = detail::string_or(o, "delta");
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

base::Result<std::vector<Delta>> StreamParser::anthropic(std::string_view event_name, std::string_view data) {
  std::vector<Delta> out;
  auto v = detail::parse(data, "anthropic stream event");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error("anthropic stream event: not an object");
  const object& o = v->get_object();
  std::string type = detail::string_or(o, "type");
  if (type.empty()) type = std::string(event_name);
  if (type == "error") return base::make_error(error_text(o));
  if (type == "message_start") {
    if (const object* m = object_member(o, "message")) {
      _reply.upstream_id = detail::string_or(*m, "id");
      _reply.model = detail::string_or(*m, "model");
      if (const object* u = object_member(*m, "usage")) anthropic_usage(*u, _reply.usage, _plain_input);
    }
  } else if (type == "content_block_start") {
    const object* b = object_member(o, "content_block");
    if (b == nullptr) return out;
    const std::string btype = detail::string_or(*b, "type");
    if (btype == "tool_use") {
      const int slot = static_cast<int>(_tool_keys.size());
      _tool_keys.push_back(static_cast<std::int64_t>(detail::uint_or(o, "index")));
      _reply.tool_calls.push_back(ToolCall{detail::string_or(*b, "id"), detail::string_or(*b, "name"), {}});
      _json.emplace_back();
      out.push_back(Delta{{}, slot, _reply.tool_calls.back().id, _reply.tool_calls.back().name, {}});
    } else if (btype == "text") {
      std::string text = detail::string_or(*b, "text");
      if (!text.empty()) {
        _reply.text += text;
        out.push_back(Delta{std::move(text), -1, {}, {}, {}});
      }
    }
  } else if (type == "content_block_delta") {
    const object* d = object_member(o, "delta");
    if (d == nullptr) return out;
    const std::string dtype = detail::string_or(*d, "type");
    if (dtype == "text_delta") {
      std::string text = detail::string_or(*d, "text");
      if (!text.empty()) {
        _reply.text += text;
        out.push_back(Delta{std::move(text), -1, {}, {}, {}});
      }
    } else if (dtype == "input_json_delta") {
      const int slot = tool_slot(static_cast<std::int64_t>(detail::uint_or(o, "index")));
      if (slot < 0) return base::make_error("anthropic stream: input_json_delta for a block that is no tool_use");
      _json[static_cast<std::size_t>(slot)] += detail::string_or(*d, "partial_json");
    }
  } else if (type == "content_block_stop") {
    const int slot = tool_slot(static_cast<std::int64_t>(detail::uint_or(o, "index")));
    if (slot >= 0) {
      // As parse_reply writes tool_use.input: the JSON re-serialised compactly ({} when nothing came).
      const std::string& text = _json[static_cast<std::size_t>(slot)];
      std::string& args = _reply.tool_calls[static_cast<std::size_t>(slot)].arguments;
      if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        args = "{}";
      } else {
        boost::system::error_code ec;
        value input = detail::json::parse(text, ec);
        args = ec ? text : arguments_text(input);
      }
      // Sent whole, once re-serialised: the pieces Anthropic streams have other whitespace than the arguments
      // parse_reply() gives, and the client must see the arguments statefold stores.
      out.push_back(Delta{{}, slot, {}, {}, args});
    }
  } else if (type == "message_delta") {
    if (const object* d = object_member(o, "delta")) {
      if (const value* s = detail::member(*d, "stop_reason"); s != nullptr && s->is_string()) {
        _reply.finish_reason = anthropic_finish(s->get_string());
      }
    }
    if (const object* u = object_member(o, "usage")) anthropic_usage(*u, _reply.usage, _plain_input);
  } else if (type == "message_stop") {
    if (_reply.finish_reason.empty()) _reply.finish_reason = _reply.tool_calls.empty() ? "stop" : "tool_calls";
    _finished = true;
  }
  return out;
}

}  // namespace statefold::protocol
