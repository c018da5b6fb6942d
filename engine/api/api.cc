#include "engine/api/api.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/base/text.h"
#include "engine/base/time.h"
#include "engine/codec/codec.h"
#include "engine/fold/as_of.h"
#include "engine/fold/read.h"
#include "engine/fork/fork.h"
#include "engine/log/log.h"
#include "engine/snapshot/snapshot.h"
#include "engine/view/view.h"
#include "statefold/schema/events_generated.h"

namespace statefold::api {

namespace json = boost::json;

namespace {

constexpr std::string_view kSessionsPrefix = "/v1/sessions/";
constexpr std::string_view kEventsSuffix = "/events";
constexpr std::string_view kForkSuffix = "/fork";
const std::string kRouteAppend = "POST /v1/sessions/{id}/events";
const std::string kRouteHistory = "GET /v1/sessions/{id}/events";
const std::string kRouteSession = "GET /v1/sessions/{id}";
const std::string kRouteList = "GET /v1/sessions";
const std::string kRouteFork = "POST /v1/sessions/{id}/fork";
const std::string kRouteUsage = "GET /v1/usage";
// How long a read waits for the session's writes that were answered before they were folded (a gateway reply).
constexpr std::chrono::milliseconds kSettlePatience{2000};

// Every error answer has OpenAI's error shape, {"error": {"message", "type", "param", "code"}} (plus the fields a
// few add beside it): the session API shares /v1 with the OpenAI-compatible routes, and OpenAI's SDKs (and the tools
// built for them) keep an error's message, type and code only from that shape.
std::string_view error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 409: return "conflict";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json::object error_object(int status, std::string_view message, std::string_view code = {}) {
  return json::object{{"message", base::valid_utf8(message)},
                      {"type", error_type(status)},
                      {"param", nullptr},
                      {"code", code.empty() ? json::value(nullptr) : json::value(code)}};
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// A query parameter as an unsigned number; a malformed one is a 400 naming it.
std::optional<http::Response> query_u64(const http::Request& request, const std::string& name, std::uint64_t& out,
                                        const std::string& route) {
  auto it = request.query.find(name);
  if (it == request.query.end()) return std::nullopt;
  auto v = parse_u64(it->second);
  if (!v) return error_response(400, name + ": expected a non-negative integer, got \"" + it->second + "\"", route);
  out = *v;
  return std::nullopt;
}

// An Idempotency-Key that is already an event id is used as is; any other key is hashed into one, so the same
// key always names the same event.
std::string event_id_from_key(std::string_view key, std::optional<std::size_t> index) {
  if (!index) {
    if (auto id = codec::parse_event_id(key)) return codec::event_id_to_string(*id);
  }
  base::Sha256 h;
  h.update_framed(key);
  if (index) h.update_u64(*index);
  auto digest = h.finish();
  return base::to_hex(std::span<const std::uint8_t>(digest.data(), 16));
}

// Kafka could not take a write: the client may retry shortly (the producer recovers by itself).
http::Response unavailable(const std::string& why, const std::string& route) {
  auto response = error_response(503, why, route);
  response.headers.emplace_back("retry-after", "1");
  return response;
}

json::object outcome_json(const append::EventOutcome& e) {
  json::object o{{"event_id", e.event_id},
                 {"status", append::status_name(e.status)},
                 {"partition", e.partition},
                 {"offset", e.offset}};
  if (e.status != append::Status::appended && e.status != append::Status::pending) o["version"] = e.version;
  if (!e.reason.empty()) o["reason"] = e.reason;
  return o;
}

}  // namespace

http::Response error_response(int status, std::string_view message, std::string route, std::string_view code) {
  return http::json_response(status, json::serialize(json::object{{"error", error_object(status, message, code)}}),
                             std::move(route));
}

Api::Api(ApiOptions options, runtime::Engine& engine, append::Sink& appender)
    : _options(std::move(options)), _engine(engine), _appender(appender) {}

void Api::handle(http::Request request, const auth::Principal& caller, http::Respond respond) {
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  try {
    if (path == "/healthz") {
      respond(http::json_response(200, R"({"status":"ok"})", "/healthz"));
      return;
    }
    if (path == "/readyz") {
      respond(ready());
      return;
    }
    if (path == "/metrics" && _options.scrape_metrics) {
      http::Response r{200, _options.scrape_metrics(), "text/plain; version=0.0.4; charset=utf-8", {}, "/metrics", {}};
      respond(std::move(r));
      return;
    }
    if (path == "/v1/snapshots") {
      const std::string route = "/v1/snapshots";
      if (request.method == "POST") {
        auto taken = snapshot::create(_engine.store(), _engine.options().data_dir);
        respond(taken ? http::json_response(201, snapshot::manifest_json(*taken), route)
                      : error_response(500, taken.error().message, route));
      } else if (get) {
        json::array all;
        for (const auto& m : snapshot::list(_engine.options().data_dir)) all.push_back(json::parse(snapshot::manifest_json(m)));
        respond(http::json_response(200, json::serialize(json::object{{"snapshots", std::move(all)}}), route));
      } else {
        respond(error_response(405, "use GET or POST", route));
      }
      return;
    }
    if (path == "/v1/usage") {
      if (!get) return respond(error_response(405, "use GET", kRouteUsage));
      usage(request, caller, std::move(respond));
      return;
    }
    if (path == "/v1/sessions" || path == "/v1/sessions/") {
      if (!get) return respond(error_response(405, "use GET", kRouteList));
      list_sessions(request, caller, std::move(respond));
      return;
    }
    // Routes match the path as sent; only then is the session id decoded, so an id holding "/events" (sent as
    // %2Fevents) stays an id.
    const std::string& raw = request.raw_path.empty() ? path : request.raw_path;
    if (raw.starts_with(kSessionsPrefix) && raw.size() > kSessionsPrefix.size()) {
      const std::string_view rest = std::string_view(raw).substr(kSessionsPrefix.size());
      auto session_id = [&](std::string_view suffix) {
        return http::decode_path_part(rest.substr(0, rest.size() - suffix.size())).value_or("");
      };
      // Another tenant's session does not exist for the caller: 404, as for a session that never was.
      auto foreign = [&](const std::string& id, const std::string& route) {
        if (caller.owns(id)) return false;
        respond(error_response(404, caller.no_such_session(id), route));
        return true;
      };
      if (rest.ends_with(kEventsSuffix) && rest.size() > kEventsSuffix.size()) {
        std::string id = session_id(kEventsSuffix);
        if (foreign(id, request.method == "POST" ? kRouteAppend : kRouteHistory)) return;
        if (request.method == "POST") {
          append(request, caller, id, std::move(respond));
        } else if (!get) {
          respond(error_response(405, "use GET or POST", kRouteHistory));
        } else if (auto refused = check_owned(id, kRouteHistory)) {
          respond(std::move(*refused));  // this store may hold an old copy of it: only its owner's is current
        } else {
          respond(get_history(request, id));
        }
        return;
      }
      if (rest.ends_with(kForkSuffix) && rest.size() > kForkSuffix.size()) {
        std::string id = session_id(kForkSuffix);
        if (foreign(id, kRouteFork)) return;
        if (request.method == "POST") {
          fork(request, caller, id, std::move(respond));
        } else {
          respond(error_response(405, "use POST", kRouteFork));
        }
        return;
      }
      std::string id = session_id({});
      if (foreign(id, kRouteSession)) return;
      if (!get) return respond(error_response(405, "use GET", kRouteSession));
      if (auto refused = check_owned(id, kRouteSession)) return respond(std::move(*refused));
      respond(get_session(request, id));
      return;
    }
    respond(error_response(404, "no such route: " + request.method + " " + path));
  } catch (const std::exception& e) {
    respond(error_response(500, std::string("internal error: ") + e.what()));
  }
}

void Api::append(const http::Request& request, const auth::Principal& caller, const std::string& session_id,
                 http::Respond respond) {
  const std::string& route = kRouteAppend;
  auto bad = [&](std::string message) { respond(error_response(400, message, route)); };

  json::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec) return bad("body: invalid JSON: " + ec.message());
  json::array items;
  const bool batch = body.is_array();
  if (batch) {
    items = std::move(body.as_array());
  } else if (body.is_object()) {
    items.push_back(std::move(body));
  } else {
    return bad("body: expected an event object or an array of events");
  }
  if (items.empty()) return bad("body: no events");
  if (items.size() > _options.max_events_per_append) {
    return respond(error_response(
        413, "body: at most " + std::to_string(_options.max_events_per_append) + " events per append", route));
  }
  std::uint64_t expected = 0;
  const bool has_expected = request.query.contains("expected_version");
  if (auto error = query_u64(request, "expected_version", expected, route)) return respond(std::move(*error));
  const auto idempotency_key = request.header("idempotency-key");
  bool wait = true;
  if (auto it = request.query.find("wait"); it != request.query.end()) {
    if (it->second != "true" && it->second != "false") return bad("wait: expected true or false");
    wait = it->second == "true";
  }

