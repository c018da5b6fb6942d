// Client request parsing (Chat Completions, Responses).
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "connectors/protocol/internal/json.h"
#include "connectors/protocol/protocol.h"

namespace statefold::protocol {
namespace {

using detail::json::array;
using detail::json::object;
using detail::json::value;
using context::Part;
using context::PartKind;
using context::Role;

// Parsing ends at the first bad field: thrown inside this file only, returned as a Result by the entry points.
struct Bad {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  throw Bad{path + ": " + std::string(what)};
}

std::string at(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : path + "." + std::string(name);
}

std::string idx(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

const object& as_object(const value& v, const std::string& path) {
  if (!v.is_object()) fail(path, "must be an object");
  return v.get_object();
}

const array& as_array(const value& v, const std::string& path) {
  if (!v.is_array()) fail(path, "must be an array");
  return v.get_array();
}

std::string as_string(const value& v, const std::string& path) {
  if (!v.is_string()) fail(path, "must be a string");
  return std::string(v.get_string());
}

bool as_bool(const value& v, const std::string& path) {
  if (!v.is_bool()) fail(path, "must be a boolean");
  return v.get_bool();
}

double as_number(const value& v, const std::string& path) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double() && std::isfinite(v.get_double())) return v.get_double();
  fail(path, "must be a number");
}

std::int64_t as_int(const value& v, const std::string& path) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_double() && std::floor(v.get_double()) == v.get_double() && std::fabs(v.get_double()) < 9e15) {
    return static_cast<std::int64_t>(v.get_double());
  }
  fail(path, "must be an integer");
}

double in_range(double d, double lo, double hi, const std::string& path) {
  if (d < lo || d > hi) {
    std::string what = "must be between ";
    detail::dbl(what, lo);
    what += " and ";
    detail::dbl(what, hi);
    fail(path, what);
  }
  return d;
}

// A JSON Schema kept as compact text in the client's key order.
std::string schema_text(const value& v, const std::string& path) {
  as_object(v, path);
  std::string out;
  if (!detail::canonical(out, v, false)) fail(path, "must hold only finite numbers");
  return out;
}

std::optional<Role> role_of(std::string_view name) {
  for (Role r : {Role::system, Role::developer, Role::user, Role::assistant, Role::tool}) {
    if (name == context::role_name(r)) return r;
  }
  return std::nullopt;
}

void add_text(ClientMessage& m, std::string text) {
  m.content.push_back(Part{PartKind::text, std::move(text), {}});
}

// --- Shared parameter parsing ---

void parse_metadata(const value& v, const std::string& path, Params& params) {
  for (const auto& kv : as_object(v, path)) {
    params.metadata[std::string(kv.key())] = as_string(kv.value(), at(path, kv.key()));
  }
}

OutputFormat parse_format(const object& o, const std::string& path, bool chat) {
  OutputFormat f;
  const value* type = detail::member(o, "type");
  if (type == nullptr) fail(at(path, "type"), "required");
  f.type = as_string(*type, at(path, "type"));
  if (f.type != "text" && f.type != "json_object" && f.type != "json_schema") {
    fail(at(path, "type"), "must be one of text, json_object, json_schema");
  }
  if (f.type != "json_schema") return f;
  std::string spath = chat ? at(path, "json_schema") : path;
  const object* s = &o;
  if (chat) {
    const value* js = detail::member(o, "json_schema");
    if (js == nullptr) fail(spath, "required when type is json_schema");
    s = &as_object(*js, spath);
  }
  const value* name = detail::member(*s, "name");
  if (name == nullptr) fail(at(spath, "name"), "required");
  f.name = as_string(*name, at(spath, "name"));
  if (const value* d = detail::member(*s, "description")) f.description = as_string(*d, at(spath, "description"));
  if (const value* sc = detail::member(*s, "schema")) f.schema = schema_text(*sc, at(spath, "schema"));
  if (const value* st = detail::member(*s, "strict")) f.strict = as_bool(*st, at(spath, "strict"));
  return f;
}

