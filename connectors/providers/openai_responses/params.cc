// The client's parameters as Responses takes them: flat function tools, text.format, reasoning.effort; no stop.
#include "connectors/providers/internal/params.h"
#include "connectors/providers/openai_responses/openai_responses.h"

namespace statefold::providers::openai_responses {
namespace {

using namespace internal;  // NOLINT: the module's own helpers

value tool_json(const protocol::Tool& t) {
  object fn;
  fn["name"] = t.name;
  if (!t.description.empty()) fn["description"] = t.description;
  fn["parameters"] = t.parameters.empty() ? empty_schema() : parsed(t.parameters);
  if (t.strict) fn["strict"] = *t.strict;
  fn["type"] = "function";
  return fn;
}

value tool_choice_json(const protocol::Params& params) {
  if (params.tool_choice != "function") return value(params.tool_choice);
  object o;
  o["type"] = "function";
  o["name"] = params.tool_choice_name;
  return o;
}

}  // namespace

base::Result<std::string> OpenAIResponses::extra(const protocol::Params& params, bool stream) const {
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
    return base::make_error("stop: not supported by the " + std::string(name()) + " upstream");
  }
  if (!params.format.type.empty() && params.format.type != "text") {
    object text;
    text["format"] = format_json(params.format, false);
    o["text"] = std::move(text);
  }
  if (!params.reasoning_effort.empty()) {
    object r;
    r["effort"] = params.reasoning_effort;
    o["reasoning"] = std::move(r);
  }
  if (!params.user.empty()) o["user"] = params.user;
  if (stream) o["stream"] = true;
  pass_through(params, o);
  return canonical_text(o);
}

}  // namespace statefold::providers::openai_responses