  append::Batch events(session_id, "http", has_expected ? std::optional(expected) : std::nullopt);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string where = batch ? "events[" + std::to_string(i) + "]." : "";
    if (!items[i].is_object()) return bad((batch ? "events[" + std::to_string(i) + "]" : "body") + ": expected an object");
    const std::string id = idempotency_key ? event_id_from_key(*idempotency_key, batch ? std::optional(i) : std::nullopt)
                                           : std::string();
    if (auto added = events.add_json(json::serialize(items[i]), id); !added) return bad(where + added.error().message);
  }

  auto built = events.take();
  // Erasing a session destroys content for good: an admin's act, not a writer's. Checked on the built events, as
  // the payload type may be given by name or by number.
  for (std::size_t i = 0; i < built.size(); ++i) {
    if (flatbuffers::GetRoot<schema::Event>(built[i].second.data())->payload_type() !=
        schema::Payload::ErasureRequest) {
      continue;
    }
    if (caller.may(auth::Role::admin)) {
      base::log_info("erasure requested", {{"session", session_id}, {"key", caller.key_name}});
    } else {
      return respond(error_response(403,
                                    (batch ? "events[" + std::to_string(i) + "]." : std::string()) +
                                        "payload_type: an ErasureRequest needs the admin role, which key \"" +
                                        caller.key_name + "\" lacks",
                                    route, "insufficient_role"));
    }
  }

