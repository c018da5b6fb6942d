#include "connectors/gateway/gateway.h"

#include "connectors/context/render.h"
#include "connectors/gateway/internal/turn.h"
#include "engine/base/logging.h"
#include "engine/fold/read.h"
#include "statefold/schema/state_generated.h"

namespace statefold::gateway {

namespace {

const std::string kRouteContext = "GET /v1/sessions/{id}/context";
const std::string kRouteGetResponse = "GET /v1/responses/{id}";
constexpr std::string_view kSessionsPrefix = "/v1/sessions/";
constexpr std::string_view kContextSuffix = "/context";
constexpr std::string_view kResponsesPrefix = "/v1/responses/";
constexpr std::string_view kInputItemsSuffix = "/input_items";
constexpr std::string_view kModels = "/v1/models";

// GET /v1/sessions/{id}/context: what a call would send, section by section.
http::Response context_overview(internal::Core& core, const http::Request& request, const auth::Principal& caller,
                                const std::string& session) {
  const std::string& route = kRouteContext;
  if (!caller.owns(session)) return internal::not_in_namespace(caller, session, route);
  if (auto refused = core.refuse_elsewhere(session, route)) return std::move(*refused);
  core.events.settle(session, internal::kSettlePatience);
  auto snapshot = core.state.snapshot();
  auto header = fold::load_header(*snapshot, session);
  if (!header || !fold::begun(*header)) {
    return internal::openai_error(404, "no session " + session, "invalid_request_error", route);
  }
  std::string requested;
  if (auto it = request.query.find("endpoint"); it != request.query.end()) requested = it->second;
  if (auto it = request.query.find("model"); it != request.query.end() && requested.empty()) requested = it->second;
  auto endpoint = core.options.router.route(caller.routing_key(session), requested);
  if (!endpoint) return internal::openai_error(403, endpoint.error().message, "permission_error", route);
  materialise::RenderSpec spec;
  auto provider = context::parse_provider((*endpoint)->provider);
  if (auto it = request.query.find("provider"); it != request.query.end()) {
    provider = context::parse_provider(it->second);
    if (!provider) {
      return internal::openai_error(400, "provider: one of " + context::provider_names(), "invalid_request_error",
                                    route);
    }
  }
  spec.provider = provider.value_or(context::Provider::echo);
  spec.model = (*endpoint)->model.empty() ? header->model : (*endpoint)->model;
  if (auto it = request.query.find("model"); it != request.query.end()) spec.model = it->second;
  spec.margin = providers::get(spec.provider).token_margin();
  std::optional<http::Response> answer;
  auto ok = core.cache.with_state(*snapshot, session, header->version,
                                  [&](context::SessionState& state, std::string& counted) {
                                    auto rendered = materialise::render(state, spec, counted);
                                    if (!rendered) {
                                      answer = internal::openai_error(
                                          422, "the context cannot be materialised: " + rendered.error().message,
                                          "invalid_request_error", route, "context_length_exceeded");
                                      return;
                                    }
                                    answer = http::json_response(
                                        200, context::overview_json(rendered->context, spec.provider, rendered->body),
                                        route);
                                  });
  if (!ok) return internal::openai_error(500, ok.error().message, "server_error", route);
  return std::move(*answer);
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
  Impl(Options options, const StateSource& state, append::Sink& events) : core(std::move(options), state, events) {}
  internal::Core core;
};

Gateway::Gateway(Options options, const StateSource& state, append::Sink& events)
    : _impl(std::make_unique<Impl>(std::move(options), state, events)) {}

Gateway::~Gateway() { stop(); }

void Gateway::stop() { _impl->core.workers.stop(); }

bool Gateway::handles(const http::Request& request) {
  // The path as sent: GET /v1/sessions/y%2Fcontext reads session "y/context", it is not this route.
  const std::string& p = request.raw_path.empty() ? request.path : request.raw_path;
  return p == "/v1/chat/completions" || p == "/v1/responses" || p.starts_with(kResponsesPrefix) ||
         internal::conversations_route(p) || p == kModels ||
         (p.starts_with(kModels) && p[kModels.size()] == '/') ||
         (p.starts_with(kSessionsPrefix) && p.ends_with(kContextSuffix) &&
          p.size() > kSessionsPrefix.size() + kContextSuffix.size());
}

void Gateway::handle(http::Request request, auth::Principal caller, http::Respond respond) {
  auto& core = _impl->core;
  const std::string path = request.path;
  const std::string& raw = request.raw_path.empty() ? request.path : request.raw_path;
  if (raw.starts_with(kSessionsPrefix)) {
    if (request.method != "GET") {
      return respond(internal::openai_error(405, "use GET", "invalid_request_error", kRouteContext));
    }
    const auto session = http::decode_path_part(
        std::string_view(raw).substr(kSessionsPrefix.size(), raw.size() - kSessionsPrefix.size() - kContextSuffix.size()));
    return respond(context_overview(core, request, caller, session.value_or("")));
  }
  if (raw.starts_with(kModels)) {
    if (request.method != "GET") return respond(internal::openai_error(405, "use GET", "invalid_request_error", path));
    if (raw == kModels) return respond(internal::list_models(core, request, caller));
    // Model ids may hold a '/' (Bedrock ARNs, "org/model" on vLLM): everything after the prefix is the id.
    const auto model = http::decode_path_part(std::string_view(raw).substr(kModels.size() + 1));
    return respond(internal::get_model(core, request, caller, model.value_or("")));
  }
  const bool conversation = internal::conversations_route(raw);
  const bool response_lifecycle = raw.starts_with(kResponsesPrefix);  // /v1/responses/{id}[/input_items]
  std::string response_id;
  bool input_items = false;
  if (response_lifecycle) {
    std::string_view rest = std::string_view(raw).substr(kResponsesPrefix.size());
    input_items = rest.ends_with(kInputItemsSuffix) && rest.size() > kInputItemsSuffix.size();
    if (input_items) rest.remove_suffix(kInputItemsSuffix.size());
    response_id = http::decode_path_part(rest).value_or("");
    const bool get = request.method == "GET";
    if (get && !input_items) return respond(internal::get_response(core, caller, response_id));
    if (!(get && input_items) && !(request.method == "DELETE" && !input_items)) {
      return respond(internal::openai_error(405, input_items ? "use GET" : "use GET or DELETE",
                                            "invalid_request_error", kRouteGetResponse));
    }
  } else if (!conversation && request.method != "POST") {
    // OpenAI's routes answer in OpenAI's error shape, which its SDKs parse, even for a wrong method.
    return respond(internal::openai_error(405, "use POST", "invalid_request_error", path));
  }
  // Turns and changes block (folding, the upstream): a worker runs them, not the HTTP server's I/O thread.
  auto shared = std::make_shared<std::pair<http::Request, http::Respond>>(std::move(request), std::move(respond));
  const bool queued = core.workers.submit([&core, shared, caller = std::move(caller), conversation, response_lifecycle,
                                           input_items, response_id, received = internal::Clock::now()] {
    try {
      if (conversation) return internal::conversations(core, shared->first, caller, shared->second);
      if (response_lifecycle) {
        return shared->second(input_items
                                  ? internal::response_input_items(core, shared->first, caller, response_id)
                                  : internal::delete_response(core, caller, response_id));
      }
      // A key's token budget: checked before the turn records anything.
      if (auto refused = internal::refuse_over_budget(core, caller, shared->first.path)) {
        return shared->second(std::move(*refused));
      }
      if (shared->first.path == "/v1/chat/completions") {
        internal::chat(core, shared->first, caller, received, shared->second);
      } else {
        internal::responses(core, shared->first, caller, received, shared->second);
      }
    } catch (const std::exception& e) {
      base::log_error("gateway turn failed", {{"error", e.what()}});
      shared->second(
          internal::openai_error(500, std::string("internal error: ") + e.what(), "server_error", shared->first.path));
    }
  });
  if (!queued) shared->second(internal::openai_error(503, "serve is shutting down", "server_error", path));
}

}  // namespace statefold::gateway
