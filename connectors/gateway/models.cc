// GET /v1/models and GET /v1/models/{model}: the models the caller's routes reach, in OpenAI's list shape, so that
// SDKs and tools that list models first (LangChain, IDE plugins) see what this gateway serves. The caller is the
// session it names (X-Session-Id), as for a turn; without one, what a session no route prefix singles out may use.
#include <boost/json.hpp>

#include "connectors/gateway/internal/turn.h"

namespace statefold::gateway::internal {

namespace {

const std::string kRouteModels = "GET /v1/models";
const std::string kRouteModel = "GET /v1/models/{model}";

struct Listed {
  std::string id;
  std::string endpoint;
};

// Each model once, from the first allowed endpoint that serves it by name ("*" serves any model but names none).
std::vector<Listed> listed_models(const Core& core, const http::Request& request, const auth::Principal& caller) {
  const std::string session(request.header("x-session-id").value_or(""));
  std::vector<Listed> out;
  auto add = [&](const std::string& id, const std::string& endpoint) {
    if (id.empty() || id == "*") return;
    for (const auto& l : out) {
      if (l.id == id) return;
    }
    out.push_back({id, endpoint});
  };
  for (const upstream::Endpoint* e : core.options.router.allowed_endpoints(caller.routing_key(session))) {
    add(e->model, e->name);
    for (const auto& m : e->models) add(m, e->name);
  }
  return out;
}

boost::json::object model_object(const Listed& m) {
  // OpenAI's `owned_by` names who serves the model: here, the endpoint a turn naming it is routed to.
  return {{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", m.endpoint}};
}

}  // namespace

http::Response list_models(const Core& core, const http::Request& request, const auth::Principal& caller) {
  boost::json::array data;
  for (const auto& m : listed_models(core, request, caller)) data.push_back(model_object(m));
  return http::json_response(200, boost::json::serialize(boost::json::object{{"object", "list"}, {"data", data}}),
                             kRouteModels);
}

http::Response get_model(const Core& core, const http::Request& request, const auth::Principal& caller,
                         std::string_view model) {
  for (const auto& m : listed_models(core, request, caller)) {
    if (m.id == model) return http::json_response(200, boost::json::serialize(model_object(m)), kRouteModel);
  }
  std::string message = "The model '";
  message += model;
  message += "' does not exist or this session's routes do not reach it";
  return openai_error(404, message, "invalid_request_error", kRouteModel, "model_not_found");
}

}  // namespace statefold::gateway::internal
