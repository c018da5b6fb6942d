// Private to the gateway: the one turn pipeline that chat completions and Responses (and the endpoints to come)
// share, and the pieces it is made of. An endpoint parses its request into a TurnRequest and says how its answer
// is written (Format); run_turn() does the rest:
//
//   ownership -> the session's turn lock -> one read of the session -> route and plan -> input checked against the
//   state, sent to the log and rendered while Kafka takes it -> upstream -> input confirmed -> reply and receipt
//   recorded -> answer (whole or streamed).
//
// Thread-safety: a Core is shared by every worker; run_turn() runs on one worker per turn.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "connectors/gateway/gateway.h"
#include "connectors/gateway/internal/ids.h"
#include "connectors/gateway/internal/turn_locks.h"
#include "connectors/gateway/internal/workers.h"
#include "connectors/materialise/materialise.h"
#include "connectors/protocol/protocol.h"
#include "connectors/providers/provider.h"
#include "connectors/tokenizer/tokenizer.h"
#include "connectors/upstream/upstream.h"
#include "engine/auth/auth.h"
#include "engine/fold/fold.h"

namespace statefold::gateway::internal {

using Clock = std::chrono::steady_clock;

// How long a read waits for a turn of the session that has answered to have its reply and receipt folded.
inline constexpr std::chrono::seconds kSettlePatience{2};
// How long a change that is not a turn (a conversation's, a response's deletion) waits for a turn in progress.
inline constexpr std::chrono::milliseconds kChangePatience{2000};

std::int64_t now_us();

// An error in OpenAI's shape. Every gateway error tells OpenAI's SDKs not to retry by themselves (x-should-retry):
// the gateway already retried the upstream, and a turn's input may be on the log, so a blind retry would record
// it twice. The one exception is the 503 refusal of a session not folded here yet (Core::refuse_elsewhere, by
// runtime::refuse_unless_owned), which does nothing and asks for the retry.
http::Response openai_error(int status, std::string_view message, std::string_view type, const std::string& route,
                            std::string_view code = {});

// Where a turn's time went, as a Server-Timing header, in milliseconds, from the request reaching the gateway:
// start: waiting for a worker, parsing, the session's lock, its read, routing; input: appended and folded (for a
// pipelined input, what was left to wait for after the upstream call); render: materialised and rendered (and the
// input sent); upstream: the model's call; record: reply and receipt appended (and folded, when the answer needs it).
struct Timing {
  Clock::time_point start = Clock::now();
  std::vector<std::pair<const char*, Clock::time_point>> marks;
  void mark(const char* phase) { marks.emplace_back(phase, Clock::now()); }
  std::chrono::nanoseconds phase(std::string_view name) const;
  std::string header() const;
};

// What a turn sent and got, for the receipt.
struct Call {
  std::string request_hash;
  std::uint64_t state_version = 0;
  std::string provider;
  std::string endpoint;
  std::string model;
  std::string render;
  protocol::Usage usage;
  std::int64_t latency_ms = 0;
  int status = 0;
  bool timed_out = false;  // no answer in time (504 rather than 502)
  bool client_gone = false;  // the client closed the stream before the reply was complete
  std::string error;
  bool store = true;  // false: Responses' store: false, recorded with the reply (see kUnstoredResponse)
  std::string caller;  // the API key's name, for usage and budgets
  // The client's Idempotency-Key: the reply's event id comes from it, and the receipt's from it and the attempt
  // (a retry after a failed attempt records a receipt of its own).
  std::string idempotency_key;
  std::uint64_t attempt = 0;
};

// A request rendered for an endpoint, ready to send.
struct Prepared {
  const upstream::Endpoint* endpoint = nullptr;
  context::Provider provider = context::Provider::echo;
  materialise::RenderSpec spec;
  std::string body;
  std::string hash;
  std::string echo_text;  // an offline provider's reply (echo)
  std::size_t input_tokens = 0;
  context::Cut cut;  // what of the history the budget left out
};

// A turn as its endpoint parsed it.
struct TurnRequest {
  Clock::time_point received = Clock::now();  // when the request reached the gateway
  // Who asks: the session must be in its tenant's namespace, the routes follow its tenant, and its concurrent-turn
  // slot is held as long as the turn.
  auth::Principal caller;
  std::string route;
  std::string session;
  std::vector<protocol::ClientMessage> input;
  std::string input_field;          // names the input in errors: "messages", "input"
  // Chat: the client may resend the conversation; what the session already has is not recorded again.
  bool reconcile_history = false;
  // The Idempotency-Key header: a turn already answered under it is answered again from the log, without calling
  // the upstream; one in progress is waited for.
  std::string idempotency_key;
  std::string model;                // as requested; "" with model_from_session: the session's own
  bool model_from_session = false;  // Responses: without a model, the session keeps the one it has
  protocol::Params params;
  bool stream = false;
  // Responses: a new session takes them as its system prompt; a later turn's apply to that turn only.
  std::string instructions;
  // Responses' previous_response_id: the turn continues after that reply, which must be the session's latest.
  std::string previous_response_id;
  std::uint64_t previous_version = 0;
  bool store = true;  // Responses' `store`: false keeps the turn on the log but not retrievable by its response id
  // When set, the session must exist (and not be closed): else the turn is refused with 404 and this message
  // (Responses' `conversation` names an existing conversation).
  std::string missing_session;
  // Responses' `truncation`: "disabled" refuses a turn whose context would have to leave history out (400
  // context_length_exceeded) instead of cutting it; chat turns always cut ("auto").
  bool truncation_disabled = false;
};

// The facts of a turn an answer is written from, once its request is rendered.
struct TurnFacts {
  std::string session;
  std::uint64_t version = 0;  // the state the request was rendered from (the input's last version)
  std::string model;
  std::int64_t created_s = 0;
  std::size_t cut_messages = 0;  // history messages the context left out (Responses: truncation "auto")
};

// How an endpoint writes its answer. One per turn.
class Format {
 public:
  virtual ~Format() = default;
  virtual void begin(const TurnFacts& facts) = 0;
  // Whether the answer needs the reply's folded version (it is then recorded before the answer goes out);
  // otherwise the answer goes out once Kafka has the reply and receipt.
  virtual bool needs_reply_version() const { return false; }
  virtual std::string body(const protocol::Reply& reply, std::uint64_t reply_version) = 0;  // 200, whole
  virtual std::string stream_start() = 0;
  virtual std::string stream_delta(const protocol::Delta& delta) = 0;
  virtual std::string stream_finish(const protocol::Reply& reply) = 0;
  // A frame carrying an error after the stream started (`error_json` is an OpenAI error object).
  virtual std::string stream_error(std::string_view error_json) = 0;
  // The upstream failed after the stream started, `partial` being what was streamed: the API's own end of a failed
  // stream (Responses: response.failed with the error; chat: an error frame). `code`: server_error or
  // rate_limit_exceeded.
  virtual std::string stream_failed(const protocol::Reply& partial, std::string_view code, std::string_view message) {
    (void)partial;
    return stream_error(protocol::openai_error_json(message, "server_error", code));
  }
};

// The input of a turn on an existing session, sent and not yet folded: the turn renders and calls the upstream
// meanwhile, from the session as the input will make it, and checks the input's outcome before recording more.
struct InFlight {
  std::future<append::Outcome> result;
  std::uint64_t base_version = 0;  // the session before the input
  std::uint64_t version = 0;       // after it, as predicted
};

// What every turn shares: the gateway's ports, the upstream client, the sessions' cached contexts, turn locks and
// the token margins calibrated from receipts.
struct Core {
  Core(Options o, const StateSource& s, append::Sink& e);

