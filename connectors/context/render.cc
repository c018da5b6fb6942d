#include "connectors/context/render.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include <boost/json.hpp>

#include "base/hex.h"
#include "base/json_writer.h"
#include "base/sha256.h"

namespace statefold::context {
namespace {

constexpr std::string_view kEphemeral = R"(,"cache_control":{"type":"ephemeral"})";

// --- JSON text: keys are literals written in a fixed order, through the one writer (base/json_writer.h).

using base::json::key;
using base::json::num;
using base::json::str;

// The extra request parameters as canonical members (`"k":v,...`, no braces), or an error.
base::Result<std::string> extra_members(std::string_view extra, std::initializer_list<std::string_view> reserved) {
  std::string out;
  if (extra.empty()) return out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(extra, ec);
  if (ec) return base::make_error("context: extra request parameters are not JSON: " + ec.message());
  if (!v.is_object()) return base::make_error("context: extra request parameters must be a JSON object");
  for (const auto& kv : v.get_object()) {
    if (std::find(reserved.begin(), reserved.end(), std::string_view(kv.key())) != reserved.end()) {
      return base::make_error("context: extra request parameter \"" + std::string(kv.key()) +
                              "\" is written by the renderer");
    }
  }
  if (auto r = base::json::canonical(out, v); !r) {
    return base::make_error("context: extra request parameters: " + r.error().message);
  }
  if (out.size() <= 2) return std::string();  // {}
  return out.substr(1, out.size() - 2);
}

// --- Message text ---

bool has_image(const Message& m) {
  return std::any_of(m.content.begin(), m.content.end(), [](const Part& p) { return p.kind == PartKind::image_url; });
}

// A message's parts as one text, joined by "\n"; an image becomes "[image: URL]". Avoids a copy for one part.
std::string_view joined_text(const Message& m, std::string& scratch) {
  if (m.content.size() == 1 && m.content[0].kind != PartKind::image_url) return m.content[0].text;
  scratch.clear();
  for (std::size_t i = 0; i < m.content.size(); ++i) {
    if (i > 0) scratch += '\n';
    const Part& p = m.content[i];
    if (p.kind == PartKind::image_url) {
      scratch += "[image: ";
      scratch += p.text;
      scratch += ']';
    } else {
      scratch += p.text;
    }
  }
  return scratch;
}

template <typename F>
void for_each_call(const Item& item, F&& f) {
  const auto& calls = item.message->tool_calls;
  if (item.all_calls) {
    for (const auto& call : calls) f(call);
  } else {
    for (std::uint32_t k : item.calls) f(calls[k]);
  }
}

bool item_has_calls(const Item& item) {
  return item.all_calls ? !item.message->tool_calls.empty() : !item.calls.empty();
}

void open_body(std::string& out, const Context& ctx, std::string_view max_key) {
  out += '{';
  key(out, "model");
  str(out, ctx.state->model);
  out += ',';
  key(out, max_key);
  num(out, ctx.output_reserve);
}

void append_extras(std::string& out, const std::string& extras) {
  if (extras.empty()) return;
  out += ',';
  out += extras;
}

std::size_t estimate(const Context& ctx) {
  std::size_t n = 256 + ctx.system_text.size() + ctx.memory_text.size() + ctx.summary_text.size();
  for (const auto& item : ctx.history) n += 64 + item.tokens * 5;
  return n;
}

// --- OpenAI Chat Completions (also the echo provider's body) ---

void chat_system(std::string& out, std::string_view text, base::json::Comma& comma) {
  if (text.empty()) return;
  comma(out);
  out += R"({"role":"system","content":)";
  str(out, text);
  out += '}';
}

void chat_item(std::string& out, const Item& item, std::string& scratch) {
  const Message& m = *item.message;
  out += '{';
  key(out, "role");
  str(out, role_name(m.role));
  if (m.role == Role::tool) {
    out += ',';
    key(out, "tool_call_id");
    str(out, m.tool_call_id);
    out += ',';
    key(out, "content");
    str(out, joined_text(m, scratch));
    out += '}';
    return;
  }
  if (!m.name.empty()) {
    out += ',';
    key(out, "name");
    str(out, m.name);
  }
  out += ',';
  key(out, "content");
  if (m.role == Role::user && has_image(m)) {
    out += '[';
    for (std::size_t i = 0; i < m.content.size(); ++i) {
      if (i > 0) out += ',';
      const Part& p = m.content[i];
      if (p.kind == PartKind::image_url) {
        out += R"({"type":"image_url","image_url":{"url":)";
        str(out, p.text);
        out += "}}";
      } else {
        out += R"({"type":"text","text":)";
        str(out, p.text);
        out += '}';
      }
    }
    out += ']';
  } else {
    const std::string_view text = joined_text(m, scratch);
    if (text.empty() && item_has_calls(item)) {
      out += "null";
    } else {
      str(out, text);
    }
  }
  if (m.role == Role::assistant && item_has_calls(item)) {
    out += ',';
    key(out, "tool_calls");
    out += '[';
    base::json::Comma comma;
    for_each_call(item, [&](const ToolCall& call) {
      comma(out);
      out += R"({"id":)";
      str(out, call.id);
      out += R"(,"type":"function","function":{"name":)";
      str(out, call.name);
      out += R"(,"arguments":)";
      str(out, call.arguments);
      out += "}}";
    });
    out += ']';
  }
  out += '}';
}

base::Result<std::string> render_chat(const Context& ctx, const RenderOptions& options) {
  auto extras = extra_members(options.extra, {"model", "max_completion_tokens", "max_tokens", "messages"});
  if (!extras) return extras.error();
  std::string out;
  out.reserve(estimate(ctx));
  open_body(out, ctx, "max_completion_tokens");
  append_extras(out, *extras);
  out += ',';
  key(out, "messages");
  out += '[';
  base::json::Comma comma;
  chat_system(out, ctx.system_text, comma);
  chat_system(out, ctx.memory_text, comma);
  chat_system(out, ctx.summary_text, comma);
  std::string scratch;
  for (const auto& item : ctx.history) {
    comma(out);
    chat_item(out, item, scratch);
  }
  out += "]}";
  return out;
}

// --- OpenAI Responses, stateless ---

void responses_item(std::string& out, const Item& item, std::string& scratch, base::json::Comma& comma) {
  const Message& m = *item.message;
  const auto sep = [&] { comma(out); };
  if (m.role == Role::tool) {
    sep();
    out += R"({"type":"function_call_output","call_id":)";
    str(out, m.tool_call_id);
    out += R"(,"output":)";
    str(out, joined_text(m, scratch));
    out += '}';
    return;
  }
  const std::string_view text = joined_text(m, scratch);
  const bool image = m.role == Role::user && has_image(m);
  if (!text.empty() || image || !(m.role == Role::assistant && item_has_calls(item))) {
    sep();
    out += R"({"type":"message","role":)";
    str(out, role_name(m.role));
    out += R"(,"content":)";
    if (image) {
      out += '[';
      for (std::size_t i = 0; i < m.content.size(); ++i) {
        if (i > 0) out += ',';
        const Part& p = m.content[i];
        if (p.kind == PartKind::image_url) {
          out += R"({"type":"input_image","image_url":)";
          str(out, p.text);
          out += R"(,"detail":"auto"})";
        } else {
          out += R"({"type":"input_text","text":)";
          str(out, p.text);
          out += '}';
        }
      }
      out += ']';
    } else {
      str(out, text);
    }
    out += '}';
  }
  if (m.role == Role::assistant) {
    for_each_call(item, [&](const ToolCall& call) {
      sep();
      out += R"({"type":"function_call","call_id":)";
      str(out, call.id);
      out += R"(,"name":)";
      str(out, call.name);
      out += R"(,"arguments":)";
      str(out, call.arguments);
      out += '}';
    });
  }
}

base::Result<std::string> render_responses(const Context& ctx, const RenderOptions& options) {
  auto extras = extra_members(options.extra, {"model", "max_output_tokens", "store", "instructions", "input",
                                              "previous_response_id", "conversation"});
  if (!extras) return extras.error();
  std::string out;
  out.reserve(estimate(ctx));
  open_body(out, ctx, "max_output_tokens");
  out += R"(,"store":false)";
  append_extras(out, *extras);
  if (!ctx.system_text.empty()) {
    out += ',';
    key(out, "instructions");
    str(out, ctx.system_text);
  }
  out += ',';
  key(out, "input");
  out += '[';
  base::json::Comma comma;
  for (std::string_view text : {std::string_view(ctx.memory_text), std::string_view(ctx.summary_text)}) {
    if (text.empty()) continue;
    comma(out);
    out += R"({"type":"message","role":"developer","content":)";
    str(out, text);
    out += '}';
  }
  std::string scratch;
  for (const auto& item : ctx.history) responses_item(out, item, scratch, comma);
  out += "]}";
  return out;
}

// --- Anthropic Messages ---

// tool_use.input must be an object: the arguments (canonical) when they are one, {} when empty, otherwise the
// text under "raw_arguments".
void tool_input(std::string& out, std::string_view arguments) {
  const auto blank = arguments.find_first_not_of(" \t\r\n");
  if (blank == std::string_view::npos) {
    out += "{}";
    return;
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(arguments, ec);
  if (!ec && v.is_object()) {
    std::string text;
    if (base::json::canonical(text, v).ok()) {
      out += text;
      return;
    }
  }
  out += R"({"raw_arguments":)";
  str(out, arguments);
  out += '}';
}

// Writes consecutive same-role messages as one (the API wants user and assistant to alternate; tool results travel
// in user messages), remembering where each message's last block ends for the cache breakpoints.
class AnthropicWriter {
 public:
  explicit AnthropicWriter(std::string& out) : _out(out) {}

  void begin(std::string_view role) {
    if (_open && role == _role) {
      _out += ',';
      return;
    }
    if (_open) close();
    if (_count > 0) _out += ',';
    _out += R"({"role":)";
    str(_out, role);
    _out += R"(,"content":[)";
    _role = role;
    _open = true;
    ++_count;
  }
  // After each block: the position of its closing brace.
  void block_end() { _last_end[_count % 2] = {_count, _out.size() - 1}; }
  void finish() {
    if (_open) close();
  }
  // Positions (descending) of the last block of the last two messages.
  std::vector<std::size_t> breakpoints() const {
    std::vector<std::size_t> out;
    for (const auto& [message, pos] : _last_end) {
      if (message > 0 && message + 2 > _count) out.push_back(pos);
    }
    std::sort(out.rbegin(), out.rend());
    return out;
  }

 private:
  void close() {
    _out += "]}";
    _open = false;
  }
  std::string& _out;
  std::string_view _role;
  bool _open = false;
  std::size_t _count = 0;
  std::array<std::pair<std::size_t, std::size_t>, 2> _last_end{};  // (message number from 1, brace position)
};

void text_block(std::string& out, std::string_view text) {
  out += R"({"type":"text","text":)";
  str(out, text);
  out += '}';
}

void anthropic_item(AnthropicWriter& w, std::string& out, const Item& item, std::string& scratch) {
  const Message& m = *item.message;
  if (m.role == Role::tool) {
    w.begin("user");
    out += R"({"type":"tool_result","tool_use_id":)";
    str(out, m.tool_call_id);
    const std::string_view text = joined_text(m, scratch);
    if (!text.empty()) {
      out += R"(,"content":)";
      str(out, text);
    }
    out += '}';
    w.block_end();
    return;
  }
  if (m.role == Role::assistant) {
    const std::string_view text = joined_text(m, scratch);
    if (text.empty() && !item_has_calls(item)) return;
    w.begin("assistant");
    bool first = true;
    if (!text.empty()) {
      text_block(out, text);
      w.block_end();
      first = false;
    }
    for_each_call(item, [&](const ToolCall& call) {
      if (!first) out += ',';
      first = false;
      out += R"({"type":"tool_use","id":)";
      str(out, call.id);
      out += R"(,"name":)";
      str(out, call.name);
      out += R"(,"input":)";
      tool_input(out, call.arguments);
      out += '}';
      w.block_end();
    });
    return;
  }
  // user, and system/developer messages from the history, which the Messages API only takes as user turns.
  bool any = false;
  for (const Part& p : m.content) any = any || p.kind == PartKind::image_url || !p.text.empty();
  if (!any) return;  // the API refuses empty text blocks
  w.begin("user");
  base::json::Comma comma;
  for (const Part& p : m.content) {
    if (p.kind != PartKind::image_url && p.text.empty()) continue;
    comma(out);
    if (p.kind == PartKind::image_url && m.role == Role::user) {
      out += R"({"type":"image","source":{"type":"url","url":)";
      str(out, p.text);
      out += "}}";
    } else if (p.kind == PartKind::image_url) {
      text_block(out, "[image: " + p.text + "]");
    } else {
      text_block(out, p.text);
    }
    w.block_end();
  }
}

base::Result<std::string> render_anthropic(const Context& ctx, const RenderOptions& options) {
  auto extras = extra_members(options.extra, {"model", "max_tokens", "system", "messages"});
  if (!extras) return extras.error();
  std::string out;
  out.reserve(estimate(ctx));
  open_body(out, ctx, "max_tokens");
  append_extras(out, *extras);
  // The system blocks: stable until the memory or summary changes; the last one is a cache breakpoint.
  std::vector<std::string_view> system;
  for (std::string_view text : {std::string_view(ctx.system_text), std::string_view(ctx.memory_text),
                                std::string_view(ctx.summary_text)}) {
    if (!text.empty()) system.push_back(text);
  }
  if (!system.empty()) {
    out += ',';
    key(out, "system");
    out += '[';
    for (std::size_t i = 0; i < system.size(); ++i) {
      if (i > 0) out += ',';
      out += R"({"type":"text","text":)";
      str(out, system[i]);
      if (i + 1 == system.size()) out += kEphemeral;
      out += '}';
    }
    out += ']';
  }
  out += ',';
  key(out, "messages");
  out += '[';
  AnthropicWriter writer(out);
  std::string scratch;
  for (const auto& item : ctx.history) anthropic_item(writer, out, item, scratch);
  writer.finish();
  // Breakpoints on the last block of the last two messages: the next call, which appends to this conversation,
  // finds this whole request in the cache (the second one is a fallback within the API's lookback window).
  for (std::size_t pos : writer.breakpoints()) out.insert(pos, kEphemeral);
  out += "]}";
  return out;
}

// --- Overview and echo ---

void section(std::string& out, std::string_view name, std::size_t tokens) {
  out += '{';
  key(out, "name");
  str(out, name);
  out += ',';
  key(out, "tokens");
  num(out, tokens);
}

std::string_view last_user_text(const Context& ctx, std::string& scratch) {
  for (auto it = ctx.history.rbegin(); it != ctx.history.rend(); ++it) {
    if (it->message->role == Role::user) return joined_text(*it->message, scratch);
  }
  return {};
}

std::size_t rendered_messages(const Context& ctx) {
  return (ctx.system_text.empty() ? 0 : 1) + (ctx.memory_text.empty() ? 0 : 1) + (ctx.summary_text.empty() ? 0 : 1) +
         ctx.history.size();
}

}  // namespace

std::string_view provider_name(Provider provider) {
  switch (provider) {
    case Provider::openai_chat: return "openai_chat";
    case Provider::openai_responses: return "openai_responses";
    case Provider::anthropic: return "anthropic";
    case Provider::echo: return "echo";
  }
  return "openai_chat";
}

std::optional<Provider> parse_provider(std::string_view name) {
  for (Provider p : {Provider::openai_chat, Provider::openai_responses, Provider::anthropic, Provider::echo}) {
    if (name == provider_name(p)) return p;
  }
  return std::nullopt;
}

base::Result<std::string> render(const Context& context, Provider provider, const RenderOptions& options) {
  switch (provider) {
    case Provider::openai_chat:
    case Provider::echo: return render_chat(context, options);
    case Provider::openai_responses: return render_responses(context, options);
    case Provider::anthropic: return render_anthropic(context, options);
  }
  return base::make_error("context: unknown provider");
}

std::string request_hash(std::string_view body) { return base::to_hex(base::sha256(body)); }

std::string echo_reply(const Context& ctx) {
  const auto n = [](std::size_t v) { return std::to_string(v); };
  std::size_t included = 0;
  for (const auto& e : ctx.memory) included += e.included ? 1 : 0;
  std::string out = "echo: I received " + n(rendered_messages(ctx)) + " messages, " + n(ctx.total_tokens) + " of " +
                    n(ctx.input_budget) + " input tokens (budget " + n(ctx.token_budget) + ", output reserve " +
                    n(ctx.output_reserve) + ").\n";
  out += "- system prompt: " + n(ctx.system_tokens) + " tokens\n";
  out += "- memory: " + n(included) + " of " + n(ctx.memory.size()) + " blocks, " + n(ctx.memory_tokens) + " tokens\n";
  if (ctx.summary_text.empty()) {
    out += "- summary: none\n";
  } else {
    out += "- summary: " + n(ctx.summary_tokens) + " tokens, through version " +
           n(ctx.state->summary->through_version) + "\n";
  }
  if (ctx.extra_tokens > 0) out += "- extra parameters (tools...): " + n(ctx.extra_tokens) + " tokens\n";
  out += "- history: " + n(ctx.history.size()) + " messages, " + n(ctx.history_tokens) + " tokens";
  if (!ctx.history.empty()) {
    out += " (versions " + n(ctx.history.front().message->version) + ".." + n(ctx.history.back().message->version) +
           ")";
  }
  out += "\n- cut: ";
  if (ctx.cut.messages == 0) {
    out += "nothing";
  } else {
    out += n(ctx.cut.messages) + " messages, " + n(ctx.cut.tokens) + " tokens (versions " + n(ctx.cut.first_version) +
           ".." + n(ctx.cut.last_version) + ")";
  }
  out += "\n";
  std::string scratch;
  const std::string_view last = last_user_text(ctx, scratch);
  out += "Last user message: ";
  if (last.empty()) {
    out += "(none)";
  } else {
    // At most 200 bytes, cut on a UTF-8 character boundary.
    std::size_t len = std::min<std::size_t>(last.size(), 200);
    while (len < last.size() && len > 0 && (static_cast<unsigned char>(last[len]) & 0xC0) == 0x80) --len;
    out += '"';
    out.append(last.data(), len);
    if (len < last.size()) out += "...";
    out += '"';
  }
  return out;
}

std::string overview_json(const Context& ctx, Provider provider, std::string_view body) {
  const SessionState& s = *ctx.state;
  std::string out;
  out.reserve(1024 + body.size());
  out += '{';
  key(out, "session_id");
  str(out, s.session_id);
  out += ',';
  key(out, "version");
  num(out, s.version);
  out += ',';
  key(out, "provider");
  str(out, provider_name(provider));
  out += ',';
  key(out, "model");
  str(out, s.model);
  out += ',';
  key(out, "context_version");
  str(out, kContextVersion);
  out += ',';
  key(out, "budget");
  out += '{';
  key(out, "token_budget");
  num(out, ctx.token_budget);
  out += ',';
  key(out, "output_reserve");
  num(out, ctx.output_reserve);
  out += ',';
  key(out, "input_budget");
  num(out, ctx.input_budget);
  out += ',';
  key(out, "history_budget");
  num(out, ctx.history_budget);
  out += ',';
  key(out, "used");
  num(out, ctx.total_tokens);
  out += ',';
  key(out, "cut_percent");
  num(out, s.policy.cut_percent);
  out += "},";
  key(out, "sections");
  out += '[';
  section(out, "system", ctx.system_tokens);
  out += "},";
  section(out, "memory", ctx.memory_tokens);
  out += ',';
  key(out, "blocks");
  out += '[';
  for (std::size_t i = 0; i < ctx.memory.size(); ++i) {
    const auto& e = ctx.memory[i];
    if (i > 0) out += ',';
    out += '{';
    key(out, "label");
    str(out, e.label);
    out += ',';
    key(out, "pinned");
    out += e.pinned ? "true" : "false";
    out += ',';
    key(out, "included");
    out += e.included ? "true" : "false";
    out += ',';
    key(out, "tokens");
    num(out, e.tokens);
    out += '}';
  }
  out += "]},";
  section(out, "summary", ctx.summary_tokens);
  out += ',';
  key(out, "through_version");
  if (s.summary) {
    num(out, s.summary->through_version);
  } else {
    out += "null";
  }
  out += "},";
  section(out, "history", ctx.history_tokens);
  out += ',';
  key(out, "messages");
  num(out, ctx.history.size());
  out += ',';
  key(out, "first_version");
  if (ctx.history.empty()) {
    out += "null,";
  } else {
    num(out, ctx.history.front().message->version);
    out += ',';
  }
  key(out, "last_version");
  if (ctx.history.empty()) {
    out += "null";
  } else {
    num(out, ctx.history.back().message->version);
  }
  out += "},";
  section(out, "extra", ctx.extra_tokens);
  out += "},";
  section(out, "reply_priming", kReplyPriming);
  out += "}],";
  key(out, "cut");
  out += '{';
  key(out, "messages");
  num(out, ctx.cut.messages);
  out += ',';
  key(out, "tokens");
  num(out, ctx.cut.tokens);
  out += ',';
  key(out, "first_version");
  if (ctx.cut.messages == 0) {
    out += "null,";
  } else {
    num(out, ctx.cut.first_version);
    out += ',';
  }
  key(out, "last_version");
  if (ctx.cut.messages == 0) {
    out += "null";
  } else {
    num(out, ctx.cut.last_version);
  }
  out += ',';
  key(out, "covered_by_summary");
  num(out, ctx.cut.covered_by_summary);
  out += ',';
  key(out, "orphan_tool_results");
  out += '[';
  for (std::size_t i = 0; i < ctx.cut.orphan_tool_results.size(); ++i) {
    if (i > 0) out += ',';
    num(out, ctx.cut.orphan_tool_results[i]);
  }
  out += "],";
  key(out, "dangling_tool_calls");
  out += '[';
  for (std::size_t i = 0; i < ctx.cut.dangling_tool_calls.size(); ++i) {
    if (i > 0) out += ',';
    str(out, ctx.cut.dangling_tool_calls[i]);
  }
  out += "],";
  key(out, "memory_blocks");
  out += '[';
  for (std::size_t i = 0; i < ctx.cut.memory_blocks.size(); ++i) {
    if (i > 0) out += ',';
    str(out, ctx.cut.memory_blocks[i]);
  }
  out += "]},";
  key(out, "request_hash");
  str(out, request_hash(body));
  out += ',';
  key(out, "body");
  out += body.empty() ? std::string_view("null") : body;
  out += '}';
  return out;
}

bool prefix_reused(std::string_view previous, std::string_view next) {
  const auto strip = [](std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t pos = 0;;) {
      const std::size_t hit = text.find(kEphemeral, pos);
      if (hit == std::string_view::npos) {
        out.append(text.substr(pos));
        return out;
      }
      out.append(text.substr(pos, hit - pos));
      pos = hit + kEphemeral.size();
    }
  };
  std::string prev = strip(previous);
  while (!prev.empty() && (prev.back() == ']' || prev.back() == '}')) prev.pop_back();
  return strip(next).starts_with(prev);
}

}  // namespace statefold::context
