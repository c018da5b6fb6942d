// The client's parameters as Chat Completions takes them: the client's own shape, with every hint it has.
#include "connectors/providers/internal/params.h"
#include "connectors/providers/openai_chat/openai_chat.h"

namespace statefold::providers::openai_chat {
namespace {

using namespace internal;  // NOLINT: the module's own helpers

value tool_json(const protocol::Tool& t) {
  object fn;
  fn["name"] = t.name;
  if (!t.description.empty()) fn["description"] = t.description;
  if (!t.parameters.empty()) fn["parameters"] = parsed(t.parameters);
  if (t.strict) fn["strict"] = *t.strict;
  object out;
  out["type"] = "function";
  out["function"] = std::move(fn);
  return out;
}

value tool_choice_json(const protocol::Params& params) {
  if (params.tool_choice != "function") return value(params.tool_choice);
  object o;
  o["type"] = "function";
  object fn;
  fn["name"] = params.tool_choice_name;
  o["function"] = std::move(fn);
  return o;
}

}  // namespace

base::Result<std::string> OpenAIChat::extra(const protocol::Params& params, bool stream) const {
  object o;
  if (!params.tools.empty()) {
    array tools;
    for (const protocol::Tool& t : params.tools) tools.push_back(tool_json(t));
    o["tools"] = std::move(tools);
    if (!params.tool_choice.empty()) o["tool_choice"] = tool_choice_json(params);
    if (params.parallel_tool_calls) o["parallel_tool_calls"] = *params.parallel_tool_calls;
  }
  if (params.temperature) o["temperature"] = *params.temperature;
  if (params.top_p) o["top_p"] = *params.top_p;
  if (!params.stop.empty()) {
    array stop;
    for (const auto& s : params.stop) stop.push_back(value(s));
    o["stop"] = std::move(stop);
  }
  if (!params.format.type.empty() && params.format.type != "text") {
    o["response_format"] = format_json(params.format, true);
  }
  if (params.seed) o["seed"] = *params.seed;
  if (params.frequency_penalty) o["frequency_penalty"] = *params.frequency_penalty;
  if (params.presence_penalty) o["presence_penalty"] = *params.presence_penalty;
  if (!params.reasoning_effort.empty()) o["reasoning_effort"] = params.reasoning_effort;
  if (!params.user.empty()) o["user"] = params.user;
  if (stream) {
    o["stream"] = true;
    object so;
    so["include_usage"] = true;
    o["stream_options"] = std::move(so);
  }
  pass_through(params, o);
  return canonical_text(o);
}

}  // namespace statefold::providers::openai_chat