  Options options;
  const StateSource& state;
  append::Sink& events;
  upstream::Client client;
  materialise::StateCache cache;
  IdSeal ids;  // response, conversation and item ids
  TurnLocks turns;
  // Per endpoint of a provider without a public tokenizer: the margin on o200k counts, corrected by the input tokens
  // each receipt reports. A request is rendered with the margin of its time, which its receipt records.
  std::mutex margins_mutex;
  std::map<std::string, tokenizer::MarginCalibration> margins;

  // 421 or 503 when this instance does not fold the session; nullopt when it does.
  std::optional<http::Response> refuse_elsewhere(const std::string& session, const std::string& route) const;
  // A new session's id: `prefix` and random hex, on a partition this instance folds when it folds any (several
  // instances share the topic: the session is then served here, not forwarded).
  std::string new_session_id(std::string_view prefix) const;
  double margin_for(const upstream::Endpoint& endpoint, context::Provider provider);
  void calibrate(const Prepared& p, const protocol::Usage& usage);
  void report(const Call& call, int status, const Timing& timing) const;

  // What decides the request besides the session, checked before anything is recorded: a parameter the
  // endpoint's provider cannot honour is refused while the session is still untouched.
  std::variant<materialise::RenderSpec, http::Response> plan(const upstream::Endpoint& endpoint,
                                                             const std::string& model, const TurnRequest& turn,
                                                             bool existing_session);

