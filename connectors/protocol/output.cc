// Client-facing output: Chat Completions bodies and chunks, Responses objects and stream events, OpenAI errors.
// Written by hand in a fixed key order (no document model on the streaming path).
#include <algorithm>

#include "connectors/protocol/internal/json.h"
#include "connectors/protocol/protocol.h"

namespace statefold::protocol {
namespace {

using detail::dbl;
using detail::inum;
using detail::key;
using detail::num;
using detail::str;

std::string finish_reason(const Reply& reply) {
  const std::string& f = reply.finish_reason;
  if (f == "stop" || f == "length" || f == "tool_calls" || f == "content_filter") return f;
  return reply.tool_calls.empty() ? "stop" : "tool_calls";
}

void chat_usage(std::string& out, const Usage& u) {
  out += R"({"prompt_tokens":)";
  num(out, u.input_tokens);
  out += R"(,"completion_tokens":)";
  num(out, u.output_tokens);
  out += R"(,"total_tokens":)";
  num(out, u.input_tokens + u.output_tokens);
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  num(out, u.cached_tokens);
  out += "}}";
}

void chat_tool_call(std::string& out, std::size_t index, const ToolCall* call, std::string_view arguments,
                    bool with_index) {
  out += '{';
  if (with_index) {
    key(out, "index");
    num(out, index);
    out += ',';
  }
  if (call != nullptr) {
    key(out, "id");
    str(out, call->id);
    out += R"(,"type":"function",)";
  }
  out += R"("function":{)";
  if (call != nullptr) {
    key(out, "name");
    str(out, call->name);
    out += ',';
  }
  key(out, "arguments");
  str(out, arguments);
  out += "}}";
}

// The part of `full` not yet sent, when what was sent is a prefix of it (else nothing: a stream cannot unsay).
std::string_view rest(std::string_view full, std::string_view sent) {
  return full.starts_with(sent) ? full.substr(sent.size()) : std::string_view();
}

// --- Responses ---

std::string id_suffix(std::string_view id) {
  return std::string(id.starts_with("resp_") ? id.substr(5) : id);
}
std::string message_id(const ResponseMeta& meta) { return "msg_" + id_suffix(meta.id); }
std::string call_item_id(const ResponseMeta& meta, int k) {
  return "fc_" + id_suffix(meta.id) + "_" + std::to_string(k);
}

std::string status_of(const Reply& reply, const ResponseMeta& meta) {
  if (!meta.status.empty()) return meta.status;
  const std::string f = finish_reason(reply);
  return f == "length" || f == "content_filter" ? "incomplete" : "completed";
}

void opt_string(std::string& out, std::string_view name, std::string_view text) {
  out += ',';
  key(out, name);
  if (text.empty()) {
    out += "null";
  } else {
    str(out, text);
  }
}

void opt_number(std::string& out, std::string_view name, const std::optional<double>& d) {
  out += ',';
  key(out, name);
  if (d) {
    dbl(out, *d);
  } else {
    out += "null";
  }
}

void raw_or_null(std::string& out, std::string_view json_text) {
  out += json_text.empty() ? std::string_view("null") : json_text;
}

void usage_json(std::string& out, const Usage& u) {
  out += R"({"input_tokens":)";
  num(out, u.input_tokens);
  out += R"(,"input_tokens_details":{"cached_tokens":)";
  num(out, u.cached_tokens);
  out += R"(,"cache_write_tokens":)";
  num(out, u.cache_write_tokens);
  out += R"(},"output_tokens":)";
  num(out, u.output_tokens);
  out += R"(,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":)";
  num(out, u.input_tokens + u.output_tokens);
  out += '}';
}

void message_item(std::string& out, const ResponseMeta& meta, std::string_view status, const std::string* text) {
  out += R"({"id":)";
  str(out, message_id(meta));
  out += R"(,"type":"message","status":)";
  str(out, status);
  out += R"(,"role":"assistant","content":[)";
  if (text != nullptr) {
    out += R"({"type":"output_text","text":)";
    str(out, *text);
    out += R"(,"annotations":[],"logprobs":[]})";
  }
  out += "]}";
}

void call_item(std::string& out, const ResponseMeta& meta, int k, std::string_view status, const ToolCall& call) {
  out += R"({"id":)";
  str(out, call_item_id(meta, k));
  out += R"(,"type":"function_call","status":)";
  str(out, status);
  out += R"(,"call_id":)";
  str(out, call.id);
  out += R"(,"name":)";
  str(out, call.name);
  out += R"(,"arguments":)";
  str(out, call.arguments);
  out += '}';
}

// The output order: the message first (when there is text, or nothing else), then the calls; or, for a stream, the
// order in which items appeared (-1 = the message).
std::vector<int> default_order(const Reply& reply) {
  std::vector<int> order;
  if (!reply.text.empty() || reply.tool_calls.empty()) order.push_back(-1);
  for (std::size_t k = 0; k < reply.tool_calls.size(); ++k) order.push_back(static_cast<int>(k));
  return order;
}

void format_json(std::string& out, const OutputFormat& f) {
  out += R"({"type":)";
  str(out, f.type.empty() ? std::string_view("text") : std::string_view(f.type));
  if (f.type == "json_schema") {
    out += ',';
    key(out, "name");
    str(out, f.name);
    if (!f.description.empty()) {
      out += ',';
      key(out, "description");
      str(out, f.description);
    }
    out += ',';
    key(out, "schema");
    raw_or_null(out, f.schema);
    out += ',';
    key(out, "strict");
    out += f.strict.value_or(false) ? "true" : "false";
  }
  out += '}';
}

// The whole response object. `reply` null: the in-progress object of response.created (no output, no usage).
void response_object(std::string& out, const Reply* reply, const ResponseMeta& meta, std::string_view status,
                     const std::vector<int>& order) {
  const Params& p = meta.params;
  out += R"({"id":)";
  str(out, meta.id);
  out += R"(,"object":"response","created_at":)";
  inum(out, meta.created_at);
  out += R"(,"status":)";
  str(out, status);
  out += R"(,"error":)";
  if (status == "failed") {
    out += R"({"code":)";
    // The SDK validates the code against its list: only codes every version knows.
    const bool known = meta.error_code == "rate_limit_exceeded" || meta.error_code == "invalid_prompt";
    str(out, known ? std::string_view(meta.error_code) : std::string_view("server_error"));
    out += R"(,"message":)";
    str(out, meta.error_message);
    out += '}';
  } else {
    out += "null";
  }
  out += R"(,"incomplete_details":)";
  if (status == "incomplete" && reply != nullptr) {
    out += finish_reason(*reply) == "content_filter" ? R"({"reason":"content_filter"})"
                                                     : R"({"reason":"max_output_tokens"})";
  } else {
    out += "null";
  }
  opt_string(out, "instructions", meta.instructions);
  out += R"(,"max_output_tokens":)";
  if (p.max_output_tokens) {
    num(out, *p.max_output_tokens);
  } else {
    out += "null";
  }
  out += R"(,"model":)";
  str(out, meta.model);
  out += R"(,"output":[)";
  if (reply != nullptr) {
    const std::string item_status = status == "completed" ? "completed" : "incomplete";
    bool first = true;
    for (int k : order) {
      if (!first) out += ',';
      first = false;
      if (k < 0) {
        message_item(out, meta, item_status, &reply->text);
      } else {
        call_item(out, meta, k, item_status, reply->tool_calls[static_cast<std::size_t>(k)]);
      }
    }
  }
  out += R"(],"parallel_tool_calls":)";
  out += p.parallel_tool_calls.value_or(true) ? "true" : "false";
  opt_string(out, "previous_response_id", meta.previous_response_id);
  out += R"(,"conversation":)";
  if (meta.conversation.empty()) {
    out += "null";
  } else {
    out += R"({"id":)";
    str(out, meta.conversation);
    out += '}';
  }
  out += R"(,"store":)";
  out += meta.store ? "true" : "false";
  opt_number(out, "temperature", p.temperature);
  out += R"(,"text":{"format":)";
  format_json(out, p.format);
  out += R"(},"tool_choice":)";
  if (p.tool_choice == "function") {
    out += R"({"type":"function","name":)";
    str(out, p.tool_choice_name);
    out += '}';
  } else {
    str(out, p.tool_choice.empty() ? std::string_view("auto") : std::string_view(p.tool_choice));
  }
  out += R"(,"tools":[)";
  for (std::size_t i = 0; i < p.tools.size(); ++i) {
    const Tool& t = p.tools[i];
    if (i > 0) out += ',';
    out += R"({"type":"function","name":)";
    str(out, t.name);
    opt_string(out, "description", t.description);
    out += R"(,"parameters":)";
    raw_or_null(out, t.parameters);
    out += R"(,"strict":)";
    out += t.strict ? (*t.strict ? "true" : "false") : "null";
    out += '}';
  }
  out += ']';
  opt_number(out, "top_p", p.top_p);
  out += R"(,"truncation":)";
  str(out, meta.truncation);
  out += R"(,"usage":)";
  if (reply != nullptr) {
    usage_json(out, reply->usage);
  } else {
    out += "null";
  }
  out += R"(,"metadata":{)";
  bool first = true;
  for (const auto& [k, v] : p.metadata) {
    if (!first) out += ',';
    first = false;
    str(out, k);
    out += ':';
    str(out, v);
  }
  out += "}}";
}

}  // namespace

