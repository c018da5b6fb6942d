#include "connectors/providers/echo/echo.h"

#include <algorithm>

#include "connectors/providers/internal/render.h"

namespace statefold::providers::echo {
namespace {

std::string_view last_user_text(const context::Context& ctx, std::string& scratch) {
  for (auto it = ctx.history.rbegin(); it != ctx.history.rend(); ++it) {
    if (it->message->role == context::Role::user) return internal::joined_text(*it->message, scratch);
  }
  return {};
}

std::size_t rendered_messages(const context::Context& ctx) {
  return (ctx.system_text.empty() ? 0 : 1) + (ctx.memory_text.empty() ? 0 : 1) + (ctx.summary_text.empty() ? 0 : 1) +
         ctx.history.size();
}

}  // namespace

std::string echo_reply(const context::Context& ctx) {
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
    out +=
        " (versions " + n(ctx.history.front().message->version) + ".." + n(ctx.history.back().message->version) + ")";
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

base::Result<protocol::Reply> Echo::parse_reply(std::string_view /*body*/) const {
  return base::make_error("echo replies are built by the gateway, not parsed");
}

std::vector<protocol::Delta> Echo::offline_deltas(std::string_view text) const {
  std::vector<protocol::Delta> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start + 1);
    end = end == std::string_view::npos ? text.size() : end;
    protocol::Delta d;
    d.text = std::string(text.substr(start, end - start));
    out.push_back(std::move(d));
    start = end;
  }
  return out;
}

}  // namespace statefold::providers::echo