// tools[]: chat {"type":"function","function":{...}}; responses {"type":"function","name",...}.
void parse_tools(const value& v, const std::string& path, bool chat, Params& params) {
  const array& tools = as_array(v, path);
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string tpath = idx(path, i);
    const object& t = as_object(tools[i], tpath);
    const std::string type = detail::string_or(t, "type");
    if (type != "function") fail(at(tpath, "type"), "only function tools are supported");
    std::string fpath = tpath;
    const object* f = &t;
    if (chat) {
      fpath = at(tpath, "function");
      const value* fn = detail::member(t, "function");
      if (fn == nullptr) fail(fpath, "required");
      f = &as_object(*fn, fpath);
    }
    Tool tool;
    const value* name = detail::member(*f, "name");
    if (name == nullptr) fail(at(fpath, "name"), "required");
    tool.name = as_string(*name, at(fpath, "name"));
    if (tool.name.empty()) fail(at(fpath, "name"), "must not be empty");
    if (const value* d = detail::member(*f, "description")) tool.description = as_string(*d, at(fpath, "description"));
    if (const value* p = detail::member(*f, "parameters")) tool.parameters = schema_text(*p, at(fpath, "parameters"));
    if (const value* s = detail::member(*f, "strict")) tool.strict = as_bool(*s, at(fpath, "strict"));
    params.tools.push_back(std::move(tool));
  }
}

void parse_tool_choice(const value& v, const std::string& path, bool chat, Params& params) {
  if (v.is_string()) {
    const std::string s(v.get_string());
    if (s != "auto" && s != "none" && s != "required") fail(path, "must be one of auto, none, required, or a function");
    params.tool_choice = s;
    return;
  }
  const object& o = as_object(v, path);
  if (detail::string_or(o, "type") != "function") fail(at(path, "type"), "only \"function\" is supported");
  std::string fpath = path;
  const object* f = &o;
  if (chat) {
    fpath = at(path, "function");
    const value* fn = detail::member(o, "function");
    if (fn == nullptr) fail(fpath, "required");
    f = &as_object(*fn, fpath);
  }
  const value* name = detail::member(*f, "name");
  if (name == nullptr) fail(at(fpath, "name"), "required");
  params.tool_choice = "function";
  params.tool_choice_name = as_string(*name, at(fpath, "name"));
}

void check_tool_choice(const Params& params, const std::string& path) {
  if (params.tool_choice != "function") return;
  for (const Tool& t : params.tools) {
    if (t.name == params.tool_choice_name) return;
  }
  fail(path, "no tool named \"" + params.tool_choice_name + "\"");
}

// The parameters both APIs share. True when `name` was one of them.
bool parse_common(std::string_view name, const value& v, Params& params) {
  const std::string path(name);
  if (name == "temperature") {
    params.temperature = in_range(as_number(v, path), 0, 2, path);
  } else if (name == "top_p") {
    params.top_p = in_range(as_number(v, path), 0, 1, path);
  } else if (name == "parallel_tool_calls") {
    params.parallel_tool_calls = as_bool(v, path);
  } else if (name == "user" || name == "safety_identifier") {
    params.user = as_string(v, path);
  } else if (name == "metadata") {
    parse_metadata(v, path, params);
  } else if (name == "store" || name == "service_tier" || name == "prompt_cache_key" ||
             name == "prompt_cache_retention") {
    // Accepted and ignored: statefold keeps every session itself and chooses the upstream's tier and cache key.
  } else {
    return false;
  }
  return true;
}

std::uint64_t max_tokens(const value& v, const std::string& path) {
  const std::int64_t n = as_int(v, path);
  if (n < 1) fail(path, "must be at least 1");
  return static_cast<std::uint64_t>(n);
}

// --- Chat Completions ---

