// Routing policy for upstream calls: the configured endpoints, and which of them a session may use. Rules match a
// session id prefix (the longest matching prefix wins; "" matches every session) and list the endpoints allowed. The
// gateway routes a tenant's turns by the tenant's namespace ("acme/"), never by the rest of the id its client picks
// (auth::Principal::routing_key). Pure, no I/O: the configuration comes from TOML text (parse_routing_toml) or from a
// struct a caller fills.
//
//   auto router = upstream::parse_routing_toml(text, "serve.toml");   // or Router::make(config)
//   auto endpoint = router->route("team-a/alice", "gpt-4o");          // an endpoint name, a model, or "" (default)
//   if (!endpoint) return refuse(403, endpoint.error().message);      // "session 'x' may not use endpoint 'y'; ..."
//
// Thread-safety: a Router is immutable once made; use it from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "connectors/upstream/upstream.h"
#include "engine/base/result.h"

namespace statefold::upstream {

struct Route {
  std::string session_prefix;           // "" = every session
  std::vector<std::string> endpoints;   // endpoint names this prefix may use; "*" = all of them
  std::string default_endpoint;         // used when a call names none; "" = the first of `endpoints`
};

struct RoutingConfig {
  std::vector<Endpoint> endpoints;
  std::vector<Route> routes;            // none at all: every session may use every endpoint
  std::string default_endpoint;         // when neither the call nor its route names one; "" = the first endpoint
};

class Router {
 public:
  // Checks the configuration: unique, well-formed endpoint names, known providers, parsable base URLs (a Bedrock
  // endpoint without one gets its region's), a region for SigV4, sane timeouts, routes naming known endpoints,
  // unique prefixes.
  static base::Result<Router> make(RoutingConfig config);

  // The endpoint session `session_id` should call for `requested`: an endpoint name, else a model name (an
  // endpoint's `model` or one of its `models`, the first allowed endpoint serving it), else "" for the default.
  // Sessions under a route are refused anything outside it ("session 'x' may not use endpoint 'y'; allowed: a, b");
  // a session no route matches is refused everything once any route exists.
  base::Result<const Endpoint*> route(std::string_view session_id, std::string_view requested = {}) const;

  // The endpoints `session_id` may use, in configuration order (every endpoint when no route exists).
  std::vector<const Endpoint*> allowed_endpoints(std::string_view session_id) const;

  // The rule that applies to `session_id` (longest prefix), or nullptr.
  const Route* rule_for(std::string_view session_id) const;
  const Endpoint* endpoint(std::string_view name) const;
  const RoutingConfig& config() const { return _config; }

 private:
  explicit Router(RoutingConfig config) : _config(std::move(config)) {}
  bool allowed(const Route* rule, const Endpoint& endpoint) const;
  std::string allowed_list(const Route* rule) const;

  RoutingConfig _config;
};

// The `[upstream]` table of a TOML document (other top-level keys are left to their owners):
//   [upstream]               default_endpoint = "..."
//   [[upstream.endpoints]]   name, provider, base_url, api_key_env, auth, anthropic_version, region, aws_profile,
//                            aws_service, model, models, max_output_tokens, headers, ca_file, connect_timeout_ms,
//                            read_timeout_ms,
//                            max_retries, backoff_base_ms, backoff_cap_ms, max_retry_after_ms
//   [[upstream.routes]]      session_prefix (or tenant = "acme", the same as session_prefix = "acme/"), endpoints,
//                            default_endpoint
// Errors name the file and line: "serve.toml:12: upstream.endpoints[1]: unknown key 'bse_url'".
// A document without an [upstream] table gives an empty configuration (Router::make then refuses nothing and
// routes nowhere).
base::Result<RoutingConfig> parse_routing_toml(std::string_view text, std::string_view file_name);
// parse_routing_toml, then Router::make (whose errors are prefixed with the file name).
base::Result<Router> load_routing_toml(std::string_view text, std::string_view file_name);

}  // namespace statefold::upstream
