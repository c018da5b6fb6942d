// The Converse body: inferenceConfig (maxTokens merged with the client's sampling parameters), the other extra
// parameters (toolConfig...), the system blocks, then user/assistant messages that alternate, each a list of
// content blocks (text, image, toolUse; tool results travel in user messages as toolResult blocks). The model is
// not in the body: it is in the path (upstream_path).
#include <set>

#include <boost/json.hpp>

#include "connectors/providers/bedrock_converse/bedrock_converse.h"
#include "connectors/providers/internal/render.h"

namespace statefold::providers::bedrock_converse {
namespace {

using context::Item;
using context::Message;
using context::Part;
using context::PartKind;
using context::Role;
using context::ToolCall;
using namespace internal;  // NOLINT: the module's own helpers

// The extra parameters split in two: inferenceConfig's members (without braces) and the other members.
struct Extras {
  boost::json::object inference;
  std::string rest;
  bool tool_config = false;
};

base::Result<Extras> split_extras(std::string_view extra) {
  Extras out;
  if (extra.empty()) return out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(extra, ec);
  if (ec) return base::make_error("context: extra request parameters are not JSON: " + ec.message());
  if (!v.is_object()) return base::make_error("context: extra request parameters must be a JSON object");
  boost::json::object& o = v.get_object();
  for (std::string_view reserved : {"messages", "system"}) {
    if (o.contains(reserved)) {
      return base::make_error("context: extra request parameter \"" + std::string(reserved) +
                              "\" is written by the renderer");
    }
  }
  if (auto it = o.find("inferenceConfig"); it != o.end()) {
    if (!it->value().is_object()) return base::make_error("context: extra inferenceConfig must be a JSON object");
    if (it->value().get_object().contains("maxTokens")) {
      return base::make_error(
          "context: extra request parameter \"inferenceConfig.maxTokens\" is written by the "
          "renderer");
    }
    out.inference = std::move(it->value().get_object());
    o.erase(it);
  }
  out.tool_config = o.contains("toolConfig");
  if (!o.empty()) {
    std::string text;
    if (auto r = base::json::canonical(text, v); !r) {
      return base::make_error("context: extra request parameters: " + r.error().message);
    }
    out.rest = text.substr(1, text.size() - 2);
  }
  return out;
}

// "data:image/png;base64,...." -> ("png", the base64 text); nullopt for any other URL, which Converse cannot take
// (it wants the image's bytes, or an S3 location).
std::optional<std::pair<std::string_view, std::string_view>> data_image(std::string_view url) {
  constexpr std::string_view kPrefix = "data:image/";
  if (url.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view rest = url.substr(kPrefix.size());
  const std::size_t marker = rest.find(";base64,");
  if (marker == std::string_view::npos) return std::nullopt;
  std::string_view format = rest.substr(0, marker);
  if (format == "jpg") format = "jpeg";
  if (format != "png" && format != "jpeg" && format != "gif" && format != "webp") return std::nullopt;
  return std::make_pair(format, rest.substr(marker + 8));
}

void text_block(std::string& out, std::string_view text) {
  out += R"({"text":)";
  str(out, text);
  out += '}';
}

// Writes consecutive same-role messages as one: Converse wants user and assistant to alternate.
class MessageWriter {
 public:
  explicit MessageWriter(std::string& out) : _out(out) {}

  void begin(std::string_view role) {
    if (_open && role == _role) {
      _out += ',';
      return;
    }
    if (_open) _out += "]}";
    if (_count > 0) _out += ',';
    _out += R"({"role":)";
    str(_out, role);
    _out += R"(,"content":[)";
    _role = role;
    _open = true;
    ++_count;
  }
  void finish() {
    if (_open) _out += "]}";
    _open = false;
  }

 private:
  std::string& _out;
  std::string_view _role;
  bool _open = false;
  std::size_t _count = 0;
};

void converse_item(MessageWriter& w, std::string& out, const Item& item, std::string& scratch) {
  const Message& m = *item.message;
  if (m.role == Role::tool) {
    w.begin("user");
    out += R"({"toolResult":{"toolUseId":)";
    str(out, m.tool_call_id);
    out += R"(,"content":[)";
    const std::string_view text = joined_text(m, scratch);
    // A blank text block is refused; an empty result is an empty JSON object.
    if (text.empty()) {
      out += R"({"json":{}})";
    } else {
      text_block(out, text);
    }
    out += "]}}";
    return;
  }
  if (m.role == Role::assistant) {
    const std::string_view text = joined_text(m, scratch);
    if (text.empty() && !item_has_calls(item)) return;
    w.begin("assistant");
    bool first = true;
    if (!text.empty()) {
      text_block(out, text);
      first = false;
    }
    for_each_call(item, [&](const ToolCall& call) {
      if (!first) out += ',';
      first = false;
      out += R"({"toolUse":{"input":)";
      object_arguments(out, call.arguments);
      out += R"(,"name":)";
      str(out, call.name);
      out += R"(,"toolUseId":)";
      str(out, call.id);
      out += "}}";
    });
    return;
  }
  // user, and system/developer messages from the history, which Converse only takes as user turns.
  bool any = false;
  for (const Part& p : m.content) any = any || p.kind == PartKind::image_url || !p.text.empty();
  if (!any) return;  // blank text blocks are refused
  w.begin("user");
  base::json::Comma comma;
  for (const Part& p : m.content) {
    if (p.kind != PartKind::image_url && p.text.empty()) continue;
    comma(out);
    if (p.kind != PartKind::image_url) {
      text_block(out, p.text);
    } else if (auto image = data_image(p.text); image && m.role == Role::user) {
      out += R"({"image":{"format":)";
      str(out, image->first);
      out += R"(,"source":{"bytes":)";
      str(out, image->second);
      out += "}}}";
    } else {
      text_block(out, "[image: " + p.text + "]");
    }
  }
}

// Converse refuses toolUse and toolResult blocks unless toolConfig is defined: when the client sent no tools this
// turn but the history holds calls, the tools named there are declared, with an open schema.
std::string history_tools(const context::Context& ctx) {
  std::vector<std::string_view> names;
  std::set<std::string_view> seen;
  for (const Item& item : ctx.history) {
    for_each_call(item, [&](const ToolCall& call) {
      if (seen.insert(call.name).second) names.push_back(call.name);
    });
  }
  bool results = false;
  for (const Item& item : ctx.history) results = results || item.message->role == Role::tool;
  if (names.empty() && !results) return {};
  std::string out;
  key(out, "toolConfig");
  out += R"({"tools":[)";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += R"({"toolSpec":{"inputSchema":{"json":{"properties":{},"type":"object"}},"name":)";
    str(out, names[i]);
    out += "}}";
  }
  out += "]}";
  return out;
}

}  // namespace

base::Result<std::string> BedrockConverse::render(const context::Context& ctx,
                                                  const context::RenderOptions& options) const {
  auto extras = split_extras(options.extra);
  if (!extras) return extras.error();
  std::string out;
  out.reserve(estimate(ctx));
  // inferenceConfig: maxTokens (the output reserve) among the client's members, keys sorted.
  extras->inference["maxTokens"] = ctx.output_reserve;
  std::string inference;
  if (auto r = base::json::canonical(inference, boost::json::value(std::move(extras->inference))); !r) {
    return base::make_error("context: extra inferenceConfig: " + r.error().message);
  }
  out += '{';
  key(out, "inferenceConfig");
  out += inference;
  append_extras(out, extras->rest);
  if (!extras->tool_config) {
    // Only when tools came with none of the client's (rare: SDK loops resend their tools on every call).
    if (std::string declared = history_tools(ctx); !declared.empty()) {
      out += ',';
      out += declared;
    }
  }
  // The system blocks: stable until the memory or summary changes.
  bool first = true;
  for (std::string_view text :
       {std::string_view(ctx.system_text), std::string_view(ctx.memory_text), std::string_view(ctx.summary_text)}) {
    if (text.empty()) continue;
    out += first ? R"(,"system":[)" : ",";
    first = false;
    text_block(out, text);
  }
  if (!first) out += ']';
  out += ',';
  key(out, "messages");
  out += '[';
  MessageWriter writer(out);
  std::string scratch;
  for (const auto& item : ctx.history) converse_item(writer, out, item, scratch);
  writer.finish();
  out += "]}";
  return out;
}

std::string BedrockConverse::upstream_path(std::string_view model, bool stream) const {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "/model/";
  for (char ch : model) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += stream ? "/converse-stream" : "/converse";
  return out;
}

}  // namespace statefold::providers::bedrock_converse
