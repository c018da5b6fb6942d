// The Messages body: system blocks, then user/assistant turns that alternate (tool results travel in user turns),
// with cache_control breakpoints on the last system block and on the last block of the last two messages.
#include <algorithm>
#include <array>

#include "connectors/context/render.h"
#include "connectors/providers/anthropic/anthropic.h"
#include "connectors/providers/internal/render.h"

namespace statefold::providers::anthropic {
namespace {

using context::Item;
using context::Message;
using context::Part;
using context::PartKind;
using context::Role;
using context::ToolCall;
using namespace internal;  // NOLINT: the module's own helpers

// The marker context::prefix_reused() removes before comparing bodies.
constexpr std::string_view kEphemeral = context::kCacheControlMarker;

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
      object_arguments(out, call.arguments);
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

}  // namespace

base::Result<std::string> Anthropic::render(const context::Context& ctx, const context::RenderOptions& options) const {
  auto extras = extra_members(options.extra, {"model", "max_tokens", "system", "messages"});
  if (!extras) return extras.error();
  std::string out;
  out.reserve(estimate(ctx));
  open_body(out, ctx, "max_tokens");
  append_extras(out, *extras);
  // The system blocks: stable until the memory or summary changes; the last one is a cache breakpoint.
  std::vector<std::string_view> system;
  for (std::string_view text :
       {std::string_view(ctx.system_text), std::string_view(ctx.memory_text), std::string_view(ctx.summary_text)}) {
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

}  // namespace statefold::providers::anthropic