  if (wait) {
    if (auto refused = check_owned(session_id, route)) return respond(std::move(*refused));
  }

  append::Options send;
  send.wait = wait;
  _appender.append(session_id, std::move(built), std::move(send), [respond, session_id, route](append::Outcome result) {
    json::object o{{"session_id", session_id}};
    json::array outcomes;
    for (const auto& e : result.events) outcomes.push_back(outcome_json(e));
    switch (result.kind) {
      case append::Outcome::Kind::unavailable:
        return respond(unavailable(result.error, route));
      case append::Outcome::Kind::timed_out:
        o["error"] = error_object(504, result.error);
        o["events"] = std::move(outcomes);
        return respond(http::json_response(504, json::serialize(o), route));
      case append::Outcome::Kind::appended:
        o["events"] = std::move(outcomes);
        return respond(http::json_response(202, json::serialize(o), route));
      case append::Outcome::Kind::folded:
        break;
    }
    const append::EventOutcome* rejected = result.first_rejected();
    o["version"] = result.events.empty() ? 0 : result.events.back().version;
    o["events"] = std::move(outcomes);
    if (rejected != nullptr) {
      o["error"] = error_object(409, rejected->reason);
      o["current_version"] = result.events.back().version;
      return respond(http::json_response(409, json::serialize(o), route));
    }
    respond(http::json_response(200, json::serialize(o), route));
  });
}

std::optional<http::Response> Api::check_owned(const std::string& session_id, const std::string& route) {
  return runtime::refuse_unless_owned(_engine.ownership(session_id), session_id, route);
}