// --- Chat Completions ---

std::string chat_completion_json(const Reply& reply, std::string_view id, std::string_view model,
                                 std::int64_t created) {
  std::string out;
  out.reserve(256 + reply.text.size());
  out += R"({"id":)";
  str(out, id);
  out += R"(,"object":"chat.completion","created":)";
  inum(out, created);
  out += R"(,"model":)";
  str(out, model);
  out += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
  if (reply.text.empty() && !reply.tool_calls.empty()) {
    out += "null";
  } else {
    str(out, reply.text);
  }
  out += R"(,"refusal":null)";
  if (!reply.tool_calls.empty()) {
    out += R"(,"tool_calls":[)";
    for (std::size_t k = 0; k < reply.tool_calls.size(); ++k) {
      if (k > 0) out += ',';
      chat_tool_call(out, k, &reply.tool_calls[k], reply.tool_calls[k].arguments, false);
    }
    out += ']';
  }
  out += R"(},"logprobs":null,"finish_reason":)";
  str(out, finish_reason(reply));
  out += R"(}],"usage":)";
  chat_usage(out, reply.usage);
  out += '}';
  return out;
}

ChatChunkWriter::ChatChunkWriter(std::string id, std::string model, std::int64_t created, bool include_usage)
    : _id(std::move(id)), _model(std::move(model)), _created(created), _include_usage(include_usage) {}

