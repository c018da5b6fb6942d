// The client's parameters as Messages takes them: input_schema tools, tool_choice as an object (parallel calls
// switched off there), temperature within 0..1, stop_sequences, metadata.user_id; no JSON output formats.
#include <algorithm>

#include "connectors/providers/anthropic/anthropic.h"
#include "connectors/providers/internal/params.h"

namespace statefold::providers::anthropic {
namespace {

using namespace internal;  // NOLINT: the module's own helpers

value tool_json(const protocol::Tool& t) {
  object fn;
  fn["name"] = t.name;
  if (!t.description.empty()) fn["description"] = t.description;
  fn["input_schema"] = t.parameters.empty() ? empty_schema() : parsed(t.parameters);
  return fn;
}

value tool_choice_json(const protocol::Params& params) {
  object o;
  const std::string& c = params.tool_choice;
  o["type"] = c == "required" ? "any" : c == "function" ? "tool" : c == "none" ? "none" : "auto";
  if (c == "function") o["name"] = params.tool_choice_name;
  if (params.parallel_tool_calls == false && c != "none") o["disable_parallel_tool_use"] = true;
  return o;
}

}  // namespace

base::Result<std::string> Anthropic::extra(const protocol::Params& params, bool stream) const {
  object o;
  if (!params.tools.empty()) {
    array tools;
    for (const protocol::Tool& t : params.tools) tools.push_back(tool_json(t));
    o["tools"] = std::move(tools);
    if (!params.tool_choice.empty() || params.parallel_tool_calls == false) {
      o["tool_choice"] = tool_choice_json(params);
    }
  }
  // Anthropic's range is 0..1, OpenAI's 0..2.
  if (params.temperature) o["temperature"] = std::min(*params.temperature, 1.0);
  if (params.top_p) o["top_p"] = *params.top_p;
  if (!params.stop.empty()) {
    array stop;
    for (const auto& s : params.stop) stop.push_back(value(s));
    o["stop_sequences"] = std::move(stop);
  }
  if (!params.format.type.empty() && params.format.type != "text") {
    return base::make_error("response_format: JSON output (" + params.format.type + ") is not supported by the " +
                            std::string(name()) + " upstream");
  }
  if (!params.user.empty()) {
    object m;
    m["user_id"] = params.user;
    o["metadata"] = std::move(m);
  }
  if (stream) o["stream"] = true;
  // Messages API parameters Chat Completions does not have.
  if (auto passed = pass_through_only(params, {"top_k"}, name(), o); !passed) return passed.error();
  return canonical_text(o);
}

}  // namespace statefold::providers::anthropic
