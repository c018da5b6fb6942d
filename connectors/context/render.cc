#include "connectors/context/render.h"

#include "engine/base/hex.h"
#include "engine/base/json_writer.h"
#include "engine/base/sha256.h"

namespace statefold::context {
namespace {

// --- JSON text: keys are literals written in a fixed order, through the one writer (base/json_writer.h).

using base::json::key;
using base::json::num;
using base::json::str;

void section(std::string& out, std::string_view name, std::size_t tokens) {
  out += '{';
  key(out, "name");
  str(out, name);
  out += ',';
  key(out, "tokens");
  num(out, tokens);
}

}  // namespace

std::string_view provider_name(Provider provider) {
  switch (provider) {
    case Provider::openai_chat: return "openai_chat";
    case Provider::openai_responses: return "openai_responses";
    case Provider::anthropic: return "anthropic";
    case Provider::echo: return "echo";
    case Provider::bedrock_converse: return "bedrock_converse";
  }
  return "openai_chat";
}

std::optional<Provider> parse_provider(std::string_view name) {
  for (Provider p : kProviders) {
    if (name == provider_name(p)) return p;
  }
  return std::nullopt;
}

std::string provider_names(std::string_view separator) {
  std::string out;
  for (Provider p : kProviders) {
    if (!out.empty()) out += separator;
    out += provider_name(p);
  }
  return out;
}

std::string request_hash(std::string_view body) { return base::to_hex(base::sha256(body)); }

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
      const std::size_t hit = text.find(kCacheControlMarker, pos);
      if (hit == std::string_view::npos) {
        out.append(text.substr(pos));
        return out;
      }
      out.append(text.substr(pos, hit - pos));
      pos = hit + kCacheControlMarker.size();
    }
  };
  std::string prev = strip(previous);
  while (!prev.empty() && (prev.back() == ']' || prev.back() == '}')) prev.pop_back();
  return strip(next).starts_with(prev);
}

}  // namespace statefold::context
