// POST /v1/responses and GET /v1/responses/{id}: the session comes from previous_response_id, conversation,
// X-Session-Id or metadata.session_id (else a new one). Response ids seal their session and the reply's version
// (internal/ids.h).
#include "connectors/gateway/internal/turn.h"
#include "engine/base/json_writer.h"
#include "engine/fold/read.h"

#include <algorithm>
#include <variant>

namespace statefold::gateway::internal {

namespace {

const std::string kRouteResponses = "POST /v1/responses";
const std::string kRouteGetResponse = "GET /v1/responses/{id}";

class ResponsesFormat final : public Format {
 public:
  ResponsesFormat(const IdSeal& ids, protocol::ResponseMeta meta) : _ids(ids), _meta(std::move(meta)) {}
  void begin(const TurnFacts& facts) override {
    // The reply will follow the input and the receipt: a stream announces its id before the upstream answers.
    _session = facts.session;
    _meta.id = _ids.response_id(facts.session, facts.version + 2);
    _meta.model = facts.model;
    _meta.created_at = facts.created_s;
    _writer.emplace(_meta);
  }
  bool needs_reply_version() const override { return true; }
  std::string body(const protocol::Reply& reply, std::uint64_t reply_version) override {
    if (reply_version != 0) _meta.id = _ids.response_id(_session, reply_version);
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
  const IdSeal& _ids;
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
    auto at = core.ids.open_response(turn.previous_response_id);
    if (!at || !turn.caller.owns(at->session)) {
      return respond(openai_error(404, "previous_response_id: no response " + turn.previous_response_id,
                                  "invalid_request_error", route));
    }
    turn.session = std::move(at->session);
    turn.previous_version = at->version;
  } else if (!parsed->conversation.empty()) {
    // A conversation made with POST /v1/conversations, or an existing session named by its id: either must exist.
    turn.session = conversation_session(core, turn.caller, parsed->conversation).value_or(parsed->conversation);
    if (!turn.caller.owns(turn.session)) {
      return respond(openai_error(404, "conversation: no conversation " + parsed->conversation,
                                  "invalid_request_error", route));
    }
    turn.missing_session = "conversation: no conversation " + parsed->conversation;
  } else if (auto header = request.header("x-session-id")) {
    turn.session = std::string(*header);
    // A client of the stateless Responses loop resends everything each turn (input += response.output): as for
    // chat, what the session already has is recognised, not recorded again.
    turn.reconcile_history = true;
  } else if (!parsed->session_id.empty()) {
    turn.session = parsed->session_id;
    turn.reconcile_history = true;
  } else {
    turn.session = core.new_session_id(turn.caller.session_prefix() + "resp-");
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
  ResponsesFormat format(core.ids, std::move(meta));
  run_turn(core, turn, format, respond);
}

AfterResponse after_response(const fold::Reader& reader, const std::string& session, std::uint64_t version) {
  AfterResponse out;
  std::vector<std::uint64_t> replies;  // later assistant replies, less those withdrawn since
  auto read = fold::visit_history(reader, session, {.from = version + 1}, [&](const fold::HistoryRecord& r) {
    if (const auto* message = r.event.payload_as_Message(); message && message->role() == schema::Role::assistant) {
      replies.push_back(r.version());
    } else if (const auto* amended = r.event.payload_as_SessionAmended()) {
      for (const std::uint64_t v : codec::withdraw_versions(*amended)) {
        out.withdrawn = out.withdrawn || v == version;
        std::erase(replies, v);
      }
    }
    return true;
  });
  if (!read) return {};
  out.later_reply = !replies.empty();
  return out;
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

base::Result<TurnInputs> turn_inputs(const fold::Reader& reader, const std::string& session,
                                     std::uint64_t reply_version) {
  TurnInputs out;
  auto reply = fold::visit_history(reader, session, {.from = reply_version, .through = reply_version},
                                   [&](const fold::HistoryRecord& r) {
                                     const auto* m = r.event.payload_as_Message();
                                     out.reply = m != nullptr && m->role() == schema::Role::assistant;
                                     return false;
                                   });
  if (!reply) return reply.error();
  if (!out.reply) return out;
  // Back from the reply, a page at a time: past its own receipt, the turn's input messages, up to the previous
  // turn's end (a reply, or the receipt of a turn that failed) or the session's opening.
  constexpr std::uint64_t kPage = 256;
  std::vector<context::Message> backwards;
  std::uint64_t through = reply_version - 1;
  bool done = false;
  while (!done && through >= 1) {
    const std::uint64_t from = through > kPage ? through - kPage + 1 : 1;
    std::vector<std::pair<std::uint64_t, std::variant<std::monostate, context::Message, bool>>> page;
    auto read = fold::visit_history(reader, session, {.from = from, .through = through},
                                    [&](const fold::HistoryRecord& r) {
                                      const auto type = r.event.payload_type();
                                      if (const auto* m = r.event.payload_as_Message()) {
                                        page.emplace_back(r.version(), materialise::stored_message(r.version(), *m));
                                      } else if (type == schema::Payload::InferenceReceipt ||
                                                 type == schema::Payload::SessionOpened) {
                                        page.emplace_back(r.version(), true);  // a boundary
                                      }
                                      return true;
                                    });
    if (!read) return read.error();
    for (auto it = page.rbegin(); it != page.rend() && !done; ++it) {
      if (std::holds_alternative<bool>(it->second)) {
        // The reply's own receipt comes right before it; any other ends the input.
        done = it->first != reply_version - 1;
      } else if (auto& m = std::get<context::Message>(it->second); m.role == context::Role::assistant) {
        done = true;
      } else {
        backwards.push_back(std::move(m));
      }
    }
    through = from - 1;
  }
  out.messages.assign(std::make_move_iterator(backwards.rbegin()), std::make_move_iterator(backwards.rend()));
  return out;
}

http::Response delete_response(Core& core, const auth::Principal& caller, const std::string& id) {
  const std::string route = "DELETE /v1/responses/{id}";
  auto at = core.ids.open_response(id);
  if (!at || at->version == 0 || !caller.owns(at->session)) {
    return openai_error(404, "no response " + id, "invalid_request_error", route);
  }
  const auto& session = at->session;
  if (auto refused = core.refuse_elsewhere(session, route)) return std::move(*refused);
  // Not inside a turn of the session: the withdrawal lands between turns.
  auto lock = core.turns.take(session, kChangePatience);
  if (!lock) {
    return openai_error(409, "session " + session + " has a turn in progress; retry when it has answered", "conflict",
                        route, "turn_in_progress");
  }
  core.events.settle(session, kSettlePatience);
  std::vector<std::uint64_t> versions;
  {
    const auto snapshot = core.state.snapshot();
    auto inputs = turn_inputs(*snapshot, session, at->version);
    if (!inputs) return openai_error(500, inputs.error().message, "server_error", route);
    if (!inputs->reply || unstored_response(*snapshot, session, at->version) ||
        after_response(*snapshot, session, at->version).withdrawn) {
      return openai_error(404, "no response " + id, "invalid_request_error", route);
    }
    for (const auto& m : inputs->messages) versions.push_back(m.version);
    versions.push_back(at->version);
  }
  append::Batch batch(session, "gateway", std::nullopt);
  codec::SessionAmended amended;
  amended.withdraw_versions = std::move(versions);
  amended.reason = "response deleted";
  if (auto added = batch.add(amended); !added) return openai_error(500, added.error().message, "server_error", route);
  auto result = append_and_wait(core.events, session, batch.take());
  if (!result.all_accepted()) return append_failure(result, route);
  std::string body = R"({"id":)";
  base::append_json_string(body, id);
  body += R"(,"object":"response","deleted":true})";
  return http::json_response(200, std::move(body), route);
}

namespace {

struct FailedTurn {
  std::string model;
  std::int64_t created_s = 0;
  std::string code;
  std::string message;
};

// The failed turn whose reply would have had `version`: a receipt at version - 1, rendered from version - 2, that
// reports a failure (the version itself then holds nothing, or a later turn's input).
std::optional<FailedTurn> failed_response(const fold::Reader& reader, const std::string& session,
                                          std::uint64_t version) {
  if (version < 3) return std::nullopt;
  std::optional<FailedTurn> failed;
  auto read = fold::visit_history(reader, session, {.from = version - 1, .through = version - 1},
                                  [&](const fold::HistoryRecord& r) {
                                    const auto* receipt = r.event.payload_as_InferenceReceipt();
                                    if (receipt == nullptr || receipt->state_version() != version - 2) return false;
                                    const bool ok = receipt->status() >= 200 && receipt->status() < 300 &&
                                                    (receipt->error() == nullptr || receipt->error()->size() == 0);
                                    if (ok) return false;
                                    FailedTurn f;
                                    if (receipt->model() != nullptr) f.model = receipt->model()->str();
                                    f.created_s = r.event.occurred_at_us() / 1000000;
                                    f.code = receipt->status() == 429 ? "rate_limit_exceeded" : "server_error";
                                    f.message = receipt->error() != nullptr && receipt->error()->size() > 0
                                                    ? receipt->error()->str()
                                                    : "the upstream answered " + std::to_string(receipt->status());
                                    failed = std::move(f);
                                    return false;
                                  });
  if (!read) return std::nullopt;
  return failed;
}

}  // namespace

http::Response get_response(Core& core, const auth::Principal& caller, const std::string& id) {
  const std::string& route = kRouteGetResponse;
  auto at = core.ids.open_response(id);
  // Another tenant's response does not exist for the caller.
  if (!at || at->version == 0 || !caller.owns(at->session)) {
    return openai_error(404, "no response " + id, "invalid_request_error", route);
  }
  const auto& session = at->session;
  const auto version = at->version;
  if (auto refused = core.refuse_elsewhere(session, route)) return std::move(*refused);
  const auto snapshot = core.state.snapshot();
  auto stored = read_reply(*snapshot, session, version);
  if (!stored) return openai_error(500, stored.error().message, "server_error", route);
  if (!*stored) {
    // A turn that failed after its stream announced this id: its receipt is right before where the reply would
    // have been. OpenAI keeps a failed response retrievable, with status "failed" and the error.
    if (auto failed = failed_response(*snapshot, session, version)) {
      protocol::ResponseMeta meta;
      meta.id = id;
      meta.model = failed->model;
      meta.created_at = failed->created_s;
      meta.status = "failed";
      meta.error_code = failed->code;
      meta.error_message = failed->message;
      auto response = http::json_response(200, protocol::response_json(protocol::Reply{}, meta), route);
      response.headers.emplace_back("x-session-id", session);
      return response;
    }
    return openai_error(404, "no response " + id, "invalid_request_error", route);
  }
  // store: false: the turn is on the log, but not a response to read back.
  if (unstored_response(*snapshot, session, version)) {
    return openai_error(404, "no response " + id + " (it was created with store: false)", "invalid_request_error",
                        route);
  }
  if (after_response(*snapshot, session, version).withdrawn) {
    return openai_error(404, "no response " + id + " (it was deleted)", "invalid_request_error", route);
  }
  protocol::ResponseMeta meta;
  meta.id = id;
  meta.model = (*stored)->model;
  meta.created_at = (*stored)->created_s;
  auto response = http::json_response(200, protocol::response_json((*stored)->reply, meta), route);
  // The caller's own session, as the turn's answer named it (response ids do not show it).
  response.headers.emplace_back("x-session-id", session);
  return response;
}

}  // namespace statefold::gateway::internal
