// POST /v1/responses and GET /v1/responses/{id}: the session comes from previous_response_id, conversation,
// X-Session-Id or metadata.session_id (else a new one). Response ids carry their session and the reply's version.
#include "connectors/gateway/internal/turn.h"
#include "engine/base/hex.h"
#include "engine/fold/read.h"

namespace statefold::gateway::internal {

namespace {

const std::string kRouteResponses = "POST /v1/responses";
const std::string kRouteGetResponse = "GET /v1/responses/{id}";

// "resp_" + hex(session id) + "_" + version: no lookup table is needed.
std::string response_id(std::string_view session, std::uint64_t version) {
  return "resp_" + base::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(session.data()), session.size())) +
         "_" + std::to_string(version);
}

std::optional<std::pair<std::string, std::uint64_t>> parse_response_id(std::string_view id) {
  if (!id.starts_with("resp_")) return std::nullopt;
  id.remove_prefix(5);
  const auto sep = id.rfind('_');
  if (sep == std::string_view::npos || sep % 2 != 0 || sep == 0) return std::nullopt;
  std::string session;
  for (std::size_t i = 0; i < sep; i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = nibble(id[i]);
    const int lo = nibble(id[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    session.push_back(static_cast<char>(hi << 4 | lo));
  }
  std::uint64_t version = 0;
  const std::string_view digits = id.substr(sep + 1);
  if (digits.empty()) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    version = version * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return std::make_pair(std::move(session), version);
}

class ResponsesFormat final : public Format {
 public:
  explicit ResponsesFormat(protocol::ResponseMeta meta) : _meta(std::move(meta)) {}
  void begin(const TurnFacts& facts) override {
    // The reply will follow the input and the receipt: a stream announces its id before the upstream answers.
    _session = facts.session;
    _meta.id = response_id(facts.session, facts.version + 2);
    _meta.model = facts.model;
    _meta.created_at = facts.created_s;
    _writer.emplace(_meta);
  }
  bool needs_reply_version() const override { return true; }
  std::string body(const protocol::Reply& reply, std::uint64_t reply_version) override {
    if (reply_version != 0) _meta.id = response_id(_session, reply_version);
    return protocol::response_json(reply, _meta);
  }
  std::string stream_start() override { return _writer->start(); }
  std::string stream_delta(const protocol::Delta& delta) override { return _writer->delta(delta); }
  std::string stream_finish(const protocol::Reply& reply) override { return _writer->finish(reply); }
  std::string stream_error(std::string_view error_json) override {
    return "event: error\ndata: " + std::string(error_json) + "\n\n";
  }
  std::string stream_failed(const protocol::Reply& partial, std::string_view code, std::string_view message) override {
    return _writer->fail(partial, code, message);
  }

 private:
  protocol::ResponseMeta _meta;
  std::string _session;
  std::optional<protocol::ResponseEventWriter> _writer;
};

}  // namespace

void responses(Core& core, const http::Request& request, auth::Principal caller, Clock::time_point received,
               const http::Respond& respond) {
  const std::string& route = kRouteResponses;
  auto parsed = protocol::parse_responses_request(request.body);
  if (!parsed) return respond(openai_error(400, parsed.error().message, "invalid_request_error", route));
  TurnRequest turn;
  turn.received = received;
  turn.route = route;
  turn.caller = std::move(caller);
  turn.previous_response_id = parsed->previous_response_id;
  if (!turn.previous_response_id.empty()) {
    auto at = parse_response_id(turn.previous_response_id);
    if (!at || !turn.caller.owns(at->first)) {
      return respond(openai_error(404, "previous_response_id: no response " + turn.previous_response_id,
                                  "invalid_request_error", route));
    }
    turn.session = std::move(at->first);
    turn.previous_version = at->second;
  } else if (!parsed->conversation.empty()) {
    turn.session = parsed->conversation;
  } else if (auto header = request.header("x-session-id")) {
    turn.session = std::string(*header);
  } else if (!parsed->session_id.empty()) {
    turn.session = parsed->session_id;
  } else {
    turn.session = turn.caller.session_prefix() + "resp-" + random_hex(12);
  }
  if (parsed->input.empty())
    return respond(openai_error(400, "input: send the new input", "invalid_request_error", route));
  turn.input = std::move(parsed->input);
  turn.input_field = "input";
  turn.model = parsed->model;
  turn.model_from_session = true;
  turn.params = parsed->params;
  turn.stream = parsed->stream;
  turn.instructions = parsed->instructions;
  turn.store = parsed->store;
  turn.truncation_disabled = parsed->truncation == "disabled";
  turn.idempotency_key = std::string(request.header("idempotency-key").value_or(""));
  protocol::ResponseMeta meta;
  meta.previous_response_id = parsed->previous_response_id;
  meta.conversation = parsed->conversation;
  meta.instructions = parsed->instructions;
  meta.store = parsed->store;
  meta.truncation = parsed->truncation;
  meta.params = parsed->params;
  ResponsesFormat format(std::move(meta));
  run_turn(core, turn, format, respond);
}

bool unstored_response(const fold::Reader& reader, const std::string& session, std::uint64_t version) {
  bool unstored = false;
  auto read = fold::visit_history(reader, session, {.from = version + 1, .through = version + 1},
                                  [&](const fold::HistoryRecord& r) {
                                    const auto* custom = r.event.payload_as_Custom();
                                    unstored = custom != nullptr && custom->type_name() != nullptr &&
                                               custom->type_name()->string_view() == kUnstoredResponse;
                                    return false;
                                  });
  return read && unstored;
}

base::Result<std::optional<StoredReply>> read_reply(const fold::Reader& reader, const std::string& session,
                                                    std::uint64_t version) {
  if (version == 0) return std::optional<StoredReply>();
  StoredReply stored;
  bool found = false;
  // The receipt recorded right before the reply has the model and usage.
  auto read = fold::visit_history(
      reader, session, {.from = version - 1, .through = version}, [&](const fold::HistoryRecord& r) {
        if (r.version() == version - 1) {
          if (const auto* receipt = r.event.payload_as_InferenceReceipt()) {
            if (receipt->model() != nullptr) stored.model = receipt->model()->str();
            if (const auto* usage = receipt->usage()) {
              stored.reply.usage = {usage->input_tokens(), usage->output_tokens(), usage->cached_tokens()};
            }
          }
          return true;
        }
        const auto* message = r.event.payload_as_Message();
        if (message == nullptr || message->role() != schema::Role::assistant) return false;
        found = true;
        if (message->content() != nullptr) {
          for (const auto* part : *message->content()) {
            if (part->text() != nullptr) stored.reply.text += part->text()->str();
          }
        }
        if (message->tool_calls() != nullptr) {
          for (const auto* c : *message->tool_calls()) {
            stored.reply.tool_calls.push_back(
                {c->id()->str(), c->name()->str(), c->arguments() ? c->arguments()->str() : ""});
          }
        }
        stored.created_s = r.event.occurred_at_us() / 1000000;
        return false;
      });
  if (!read) return read.error();
  if (!found) return std::optional<StoredReply>();
  stored.reply.finish_reason = stored.reply.tool_calls.empty() ? "stop" : "tool_calls";
  stored.reply.model = stored.model;
  return std::optional<StoredReply>(std::move(stored));
}

http::Response get_response(Core& core, const auth::Principal& caller, const std::string& id) {
  const std::string& route = kRouteGetResponse;
  auto at = parse_response_id(id);
  // Another tenant's response does not exist for the caller.
  if (!at || at->second == 0 || !caller.owns(at->first)) {
    return openai_error(404, "no response " + id, "invalid_request_error", route);
  }
  const auto& [session, version] = *at;
  const auto snapshot = core.state.snapshot();
  auto stored = read_reply(*snapshot, session, version);
  if (!stored) return openai_error(500, stored.error().message, "server_error", route);
  if (!*stored) return openai_error(404, "no response " + id, "invalid_request_error", route);
  // store: false: the turn is on the log, but not a response to read back.
  if (unstored_response(*snapshot, session, version)) {
    return openai_error(404, "no response " + id + " (it was created with store: false)", "invalid_request_error",
                        route);
  }
  protocol::ResponseMeta meta;
  meta.id = id;
  meta.model = (*stored)->model;
  meta.created_at = (*stored)->created_s;
  return http::json_response(200, protocol::response_json((*stored)->reply, meta), route);
}

}  // namespace statefold::gateway::internal