void chat_content(const value& v, const std::string& path, ClientMessage& m) {
  if (v.is_string()) {
    if (!v.get_string().empty()) add_text(m, std::string(v.get_string()));
    return;
  }
  const array& parts = as_array(v, path);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string ppath = idx(path, i);
    const object& p = as_object(parts[i], ppath);
    const std::string type = detail::string_or(p, "type");
    if (type == "text" || type == "refusal") {
      const value* t = detail::member(p, type);
      if (t == nullptr) fail(at(ppath, type), "required");
      add_text(m, as_string(*t, at(ppath, type)));
    } else if (type == "image_url" && m.role == Role::user) {
      const value* img = detail::member(p, "image_url");
      if (img == nullptr) fail(at(ppath, "image_url"), "required");
      const object& io = as_object(*img, at(ppath, "image_url"));
      const value* url = detail::member(io, "url");
      if (url == nullptr) fail(at(ppath, "image_url.url"), "required");
      m.content.push_back(Part{PartKind::image_url, as_string(*url, at(ppath, "image_url.url")), {}});
    } else {
      fail(at(ppath, "type"), "content part type \"" + type + "\" is not supported here");
    }
  }
}

ClientMessage chat_message(const value& v, const std::string& path) {
  const object& o = as_object(v, path);
  ClientMessage m;
  const value* role = detail::member(o, "role");
  if (role == nullptr) fail(at(path, "role"), "required");
  auto r = role_of(as_string(*role, at(path, "role")));
  if (!r) fail(at(path, "role"), "must be one of system, developer, user, assistant, tool");
  m.role = *r;
  const value* content = detail::member(o, "content");
  if (content != nullptr) chat_content(*content, at(path, "content"), m);
  if (const value* name = detail::member(o, "name")) m.name = as_string(*name, at(path, "name"));
  if (m.role == Role::assistant) {
    if (const value* refusal = detail::member(o, "refusal"); refusal != nullptr && m.content.empty()) {
      add_text(m, as_string(*refusal, at(path, "refusal")));
    }
    if (const value* calls = detail::member(o, "tool_calls")) {
      const std::string cpath = at(path, "tool_calls");
      const array& list = as_array(*calls, cpath);
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string kpath = idx(cpath, i);
        const object& c = as_object(list[i], kpath);
        const value* type = detail::member(c, "type");
        if (type != nullptr && as_string(*type, at(kpath, "type")) != "function") {
          fail(at(kpath, "type"), "only function tool calls are supported");
        }
        ToolCall call;
        const value* id = detail::member(c, "id");
        if (id == nullptr) fail(at(kpath, "id"), "required");
        call.id = as_string(*id, at(kpath, "id"));
        const value* fn = detail::member(c, "function");
        if (fn == nullptr) fail(at(kpath, "function"), "required");
        const object& f = as_object(*fn, at(kpath, "function"));
        const value* name = detail::member(f, "name");
        if (name == nullptr) fail(at(kpath, "function.name"), "required");
        call.name = as_string(*name, at(kpath, "function.name"));
        if (const value* args = detail::member(f, "arguments")) {
          call.arguments = as_string(*args, at(kpath, "function.arguments"));
        }
        m.tool_calls.push_back(std::move(call));
      }
    }
    if (content == nullptr && m.tool_calls.empty() && m.content.empty()) {
      fail(at(path, "content"), "required unless tool_calls is given");
    }
  } else if (content == nullptr) {
    fail(at(path, "content"), "required");
  }
  if (m.role == Role::tool) {
    const value* id = detail::member(o, "tool_call_id");
    if (id == nullptr) fail(at(path, "tool_call_id"), "required");
    m.tool_call_id = as_string(*id, at(path, "tool_call_id"));
  }
  if (detail::member(o, "function_call") != nullptr) fail(at(path, "function_call"), "not supported; use tool_calls");
  return m;
}

