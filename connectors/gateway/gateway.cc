#include "connectors/gateway/gateway.h"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <variant>

#include "base/hex.h"
#include "base/logging.h"
#include "codec/codec.h"
#include "connectors/context/render.h"
#include "connectors/materialise/materialise.h"
#include "connectors/protocol/protocol.h"
#include "connectors/tokenizer/tokenizer.h"
#include "connectors/upstream/upstream.h"
#include "fold/fold.h"
#include "fold/layout.h"
#include "statefold/schema/events_generated.h"
#include "statefold/schema/state_generated.h"

namespace statefold::gateway {

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

const std::string kRouteChat = "POST /v1/chat/completions";
const std::string kRouteResponses = "POST /v1/responses";
const std::string kRouteGetResponse = "GET /v1/responses/{id}";
const std::string kRouteContext = "GET /v1/sessions/{id}/context";
constexpr std::string_view kSessionsPrefix = "/v1/sessions/";
constexpr std::string_view kContextSuffix = "/context";
constexpr std::string_view kResponsesPrefix = "/v1/responses/";
// How long a turn waits for the session's previous one (see TurnLocks::take) before it is refused with 409.
constexpr std::chrono::milliseconds kTurnPatience{250};

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(std::size_t bytes) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// Every gateway error tells OpenAI's SDKs not to retry by themselves (x-should-retry): the gateway already retried
// the upstream, and a turn's input may be on the log, so a blind retry would record it twice.
http::Response openai_error(int status, std::string_view message, std::string_view type, const std::string& route,
                            std::string_view code = {}) {
  auto response = http::json_response(status, protocol::openai_error_json(message, type, code), route);
  response.headers.emplace_back("x-should-retry", "false");
  return response;
}

// Response ids carry their session and the version of the reply, so no lookup table is needed:
// "resp_" + hex(session id) + "_" + version.
std::string response_id(std::string_view session, std::uint64_t version) {
  return "resp_" + base::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(session.data()), session.size())) + "_" +
         std::to_string(version);
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

std::string upstream_path(context::Provider provider) {
  switch (provider) {
    case context::Provider::openai_chat: return "/chat/completions";
    case context::Provider::openai_responses: return "/responses";
    case context::Provider::anthropic: return "/messages";
    case context::Provider::echo: return "";
  }
  return "";
}

// A fixed set of threads for the blocking part of turns.
class Workers {
 public:
  explicit Workers(std::size_t n) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, n); ++i) _threads.emplace_back([this] { run(); });
  }
  ~Workers() { stop(); }
  bool submit(std::function<void()> job) {
    {
      std::lock_guard lock(_mutex);
      if (_stopping) return false;
      _jobs.push_back(std::move(job));
    }
    _cv.notify_one();
    return true;
  }
  void stop() {
    {
      std::lock_guard lock(_mutex);
      if (_stopping && _threads.empty()) return;
      _stopping = true;
    }
    _cv.notify_all();
    for (auto& t : _threads) {
      if (t.joinable()) t.join();
    }
    _threads.clear();
  }

 private:
  void run() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(_mutex);
        _cv.wait(lock, [&] { return _stopping || !_jobs.empty(); });
        if (_jobs.empty()) return;  // stopping, and every queued turn has run
        job = std::move(_jobs.front());
        _jobs.pop_front();
      }
      job();
    }
  }
  std::mutex _mutex;
  std::condition_variable _cv;
  std::deque<std::function<void()>> _jobs;
  std::vector<std::thread> _threads;
  bool _stopping = false;
};

// One turn per session at a time, on this instance (which owns the session's partition).
class TurnLocks {
 public:
  class Held {
   public:
    Held(TurnLocks* owner, std::string session) : _owner(owner), _session(std::move(session)) {}
    Held(Held&& other) noexcept : _owner(std::exchange(other._owner, nullptr)), _session(std::move(other._session)) {}
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    Held& operator=(Held&&) = delete;
    ~Held() {
      if (_owner != nullptr) _owner->release(_session);
    }
    // The turn has answered and its last events are on their way to the fold: reads of the session wait for them.
    void recording() { _owner->set_recording(_session); }

   private:
    TurnLocks* _owner;
    std::string _session;
  };
  // Waits up to `patience` for the session's previous turn, which holds it until its reply and receipt are folded
  // (a few milliseconds after its answer went out); nullopt when a turn is still in progress after that.
  // Until the session's turn that has answered has its events folded (at most `patience`): read-your-writes for
  // the reads that follow an answer.
  void settle(std::string_view session, std::chrono::milliseconds patience) {
    std::unique_lock lock(_mutex);
    _freed.wait_for(lock, patience, [&] { return !_recording.contains(session); });
  }

  std::optional<Held> take(const std::string& session, std::chrono::milliseconds patience) {
    std::unique_lock lock(_mutex);
    if (!_freed.wait_for(lock, patience, [&] { return !_busy.contains(session); })) return std::nullopt;
    _busy.insert(session);
    return Held(this, session);
  }

 private:
  void release(const std::string& session) {
    {
      std::lock_guard lock(_mutex);
      _busy.erase(session);
      _recording.erase(session);
    }
    _freed.notify_all();
  }
  void set_recording(const std::string& session) {
    std::lock_guard lock(_mutex);
    _recording.insert(session);
  }
  std::mutex _mutex;
  std::condition_variable _freed;
  std::set<std::string, std::less<>> _busy;
  std::set<std::string, std::less<>> _recording;
};

// A JSON event for the appender: the envelope fields the API would add, then canonical FlatBuffers.
struct EventBatch {
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events;
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
  std::string error;
};

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