  // A new session: its opening and input appended, waiting for the fold. The version reached, or the refusal.
  std::variant<std::uint64_t, http::Response> record_new_session(const TurnRequest& turn, const std::string& model);
  // An existing session at `header`: in one pass over its cached state, the input is checked (tool results,
  // previous_response_id), sent (not waited for: `sent`), and the request rendered from the state it will make.
  // A refusal before anything was sent leaves `sent` empty.
  std::variant<Prepared, http::Response> send_and_prepare(const fold::Reader& snapshot,
                                                          const state::SessionHeaderT& header, const TurnRequest& turn,
                                                          const upstream::Endpoint& endpoint,
                                                          const materialise::RenderSpec& spec,
                                                          std::optional<InFlight>& sent);
  // A fork of the turn's session at its previous_version, folded: the new session's id, or the answer that refuses
  // the turn (its partition is elsewhere, the fork cannot be planned or appended).
  std::variant<std::string, http::Response> branch(const TurnRequest& turn);
  // The pipelined input's outcome: the version predicted, or the answer that refuses the turn.
  std::variant<std::uint64_t, http::Response> confirm_input(const std::string& session, InFlight& sent,
                                                            const std::string& route);
  // Renders the session at `version` for the endpoint.
  std::variant<Prepared, http::Response> prepare(const fold::Reader& snapshot, const std::string& session,
                                                 std::uint64_t version, const upstream::Endpoint& endpoint,
                                                 const materialise::RenderSpec& spec, const std::string& route);

  // What record_outcome() achieved.
  struct Recorded {
    bool on_log = false;             // Kafka has the receipt and the reply
    std::uint64_t reply_version = 0;  // when waited for and folded
    std::string error;               // why they are not on the log
  };
  // Appends the receipt, then the reply (if any), in order on the idempotent producer: should this process die
  // between the two sends, the call still has its receipt. With `folded`, waits until both are folded (for the
  // reply's version); otherwise returns once Kafka has them, and `keep` (the session's turn) is held until they are
  // folded, so the session's next turn sees them. Reads of the session settle on them either way. While Kafka is
  // unavailable the same events are sent again (the fold drops what already arrived) for up to
  // options.record_patience: a reply the client is shown must be in its session.
  Recorded record_outcome(const std::string& session, const protocol::Reply* reply, const Call& call, bool folded,
                          std::shared_ptr<TurnLocks::Held> keep = nullptr);
  // The input is on the log but no request could be made of it: a failed receipt says so.
  void record_unrendered(const std::string& session, std::uint64_t version, const materialise::RenderSpec& spec,
                         const upstream::Endpoint& endpoint, const http::Response& refusal, const std::string& caller);

  // Calls the upstream (or answers as echo) without streaming.
  std::optional<protocol::Reply> complete(const Prepared& p, Call& call);
  // Streams the upstream's reply through `on_delta` as it arrives; the assembled reply at the end.
  std::optional<protocol::Reply> complete_streaming(const Prepared& p, Call& call,
                                                    const std::function<bool(const protocol::Delta&)>& on_delta);

