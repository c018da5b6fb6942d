// The client's parameters as Converse takes them: tools as toolConfig.tools[].toolSpec (the JSON Schema under
// inputSchema.json), tool_choice as toolConfig.toolChoice, and temperature (within 0..1), topP and stopSequences in
// inferenceConfig (render() adds maxTokens there). Converse has no JSON output format: refused. It has no way to
// forbid tool calls either: tool_choice "none" sends no tools. Seeds, penalties, reasoning effort, the user and
// parallel_tool_calls have no Converse equivalent and are dropped.
#include <algorithm>

#include "connectors/providers/bedrock_converse/bedrock_converse.h"
#include "connectors/providers/internal/params.h"

namespace statefold::providers::bedrock_converse {
namespace {

using namespace internal;  // NOLINT: the module's own helpers

value tool_json(const protocol::Tool& t) {
  object spec;
  spec["name"] = t.name;
  if (!t.description.empty()) spec["description"] = t.description;
  object schema;
  schema["json"] = t.parameters.empty() ? empty_schema() : parsed(t.parameters);
  spec["inputSchema"] = std::move(schema);
  object tool;
  tool["toolSpec"] = std::move(spec);
  return tool;
}

}  // namespace

base::Result<std::string> BedrockConverse::extra(const protocol::Params& params, bool /*stream*/) const {
  object o;
  if (!params.tools.empty() && params.tool_choice != "none") {
    object config;
    array tools;
    for (const protocol::Tool& t : params.tools) tools.push_back(tool_json(t));
    config["tools"] = std::move(tools);
    const std::string& c = params.tool_choice;
    if (c == "required" || c == "function" || c == "auto") {
      object choice;
      if (c == "function") {
        object tool;
        tool["name"] = params.tool_choice_name;
        choice["tool"] = std::move(tool);
      } else {
        choice[c == "required" ? "any" : "auto"] = object();
      }
      config["toolChoice"] = std::move(choice);
    }
    o["toolConfig"] = std::move(config);
  }
  object inference;
  // Bedrock's models take 0..1, OpenAI's range is 0..2.
  if (params.temperature) inference["temperature"] = std::min(*params.temperature, 1.0);
  if (params.top_p) inference["topP"] = *params.top_p;
  if (!params.stop.empty()) {
    array stop;
    for (const auto& s : params.stop) stop.push_back(value(s));
    inference["stopSequences"] = std::move(stop);
  }
  if (!inference.empty()) o["inferenceConfig"] = std::move(inference);
  if (!params.format.type.empty() && params.format.type != "text") {
    return base::make_error("response_format: JSON output (" + params.format.type + ") is not supported by the " +
                            std::string(name()) + " upstream");
  }
  if (auto passed = pass_through_only(params, {}, name(), o); !passed) return passed.error();
  return canonical_text(o);
}

}  // namespace statefold::providers::bedrock_converse