// Where a turn's time went, as a Server-Timing header (input: appended and folded; render: materialised and
// rendered; upstream: the model's call; record: reply and receipt appended and folded), in milliseconds.
struct Timing {
  Clock::time_point start = Clock::now();
  std::vector<std::pair<const char*, Clock::time_point>> marks;
  void mark(const char* phase) { marks.emplace_back(phase, Clock::now()); }
  std::chrono::nanoseconds phase(std::string_view name) const {
    Clock::time_point from = start;
    for (const auto& [phase_name, at] : marks) {
      if (phase_name == name) return at - from;
      from = at;
    }
    return {};
  }
  std::string header() const {
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
};

// The echo provider's answer, cut into pieces for a stream.
std::vector<protocol::Delta> echo_deltas(const std::string& text) {
  std::vector<protocol::Delta> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start + 1);
    end = end == std::string::npos ? text.size() : end;
    protocol::Delta d;
    d.text = text.substr(start, end - start);
    out.push_back(std::move(d));
    start = end;
  }
  return out;
}

}  // namespace

upstream::RoutingConfig offline_routing() {
  upstream::RoutingConfig config;
  upstream::Endpoint echo;
  echo.name = "echo";
  echo.provider = "echo";
  echo.model = "echo";
  config.endpoints.push_back(echo);
  config.default_endpoint = "echo";
  return config;
}

struct Gateway::Impl {
  Options options;
  runtime::Engine& engine;
  api::Appender& appender;
  upstream::Client client;
  materialise::StateCache cache;
  TurnLocks turns;
  // Per endpoint of a provider without a public tokenizer: the margin on o200k counts, corrected by the input tokens
  // each receipt reports. A request is rendered with the margin of its time, which its receipt records.
  std::mutex margins_mutex;
  std::map<std::string, tokenizer::MarginCalibration> margins;
  Workers workers;

  double margin_for(const upstream::Endpoint& endpoint, context::Provider provider) {
    if (provider != context::Provider::anthropic) return 1.0;
    std::lock_guard lock(margins_mutex);
    const double m = margins.try_emplace(endpoint.name).first->second.margin();
    // In steps of 0.05, rounded up: a margin that moves with every receipt would make each turn count a long
    // session's messages again (cached counts belong to one margin) and shift its cut, losing the prompt cache.
    return std::ceil(m * 20.0 - 1e-9) / 20.0;
  }


  Impl(Options o, runtime::Engine& e, api::Appender& a)
      : options(std::move(o)),
        engine(e),
        appender(a),
        cache(256, std::max<std::size_t>(options.context_cache_bytes, 1 << 20)),
        workers(options.workers) {}

  // Sends events and waits until they are folded.
  api::AppendResult append(const std::string& session, EventBatch batch) {
    auto promise = std::make_shared<std::promise<api::AppendResult>>();
    auto future = promise->get_future();
    appender.append(session, std::move(batch.events), true,
                    [promise](api::AppendResult result) { promise->set_value(std::move(result)); });
    return future.get();
  }

  // A failed append, as the client sees it.
  static http::Response append_failure(const api::AppendResult& result, const std::string& route) {
    switch (result.kind) {
      case api::AppendResult::Kind::unavailable:
        return openai_error(503, "the event log is unavailable: " + result.error, "server_error", route);
      case api::AppendResult::Kind::timed_out:
        return openai_error(504, "the new input was not folded in time: " + result.error, "server_error", route);
      default:
        break;
    }
    for (const auto& e : result.events) {
      if (e.status == "rejected") {
        return openai_error(409, "the session changed while this turn was being recorded (" + e.reason + "); retry",
                            "conflict", route, "session_conflict");
      }
    }
    return openai_error(500, "the input was not recorded", "server_error", route);
  }