ChatRequest chat_request(const object& body) {
  ChatRequest req;
  bool have_model = false;
  bool have_messages = false;
  for (const auto& kv : body) {
    const std::string_view name = kv.key();
    const value& v = kv.value();
    const std::string path(name);
    if (v.is_null() && name != "model" && name != "messages") continue;  // null = not given
    if (name == "model") {
      req.model = as_string(v, path);
      have_model = !req.model.empty();
    } else if (name == "messages") {
      const array& list = as_array(v, path);
      for (std::size_t i = 0; i < list.size(); ++i) req.messages.push_back(chat_message(list[i], idx(path, i)));
      have_messages = true;
    } else if (name == "stream") {
      req.stream = as_bool(v, path);
    } else if (name == "stream_options") {
      const object& so = as_object(v, path);
      if (const value* u = detail::member(so, "include_usage")) {
        req.include_usage = as_bool(*u, at(path, "include_usage"));
      }
    } else if (name == "tools") {
      parse_tools(v, path, true, req.params);
    } else if (name == "tool_choice") {
      parse_tool_choice(v, path, true, req.params);
    } else if (name == "stop") {
      if (v.is_string()) {
        req.params.stop.push_back(std::string(v.get_string()));
      } else {
        const array& list = as_array(v, path);
        if (list.size() > 4) fail(path, "at most 4 sequences");
        for (std::size_t i = 0; i < list.size(); ++i) req.params.stop.push_back(as_string(list[i], idx(path, i)));
      }
    } else if (name == "response_format") {
      req.params.format = parse_format(as_object(v, path), path, true);
    } else if (name == "max_tokens" || name == "max_completion_tokens") {
      req.params.max_output_tokens = max_tokens(v, path);
    } else if (name == "seed") {
      req.params.seed = as_int(v, path);
    } else if (name == "frequency_penalty") {
      req.params.frequency_penalty = in_range(as_number(v, path), -2, 2, path);
    } else if (name == "presence_penalty") {
      req.params.presence_penalty = in_range(as_number(v, path), -2, 2, path);
    } else if (name == "reasoning_effort") {
      req.params.reasoning_effort = as_string(v, path);
    } else if (name == "n") {
      if (as_int(v, path) != 1) fail(path, "only 1 is supported");
    } else if (name == "logprobs") {
      if (as_bool(v, path)) fail(path, "not supported");
    } else if (name == "modalities") {
      const array& list = as_array(v, path);
      for (std::size_t i = 0; i < list.size(); ++i) {
        if (as_string(list[i], idx(path, i)) != "text") fail(idx(path, i), "only \"text\" is supported");
      }
    } else if (!parse_common(name, v, req.params)) {
      req.params.passthrough.emplace_back(path, boost::json::serialize(v));
    }
  }
  if (!have_model) fail("model", "required");
  if (!have_messages) fail("messages", "required");
  if (req.messages.empty()) fail("messages", "must not be empty");
  check_tool_choice(req.params, "tool_choice");
  if (auto it = req.params.metadata.find("session_id"); it != req.params.metadata.end()) req.session_id = it->second;
  return req;
}

// --- Responses ---

void responses_content(const value& v, const std::string& path, ClientMessage& m) {
  if (v.is_string()) {
    if (!v.get_string().empty()) add_text(m, std::string(v.get_string()));
    return;
  }
  const array& parts = as_array(v, path);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string ppath = idx(path, i);
    const object& p = as_object(parts[i], ppath);
    const std::string type = detail::string_or(p, "type");
    if (type == "input_text" || type == "output_text" || type == "text") {
      const value* t = detail::member(p, "text");
      if (t == nullptr) fail(at(ppath, "text"), "required");
      add_text(m, as_string(*t, at(ppath, "text")));
    } else if (type == "refusal") {
      const value* t = detail::member(p, "refusal");
      if (t == nullptr) fail(at(ppath, "refusal"), "required");
      add_text(m, as_string(*t, at(ppath, "refusal")));
    } else if (type == "input_image" && m.role == Role::user) {
      const value* url = detail::member(p, "image_url");
      if (url == nullptr) fail(at(ppath, "image_url"), "required (file_id images are not supported)");
      m.content.push_back(Part{PartKind::image_url, as_string(*url, at(ppath, "image_url")), {}});
    } else {
      fail(at(ppath, "type"), "content part type \"" + type + "\" is not supported here");
    }
  }
}

