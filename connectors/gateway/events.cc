#include "connectors/gateway/internal/events.h"

#include <algorithm>

#include "engine/base/sha256.h"

#include "connectors/gateway/internal/turn.h"

namespace statefold::gateway::internal {

namespace {

codec::Role role_of(context::Role role) {
  switch (role) {
    case context::Role::system: return codec::Role::system;
    case context::Role::developer: return codec::Role::developer;
    case context::Role::user: return codec::Role::user;
    case context::Role::assistant: return codec::Role::assistant;
    case context::Role::tool: return codec::Role::tool;
  }
  return codec::Role::user;
}

codec::ContentKind kind_of(context::PartKind kind) {
  switch (kind) {
    case context::PartKind::text: return codec::ContentKind::text;
    case context::PartKind::image_url: return codec::ContentKind::image_url;
    case context::PartKind::file_ref: return codec::ContentKind::file_ref;
    case context::PartKind::json: return codec::ContentKind::json;
  }
  return codec::ContentKind::text;
}


codec::Message reply_message(const protocol::Reply& reply) {
  protocol::ClientMessage m;
  m.role = context::Role::assistant;
  if (!reply.text.empty()) m.content.push_back({context::PartKind::text, reply.text, {}});
  m.tool_calls = reply.tool_calls;
  return message_event(m);
}

codec::InferenceReceipt receipt_of(const Call& call) {
  codec::InferenceReceipt r;
  r.request_hash = call.request_hash;
  r.state_version = call.state_version;
  r.provider = call.provider;
  r.endpoint = call.endpoint;
  r.model = call.model;
  r.usage = codec::Usage{call.usage.input_tokens, call.usage.output_tokens, call.usage.cached_tokens};
  r.latency_ms = static_cast<std::uint32_t>(std::clamp<std::int64_t>(call.latency_ms, 0, 0xffffffff));
  r.status = static_cast<std::uint16_t>(std::clamp(call.status, 0, 0xffff));
  r.render = call.render;
  if (!call.error.empty()) r.error = call.error;
  if (!call.caller.empty()) r.caller = call.caller;
  return r;
}

constexpr std::string_view kSource = "gateway";

std::string id_text(std::string_view key, std::string_view what, std::uint64_t index) {
  return key.empty() ? std::string() : codec::event_id_to_string(turn_event_id(key, what, index));
}

}  // namespace

codec::Message message_event(const protocol::ClientMessage& m) {
  codec::Message out;
  out.role = role_of(m.role);
  auto& content = out.content.emplace();
  for (const auto& part : m.content) {
    codec::ContentPart p;
    p.kind = kind_of(part.kind);
    p.text = part.text;
    if (!part.media_type.empty()) p.media_type = part.media_type;
    content.push_back(std::move(p));
  }
  if (!m.tool_calls.empty()) {
    auto& calls = out.tool_calls.emplace();
    for (const auto& c : m.tool_calls) calls.push_back({c.id, c.name, c.arguments});
  }
  if (!m.tool_call_id.empty()) out.tool_call_id = m.tool_call_id;
  if (!m.name.empty()) out.name = m.name;
  return out;
}

codec::EventId turn_event_id(std::string_view idempotency_key, std::string_view what, std::uint64_t index) {
  base::Sha256 h;
  h.update_framed("statefold.gateway.turn");
  h.update_framed(idempotency_key);
  h.update_framed(what);
  h.update_u64(index);
  const auto digest = h.finish();
  codec::EventId id{};
  std::copy_n(digest.begin(), id.size(), id.begin());
  return id;
}

base::Result<append::Events> input_events(const std::string& session, std::optional<std::uint64_t> version,
                                          const std::vector<protocol::ClientMessage>& input, const std::string& model,
                                          const std::string& instructions, std::string_view idempotency_key,
                                          std::vector<codec::KeyValue> metadata) {
  append::Batch batch(session, std::string(kSource), version.value_or(0));
  std::size_t first = 0;
  if (!version) {
    // A new session: its leading system/developer messages (or the instructions) become its system prompt.
    std::string system = instructions;
    while (first < input.size() &&
           (input[first].role == context::Role::system || input[first].role == context::Role::developer)) {
      if (!system.empty()) system += "\n\n";
      system += input[first].text();
      ++first;
    }
    codec::SessionOpened opened;
    opened.model = model;
    opened.system_prompt = system;
    if (!metadata.empty()) opened.metadata = std::move(metadata);
    if (auto added = batch.add(opened); !added) return added.error();
  }
  for (std::size_t i = first; i < input.size(); ++i) {
    if (auto added = batch.add(message_event(input[i]), id_text(idempotency_key, "input", i - first)); !added) {
      return added.error();
    }
  }
  if (batch.size() == 0) return base::make_error(base::ErrorCode::invalid_argument, "no new input");
  return batch.take();
}

base::Result<append::Events> outcome_events(const std::string& session, const protocol::Reply* reply,
                                            const Call& call) {
  append::Batch batch(session, std::string(kSource), std::nullopt);
  if (auto added = batch.add(receipt_of(call), id_text(call.idempotency_key, "receipt", call.attempt)); !added)
    return base::make_error(base::ErrorCode::internal, added.error().message);
  if (reply != nullptr) {
    if (auto added = batch.add(reply_message(*reply), id_text(call.idempotency_key, "reply", 0)); !added) {
      return base::make_error(base::ErrorCode::internal, added.error().message);
    }
    if (!call.store) {
      if (auto added = batch.add(codec::Custom{std::string(kUnstoredResponse), std::nullopt}); !added) {
        return base::make_error(base::ErrorCode::internal, added.error().message);
      }
    }
  }
  return batch.take();
}

}  // namespace statefold::gateway::internal