void Api::fork(const http::Request& request, const auth::Principal& caller, const std::string& parent,
               http::Respond respond) {
  const std::string& route = kRouteFork;
  json::error_code ec;
  json::value body = request.body.empty() ? json::value(json::object()) : json::parse(request.body, ec);
  if (ec || !body.is_object()) return respond(error_response(400, "body: expected a JSON object", route));
  const json::object& args = body.as_object();
  // A child named here goes on the parent's partition, so the instance that folds the parent folds it too.
  fork::Request fork_request{parent, 0,
                             runtime::random_session_id(
                                 parent + "-fork-", 4, [this](std::string_view id) { return _engine.ownership(id); },
                                 _engine.ownership(parent).partition),
                             append::now_us()};
  if (const auto* v = args.if_contains("version")) {
    if (!v->is_uint64() && !(v->is_int64() && v->as_int64() > 0)) {
      return respond(error_response(400, "version: expected a positive integer", route));
    }
    fork_request.version = v->to_number<std::uint64_t>();
    if (fork_request.version == 0) return respond(error_response(400, "version: must be at least 1", route));
  }
  if (const auto* child = args.if_contains("session_id")) {
    if (!child->is_string() || child->as_string().empty() || child->as_string().size() > 256) {
      return respond(error_response(400, "session_id: expected a session id of 1..256 bytes", route));
    }
    fork_request.child = std::string(child->as_string());
    if (!caller.owns(fork_request.child)) {
      return respond(error_response(404, "session_id: " + caller.no_such_session(fork_request.child), route));
    }
  }
  // The parent is read from this instance's store, so the request runs where the parent is folded. A child named
  // onto a partition another instance folds is appended here and folded there: the answer is then 202, without
  // waiting for that fold (read the child through any instance).
  if (auto refused = check_owned(parent, route)) return respond(std::move(*refused));
  const bool child_elsewhere = _engine.ownership(fork_request.child).state == runtime::Ownership::State::elsewhere;
  if (!child_elsewhere) {
    if (auto refused = check_owned(fork_request.child, route)) return respond(std::move(*refused));
  }

  auto snapshot = _engine.store().snapshot();
  auto header = fold::load_header(*snapshot, parent);
  if (!header || !fold::begun(*header)) return respond(error_response(404, "no session " + parent, route));
  if (fork_request.version > header->version) {
    return respond(
        error_response(400, "version: session " + parent + " is at version " + std::to_string(header->version), route));
  }
  auto plan = fork::plan(*snapshot, fork_request);
  if (!plan) return respond(error_response(409, plan.error().message, route));
  const std::uint64_t parent_version = plan->parent_version;
  const std::size_t count = plan->events.size();
  const std::string child = plan->child;
  append::Options send;
  send.wait = !child_elsewhere;
  _appender.append(child, std::move(plan->events), send,
                   [respond, child, parent, parent_version, count, route](append::Outcome result) {
                     if (result.kind == append::Outcome::Kind::unavailable) {
                       return respond(unavailable(result.error, route));
                     }
                     if (result.kind == append::Outcome::Kind::appended) {
                       json::object o{{"session_id", child},
                                      {"parent", json::object{{"session_id", parent}, {"version", parent_version}}},
                                      {"events", count},
                                      {"folded", false}};
                       return respond(http::json_response(202, json::serialize(o), route));
                     }
                     if (result.kind != append::Outcome::Kind::folded || result.events.empty()) {
                       return respond(error_response(504, result.error, route));
                     }
                     const auto& first = result.events.front();
                     if (first.status != append::Status::accepted) {
                       json::object o{{"error", error_object(409, "session " + child + " already exists")},
                                      {"current_version", result.events.back().version}};
                       return respond(http::json_response(409, json::serialize(o), route));
                     }
                     json::object o{{"session_id", child},
                                    {"parent", json::object{{"session_id", parent}, {"version", parent_version}}},
                                    {"version", result.events.back().version},
                                    {"events", count}};
                     respond(http::json_response(201, json::serialize(o), route));
                   });
}

