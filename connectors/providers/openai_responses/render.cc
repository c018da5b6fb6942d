// The Responses body: the system prompt as instructions, memory and summary as developer messages, the history as
// input items (tool calls and results as function_call / function_call_output items).
#include "connectors/providers/internal/render.h"
#include "connectors/providers/openai_responses/openai_responses.h"

namespace statefold::providers::openai_responses {
namespace {

using context::Item;
using context::Message;
using context::Part;
using context::PartKind;
using context::Role;
using context::ToolCall;
using namespace internal;  // NOLINT: the module's own helpers

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
    str(out, context::role_name(m.role));
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

}  // namespace

base::Result<std::string> OpenAIResponses::render(const context::Context& ctx,
                                                  const context::RenderOptions& options) const {
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

}  // namespace statefold::providers::openai_responses