void responses_input(const value& v, const std::string& path, std::vector<ClientMessage>& out) {
  if (v.is_string()) {
    ClientMessage m;
    m.role = Role::user;
    add_text(m, std::string(v.get_string()));
    out.push_back(std::move(m));
    return;
  }
  const array& items = as_array(v, path);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string ipath = idx(path, i);
    const object& o = as_object(items[i], ipath);
    const std::string type = detail::string_or(o, "type", "message");
    if (type == "message") {
      ClientMessage m;
      const value* role = detail::member(o, "role");
      if (role == nullptr) fail(at(ipath, "role"), "required");
      auto r = role_of(as_string(*role, at(ipath, "role")));
      if (!r || *r == Role::tool) fail(at(ipath, "role"), "must be one of user, assistant, system, developer");
      m.role = *r;
      const value* content = detail::member(o, "content");
      if (content == nullptr) fail(at(ipath, "content"), "required");
      responses_content(*content, at(ipath, "content"), m);
      out.push_back(std::move(m));
    } else if (type == "function_call") {
      ToolCall call;
      const value* id = detail::member(o, "call_id");
      if (id == nullptr) fail(at(ipath, "call_id"), "required");
      call.id = as_string(*id, at(ipath, "call_id"));
      const value* name = detail::member(o, "name");
      if (name == nullptr) fail(at(ipath, "name"), "required");
      call.name = as_string(*name, at(ipath, "name"));
      const value* args = detail::member(o, "arguments");
      if (args == nullptr) fail(at(ipath, "arguments"), "required");
      call.arguments = as_string(*args, at(ipath, "arguments"));
      // A reply's text and its calls are one assistant message; consecutive calls too.
      if (out.empty() || out.back().role != Role::assistant) {
        ClientMessage m;
        m.role = Role::assistant;
        out.push_back(std::move(m));
      }
      out.back().tool_calls.push_back(std::move(call));
    } else if (type == "function_call_output") {
      ClientMessage m;
      m.role = Role::tool;
      const value* id = detail::member(o, "call_id");
      if (id == nullptr) fail(at(ipath, "call_id"), "required");
      m.tool_call_id = as_string(*id, at(ipath, "call_id"));
      const value* output = detail::member(o, "output");
      if (output == nullptr) fail(at(ipath, "output"), "required");
      responses_content(*output, at(ipath, "output"), m);
      out.push_back(std::move(m));
    } else if (type == "reasoning") {
      // Round-tripped reasoning items: the stateless upstreams cannot take them back; dropped.
    } else if (type == "item_reference") {
      fail(at(ipath, "type"), "item_reference is not supported; use previous_response_id or conversation");
    } else {
      fail(at(ipath, "type"), "input item type \"" + type + "\" is not supported");
    }
  }
}

ResponsesRequest responses_request(const object& body) {
  ResponsesRequest req;
  bool have_input = false;
  for (const auto& kv : body) {
    const std::string_view name = kv.key();
    const value& v = kv.value();
    const std::string path(name);
    if (v.is_null()) continue;
    if (name == "model") {
      req.model = as_string(v, path);
    } else if (name == "input") {
      responses_input(v, path, req.input);
      have_input = true;
    } else if (name == "instructions") {
      req.instructions = as_string(v, path);
    } else if (name == "stream") {
      req.stream = as_bool(v, path);
    } else if (name == "store") {
      req.store = as_bool(v, path);
    } else if (name == "previous_response_id") {
      req.previous_response_id = as_string(v, path);
    } else if (name == "conversation") {
      if (v.is_string()) {
        req.conversation = std::string(v.get_string());
      } else {
        const value* id = detail::member(as_object(v, path), "id");
        if (id == nullptr) fail(at(path, "id"), "required");
        req.conversation = as_string(*id, at(path, "id"));
      }
    } else if (name == "tools") {
      parse_tools(v, path, false, req.params);
    } else if (name == "tool_choice") {
      parse_tool_choice(v, path, false, req.params);
    } else if (name == "text") {
      const object& t = as_object(v, path);
      if (const value* f = detail::member(t, "format")) {
        req.params.format = parse_format(as_object(*f, at(path, "format")), at(path, "format"), false);
      }
    } else if (name == "max_output_tokens") {
      req.params.max_output_tokens = max_tokens(v, path);
    } else if (name == "reasoning") {
      const object& r = as_object(v, path);
      if (const value* e = detail::member(r, "effort")) req.params.reasoning_effort = as_string(*e, at(path, "effort"));
    } else if (name == "background") {
      if (as_bool(v, path)) fail(path, "background responses are not supported");
    } else if (name == "truncation") {
      req.truncation = as_string(v, path);
      if (req.truncation != "auto" && req.truncation != "disabled") fail(path, "must be \"auto\" or \"disabled\"");
    } else if (name == "include" || name == "stream_options") {
      // Accepted and ignored: no optional output is produced.
    } else if (!parse_common(name, v, req.params)) {
      req.params.passthrough.emplace_back(path, boost::json::serialize(v));
    }
  }
  if (!have_input) fail("input", "required");
  if (!req.previous_response_id.empty() && !req.conversation.empty()) {
    fail("previous_response_id", "cannot be used together with conversation");
  }
  check_tool_choice(req.params, "tool_choice");
  if (auto it = req.params.metadata.find("session_id"); it != req.params.metadata.end()) req.session_id = it->second;
  return req;
}