  // A turn's input as events, conditional on the session's version (`header`; none: a new session, opened first
  // with its leading system/developer messages, or the instructions, as its system prompt).
  static std::variant<EventBatch, http::Response> input_batch(const std::string& session,
                                                              const std::optional<state::SessionHeaderT>& header,
                                                              const std::vector<protocol::ClientMessage>& input,
                                                              const std::string& model,
                                                              const std::string& instructions,
                                                              const std::string& route) {
    EventBatch batch;
    const std::uint64_t at = header ? header->version : 0;
    std::size_t first = 0;
    if (!header) {
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
    if (!batch.error.empty()) return openai_error(400, batch.error, "invalid_request_error", route);
    if (batch.events.empty()) return openai_error(400, "no new input", "invalid_request_error", route);
    return batch;
  }

  // Appends a turn's new input (opening the session first if it is new) and returns the version it reached.
  std::variant<std::uint64_t, http::Response> record_input(const std::string& session,
                                                           const std::vector<protocol::ClientMessage>& input,
                                                           const std::string& model, const std::string& instructions,
                                                           const std::string& route) {
    auto snapshot = engine.store().snapshot();
    auto batch = input_batch(session, fold::load_header(*snapshot, session), input, model, instructions, route);
    if (auto* refused = std::get_if<http::Response>(&batch)) return std::move(*refused);
    auto result = append(session, std::move(std::get<EventBatch>(batch)));
    if (result.kind != api::AppendResult::Kind::folded || result.events.empty() ||
        std::any_of(result.events.begin(), result.events.end(), [](const auto& e) { return e.status != "accepted"; })) {
      return append_failure(result, route);
    }
    return result.events.back().version;
  }

  // Appends the receipt, then the reply (if any), in order on the idempotent producer: should this process die
  // between the two sends, the call still has its receipt. With `folded`, waits until both are folded and returns
  // the reply's version; otherwise returns (0) once Kafka has them, and `keep` (the session's turn) is held until
  // they are folded, so the session's next turn sees them.
  std::uint64_t record_outcome(const std::string& session, const protocol::Reply* reply, const Call& call,
                               bool folded = true, std::shared_ptr<TurnLocks::Held> keep = nullptr) {
    EventBatch batch;
    batch.add(session, receipt_event(call), std::nullopt);
    if (reply != nullptr) batch.add(session, reply_event(*reply), std::nullopt);
    if (!batch.error.empty()) {
      base::log_error("gateway: the receipt does not encode", {{"session", session}, {"error", batch.error}});
      return 0;
    }
    struct Wait {
      std::mutex mutex;
      std::condition_variable cv;
      bool acknowledged = false;
      std::optional<api::AppendResult> result;
    };
    auto wait = std::make_shared<Wait>();
    if (keep) keep->recording();
    api::Appender::AppendOptions send;
    send.all_or_nothing = false;
    send.on_acknowledged = [wait] {
      {
        std::lock_guard lock(wait->mutex);
        wait->acknowledged = true;
      }
      wait->cv.notify_all();
    };
    appender.append(session, std::move(batch.events), std::move(send),
                    [wait, keep = std::move(keep), session](api::AppendResult result) mutable {
                      if (result.kind != api::AppendResult::Kind::folded) {
                        base::log_error("gateway: the reply and receipt were not folded",
                                        {{"session", session}, {"error", result.error}});
                      }
                      keep.reset();  // the session is free for its next turn
                      {
                        std::lock_guard lock(wait->mutex);
                        wait->result = std::move(result);
                      }
                      wait->cv.notify_all();
                    });
    std::unique_lock lock(wait->mutex);
    wait->cv.wait(lock, [&] { return wait->result.has_value() || (!folded && wait->acknowledged); });
    if (!folded || !wait->result || wait->result->kind != api::AppendResult::Kind::folded ||
        wait->result->events.empty()) {
      return 0;
    }
    return reply != nullptr ? wait->result->events.back().version : 0;
  }

  struct Prepared {
    const upstream::Endpoint* endpoint = nullptr;
    context::Provider provider = context::Provider::echo;
    materialise::RenderSpec spec;
    std::string body;
    std::string hash;
    std::string echo_text;      // the echo provider's reply
    std::size_t input_tokens = 0;
  };

  void report(const Call& call, int status, const Timing& timing) const {
    if (!options.on_turn) return;
    const auto upstream_time = timing.phase("upstream");
    options.on_turn(call.endpoint, status, upstream_time, (Clock::now() - timing.start) - upstream_time);
  }

  // Corrects the endpoint's margin by what the provider billed for this request.
  void calibrate(const Prepared& p, const protocol::Usage& usage) {
    if (p.provider != context::Provider::anthropic || usage.input_tokens == 0 || p.spec.margin <= 0) return;
    const auto estimated = static_cast<std::size_t>(static_cast<double>(p.input_tokens) / p.spec.margin);
    std::lock_guard lock(margins_mutex);
    margins.try_emplace(p.endpoint->name).first->second.observe(estimated, usage.input_tokens);
  }

  // What decides the request besides the session, checked before anything is recorded: a parameter the
  // endpoint's provider cannot honour is refused while the session is still untouched.
  std::variant<materialise::RenderSpec, http::Response> plan(const upstream::Endpoint& endpoint,
                                                             const std::string& model,
                                                             const protocol::Params& params, bool stream,
                                                             const std::string& instructions,
                                                             const std::string& route) {
    auto provider = context::parse_provider(endpoint.provider);
    if (!provider) return openai_error(500, "endpoint " + endpoint.name + " has no known provider", "server_error", route);
    materialise::RenderSpec spec;
    spec.provider = *provider;
    spec.model = model;
    spec.margin = margin_for(endpoint, *provider);
    spec.max_output_tokens = params.max_output_tokens.value_or(0);
    spec.instructions = instructions;
    if (*provider != context::Provider::echo) {
      auto extra = protocol::upstream_extra(params, *provider, stream);
      if (!extra) return openai_error(400, extra.error().message, "invalid_request_error", route);
      spec.extra = std::move(*extra);
    }
    return spec;
  }

  // A tool result must answer a call the session (or this input) made and nothing answered yet: anything else
  // would be recorded and then left out of every context as an orphan.
  std::optional<http::Response> check_tool_results(const std::string& session,
                                                   const std::vector<protocol::ClientMessage>& input,
                                                   const std::string& field, const std::string& route) {
    if (std::none_of(input.begin(), input.end(), [](const auto& m) { return m.role == context::Role::tool; })) {
      return std::nullopt;
    }
    std::set<std::string, std::less<>> pending;
    auto snapshot = engine.store().snapshot();
    if (auto header = fold::load_header(*snapshot, session)) {
      auto ok = cache.with_state(*snapshot, session, header->version, [&](context::SessionState& state, std::string&) {
        // The calls of the latest assistant message, less the results after it; a user message or a plain reply
        // since then closes them.
        for (auto it = state.history.rbegin(); it != state.history.rend(); ++it) {
          if (it->role == context::Role::assistant) {
            for (const auto& c : it->tool_calls) pending.insert(c.id);
            for (auto later = it.base(); later != state.history.end(); ++later) pending.erase(later->tool_call_id);
            break;
          }
          if (it->role == context::Role::user) break;
        }
      });
      if (!ok) return openai_error(500, ok.error().message, "server_error", route);
    }
    for (std::size_t i = 0; i < input.size(); ++i) {
      const auto& m = input[i];
      if (m.role == context::Role::assistant) {
        for (const auto& c : m.tool_calls) pending.insert(c.id);
      } else if (m.role == context::Role::tool) {
        if (pending.erase(m.tool_call_id) == 0) {
          std::string open;
          for (const auto& id : pending) open += (open.empty() ? "" : ", ") + id;
          return openai_error(400,
                              field + "[" + std::to_string(i) + "].tool_call_id: '" + m.tool_call_id +
                                  "' answers no pending tool call of session " + session +
                                  " (pending: " + (open.empty() ? "none" : open) + ")",
                              "invalid_request_error", route, "unknown_tool_call");
        }
      } else if (m.role == context::Role::user) {
        pending.clear();
      }
    }
    return std::nullopt;
  }

  // The input of a turn on an existing session, sent and not yet folded: the turn renders and calls the upstream
  // meanwhile, from the session as the input will make it, and checks the input's outcome before recording more.
  struct InFlight {
    std::future<api::AppendResult> result;
    std::uint64_t base_version = 0;  // the session before the input
    std::uint64_t version = 0;       // after it, as predicted
  };

  // nullopt: the session is new (its opening is recorded the plain way, waiting for the fold).
  std::optional<std::variant<InFlight, http::Response>> send_input(const std::string& session,
                                                                   const std::vector<protocol::ClientMessage>& input,
                                                                   const std::string& route) {
    auto snapshot = engine.store().snapshot();
    auto header = fold::load_header(*snapshot, session);
    if (!header) return std::nullopt;
    auto batch = input_batch(session, header, input, "", "", route);
    if (auto* refused = std::get_if<http::Response>(&batch)) return std::move(*refused);
    auto& events = std::get<EventBatch>(batch).events;
    auto promise = std::make_shared<std::promise<api::AppendResult>>();
    InFlight sent{promise->get_future(), header->version, header->version + events.size()};
    appender.append(session, std::move(events), true,
                    [promise](api::AppendResult result) { promise->set_value(std::move(result)); });
    return sent;
  }

  // The input's outcome: the version predicted, or the answer that refuses the turn.
  std::variant<std::uint64_t, http::Response> confirm_input(const std::string& session, InFlight& sent,
                                                            const std::string& route) {
    auto result = sent.result.get();
    if (result.kind == api::AppendResult::Kind::folded && !result.events.empty() &&
        std::all_of(result.events.begin(), result.events.end(), [](const auto& e) { return e.status == "accepted"; }) &&
        result.events.back().version == sent.version) {
      return sent.version;
    }
    cache.forget(session);  // it holds the input as predicted
    return append_failure(result, route);
  }

  // Materialises and renders for the endpoint the session at `version`, plus `pending`: input sent but not yet
  // folded, as it will be (versions version + 1..; send_input).
  std::variant<Prepared, http::Response> prepare(const std::string& session, std::uint64_t version,
                                                 const upstream::Endpoint& endpoint,
                                                 const materialise::RenderSpec& spec, const std::string& route,
                                                 const std::vector<protocol::ClientMessage>& pending = {}) {
    Prepared p;
    p.endpoint = &endpoint;
    p.provider = spec.provider;
    p.spec = spec;
    std::optional<http::Response> failed;
    auto snapshot = engine.store().snapshot();
    auto ok = cache.with_state(*snapshot, session, version, [&](context::SessionState& state, std::string& counted) {
      for (const auto& m : pending) {
        auto message = protocol::to_message(m);
        message.version = ++state.version;
        state.history.push_back(std::move(message));
      }
      auto rendered = materialise::render(state, p.spec, counted);
      if (!rendered) {
        failed = openai_error(400, "the context cannot be materialised: " + rendered.error().message,
                              "invalid_request_error", route, "context_length_exceeded");
        return;
      }
      p.spec.tokenizer = rendered->tokenizer;
      p.body = std::move(rendered->body);
      p.hash = std::move(rendered->hash);
      p.input_tokens = rendered->context.total_tokens;
      p.echo_text = std::move(rendered->echo);
    });
    if (!ok) return openai_error(500, ok.error().message, "server_error", route);
    if (failed) return std::move(*failed);
    return p;
  }

  // The input is on the log but no request could be made of it: a failed receipt says so.
  void record_unrendered(const std::string& session, std::uint64_t version, const materialise::RenderSpec& spec,
                         const upstream::Endpoint& endpoint, const http::Response& refusal) {
    Call call;
    call.state_version = version;
    call.provider = std::string(context::provider_name(spec.provider));
    call.endpoint = endpoint.name;
    call.model = spec.model;
    call.render = spec.to_json();
    call.error = refusal.body;
    record_outcome(session, nullptr, call);
  }

  Call call_record(const Prepared& p, std::uint64_t version, const std::string& model) const {
    Call call;
    call.request_hash = p.hash;
    call.state_version = version;
    call.provider = std::string(context::provider_name(p.provider));
    call.endpoint = p.endpoint->name;
    call.model = model;
    call.render = p.spec.to_json();
    return call;
  }

  // The upstream's failure as the client sees it (its status, or 502/504 without one).
  static http::Response upstream_failure(const Call& call, const std::string& route) {
    const int status = call.status >= 400 ? call.status
                       : (call.error.find("timed out") != std::string::npos ||
                          call.error.find("timeout") != std::string::npos)
                           ? 504
                           : 502;
    return openai_error(status, "upstream " + call.endpoint + " failed: " + call.error,
                        status == 429 ? "rate_limit_error" : "upstream_error", route);
  }

  // Calls the upstream (or answers as echo) without streaming.
  std::optional<protocol::Reply> complete(const Prepared& p, Call& call) {
    const auto start = Clock::now();
    if (p.provider == context::Provider::echo) {
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
    request.path = upstream_path(p.provider);
    request.body = p.body;
    upstream::Response response = client.call(*p.endpoint, request);
    call.latency_ms = response.latency_ms;
    call.status = response.status;
    if (!response.ok()) {
      call.error = !response.error.empty() ? response.error
                                           : "HTTP " + std::to_string(response.status) + ": " +
                                                 protocol::error_message(response.body);
      return std::nullopt;
    }
    auto reply = protocol::parse_reply(p.provider, response.body);
    if (!reply) {
      call.error = "the upstream's reply does not parse: " + reply.error().message;
      return std::nullopt;
    }
    call.usage = reply->usage;
    calibrate(p, reply->usage);
    return std::move(*reply);
  }

  // Streams the upstream's reply through `on_delta` as it arrives; the assembled reply at the end.
  std::optional<protocol::Reply> complete_streaming(const Prepared& p, Call& call,
                                                    const std::function<bool(const protocol::Delta&)>& on_delta) {
    const auto start = Clock::now();
    if (p.provider == context::Provider::echo) {
      for (const auto& d : echo_deltas(p.echo_text)) {
        if (!on_delta(d)) break;
      }
      return complete(p, call);
    }
    upstream::Request request;
    request.path = upstream_path(p.provider);
    request.body = p.body;
    protocol::StreamParser parser(p.provider);
    std::string parse_error;
    upstream::Response response = client.stream(*p.endpoint, request, [&](const upstream::SseEvent& event) {
      auto deltas = parser.feed(event.event, event.data);
      if (!deltas) {
        parse_error = deltas.error().message;
        return false;
      }
      for (const auto& d : *deltas) {
        if (!on_delta(d)) return false;
      }
      return true;
    });
    call.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    call.status = response.status;
    if (!parse_error.empty()) {
      call.error = "the upstream's stream does not parse: " + parse_error;
      return std::nullopt;
    }
    if (!response.ok()) {
      call.error = !response.error.empty() ? response.error
                                           : "HTTP " + std::to_string(response.status) + ": " +
                                                 protocol::error_message(response.body);
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

  // --- routes

  void chat(const http::Request& request, const http::Respond& respond) {
    const std::string& route = kRouteChat;
    auto parsed = protocol::parse_chat_request(request.body);
    if (!parsed) return respond(openai_error(400, parsed.error().message, "invalid_request_error", route));
    std::string session(request.header("x-session-id").value_or(""));
    if (session.empty()) session = parsed->session_id;
    if (session.empty()) {
      return respond(openai_error(400,
                                  "no session: send the X-Session-Id header (or metadata.session_id); statefold keeps "
                                  "the conversation in that session and you send only the new messages",
                                  "invalid_request_error", route, "missing_session"));
    }
    if (parsed->messages.empty()) {
      return respond(openai_error(400, "messages: send at least the new message", "invalid_request_error", route));
    }
    if (options.check_owned) {
      if (auto refused = options.check_owned(session, route)) return respond(std::move(*refused));
    }
    auto turn = turns.take(session, kTurnPatience);
    if (!turn) {
      return respond(openai_error(409, "session " + session + " has a turn in progress; send the next one when it has "
                                  "answered", "conflict", route, "turn_in_progress"));
    }
    // The turn ends before its answer goes out: a client that sends its next message as soon as it has the answer
    // must not find this turn still holding the session.
    auto answer = [&turn, &respond](http::Response response) {
      turn.reset();
      respond(std::move(response));
    };
    auto endpoint = options.router.route(session, parsed->model);
    if (!endpoint) return answer(openai_error(403, endpoint.error().message, "permission_error", route));
    const std::string model = !parsed->model.empty() ? parsed->model : (*endpoint)->model;
    auto planned = plan(**endpoint, model, parsed->params, parsed->stream, "", route);
    if (auto* refused = std::get_if<http::Response>(&planned)) return answer(std::move(*refused));
    const auto& spec = std::get<materialise::RenderSpec>(planned);
    if (auto refused = check_tool_results(session, parsed->messages, "messages", route)) {
      return answer(std::move(*refused));
    }

    Timing timing;
    // An existing session's input is rendered and sent upstream while Kafka takes it and the engine folds it
    // (send_input); a new session's is recorded first. Either way nothing more is recorded unless it was accepted
    // at the version the request was rendered from.
    std::optional<InFlight> in_flight;
    std::uint64_t version = 0;
    std::variant<Prepared, http::Response> prepared = http::Response{};
    if (auto sent = send_input(session, parsed->messages, route)) {
      if (auto* refused = std::get_if<http::Response>(&*sent)) return answer(std::move(*refused));
      in_flight = std::move(std::get<InFlight>(*sent));
      version = in_flight->version;
      prepared = prepare(session, in_flight->base_version, **endpoint, spec, route, parsed->messages);
      if (std::holds_alternative<http::Response>(prepared)) {
        auto confirmed = confirm_input(session, *in_flight, route);
        if (auto* refused = std::get_if<http::Response>(&confirmed)) return answer(std::move(*refused));
      }
    } else {
      auto recorded = record_input(session, parsed->messages, model, "", route);
      if (auto* refused = std::get_if<http::Response>(&recorded)) return answer(std::move(*refused));
      version = std::get<std::uint64_t>(recorded);
      timing.mark("input");
      prepared = prepare(session, version, **endpoint, spec, route);
    }
    if (auto* refused = std::get_if<http::Response>(&prepared)) {
      record_unrendered(session, version, spec, **endpoint, *refused);
      return answer(std::move(*refused));
    }
    timing.mark("render");
    const Prepared& p = std::get<Prepared>(prepared);
    Call call = call_record(p, version, model);
    // The pipelined input must have been accepted as predicted before anything else is recorded. If it was not
    // (another writer got in between), the call was made for a state that never was: its receipt says so and
    // records nothing re-renderable, and the client gets the conflict.
    auto input_confirmed = [&]() -> std::optional<http::Response> {
      if (!in_flight) return std::nullopt;
      auto confirmed = confirm_input(session, *in_flight, route);
      timing.mark("input");
      if (std::holds_alternative<std::uint64_t>(confirmed)) return std::nullopt;
      call.state_version = 0;
      call.render.clear();
      call.error = "the input was not recorded as predicted; the request was rendered for a state that never was: " +
                   std::get<http::Response>(confirmed).body;
      record_outcome(session, nullptr, call);
      return std::get<http::Response>(confirmed);
    };
    const std::string id = "chatcmpl-" + random_hex(12);
    const std::int64_t created = now_us() / 1000000;
    std::vector<std::pair<std::string, std::string>> headers{{"x-session-id", session},
                                                             {"x-statefold-state-version", std::to_string(version)},
                                                             {"x-statefold-request-hash", p.hash}};

    if (!parsed->stream) {
      auto reply = complete(p, call);
      timing.mark("upstream");
      if (auto refused = input_confirmed()) return answer(std::move(*refused));
      record_outcome(session, reply ? &*reply : nullptr, call, false,
                     std::make_shared<TurnLocks::Held>(std::move(*std::exchange(turn, std::nullopt))));
      timing.mark("record");
      if (!reply) {
        auto failure = upstream_failure(call, route);
        report(call, failure.status, timing);
        return answer(std::move(failure));
      }
      auto completion = http::json_response(200, protocol::chat_completion_json(*reply, id, model, created), route);
      completion.headers = std::move(headers);
      completion.headers.emplace_back("server-timing", timing.header());
      report(call, 200, timing);
      return answer(std::move(completion));
    }

    auto stream = http::BodyStream::make();
    protocol::ChatChunkWriter writer(id, model, created, parsed->include_usage);
    bool started = false;
    auto start = [&] {
      if (started) return;
      started = true;
      http::Response head{200, "", "text/event-stream", headers, route, stream};
      head.headers.emplace_back("cache-control", "no-cache");
      respond(std::move(head));
      stream->write(writer.start());
    };
    auto reply = complete_streaming(p, call, [&](const protocol::Delta& d) {
      start();
      return stream->write(writer.delta(d));
    });
    timing.mark("upstream");
    if (auto refused = input_confirmed()) {
      if (!started) return answer(std::move(*refused));
      stream->write("data: " + refused->body + "\n\n");
      stream->close();
      return;
    }
    record_outcome(session, reply ? &*reply : nullptr, call, false,
                   std::make_shared<TurnLocks::Held>(std::move(*std::exchange(turn, std::nullopt))));
    report(call, reply || started ? 200 : upstream_failure(call, route).status, timing);
    if (!reply && !started) return answer(upstream_failure(call, route));
    start();
    if (reply) {
      stream->write(writer.finish(*reply));
    } else {
      stream->write("data: " + protocol::openai_error_json("upstream " + call.endpoint + " failed: " + call.error,
                                                           "upstream_error") +
                    "\n\n");
    }
    stream->close();
  }

  void responses(const http::Request& request, const http::Respond& respond) {
    const std::string& route = kRouteResponses;
    auto parsed = protocol::parse_responses_request(request.body);
    if (!parsed) return respond(openai_error(400, parsed.error().message, "invalid_request_error", route));
    std::string session;
    std::string previous = parsed->previous_response_id;
    if (!previous.empty()) {
      auto at = parse_response_id(previous);
      if (!at) {
        return respond(openai_error(404, "previous_response_id: no response " + previous, "invalid_request_error", route));
      }
      session = at->first;
    } else if (!parsed->conversation.empty()) {
      session = parsed->conversation;
    } else if (auto header = request.header("x-session-id")) {
      session = std::string(*header);
    } else if (!parsed->session_id.empty()) {
      session = parsed->session_id;
    } else {
      session = "resp-" + random_hex(12);
    }
    if (parsed->input.empty()) return respond(openai_error(400, "input: send the new input", "invalid_request_error", route));
    if (options.check_owned) {
      if (auto refused = options.check_owned(session, route)) return respond(std::move(*refused));
    }
    auto turn = turns.take(session, kTurnPatience);
    if (!turn) {
      return respond(openai_error(409, "session " + session + " has a turn in progress; send the next one when it has "
                                  "answered", "conflict", route, "turn_in_progress"));
    }
    // The turn ends before its answer goes out: a client that sends its next message as soon as it has the answer
    // must not find this turn still holding the session.
    auto answer = [&turn, &respond](http::Response response) {
      turn.reset();
      respond(std::move(response));
    };
    auto snapshot = engine.store().snapshot();
    auto header = fold::load_header(*snapshot, session);
    if (!previous.empty()) {
      // previous_response_id continues the conversation where that response left it: it must be the session's
      // latest reply (a failed turn since then left no reply, so it does not count), else this would silently
      // drop the replies that came after it.
      const auto at = parse_response_id(previous);
      if (!header || at->second == 0 || at->second > header->version) {
        return answer(openai_error(404, "previous_response_id: no response " + previous, "invalid_request_error", route));
      }
      bool later_reply = false;
      auto ok = cache.with_state(*snapshot, session, header->version, [&](context::SessionState& state, std::string&) {
        for (const auto& m : state.history) {
          if (m.version > at->second && m.role == context::Role::assistant) later_reply = true;
        }
      });
      if (!ok) return answer(openai_error(500, ok.error().message, "server_error", route));
      if (later_reply) {
        return answer(openai_error(409,
                                   "previous_response_id: " + previous + " is not the latest response of session " +
                                       session + "; fork the session at version " + std::to_string(at->second) +
                                       " (POST /v1/sessions/{id}/fork) to branch from it",
                                   "conflict", route, "not_latest_response"));
      }
    }
    // Without a model, the session keeps the one it has.
    const std::string requested = !parsed->model.empty() ? parsed->model : (header ? header->model : std::string());
    auto endpoint = options.router.route(session, requested);
    if (!endpoint) return answer(openai_error(403, endpoint.error().message, "permission_error", route));
    const std::string model = !requested.empty() ? requested : (*endpoint)->model;
    // A new session takes the instructions as its system prompt; a later turn's instructions apply to that turn.
    auto planned = plan(**endpoint, model, parsed->params, parsed->stream, header ? parsed->instructions : "", route);
    if (auto* refused = std::get_if<http::Response>(&planned)) return answer(std::move(*refused));
    const auto& spec = std::get<materialise::RenderSpec>(planned);
    if (auto refused = check_tool_results(session, parsed->input, "input", route)) return answer(std::move(*refused));

    Timing timing;
    auto recorded = record_input(session, parsed->input, model, parsed->instructions, route);
    if (auto* refused = std::get_if<http::Response>(&recorded)) return answer(std::move(*refused));
    const std::uint64_t version = std::get<std::uint64_t>(recorded);
    timing.mark("input");
    auto prepared = prepare(session, version, **endpoint, spec, route);
    if (auto* refused = std::get_if<http::Response>(&prepared)) {
      record_unrendered(session, version, spec, **endpoint, *refused);
      return answer(std::move(*refused));
    }
    timing.mark("render");
    const Prepared& p = std::get<Prepared>(prepared);
    Call call = call_record(p, version, model);

    protocol::ResponseMeta meta;
    // The reply will follow the input and the receipt: a stream announces its id before the upstream answers.
    meta.id = response_id(session, version + 2);
    meta.model = model;
    meta.created_at = now_us() / 1000000;
    meta.previous_response_id = previous;
    meta.conversation = parsed->conversation;
    meta.instructions = parsed->instructions;
    meta.store = parsed->store;
    meta.params = parsed->params;
    std::vector<std::pair<std::string, std::string>> headers{{"x-session-id", session},
                                                             {"x-statefold-state-version", std::to_string(version)},
                                                             {"x-statefold-request-hash", p.hash}};
    if (!parsed->stream) {
      auto reply = complete(p, call);
      timing.mark("upstream");
      const std::uint64_t reply_version = record_outcome(session, reply ? &*reply : nullptr, call);
      timing.mark("record");
      if (!reply) {
        auto failure = upstream_failure(call, route);
        report(call, failure.status, timing);
        return answer(std::move(failure));
      }
      if (reply_version != 0) meta.id = response_id(session, reply_version);
      auto response = http::json_response(200, protocol::response_json(*reply, meta), route);
      response.headers = std::move(headers);
      response.headers.emplace_back("server-timing", timing.header());
      report(call, 200, timing);
      return answer(std::move(response));
    }
    auto stream = http::BodyStream::make();
    protocol::ResponseEventWriter writer(meta);
    bool started = false;
    auto start = [&] {
      if (started) return;
      started = true;
      http::Response head{200, "", "text/event-stream", headers, route, stream};
      head.headers.emplace_back("cache-control", "no-cache");
      respond(std::move(head));
      stream->write(writer.start());
    };
    auto reply = complete_streaming(p, call, [&](const protocol::Delta& d) {
      start();
      return stream->write(writer.delta(d));
    });
    timing.mark("upstream");
    record_outcome(session, reply ? &*reply : nullptr, call);
    turn.reset();  // the turn's events are folded: the session is free before the stream's last frames go out
    report(call, reply || started ? 200 : upstream_failure(call, route).status, timing);
    if (!reply && !started) return answer(upstream_failure(call, route));
    start();
    if (reply) {
      stream->write(writer.finish(*reply));
    } else {
      stream->write("event: error\ndata: " +
                    protocol::openai_error_json("upstream " + call.endpoint + " failed: " + call.error,
                                                "upstream_error") +
                    "\n\n");
    }
    stream->close();
  }

  http::Response get_response(const std::string& id) {
    const std::string& route = kRouteGetResponse;
    auto at = parse_response_id(id);
    if (!at) return openai_error(404, "no response " + id, "invalid_request_error", route);
    auto snapshot = engine.store().snapshot();
    auto entry = snapshot->get(fold::key::history(at->first, at->second));
    if (!entry) return openai_error(404, "no response " + id, "invalid_request_error", route);
    const auto* e = flatbuffers::GetRoot<state::HistoryEntry>(entry->data());
    const auto* event = schema::GetEvent(e->event()->data());
    const auto* message = event->payload_as_Message();
    if (message == nullptr || message->role() != schema::Role::assistant) {
      return openai_error(404, "no response " + id, "invalid_request_error", route);
    }
    protocol::Reply reply;
    if (message->content() != nullptr) {
      for (const auto* part : *message->content()) {
        if (part->text() != nullptr) reply.text += part->text()->str();
      }
    }
    if (message->tool_calls() != nullptr) {
      for (const auto* c : *message->tool_calls()) {
        reply.tool_calls.push_back({c->id()->str(), c->name()->str(), c->arguments() ? c->arguments()->str() : ""});
      }
    }
    reply.finish_reason = reply.tool_calls.empty() ? "stop" : "tool_calls";
    protocol::ResponseMeta meta;
    meta.id = id;
    meta.created_at = event->occurred_at_us() / 1000000;
    // The receipt recorded right before the reply has the model and usage.
    if (auto prior = snapshot->get(fold::key::history(at->first, at->second - 1))) {
      const auto* n = flatbuffers::GetRoot<state::HistoryEntry>(prior->data());
      if (const auto* receipt = schema::GetEvent(n->event()->data())->payload_as_InferenceReceipt()) {
        if (receipt->model() != nullptr) meta.model = receipt->model()->str();
        if (const auto* usage = receipt->usage()) {
          reply.usage = {usage->input_tokens(), usage->output_tokens(), usage->cached_tokens()};
        }
      }
    }
    reply.model = meta.model;
    return http::json_response(200, protocol::response_json(reply, meta), route);
  }

  http::Response context_overview(const http::Request& request, const std::string& session) {
    const std::string& route = kRouteContext;
    turns.settle(session, std::chrono::seconds(2));
    auto snapshot = engine.store().snapshot();
    auto header = fold::load_header(*snapshot, session);
    if (!header) return http::error_response(404, "no session " + session, route);
    std::string requested;
    if (auto it = request.query.find("endpoint"); it != request.query.end()) requested = it->second;
    if (auto it = request.query.find("model"); it != request.query.end() && requested.empty()) requested = it->second;
    auto endpoint = options.router.route(session, requested);
    if (!endpoint) return http::error_response(403, endpoint.error().message, route);
    materialise::RenderSpec spec;
    auto provider = context::parse_provider((*endpoint)->provider);
    if (auto it = request.query.find("provider"); it != request.query.end()) {
      provider = context::parse_provider(it->second);
      if (!provider) {
        return http::error_response(400, "provider: one of openai_chat, openai_responses, anthropic, echo", route);
      }
    }
    spec.provider = provider.value_or(context::Provider::echo);
    spec.model = (*endpoint)->model.empty() ? header->model : (*endpoint)->model;
    if (auto it = request.query.find("model"); it != request.query.end()) spec.model = it->second;
    spec.margin = spec.provider == context::Provider::anthropic ? tokenizer::kAnthropicMargin : 1.0;
    std::optional<http::Response> answer;
    auto ok = cache.with_state(*snapshot, session, header->version, [&](context::SessionState& state, std::string& counted) {
      auto rendered = materialise::render(state, spec, counted);
      if (!rendered) {
        answer = http::error_response(422, "the context cannot be materialised: " + rendered.error().message, route);
        return;
      }
      answer = http::json_response(200, context::overview_json(rendered->context, spec.provider, rendered->body), route);
    });
    if (!ok) return http::error_response(500, ok.error().message, route);
    return std::move(*answer);
  }
};

Gateway::Gateway(Options options, runtime::Engine& engine, api::Appender& appender)
    : _impl(std::make_unique<Impl>(std::move(options), engine, appender)) {}

Gateway::~Gateway() { stop(); }

void Gateway::stop() { _impl->workers.stop(); }

void Gateway::settle(std::string_view session_id) { _impl->turns.settle(session_id, std::chrono::seconds(2)); }

bool Gateway::handles(const http::Request& request) {
  const std::string& p = request.path;
  return p == "/v1/chat/completions" || p == "/v1/responses" || p.starts_with(kResponsesPrefix) ||
         (p.starts_with(kSessionsPrefix) && p.ends_with(kContextSuffix) &&
          p.size() > kSessionsPrefix.size() + kContextSuffix.size());
}

void Gateway::handle(http::Request request, http::Respond respond) {
  const std::string path = request.path;
  if (path.starts_with(kSessionsPrefix)) {
    if (request.method != "GET") return respond(http::error_response(405, "use GET", kRouteContext));
    const std::string session =
        path.substr(kSessionsPrefix.size(), path.size() - kSessionsPrefix.size() - kContextSuffix.size());
    return respond(_impl->context_overview(request, session));
  }
  if (path.starts_with(kResponsesPrefix)) {
    if (request.method != "GET") return respond(http::error_response(405, "use GET", kRouteGetResponse));
    return respond(_impl->get_response(path.substr(kResponsesPrefix.size())));
  }
  if (request.method != "POST") return respond(http::error_response(405, "use POST", path));
  // The turn blocks (folding, the upstream): a worker runs it, not the HTTP server's I/O thread.
  auto shared = std::make_shared<std::pair<http::Request, http::Respond>>(std::move(request), std::move(respond));
  const bool queued = _impl->workers.submit([impl = _impl.get(), shared] {
    try {
      if (shared->first.path == "/v1/chat/completions") {
        impl->chat(shared->first, shared->second);
      } else {
        impl->responses(shared->first, shared->second);
      }
    } catch (const std::exception& e) {
      base::log_error("gateway turn failed", {{"error", e.what()}});
      shared->second(openai_error(500, std::string("internal error: ") + e.what(), "server_error", shared->first.path));
    }
  });
  if (!queued) shared->second(openai_error(503, "serve is shutting down", "server_error", path));
}

}  // namespace statefold::gateway