  Workers workers;  // last: its threads stop before the rest goes
};

// The Custom event type that follows a reply the client asked not to store (Responses `store: false`): the turn
// stays on the log, as every call does, but its response cannot be retrieved or continued from by id.
inline constexpr std::string_view kUnstoredResponse = "statefold.gateway.response_unstored";

// Whether the reply at `version` of `session` was recorded with store: false (the event after it says so).
bool unstored_response(const fold::Reader& reader, const std::string& session, std::uint64_t version);
// What followed the message at `version`, from one read of the history after it: whether a later SessionAmended
// withdrew it (a deleted response or conversation item), and whether an assistant reply that is still there came
// after it (previous_response_id then names an older response).
struct AfterResponse {
  bool withdrawn = false;
  bool later_reply = false;
};
AfterResponse after_response(const fold::Reader& reader, const std::string& session, std::uint64_t version);

// An assistant reply as recorded: its text and tool calls at `version`, the model and usage from the receipt right
// before it. nullopt when `version` is not an assistant message.
struct StoredReply {
  protocol::Reply reply;
  std::string model;
  std::int64_t created_s = 0;
};
base::Result<std::optional<StoredReply>> read_reply(const fold::Reader& reader, const std::string& session,
                                                    std::uint64_t version);

// Sends events and waits until they are folded.
append::Outcome append_and_wait(append::Sink& sink, const std::string& session, append::Events events);
// A failed append (unavailable, timed out, rejected), as the client sees it.
http::Response append_failure(const append::Outcome& result, const std::string& route);

// The upstream's failure as the client sees it (its status, or 502/504 without one).
http::Response upstream_failure(const Call& call, const std::string& route);

// The shared skeleton of a turn (see the top of this file). Answers through `respond` exactly once.
void run_turn(Core& core, const TurnRequest& turn, Format& format, const http::Respond& respond);

// Endpoints.
void chat(Core& core, const http::Request& request, auth::Principal caller, Clock::time_point received,
          const http::Respond& respond);
void responses(Core& core, const http::Request& request, auth::Principal caller, Clock::time_point received,
               const http::Respond& respond);
http::Response get_response(Core& core, const auth::Principal& caller, const std::string& id);
// The input of the turn whose reply is at `reply_version`: the messages between the previous turn's end (a reply,
// a failed turn's receipt, the opening) and the reply's receipt. `reply` is false when `reply_version` is not an
// assistant reply.
struct TurnInputs {
  bool reply = false;
  std::vector<context::Message> messages;
};
base::Result<TurnInputs> turn_inputs(const fold::Reader& reader, const std::string& session,
                                     std::uint64_t reply_version);
// DELETE /v1/responses/{id}: the response's turn (its input and its output) leaves the session's context.
http::Response delete_response(Core& core, const auth::Principal& caller, const std::string& id);
// GET /v1/responses/{id}/input_items: the items the response's turn sent.
http::Response response_input_items(Core& core, const http::Request& request, const auth::Principal& caller,
                                    const std::string& id);

// The Conversations API (conversations.cc). conversations_route: whether a path is one of its routes.
bool conversations_route(std::string_view raw_path);
void conversations(Core& core, const http::Request& request, const auth::Principal& caller,
                   const http::Respond& respond);
// The session of a conversation id the caller may use; nullopt when `conversation` is not one.
std::optional<std::string> conversation_session(const Core& core, const auth::Principal& caller,
                                                std::string_view conversation);

// 429 (insufficient_quota, Retry-After: when the period renews) when the caller's key has a token budget and the
// receipts of its key in the current period have used it up; nullopt otherwise.
std::optional<http::Response> refuse_over_budget(const Core& core, const auth::Principal& caller,
                                                 const std::string& route);

// The 404 for a session outside the caller's tenant, as for one that does not exist.
http::Response not_in_namespace(const auth::Principal& caller, const std::string& session, const std::string& route);

// GET /v1/models, GET /v1/models/{model} (models.cc): what the caller's routes reach.
http::Response list_models(const Core& core, const http::Request& request, const auth::Principal& caller);
http::Response get_model(const Core& core, const http::Request& request, const auth::Principal& caller,
                         std::string_view model);

}  // namespace statefold::gateway::internal
