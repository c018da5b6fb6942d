#include <boost/json.hpp>

#include <algorithm>

#include "codec/codec.h"
#include "connectors/gateway/internal/events.h"
#include "connectors/gateway/internal/turn.h"

namespace statefold::gateway::internal {

namespace {

namespace json = boost::json;

// Events with the envelope the API would add, as canonical FlatBuffers.
struct EventBatch {
  append::Events events;
  std::string error;

  void add(const std::string& session, json::object event, std::optional<std::uint64_t> expected_version) {
    if (!error.empty()) return;
    const std::string id = random_hex(16);
    event["event_id"] = id;
    event["session_id"] = session;
    event["occurred_at_us"] = now_us();
    event["source"] = "gateway";
    // Conditional batches: the first event names the version, each later one the event before it, so the batch
    // folds whole or not at all.
    if (expected_version && events.empty()) event["expected_version"] = *expected_version;
    if (expected_version && !events.empty()) event["expected_previous_event_id"] = events.back().first;
    auto bytes = codec::json_to_flatbuffers(json::serialize(event));
    if (!bytes) {
      error = bytes.error().message;
      return;
    }
    events.emplace_back(id, std::move(*bytes));
  }
};

std::string_view part_kind_name(context::PartKind kind) {
  switch (kind) {
    case context::PartKind::text: return "text";
    case context::PartKind::image_url: return "image_url";
    case context::PartKind::file_ref: return "file_ref";
    case context::PartKind::json: return "json";
  }
  return "text";
}

json::object message_event(const protocol::ClientMessage& m) {
  json::object payload{{"role", std::string(context::role_name(m.role))}};
  json::array content;
  for (const auto& part : m.content) {
    json::object p{{"kind", std::string(part_kind_name(part.kind))}, {"text", part.text}};
    if (!part.media_type.empty()) p["media_type"] = part.media_type;
    content.push_back(std::move(p));
  }
  payload["content"] = std::move(content);
  if (!m.tool_calls.empty()) {
    json::array calls;
    for (const auto& c : m.tool_calls) {
      calls.push_back(json::object{{"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
    }
    payload["tool_calls"] = std::move(calls);
  }
  if (!m.tool_call_id.empty()) payload["tool_call_id"] = m.tool_call_id;
  if (!m.name.empty()) payload["name"] = m.name;
  return json::object{{"payload_type", "Message"}, {"payload", std::move(payload)}};
}

json::object reply_event(const protocol::Reply& reply) {
  protocol::ClientMessage m;
  m.role = context::Role::assistant;
  if (!reply.text.empty()) m.content.push_back({context::PartKind::text, reply.text, {}});
  m.tool_calls = reply.tool_calls;
  return message_event(m);
}

json::object receipt_event(const Call& call) {
  json::object payload{{"request_hash", call.request_hash},
                       {"state_version", call.state_version},
                       {"provider", call.provider},
                       {"endpoint", call.endpoint},
                       {"model", call.model},
                       {"usage", json::object{{"input_tokens", call.usage.input_tokens},
                                              {"output_tokens", call.usage.output_tokens},
                                              {"cached_tokens", call.usage.cached_tokens}}},
                       {"latency_ms", std::min<std::int64_t>(call.latency_ms, 0xffffffff)},
                       {"status", call.status},
                       {"render", call.render}};
  if (!call.error.empty()) payload["error"] = call.error;
  return json::object{{"payload_type", "InferenceReceipt"}, {"payload", std::move(payload)}};
}

}  // namespace

base::Result<append::Events> input_events(const std::string& session, std::optional<std::uint64_t> version,
                                          const std::vector<protocol::ClientMessage>& input, const std::string& model,
                                          const std::string& instructions) {
  EventBatch batch;
  const std::uint64_t at = version.value_or(0);
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
    batch.add(session,
              json::object{{"payload_type", "SessionOpened"},
                           {"payload", json::object{{"model", model}, {"system_prompt", system}}}},
              at);
  }
  for (std::size_t i = first; i < input.size(); ++i) batch.add(session, message_event(input[i]), at);
  if (!batch.error.empty()) return base::make_error(base::ErrorCode::invalid_argument, batch.error);
  if (batch.events.empty()) return base::make_error(base::ErrorCode::invalid_argument, "no new input");
  return std::move(batch.events);
}

base::Result<append::Events> outcome_events(const std::string& session, const protocol::Reply* reply,
                                            const Call& call) {
  EventBatch batch;
  batch.add(session, receipt_event(call), std::nullopt);
  if (reply != nullptr) batch.add(session, reply_event(*reply), std::nullopt);
  if (!batch.error.empty()) return base::make_error(base::ErrorCode::internal, batch.error);
  return std::move(batch.events);
}

}  // namespace statefold::gateway::internal