http::Response Api::get_session(const http::Request& request, const std::string& session_id) {
  std::uint64_t messages = 100;
  if (auto error = query_u64(request, "messages", messages, kRouteSession)) return *error;
  _appender.settle(session_id, kSettlePatience);
  auto snapshot = _engine.store().snapshot();
  // Time travel: ?version=N or ?at=RFC3339 (the last version whose record time is at or before it).
  const bool has_version = request.query.contains("version");
  const auto at = request.query.find("at");
  if (has_version && at != request.query.end()) {
    return error_response(400, "give version or at, not both", kRouteSession);
  }
  if (has_version || at != request.query.end()) {
    std::uint64_t version = 0;
    if (auto error = query_u64(request, "version", version, kRouteSession)) return *error;
    if (at != request.query.end()) {
      auto ms = base::parse_time_ms(at->second);
      if (!ms) return error_response(400, "at: " + ms.error().message, kRouteSession);
      auto found = fold::version_at_time(*snapshot, session_id, *ms);
      if (!found) return error_response(404, "no session " + session_id, kRouteSession);
      if (*found == 0) {
        return error_response(404, "session " + session_id + " had no events at " + at->second, kRouteSession);
      }
      version = *found;
    }
    auto past = view::session_json_at(*snapshot, session_id, version, {messages});
    if (!past) {
      const bool missing = past.error().message.starts_with("no session");
      return error_response(missing ? 404 : 400, (missing ? "" : "version: ") + past.error().message, kRouteSession);
    }
    return http::json_response(200, std::move(*past), kRouteSession);
  }
  auto body = view::session_json(*snapshot, session_id, {messages});
  if (!body) return error_response(404, "no session " + session_id, kRouteSession);
  return http::json_response(200, std::move(*body), kRouteSession);
}

http::Response Api::get_history(const http::Request& request, const std::string& session_id) {
  std::uint64_t from = 1;
  std::uint64_t limit = 100;
  if (auto error = query_u64(request, "from_version", from, kRouteHistory)) return *error;
  if (auto error = query_u64(request, "limit", limit, kRouteHistory)) return *error;
  if (limit == 0 || limit > _options.max_page) {
    return error_response(400, "limit: must be 1.." + std::to_string(_options.max_page), kRouteHistory);
  }
  _appender.settle(session_id, kSettlePatience);
  auto snapshot = _engine.store().snapshot();
  auto body = view::history_json(*snapshot, session_id, from, limit);
  if (!body) return error_response(404, "no session " + session_id, kRouteHistory);
  return http::json_response(200, std::move(*body), kRouteHistory);
}

void Api::list_sessions(const http::Request& request, const auth::Principal& caller, http::Respond respond) {
  std::uint64_t limit = 100;
  if (auto error = query_u64(request, "limit", limit, kRouteList)) return respond(std::move(*error));
  if (limit == 0 || limit > _options.max_page) {
    return respond(error_response(400, "limit: must be 1.." + std::to_string(_options.max_page), kRouteList));
  }
  auto prefix_param = request.query.find("prefix");
  auto cursor_param = request.query.find("cursor");
  std::string prefix = prefix_param == request.query.end() ? "" : prefix_param->second;
  std::string cursor = cursor_param == request.query.end() ? "" : cursor_param->second;
  // Only the caller's namespace is listed: a prefix within it narrows the listing, one that would reach beyond it
  // is narrowed to it, and one outside it lists nothing.
  const std::string own = caller.session_prefix();
  if (!prefix.starts_with(own)) {
    if (!own.starts_with(prefix)) {
      return respond(http::json_response(200, R"({"sessions":[],"next_cursor":null})", kRouteList));
    }
    prefix = own;
  }
  if (!_options.list_sessions) {
    auto snapshot = _engine.store().snapshot();
    return respond(http::json_response(200, view::sessions_json(*snapshot, prefix, cursor, limit), kRouteList));
  }
  _options.list_sessions(std::move(prefix), std::move(cursor), limit,
                         [respond = std::move(respond)](base::Result<std::string> page) {
                           if (page) return respond(http::json_response(200, std::move(*page), kRouteList));
                           auto refused = error_response(503, "the listing cannot be made now: " + page.error().message,
                                                         kRouteList, "partition_moving");
                           refused.headers.emplace_back("Retry-After", "1");
                           respond(std::move(refused));
                         });
}