std::string ChatChunkWriter::chunk(std::string_view delta_json, std::string_view finish) {
  std::string out = R"(data: {"id":)";
  str(out, _id);
  out += R"(,"object":"chat.completion.chunk","created":)";
  inum(out, _created);
  out += R"(,"model":)";
  str(out, _model);
  out += R"(,"choices":[{"index":0,"delta":)";
  out += delta_json;
  out += R"(,"logprobs":null,"finish_reason":)";
  if (finish.empty()) {
    out += "null";
  } else {
    str(out, finish);
  }
  out += "}]";
  if (_include_usage) out += R"(,"usage":null)";
  out += "}\n\n";
  return out;
}

std::string ChatChunkWriter::start() { return chunk(R"({"role":"assistant","content":""})", {}); }

std::string ChatChunkWriter::delta(const Delta& d) {
  if (d.tool_index < 0) {
    if (d.text.empty()) return {};
    _text += d.text;
    std::string delta = R"({"content":)";
    str(delta, d.text);
    delta += '}';
    return chunk(delta, {});
  }
  const auto k = static_cast<std::size_t>(d.tool_index);
  const bool first = k >= _tool_args.size();
  if (first) _tool_args.resize(k + 1);
  if (!first && d.tool_arguments.empty()) return {};
  _tool_args[k] += d.tool_arguments;
  ToolCall head{d.tool_id, d.tool_name, {}};
  std::string delta = R"({"tool_calls":[)";
  chat_tool_call(delta, k, first ? &head : nullptr, d.tool_arguments, true);
  delta += "]}";
  return chunk(delta, {});
}

