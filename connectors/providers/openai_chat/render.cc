// The Chat Completions body: system, memory and summary as system messages, then the history.
#include "connectors/providers/internal/render.h"
#include "connectors/providers/openai_chat/openai_chat.h"

namespace statefold::providers::openai_chat {
namespace {

using context::Item;
using context::Message;
using context::Part;
using context::PartKind;
using context::Role;
using context::ToolCall;
using namespace internal;  // NOLINT: the module's own helpers

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
  str(out, context::role_name(m.role));
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

}  // namespace

base::Result<std::string> OpenAIChat::render(const context::Context& ctx, const context::RenderOptions& options) const {
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

}  // namespace statefold::providers::openai_chat