template <typename T, typename F>
base::Result<T> parse_body(std::string_view body, F&& f) {
  auto v = detail::parse(body, "request body");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error("request body must be a JSON object");
  try {
    return f(v->get_object());
  } catch (const Bad& bad) {
    return base::make_error(bad.message);
  }
}

}  // namespace

std::string ClientMessage::text() const {
  std::string out;
  bool first = true;
  for (const Part& p : content) {
    if (p.kind != PartKind::text) continue;
    if (!first) out += '\n';
    first = false;
    out += p.text;
  }
  return out;
}

base::Result<ChatRequest> parse_chat_request(std::string_view body) {
  return parse_body<ChatRequest>(body, chat_request);
}

base::Result<ResponsesRequest> parse_responses_request(std::string_view body) {
  return parse_body<ResponsesRequest>(body, responses_request);
}

namespace {

constexpr std::size_t kMaxMetadataPairs = 16;
constexpr std::size_t kMaxMetadataKey = 64;
constexpr std::size_t kMaxMetadataValue = 512;
constexpr std::size_t kMaxItems = 20;

ConversationRequest conversation_request(const object& body) {
  ConversationRequest req;
  for (const auto& kv : body) {
    const std::string_view name = kv.key();
    const value& v = kv.value();
    const std::string path(name);
    if (v.is_null()) continue;
    if (name == "metadata") {
      const object& pairs = as_object(v, path);
      if (pairs.size() > kMaxMetadataPairs) {
        fail(path, "at most " + std::to_string(kMaxMetadataPairs) + " pairs, got " + std::to_string(pairs.size()));
      }
      auto& out = req.metadata.emplace();
      for (const auto& pair : pairs) {
        const std::string key(pair.key());
        if (key.empty() || key.size() > kMaxMetadataKey) {
          fail(path, "keys must have 1 to " + std::to_string(kMaxMetadataKey) + " characters");
        }
        std::string text = as_string(pair.value(), at(path, key));
        if (text.size() > kMaxMetadataValue) {
          fail(at(path, key), "at most " + std::to_string(kMaxMetadataValue) + " characters");
        }
        out.emplace_back(key, std::move(text));
      }
    } else if (name == "items") {
      auto& items = req.items.emplace();
      if (v.is_array() && v.get_array().size() > kMaxItems) {
        fail(path, "at most " + std::to_string(kMaxItems) + " items per request, got " +
                       std::to_string(v.get_array().size()));
      }
      responses_input(v, path, items);
    } else {
      fail(path, "unknown parameter");
    }
  }
  return req;
}

}  // namespace

base::Result<ConversationRequest> parse_conversation_request(std::string_view body) {
  return parse_body<ConversationRequest>(body, conversation_request);
}

}  // namespace statefold::protocol
