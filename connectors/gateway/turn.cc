// The turn pipeline shared by the gateway's endpoints (internal/turn.h).
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <set>
#include <thread>

#include "connectors/gateway/internal/events.h"
#include "connectors/gateway/internal/reconcile.h"
#include "connectors/gateway/internal/turn.h"

#include "engine/fold/read.h"
#include "engine/fork/fork.h"
#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "statefold/schema/state_generated.h"

namespace statefold::gateway::internal {

namespace {

// How long a turn waits for the session's previous one (see TurnLocks::take) before it is refused with 409.
constexpr std::chrono::milliseconds kTurnPatience{250};
// How long a turn with an Idempotency-Key waits for the session's turn in progress (likely the same turn, retried
// by a client that timed out) before it is refused with 409.
constexpr std::chrono::seconds kIdempotentPatience{120};
// A receipt's status when the client left a stream before its end (nginx's convention; no HTTP answer has it).
constexpr int kClientClosedRequest = 499;

// A tool result must answer a call the session (`pending`: its open calls) or this input made and nothing answered
// yet: anything else would be recorded and then left out of every context as an orphan.
// `first`: where the messages checked start in turn.input (those before are already in the session).
std::optional<http::Response> check_tool_results(std::set<std::string, std::less<>> pending, const TurnRequest& turn,
                                                 std::size_t first = 0) {
  for (std::size_t i = first; i < turn.input.size(); ++i) {
    const auto& m = turn.input[i];
    if (m.role == context::Role::assistant) {
      for (const auto& c : m.tool_calls) pending.insert(c.id);
    } else if (m.role == context::Role::tool) {
      if (pending.erase(m.tool_call_id) == 0) {
        std::string open;
        for (const auto& id : pending) open += (open.empty() ? "" : ", ") + id;
        return openai_error(400,
                            turn.input_field + "[" + std::to_string(i) + "].tool_call_id: '" + m.tool_call_id +
                                "' answers no pending tool call of session " + turn.session +
                                " (pending: " + (open.empty() ? "none" : open) + ")",
                            "invalid_request_error", turn.route, "unknown_tool_call");
      }
    } else if (m.role == context::Role::user) {
      pending.clear();
    }
  }
  return std::nullopt;
}

// The calls of the session's latest assistant message that no result answered yet; a user message or a plain
// reply since then closes them.
std::set<std::string, std::less<>> open_tool_calls(const context::SessionState& state) {
  std::set<std::string, std::less<>> pending;
  for (auto it = state.history.rbegin(); it != state.history.rend(); ++it) {
    if (it->role == context::Role::assistant) {
      for (const auto& c : it->tool_calls) pending.insert(c.id);
      for (auto later = it.base(); later != state.history.end(); ++later) pending.erase(later->tool_call_id);
      break;
    }
    if (it->role == context::Role::user) break;
  }
  return pending;
}

// Renders `state` for p.spec into `p`; the refusal when the context cannot be materialised.
std::optional<http::Response> render_into(Prepared& p, context::SessionState& state, std::string& counted,
                                          const std::string& route) {
  auto rendered = materialise::render(state, p.spec, counted);
  if (!rendered) {
    return openai_error(400, "the context cannot be materialised: " + rendered.error().message,
                        "invalid_request_error", route, "context_length_exceeded");
  }
  p.spec.tokenizer = rendered->tokenizer;
  p.body = std::move(rendered->body);
  p.hash = std::move(rendered->hash);
  p.input_tokens = rendered->context.total_tokens;
  p.cut = rendered->context.cut;
  p.echo_text = std::move(rendered->echo);
  return std::nullopt;
}

std::string call_error(const upstream::Response& response) {
  return !response.error.empty()
             ? response.error
             : "HTTP " + std::to_string(response.status) + ": " + providers::error_message(response.body);
}

}  // namespace

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::Response openai_error(int status, std::string_view message, std::string_view type, const std::string& route,
                            std::string_view code) {
  auto response = http::json_response(status, protocol::openai_error_json(message, type, code), route);
  response.headers.emplace_back("x-should-retry", "false");
  return response;
}

std::chrono::nanoseconds Timing::phase(std::string_view name) const {
  Clock::time_point from = start;
  for (const auto& [phase_name, at] : marks) {
    if (phase_name == name) return at - from;
    from = at;
  }
  return {};
}

std::string Timing::header() const {
  std::string out;
  Clock::time_point from = start;
  for (const auto& [phase, at] : marks) {
    char piece[64];
    std::snprintf(piece, sizeof piece, "%s%s;dur=%.3f", out.empty() ? "" : ", ", phase,
                  std::chrono::duration<double, std::milli>(at - from).count());
    out += piece;
    from = at;
  }
  return out;
}

http::Response upstream_failure(const Call& call, const std::string& route) {
  const int status = call.status >= 400 ? call.status : call.timed_out ? 504 : 502;
  return openai_error(status, "upstream " + call.endpoint + " failed: " + call.error,
                      status == 429 ? "rate_limit_error" : "upstream_error", route);
}

Core::Core(Options o, const StateSource& s, append::Sink& e)
    : options(std::move(o)),
      state(s),
      events(e),
      cache(256, std::max<std::size_t>(options.context_cache_bytes, 1 << 20)),
      // Without a secret (tests, a gateway of its own): one of this process, so its ids last as long as it does.
      ids(options.id_secret.empty() ? base::random_hex(32) : options.id_secret),
      workers(options.workers) {}

std::optional<http::Response> Core::refuse_elsewhere(const std::string& session, const std::string& route) const {
  // Names the session's partition: serve forwards the request to its owner (engine/cluster).
  return runtime::refuse_unless_owned(state.ownership(session), session, route);
}

std::string Core::new_session_id(std::string_view prefix) const {
  // Folding none, the turn is forwarded to the id's owner, which picks its own.
  return runtime::random_session_id(prefix, 12, [this](std::string_view id) { return state.ownership(id); });
}

double Core::margin_for(const upstream::Endpoint& endpoint, context::Provider provider) {
  const providers::Provider& p = providers::get(provider);
  if (!p.calibrated_margin()) return p.token_margin();
  std::lock_guard lock(margins_mutex);
  const double m = margins.try_emplace(endpoint.name, p.token_margin()).first->second.margin();
  // In steps of 0.05, rounded up: a margin that moves with every receipt would make each turn count a long
  // session's messages again (cached counts belong to one margin) and shift its cut, losing the prompt cache.
  return std::ceil(m * 20.0 - 1e-9) / 20.0;
}

void Core::calibrate(const Prepared& p, const protocol::Usage& usage) {
  const providers::Provider& provider = providers::get(p.provider);
  if (!provider.calibrated_margin() || usage.input_tokens == 0 || p.spec.margin <= 0) return;
  const auto estimated = static_cast<std::size_t>(static_cast<double>(p.input_tokens) / p.spec.margin);
  std::lock_guard lock(margins_mutex);
  margins.try_emplace(p.endpoint->name, provider.token_margin()).first->second.observe(estimated, usage.input_tokens);
}

void Core::report(const Call& call, int status, const Timing& timing) const {
  if (!options.on_turn) return;
  const auto upstream_time = timing.phase("upstream");
  options.on_turn(call.endpoint, status, upstream_time, (Clock::now() - timing.start) - upstream_time);
}

std::variant<materialise::RenderSpec, http::Response> Core::plan(const upstream::Endpoint& endpoint,
                                                                 const std::string& model, const TurnRequest& turn,
                                                                 bool existing_session) {
  auto provider = context::parse_provider(endpoint.provider);
  if (!provider) {
    return openai_error(500, "endpoint " + endpoint.name + " has no known provider", "server_error", turn.route);
  }
  materialise::RenderSpec spec;
  spec.provider = *provider;
  spec.model = model;
  spec.margin = margin_for(endpoint, *provider);
  // The client's cap on the reply is the reply's limit (and the budget's output reserve), within the endpoint's
  // model maximum when the configuration gives one.
  spec.max_output_tokens = turn.params.max_output_tokens.value_or(0);
  spec.output_limit = spec.max_output_tokens;
  if (endpoint.max_output_tokens > 0 && spec.output_limit > static_cast<std::uint64_t>(endpoint.max_output_tokens)) {
    spec.output_limit = static_cast<std::uint64_t>(endpoint.max_output_tokens);
  }
  // A new session takes the instructions as its system prompt; a later turn's instructions apply to that turn.
  spec.instructions = existing_session ? turn.instructions : "";
  const providers::Provider& target = providers::get(*provider);
  if (!target.offline()) {
    auto extra = target.extra(turn.params, turn.stream);
    if (!extra) return openai_error(400, extra.error().message, "invalid_request_error", turn.route);
    spec.extra = std::move(*extra);
  }
  return spec;
}

// A failed append, as the client sees it.
http::Response append_failure(const append::Outcome& result, const std::string& route) {
  switch (result.kind) {
    case append::Outcome::Kind::unavailable: {
      auto response = openai_error(503, "the event log is unavailable: " + result.error, "server_error", route);
      response.headers.emplace_back("retry-after", "1");
      return response;
    }
    case append::Outcome::Kind::timed_out:
      return openai_error(504, "the new input was not folded in time: " + result.error, "server_error", route);
    default:
      break;
  }
  if (const auto* rejected = result.first_rejected()) {
    return openai_error(409, "the session changed while this turn was being recorded (" + rejected->reason + "); retry",
                        "conflict", route, "session_conflict");
  }
  return openai_error(500, "the input was not recorded", "server_error", route);
}

// Sends events and waits until they are folded.
append::Outcome append_and_wait(append::Sink& sink, const std::string& session, append::Events events) {
  auto promise = std::make_shared<std::promise<append::Outcome>>();
  auto future = promise->get_future();
  sink.append(session, std::move(events), {},
              [promise](append::Outcome result) { promise->set_value(std::move(result)); });
  return future.get();
}

std::variant<std::uint64_t, http::Response> Core::record_new_session(const TurnRequest& turn, const std::string& model) {
  if (auto refused = check_tool_results({}, turn)) return std::move(*refused);
  auto batch = input_events(turn.session, std::nullopt, turn.input, model, turn.instructions, turn.idempotency_key);
  if (!batch) return openai_error(400, batch.error().message, "invalid_request_error", turn.route);
  auto result = append_and_wait(events, turn.session, std::move(*batch));
  if (!result.all_accepted()) return append_failure(result, turn.route);
  return result.events.back().version;
}

std::variant<Prepared, http::Response> Core::send_and_prepare(const fold::Reader& snapshot,
                                                              const state::SessionHeaderT& header,
                                                              const TurnRequest& turn,
                                                              const upstream::Endpoint& endpoint,
                                                              const materialise::RenderSpec& spec,
                                                              std::optional<InFlight>& sent) {
  Prepared p;
  p.endpoint = &endpoint;
  p.provider = spec.provider;
  p.spec = spec;
  std::optional<http::Response> refused;
  auto ok = cache.with_state(snapshot, turn.session, header.version, [&](context::SessionState& session,
                                                                         std::string& counted) {
    if (!turn.previous_response_id.empty()) {
      // previous_response_id continues the conversation where that response left it: it must be the session's
      // latest reply (a failed turn since then left no reply, so it does not count), else this would silently drop
      // the replies that came after it.
      const bool later_reply = std::any_of(session.history.begin(), session.history.end(), [&](const auto& m) {
        return m.version > turn.previous_version && m.role == context::Role::assistant;
      });
      if (later_reply) {
        refused = openai_error(409,
                               "previous_response_id: " + turn.previous_response_id +
                                   " is not the latest response of session " + turn.session +
                                   "; fork the session at version " + std::to_string(turn.previous_version) +
                                   " (POST /v1/sessions/{id}/fork) to branch from it",
                               "conflict", turn.route, "not_latest_response");
        return;
      }
    }
    // A client that resends the conversation: what the session has is recognised, only the rest is new.
    std::size_t known = 0;
    if (turn.reconcile_history) {
      const auto reconciled = reconcile(turn.input, session.system_prompt, session.history);
      if (reconciled.diverged) {
        refused = openai_error(409, turn.input_field + ": " + reconciled.why, "conflict", turn.route,
                               "history_diverged");
        return;
      }
      known = reconciled.known;
    }
    std::vector<protocol::ClientMessage> fresh(turn.input.begin() + static_cast<std::ptrdiff_t>(known),
                                               turn.input.end());
    // The same Idempotency-Key again after an attempt whose input was recorded (and whose reply was not): that
    // input is the turn's, not new.
    if (!turn.idempotency_key.empty() && !fresh.empty() &&
        fold::version_of_event(snapshot, turn.session, turn_event_id(turn.idempotency_key, "input", 0))) {
      fresh.clear();
    }
    if (std::any_of(fresh.begin(), fresh.end(), [](const auto& m) { return m.role == context::Role::tool; })) {
      if ((refused = check_tool_results(open_tool_calls(session), turn, known))) return;
    }
    if (fresh.empty()) {
      // Nothing new (a retry of a turn whose input is stored, or the same conversation again): the session as it is.
      sent = InFlight{{}, header.version, header.version};
      refused = render_into(p, session, counted, turn.route);
      return;
    }
    auto batch = input_events(turn.session, header.version, fresh, "", "", turn.idempotency_key);
    if (!batch) {
      refused = openai_error(400, batch.error().message, "invalid_request_error", turn.route);
      return;
    }
    // The input goes to Kafka now and is rendered meanwhile, as the fold will make it.
    auto promise = std::make_shared<std::promise<append::Outcome>>();
    sent = InFlight{promise->get_future(), header.version, header.version + batch->size()};
    events.append(turn.session, std::move(*batch), {},
                  [promise](append::Outcome result) { promise->set_value(std::move(result)); });
    for (const auto& m : fresh) {
      auto message = protocol::to_message(m);
      message.version = ++session.version;
      session.history.push_back(std::move(message));
    }
    refused = render_into(p, session, counted, turn.route);
  });
  if (!ok) return openai_error(500, ok.error().message, "server_error", turn.route);
  if (refused) return std::move(*refused);
  return p;
}

std::variant<std::uint64_t, http::Response> Core::confirm_input(const std::string& session, InFlight& sent,
                                                                const std::string& route) {
  if (sent.version == sent.base_version) return sent.version;  // nothing was sent: the session was taken as it was
  auto result = sent.result.get();
  if (result.all_accepted() && result.events.back().version == sent.version) return sent.version;
  cache.forget(session);  // it holds the input as predicted
  return append_failure(result, route);
}

std::variant<Prepared, http::Response> Core::prepare(const fold::Reader& snapshot, const std::string& session,
                                                     std::uint64_t version, const upstream::Endpoint& endpoint,
                                                     const materialise::RenderSpec& spec, const std::string& route) {
  Prepared p;
  p.endpoint = &endpoint;
  p.provider = spec.provider;
  p.spec = spec;
  std::optional<http::Response> failed;
  auto ok = cache.with_state(snapshot, session, version, [&](context::SessionState& folded, std::string& counted) {
    failed = render_into(p, folded, counted, route);
  });
  if (!ok) return openai_error(500, ok.error().message, "server_error", route);
  if (failed) return std::move(*failed);
  return p;
}

Core::Recorded Core::record_outcome(const std::string& session, const protocol::Reply* reply, const Call& call,
                                    bool folded, std::shared_ptr<TurnLocks::Held> keep) {
  auto batch = outcome_events(session, reply, call);
  if (!batch) {
    base::log_error("gateway: the receipt does not encode", {{"session", session}, {"error", batch.error().message}});
    return {false, 0, "the receipt does not encode: " + batch.error().message};
  }
  struct Wait {
    std::mutex mutex;
    std::condition_variable cv;
    bool acknowledged = false;
    std::optional<append::Outcome> result;
  };
  const auto give_up = Clock::now() + options.record_patience;
  for (int attempt = 1;; ++attempt) {
    auto wait = std::make_shared<Wait>();
    append::Options send;
    send.all_or_nothing = false;
    send.settle_reads = true;
    send.on_acknowledged = [wait] {
      {
        std::lock_guard lock(wait->mutex);
        wait->acknowledged = true;
      }
      wait->cv.notify_all();
    };
    // Each attempt holds the turn until it is answered: the one Kafka took keeps it until its events are folded.
    events.append(session, *batch, std::move(send), [wait, keep, session](append::Outcome result) mutable {
      if (result.kind == append::Outcome::Kind::timed_out) {
        base::log_error("gateway: the reply and receipt were not folded in time",
                        {{"session", session}, {"error", result.error}});
      }
      keep.reset();
      {
        std::lock_guard lock(wait->mutex);
        wait->result = std::move(result);
      }
      wait->cv.notify_all();
    });
    std::unique_lock lock(wait->mutex);
    wait->cv.wait(lock, [&] { return wait->result.has_value() || (!folded && wait->acknowledged); });
    if (!folded && wait->acknowledged) return {true, 0, {}};
    const append::Outcome& result = *wait->result;
    if (result.kind == append::Outcome::Kind::folded) {
      // The reply follows the receipt (a kUnstoredResponse marker may follow the reply).
      const bool has_reply = reply != nullptr && result.events.size() >= 2;
      return {true, has_reply ? result.events[1].version : 0, {}};
    }
    if (result.kind != append::Outcome::Kind::unavailable) return {true, 0, {}};  // on the log, folded later
    if (Clock::now() >= give_up) {
      base::log_error("gateway: the reply and receipt could not be recorded",
                      {{"session", session}, {"attempts", std::to_string(attempt)}, {"error", result.error}});
      return {false, 0, result.error};
    }
    if (attempt == 1) {
      base::log_warn("gateway: recording the reply and receipt failed; sending them again",
                     {{"session", session}, {"error", result.error}});
    }
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

void Core::record_unrendered(const std::string& session, std::uint64_t version, const materialise::RenderSpec& spec,
                             const upstream::Endpoint& endpoint, const http::Response& refusal,
                             const std::string& caller) {
  Call call;
  call.caller = caller;
  call.state_version = version;
  call.provider = std::string(context::provider_name(spec.provider));
  call.endpoint = endpoint.name;
  call.model = spec.model;
  call.render = spec.to_json();
  call.error = refusal.body;
  record_outcome(session, nullptr, call, true);
}

std::optional<protocol::Reply> Core::complete(const Prepared& p, Call& call) {
  const auto start = Clock::now();
  const providers::Provider& provider = providers::get(p.provider);
  if (provider.offline()) {
    protocol::Reply reply;
    reply.text = p.echo_text;
    reply.finish_reason = "stop";
    reply.model = call.model;
    reply.usage.input_tokens = p.input_tokens;
    reply.usage.output_tokens = (p.echo_text.size() + 3) / 4;
    call.status = 200;
    call.usage = reply.usage;
    call.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    return reply;
  }
  upstream::Request request;
  request.path = provider.upstream_path(p.spec.model, false);
  request.body = p.body;
  upstream::Response response = client.call(*p.endpoint, request);
  call.latency_ms = response.latency_ms;
  call.status = response.status;
  call.timed_out = response.timed_out;
  if (!response.ok()) {
    call.error = call_error(response);
    return std::nullopt;
  }
  auto reply = provider.parse_reply(response.body);
  if (!reply) {
    call.error = "the upstream's reply does not parse: " + reply.error().message;
    return std::nullopt;
  }
  call.usage = reply->usage;
  calibrate(p, reply->usage);
  return std::move(*reply);
}

std::optional<protocol::Reply> Core::complete_streaming(const Prepared& p, Call& call,
                                                        const std::function<bool(const protocol::Delta&)>& on_delta) {
  const auto start = Clock::now();
  const providers::Provider& provider = providers::get(p.provider);
  if (provider.offline()) {
    for (const auto& d : provider.offline_deltas(p.echo_text)) {
      if (!on_delta(d)) break;
    }
    return complete(p, call);
  }
  upstream::Request request;
  request.path = provider.upstream_path(p.spec.model, true);
  request.body = p.body;
  const auto decoder = provider.stream_decoder();
  providers::StreamDecoder& parser = *decoder;
  std::string parse_error;
  upstream::Response response = client.stream(*p.endpoint, request, [&](const upstream::SseEvent& event) {
    auto deltas = parser.feed(event.event, event.data);
    if (!deltas) {
      parse_error = deltas.error().message;
      return false;
    }
    for (const auto& d : *deltas) {
      if (!on_delta(d)) {
        call.client_gone = true;
        return false;
      }
    }
    return true;
  });
  call.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  call.status = response.status;
  call.timed_out = response.timed_out;
  if (call.client_gone) {
    // Not the upstream's failure: the receipt says what happened, with what the upstream had reported so far.
    call.status = kClientClosedRequest;
    call.error = "the client closed the stream before the reply was complete";
    call.usage = parser.reply().usage;
    return std::nullopt;
  }
  if (!parse_error.empty()) {
    call.error = "the upstream's stream does not parse: " + parse_error;
    return std::nullopt;
  }
  if (!response.ok()) {
    call.error = call_error(response);
    return std::nullopt;
  }
  if (!parser.finished()) {
    call.error = "the upstream's stream ended before the reply was complete";
    return std::nullopt;
  }
  call.usage = parser.reply().usage;
  calibrate(p, parser.reply().usage);
  return parser.reply();
}

std::optional<http::Response> refuse_over_budget(const Core& core, const auth::Principal& caller,
                                                 const std::string& route) {
  if (caller.token_budget == 0) return std::nullopt;
  const auto window = auth::budget_window(caller.budget_period, std::chrono::system_clock::now());
  // An operator's key (no tenant) may have spent in any tenant's sessions.
  const auto tenant = caller.tenant.empty() ? std::nullopt : std::optional<std::string_view>(caller.tenant);
  auto used = core.options.tokens_used ? core.options.tokens_used(caller, window)
                                       : fold::budget_tokens(*core.state.snapshot(), tenant, window.from_day,
                                                             window.through_day, caller.key_name);
  if (!used) return openai_error(500, used.error().message, "server_error", route);
  auto refusal = auth::over_budget(caller, *used, window);
  if (!refusal) return std::nullopt;
  auto response = openai_error(429, refusal->message, "insufficient_quota", route, refusal->code);
  response.headers.emplace_back("Retry-After", std::to_string(refusal->retry_after.count()));
  return response;
}

http::Response not_in_namespace(const auth::Principal& caller, const std::string& session, const std::string& route) {
  return openai_error(404, caller.no_such_session(session), "invalid_request_error", route, "session_not_found");
}

namespace {

// The head of a streamed answer (Server-Sent Events); its body is `stream`.
http::Response stream_head(std::vector<std::pair<std::string, std::string>> headers, const std::string& route,
                           std::shared_ptr<http::BodyStream> stream) {
  http::Response head{200, "", "text/event-stream", std::move(headers), route, std::move(stream)};
  head.headers.emplace_back("cache-control", "no-cache");
  return head;
}

// The answer of a turn recorded earlier under the same Idempotency-Key, as it was given (the reply at
// `reply_version`), marked as a replay.
void replay(Format& format, const TurnRequest& turn, const StoredReply& stored, std::uint64_t reply_version,
            const http::Respond& respond) {
  // The reply followed its receipt, which followed the input: the version the request was rendered from.
  format.begin({turn.session, reply_version >= 2 ? reply_version - 2 : 0, stored.model, stored.created_s, 0});
  std::vector<std::pair<std::string, std::string>> headers{{"x-session-id", turn.session},
                                                           {"x-statefold-idempotent-replay", "true"}};
  if (!turn.stream) {
    auto response = http::json_response(200, format.body(stored.reply, reply_version), turn.route);
    response.headers = std::move(headers);
    return respond(std::move(response));
  }
  auto stream = http::BodyStream::make();
  respond(stream_head(std::move(headers), turn.route, stream));
  stream->write(format.stream_start());
  stream->write(format.stream_finish(stored.reply));
  stream->close();
}

// An Idempotency-Key names one request: a retry resends the same input, so the input recorded under the key must
// be what this request's input ends with (compared as resent history is). Another request under a used key is
// refused (422, as the IETF Idempotency-Key draft and Stripe do) rather than answered with the other's reply.
std::optional<http::Response> refuse_reused_key(const fold::Reader& snapshot, const state::SessionHeaderT& header,
                                                const TurnRequest& turn) {
  std::vector<context::Message> recorded;
  for (std::uint64_t i = 0;; ++i) {
    const auto version = fold::version_of_event(snapshot, turn.session, turn_event_id(turn.idempotency_key, "input", i));
    if (!version) break;
    auto read = fold::visit_history(snapshot, turn.session, {.from = *version, .through = *version},
                                    [&](const fold::HistoryRecord& r) {
                                      if (const auto* m = r.event.payload_as_Message()) {
                                        recorded.push_back(materialise::stored_message(r.version(), *m));
                                      }
                                      return false;
                                    });
    if (!read) return openai_error(500, read.error().message, "server_error", turn.route);
  }
  if (recorded.empty()) return std::nullopt;  // the key's earlier attempt recorded no input of its own
  const auto same = reconcile(turn.input, header.system_prompt, recorded);
  if (!same.diverged && same.known == turn.input.size()) return std::nullopt;
  return openai_error(422,
                      "Idempotency-Key " + turn.idempotency_key + " was used for another request on session " +
                          turn.session + "; a retry must resend the same input, a new request needs a new key",
                      "invalid_request_error", turn.route, "idempotency_key_reused");
}

}  // namespace

std::variant<std::string, http::Response> Core::branch(const TurnRequest& turn) {
  // The child keeps the parent's namespace (its tenant prefix comes first) and is named after it, with a suffix
  // that puts it on the parent's partition: this instance folds both, so the branch never waits on another one.
  const std::string child = runtime::random_session_id(
      turn.session + "~", 4, [this](std::string_view id) { return state.ownership(id); },
      state.ownership(turn.session).partition);
  if (auto refused = refuse_elsewhere(child, turn.route)) return std::move(*refused);
  auto plan = fork::plan(*state.snapshot(), {turn.session, turn.previous_version, child, append::now_us()});
  if (!plan) return openai_error(409, "previous_response_id: " + plan.error().message, "conflict", turn.route);
  auto result = append_and_wait(events, child, std::move(plan->events));
  if (!result.all_accepted()) return append_failure(result, turn.route);
  base::log_info("gateway: branched a conversation from an older response",
                 {{"session", turn.session}, {"version", std::to_string(turn.previous_version)}, {"branch", child}});
  return child;
}

void run_turn(Core& core, const TurnRequest& turn, Format& format, const http::Respond& respond) {
  const std::string& route = turn.route;
  const std::string& session = turn.session;
  if (!turn.caller.owns(session)) return respond(not_in_namespace(turn.caller, session, route));
  if (auto refused = core.refuse_elsewhere(session, route)) return respond(std::move(*refused));
  // previous_response_id of a response that later replies followed: OpenAI branches the conversation there, and so
  // does statefold, by forking the session at that response (the fork is a session of its own on the log) and
  // running the turn on the fork.
  const AfterResponse after = !turn.previous_response_id.empty() && turn.previous_version > 0
                                   ? after_response(*core.state.snapshot(), session, turn.previous_version)
                                   : AfterResponse{};
  if (after.withdrawn) {
    return respond(openai_error(404, "previous_response_id: response " + turn.previous_response_id + " was deleted",
                                "invalid_request_error", route, "previous_response_not_found"));
  }
  if (after.later_reply) {
    auto branched = core.branch(turn);
    if (auto* refused = std::get_if<http::Response>(&branched)) return respond(std::move(*refused));
    TurnRequest on_branch = turn;
    on_branch.session = std::get<std::string>(std::move(branched));
    on_branch.previous_response_id.clear();  // the fork ends with that response: the turn continues from its end
    on_branch.previous_version = 0;
    return run_turn(core, on_branch, format, respond);
  }
  const bool keyed = !turn.idempotency_key.empty();
  auto lock = core.turns.take(session, keyed ? std::chrono::milliseconds(kIdempotentPatience) : kTurnPatience);
  if (!lock) {
    return respond(openai_error(409, "session " + session + " has a turn in progress; send the next one when it has "
                                "answered", "conflict", route, "turn_in_progress"));
  }
  // The turn ends before its answer goes out: a client that sends its next message as soon as it has the answer
  // must not find this turn still holding the session.
  auto answer = [&lock, &respond](http::Response response) {
    lock.reset();
    respond(std::move(response));
  };
  // The session is read once for the whole turn (a new one is read again after its opening is folded).
  auto snapshot = core.state.snapshot();
  const auto header = fold::load_header(*snapshot, session);
  // A turn already answered under this Idempotency-Key is answered again from the log: no upstream call, nothing
  // recorded. A key whose attempts failed goes on, its receipt numbered after theirs.
  std::uint64_t attempt = 0;
  if (keyed && header) {
    if (auto refused = refuse_reused_key(*snapshot, *header, turn)) return answer(std::move(*refused));
    if (auto replied = fold::version_of_event(*snapshot, session, turn_event_id(turn.idempotency_key, "reply"))) {
      auto stored = read_reply(*snapshot, session, *replied);
      if (!stored) return answer(openai_error(500, stored.error().message, "server_error", route));
      if (*stored) {
        snapshot.reset();
        lock.reset();
        return replay(format, turn, **stored, *replied, respond);
      }
    }
    while (fold::version_of_event(*snapshot, session, turn_event_id(turn.idempotency_key, "receipt", attempt))) {
      ++attempt;
    }
  }
  if (!turn.previous_response_id.empty() &&
      (!header || turn.previous_version == 0 || turn.previous_version > header->version)) {
    return answer(openai_error(404, "previous_response_id: no response " + turn.previous_response_id,
                               "invalid_request_error", route));
  }
  if (!turn.missing_session.empty() && (!header || !fold::begun(*header) || header->closed || header->erased)) {
    return answer(openai_error(404, turn.missing_session, "invalid_request_error", route));
  }
  if (!turn.previous_response_id.empty() && unstored_response(*snapshot, session, turn.previous_version)) {
    return answer(openai_error(404,
                               "previous_response_id: response " + turn.previous_response_id +
                                   " was created with store: false and cannot be continued from; send the "
                                   "conversation's next input with its session (X-Session-Id or conversation)",
                               "invalid_request_error", route, "previous_response_not_found"));
  }
  const std::string requested = turn.model.empty() && turn.model_from_session && header ? header->model : turn.model;
  auto endpoint = core.options.router.route(turn.caller.routing_key(session), requested);
  if (!endpoint) return answer(openai_error(403, endpoint.error().message, "permission_error", route));
  const std::string model = !requested.empty() ? requested : (*endpoint)->model;
  auto planned = core.plan(**endpoint, model, turn, header.has_value());
  if (auto* refused = std::get_if<http::Response>(&planned)) return answer(std::move(*refused));
  const auto& spec = std::get<materialise::RenderSpec>(planned);

  Timing timing{turn.received, {}};
  timing.mark("start");
  // An existing session's input is rendered and sent upstream while Kafka takes it and the engine folds it; a new
  // session's is recorded first. Either way nothing more is recorded unless it was accepted at the version the
  // request was rendered from.
  std::optional<InFlight> in_flight;
  std::uint64_t version = 0;
  std::variant<Prepared, http::Response> prepared = http::Response{};
  if (header) {
    prepared = core.send_and_prepare(*snapshot, *header, turn, **endpoint, spec, in_flight);
    if (!in_flight) return answer(std::get<http::Response>(std::move(prepared)));
    version = in_flight->version;
    if (std::holds_alternative<http::Response>(prepared)) {
      auto confirmed = core.confirm_input(session, *in_flight, route);
      if (auto* refused = std::get_if<http::Response>(&confirmed)) return answer(std::move(*refused));
      in_flight.reset();
    }
  } else {
    snapshot.reset();
    auto recorded = core.record_new_session(turn, model);
    if (auto* refused = std::get_if<http::Response>(&recorded)) return answer(std::move(*refused));
    version = std::get<std::uint64_t>(recorded);
    timing.mark("input");
    prepared = core.prepare(*core.state.snapshot(), session, version, **endpoint, spec, route);
  }
  snapshot.reset();
  // truncation: "disabled": a context that leaves history out is refused, not sent (the input stays recorded, with
  // a failed receipt saying why, as for any context that cannot be materialised).
  if (const auto* p = std::get_if<Prepared>(&prepared); p != nullptr && turn.truncation_disabled && p->cut.messages > 0) {
    const std::string why = "the session's context needs its " + std::to_string(p->cut.messages) +
                            " oldest history messages left out to fit, and truncation is \"disabled\"; send "
                            "truncation: \"auto\" to let statefold cut it";
    if (in_flight) {
      auto confirmed = core.confirm_input(session, *in_flight, route);
      if (auto* refused = std::get_if<http::Response>(&confirmed)) return answer(std::move(*refused));
      in_flight.reset();
    }
    prepared = openai_error(400, why, "invalid_request_error", route, "context_length_exceeded");
  }
  if (auto* refused = std::get_if<http::Response>(&prepared)) {
    core.record_unrendered(session, version, spec, **endpoint, *refused, turn.caller.key_name);
    return answer(std::move(*refused));
  }
  timing.mark("render");
  const Prepared& p = std::get<Prepared>(prepared);
  Call call;
  call.idempotency_key = turn.idempotency_key;
  call.attempt = attempt;
  call.request_hash = p.hash;
  call.state_version = version;
  call.provider = std::string(context::provider_name(p.provider));
  call.endpoint = p.endpoint->name;
  call.model = model;
  call.render = p.spec.to_json();
  call.store = turn.store;
  call.caller = turn.caller.key_name;
  // The pipelined input must have been accepted as predicted before anything else is recorded. If it was not
  // (another writer got in between), the call was made for a state that never was: its receipt says so and
  // records nothing re-renderable, and the client gets the conflict.
  auto input_refused = [&]() -> std::optional<http::Response> {
    if (!in_flight) return std::nullopt;
    auto confirmed = core.confirm_input(session, *in_flight, route);
    timing.mark("input");
    if (std::holds_alternative<std::uint64_t>(confirmed)) return std::nullopt;
    call.state_version = 0;
    call.render.clear();
    call.error = "the input was not recorded as predicted; the request was rendered for a state that never was: " +
                 std::get<http::Response>(confirmed).body;
    core.record_outcome(session, nullptr, call, true);
    return std::get<http::Response>(confirmed);
  };
  // Records the reply and receipt: before the answer when it needs the reply's version, else while it goes out
  // (the turn's lock is then held until they are folded).
  auto record = [&](const protocol::Reply* reply) -> Core::Recorded {
    if (format.needs_reply_version()) return core.record_outcome(session, reply, call, true);
    return core.record_outcome(session, reply, call, false,
                               std::make_shared<TurnLocks::Held>(std::move(*std::exchange(lock, std::nullopt))));
  };
  // A reply the model gave but the log did not take is not shown as an answer: the session would not have it.
  auto not_recorded_message = [](const Core::Recorded& recorded) {
    return "the model answered, but its reply could not be recorded (" + recorded.error +
           "); the session has your input but not the reply: retry";
  };
  auto not_recorded = [&](const Core::Recorded& recorded) {
    auto response = openai_error(503, not_recorded_message(recorded), "server_error", route);
    response.headers.emplace_back("retry-after", "1");
    return response;
  };
  format.begin({session, version, model, now_us() / 1000000, p.cut.messages});
  std::vector<std::pair<std::string, std::string>> headers{{"x-session-id", session},
                                                           {"x-statefold-state-version", std::to_string(version)},
                                                           {"x-statefold-request-hash", p.hash}};
  // Truncation is never silent: what the context left out of the history, on chat and Responses alike.
  if (p.cut.messages > 0) {
    headers.emplace_back("x-statefold-context-cut", "messages=" + std::to_string(p.cut.messages) +
                                                        "; tokens=" + std::to_string(p.cut.tokens) +
                                                        "; versions=" + std::to_string(p.cut.first_version) + "-" +
                                                        std::to_string(p.cut.last_version));
  }

  if (!turn.stream) {
    auto reply = core.complete(p, call);
    timing.mark("upstream");
    if (auto refused = input_refused()) return answer(std::move(*refused));
    const auto recorded = record(reply ? &*reply : nullptr);
    timing.mark("record");
    if (!reply) {
      auto failure = upstream_failure(call, route);
      core.report(call, failure.status, timing);
      return answer(std::move(failure));
    }
    if (!recorded.on_log) {
      auto failure = not_recorded(recorded);
      core.report(call, failure.status, timing);
      return answer(std::move(failure));
    }
    auto response = http::json_response(200, format.body(*reply, recorded.reply_version), route);
    response.headers = std::move(headers);
    response.headers.emplace_back("server-timing", timing.header());
    core.report(call, 200, timing);
    return answer(std::move(response));
  }

  auto stream = http::BodyStream::make();
  bool started = false;
  auto start = [&] {
    if (started) return;
    started = true;
    respond(stream_head(headers, route, stream));
    stream->write(format.stream_start());
  };
  protocol::Reply partial;  // what was streamed, for the end of a stream that fails
  auto reply = core.complete_streaming(p, call, [&](const protocol::Delta& d) {
    start();
    if (d.tool_index < 0) partial.text += d.text;
    return stream->write(format.stream_delta(d));
  });
  timing.mark("upstream");
  if (auto refused = input_refused()) {
    if (!started) return answer(std::move(*refused));
    stream->write(format.stream_error(refused->body));
    stream->close();
    return;
  }
  const auto recorded = record(reply ? &*reply : nullptr);
  lock.reset();  // the turn's events are on their way: the session is free before the stream's last frames go out
  if (reply && !recorded.on_log) {
    auto failure = not_recorded(recorded);
    core.report(call, failure.status, timing);
    if (!started) return respond(std::move(failure));
    // The text went out, but the turn did not complete: the API's own end of a failed stream (Responses:
    // response.failed), as when the upstream fails midway.
    stream->write(format.stream_failed(*reply, "server_error", not_recorded_message(recorded)));
    stream->close();
    return;
  }
  // A stream that started and then failed is counted by its failure, not by the 200 its head carried.
  core.report(call, reply ? 200 : upstream_failure(call, route).status, timing);
  if (!reply && !started) return respond(upstream_failure(call, route));
  start();
  if (reply) {
    stream->write(format.stream_finish(*reply));
  } else {
    const bool throttled = call.status == 429;
    stream->write(format.stream_failed(partial, throttled ? "rate_limit_exceeded" : "server_error",
                                       "upstream " + call.endpoint + " failed: " + call.error));
  }
  stream->close();
}

}  // namespace statefold::gateway::internal
