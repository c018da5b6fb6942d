// POST /v1/chat/completions: the session comes from X-Session-Id or metadata.session_id. The client sends its new
// messages, or the whole conversation as most clients do: what the session already has is recognised, not recorded
// again (reconcile.h).
#include "connectors/gateway/internal/events.h"
#include "connectors/gateway/internal/turn.h"
#include "engine/base/hex.h"

namespace statefold::gateway::internal {

namespace {

const std::string kRouteChat = "POST /v1/chat/completions";

class ChatFormat final : public Format {
 public:
  ChatFormat(bool include_usage, std::string_view idempotency_key)
      : _id(completion_id(idempotency_key)), _include_usage(include_usage) {}
  void begin(const TurnFacts& facts) override {
    _model = facts.model;
    _created = facts.created_s;
    _writer.emplace(_id, _model, _created, _include_usage);
  }
  std::string body(const protocol::Reply& reply, std::uint64_t) override {
    return protocol::chat_completion_json(reply, _id, _model, _created);
  }
  std::string stream_start() override { return _writer->start(); }
  std::string stream_delta(const protocol::Delta& delta) override { return _writer->delta(delta); }
  std::string stream_finish(const protocol::Reply& reply) override { return _writer->finish(reply); }
  std::string stream_error(std::string_view error_json) override { return "data: " + std::string(error_json) + "\n\n"; }

 private:
  // A keyed turn's id comes from its key, so a replay answers with the same id, as Responses' does.
  static std::string completion_id(std::string_view idempotency_key) {
    if (idempotency_key.empty()) return "chatcmpl-" + base::random_hex(12);
    return "chatcmpl-" + codec::event_id_to_string(turn_event_id(idempotency_key, "reply")).substr(0, 24);
  }
  const std::string _id;
  bool _include_usage;
  std::string _model;
  std::int64_t _created = 0;
  std::optional<protocol::ChatChunkWriter> _writer;
};

}  // namespace

void chat(Core& core, const http::Request& request, auth::Principal caller, Clock::time_point received,
          const http::Respond& respond) {
  const std::string& route = kRouteChat;
  auto parsed = protocol::parse_chat_request(request.body);
  if (!parsed) return respond(openai_error(400, parsed.error().message, "invalid_request_error", route));
  TurnRequest turn;
  turn.received = received;
  turn.caller = std::move(caller);
  turn.route = route;
  turn.session = std::string(request.header("x-session-id").value_or(""));
  if (turn.session.empty()) turn.session = parsed->session_id;
  if (turn.session.empty()) {
    return respond(openai_error(400,
                                "no session: send the X-Session-Id header (or metadata.session_id); statefold keeps "
                                "the conversation in that session and you send only the new messages",
                                "invalid_request_error", route, "missing_session"));
  }
  if (parsed->messages.empty()) {
    return respond(openai_error(400, "messages: send at least the new message", "invalid_request_error", route));
  }
  turn.input = std::move(parsed->messages);
  turn.input_field = "messages";
  turn.reconcile_history = true;
  turn.idempotency_key = std::string(request.header("idempotency-key").value_or(""));
  turn.model = std::move(parsed->model);
  turn.params = std::move(parsed->params);
  turn.stream = parsed->stream;
  ChatFormat format(parsed->include_usage, turn.idempotency_key);
  run_turn(core, turn, format, respond);
}

}  // namespace statefold::gateway::internal