std::string ChatChunkWriter::finish(const Reply& reply) {
  std::string out;
  if (auto more = rest(reply.text, _text); !more.empty()) out += delta(Delta{std::string(more), -1, {}, {}, {}});
  for (std::size_t k = 0; k < reply.tool_calls.size(); ++k) {
    const ToolCall& call = reply.tool_calls[k];
    const int index = static_cast<int>(k);
    if (k >= _tool_args.size()) {
      out += delta(Delta{{}, index, call.id, call.name, call.arguments});
    } else if (auto more = rest(call.arguments, _tool_args[k]); !more.empty()) {
      out += delta(Delta{{}, index, {}, {}, std::string(more)});
    }
  }
  out += chunk("{}", finish_reason(reply));
  if (_include_usage) {
    out += R"(data: {"id":)";
    str(out, _id);
    out += R"(,"object":"chat.completion.chunk","created":)";
    inum(out, _created);
    out += R"(,"model":)";
    str(out, _model);
    out += R"(,"choices":[],"usage":)";
    chat_usage(out, reply.usage);
    out += "}\n\n";
  }
  out += "data: [DONE]\n\n";
  return out;
}

std::string ChatChunkWriter::error(std::string_view message, std::string_view type, std::string_view code) {
  return "data: " + openai_error_json(message, type, code) + "\n\n";
}

// --- Responses ---

std::string response_json(const Reply& reply, const ResponseMeta& meta) {
  std::string out;
  out.reserve(512 + reply.text.size());
  response_object(out, &reply, meta, status_of(reply, meta), default_order(reply));
  return out;
}

ResponseEventWriter::ResponseEventWriter(ResponseMeta meta) : _meta(std::move(meta)) {}

std::string ResponseEventWriter::event(std::string_view type, std::string body_members) {
  std::string out = "event: ";
  out += type;
  out += "\ndata: {\"type\":";
  str(out, type);
  out += ",\"sequence_number\":";
  num(out, _seq++);
  if (!body_members.empty()) {
    out += ',';
    out += body_members;
  }
  out += "}\n\n";
  return out;
}

std::string ResponseEventWriter::start() {
  std::string out;
  for (std::string_view type : {"response.created", "response.in_progress"}) {
    std::string body = R"("response":)";
    response_object(body, nullptr, _meta, "in_progress", {});
    out += event(type, std::move(body));
  }
  return out;
}

namespace {

std::string item_ref(const std::string& item_id, std::size_t output_index) {
  std::string out = R"("item_id":)";
  str(out, item_id);
  out += R"(,"output_index":)";
  num(out, output_index);
  return out;
}

}  // namespace

ResponseEventWriter::Item& ResponseEventWriter::item(int tool_index, std::string* out, const Delta* first) {
  for (Item& it : _items) {
    if (it.tool_index == tool_index) return it;
  }
  const std::size_t index = _items.size();
  Item it;
  it.tool_index = tool_index;
  std::string body = R"("output_index":)";
  num(body, index);
  body += R"(,"item":)";
  if (tool_index < 0) {
    message_item(body, _meta, "in_progress", nullptr);
    *out += event("response.output_item.added", std::move(body));
    std::string part = item_ref(message_id(_meta), index);
    part += R"(,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]})";
    *out += event("response.content_part.added", std::move(part));
  } else {
    it.call_id = first != nullptr ? first->tool_id : std::string();
    it.name = first != nullptr ? first->tool_name : std::string();
    call_item(body, _meta, tool_index, "in_progress", ToolCall{it.call_id, it.name, {}});
    *out += event("response.output_item.added", std::move(body));
  }
  _items.push_back(std::move(it));
  return _items.back();
}

std::string ResponseEventWriter::delta(const Delta& d) {
  std::string out;
  if (d.tool_index < 0 && d.text.empty()) return out;
  const auto found =
      std::find_if(_items.begin(), _items.end(), [&](const Item& it) { return it.tool_index == d.tool_index; });
  const std::size_t index = static_cast<std::size_t>(found - _items.begin());
  Item& it = item(d.tool_index, &out, &d);
  if (d.tool_index < 0) {
    it.text += d.text;
    std::string body = item_ref(message_id(_meta), index);
    body += R"(,"content_index":0,"delta":)";
    str(body, d.text);
    body += R"(,"logprobs":[])";
    out += event("response.output_text.delta", std::move(body));
  } else if (!d.tool_arguments.empty()) {
    it.text += d.tool_arguments;
    std::string body = item_ref(call_item_id(_meta, d.tool_index), index);
    body += R"(,"delta":)";
    str(body, d.tool_arguments);
    out += event("response.function_call_arguments.delta", std::move(body));
  }
  return out;
}