void Api::usage(const http::Request& request, const auth::Principal& caller, http::Respond respond) {
  const std::string& route = kRouteUsage;
  // Defaults: this UTC month so far.
  const auto month = auth::budget_window(auth::Period::month, std::chrono::system_clock::now());
  std::string from = month.from_day;
  std::string to = month.through_day;
  auto is_day = [](const std::string& d) {
    return d.size() == 10 && d[4] == '-' && d[7] == '-' &&
           std::all_of(d.begin(), d.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
  };
  for (auto [name, value] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
    if (auto it = request.query.find(name); it != request.query.end()) {
      if (!is_day(it->second)) return respond(error_response(400, std::string(name) + ": expected YYYY-MM-DD", route));
      *value = it->second;
    }
  }
  if (from > to) return respond(error_response(400, "from: after to", route));
  // A tenant's key sees its tenant's usage; an operator's sees every tenant's, or the one it names.
  std::optional<std::string> tenant;
  if (!caller.tenant.empty()) tenant = caller.tenant;
  if (auto it = request.query.find("tenant"); it != request.query.end()) {
    if (tenant && *tenant != it->second) {
      return respond(error_response(403,
                                    "tenant: key \"" + caller.key_name + "\" belongs to tenant " + *tenant +
                                        " and sees only its usage",
                                    route, "insufficient_role"));
    }
    tenant = it->second;
  }
  // The caller's own budget beside the figures: what it may still spend. Asked first, on this thread, so that the
  // report's answer (on whichever thread it comes) only has to be put together.
  // What this store answers (a single instance) is read from one snapshot, so its budget and rows agree.
  const auto snapshot =
      _options.usage_report && _options.tokens_used ? nullptr : std::shared_ptr<fold::Reader>(_engine.store().snapshot());
  std::optional<json::object> budget;
  if (caller.token_budget > 0) {
    const auto window = auth::budget_window(caller.budget_period, std::chrono::system_clock::now());
    const auto own_tenant = caller.tenant.empty() ? std::nullopt : std::optional<std::string_view>(caller.tenant);
    auto used = _options.tokens_used ? _options.tokens_used(caller, window)
                                     : fold::budget_tokens(*snapshot, own_tenant, window.from_day,
                                                           window.through_day, caller.key_name);
    if (!used) return respond(error_response(500, used.error().message, route));
    budget = json::object{{"key", caller.key_name},
                          {"token_budget", caller.token_budget},
                          {"period", auth::period_name(caller.budget_period)},
                          {"used", *used},
                          {"renews_in_s", window.until_reset.count()}};
  }
  auto answer = [budget = std::move(budget), respond = std::move(respond)](base::Result<std::string> body) {
    if (!body) {
      auto refused = error_response(503, "the usage report cannot be made now: " + body.error().message, kRouteUsage,
                                    "partition_moving");
      refused.headers.emplace_back("Retry-After", "1");
      return respond(std::move(refused));
    }
    if (!budget) return respond(http::json_response(200, std::move(*body), kRouteUsage));
    json::object o = json::parse(*body).as_object();
    o["budget"] = *budget;
    respond(http::json_response(200, json::serialize(o), kRouteUsage));
  };
  if (_options.usage_report) {
    return _options.usage_report(std::move(tenant), std::move(from), std::move(to), std::move(answer));
  }
  const auto tenant_view = tenant ? std::optional<std::string_view>(*tenant) : std::nullopt;
  answer(view::usage_json(*snapshot, tenant_view, from, to));
}

http::Response Api::ready() {
  json::object lags;
  for (const auto& [partition, lag] : _engine.lag()) lags[std::to_string(partition)] = lag;
  const bool caught_up = _engine.caught_up(_options.ready_max_lag);
  const auto writes_failing = _appender.health();
  const bool ready = caught_up && !writes_failing;
  json::object o{{"ready", ready}, {"max_lag", _options.ready_max_lag}, {"lag", std::move(lags)}};
  if (!caught_up) {
    const auto moving = _engine.moving();
    std::string why = _engine.assignment().empty() ? "no partitions assigned" : "partitions are behind";
    if (!moving.empty()) {
      why += ": ";
      why += base::join(moving);
      why += moving.size() == 1 ? " was just assigned here and is" : " were just assigned here and are";
      why += " still being folded up to where the log ended then";
    }
    o["reason"] = why;
  } else if (writes_failing) {
    o["reason"] = *writes_failing;
  }
  return http::json_response(ready ? 200 : 503, json::serialize(o), "/readyz");
}

}  // namespace statefold::api