std::string ResponseEventWriter::finish(const Reply& reply) {
  std::string out;
  // What the deltas did not carry (a reply built whole, as the echo provider's).
  {
    std::string sent;
    for (const Item& it : _items) {
      if (it.tool_index < 0) sent = it.text;
    }
    if (auto more = rest(reply.text, sent); !more.empty()) out += delta(Delta{std::string(more), -1, {}, {}, {}});
  }
  for (std::size_t k = 0; k < reply.tool_calls.size(); ++k) {
    const ToolCall& call = reply.tool_calls[k];
    const int index = static_cast<int>(k);
    auto found = std::find_if(_items.begin(), _items.end(), [&](const Item& it) { return it.tool_index == index; });
    if (found == _items.end()) {
      out += delta(Delta{{}, index, call.id, call.name, call.arguments});
    } else if (auto more = rest(call.arguments, found->text); !more.empty()) {
      out += delta(Delta{{}, index, {}, {}, std::string(more)});
    }
  }
  if (_items.empty()) item(-1, &out, nullptr);  // an empty reply is still one (empty) message

  const std::string status = status_of(reply, _meta);
  const std::string item_status = status == "completed" ? "completed" : "incomplete";
  std::vector<int> order;
  for (std::size_t i = 0; i < _items.size(); ++i) {
    const Item& it = _items[i];
    order.push_back(it.tool_index);
    if (it.tool_index < 0) {
      const std::string id = message_id(_meta);
      std::string body = item_ref(id, i);
      body += R"(,"content_index":0,"text":)";
      str(body, reply.text);
      body += R"(,"logprobs":[])";
      out += event("response.output_text.done", std::move(body));
      body = item_ref(id, i);
      body += R"(,"content_index":0,"part":{"type":"output_text","text":)";
      str(body, reply.text);
      body += R"(,"annotations":[],"logprobs":[]})";
      out += event("response.content_part.done", std::move(body));
      body = R"("output_index":)";
      num(body, i);
      body += R"(,"item":)";
      message_item(body, _meta, item_status, &reply.text);
      out += event("response.output_item.done", std::move(body));
    } else {
      const auto k = static_cast<std::size_t>(it.tool_index);
      const ToolCall call = k < reply.tool_calls.size() ? reply.tool_calls[k] : ToolCall{it.call_id, it.name, it.text};
      std::string body = item_ref(call_item_id(_meta, it.tool_index), i);
      body += R"(,"arguments":)";
      str(body, call.arguments);
      out += event("response.function_call_arguments.done", std::move(body));
      body = R"("output_index":)";
      num(body, i);
      body += R"(,"item":)";
      call_item(body, _meta, it.tool_index, item_status, call);
      out += event("response.output_item.done", std::move(body));
    }
  }
  // The final object lists the items in stream order; a call the reply no longer has is dropped from it.
  std::erase_if(order, [&](int k) { return k >= 0 && static_cast<std::size_t>(k) >= reply.tool_calls.size(); });
  std::string body = R"("response":)";
  response_object(body, &reply, _meta, status, order);
  const std::string type = status == "failed"       ? "response.failed"
                           : status == "incomplete" ? "response.incomplete"
                                                    : "response.completed";
  out += event(type, std::move(body));
  return out;
}

std::string ResponseEventWriter::fail(const Reply& partial, std::string_view code, std::string_view message) {
  _meta.status = "failed";
  _meta.error_code = std::string(code);
  _meta.error_message = std::string(message);
  return finish(partial);
}

std::string openai_error_json(std::string_view message, std::string_view type, std::string_view code,
                              std::string_view param) {
  std::string out = R"({"error":{"message":)";
  str(out, message);
  out += R"(,"type":)";
  str(out, type);
  out += R"(,"param":)";
  if (param.empty()) {
    out += "null";
  } else {
    str(out, param);
  }
  out += R"(,"code":)";
  if (code.empty()) {
    out += "null";
  } else {
    str(out, code);
  }
  out += "}}";
  return out;
}

}  // namespace statefold::protocol
